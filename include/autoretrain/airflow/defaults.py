"""``default_args`` shared by every AutoRetrain DAG: owner, retries and the failure callback.

The callback (:func:`autoretrain.airflow.callbacks.on_task_failure`) is the one place failure
alerts come from: Slack through the provider's notifiers, the log, and the alert table.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from autoretrain.airflow.callbacks import on_task_failure

OWNER = "autoretrain"
TAGS_BASE = ["autoretrain"]


def default_args(**overrides: Any) -> dict[str, Any]:
    """Retries with back-off for transient faults (MLflow, S3, the database), and the failure alert."""
    args: dict[str, Any] = {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(seconds=20),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=5),
        "on_failure_callback": on_task_failure,
    }
    args.update(overrides)
    return args
