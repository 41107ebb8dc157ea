"""The alert record: one row per alert decision (sent, logged, failed, suppressed), SQLAlchemy Core.

The table ``alert_log`` (:mod:`autoretrain.db.schema`) lives in the database of
``Settings.database_url`` (empty: SQLite under ``state_dir``), next to the prediction log.
The cool-down reads it: the same ``dedup_key`` delivered (``sent`` or ``logged``) within the
cool-down is recorded as ``suppressed`` instead of being repeated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa

from autoretrain.db.migrate import checked_engine
from autoretrain.db.schema import alert_log

log = logging.getLogger(__name__)

SENT: Final = "sent"
LOGGED: Final = "logged"
FAILED: Final = "failed"
SUPPRESSED: Final = "suppressed"
STATUSES = (SENT, LOGGED, FAILED, SUPPRESSED)
#: statuses that count as "people were told" for the cool-down (a failed send is retried next time)
DELIVERED = (SENT, LOGGED)


@dataclass(frozen=True)
class AlertRecord:
    """One row of the alert table."""

    id: int
    created_at: datetime
    kind: str
    severity: str
    dedup_key: str
    status: str
    transport: str
    channel: str | None
    title: str
    message: str
    error: str | None
    dag_id: str | None
    run_id: str | None
    task_id: str | None


class AlertStore:
    """Record alerts and answer "when was this alert last delivered?"."""

    def __init__(self, url: str) -> None:
        """Open the database at ``url``; SchemaOutOfDate when it is not migrated to head."""
        self.url = url
        self.engine = checked_engine(url)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> AlertStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, *, created_at: datetime, kind: str, severity: str, dedup_key: str, status: str,
               transport: str, title: str, message: str, channel: str | None = None,
               error: str | None = None, dag_id: str | None = None, run_id: str | None = None,
               task_id: str | None = None) -> int:
        """Insert one alert row; returns its id."""
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {STATUSES}")
        values = {"created_at": _utc(created_at), "kind": kind, "severity": severity,
                  "dedup_key": dedup_key[:500], "status": status, "transport": transport,
                  "channel": channel, "title": title[:500], "message": message, "error": error,
                  "dag_id": dag_id, "run_id": run_id, "task_id": task_id}
        with self.engine.begin() as conn:
            key = conn.execute(alert_log.insert().values(**values)).inserted_primary_key
        if key is None:  # SQLAlchemy returns None only for a statement that is not an INSERT
            raise RuntimeError("the alert_log insert returned no primary key")
        return int(key[0])

    def last_delivered(self, dedup_key: str) -> datetime | None:
        """When an alert with ``dedup_key`` was last sent or logged (None: never)."""
        query = (sa.select(sa.func.max(alert_log.c.created_at))
                 .where(alert_log.c.dedup_key == dedup_key[:500], alert_log.c.status.in_(DELIVERED)))
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return _utc(value) if value is not None else None

    def records(self, *, dedup_key: str | None = None, limit: int = 100) -> list[AlertRecord]:
        """The newest rows first (optionally for one ``dedup_key``)."""
        query = sa.select(alert_log).order_by(alert_log.c.id.desc()).limit(limit)
        if dedup_key is not None:
            query = query.where(alert_log.c.dedup_key == dedup_key)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [AlertRecord(**{**dict(r), "created_at": _utc(r["created_at"])}) for r in rows]


def _utc(value: Any) -> datetime:
    # SQLite hands back naive datetimes; every time written here is UTC
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
