"""Migrations on SQLite: empty -> head, the previous schema with rows adopted, downgrade and back, the check.

The same scenarios on Postgres: tests/integration/test_migrations_postgres.py.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from autoretrain.config import Settings
from autoretrain.db import migrate, schema
from autoretrain.db.engine import database_url, make_engine
from tests.unit.db import checks, legacy_schema


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'autoretrain.db'}"


def test_an_empty_database_upgrades_to_exactly_the_schema(url) -> None:
    checks.empty_database_reaches_head(url)


def test_a_database_of_the_previous_schema_keeps_every_row(url) -> None:
    checks.legacy_database_is_adopted(url)


def test_downgrade_one_step_keeps_the_rows_and_upgrade_again_works(url) -> None:
    checks.downgrade_keeps_rows_and_upgrades_again(url)


def test_a_half_made_database_gets_only_what_is_missing(url) -> None:
    """The previous code made tables lazily: a database may hold the serving tables and nothing else."""
    engine = make_engine(url)
    legacy_schema.metadata.create_all(engine)  # prediction_log, prediction_feedback, serving_routing only
    with engine.begin() as conn:
        conn.execute(legacy_schema.predictions.insert(), checks.ROWS["prediction_log"])
    migrate.upgrade(url)
    try:
        checks.assert_at_head(url, engine)
        assert [r["request_id"] for r in checks.stored_rows(engine)["prediction_log"]] == ["req-1", "req-1", "req-2"]
        checks.assert_append_only(engine)  # alias_audit was created now, with its triggers
    finally:
        engine.dispose()


def test_upgrade_twice_changes_nothing(url) -> None:
    checks.write_legacy_database(url)
    assert migrate.upgrade(url) == migrate.Migrated(before=None, after="0005")
    assert migrate.upgrade(url) == migrate.Migrated(before="0005", after="0005")
    engine = make_engine(url)
    try:
        checks.assert_rows_kept(engine)
    finally:
        engine.dispose()


def test_the_version_table_is_autoretrains_own_beside_another_alembic(url) -> None:
    """MLflow or Airflow may keep their ``alembic_version`` in the same database: both are left alone."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('mlflow-rev-1')"))
        conn.execute(sa.text("CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY)"))
    migrate.upgrade(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == ["mlflow-rev-1"]
        assert conn.execute(sa.text(f"SELECT version_num FROM {migrate.VERSION_TABLE}")).scalars().all() == ["0005"]
    assert checks.differences(engine) == []  # the foreign tables are not AutoRetrain's business
    engine.dispose()


def test_history_and_head() -> None:
    revisions = migrate.history()
    assert [(r.revision, r.down_revision, r.is_head) for r in revisions] == [("0001", None, False),
                                                                               ("0002", "0001", False),
                                                                               ("0003", "0002", False),
                                                                               ("0004", "0003", False),
                                                                               ("0005", "0004", True)]
    assert revisions[0].doc.startswith("Adopt the schema of the code before migrations")
    assert migrate.head() == "0005"


def test_metadata_holds_every_table_once() -> None:
    assert sorted(schema.metadata.tables) == ["alert_cooldown", "alert_log", "alias_audit", "alias_intents",
                                              "drift_windows", "model_artifacts", "prediction_feedback",
                                              "prediction_log", "serving_routing"]
    assert sorted(set(schema.metadata.tables) - checks.LATER_TABLES) == sorted(t.name for t in legacy_schema.TABLES)


# ------------------------------------------------------------------------------------ the check
@pytest.mark.parametrize(("prepare", "state"), [
    (lambda url: None, "none (empty)"),
    (checks.write_legacy_database, "none (tables made before migrations)"),
    (lambda url: migrate.upgrade(url, "0001"), "0001"),
])
def test_a_database_behind_is_refused_in_one_line(url, prepare, state) -> None:
    prepare(url)
    engine = make_engine(url)
    with pytest.raises(migrate.SchemaOutOfDate) as refused:
        migrate.check_schema(engine)
    engine.dispose()
    assert str(refused.value) == (f"database {url} is at revision {state}, this code needs 0005: "
                                  "run `autoretrain db upgrade`")
    assert refused.value.retryable is False and refused.value.exit_code == 2


def test_a_database_ahead_of_the_code_is_refused(url) -> None:
    migrate.upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = '0099'"))
    with pytest.raises(migrate.SchemaOutOfDate, match=r"at revision 0099, which this code does not know \(it "
                                                      r"needs 0005\)"):
        migrate.check_schema(engine)
    engine.dispose()


def test_a_passed_check_is_remembered_for_the_process(url) -> None:
    migrate.upgrade(url)
    engine = make_engine(url)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    migrate.check_schema(engine)
    asked = len(statements)
    assert asked >= 1
    for _ in range(5):
        migrate.check_schema(engine)
    assert len(statements) == asked  # no query after the first success
    engine.dispose()


def test_unknown_revision_is_one_clear_error(url) -> None:
    with pytest.raises(migrate.MigrationError, match=r"upgrade to 0042 of database sqlite:///.*failed: Can't "
                                                     r"locate revision identified by '0042'"):
        migrate.upgrade(url, "0042")


def test_default_database_is_sqlite_under_state_dir(tmp_path) -> None:
    settings = Settings(state_dir=str(tmp_path / "state"))
    assert database_url(settings) == f"sqlite:///{tmp_path / 'state' / 'autoretrain.db'}"
    assert (tmp_path / "state").is_dir()
    assert database_url(Settings(database_url="postgresql://u:p@h/db")) == "postgresql://u:p@h/db"
