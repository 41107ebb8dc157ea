"""The prediction log, feedback and the routing override: their reads and writes, SQLAlchemy Core.

The tables are defined in :mod:`autoretrain.db.schema` (and created by ``autoretrain db upgrade``);
the same code runs on Postgres (production) and SQLite (the embedded default under ``state_dir``).
Predictions reach the database through :class:`PredictionLogWriter`, a bounded queue drained in
batches by one background thread, so no request waits for a database write. The writer drains
everything on :meth:`PredictionLogWriter.stop`; when the queue is full a row is dropped and
counted (``dropped``), never silently.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from autoretrain.db.schema import feedback, predictions, routing_override

log = logging.getLogger(__name__)


def _clean(value: Any) -> Any:
    """Postgres text cannot hold NUL: keep the row, replace the character."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


# ------------------------------------------------------------------------------- prediction log
@dataclass(frozen=True)
class WriterStats:
    """Counters of the writer: ``accepted == written + lost + depth``; ``dropped`` >= ``lost``."""

    accepted: int  # rows queued by put()
    written: int  # rows committed to the database
    dropped: int  # rows refused by a full queue, plus ``lost``
    lost: int  # queued rows that were never written (a row the database rejects; shutdown deadline)
    depth: int  # rows waiting or being written
    failed_batches: int  # batch inserts that failed and were retried


class PredictionLogWriter:
    """Bounded queue of prediction rows, written in batches by one background thread."""

    def __init__(self, engine: Engine, *, queue_size: int = 100_000, batch_size: int = 500,
                 flush_seconds: float = 0.2, retry_seconds: float = 1.0) -> None:
        if queue_size < 1 or batch_size < 1 or flush_seconds <= 0:
            raise ValueError(f"queue_size={queue_size}, batch_size={batch_size} and "
                             f"flush_seconds={flush_seconds} must be positive")
        self._engine, self._queue_size, self._batch_size = engine, queue_size, batch_size
        self._flush_seconds, self._retry_seconds = flush_seconds, retry_seconds
        self._rows: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._accepted = self._written = self._dropped = self._lost = self._failed = self._in_flight = 0
        self._stopping = self._urgent = False
        self._deadline = float("inf")  # set by stop(): give up retrying after it
        self._thread: threading.Thread | None = None

    def put(self, row: dict[str, Any]) -> bool:
        """Queue one row; False (and counted in ``dropped``) when the queue is full or stopped."""
        with self._cond:
            if len(self._rows) + self._in_flight >= self._queue_size or self._stopping:
                self._dropped += 1
                return False
            self._rows.append(row)
            self._accepted += 1
            if len(self._rows) == self._batch_size:
                self._cond.notify_all()
            return True

    def stats(self) -> WriterStats:
        with self._cond:
            return WriterStats(self._accepted, self._written, self._dropped, self._lost,
                               len(self._rows) + self._in_flight, self._failed)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
            self._thread.start()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every row queued so far is written (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._accepted
            self._urgent = True
            self._cond.notify_all()
            while self._written + self._lost < target:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None or not self._thread.is_alive():
                    return False
                self._cond.wait(left)
            return True

    def stop(self, timeout: float = 30.0) -> WriterStats:
        """Refuse new rows, write every queued one (retrying for up to ``timeout``), end the thread."""
        with self._cond:
            self._stopping = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout + 10)
        stats = self.stats()
        log.info("prediction log stopped: %d written, %d dropped, %d lost", stats.written, stats.dropped,
                 stats.lost)
        return stats

    def _run(self) -> None:
        while True:
            with self._cond:
                if not (self._stopping or self._urgent) and len(self._rows) < self._batch_size:
                    self._cond.wait(self._flush_seconds)
                batch, self._rows, self._urgent = self._rows, [], False
                self._in_flight += len(batch)
                if not batch and self._stopping:
                    return
            for start in range(0, len(batch), self._batch_size):
                self._write_chunk(batch[start:start + self._batch_size])

    def _write_chunk(self, chunk: list[dict[str, Any]]) -> None:
        while True:
            try:
                with self._engine.begin() as conn:
                    conn.execute(predictions.insert(), chunk)
                return self._done(written=len(chunk), lost=0)
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as err:  # database away: retry
                with self._cond:
                    self._failed += 1
                if time.monotonic() >= self._deadline:
                    log.error("prediction log: gave up on %d rows at shutdown: %s", len(chunk), err)
                    return self._done(written=0, lost=len(chunk))
                log.warning("prediction log: insert of %d rows failed, retrying in %.1fs: %s", len(chunk),
                            self._retry_seconds, err)
                time.sleep(self._retry_seconds)
            except Exception as err:  # noqa: BLE001 - a row the database refuses must not block the rest
                log.warning("prediction log: batch of %d refused (%s); inserting row by row", len(chunk), err)
                written = sum(self._insert_one(row) for row in chunk)
                return self._done(written=written, lost=len(chunk) - written)

    def _insert_one(self, row: dict[str, Any]) -> bool:
        try:
            with self._engine.begin() as conn:
                conn.execute(predictions.insert(), [{k: _clean(v) for k, v in row.items()}])
            return True
        except Exception as err:  # noqa: BLE001 - counted as lost and logged, never raised in the writer
            log.error("prediction log: dropped the row of request %s: %s", row.get("request_id"), err)
            return False

    def _done(self, *, written: int, lost: int) -> None:
        with self._cond:
            self._written += written
            self._lost += lost
            self._dropped += lost
            self._in_flight -= written + lost
            self._cond.notify_all()


def count_predictions(engine: Engine, **where: Any) -> int:
    """Rows of the prediction log, optionally filtered by column values (``role="served"``)."""
    query = sa.select(sa.func.count()).select_from(predictions)
    for column, value in where.items():
        query = query.where(predictions.c[column] == value)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def prediction_exists(engine: Engine, request_id: str) -> bool:
    query = sa.select(predictions.c.id).where(predictions.c.request_id == request_id).limit(1)
    with engine.connect() as conn:
        return conn.execute(query).first() is not None


# -------------------------------------------------------------------------------------- feedback
def save_feedback(engine: Engine, *, request_id: str, label: str, source: str, at: datetime) -> None:
    """Record the true label of ``request_id`` (a later feedback for the same id replaces it)."""
    values = {"request_id": request_id, "label": label, "source": _clean(source), "created_at": at}
    with engine.begin() as conn:
        _upsert(conn, feedback, values, key="request_id")


def get_feedback(engine: Engine, request_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(feedback).where(feedback.c.request_id == request_id)).mappings().first()
    return dict(row) if row else None


def labelled_predictions(engine: Engine, *, model_name: str, until: datetime,
                         since: datetime | None = None) -> list[dict[str, Any]]:
    """Served predictions of ``model_name`` joined with their feedback label (by ``request_id``).

    Only feedback recorded in ``(since, until]`` counts, so a retried task sees the same rows. One
    row per request (shadow rows share the request id and are left out): ``request_id``, ``text``,
    ``label`` (the feedback's), ``predicted``, ``probability``, ``model_version``, ``variant``,
    ``created_at`` (of the prediction) and ``labelled_at``, oldest label first.
    """
    query = (sa.select(predictions.c.request_id, predictions.c.text, feedback.c.label,
                       predictions.c.label.label("predicted"), predictions.c.probability,
                       predictions.c.model_version, predictions.c.variant, predictions.c.created_at,
                       feedback.c.created_at.label("labelled_at"))
             .join(feedback, feedback.c.request_id == predictions.c.request_id)
             .where(predictions.c.role == "served", predictions.c.model_name == model_name,
                    feedback.c.created_at <= until)
             .order_by(feedback.c.created_at, predictions.c.request_id))
    if since is not None:
        query = query.where(feedback.c.created_at > since)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def served_between(engine: Engine, *, model_name: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Served predictions of ``model_name`` made in ``[since, until)``, with the feedback label if any.

    Columns: ``request_id``, ``user_id``, ``variant``, ``model_version``, ``probability``, ``label``
    (predicted), ``text``, ``created_at`` and ``feedback_label`` (None without feedback).
    """
    query = (sa.select(predictions.c.request_id, predictions.c.user_id, predictions.c.variant,
                       predictions.c.model_version, predictions.c.probability, predictions.c.label,
                       predictions.c.text, predictions.c.created_at, feedback.c.label.label("feedback_label"))
             .outerjoin(feedback, feedback.c.request_id == predictions.c.request_id)
             .where(predictions.c.role == "served", predictions.c.model_name == model_name,
                    predictions.c.created_at >= since, predictions.c.created_at < until)
             .order_by(predictions.c.created_at, predictions.c.id))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


# ------------------------------------------------------------------------------ routing override
def load_routing(engine: Engine) -> dict[str, Any] | None:
    """The live routing override set through the admin API, or None (the settings apply)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(routing_override.c.config).where(routing_override.c.id == 1)).first()
    return json.loads(row[0]) if row else None


def save_routing(engine: Engine, config: Mapping[str, Any], *, at: datetime) -> None:
    with engine.begin() as conn:
        _upsert(conn, routing_override, {"id": 1, "config": json.dumps(dict(config)), "updated_at": at}, key="id")


def clear_routing(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(routing_override.delete())


def _upsert(conn: sa.Connection, table: sa.Table, values: dict[str, Any], *, key: str) -> None:
    dialect = conn.dialect.name
    if dialect in ("postgresql", "sqlite"):
        from sqlalchemy.dialects import postgresql, sqlite

        insert = (postgresql if dialect == "postgresql" else sqlite).insert(table).values(**values)
        conn.execute(insert.on_conflict_do_update(index_elements=[key],
                                                  set_={k: v for k, v in values.items() if k != key}))
        return
    updated = conn.execute(table.update().where(table.c[key] == values[key]).values(**values)).rowcount
    if not updated:
        conn.execute(table.insert().values(**values))


def iter_rows(engine: Engine, table: sa.Table, *, limit: int = 1000) -> list[dict[str, Any]]:
    """Up to ``limit`` rows of ``table`` as dicts (tests and debugging)."""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).limit(limit)).mappings()]
