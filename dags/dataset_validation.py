"""
### dataset_validation

Weekly (Monday 08:00 UTC) and on demand: check the configured dataset plus the feedback accumulated
up to the run's data interval end, keep a report, and snapshot the data that passed.

`validate` runs every check (schema, minimum samples, class balance, empty texts, duplicates,
train/test leakage; PII and freshness as warnings), writes `report.json` and `report.md` to the
artifact store under `reports/dataset_validation/<run_id>/`, and fails without retry when a
blocking check fails: the failure callback then sends a `validation_failed` alert naming each
failed check. `snapshot` stores the validated rows under their SHA-256 digest
(`snapshots/<digest>/`) and updates the `autoretrain_validated_dataset` asset. `stale_data_alert`
sends a warning when no new labelled data (feedback, or data never snapshotted before) arrived
within `freshness_days`, and is skipped otherwise.

Trigger with the form to check another source or with other limits for one run; a field left
empty keeps the worker's setting.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import dag

from autoretrain.airflow.dataset import SnapshotDatasetOperator, StaleDataAlertOperator, ValidateDatasetOperator
from autoretrain.airflow.deadlines import run_deadline
from autoretrain.airflow.defaults import TAGS_BASE, default_args
from autoretrain.airflow.params import validation_params

#: (settings, *, until) -> DataFrame; swap for the prediction service's feedback table when it exists
FEEDBACK_LOADER = "autoretrain.data.feedback:load_feedback"


@dag(
    dag_id=Path(__file__).stem,
    schedule="0 8 * * 1",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=[*TAGS_BASE, "data", "validation"],
    default_args=default_args(),
    deadline=run_deadline(Path(__file__).stem),
    params=validation_params(),
    doc_md=__doc__,
)
def dataset_validation() -> None:
    validate = ValidateDatasetOperator(task_id="validate", feedback_loader=FEEDBACK_LOADER)
    SnapshotDatasetOperator(task_id="snapshot", validated=validate.output, feedback_loader=FEEDBACK_LOADER)
    StaleDataAlertOperator(task_id="stale_data_alert", validated=validate.output)


dataset_validation()
