"""
### retrain_compare_promote

Train a challenger on the base dataset plus the labelled traffic of the prediction log, compare it
with the champion on the same hold-out (base hold-out + recent labelled traffic), and roll it out.

Started by new labelled data (the `autoretrain_labelled_feedback` Asset), by the monitoring DAG's
drift path (its reasons in the conf), or by hand (Params: reason, families, force, dry run,
canary minutes).

`trigger` → `load` (base + feedback) → `validate` → `train` (mapped) → `select` → `evaluate` →
`register` (model card) → `compare` (gates, improvement, McNemar / paired bootstrap) →
`reject` | `dry_run` | `no_canary` → `promote` | `start_canary` → `canary` (sensor over the window:
error rate, score shift, agreement with the champion, accuracy where labelled) → `canary_verdict` →
`promote` (champion moved, old one kept as `previous`, routing full) or `withdraw` (routing full on
the champion, challenger removed). Every alias move is recorded in the `alias_audit` table;
promotion, rejection and rollback send an alert. `canary_minutes=0` promotes without a canary.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import TriggerRule, dag, task

from autoretrain.airflow.assets import LABELLED_FEEDBACK
from autoretrain.airflow.deadlines import run_deadline
from autoretrain.airflow.defaults import TAGS_BASE, default_args
from autoretrain.airflow.params import retrain_params
from autoretrain.airflow.promotion import (
    CanaryBranchOperator,
    CanarySensor,
    CompareOperator,
    PromoteOperator,
    RejectOperator,
    StartCanaryOperator,
    WithdrawOperator,
    trigger_reason,
)
from autoretrain.airflow.training import training_chain
from autoretrain.config import load_settings

#: how often the canary sensor looks; a property of the DAG, so read where the DAG is parsed
CANARY_POKE_SECONDS = load_settings().canary_poke_seconds


@dag(
    dag_id=Path(__file__).stem,
    schedule=LABELLED_FEEDBACK,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=[*TAGS_BASE, "training", "promotion"],
    default_args=default_args(),
    deadline=run_deadline(Path(__file__).stem),
    params=retrain_params(),
    doc_md=__doc__,
)
def retrain_compare_promote() -> None:
    @task
    def trigger(**context) -> dict:
        """Why this run started (Asset event, drift, or a person): recorded with the alias moves."""
        return trigger_reason(context)

    @task
    def dry_run(**context) -> dict:
        """Dry run: the decision is in the logs, the model card and comparison.json; nothing moved."""
        return context["ti"].xcom_pull(task_ids="compare", key="decision")

    chain = training_chain(with_feedback=True)
    trigger() >> chain.load
    compare = CompareOperator(task_id="compare", loaded=chain.load.output, registered=chain.register.output,
                              dry_run_task_id="dry_run", reject_task_id="reject", promote_task_id="no_canary",
                              canary_task_id="start_canary")
    start = StartCanaryOperator(task_id="start_canary", decision_task_id="compare")
    canary = CanarySensor(task_id="canary", start_task_id="start_canary", poke_interval=CANARY_POKE_SECONDS)
    verdict = CanaryBranchOperator(task_id="canary_verdict", canary_task_id="canary", passed_task_id="promote",
                                   failed_task_id="withdraw")
    no_canary = EmptyOperator(task_id="no_canary")
    promote = PromoteOperator(task_id="promote", decision_task_id="compare", canary_task_id="canary",
                              trigger_task_id="trigger", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    withdraw = WithdrawOperator(task_id="withdraw", decision_task_id="compare", canary_task_id="canary")
    compare >> [RejectOperator(task_id="reject", decision_task_id="compare"), dry_run(), no_canary, start]
    start >> canary >> verdict >> [promote, withdraw]
    no_canary >> promote


retrain_compare_promote()
