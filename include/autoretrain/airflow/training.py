"""Operators for the training lifecycle, shared by the ``training`` and ``retrain_compare_promote`` DAGs.

Each ``execute`` resolves the settings (file + environment + this run's Params), calls one function
of :mod:`autoretrain.training.steps`, and returns its JSON-able result as the XCom. Inputs from upstream
tasks arrive through templated fields (pass ``other_task.output``): the constructor takes them as
``Any`` (an ``XComArg`` when the DAG is parsed) and the attribute is annotated with the payload of
:mod:`autoretrain.training.payloads` that Airflow renders into it before ``execute``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseBranchOperator, BaseOperator, Context, task

from autoretrain.airflow.context import audit_ids, run_time, settings_for
from autoretrain.airflow.errors import maps_errors
from autoretrain.errors import AutoRetrainError
from autoretrain.training.payloads import (
    AliasAssignment,
    FamilyResult,
    GateVerdict,
    HoldoutMetrics,
    LoadedData,
    RegisteredVersion,
    SelectedModel,
    ValidatedData,
)

if TYPE_CHECKING:
    from autoretrain.training.steps import RunKey


def run_key(context: Context) -> RunKey:
    """The (dag_id, run_id) key that makes every step of this run idempotent."""
    from autoretrain.training.steps import RunKey

    return RunKey(dag_id=context["dag"].dag_id, run_id=context["run_id"])


class NoFamilies(AutoRetrainError):
    """The run's Param ``families`` is an empty list."""


def resolve_families(context: Mapping[str, Any]) -> list[str]:
    """The model families of this run (Param ``families``); an empty list fails the run."""
    families = list(settings_for(context).families)
    if not families:
        raise NoFamilies("no model families selected (Param 'families' is empty)")
    return families


class LoadDataOperator(BaseOperator):
    """Read the configured data source and snapshot it into this run's MLflow parent run.

    ``with_feedback=True`` adds the prediction log's labelled traffic up to the run's data interval
    end (the challenger's data in ``retrain_compare_promote``).
    """

    ui_color = "#e8f4fd"

    def __init__(self, *, with_feedback: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.with_feedback = with_feedback

    @maps_errors
    def execute(self, context: Context) -> LoadedData:
        from autoretrain.data.sources import DataSourceError, redact_uri
        from autoretrain.data.validation import DataValidationError, unreadable_report
        from autoretrain.training.steps import load_data

        settings = settings_for(context)
        try:
            return load_data(settings, run_key(context),
                             feedback_until=run_time(context) if self.with_feedback else None)
        except DataSourceError as err:  # an unreadable source is a dataset that fails its checks
            report = unreadable_report(redact_uri(settings.resolved_data_uri()), str(err))
            raise DataValidationError(report) from err


class ValidateDataOperator(BaseOperator):
    """Blocking data checks, then de-duplication and the stratified split. Fails without retry."""

    template_fields: Sequence[str] = ("loaded",)
    ui_color = "#e8f4fd"

    def __init__(self, *, loaded: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loaded: LoadedData = loaded

    @maps_errors
    def execute(self, context: Context) -> ValidatedData:
        from autoretrain.training.steps import validate_data

        # a failed check raises DataValidationError: the failure callback sends the validation_failed alert
        return validate_data(settings_for(context), parent_run_id=self.loaded["parent_run_id"])


class TrainFamilyOperator(BaseOperator):
    """Search, calibrate and fit one model family (map it over families with ``expand``)."""

    template_fields: Sequence[str] = ("loaded", "family")
    ui_color = "#fff4e0"

    def __init__(self, *, loaded: Any, family: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loaded: LoadedData = loaded
        self.family = family

    @maps_errors
    def execute(self, context: Context) -> FamilyResult:
        from autoretrain.training.steps import train_family

        return train_family(settings_for(context), parent_run_id=self.loaded["parent_run_id"],
                            family=self.family)


class SelectModelOperator(BaseOperator):
    """Pick the best family by cross-validated target metric (tie-break metric second)."""

    template_fields: Sequence[str] = ("loaded", "results")

    def __init__(self, *, loaded: Any, results: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loaded: LoadedData = loaded
        self.results: Sequence[FamilyResult | None] = results  # the mapped train tasks' XComs (None: skipped)

    @maps_errors
    def execute(self, context: Context) -> SelectedModel:
        from autoretrain.training.steps import select_model

        return select_model(settings_for(context), parent_run_id=self.loaded["parent_run_id"],
                            results=list(self.results))


class EvaluateModelOperator(BaseOperator):
    """Hold-out metrics and plots of the selected model."""

    template_fields: Sequence[str] = ("loaded", "selected")

    def __init__(self, *, loaded: Any, selected: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loaded: LoadedData = loaded
        self.selected: SelectedModel = selected

    @maps_errors
    def execute(self, context: Context) -> HoldoutMetrics:
        from autoretrain.training.steps import evaluate_model

        return evaluate_model(settings_for(context), parent_run_id=self.loaded["parent_run_id"],
                              selected=self.selected)


class RegisterModelOperator(BaseOperator):
    """Register the selected model with its SHA-256 (a retry reuses the same version)."""

    template_fields: Sequence[str] = ("loaded", "selected", "metrics")
    ui_color = "#e9f7ef"

    def __init__(self, *, loaded: Any, selected: Any, metrics: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loaded: LoadedData = loaded
        self.selected: SelectedModel = selected
        self.metrics: HoldoutMetrics = metrics

    @maps_errors
    def execute(self, context: Context) -> RegisteredVersion:
        from autoretrain.training.steps import register_model

        return register_model(settings_for(context), parent_run_id=self.loaded["parent_run_id"],
                              selected=self.selected, metrics=self.metrics)


class GateBranchOperator(BaseBranchOperator):
    """Absolute quality gates; follows ``passed_task_id`` or ``failed_task_id``.

    The decision (with one reason per gate) is pushed as XCom key ``gate``.
    """

    template_fields: Sequence[str] = ("registered", "metrics")

    def __init__(self, *, registered: Any, metrics: Any, passed_task_id: str, failed_task_id: str,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.registered: RegisteredVersion = registered
        self.metrics: HoldoutMetrics = metrics
        self.passed_task_id = passed_task_id
        self.failed_task_id = failed_task_id

    @maps_errors
    def choose_branch(self, context: Context) -> str:
        from autoretrain.training.steps import gate_model

        decision = gate_model(settings_for(context), registered=self.registered, metrics=self.metrics)
        context["ti"].xcom_push(key="gate", value=decision)
        return self.passed_task_id if decision["passed"] else self.failed_task_id


class AssignAliasOperator(BaseOperator):
    """``champion`` when there is none, else no alias: the version is handed to the rollout DAG.

    (Param ``promote=false``: no alias and no rollout.)
    """

    template_fields: Sequence[str] = ("registered",)
    ui_color = "#e9f7ef"

    def __init__(self, *, registered: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.registered: RegisteredVersion = registered

    @maps_errors
    def execute(self, context: Context) -> AliasAssignment:
        from autoretrain.training.steps import assign_alias

        settings = settings_for(context)
        return assign_alias(settings, registered=self.registered, promote=settings.promote, **audit_ids(context))


class ReportGateFailureOperator(BaseOperator):
    """Alert (``gate_failed``: log, alert table, Slack when configured) why a version failed its gates."""

    template_fields: Sequence[str] = ("registered", "gate")

    def __init__(self, *, registered: Any, gate: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.registered: RegisteredVersion = registered
        self.gate: GateVerdict = gate

    @maps_errors
    def execute(self, context: Context) -> str:
        from autoretrain.airflow.alerting import send_alert
        from autoretrain.airflow.context import airflow_url
        from autoretrain.alerts.messages import gate_failure_alert, mlflow_model_url

        settings = settings_for(context)
        alert = gate_failure_alert(
            model_name=self.registered["name"], version=self.registered["version"],
            reasons=self.gate["reasons"], run_id=context["run_id"], airflow_url=airflow_url(context),
            mlflow_url=mlflow_model_url(settings.resolved_tracking_uri(), self.registered["name"],
                                        self.registered["version"]))
        send_alert(alert, settings, context=context)  # never raises: Slack trouble is recorded, not fatal
        return alert.text


#: the DAG every version registered while a champion exists is handed to (compare -> canary -> approval)
ROLLOUT_DAG_ID = "retrain_compare_promote"


@task.short_circuit(task_id="needs_rollout")
def needs_rollout(assignment: AliasAssignment) -> bool:
    """True when a champion exists: the version goes to the rollout DAG (first champions end here)."""
    return bool(assignment.get("rollout"))


def rollout_handoff(alias: AssignAliasOperator) -> BaseOperator:
    """``needs_rollout`` -> ``rollout``: trigger ``retrain_compare_promote`` with the registered version.

    The triggered run id is derived from this run's, so a retried trigger finds its run instead of
    starting a second rollout; that DAG runs one rollout at a time, so this one queues behind a canary.
    """
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

    trigger = TriggerDagRunOperator(
        task_id="rollout", trigger_dag_id=ROLLOUT_DAG_ID, trigger_run_id="rollout__{{ run_id }}",
        conf={"version": "{{ ti.xcom_pull(task_ids='alias')['version'] }}",
              "reason": "weekly training {{ run_id }}: version {{ ti.xcom_pull(task_ids='alias')['version'] }} "
                        "to compare with the champion"},
        wait_for_completion=False, skip_when_already_exists=True)
    needs_rollout(alias.output) >> trigger  # type: ignore[arg-type]  # an XComArg at parse time
    return trigger


@task(task_id="families")
def plan_families(**context: Any) -> list[str]:
    """The families to train in this run (Param ``families``)."""
    return resolve_families(context)


@dataclass(frozen=True)
class TrainingChain:
    """The tasks of a training chain that DAGs wire further (the others are internal to it)."""

    load: LoadDataOperator
    evaluate: EvaluateModelOperator
    register: RegisterModelOperator


def training_chain(*, with_feedback: bool = False) -> TrainingChain:
    """``load → validate → families → train[family] → select → evaluate → register`` in the current DAG.

    Shared by ``training`` and ``retrain_compare_promote``: only what follows ``register`` differs.
    """
    load = LoadDataOperator(task_id="load", with_feedback=with_feedback)
    validate = ValidateDataOperator(task_id="validate", loaded=load.output)
    plan = plan_families()
    validate >> plan
    train = TrainFamilyOperator.partial(task_id="train", loaded=load.output).expand(family=plan)
    select = SelectModelOperator(task_id="select", loaded=load.output, results=train.output)
    evaluate = EvaluateModelOperator(task_id="evaluate", loaded=load.output, selected=select.output)
    register = RegisterModelOperator(task_id="register", loaded=load.output, selected=select.output,
                                     metrics=evaluate.output)
    return TrainingChain(load=load, evaluate=evaluate, register=register)
