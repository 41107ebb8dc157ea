"""
### feedback_trigger

Every 10 minutes: count the labels that came in through the prediction service (`POST /feedback`)
since the last `autoretrain_labelled_feedback` event. Once there are `feedback_retrain_min_labels`
of them, `count_labels` emits that Asset event (its extra: `new_labels`, `since`, `until`) and
`retrain_compare_promote` starts with reason "feedback"; with fewer, the task is skipped and nothing
starts. The next count begins where the last event's window ended, so no label counts twice.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag

from autoretrain.airflow.deadlines import run_deadline
from autoretrain.airflow.defaults import TAGS_BASE, default_args
from autoretrain.airflow.feedback import FeedbackTriggerOperator


@dag(
    dag_id=Path(__file__).stem,
    schedule=CronDataIntervalTimetable("*/10 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=[*TAGS_BASE, "feedback"],
    default_args=default_args(),
    deadline=run_deadline(Path(__file__).stem),
    doc_md=__doc__,
)
def feedback_trigger() -> None:
    FeedbackTriggerOperator(task_id="count_labels")


feedback_trigger()
