"""
### training

Weekly (Sunday 02:00 UTC) and on demand: train several scikit-learn families on TF-IDF features,
track everything in MLflow, register the best, and give it an alias.

`load` → `validate` (blocking checks, de-duplication, stratified split) → `train` (mapped over the
families) → `select` (best cross-validated F1, tie-break MCC) → `evaluate` (hold-out metrics and
plots) → `register` (with the artifact's SHA-256) → `gate` → `alias` or `gate_failed`. `alias` makes
the version `champion` when there is none (the first champion gets only the absolute gates);
otherwise it gets no alias here and `needs_rollout` → `rollout` hands it to `retrain_compare_promote`
(conf `{"version": "N"}`), which compares it with the champion, runs the canary and the approval,
and sets `challenger` itself when its run starts: one rollout at a time, so a version trained during
a canary waits and never moves `challenger` under it.

Trigger with the form to override settings for one run; a field left empty keeps the worker's
setting (`autoretrain.json` < `AUTORETRAIN_*` environment), as a scheduled run does.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import XComArg, dag

from autoretrain.airflow.deadlines import run_deadline
from autoretrain.airflow.defaults import TAGS_BASE, default_args
from autoretrain.airflow.params import training_params
from autoretrain.airflow.training import (
    AssignAliasOperator,
    GateBranchOperator,
    ReportGateFailureOperator,
    rollout_handoff,
    training_chain,
)


@dag(
    dag_id=Path(__file__).stem,
    schedule="0 2 * * 0",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=[*TAGS_BASE, "training"],
    default_args=default_args(),
    deadline=run_deadline(Path(__file__).stem),
    params=training_params(),
    doc_md=__doc__,
)
def training() -> None:
    chain = training_chain()
    gate = GateBranchOperator(task_id="gate", registered=chain.register.output, metrics=chain.evaluate.output,
                              passed_task_id="alias", failed_task_id="gate_failed")
    alias = AssignAliasOperator(task_id="alias", registered=chain.register.output)
    gate >> [alias, ReportGateFailureOperator(task_id="gate_failed", registered=chain.register.output,
                                              gate=XComArg(gate, key="gate"))]
    rollout_handoff(alias)


training()
