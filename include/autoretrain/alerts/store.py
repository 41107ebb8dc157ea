"""The alert record: one row per alert decision (sent, logged, failed, suppressed), SQLAlchemy Core.

The table ``alert_log`` (:mod:`autoretrain.db.schema`) lives in the database of
``Settings.database_url`` (empty: SQLite under ``state_dir``), next to the prediction log.
The cool-down is a claim on the ``alert_cooldown`` row of the ``dedup_key`` (:meth:`AlertStore.claim`),
taken by one conditional write before anything is sent: of N workers sending the same alert at
once exactly one wins, the others record ``suppressed``. A failed send gives the claim back
(:meth:`AlertStore.release`), so the next attempt is not held back by an alert nobody received.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa

from autoretrain.db.migrate import checked_engine
from autoretrain.db.schema import alert_cooldown, alert_log

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


@dataclass(frozen=True)
class Claim:
    """The outcome of :meth:`AlertStore.claim`: ``granted`` to the one sender that may deliver."""

    granted: bool
    dedup_key: str
    claim_id: str | None = None  # the winner's id (to release it)
    held_since: datetime | None = None  # not granted: when the alert was claimed (delivered) last
    previous_at: datetime | None = None  # granted: the claim it replaced (None: the key was new)
    previous_id: str | None = None


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

    def claim(self, dedup_key: str, *, now: datetime, cooldown: timedelta) -> Claim:
        """Claim the right to deliver ``dedup_key`` at ``now``: granted to one caller per cool-down.

        One conditional write decides, so concurrent callers (threads, processes, hosts) cannot
        both win: an ``INSERT ... ON CONFLICT DO NOTHING`` for a key never claimed, else an
        ``UPDATE`` that only matches when the last claim is at least ``cooldown`` old (and is still
        the one read, so :meth:`release` can put it back). ``cooldown <= 0`` always grants.
        """
        key, mine, now = dedup_key[:500], str(uuid.uuid4()), _utc(now)
        with self.engine.begin() as conn:
            row = None
            for _ in range(2):  # a claim released (deleted) between our insert and our read: insert again
                inserted = conn.execute(_insert_ignore(conn, {"dedup_key": key, "claimed_at": now,
                                                              "claim_id": mine}))
                if inserted.first() is not None:  # RETURNING: rowcount of ON CONFLICT is not portable
                    return Claim(True, key, claim_id=mine)
                row = conn.execute(sa.select(alert_cooldown.c.claimed_at, alert_cooldown.c.claim_id)
                                   .where(alert_cooldown.c.dedup_key == key)).first()
                if row is not None:
                    break
            if row is None:
                return Claim(False, key)
            held_at, held_id = _utc(row[0]), row[1]
            condition = [alert_cooldown.c.dedup_key == key, alert_cooldown.c.claim_id == held_id]
            if cooldown > timedelta(0):
                condition.append(alert_cooldown.c.claimed_at <= now - cooldown)
            updated = conn.execute(alert_cooldown.update().where(*condition)
                                   .values(claimed_at=now, claim_id=mine)).rowcount
        if updated == 1:
            return Claim(True, key, claim_id=mine, previous_at=held_at, previous_id=held_id)
        return Claim(False, key, held_since=held_at)

    def release(self, claim: Claim) -> bool:
        """Give a granted claim back (its send failed): the previous claim is restored, if still ours."""
        if not claim.granted or claim.claim_id is None:
            return False
        mine = (alert_cooldown.c.dedup_key == claim.dedup_key) & (alert_cooldown.c.claim_id == claim.claim_id)
        with self.engine.begin() as conn:
            if claim.previous_at is None or claim.previous_id is None:
                return bool(conn.execute(alert_cooldown.delete().where(mine)).rowcount)
            return bool(conn.execute(alert_cooldown.update().where(mine).values(
                claimed_at=claim.previous_at, claim_id=claim.previous_id)).rowcount)

    def records(self, *, dedup_key: str | None = None, limit: int = 100) -> list[AlertRecord]:
        """The newest rows first (optionally for one ``dedup_key``)."""
        query = sa.select(alert_log).order_by(alert_log.c.id.desc()).limit(limit)
        if dedup_key is not None:
            query = query.where(alert_log.c.dedup_key == dedup_key)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [AlertRecord(**{**dict(r), "created_at": _utc(r["created_at"])}) for r in rows]


def _insert_ignore(conn: sa.Connection, values: dict[str, Any]) -> Any:
    """``INSERT ... ON CONFLICT (dedup_key) DO NOTHING`` on Postgres and SQLite."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return (dialect.insert(alert_cooldown).values(**values).on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(alert_cooldown.c.claim_id))


def _utc(value: Any) -> datetime:
    # SQLite hands back naive datetimes; every time written here is UTC
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
