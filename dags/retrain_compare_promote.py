"""
### retrain_compare_promote

The one rollout path: every new version reaches `champion` through this DAG. Train a challenger on
the base dataset plus the labelled traffic of the prediction log (or take a version handed over by
the weekly `training` DAG or `autoretrain train`: Param `version`), compare it with the champion on
the same hold-out, and roll it out. One run at a time (`max_active_runs=1`): a version handed over
while a canary runs waits for that run to end, and nothing moves `challenger` under it.

Started by new labelled data (the `autoretrain_labelled_feedback` Asset, emitted by
`feedback_trigger` once `feedback_retrain_min_labels` new labels came in: reason "feedback"), by
the monitoring DAG's drift path (its reasons in the conf), by the weekly training (conf
`{"version": "N"}`), or by hand (Params: reason, version, families, force, dry run, canary minutes,
promotion mode).

`trigger` → `source` → (`load` (base + feedback) → `validate` → `train` (mapped) → `select` →
`evaluate` → `register` (model card)) | `handed_over` → `candidate` → `compare` (gates, improvement,
McNemar / paired bootstrap) → `reject` | `dry_run` | `no_canary` → `approval` | `start_canary` →
`canary` (sensor over the window: error rate, score shift, agreement with the champion, accuracy where
labelled) → `canary_verdict` → `approval` or `withdraw` (routing full on the champion, challenger
removed). `approval`: with `promotion_mode=auto` it passes straight to `promote`; with `approve` the
challenger alias goes on the version and the task waits in `awaiting_input` (no worker slot) for a
person (Browse → Required Actions, or the REST API's `hitlDetails`): Approve → `promote` (champion
moved, old one kept as `previous`, routing full, the approver recorded with the move), Reject or no
answer within `approval_timeout_hours` → `not_approved` (challenger removed with the reviewer's
comment in the alias audit; a timeout alerts). Every alias move is recorded in the `alias_audit`
table; promotion, rejection and rollback send an alert. `canary_minutes=0` skips the canary.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import dag, task

from autoretrain.airflow.approval import ApprovalGateOperator
from autoretrain.airflow.assets import LABELLED_FEEDBACK
from autoretrain.airflow.deadlines import run_deadline
from autoretrain.airflow.defaults import TAGS_BASE, default_args
from autoretrain.airflow.params import retrain_params
from autoretrain.airflow.promotion import (
    CanaryBranchOperator,
    CanarySensor,
    CandidateOperator,
    CompareOperator,
    HandedOverOperator,
    PromoteOperator,
    RejectOperator,
    SourceBranchOperator,
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
    source = SourceBranchOperator(task_id="source", train_task_id="load", handed_over_task_id="handed_over")
    handed_over = HandedOverOperator(task_id="handed_over")
    trigger() >> source >> [chain.load, handed_over]
    candidate = CandidateOperator(task_id="candidate", load_task_id="load", register_task_id="register",
                                  handed_over_task_id="handed_over")
    [chain.register, handed_over] >> candidate
    compare = CompareOperator(task_id="compare", candidate=candidate.output, dry_run_task_id="dry_run",
                              reject_task_id="reject", promote_task_id="no_canary", canary_task_id="start_canary")
    start = StartCanaryOperator(task_id="start_canary", decision_task_id="compare")
    canary = CanarySensor(task_id="canary", start_task_id="start_canary", poke_interval=CANARY_POKE_SECONDS)
    verdict = CanaryBranchOperator(task_id="canary_verdict", canary_task_id="canary", passed_task_id="approval",
                                   failed_task_id="withdraw")
    no_canary = EmptyOperator(task_id="no_canary")
    approval = ApprovalGateOperator(task_id="approval", decision_task_id="compare", canary_task_id="canary",
                                    promote_task_id="promote", refused_task_id="not_approved")
    promote = PromoteOperator(task_id="promote", decision_task_id="compare", canary_task_id="canary",
                              trigger_task_id="trigger", approval_task_id="approval")
    withdraw = WithdrawOperator(task_id="withdraw", decision_task_id="compare", canary_task_id="canary")
    not_approved = WithdrawOperator(task_id="not_approved", decision_task_id="compare", canary_task_id="canary",
                                    approval_task_id="approval")
    compare >> [RejectOperator(task_id="reject", decision_task_id="compare"), dry_run(), no_canary, start]
    start >> canary >> verdict >> [approval, withdraw]
    no_canary >> approval >> [promote, not_approved]


retrain_compare_promote()
