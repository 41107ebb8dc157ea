"""Monitoring operators and the ``DriftSensor``, thin over :mod:`autoretrain.monitoring.windows`.

The window of a run is its data interval ``[start, end)`` (Param ``window_end`` with
``window_hours`` overrides it for ad-hoc checks). ``DriftSensor`` waits until the window's decision
is recorded, then succeeds when it says "retrain" (its XCom is the decision) and skips otherwise,
which is how the monitoring DAG branches into ``retrain_compare_promote``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import BaseBranchOperator, BaseOperator, BaseSensorOperator, Context, PokeReturnValue
from airflow.sdk.exceptions import AirflowSkipException

from autoretrain.airflow.alerting import DeliveryRecord
from autoretrain.airflow.context import airflow_url, settings_for
from autoretrain.airflow.errors import maps_errors
from autoretrain.config import SettingsError
from autoretrain.monitoring.payloads import RetrainDecision, WindowMeasurement


def window_of(context: Context) -> tuple[datetime, datetime]:
    """``[start, end)`` of this run: Params ``window_end``/``window_hours``, else the data interval."""
    params = context.get("params") or {}
    if params.get("window_end"):
        until = datetime.fromisoformat(str(params["window_end"]))
        if until.tzinfo is None:
            raise SettingsError(f"Param window_end={params['window_end']!r} needs a time zone, e.g. +00:00")
        return until - timedelta(hours=float(params.get("window_hours") or 6)), until
    start, end = context["data_interval_start"], context["data_interval_end"]
    if start is None or end is None or start >= end:
        raise SettingsError(f"run has no usable data interval ({start} .. {end}); pass Param window_end")
    return start, end


class MeasureDriftOperator(BaseOperator):
    """Drift checks of the run's window, logged to MLflow and upserted per window."""

    ui_color = "#fdf2e0"

    @maps_errors
    def execute(self, context: Context) -> WindowMeasurement:
        from autoretrain.monitoring.windows import measure_window

        start, end = window_of(context)
        self.log.info("measuring window %s .. %s", start, end)
        return measure_window(settings_for(context), start=start, end=end)


class DecideRetrainOperator(BaseBranchOperator):
    """Retrain or not, with hysteresis over the latest windows; recorded on the window's row.

    Branches to ``retrain_task_id`` (the drift path), ``waiting_task_id`` (the window breached but
    the breach is not confirmed yet: fewer than ``drift_consecutive_windows`` in a row) or
    ``quiet_task_id`` (nothing to do). The decision is pushed as XCom ``decision``.
    """

    def __init__(self, *, retrain_task_id: str, waiting_task_id: str, quiet_task_id: str,
                 always_task_ids: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.retrain_task_id, self.waiting_task_id, self.quiet_task_id = retrain_task_id, waiting_task_id, quiet_task_id
        self.always_task_ids = tuple(always_task_ids)  # followed whatever the decision (the regression alert)

    @maps_errors
    def choose_branch(self, context: Context) -> list[str]:
        from autoretrain.monitoring.windows import decide_window

        start, end = window_of(context)
        decision: RetrainDecision = decide_window(settings_for(context), start=start, end=end)
        context["ti"].xcom_push(key="decision", value=decision)
        if decision["retrain"]:
            chosen = self.retrain_task_id
        else:
            chosen = self.waiting_task_id if decision.get("streak", 0) > 0 else self.quiet_task_id
        return [chosen, *self.always_task_ids]


class DriftSensor(BaseSensorOperator):
    """Wait for the window's recorded decision; succeed on "retrain", skip on "no action"."""

    ui_color = "#fde0e0"

    def __init__(self, *, poke_interval: float = 10, timeout: float = 600, **kwargs: Any) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)

    @maps_errors
    def poke(self, context: Context) -> PokeReturnValue | bool:
        from autoretrain.monitoring.windows import read_decision

        start, end = window_of(context)
        decision = read_decision(settings_for(context), start=start, end=end)
        if decision is None:
            self.log.info("no decision recorded yet for %s .. %s", start, end)
            return False
        for reason in decision["reasons"]:
            self.log.info("decision: %s", reason)
        if not decision["retrain"]:
            raise AirflowSkipException("no retrain: " + "; ".join(decision["reasons"])[:500])
        return PokeReturnValue(is_done=True, xcom_value=decision)


class RecordActionOperator(BaseOperator):
    """Note on the window's row what was done about it."""

    template_fields = ("action",)

    def __init__(self, *, action: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.action = action

    @maps_errors
    def execute(self, context: Context) -> str:
        from autoretrain.monitoring.windows import record_action

        start, end = window_of(context)
        record_action(settings_for(context), start=start, end=end, action=self.action)
        return self.action


class DriftAlertOperator(BaseOperator):
    """Send the drift alert of the run's window (the drifted checks with scores and thresholds)."""

    ui_color = "#fdecea"

    @maps_errors
    def execute(self, context: Context) -> DeliveryRecord:
        from autoretrain.airflow.alerting import send_alert
        from autoretrain.alerts.messages import drift_alert, mlflow_run_url
        from autoretrain.monitoring.windows import read_window_row

        settings = settings_for(context)
        start, end = window_of(context)
        row = read_window_row(settings, start=start, end=end)
        alert = drift_alert(model_name=settings.model_name, checks=row["report"].get("results", []) if row else [],
                            run_id=context["run_id"], airflow_url=airflow_url(context),
                            mlflow_url=mlflow_run_url(settings.resolved_tracking_uri(),
                                                      row["mlflow_run_id"] if row else None))
        return send_alert(alert, settings, context=context).as_dict()


class RegressionAlertOperator(BaseOperator):
    """Send the regression alert when the window's feedback shows the champion regressed; skip otherwise.

    Regressed: feedback accuracy under ``accuracy_floor``, or feedback F1 down from the champion's
    evaluation by more than its threshold (:func:`autoretrain.monitoring.regression.find_regressions`).
    The alert says what the run decided (``decide_task_id``'s XCom ``decision``).
    """

    ui_color = "#fdecea"

    def __init__(self, *, decide_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decide_task_id = decide_task_id

    @maps_errors
    def execute(self, context: Context) -> DeliveryRecord:
        from autoretrain.airflow.alerting import send_alert
        from autoretrain.alerts.messages import mlflow_model_url, mlflow_run_url, regression_alert
        from autoretrain.monitoring.regression import find_regressions, regression_action
        from autoretrain.monitoring.windows import Window, read_window_row, window_run_name

        settings = settings_for(context)
        start, end = window_of(context)
        row = read_window_row(settings, start=start, end=end)
        findings = find_regressions(row["report"], accuracy_floor=settings.accuracy_floor) if row else []
        if row is None or not findings or row["model_version"] is None:
            raise AirflowSkipException("no regression on this window's feedback")
        decision = context["ti"].xcom_pull(task_ids=self.decide_task_id, key="decision")
        tracking_uri = settings.resolved_tracking_uri()
        alert = regression_alert(
            model_name=settings.model_name, version=row["model_version"], findings=findings, run_id=context["run_id"],
            action=regression_action(decision, consecutive=settings.drift_consecutive_windows),
            window=window_run_name(Window(start, end, [], [], [])), n_labelled=row["n_labelled"],
            airflow_url=airflow_url(context), mlflow_url=mlflow_run_url(tracking_uri, row["mlflow_run_id"]),
            model_url=mlflow_model_url(tracking_uri, settings.model_name, row["model_version"]))
        return send_alert(alert, settings, context=context).as_dict()
