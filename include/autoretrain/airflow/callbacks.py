"""Failure callbacks, wired into every DAG through ``default_args`` (one place to change them)."""

from __future__ import annotations

import logging
from typing import Any

from autoretrain.alerts import failure_message

log = logging.getLogger("autoretrain.alerts")


def on_task_failure(context: dict[str, Any]) -> None:
    """Report a failed task instance (logged; the Slack issue routes it to Slack as well)."""
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    message = failure_message(
        dag_id=getattr(dag, "dag_id", "?"), task_id=getattr(ti, "task_id", "?"),
        run_id=str(context.get("run_id", "?")), try_number=getattr(ti, "try_number", None),
        error=str(context.get("exception") or ""), log_url=getattr(ti, "log_url", None))
    log.error("%s", message)
