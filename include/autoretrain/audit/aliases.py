"""The alias audit: an append-only record of every registry alias move (who, what, why), SQLAlchemy Core.

MLflow keeps no history of alias moves (mlflow/mlflow issue #2169). Every move made through
:func:`autoretrain.registry.move_alias` writes one row per alias it changes, in the same database
transaction that is committed only after MLflow accepted the move, so a row exists exactly when
the move happened. The table lives in ``Settings.database_url`` (empty: SQLite under
``state_dir``), next to the prediction log. Updates and deletes are refused by a trigger on
Postgres and SQLite: the history can only grow.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Generator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from autoretrain.config import Settings

metadata = sa.MetaData()

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


@dataclass(frozen=True)
class AuditRecord:
    """One alias change as recorded."""

    id: int
    created_at: datetime
    move_id: str
    model_name: str
    alias: str
    action: str
    from_version: str | None
    to_version: str | None
    actor: str
    run_id: str
    reason: str
    reasons: list[str]
    metrics: dict[str, Any]
    idempotency_key: str

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "created_at": self.created_at.isoformat()}


def ensure_table(engine: Engine) -> None:
    """Create the audit table (and its append-only triggers) if missing; safe when processes race."""
    for attempt in range(3):
        try:
            metadata.create_all(engine, checkfirst=True)
            return
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError):
            if attempt == 2:
                raise
            time.sleep(0.2 * (attempt + 1))  # another process is creating it right now


@contextmanager
def engine_for(settings: Settings) -> Generator[Engine, None, None]:
    """An engine on ``database_url`` (empty: SQLite under ``state_dir``) with the table in place."""
    from autoretrain.serving import prediction_log as store

    engine = store.make_engine(store.database_url(settings))
    try:
        ensure_table(engine)
        yield engine
    finally:
        engine.dispose()


def idempotency_key(*, run_id: str, model_name: str, alias: str, action: str, to_version: str | None) -> str:
    """The key that makes a retried move find its own row instead of writing a second one."""
    return f"{run_id}|{model_name}|{alias}|{action}|{to_version or '-'}"[:600]


def lock_model(conn: Connection, model_name: str) -> None:
    """Serialize alias moves of one model until the transaction ends (Postgres advisory lock).

    SQLite (the single-machine default) serializes writers on the database file instead.
    """
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"alias:{model_name}".encode()).digest()[:8], "big", signed=True)
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def insert(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append ``rows`` (``reasons`` and ``metrics`` are serialized as JSON) in the caller's transaction."""
    values = [{**row, "reasons": json.dumps(list(row.get("reasons") or []), default=str),
               "metrics": json.dumps(dict(row.get("metrics") or {}), default=str, allow_nan=False)}
              for row in rows]
    if values:
        conn.execute(alias_audit.insert(), values)


def find(conn: Connection, key: str) -> list[AuditRecord]:
    """Every row of the move whose row carries ``key`` (empty when the move was never recorded)."""
    move = conn.execute(sa.select(alias_audit.c.move_id).where(alias_audit.c.idempotency_key == key)).scalar()
    if move is None:
        return []
    rows = conn.execute(sa.select(alias_audit).where(alias_audit.c.move_id == move).order_by(alias_audit.c.id))
    return [_record(r) for r in rows.mappings()]


def recorded(engine: Engine, *, model_name: str, run_id: str, alias: str, action: str) -> list[AuditRecord]:
    """The rows of the last move of ``alias`` that ``run_id`` recorded with ``action`` (empty: none)."""
    query = (sa.select(alias_audit.c.idempotency_key)
             .where(alias_audit.c.model_name == model_name, alias_audit.c.run_id == run_id[:250],
                    alias_audit.c.alias == alias, alias_audit.c.action == action)
             .order_by(alias_audit.c.id.desc()).limit(1))
    with engine.connect() as conn:
        key = conn.execute(query).scalar()
        return find(conn, key) if key is not None else []


def history(engine: Engine, model_name: str, *, alias: str | None = None, limit: int = 100) -> list[AuditRecord]:
    """The newest ``limit`` rows of ``model_name`` (optionally of one alias), newest first."""
    query = (sa.select(alias_audit).where(alias_audit.c.model_name == model_name)
             .order_by(alias_audit.c.id.desc()).limit(limit))
    if alias is not None:
        query = query.where(alias_audit.c.alias == alias)
    with engine.connect() as conn:
        return [_record(r) for r in conn.execute(query).mappings()]


def _record(row: RowMapping) -> AuditRecord:
    created = row["created_at"]
    created = created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)
    return AuditRecord(**{**dict(row), "created_at": created, "reasons": json.loads(row["reasons"]),
                          "metrics": json.loads(row["metrics"])})
