"""Migrations on the local Postgres: the scenarios of tests/unit/db (SQLite) plus what only Postgres has.

Empty -> head, the previous schema with rows in every table adopted, head -> 0001 -> head; then two
upgrades started at once (the advisory lock runs them one after the other) and the 0002 indexes,
built ``CONCURRENTLY``, valid.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from autoretrain.db import migrate
from autoretrain.db.engine import make_engine
from tests.unit.db import checks

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def test_an_empty_database_upgrades_to_exactly_the_schema(postgres_db) -> None:
    checks.empty_database_reaches_head(postgres_db("migrate_empty"))


def test_a_database_of_the_previous_schema_keeps_every_row(postgres_db) -> None:
    checks.legacy_database_is_adopted(postgres_db("migrate_legacy"))


def test_downgrade_one_step_keeps_the_rows_and_upgrade_again_works(postgres_db) -> None:
    checks.downgrade_keeps_rows_and_upgrades_again(postgres_db("migrate_down"))


def test_two_upgrades_at_once_run_one_after_the_other(postgres_db) -> None:
    url = postgres_db("migrate_race")
    checks.write_legacy_database(url)
    procs = [subprocess.Popen([str(BIN / "autoretrain"), "db", "--database-url", url, "upgrade"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [(proc.wait(timeout=180), *proc.communicate()) for proc in procs]
    assert [code for code, _, _ in outcomes] == [0, 0], [err[-2000:] for _, _, err in outcomes]
    assert sorted(out for _, out, _ in outcomes) == [f"{url}: already at {checks.HEAD}\n",
                                                     f"{url}: none -> {checks.HEAD}\n"]
    engine = make_engine(url)
    try:
        checks.assert_rows_kept(engine)
        checks.assert_at_head(url, engine)
    finally:
        engine.dispose()


def test_the_0002_indexes_are_built_concurrently_and_valid(postgres_db) -> None:
    """CONCURRENTLY: the prediction service keeps writing its log while the index builds."""
    url = postgres_db("migrate_concurrently")
    migrate.upgrade(url, "0001")
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(" ".join(statement.split()))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)  # every engine, the migration's too
    try:
        migrate.upgrade(url, "0002")  # 0002's own statements (later revisions build indexes of new tables)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    created = [text for text in statements if text.startswith("CREATE INDEX")]
    assert created == [
        "CREATE INDEX CONCURRENTLY ix_prediction_log_model_role_created ON prediction_log (model_name, role, "
        "created_at)",
        "CREATE INDEX CONCURRENTLY ix_drift_windows_model_end ON drift_windows (model_name, window_end)"]
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            valid = dict(conn.execute(sa.text(
                "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname IN ('ix_prediction_log_model_role_created', 'ix_drift_windows_model_end')")).all())
        assert valid == {"ix_prediction_log_model_role_created": True, "ix_drift_windows_model_end": True}
        migrate.upgrade(url)
        checks.assert_at_head(url, engine)
    finally:
        engine.dispose()
