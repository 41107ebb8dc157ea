"""What the monitoring steps return and pass on (XCom, the ``drift_windows`` row, MLflow): types only.

A leaf: ``TypedDict`` s, no numpy, no scipy, so the operators of :mod:`autoretrain.airflow.monitoring`
can name them at DAG parse time. At run time every payload is a plain ``dict``. The steps
(:mod:`autoretrain.monitoring.windows`)::

    measure_window -> WindowMeasurement (a MeasuredWindow, or an UnmonitoredWindow without a champion)
    decide_window -> RetrainDecision (recorded on the window's row; the DriftSensor's XCom)
    read_window_row -> WindowRow (the report and decision as stored, parsed back from JSON)

No ``from __future__ import annotations`` here: ``TypedDict`` reads ``NotRequired`` from evaluated
annotations (with string annotations Python 3.11 counts every key in ``__required_keys__``).
"""

from datetime import datetime
from typing import Any, Literal, NotRequired, TypedDict


class DriftResultRecord(TypedDict):
    """:meth:`autoretrain.monitoring.drift.DriftResult.as_dict`: one check, judged by its threshold."""

    name: str
    score: float
    threshold: float
    drifted: bool
    details: dict[str, Any]  # the check's own evidence (declared threshold, noise floor, terms...)


class DriftReportRecord(TypedDict):
    """:meth:`autoretrain.monitoring.drift.DriftReport.as_dict`: every check of one window."""

    drifted: bool
    insufficient_data: bool
    n_window: int
    n_reference: int
    n_labelled: int
    text_rows: int
    skipped: dict[str, str]  # check name -> why it did not run
    results: list[DriftResultRecord]


class MeasuredWindow(DriftReportRecord):
    """``measure_window`` with a champion: the report, and which model judged how many predictions."""

    status: Literal["measured"]
    model_version: str
    n_predictions: int
    mlflow_run_id: str


class UnmonitoredWindow(TypedDict):
    """``measure_window`` before any champion exists (the window still gets its row)."""

    status: Literal["no champion"]
    insufficient_data: Literal[True]
    drifted: Literal[False]
    results: list[DriftResultRecord]  # always empty


WindowMeasurement = MeasuredWindow | UnmonitoredWindow


class AdhocDrift(DriftReportRecord):
    """:func:`autoretrain.monitoring.windows.adhoc_drift` (``POST /drift/calculate``, ``autoretrain drift``)."""

    model_name: str
    model_version: str
    n_messages: int


class RetrainDecision(TypedDict):
    """:meth:`autoretrain.monitoring.decision.Decision.as_dict`: retrain or not, and why."""

    retrain: bool
    reasons: list[str]
    streak: NotRequired[int]  # breaching windows at the end of the history; absent when none was measured


class WindowRow(TypedDict):
    """One ``drift_windows`` row with its JSON columns parsed (as stored: not validated again)."""

    model_name: str
    window_start: datetime
    window_end: datetime
    model_version: str | None
    n_predictions: int
    n_labelled: int
    insufficient_data: bool
    drifted: bool
    report: dict[str, Any]  # a WindowMeasurement's report, read back from JSON
    mlflow_run_id: str | None
    retrain: bool | None  # None until decide_window ran
    decision: dict[str, Any] | None  # a RetrainDecision, read back from JSON
    action: str | None
    computed_at: datetime
