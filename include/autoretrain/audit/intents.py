"""Write-ahead intents of alias moves (table ``alias_intents``): committed before MLflow changes, completed after.

A move of :func:`autoretrain.registry.move_alias` is first committed here as ``pending`` with the
changes it is about to make; after MLflow accepted every change, its ``alias_audit`` rows are
inserted and the intent marked ``completed`` in one transaction. Every other ending is recorded
too: ``undone`` (MLflow refused, every alias put back), ``undo_failed`` (some could not be put
back: the aliases that stand moved get an ``undo_failed`` audit row), ``abandoned`` (a crashed
move found its aliases moved elsewhere meanwhile). A ``pending`` intent is a move that crashed
or could not reach the database at the end; the next locked operation on the model finishes it.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from autoretrain.audit import aliases
from autoretrain.db.schema import alias_intents
from autoretrain.promotion.payloads import AliasChange

PENDING: Final = "pending"
COMPLETED: Final = "completed"
UNDONE: Final = "undone"
UNDO_FAILED: Final = "undo_failed"
ABANDONED: Final = "abandoned"
STATUSES = (PENDING, COMPLETED, UNDONE, UNDO_FAILED, ABANDONED)


@dataclass(frozen=True)
class Intent:
    """One planned move as committed before MLflow was touched."""

    id: int
    move_id: str
    created_at: datetime
    model_name: str
    action: str
    actor: str
    run_id: str
    reason: str
    reasons: list[str]
    metrics: dict[str, Any]
    idempotency_key: str
    changes: tuple[AliasChange, ...]
    status: str
    completed_at: datetime | None
    detail: str | None

    def audit_rows(self, changes: Sequence[AliasChange] | None = None, *, action: str | None = None,
                   reason: str | None = None) -> list[dict[str, Any]]:
        """The ``alias_audit`` rows of ``changes`` (default: all of them) under this move's id and keys.

        Rows of another ``action`` than the intent's (``undo_failed``) get keys of their own, so that
        a retry of the move never takes them for the move itself.
        """
        rows = []
        for change in self.changes if changes is None else changes:
            key = (aliases.idempotency_key(run_id=self.run_id, model_name=self.model_name, alias=change["alias"],
                                           action=self.action, to_version=change["to_version"])
                   if action is None else f"{self.move_id}|{change['alias']}|{action}"[:600])
            rows.append({"created_at": self.created_at, "move_id": self.move_id, "model_name": self.model_name,
                         "action": action or self.action, "actor": self.actor, "run_id": self.run_id,
                         "reason": reason or self.reason, "reasons": self.reasons, "metrics": self.metrics,
                         "idempotency_key": key, **change})
        return rows


@contextmanager
def transaction(conn: Connection) -> Generator[Connection, None, None]:
    """One transaction on ``conn`` (a read before it may have auto-begun one: that one ends first)."""
    if conn.in_transaction():
        conn.commit()
    with conn.begin():
        yield conn


def begin(conn: Connection, *, move_id: str, created_at: datetime, model_name: str, action: str, actor: str,
          run_id: str, reason: str, reasons: Sequence[str], metrics: dict[str, Any], idempotency_key: str,
          changes: Sequence[AliasChange]) -> Intent:
    """Commit a ``pending`` intent (durable before this returns: only then may MLflow be touched)."""
    values = {"move_id": move_id, "created_at": created_at, "model_name": model_name, "action": action,
              "actor": actor[:250], "run_id": run_id[:250], "reason": reason,
              "reasons": json.dumps(list(reasons), default=str),
              "metrics": json.dumps(dict(metrics), default=str, allow_nan=False),
              "idempotency_key": idempotency_key[:600], "changes": json.dumps([dict(c) for c in changes]),
              "status": PENDING, "completed_at": None, "detail": None}
    with transaction(conn):
        conn.execute(alias_intents.insert(), values)
        row = conn.execute(sa.select(alias_intents).where(alias_intents.c.move_id == move_id)).mappings().one()
    return _intent(row)


def complete(conn: Connection, intent: Intent, *, at: datetime | None = None) -> None:
    """Insert the move's audit rows and mark it ``completed``, in one transaction."""
    finish(conn, intent, status=COMPLETED, rows=intent.audit_rows(), at=at)


def finish(conn: Connection, intent: Intent, *, status: str, rows: Sequence[dict[str, Any]] = (),
           detail: str | None = None, at: datetime | None = None) -> None:
    """End a pending intent with ``status``, appending ``rows`` to the audit in the same transaction."""
    if status not in STATUSES or status == PENDING:
        raise ValueError(f"status {status!r} does not end an intent; one of {STATUSES[1:]}")
    with transaction(conn):
        aliases.insert(conn, rows)
        done = conn.execute(alias_intents.update()
                            .where(alias_intents.c.move_id == intent.move_id, alias_intents.c.status == PENDING)
                            .values(status=status, completed_at=at or datetime.now(UTC), detail=detail))
        if done.rowcount != 1:  # the model lock makes this impossible; refuse to write a second ending
            raise RuntimeError(f"alias intent {intent.move_id} is no longer pending; not ending it again")


def pending(conn: Connection, model_name: str) -> list[Intent]:
    """The pending intents of ``model_name``, oldest first (call it under :func:`aliases.model_lock`)."""
    query = (sa.select(alias_intents)
             .where(alias_intents.c.model_name == model_name, alias_intents.c.status == PENDING)
             .order_by(alias_intents.c.id))
    with transaction(conn):
        return [_intent(r) for r in conn.execute(query).mappings()]


def history(engine: Engine, model_name: str, *, limit: int = 100) -> list[Intent]:
    """The newest ``limit`` intents of ``model_name``, newest first."""
    query = (sa.select(alias_intents).where(alias_intents.c.model_name == model_name)
             .order_by(alias_intents.c.id.desc()).limit(limit))
    with engine.connect() as conn:
        return [_intent(r) for r in conn.execute(query).mappings()]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _intent(row: RowMapping) -> Intent:
    changes = tuple(AliasChange(alias=c["alias"], from_version=c["from_version"], to_version=c["to_version"])
                    for c in json.loads(row["changes"]))
    created = _utc(row["created_at"])
    assert created is not None  # NOT NULL
    return Intent(**{**dict(row), "created_at": created, "completed_at": _utc(row["completed_at"]),
                     "reasons": json.loads(row["reasons"]), "metrics": json.loads(row["metrics"]),
                     "changes": changes})
