"""Purge the prediction log and feedback past ``retention_days``; redact old texts; in batches.

What still reads these rows, and how each is protected (the horizon, :func:`horizon`):

* **a running canary** reads the served rows since its start (``canary_status`` ->
  ``served_between(since=started + grace)``) with their feedback. Its start is the ``updated_at``
  of the routing override while that override is in ``canary`` mode (``start_canary`` writes it,
  ``promote``/``withdraw`` end it). While a canary runs, nothing from ``retention_guard_hours``
  before its start on is purged or redacted, however long it runs.
* **challenger training** (``labelled_feedback``) reads the feedback recorded in the
  ``retention_days`` before the run's data interval end, joined with the prediction of each
  request (which may be older than the feedback). So a feedback row is purged only when it is
  older than the cut-off, and a prediction only when it is and its feedback (if any) is too. A
  run retried late, with its interval end in the past, still finds its rows: the cut-off is
  ``retention_guard_hours`` older than ``now - retention_days``.
* **monitoring windows** read the last hours of traffic: far inside any cut-off.

Rows are deleted (or redacted) by primary key in chunks of ``purge_batch_size``, each chunk its
own short transaction, and each statement repeats the age conditions, so a row that became
needed between the read of its key and the delete (feedback arrived) stays. With ``dry_run``
nothing is written: the counts are what would be purged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from autoretrain.config import Settings
from autoretrain.data.pii import redact
from autoretrain.db.schema import feedback, predictions, routing_override

log = logging.getLogger(__name__)

#: texts without any of these cannot hold an e-mail address or a number: never read back to redact
_PII_MARKERS = ("@", *"0123456789")


class RowsPurgeRecord(TypedDict):
    """:meth:`RowsPurge.as_dict`: the XCom of ``purge_rows`` and the CLI's output."""

    now: str
    purge_before: str
    redact_before: str | None
    canary_started: str | None
    dry_run: bool
    prediction_log: int
    prediction_feedback: int
    redacted: int
    seconds: float


@dataclass(frozen=True)
class Horizon:
    """What may go: rows older than ``purge_before``; texts older than ``redact_before`` (None: keep)."""

    now: datetime
    purge_before: datetime
    redact_before: datetime | None
    canary_started: datetime | None  # an active canary protects everything from (its start - guard) on


@dataclass(frozen=True)
class RowsPurge:
    """What one purge did (or, ``dry_run``, would do): rows per table, texts redacted, seconds."""

    horizon: Horizon
    dry_run: bool
    prediction_log: int
    prediction_feedback: int
    redacted: int
    seconds: float

    def as_dict(self) -> RowsPurgeRecord:
        h = self.horizon
        return {"now": h.now.isoformat(), "purge_before": h.purge_before.isoformat(),
                "redact_before": h.redact_before.isoformat() if h.redact_before else None,
                "canary_started": h.canary_started.isoformat() if h.canary_started else None,
                "dry_run": self.dry_run, "prediction_log": self.prediction_log,
                "prediction_feedback": self.prediction_feedback, "redacted": self.redacted,
                "seconds": round(self.seconds, 3)}


# ------------------------------------------------------------------------------------- horizon
def active_canary_start(engine: Engine) -> datetime | None:
    """When the running canary started (the routing override in ``canary`` mode), else None."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(routing_override.c.config, routing_override.c.updated_at)
                           .where(routing_override.c.id == 1)).first()
    if row is None:
        return None
    try:
        mode = json.loads(row[0]).get("mode")
    except (ValueError, AttributeError):  # an unreadable override: assume the worst, a canary
        mode = "canary"
    return plain_utc(row[1]) if mode == "canary" else None


def horizon(settings: Settings, engine: Engine, *, now: datetime) -> Horizon:
    """The cut-offs for ``now`` (see the module docstring): retention, guard, a running canary."""
    now = plain_utc(now)
    guard = timedelta(hours=settings.retention_guard_hours)
    canary = active_canary_start(engine)
    protect = canary - guard if canary else None
    purge_before = now - timedelta(days=settings.retention_days) - guard
    redact_before = (now - timedelta(days=settings.redact_after_days) - guard
                     if settings.redact_after_days > 0 else None)
    if protect is not None:
        purge_before = min(purge_before, protect)
        redact_before = min(redact_before, protect) if redact_before else None
    return Horizon(now=now, purge_before=purge_before, redact_before=redact_before, canary_started=canary)


# --------------------------------------------------------------------------------------- purge
def purge_rows(settings: Settings, engine: Engine, *, now: datetime, dry_run: bool = False) -> RowsPurge:
    """Purge feedback and prediction rows past the horizon, then redact old texts (if configured)."""
    started = time.monotonic()
    h = horizon(settings, engine, now=now)
    log.info("retention: purging rows before %s (retention %d days + %d h guard%s)%s", h.purge_before.isoformat(),
             settings.retention_days, settings.retention_guard_hours,
             f"; canary running since {h.canary_started.isoformat()}" if h.canary_started else "",
             " [dry run]" if dry_run else "")
    batch = settings.purge_batch_size
    fb = purge_feedback(engine, before=h.purge_before, batch_size=batch, dry_run=dry_run)
    pl = purge_predictions(engine, before=h.purge_before, batch_size=batch, dry_run=dry_run)
    red = (redact_texts(engine, before=h.redact_before, batch_size=batch, dry_run=dry_run)
           if h.redact_before else 0)
    result = RowsPurge(horizon=h, dry_run=dry_run, prediction_log=pl, prediction_feedback=fb, redacted=red,
                       seconds=time.monotonic() - started)
    log.info("retention: %s %d prediction_log row(s), %d prediction_feedback row(s), redacted %d text(s) in %.1f s",
             "would purge" if dry_run else "purged", pl, fb, red, result.seconds)
    return result


def purge_feedback(engine: Engine, *, before: datetime, batch_size: int, dry_run: bool = False) -> int:
    """Delete feedback recorded before ``before``, ``batch_size`` keys per transaction; the count."""
    old = feedback.c.created_at < before
    return _in_batches(engine, "prediction_feedback", feedback.c.request_id, old, batch_size, dry_run)


def purge_predictions(engine: Engine, *, before: datetime, batch_size: int, dry_run: bool = False) -> int:
    """Delete predictions made before ``before`` whose feedback (if any) is older too; the count."""
    recent_label = sa.exists().where(feedback.c.request_id == predictions.c.request_id,
                                     feedback.c.created_at >= before)
    old = sa.and_(predictions.c.created_at < before, ~recent_label)
    return _in_batches(engine, "prediction_log", predictions.c.id, old, batch_size, dry_run)


def _in_batches(engine: Engine, name: str, key: sa.Column[Any], condition: sa.ColumnElement[bool], batch_size: int,
                dry_run: bool) -> int:
    table = key.table
    if dry_run:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(condition)).scalar_one())
    total, chunk, last = 0, 0, None
    while True:
        query = sa.select(key).where(condition).order_by(key).limit(batch_size)
        if last is not None:  # keys only grow: never read the same (kept) rows twice
            query = query.where(key > last)
        with engine.begin() as conn:
            keys = conn.execute(query).scalars().all()
            if not keys:
                break
            # the condition again: a row that became needed since the read (feedback came) stays
            total += conn.execute(sa.delete(table).where(key.in_(keys), condition)).rowcount
        chunk, last = chunk + 1, keys[-1]
        log.info("retention: %s: %d row(s) purged so far (%d batch(es))", name, total, chunk)
        if len(keys) < batch_size:
            break
    return total


# -------------------------------------------------------------------------------------- redact
def redact_texts(engine: Engine, *, before: datetime, batch_size: int, dry_run: bool = False,
                 redactor: Callable[[str], str] = redact) -> int:
    """Replace e-mails, card and phone numbers in texts logged before ``before``; the rows changed.

    Only texts holding an ``@`` or a digit are read back (a redacted text holds neither, unless
    it has other digits, e.g. prices); chunks of ``batch_size`` by id, one transaction each.
    """
    maybe = sa.or_(*(predictions.c.text.contains(marker, autoescape=True) for marker in _PII_MARKERS))
    condition = sa.and_(predictions.c.created_at < before, maybe)
    changed, last = 0, None
    while True:
        query = (sa.select(predictions.c.id, predictions.c.text).where(condition)
                 .order_by(predictions.c.id).limit(batch_size))
        if last is not None:
            query = query.where(predictions.c.id > last)
        with engine.begin() as conn:
            rows = conn.execute(query).all()
            updates = [{"b_id": row[0], "b_text": new} for row in rows if (new := redactor(row[1])) != row[1]]
            if updates and not dry_run:
                conn.execute(predictions.update().where(predictions.c.id == sa.bindparam("b_id"))
                             .values(text=sa.bindparam("b_text")), updates)
        changed += len(updates)
        if rows:
            last = rows[-1][0]
            log.info("retention: prediction_log: %d text(s) %sredacted so far", changed,
                     "would be " if dry_run else "")
        if len(rows) < batch_size:
            return changed


def plain_utc(value: datetime) -> datetime:
    """A plain aware UTC datetime (not pendulum's: ``DateTime - timedelta`` loses its zone there)."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                    value.microsecond, tzinfo=UTC)


def purge_database(settings: Settings, *, now: datetime, dry_run: bool = False) -> RowsPurge:
    """:func:`purge_rows` on the settings' database (refused when it is not migrated to head)."""
    from autoretrain.db.engine import database_url
    from autoretrain.db.migrate import checked_engine

    engine = checked_engine(database_url(settings))
    try:
        return purge_rows(settings, engine, now=now, dry_run=dry_run)
    finally:
        engine.dispose()
