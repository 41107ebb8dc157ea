"""The schema of commit 4d26a21, frozen: the tables AutoRetrain created at run time before migrations.

Migration 0001 adopts exactly this. The Table definitions and the trigger DDL are copied verbatim
from the four modules that owned them then (``serving/prediction_log.py``, ``alerts/store.py``,
``audit/aliases.py``, ``monitoring/windows.py``), each with its own ``MetaData`` as it was (only
the two that were both called ``metadata`` are renamed here, ``alerts_metadata`` and
``audit_metadata``); :func:`create_all` makes a database the way that code did. Do not edit
it to follow ``autoretrain.db.schema``: it is the past the migrations start from.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

# ------------------------------------------------------------ include/autoretrain/serving/prediction_log.py
metadata = sa.MetaData()
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only

predictions = sa.Table(
    "prediction_log", metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("variant", sa.String(64), nullable=False),  # the registry alias that scored it
    sa.Column("role", sa.String(16), nullable=False),  # served (returned) | shadow (logged only)
    sa.Column("user_id", sa.String(128)),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("probability", sa.Float, nullable=False),  # P(positive label)
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
)

feedback = sa.Table(
    "prediction_feedback", metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

routing_override = sa.Table(
    "serving_routing", metadata,
    sa.Column("id", sa.Integer, primary_key=True),  # always 1: one live override for every process
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# ------------------------------------------------------------------ include/autoretrain/alerts/store.py
alerts_metadata = sa.MetaData()
alert_log = sa.Table(
    "alert_log", alerts_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("dedup_key", sa.String(500), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("transport", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(200)),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("dag_id", sa.String(250)),
    sa.Column("run_id", sa.String(250)),
    sa.Column("task_id", sa.String(250)),
    sa.Index("ix_alert_log_dedup_created", "dedup_key", "created_at"),
)

# ----------------------------------------------------------------- include/autoretrain/audit/aliases.py
audit_metadata = sa.MetaData()

alias_audit = sa.Table(
    "alias_audit", audit_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("move_id", sa.String(36), nullable=False, index=True),  # rows written by one move share it
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("alias", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),  # assign | canary | promote | withdraw | rollback ...
    sa.Column("from_version", sa.String(32)),  # None: the alias did not exist
    sa.Column("to_version", sa.String(32)),  # None: the alias was removed
    sa.Column("actor", sa.String(250), nullable=False),  # airflow:<dag>.<task> | cli:<user>@<host> ...
    sa.Column("run_id", sa.String(250), nullable=False),  # the Airflow run or CLI invocation that moved it
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),  # JSON list: the decision's reasons
    sa.Column("metrics", sa.Text, nullable=False),  # JSON object: the numbers behind the decision
    sa.Column("idempotency_key", sa.String(600), nullable=False, unique=True),
    sa.Index("ix_alias_audit_model_alias", "model_name", "alias", "id"),
)

_APPEND_ONLY_PG = """
CREATE OR REPLACE FUNCTION alias_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'alias_audit is append-only: %% refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER alias_audit_append_only BEFORE UPDATE OR DELETE ON alias_audit
    FOR EACH ROW EXECUTE FUNCTION alias_audit_append_only();
"""
sa.event.listen(alias_audit, "after_create", sa.DDL(_APPEND_ONLY_PG).execute_if(dialect="postgresql"))
for _op in ("UPDATE", "DELETE"):
    sa.event.listen(alias_audit, "after_create", sa.DDL(
        f"CREATE TRIGGER alias_audit_no_{_op.lower()} BEFORE {_op} ON alias_audit "
        f"BEGIN SELECT RAISE(ABORT, 'alias_audit is append-only: {_op} refused'); END"
    ).execute_if(dialect="sqlite"))

# ------------------------------------------------------------ include/autoretrain/monitoring/windows.py
windows_metadata = sa.MetaData()
drift_windows = sa.Table(
    "drift_windows", windows_metadata,
    sa.Column("model_name", sa.String(256), primary_key=True),
    sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("window_end", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("model_version", sa.String(32)),
    sa.Column("n_predictions", sa.Integer, nullable=False),
    sa.Column("n_labelled", sa.Integer, nullable=False),
    sa.Column("insufficient_data", sa.Boolean, nullable=False),
    sa.Column("drifted", sa.Boolean, nullable=False),
    sa.Column("report", sa.Text, nullable=False),  # DriftReport.as_dict() as JSON
    sa.Column("mlflow_run_id", sa.String(64)),
    sa.Column("retrain", sa.Boolean),  # None until decide_window ran
    sa.Column("decision", sa.Text),  # Decision.as_dict() as JSON
    sa.Column("action", sa.String(256)),  # "retrain triggered: <run id>" | "no action"
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
)

METADATAS = (metadata, alerts_metadata, audit_metadata, windows_metadata)
TABLES = (predictions, feedback, routing_override, alert_log, alias_audit, drift_windows)


def create_all(engine: Engine) -> None:
    """The tables as the code of 4d26a21 created them: each module's ``create_all``, no version table."""
    for each in METADATAS:
        each.create_all(engine, checkfirst=True)
