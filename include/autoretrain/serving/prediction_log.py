"""The prediction log, feedback and the routing override: their reads and writes, SQLAlchemy Core.

The tables are defined in :mod:`autoretrain.db.schema` (and created by ``autoretrain db upgrade``);
the same code runs on Postgres (production) and SQLite (the embedded default under ``state_dir``).
Predictions reach the database through :class:`autoretrain.serving.log_writer.PredictionLogWriter`
(a local spool first, then batches of :func:`insert_predictions`), so no request waits for the
database and no answered row is lost.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from autoretrain.db.schema import feedback, predictions, routing_override

log = logging.getLogger(__name__)


def clean(value: Any) -> Any:
    """Postgres text cannot hold NUL: keep the row, replace the character."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


# ------------------------------------------------------------------------------- prediction log
def insert_predictions(conn: sa.Connection, rows: list[dict[str, Any]], *, dedup: bool) -> int:
    """Insert ``rows``; with ``dedup``, skip those whose (request_id, role) is already there. Returns how many."""
    if dedup and rows:
        ids = list({r["request_id"] for r in rows})
        query = sa.select(predictions.c.request_id, predictions.c.role).where(predictions.c.request_id.in_(ids))
        have = set(conn.execute(query).tuples())
        rows = [r for r in rows if (r["request_id"], r["role"]) not in have]
    if rows:
        conn.execute(predictions.insert(), rows)
    return len(rows)


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
    values = {"request_id": request_id, "label": label, "source": clean(source), "created_at": at}
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


def count_labelled(engine: Engine, *, model_name: str, until: datetime, since: datetime | None = None) -> int:
    """How many served predictions of ``model_name`` got a feedback label in ``(since, until]``."""
    query = (sa.select(sa.func.count(sa.distinct(feedback.c.request_id)))
             .join(predictions, feedback.c.request_id == predictions.c.request_id)
             .where(predictions.c.role == "served", predictions.c.model_name == model_name,
                    feedback.c.created_at <= until))
    if since is not None:
        query = query.where(feedback.c.created_at > since)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


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
