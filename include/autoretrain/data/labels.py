"""Feedback that triggers: enough new labels since the last ``autoretrain_labelled_feedback`` event start a retrain.

:func:`count_new_labels` counts the labelled traffic of the prediction log in ``(since, until]``;
:func:`feedback_event` (pure) decides whether that is worth an Asset event and returns its ``extra``
(the window counted, so the next count starts where this one ended). The ``feedback_trigger`` DAG
emits the event; ``retrain_compare_promote`` is scheduled on the Asset and records reason "feedback".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from autoretrain.config import Settings
from autoretrain.db.engine import database_url
from autoretrain.db.migrate import checked_engine
from autoretrain.serving import prediction_log


def count_new_labels(settings: Settings, *, since: datetime | None, until: datetime) -> int:
    """Labels of ``settings.model_name``'s served predictions recorded in ``(since, until]``.

    ``since=None`` (no event yet): the ``retention_days`` before ``until``, as far back as labels are kept.
    """
    engine = checked_engine(database_url(settings))
    try:
        return prediction_log.count_labelled(engine, model_name=settings.model_name, until=until,
                                             since=since or until - timedelta(days=settings.retention_days))
    finally:
        engine.dispose()


def feedback_event(new_labels: int, *, min_labels: int, since: datetime | None, until: datetime,
                   model_name: str) -> dict[str, Any] | None:
    """The Asset event's ``extra`` when ``new_labels`` reached ``min_labels``, else None (no event, no retrain)."""
    if new_labels < min_labels:
        return None
    return {"model_name": model_name, "new_labels": int(new_labels), "min_labels": int(min_labels),
            "since": since.isoformat() if since else None, "until": until.isoformat()}
