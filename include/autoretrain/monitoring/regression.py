"""Did the champion regress on live feedback? The rule of the regression alert (pure functions).

A window regresses when its feedback accuracy is under ``accuracy_floor`` (an absolute floor), or
when its feedback F1 dropped from the champion's own evaluation by more than the ``feedback_f1``
check's threshold (the check's ``drifted`` flag: the threshold there already holds the noise floor
of the window's size). Windows with too few labels carry no result for these checks, so they
never regress.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict


class RegressionFinding(TypedDict):
    """One metric that regressed: its live value and limit (and the evaluation it dropped from)."""

    metric: str
    value: float
    limit: float
    baseline: float | None
    n_labelled: int | None


def find_regressions(report: Mapping[str, Any], *, accuracy_floor: float) -> list[RegressionFinding]:
    """The regressions in one window's drift report (``results`` of the feedback checks); ``[]``: none."""
    if report.get("insufficient_data"):
        return []
    findings: list[RegressionFinding] = []
    for result in report.get("results", []):
        details = result.get("details") if isinstance(result.get("details"), Mapping) else {}
        n = details.get("n_labelled")
        if result.get("name") == "feedback_accuracy" and details.get("accuracy") is not None:
            if float(details["accuracy"]) < accuracy_floor:
                findings.append({"metric": "accuracy", "value": float(details["accuracy"]), "limit": accuracy_floor,
                                 "baseline": None, "n_labelled": n})
        elif result.get("name") == "feedback_f1" and result.get("drifted") and details.get("f1") is not None:
            findings.append({"metric": "f1", "value": float(details["f1"]), "limit": float(result["threshold"]),
                             "baseline": float(details.get("baseline_f1", float("nan"))), "n_labelled": n})
    return findings


def regression_action(decision: Mapping[str, Any] | None, *, consecutive: int) -> str:
    """What the monitoring run did about the window, for the alert's "Done" line."""
    if not decision:
        return "the retrain decision of this window is not recorded (see the decide task)"
    if decision.get("retrain"):
        return "retrain_compare_promote was triggered to train and compare a challenger"
    streak = int(decision.get("streak") or 0)
    if streak:
        return f"no retrain yet: {streak} of {consecutive} breaching windows in a row (the next window decides)"
    return "no retrain was decided for this window"
