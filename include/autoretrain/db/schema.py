"""Every table of AutoRetrain's database, in one ``MetaData``: what the head migration produces.

The same definitions run on Postgres (production) and SQLite (the embedded default under
``state_dir``). The table-access code lives with its stage (the prediction log in
:mod:`autoretrain.serving.prediction_log`, alerts in :mod:`autoretrain.alerts.store`, the alias
audit in :mod:`autoretrain.audit.aliases`, drift windows in :mod:`autoretrain.monitoring.windows`);
this module only describes the tables. A change here is a new revision in
``db/migrations/versions/`` (tests/unit/db compares this metadata with a migrated database).

No naming convention: index names are SQLAlchemy's defaults (``ix_<table>_<column>``) or spelled
out, and constraints keep the names each database gave them (Postgres: ``<table>_pkey``,
``<table>_<column>_key``), as the deployments made before migrations have them.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only

# ------------------------------------------------------------------------- serving (prediction log)
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
    # revision 0002: the served rows of one model in a time range (monitoring windows, the canary)
    sa.Index("ix_prediction_log_model_role_created", "model_name", "role", "created_at"),
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

# ------------------------------------------------------------------------------------------- alerts
alert_log = sa.Table(
    "alert_log", metadata,
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

# revision 0005: the cool-down claim of each alert (dedup key), won by one sender at a time
alert_cooldown = sa.Table(
    "alert_cooldown", metadata,
    sa.Column("dedup_key", sa.String(500), primary_key=True),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),  # when people were last told
    sa.Column("claim_id", sa.String(36), nullable=False),  # the claim's owner (to give it back on a failed send)
)

# -------------------------------------------------------------------------------------------- audit
alias_audit = sa.Table(
    "alias_audit", metadata,
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

#: the append-only triggers of ``alias_audit`` (revision 0001), per dialect. A batch ("move and
#: copy") migration of alias_audit on SQLite recreates the table without them: re-run these in it.
APPEND_ONLY_DDL = {
    "postgresql": [
        "CREATE OR REPLACE FUNCTION alias_audit_append_only() RETURNS trigger AS $$\n"
        "BEGIN\n"
        "    RAISE EXCEPTION 'alias_audit is append-only: %% refused', TG_OP;\n"
        "END;\n"
        "$$ LANGUAGE plpgsql",
        "CREATE TRIGGER alias_audit_append_only BEFORE UPDATE OR DELETE ON alias_audit\n"
        "    FOR EACH ROW EXECUTE FUNCTION alias_audit_append_only()",
    ],
    "sqlite": [
        f"CREATE TRIGGER alias_audit_no_{op.lower()} BEFORE {op} ON alias_audit "
        f"BEGIN SELECT RAISE(ABORT, 'alias_audit is append-only: {op} refused'); END"
        for op in ("UPDATE", "DELETE")
    ],
}
for _dialect, _statements in APPEND_ONLY_DDL.items():
    for _statement in _statements:
        sa.event.listen(alias_audit, "after_create", sa.DDL(_statement).execute_if(dialect=_dialect))

#: revision 0004: the write-ahead intent of every alias move (pending -> completed | undone | undo_failed |
#: abandoned). alias_audit stays append-only; only an intent's status, completed_at and detail change.
alias_intents = sa.Table(
    "alias_intents", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("move_id", sa.String(36), nullable=False, unique=True),  # the move_id of its alias_audit rows
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(250), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),  # JSON list
    sa.Column("metrics", sa.Text, nullable=False),  # JSON object
    sa.Column("idempotency_key", sa.String(600), nullable=False, index=True),  # the requested alias's key
    sa.Column("changes", sa.Text, nullable=False),  # JSON list of AliasChange, in the order they are applied
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("completed_at", sa.DateTime(timezone=True)),  # when the status left pending
    sa.Column("detail", sa.Text),  # the error of an undone / undo_failed / abandoned move
    sa.Index("ix_alias_intents_model_status", "model_name", "status", "id"),
)

# --------------------------------------------------------------------------------------- monitoring
drift_windows = sa.Table(
    "drift_windows", metadata,
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
    # revision 0002: the latest windows of one model up to an end (decide_window's hysteresis)
    sa.Index("ix_drift_windows_model_end", "model_name", "window_end"),
)


# ------------------------------------------------------------------------------ model integrity
#: revision 0003: what AutoRetrain registered and vetted. The authority on a model version's bytes
#: (not the MLflow tag): a version without a row here never loads (see autoretrain.audit.artifacts)
model_artifacts = sa.Table(
    "model_artifacts", metadata,
    sa.Column("model_name", sa.String(256), primary_key=True),
    sa.Column("version", sa.String(32), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),  # registry.tree_sha256 of the version's artifact
    sa.Column("hmac", sa.String(64), nullable=False),  # HMAC-SHA256(integrity_key, name|version|sha256); "" unkeyed
    sa.Column("format", sa.String(16), nullable=False),  # skops
    sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("registered_by", sa.String(250), nullable=False),
)


def owns_table(name: str) -> bool:
    """True for AutoRetrain's tables (the same database may hold MLflow's or Airflow's too)."""
    return name in metadata.tables
