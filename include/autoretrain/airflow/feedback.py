"""The operator of the ``feedback_trigger`` DAG: thin over :mod:`autoretrain.data.labels`.

It reads the last ``autoretrain_labelled_feedback`` event (its ``extra["until"]`` is where the last
count ended), counts the labels that came in since, and either emits the Asset event (the task
succeeds with the event's ``extra``: ``new_labels``, ``since``, ``until``) or skips (too few: no
event, no retrain). ``retrain_compare_promote`` is scheduled on that Asset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowSkipException

from autoretrain.airflow.assets import LABELLED_FEEDBACK
from autoretrain.airflow.context import run_time, settings_for, utc
from autoretrain.airflow.errors import maps_errors


def last_counted(context: Context) -> datetime | None:
    """Where the previous count ended: the newest event's ``extra["until"]``, else its timestamp (None: no event).

    An event posted by someone else (REST API) may carry anything in ``extra``: a value that is not an
    ISO time falls back to the event's own timestamp.
    """
    try:
        event = context["inlet_events"][LABELLED_FEEDBACK][-1]
    except (KeyError, IndexError):
        return None
    until = (getattr(event, "extra", None) or {}).get("until")
    try:
        return utc(datetime.fromisoformat(str(until))) if until else utc(event.timestamp)
    except ValueError:
        return utc(event.timestamp)


class FeedbackTriggerOperator(BaseOperator):
    """Emits ``autoretrain_labelled_feedback`` once ``feedback_retrain_min_labels`` new labels came in; else skips."""

    ui_color = "#e8f4fd"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(inlets=[LABELLED_FEEDBACK], outlets=[LABELLED_FEEDBACK], **kwargs)

    @maps_errors
    def execute(self, context: Context) -> dict[str, Any]:
        from autoretrain.data.labels import count_new_labels, feedback_event

        settings = settings_for(context)
        since, until = last_counted(context), run_time(context)
        count = count_new_labels(settings, since=since, until=until)
        extra = feedback_event(count, min_labels=settings.feedback_retrain_min_labels, since=since, until=until,
                               model_name=settings.model_name)
        if extra is None:
            raise AirflowSkipException(f"{count} new label(s) since {since.isoformat() if since else 'ever'}: fewer "
                                       f"than feedback_retrain_min_labels={settings.feedback_retrain_min_labels}, "
                                       "no retrain")
        self.log.info("%d new labels since %s: emitting %s", count, extra["since"], LABELLED_FEEDBACK.name)
        context["outlet_events"][LABELLED_FEEDBACK].extra = extra
        return extra
