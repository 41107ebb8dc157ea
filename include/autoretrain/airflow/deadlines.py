"""Airflow Deadline Alerts on every DAG: a run not finished in time is announced like any other alert.

Each DAG file passes ``deadline=run_deadline(<dag_id>)``: a :class:`DeadlineAlert` counted from
when the run was queued (a scheduled run is queued when its data interval closes, so "monitoring
still running 30 minutes after its window closed" is ``monitoring=30m``), with the duration from
the setting ``run_deadlines`` (read when the DAG is parsed: a deadline is part of the serialized
DAG). When the deadline passes, the scheduler hands :func:`deadline_missed` to the triggerer, which
builds the ``deadline`` alert and sends it through :func:`autoretrain.airflow.alerting.send_alert`:
the same notifiers (Slack, e-mail), cool-down and alert table as every other alert.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.definitions.deadline import AsyncCallback, DeadlineAlert, DeadlineReference

if TYPE_CHECKING:
    from autoretrain.airflow.alerting import DeliveryRecord

from autoretrain.config import load_settings

log = logging.getLogger("autoretrain.alerts")


def run_deadline(dag_id: str) -> DeadlineAlert | None:
    """The Deadline Alert of ``dag_id`` from ``run_deadlines`` (None: that DAG has none)."""
    settings = load_settings()
    seconds = settings.deadlines().get(dag_id)
    if not seconds:
        return None
    if dag_id == "retrain_compare_promote" and settings.promotion_mode == "approve":
        seconds += settings.approval_timeout_hours * 3600  # a run may wait that long for a person (ADR 0009)
    limit = f"{describe(seconds)} after it was queued"
    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=timedelta(seconds=seconds),
                         callback=AsyncCallback(deadline_missed, kwargs={"limit": limit}), name=f"{dag_id}: {limit}")


def describe(seconds: float) -> str:
    """``2 h``, ``30 min``, ``45 s``: a duration as the settings write it."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


async def deadline_missed(context: Mapping[str, Any], limit: str = "", **_: Any) -> str:
    """The Deadline Alert callback (runs in the triggerer): send the alert off the event loop.

    The return value becomes the callback's ``output`` (a text column of Airflow's ``callback``
    table): a dict there makes the triggerer fail to record the outcome, so it is one line of text.
    """
    delivery = await asyncio.to_thread(send_deadline_alert, context, limit=limit)
    return f"deadline alert {delivery['status']} ({delivery['transport']})"


def send_deadline_alert(context: Mapping[str, Any], *, limit: str) -> DeliveryRecord:
    """Build the ``deadline`` alert from the callback's context (the DAG run and the deadline) and send it."""
    from autoretrain.airflow.alerting import send_alert
    from autoretrain.airflow.context import airflow_base_url
    from autoretrain.alerts.messages import airflow_run_url, deadline_alert

    dag_run = context.get("dag_run") or {}
    dag_id, run_id = str(dag_run.get("dag_id") or "?"), str(dag_run.get("dag_run_id") or "?")
    deadline = (context.get("deadline") or {}).get("deadline_time")
    alert = deadline_alert(dag_id=dag_id, run_id=run_id, limit=limit, deadline_time=_when(deadline),
                           state=str(dag_run.get("state") or "unfinished"),
                           airflow_url=airflow_run_url(airflow_base_url(), dag_id, run_id))
    delivery = send_alert(alert, load_settings(), context={"dag_id": dag_id, "run_id": run_id})
    log.info("deadline alert for %s %s: %s", dag_id, run_id, delivery.status)
    return delivery.as_dict()


def _when(value: Any) -> str:
    """The deadline as ``2026-03-02 06:30:00 UTC`` (the callback may get a datetime or its ISO text)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        from autoretrain.airflow.context import utc

        return f"{utc(value):%Y-%m-%d %H:%M:%S} UTC"
    return "?"
