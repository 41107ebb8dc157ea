"""
### maintenance

Every day: stop keeping what AutoRetrain no longer needs.

* `purge_rows`: prediction-log and feedback rows older than `retention_days` (plus
  `retention_guard_hours`) are deleted in batches of `purge_batch_size`, never a row a running
  canary reads (everything from its start on stays) nor a prediction whose feedback is still
  within retention (challenger training joins them). With `redact_after_days` > 0, older texts
  have e-mail addresses, card and phone numbers replaced.
* `purge_artifacts`: dataset snapshots beyond the newest `snapshot_keep` are deleted unless a
  registered model version was trained on them; validation reports older than `retention_days`.

`dry_run` counts without changing anything. `autoretrain maintenance purge [--dry-run]` does the
same from the shell.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag

from autoretrain.airflow.deadlines import run_deadline
from autoretrain.airflow.defaults import TAGS_BASE, default_args
from autoretrain.airflow.maintenance import PurgeArtifactsOperator, PurgeRowsOperator
from autoretrain.airflow.params import maintenance_params


@dag(
    dag_id=Path(__file__).stem,
    schedule=CronDataIntervalTimetable("30 3 * * *", timezone="UTC"),  # daily, after the night's trainings
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=[*TAGS_BASE, "maintenance", "retention"],
    default_args=default_args(),
    deadline=run_deadline(Path(__file__).stem),
    params=maintenance_params(),
    doc_md=__doc__,
)
def maintenance() -> None:
    PurgeRowsOperator(task_id="purge_rows")
    PurgeArtifactsOperator(task_id="purge_artifacts")


maintenance()
