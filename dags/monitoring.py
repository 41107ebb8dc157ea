"""
### monitoring

Every 6 hours: measure the last window of production traffic against the champion and decide.

`measure` reads the served predictions of the data interval (and any feedback labels) from the
prediction log, runs the drift checks (vocabulary, TF-IDF shift, prediction PSI/KS, length and
character classes, domain classifier, accuracy/F1/ECE on feedback), logs them with an Evidently
report to the MLflow experiment `autoretrain-monitoring`, upserts the window into
`drift_windows` and updates the `autoretrain_monitoring` asset. `decide` applies the retrain rule
(any check over its threshold, or feedback accuracy under `accuracy_floor`, in
`drift_consecutive_windows` windows in a row) and branches three ways:

* `drift_detected` (a `DriftSensor` on the recorded decision): the drift alert is sent and
  `retrain_compare_promote` is triggered with the reasons;
* `awaiting_confirmation`: this window breached, but fewer windows in a row than required: the
  next run decides (nothing is retrained on one noisy window);
* `no_action`: nothing breached.

Whatever the decision, `regression_alert` sends the critical regression alert when the window's
feedback shows the champion regressed (accuracy under `accuracy_floor`, or F1 down from its own
evaluation by more than the `feedback_f1` threshold), saying what was decided; otherwise it is
skipped.

Alongside, `reconcile_aliases` compares MLflow's `champion`/`challenger`/`previous` with the alias
audit: it finishes alias moves that crashed half-way, and a move made outside AutoRetrain is
recorded as `external` and raised as a critical alert.

Backfills measure past windows.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import CronDataIntervalTimetable, dag
from airflow.sdk.definitions.xcom_arg import XComArg

from autoretrain.airflow.assets import MONITORING_WINDOW
from autoretrain.airflow.audit import ReconcileAliasesOperator
from autoretrain.airflow.deadlines import run_deadline
from autoretrain.airflow.defaults import TAGS_BASE, default_args
from autoretrain.airflow.monitoring import (
    DecideRetrainOperator,
    DriftAlertOperator,
    DriftSensor,
    MeasureDriftOperator,
    RecordActionOperator,
    RegressionAlertOperator,
)
from autoretrain.airflow.params import monitoring_params


@dag(
    dag_id=Path(__file__).stem,
    schedule=CronDataIntervalTimetable("0 */6 * * *", timezone="UTC"),  # run at 06:00 covers 00:00-06:00
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=[*TAGS_BASE, "monitoring", "drift"],
    default_args=default_args(),
    deadline=run_deadline(Path(__file__).stem),
    params=monitoring_params(),
    doc_md=__doc__,
)
def monitoring() -> None:
    measure = MeasureDriftOperator(task_id="measure", outlets=[MONITORING_WINDOW])
    decide = DecideRetrainOperator(task_id="decide", retrain_task_id="drift_detected",
                                   waiting_task_id="awaiting_confirmation", quiet_task_id="no_action",
                                   always_task_ids=("regression_alert",))
    sensor = DriftSensor(task_id="drift_detected")
    alert = DriftAlertOperator(task_id="drift_alert")
    trigger = TriggerDagRunOperator(
        task_id="trigger_retrain", trigger_dag_id="retrain_compare_promote",
        conf={"reason": "drift detected by monitoring", "drift_reasons": XComArg(sensor),
              "monitoring_run_id": "{{ run_id }}"})
    measure >> decide >> [sensor, RecordActionOperator(task_id="awaiting_confirmation", action="awaiting confirmation"),
                          RecordActionOperator(task_id="no_action", action="no action"),
                          RegressionAlertOperator(task_id="regression_alert", decide_task_id="decide")]
    sensor >> [alert, trigger]
    trigger >> RecordActionOperator(task_id="record_retrain", action="retrain triggered")
    ReconcileAliasesOperator(task_id="reconcile_aliases")


monitoring()
