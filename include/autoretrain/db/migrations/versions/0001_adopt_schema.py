"""Adopt the schema of the code before migrations: six tables and the alias_audit append-only triggers.

Until commit 4d26a21 every process created the tables it used (``create_all`` at run time). On an
empty database this revision creates everything; on a database that code made (tables full of
rows) it creates only the tables, indexes and triggers that are missing and changes no row. The
definitions are frozen here as they were then: later changes are later revisions.

Revision ID: 0001
Revises:
Create Date: 2026-03-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_tables = sa.MetaData()
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

sa.Table(
    "prediction_log", _tables,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("variant", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("user_id", sa.String(128)),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
)
sa.Table(
    "prediction_feedback", _tables,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "serving_routing", _tables,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "alert_log", _tables,
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
sa.Table(
    "alias_audit", _tables,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("move_id", sa.String(36), nullable=False, index=True),
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("alias", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("from_version", sa.String(32)),
    sa.Column("to_version", sa.String(32)),
    sa.Column("actor", sa.String(250), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("metrics", sa.Text, nullable=False),
    sa.Column("idempotency_key", sa.String(600), nullable=False, unique=True),
    sa.Index("ix_alias_audit_model_alias", "model_name", "alias", "id"),
)
sa.Table(
    "drift_windows", _tables,
    sa.Column("model_name", sa.String(256), primary_key=True),
    sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("window_end", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("model_version", sa.String(32)),
    sa.Column("n_predictions", sa.Integer, nullable=False),
    sa.Column("n_labelled", sa.Integer, nullable=False),
    sa.Column("insufficient_data", sa.Boolean, nullable=False),
    sa.Column("drifted", sa.Boolean, nullable=False),
    sa.Column("report", sa.Text, nullable=False),
    sa.Column("mlflow_run_id", sa.String(64)),
    sa.Column("retrain", sa.Boolean),
    sa.Column("decision", sa.Text),
    sa.Column("action", sa.String(256)),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
)

# trigger name -> its DDL, per dialect (the Postgres trigger calls a function created with it)
_TRIGGERS = {
    "postgresql": {
        "alias_audit_append_only": [
            "CREATE OR REPLACE FUNCTION alias_audit_append_only() RETURNS trigger AS $$\n"
            "BEGIN\n"
            "    RAISE EXCEPTION 'alias_audit is append-only: %% refused', TG_OP;\n"
            "END;\n"
            "$$ LANGUAGE plpgsql",
            "CREATE TRIGGER alias_audit_append_only BEFORE UPDATE OR DELETE ON alias_audit\n"
            "    FOR EACH ROW EXECUTE FUNCTION alias_audit_append_only()",
        ],
    },
    "sqlite": {
        f"alias_audit_no_{op_name.lower()}": [
            f"CREATE TRIGGER alias_audit_no_{op_name.lower()} BEFORE {op_name} ON alias_audit "
            f"BEGIN SELECT RAISE(ABORT, 'alias_audit is append-only: {op_name} refused'); END"]
        for op_name in ("UPDATE", "DELETE")
    },
}


def upgrade() -> None:
    bind = op.get_bind()
    _tables.create_all(bind, checkfirst=True)  # only the missing ones; existing rows are not touched
    inspector = sa.inspect(bind)
    for table in _tables.sorted_tables:
        present = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in sorted(table.indexes, key=lambda ix: str(ix.name)):
            if index.name not in present:
                index.create(bind)
    for name, statements in _TRIGGERS.get(bind.dialect.name, {}).items():
        if name not in _triggers(bind):
            for statement in statements:
                bind.execute(sa.DDL(statement))


def downgrade() -> None:
    bind = op.get_bind()
    _tables.drop_all(bind, checkfirst=True)  # the triggers go with alias_audit
    if bind.dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS alias_audit_append_only()")


def _triggers(bind: Connection) -> set[str]:
    """Names of the triggers on alias_audit."""
    if bind.dialect.name == "postgresql":
        query = "SELECT tgname FROM pg_trigger WHERE tgrelid = 'alias_audit'::regclass AND NOT tgisinternal"
    elif bind.dialect.name == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'alias_audit'"
    else:
        return set()
    return set(bind.execute(sa.text(query)).scalars())
