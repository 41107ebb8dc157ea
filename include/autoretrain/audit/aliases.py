"""The alias audit: an append-only record of every registry alias move (who, what, why), SQLAlchemy Core.

MLflow keeps no history of alias moves (mlflow/mlflow issue #2169). Every move made through
:func:`autoretrain.registry.move_alias` is written ahead as an intent
(:mod:`autoretrain.audit.intents`), then made in MLflow, then recorded here (one row per alias it
changed) and the intent completed, all under the model's lock (:func:`model_lock`); a crash in
between is finished by the next move, a retry or the reconciler (:mod:`autoretrain.audit.reconcile`),
which also records moves made outside AutoRetrain (``external``). The table
(:mod:`autoretrain.db.schema`) lives in ``Settings.database_url`` (empty: SQLite under
``state_dir``), next to the prediction log. Updates and deletes are refused by a trigger on
Postgres and SQLite, and the services' database role has neither TRUNCATE nor TRIGGER on it and
does not own it (:mod:`autoretrain.db.roles`): the history can only grow.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
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
from autoretrain.errors import TransientError

#: how long a move waits for another move of the same model to end before giving up (retryable)
LOCK_TIMEOUT_SECONDS, LOCK_POLL_SECONDS = 120.0, 0.05
_memory_locks: dict[str, threading.Lock] = {}
_memory_locks_guard = threading.Lock()


class AliasLockTimeout(TransientError, RuntimeError):
    """Another alias move of the same model held its lock for too long; retry when it has ended."""


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


@contextmanager
def model_lock(engine: Engine, model_name: str) -> Generator[Connection, None, None]:
    """Serialize everything that reads or moves aliases of ``model_name``; yields the connection to write on.

    The lock spans several transactions (the intent commits before MLflow is touched, the audit
    rows after), so it cannot be a transaction's lock: on Postgres it is a session advisory lock
    (released by the database if the process dies), on SQLite an exclusive ``flock`` on a file next
    to the database (released by the kernel likewise). SQLite's own ``BEGIN IMMEDIATE`` would end
    with the intent's commit, before MLflow is changed.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            with _advisory_lock(conn, model_name):
                yield conn
        else:
            with _file_lock(engine.url.database, model_name):
                yield conn
        if conn.in_transaction():
            conn.rollback()


def _lock_key(model_name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"alias:{model_name}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def _advisory_lock(conn: Connection, model_name: str) -> Generator[None, None, None]:
    key, deadline = _lock_key(model_name), time.monotonic() + LOCK_TIMEOUT_SECONDS
    # polled, never waited for inside pg_advisory_lock (see autoretrain.db.migrate._serialized)
    while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar():
        conn.commit()
        if time.monotonic() > deadline:
            raise AliasLockTimeout(f"another alias move of model {model_name!r} has held its lock for "
                                   f"{LOCK_TIMEOUT_SECONDS:.0f} s; retry when it has ended")
        time.sleep(LOCK_POLL_SECONDS)
    conn.commit()
    try:
        yield
    finally:
        if conn.in_transaction():
            conn.rollback()
        if not conn.invalidated:  # a broken connection took its session (and the lock) with it
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            conn.commit()


@contextmanager
def _file_lock(database: str | None, model_name: str) -> Generator[None, None, None]:
    if not database or database == ":memory:":
        with _memory_locks_guard:
            lock = _memory_locks.setdefault(model_name, threading.Lock())
        if not lock.acquire(timeout=LOCK_TIMEOUT_SECONDS):
            raise AliasLockTimeout(f"another alias move of model {model_name!r} holds its lock; retry later")
        try:
            yield
        finally:
            lock.release()
        return
    import fcntl

    digest = hashlib.sha256(model_name.encode()).hexdigest()[:16]
    deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
    with open(f"{database}.alias-lock-{digest}", "a+b") as handle:  # noqa: PTH123 - a lock file, kept open
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AliasLockTimeout(f"another alias move of model {model_name!r} has held its lock for "
                                           f"{LOCK_TIMEOUT_SECONDS:.0f} s; retry when it has ended") from None
                time.sleep(LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


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


def audited_state(conn: Connection, model_name: str, aliases: Sequence[str]) -> dict[str, str | None]:
    """alias -> the version its last audit row left it on (None: removed, or never recorded)."""
    state: dict[str, str | None] = {}
    for alias in aliases:
        query = (sa.select(alias_audit.c.to_version)
                 .where(alias_audit.c.model_name == model_name, alias_audit.c.alias == alias)
                 .order_by(alias_audit.c.id.desc()).limit(1))
        state[alias] = conn.execute(query).scalar()
    if conn.in_transaction():
        conn.commit()
    return state


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
