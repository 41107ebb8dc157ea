"""The alias audit: an append-only record of every registry alias move (who, what, why), SQLAlchemy Core.

MLflow keeps no history of alias moves (mlflow/mlflow issue #2169). Every move made through
:func:`autoretrain.registry.move_alias` writes one row per alias it changes, in the same database
transaction that is committed only after MLflow accepted the move, so a row exists exactly when
the move happened. The table (:mod:`autoretrain.db.schema`) lives in ``Settings.database_url``
(empty: SQLite under ``state_dir``), next to the prediction log. Updates and deletes are refused
by a trigger on Postgres and SQLite: the history can only grow.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from autoretrain.config import Settings
from autoretrain.db.engine import database_url
from autoretrain.db.migrate import checked_engine
from autoretrain.db.schema import alias_audit


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


@contextmanager
def engine_for(settings: Settings) -> Generator[Engine, None, None]:
    """An engine on ``database_url`` (empty: SQLite under ``state_dir``); SchemaOutOfDate unless migrated."""
    engine = checked_engine(database_url(settings))
    try:
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
