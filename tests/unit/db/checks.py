"""Rows in all six tables and the checks of a migrated database, shared by the SQLite and Postgres tests.

:func:`write_legacy_database` makes a database the way the code before migrations did (the frozen
schema of :mod:`tests.unit.db.legacy_schema`, ``create_all``) and fills every table; the other
functions assert what must hold after a migration: the same rows with the same values, the
append-only triggers, and the schema of :mod:`autoretrain.db.schema` (nothing more, nothing less).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from autoretrain.db import migrate, schema
from autoretrain.db.engine import make_engine, redacted
from tests.unit.db import legacy_schema

T0 = datetime(2026, 2, 27, 9, 30, 15, 250000, tzinfo=UTC)
#: the indexes revision 0002 adds (head has them, 0001 and the code before migrations do not)
INDEXES_0002 = {("prediction_log", "ix_prediction_log_model_role_created"),
                ("drift_windows", "ix_drift_windows_model_end")}

#: the revision this code needs, and the tables revisions after 0001 added (no legacy database has them)
HEAD, BEFORE_HEAD = "0005", "0004"
#: 0003: model_artifacts (what AutoRetrain vetted), 0004: alias_intents (moves written ahead), 0005: alert_cooldown
LATER_TABLES = {"model_artifacts", "alias_intents", "alert_cooldown"}
LATER_INDEXES = {("alias_intents", "ix_alias_intents_idempotency_key"),
                 ("alias_intents", "ix_alias_intents_model_status")}
#: what a database at 0001 (or made before migrations) lacks compared with head
MISSING_AT_0001 = sorted([*(("add_index", *index) for index in INDEXES_0002 | LATER_INDEXES),
                          *(("add_table", t) for t in LATER_TABLES)])
#: what revision 0005 derives from ROWS: the newest delivered (sent/logged) alert per dedup key
COOLDOWN_ROWS = [{"dedup_key": "drift:sms-spam:text_psi", "claimed_at": T0, "claim_id": "alert_log"}]

#: table -> rows, without the autoincrement ids (written in this order: ids 1, 2, ...)
ROWS: dict[str, list[dict[str, Any]]] = {
    "prediction_log": [
        {"request_id": "req-1", "created_at": T0, "model_name": "sms-spam", "model_version": "3",
         "variant": "champion", "role": "served", "user_id": "user-7", "text": "WINNER!! claim your prize 🎉",
         "probability": 0.96875, "label": "spam", "latency_ms": 1.5},
        {"request_id": "req-1", "created_at": T0, "model_name": "sms-spam", "model_version": "4",
         "variant": "challenger", "role": "shadow", "user_id": "user-7", "text": "WINNER!! claim your prize 🎉",
         "probability": 0.5, "label": "spam", "latency_ms": 2.25},
        {"request_id": "req-2", "created_at": T0 + timedelta(minutes=5), "model_name": "sms-spam",
         "model_version": "3", "variant": "champion", "role": "served", "user_id": None,
         "text": "are we still on for lunch? 日本語", "probability": 0.03125, "label": "ham", "latency_ms": 0.75},
    ],
    "prediction_feedback": [
        {"request_id": "req-1", "label": "spam", "source": "api", "created_at": T0 + timedelta(hours=1)},
        {"request_id": "req-2", "label": "ham", "source": "moderator", "created_at": T0 + timedelta(hours=2)},
    ],
    "serving_routing": [
        {"id": 1, "config": '{"mode": "canary", "canary_percent": 10.0}', "updated_at": T0},
    ],
    "alert_log": [
        {"created_at": T0, "kind": "drift", "severity": "warning", "dedup_key": "drift:sms-spam:text_psi",
         "status": "logged", "transport": "log", "channel": None, "title": "Drift on sms-spam",
         "message": "text_psi 0.31 > 0.15", "error": None, "dag_id": "monitoring", "run_id": "scheduled__1",
         "task_id": "decide"},
        {"created_at": T0 + timedelta(minutes=1), "kind": "task_failure", "severity": "critical",
         "dedup_key": "task_failure:training.register", "status": "failed", "transport": "slack_webhook",
         "channel": "#ops", "title": "Task failed", "message": "boom", "error": "HTTP 404 no_service",
         "dag_id": "training", "run_id": "manual__2", "task_id": "register"},
    ],
    "alias_audit": [
        {"created_at": T0, "move_id": "8b0f5c8e-0000-4000-8000-000000000001", "model_name": "sms-spam",
         "alias": "previous", "action": "promote", "from_version": None, "to_version": "2",
         "actor": "airflow:retrain_compare_promote.promote", "run_id": "manual__3", "reason": "challenger wins",
         "reasons": '["mcnemar p=0.01"]', "metrics": '{"f1": 0.97}', "idempotency_key": "manual__3|sms-spam|previous"},
        {"created_at": T0, "move_id": "8b0f5c8e-0000-4000-8000-000000000001", "model_name": "sms-spam",
         "alias": "champion", "action": "promote", "from_version": "2", "to_version": "3",
         "actor": "airflow:retrain_compare_promote.promote", "run_id": "manual__3", "reason": "challenger wins",
         "reasons": '["mcnemar p=0.01"]', "metrics": '{"f1": 0.97}', "idempotency_key": "manual__3|sms-spam|champion"},
    ],
    "drift_windows": [
        {"model_name": "sms-spam", "window_start": T0 - timedelta(hours=6), "window_end": T0, "model_version": "3",
         "n_predictions": 1200, "n_labelled": 40, "insufficient_data": False, "drifted": True,
         "report": '{"drifted": true}', "mlflow_run_id": "a1b2c3", "retrain": True,
         "decision": '{"retrain": true}', "action": "retrain triggered: manual__4", "computed_at": T0},
        {"model_name": "sms-spam", "window_start": T0, "window_end": T0 + timedelta(hours=6), "model_version": None,
         "n_predictions": 0, "n_labelled": 0, "insufficient_data": True, "drifted": False,
         "report": '{"status": "no champion"}', "mlflow_run_id": None, "retrain": None, "decision": None,
         "action": None, "computed_at": T0 + timedelta(hours=6)},
    ],
}
#: tables whose key is an autoincrement id (the rows get 1, 2, ... in the order written)
AUTO_IDS = {"prediction_log", "alert_log", "alias_audit"}


def write_legacy_database(url: str) -> None:
    """The database the code of 4d26a21 left behind: its own ``create_all`` per module, rows in every table."""
    engine = make_engine(url)  # the same factory as then (serving/prediction_log.make_engine, moved unchanged)
    try:
        legacy_schema.create_all(engine)
        tables = {t.name: t for t in legacy_schema.TABLES}
        assert set(tables) == set(ROWS) == set(schema.metadata.tables) - LATER_TABLES, "every table gets rows"
        with engine.begin() as conn:
            for name, rows in ROWS.items():
                conn.execute(tables[name].insert(), rows)
    finally:
        engine.dispose()


def stored_rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, ordered by key, datetimes in UTC (SQLite hands back naive ones)."""
    out = {}
    present = set(sa.inspect(engine).get_table_names())  # at 0001 the later tables do not exist yet
    with engine.connect() as conn:
        for name, table in schema.metadata.tables.items():
            if name not in present:
                continue
            rows = conn.execute(sa.select(table).order_by(*table.primary_key.columns)).mappings().all()
            out[name] = [{k: _utc(v) for k, v in row.items()} for row in rows]
    return out


def assert_rows_kept(engine: Engine) -> None:
    """Exactly the rows :func:`write_legacy_database` wrote, with the same values (and the same ids)."""
    stored = stored_rows(engine)
    for name, rows in ROWS.items():
        expected = [{**({"id": i} if name in AUTO_IDS else {}), **row} for i, row in enumerate(rows, start=1)]
        expected = sorted(expected, key=lambda r: tuple(str(r[c.name]) for c in schema.metadata.tables[name]
                                                       .primary_key.columns))
        assert stored[name] == expected, name


def assert_append_only(engine: Engine) -> None:
    """alias_audit takes a new row (its id after the last one) and refuses UPDATE and DELETE (the triggers)."""
    row = {**ROWS["alias_audit"][0], "move_id": "m-new", "idempotency_key": f"after-the-migration-{id(engine)}"}
    with engine.begin() as conn:
        last = conn.execute(sa.select(sa.func.max(schema.alias_audit.c.id))).scalar() or 0
        (new_id,) = conn.execute(schema.alias_audit.insert(), row).inserted_primary_key
    assert new_id == last + 1  # the id sequence goes on from the rows already there
    for statement in ("UPDATE alias_audit SET reason = 'edited'", "DELETE FROM alias_audit"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(statement))
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.alias_audit)).scalar() == last + 1


def differences(engine: Engine) -> list[Any]:
    """alembic's compare_metadata, as readable tuples (empty: the database is exactly db.schema)."""
    return [_describe(diff) for diff in migrate.schema_differences(engine)]


def index_names(engine: Engine) -> set[tuple[str, str]]:
    inspector = sa.inspect(engine)
    return {(table, index["name"]) for table in inspector.get_table_names() if schema.owns_table(table)
            for index in inspector.get_indexes(table)}


def assert_at_head(url: str, engine: Engine) -> None:
    """The version table says head, the check passes, and the tables are exactly :mod:`autoretrain.db.schema`."""
    assert migrate.current(url) == migrate.head() == HEAD
    migrate.check_schema(engine)
    assert differences(engine) == []
    assert INDEXES_0002 <= index_names(engine)


def _describe(diff: Any) -> Any:
    if isinstance(diff, list):  # column modifications come as a list of tuples
        return [_describe(d) for d in diff]
    kind, *rest = diff
    names = [getattr(item, "name", item) for item in rest if not isinstance(item, dict)]
    if kind in ("add_index", "remove_index"):
        return kind, rest[0].table.name, rest[0].name
    return (kind, *names)


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


# ------------------------------------------------------------------ the scenarios, on any database
def empty_database_reaches_head(url: str) -> None:
    """(a) An empty database upgraded to head is exactly db.schema, triggers included."""
    engine = make_engine(url)
    try:
        assert migrate.current(url) is None
        assert migrate.upgrade(url) == migrate.Migrated(before=None, after=HEAD)
        assert_at_head(url, engine)
        assert stored_rows(engine) == {name: [] for name in schema.metadata.tables}
        assert_append_only(engine)
    finally:
        engine.dispose()


def legacy_database_is_adopted(url: str) -> None:
    """(b) A database of the previous schema, rows in every table: upgraded, every row kept, schema == head."""
    write_legacy_database(url)
    engine = make_engine(url)
    try:
        assert migrate.current(url) is None
        # the legacy tables are 0001's exactly: only the two indexes of 0002 and the later tables are missing
        assert sorted(differences(engine)) == MISSING_AT_0001
        with pytest.raises(migrate.SchemaOutOfDate, match=r"at revision none \(tables made before migrations\)"):
            migrate.check_schema(engine)
        assert migrate.upgrade(url) == migrate.Migrated(before=None, after=HEAD)
        assert_rows_kept(engine)
        assert stored_rows(engine)["alert_cooldown"] == COOLDOWN_ROWS
        assert_at_head(url, engine)
        assert_append_only(engine)
    finally:
        engine.dispose()


def downgrade_keeps_rows_and_upgrades_again(url: str) -> None:
    """(c) head -> -1 -> 0001 drops what came later (0002's indexes, the later tables), keeping every row; up again."""
    write_legacy_database(url)
    engine = make_engine(url)
    try:
        migrate.upgrade(url)
        migrate.check_schema(engine)  # remembered as at head ...
        assert migrate.downgrade(url, "-1") == migrate.Migrated(before=HEAD, after=BEFORE_HEAD)
        assert sorted(differences(engine)) == [("add_table", "alert_cooldown")]
        assert_rows_kept(engine)
        assert migrate.downgrade(url, "0001") == migrate.Migrated(before=BEFORE_HEAD, after="0001")
        with pytest.raises(migrate.SchemaOutOfDate) as refused:  # ... and forgotten by the downgrade
            migrate.check_schema(engine)
        assert str(refused.value) == (f"database {redacted(url)} is at revision 0001, this code needs {HEAD}: "
                                      "run `autoretrain db upgrade`")
        assert not INDEXES_0002 & index_names(engine)
        assert sorted(differences(engine)) == MISSING_AT_0001
        assert_rows_kept(engine)
        assert migrate.upgrade(url) == migrate.Migrated(before="0001", after=HEAD)
        assert_rows_kept(engine)
        assert_at_head(url, engine)
    finally:
        engine.dispose()
