"""The prediction-log writer: rows spooled on the request path, inserted in batches by one thread.

put() appends the row to a local spool (:mod:`autoretrain.serving.spool`) before the answer
leaves, a thread fsyncs it every flush interval, and the writer thread inserts the spooled rows with
:func:`autoretrain.serving.prediction_log.insert_predictions`, retrying any database error until the
database accepts them (docs/adr/0008-durable-prediction-log.md). A row that cannot be spooled (full,
unwritable) is dropped and counted (``dropped``), never silently.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from autoretrain.db.schema import predictions
from autoretrain.serving.prediction_log import clean, insert_predictions
from autoretrain.serving.spool import Segment, Spool, SpoolError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriterStats:
    """Counters of the writer: ``accepted + adopted == written + duplicates + lost + depth``.

    ``dropped`` counts rows that never reached the spool (full, unwritable, stopped) plus ``lost``.
    """

    accepted: int  # rows appended to the spool by put()
    written: int  # rows committed to the database (replayed ones included)
    dropped: int  # rows refused by put() (spool full or unwritable, writer stopped), plus ``lost``
    lost: int  # rows the database refused for good (kept in spool/rejected.jsonl with the reason)
    depth: int  # rows in the spool not yet committed (the backlog)
    failed_batches: int  # inserts that failed and were retried (database away, read-only, no table)
    spool_bytes: int = 0  # bytes of the spool segments on disk
    adopted: int = 0  # rows found in the spool at start (left by a stopped or killed process)
    duplicates: int = 0  # replayed rows already in the database (skipped)
    db_error: str | None = None  # the last insert error while the database refuses rows; None once one commits
    failing_seconds: float = 0.0  # for how long inserts have failed (0: the last one committed)
    dropping: bool = False  # a row was dropped in the last DROP_WINDOW seconds


#: /ready reports "failing" for this long after a dropped row
DROP_WINDOW = 60.0
#: inserts failing this long raise the backlog alert even when the backlog is short
ALERT_AFTER_SECONDS = 30.0
#: a segment of this size is closed and a new one started (each is deleted once fully committed)
SEGMENT_BYTES = 4 << 20
_ROW_LEVEL = (sa.exc.IntegrityError, sa.exc.DataError)  # this row is wrong; any other database error: the database is


@dataclass(frozen=True)
class LogHealth:
    """The writer's condition for /ready: ok, degraded (rows safe in the spool), failing (rows dropped)."""

    status: str  # ok | degraded | failing
    reasons: tuple[str, ...]


_COLUMNS = tuple(c.name for c in predictions.columns if c.name != "id")
_encode = json.JSONEncoder(separators=(",", ":")).encode  # built once: json.dumps(..., separators=) builds one per call


def encode_row(row: Mapping[str, Any]) -> bytes:
    """One spool line: the columns in table order as an ASCII JSON array (any text, even a lone surrogate, fits)."""
    try:  # the request path: the row as the service builds it, in one f-string (~3x json.dumps)
        return (f'[{_quote(row["request_id"])},"{row["created_at"].isoformat()}",{_quote(row["model_name"])},'
                f'{_quote(row["model_version"])},{_quote(row["variant"])},{_quote(row["role"])},'
                f'{_optional(row["user_id"])},{_quote(row["text"])},{_number(row["probability"])},'
                f'{_quote(row["label"])},{_number(row["latency_ms"])}]\n').encode()
    except (TypeError, ValueError, AttributeError):  # anything else (None, nan, odd types): the generic encoder
        values: list[Any] = [row.get(c) for c in _COLUMNS]
        values[_COLUMNS.index("created_at")] = row["created_at"].isoformat()
        return _encode(values).encode() + b"\n"


def _quote(value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return encode_basestring_ascii(value)


def _number(value: float) -> str:
    number = float(value)
    if not math.isfinite(number):  # JSON has no nan/inf literal: the generic encoder writes NaN
        raise ValueError(f"not finite: {number}")
    return repr(number)


def _optional(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def decode_row(line: bytes) -> dict[str, Any]:
    values = json.loads(line)
    if not isinstance(values, list) or len(values) != len(_COLUMNS):
        raise ValueError(f"expected a JSON array of {len(_COLUMNS)} values")
    row = dict(zip(_COLUMNS, values, strict=True))
    row["created_at"] = datetime.fromisoformat(row["created_at"])
    return row


class PredictionLogWriter:
    """Prediction rows spooled to local segment files on put(), inserted in batches by one thread.

    put() appends the row to the spool (one ``write``; no database, no fsync on the request path);
    a sync thread fsyncs the spool every ``flush_seconds``; the writer thread inserts the spooled
    rows in order, retrying with backoff on any database error, and deletes a segment once all its
    rows are committed. Rows the database refuses for good (a constraint) go to
    ``spool/rejected.jsonl``, counted. Segments left by a stopped or killed process are replayed
    at start, skipping rows already in the database.
    """

    def __init__(self, engine: Engine, *, spool_dir: Path, queue_size: int = 10_000_000, batch_size: int = 500,
                 flush_seconds: float = 0.2, spool_max_bytes: int = 1 << 30, backlog_rows: int = 10_000,
                 retry_seconds: float = 0.5, max_retry_seconds: float = 10.0,
                 on_alert: Callable[[LogHealth, WriterStats], None] | None = None) -> None:
        if min(queue_size, batch_size, spool_max_bytes, backlog_rows) < 1 or flush_seconds <= 0:
            raise ValueError(f"queue_size={queue_size}, batch_size={batch_size}, spool_max_bytes={spool_max_bytes}, "
                             f"backlog_rows={backlog_rows} and flush_seconds={flush_seconds} must be positive")
        self._engine, self._queue_size, self._batch_size = engine, queue_size, batch_size
        self._flush_seconds, self._max_bytes, self._backlog_rows = flush_seconds, spool_max_bytes, backlog_rows
        self._retry_seconds, self._max_retry = retry_seconds, max(retry_seconds, max_retry_seconds)
        self._spool = Spool(spool_dir)
        self._segments: list[Segment] = []  # oldest first; the last one is the active segment
        self._active: Segment | None = None
        self._cond = threading.Condition()
        self._sync_lock = threading.Lock()  # fsync vs close of a segment's descriptor
        self._accepted = self._written = self._dropped = self._lost = self._failed = 0
        self._depth = self._bytes = self._adopted = self._duplicates = 0
        self._db_error: str | None = None
        self._failing_since: float | None = None
        self._last_drop = -DROP_WINDOW
        self._warned_drop = -DROP_WINDOW
        self._stopping = self._urgent = False
        self._deadline = float("inf")
        self._wake = threading.Event()  # ends a retry backoff early (stop, flush)
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._on_alert, self._alerted = on_alert, "ok"

    @property
    def spool_dir(self) -> Path:
        return self._spool.directory

    # ---------------------------------------------------------------------------- request path
    def put(self, row: Mapping[str, Any]) -> bool:
        """Append one row to the spool; False (counted in ``dropped``) when full, unwritable or stopped."""
        line = encode_row(row)
        with self._cond:
            segment = self._active
            if segment is None or self._stopping:
                return self._drop("the prediction log is not running")
            if self._depth >= self._queue_size or self._bytes + len(line) > self._max_bytes:
                return self._drop(f"the spool is full ({self._depth} rows, {self._bytes} bytes; "
                                  f"log_queue_size={self._queue_size}, log_spool_max_bytes={self._max_bytes})")
            try:
                self._spool.append(segment, line)
            except OSError as err:
                return self._drop(f"cannot write the spool {segment.path}: {err}")
            self._accepted += 1
            self._depth += 1
            self._bytes += len(line)
            if self._depth == self._batch_size:
                self._cond.notify_all()
            return True

    def _drop(self, reason: str) -> bool:
        """Count a refused row (called with the lock held); warn at most every 10 s."""
        self._dropped += 1
        now = time.monotonic()
        self._last_drop = now
        if now - self._warned_drop >= 10.0:
            self._warned_drop = now
            log.error("prediction log: dropping rows (%d so far): %s", self._dropped, reason)
        return False

    # ------------------------------------------------------------------------------ state
    def stats(self) -> WriterStats:
        with self._cond:
            now = time.monotonic()
            failing = 0.0 if self._failing_since is None else now - self._failing_since
            return WriterStats(self._accepted, self._written, self._dropped, self._lost, self._depth,
                               self._failed, self._bytes, self._adopted, self._duplicates, self._db_error,
                               failing, now - self._last_drop < DROP_WINDOW)

    def health(self) -> LogHealth:
        """failing: rows were dropped lately; degraded: the database refuses rows or the backlog is long."""
        s = self.stats()
        reasons = []
        if s.dropping:
            reasons.append(f"prediction-log rows dropped in the last {DROP_WINDOW:.0f}s ({s.dropped} in all)")
        if s.db_error is not None:
            reasons.append(f"the database refuses prediction-log rows for {s.failing_seconds:.0f}s "
                           f"({s.depth} rows kept in the spool): {s.db_error}")
        if s.depth > self._backlog_rows:
            reasons.append(f"{s.depth} prediction-log rows backed up in the spool (over {self._backlog_rows})")
        status = "failing" if s.dropping else "degraded" if reasons else "ok"
        return LogHealth(status, tuple(reasons))

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Adopt the segments left in the spool (replayed first), open this process's segment, start the threads."""
        if self._threads:
            return
        adopted = self._spool.adopt()
        active = self._spool.new_segment()
        with self._cond:
            self._segments, self._active = [*adopted, active], active
            self._adopted = sum(s.rows for s in adopted)
            self._depth += self._adopted
            self._bytes += sum(s.size for s in adopted)
        if adopted:
            log.warning("prediction log: replaying %d rows left in %d spool segments of %s", self._adopted,
                        len(adopted), self._spool.directory)
        self._spool.sync(active, 0)
        self._threads = [threading.Thread(target=self._run, name="prediction-log-writer", daemon=True),
                         threading.Thread(target=self._sync_loop, name="prediction-log-fsync", daemon=True)]
        for thread in self._threads:
            thread.start()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every row spooled so far is committed (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._written + self._duplicates + self._lost + self._depth
            self._urgent = True
            self._cond.notify_all()
            self._wake.set()
            while self._written + self._duplicates + self._lost < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._threads or not self._threads[0].is_alive():
                    return False
                self._cond.wait(left)
            return True

    def stop(self, timeout: float = 10.0) -> WriterStats:
        """Refuse new rows, insert the spooled ones for up to ``timeout``; the rest stays in the spool."""
        with self._cond:
            self._stopping = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        self._wake.set()
        if self._threads:
            self._threads[0].join(timeout + 1.0)
            self._closed.set()
            self._threads[1].join(5.0)
        alive = bool(self._threads) and self._threads[0].is_alive()
        with self._cond:
            segments, self._segments, self._active = self._segments, [], None
        with self._sync_lock:
            for segment in segments:
                if alive:  # a writer stuck in the database keeps its descriptors; the exit closes them
                    self._spool.sync(segment, segment.size)
                elif segment.sent >= segment.size:
                    self._spool.remove(segment)
                else:
                    self._spool.sync(segment, segment.size)
                    self._spool.release(segment)
        stats = self.stats()
        log.info("prediction log stopped: %d written, %d dropped, %d refused by the database, %d left in the "
                 "spool %s for the next start", stats.written, stats.dropped, stats.lost, stats.depth,
                 self._spool.directory)
        return stats

    # ------------------------------------------------------------------------------ the threads
    def _sync_loop(self) -> None:
        """Group commit: fsync what was appended since the last pass, every ``flush_seconds``."""
        while not self._closed.wait(self._flush_seconds):
            with self._cond:
                targets = [(s, s.size) for s in self._segments if s.synced < s.size]
                active = self._active
                if active is not None and active.size >= SEGMENT_BYTES and not self._stopping:
                    self._rotate()
            with self._sync_lock:
                for segment, size in targets:
                    try:
                        self._spool.sync(segment, size)
                    except OSError as err:  # a failing disk: say so loudly, keep serving (the page cache has the rows)
                        log.error("prediction log: fsync of the spool %s failed: %s", segment.path, err)

    def _rotate(self) -> bool:
        """Start a new active segment (lock held); False when none can be created (the old one stays)."""
        try:
            self._active = self._spool.new_segment()
        except SpoolError as err:
            log.error("prediction log: %s", err)
            return False
        self._segments.append(self._active)
        return True

    def _run(self) -> None:
        delay = self._retry_seconds
        while True:
            with self._cond:
                if not (self._stopping or self._urgent) and self._depth < self._batch_size:
                    self._cond.wait(self._flush_seconds)
                self._urgent = False
            try:
                caught_up = self._drain()
            except OSError as err:  # the spool cannot be read or cleaned: retry later, never end the thread
                log.error("prediction log: spool error: %s", err)
                caught_up = False
            except Exception:  # noqa: BLE001 - an unforeseen error must not end the thread: the rows stay spooled
                log.exception("prediction log: unexpected error; the rows stay in the spool, retrying")
                caught_up = False
            self._watch()
            delay = self._retry_seconds if caught_up else delay
            with self._cond:
                stopping, left = self._stopping, self._deadline - time.monotonic()
            if stopping and (caught_up or left <= 0):
                return
            if not caught_up:  # the database refused: back off (stop and flush end the wait early)
                self._wake.clear()
                self._wake.wait(min(delay, max(left, 0.0)))
                delay = min(delay * 2, self._max_retry)

    def _watch(self) -> None:
        """Call ``on_alert`` when the alert level changes: rows dropped, or backed up (long backlog, 30 s failing)."""
        if self._on_alert is None:
            return
        s = self.stats()
        level = ("failing" if s.dropping else
                 "degraded" if s.depth > self._backlog_rows or s.failing_seconds >= ALERT_AFTER_SECONDS else "ok")
        if level != self._alerted:
            self._alerted = level
            health = self.health()
            try:
                self._on_alert(LogHealth(level, health.reasons), s)
            except Exception:  # noqa: BLE001 - an alert that cannot be raised must not stop the writer
                log.exception("prediction log: raising the alert failed")

    def _next(self) -> tuple[Segment | None, int, list[Segment]]:
        """The oldest segment with rows to insert and its end; fully committed ones to delete (lock held)."""
        done: list[Segment] = []
        while self._segments:
            segment = self._segments[0]
            if segment.sent < segment.size:
                return segment, segment.size, done
            if segment is self._active and not self._stopping:
                if segment.size == 0 or not self._rotate():
                    break  # start afresh (the committed one is deleted), unless no new one can be made
            elif segment is self._active:
                self._active = None
            done.append(self._segments.pop(0))
            self._bytes -= segment.size
        return None, 0, done

    def _drain(self) -> bool:
        """Insert spooled rows until none is left (True) or the database refuses (False)."""
        while True:
            with self._cond:
                segment, end, done = self._next()
            if done:
                with self._sync_lock:
                    for finished in done:
                        self._spool.remove(finished)
            if segment is None:
                return True
            lines, consumed = self._spool.read(segment, end=end, max_rows=self._batch_size)
            outcome = self._insert_lines(lines, dedup=segment.adopted or segment.retry)
            if outcome is None:
                segment.retry = True
                return False
            written, duplicates, lost = outcome
            with self._cond:
                segment.sent += consumed
                self._written += written
                self._duplicates += duplicates
                self._lost += lost
                self._dropped += lost
                self._depth -= len(lines)
                self._cond.notify_all()

    # ------------------------------------------------------------------------------ the database
    def _insert_lines(self, lines: list[bytes], *, dedup: bool) -> tuple[int, int, int] | None:
        """(written, duplicates, refused) for a batch of spool lines; None: the database refused, retry later."""
        rows: list[tuple[bytes, dict[str, Any]]] = []
        lost = 0
        for line in lines:
            try:
                rows.append((line, decode_row(line)))
            except (ValueError, KeyError, TypeError) as err:  # a torn line after a machine crash
                self._reject(line, f"unreadable spool line: {err}")
                lost += 1
        try:
            with self._engine.begin() as conn:
                written = insert_predictions(conn, [r for _, r in rows], dedup=dedup)
        except _ROW_LEVEL as err:
            log.warning("prediction log: batch of %d refused (%s); inserting row by row", len(rows), _short(err))
        except sa.exc.SQLAlchemyError as err:  # away, read-only, no table...: every row stays in the spool
            self._failed_insert(err, len(rows))
            return None
        except (ValueError, TypeError) as err:  # a value the driver cannot send (e.g. a lone surrogate)
            log.warning("prediction log: batch of %d refused (%s); inserting row by row", len(rows), _short(err))
        else:
            self._succeeded()
            return written, len(rows) - written, lost
        return self._row_by_row(rows, lost)

    def _row_by_row(self, rows: list[tuple[bytes, dict[str, Any]]], lost: int) -> tuple[int, int, int] | None:
        written = duplicates = 0
        for line, row in rows:
            try:
                with self._engine.begin() as conn:
                    n = insert_predictions(conn, [{k: clean(v) for k, v in row.items()}], dedup=True)
                written, duplicates = written + n, duplicates + 1 - n
            except (*_ROW_LEVEL, ValueError, TypeError) as err:
                self._reject(line, _short(err))
                lost += 1
            except sa.exc.SQLAlchemyError as err:  # the database went away meanwhile: retry the batch later
                self._failed_insert(err, len(rows))
                return None
        self._succeeded()
        return written, duplicates, lost

    def _reject(self, line: bytes, reason: str) -> None:
        log.error("prediction log: the database refused a row for good (kept in %s): %s",
                  self._spool.directory / "rejected.jsonl", reason)
        try:
            self._spool.reject(line, reason)
        except OSError as err:
            log.error("prediction log: cannot keep the refused row either: %s", err)

    def _failed_insert(self, err: Exception, rows: int) -> None:
        with self._cond:
            self._failed += 1
            first = self._failing_since is None
            if first:
                self._failing_since = time.monotonic()
            self._db_error = _short(err)
            depth = self._depth
        (log.warning if first else log.info)(
            "prediction log: insert of %d rows failed, %d rows kept in the spool, retrying: %s", rows, depth,
            self._db_error)

    def _succeeded(self) -> None:
        with self._cond:
            if self._failing_since is not None:
                log.warning("prediction log: the database accepts rows again after %.1fs",
                            time.monotonic() - self._failing_since)
            self._failing_since, self._db_error = None, None


def _short(err: BaseException) -> str:
    """The first line of a database error, without SQLAlchemy's parameter dump."""
    text = str(getattr(err, "orig", None) or err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]
