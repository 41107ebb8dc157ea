"""The alert record: one row per alert decision (sent, logged, failed, suppressed), SQLAlchemy Core.

Lives in the database of ``Settings.database_url`` (empty: SQLite under ``state_dir``), next to
the prediction service's tables but in its own module, so either can change without the other.
The cool-down reads it: the same ``dedup_key`` delivered (``sent`` or ``logged``) within the
cool-down is recorded as ``suppressed`` instead of being repeated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa

from autoretrain.config import Settings

log = logging.getLogger(__name__)

SENT: Final = "sent"
LOGGED: Final = "logged"
FAILED: Final = "failed"
SUPPRESSED: Final = "suppressed"
STATUSES = (SENT, LOGGED, FAILED, SUPPRESSED)
#: statuses that count as "people were told" for the cool-down (a failed send is retried next time)
DELIVERED = (SENT, LOGGED)

metadata = sa.MetaData()
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


def database_url(settings: Settings) -> str:
    """``settings.database_url``, or a SQLite file under ``state_dir`` (created on first use)."""
    if settings.database_url:
        return settings.database_url
    settings.state_path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.state_path / 'autoretrain.db'}"


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
        self.url = url
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        metadata.create_all(self.engine, checkfirst=True)

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
