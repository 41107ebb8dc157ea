"""
### training

Weekly (Sunday 02:00 UTC) and on demand: train several scikit-learn families on TF-IDF features,
track everything in MLflow, register the best, and give it an alias.

`load` → `validate` (blocking checks, de-duplication, stratified split) → `train` (mapped over the
families) → `select` (best cross-validated F1, tie-break MCC) → `evaluate` (hold-out metrics and
plots) → `register` (with the artifact's SHA-256) → `gate` → `alias` (`champion` when there is none,
otherwise `challenger` for `retrain_compare_promote`) or `gate_failed`.

Trigger with config to override the settings of `autoretrain.json` for one run.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import XComArg, dag, task

from autoretrain.airflow.defaults import TAGS_BASE, default_args
from autoretrain.airflow.operators import (
    AssignAliasOperator,
    EvaluateModelOperator,
    GateBranchOperator,
    LoadDataOperator,
    RegisterModelOperator,
    ReportGateFailureOperator,
    SelectModelOperator,
    TrainFamilyOperator,
    ValidateDataOperator,
    resolve_families,
)
from autoretrain.airflow.params import training_params
from autoretrain.config import load_settings


@dag(
    dag_id=Path(__file__).stem,
    schedule="0 2 * * 0",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=[*TAGS_BASE, "training"],
    default_args=default_args(),
    params=training_params(load_settings()),
    doc_md=__doc__,
)
def training() -> None:
    @task
    def families(**context) -> list[str]:
        """The families to train in this run (Param ``families``)."""
        return resolve_families(context)

    load = LoadDataOperator(task_id="load")
    validate = ValidateDataOperator(task_id="validate", loaded=load.output)
    plan = families()
    validate >> plan
    train = TrainFamilyOperator.partial(task_id="train", loaded=load.output).expand(family=plan)
    select = SelectModelOperator(task_id="select", loaded=load.output, results=train.output)
    evaluate = EvaluateModelOperator(task_id="evaluate", loaded=load.output, selected=select.output)
    register = RegisterModelOperator(task_id="register", loaded=load.output, selected=select.output,
                                     metrics=evaluate.output)
    gate = GateBranchOperator(task_id="gate", registered=register.output, metrics=evaluate.output,
                              passed_task_id="alias", failed_task_id="gate_failed")
    gate >> [AssignAliasOperator(task_id="alias", registered=register.output),
             ReportGateFailureOperator(task_id="gate_failed", registered=register.output,
                                       gate=XComArg(gate, key="gate"))]


training()
