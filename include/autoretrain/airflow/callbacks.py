"""The failure callback of every task (wired through ``default_args``): one place for failure alerts.

A rejected dataset (:class:`~autoretrain.airflow.errors.DatasetRejected`, raised by the
validation gate of any DAG) becomes a ``validation_failed`` alert listing the failed checks; any
other failure a ``task_failure`` alert. Both go through :func:`autoretrain.airflow.alerting.send_alert`
(Slack provider notifiers, severity routing, cool-down, alert table). A callback never raises.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("autoretrain.alerts")


def on_task_failure(context: dict[str, Any]) -> None:
    """Alert that a task failed for good (after its retries)."""
    from autoretrain.airflow.alerting import send_alert
    from autoretrain.airflow.context import airflow_url, context_ids, settings_for
    from autoretrain.airflow.errors import DatasetRejected
    from autoretrain.alerts.messages import task_failure_alert, validation_failure_alert
    from autoretrain.config import RunOverrideRefused, SettingsError, load_settings, scrub

    ids = context_ids(context)
    error = context.get("exception")
    if isinstance(error, DatasetRejected):
        alert = validation_failure_alert(source=error.summary.get("source", "?"),
                                         failures=error.summary.get("failures", []),
                                         run_id=str(ids["run_id"]), airflow_url=airflow_url(context))
    else:
        ti = context.get("ti") or context.get("task_instance")
        alert = task_failure_alert(dag_id=ids["dag_id"] or "?", task_id=ids["task_id"] or "?",
                                   run_id=str(ids["run_id"]), try_number=getattr(ti, "try_number", None),
                                   error=str(error or ""), airflow_url=airflow_url(context),
                                   log_url=getattr(ti, "log_url", None))
    try:
        settings = settings_for(context)
    except RunOverrideRefused:  # a refused conf (the likely failure itself): alert with the worker's settings
        settings = load_settings()
    except SettingsError as err:  # the alert must still reach someone: embedded defaults, log only
        log.error("settings unreadable (%s); alert logged only:\n%s", scrub(str(err), ()), scrub(alert.text, ()))
        return
    send_alert(alert, settings, context=context)
