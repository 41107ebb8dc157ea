"""The regression rule: accuracy under its floor, or F1 down by more than its check's threshold."""

from __future__ import annotations

import pytest

from autoretrain.monitoring.regression import find_regressions, regression_action


def _report(accuracy: float | None = 0.97, f1_drifted: bool = False, f1: float = 0.88) -> dict:
    results = [{"name": "vocabulary_oov", "score": 0.5, "threshold": 0.03, "drifted": True, "details": {}}]
    if accuracy is not None:
        results.append({"name": "feedback_accuracy", "score": 0.98 - accuracy, "threshold": 0.02,
                        "drifted": 0.98 - accuracy > 0.02,
                        "details": {"accuracy": accuracy, "baseline_accuracy": 0.98, "n_labelled": 250}})
    results.append({"name": "feedback_f1", "score": 0.92 - f1, "threshold": 0.061, "drifted": f1_drifted,
                    "details": {"f1": f1, "baseline_f1": 0.92, "n_labelled": 250}})
    return {"insufficient_data": False, "results": results}


@pytest.mark.parametrize(("report", "metrics"), [
    (_report(), []),  # drift alone (vocabulary) is not a regression
    (_report(accuracy=0.95), []),  # accuracy dropped 0.03 but is above the floor 0.93
    (_report(accuracy=0.929), ["accuracy"]),
    (_report(f1_drifted=True, f1=0.80), ["f1"]),
    (_report(accuracy=0.5, f1_drifted=True, f1=0.2), ["accuracy", "f1"]),
    (_report(accuracy=None), []),  # too few labels: the checks were not run
    ({"insufficient_data": True, "results": _report(accuracy=0.5)["results"]}, []),
])
def test_find_regressions(report, metrics):
    assert [f["metric"] for f in find_regressions(report, accuracy_floor=0.93)] == metrics


def test_findings_carry_value_limit_and_baseline():
    findings = find_regressions(_report(accuracy=0.9, f1_drifted=True, f1=0.8), accuracy_floor=0.93)
    assert findings == [
        {"metric": "accuracy", "value": 0.9, "limit": 0.93, "baseline": None, "n_labelled": 250},
        {"metric": "f1", "value": 0.8, "limit": 0.061, "baseline": 0.92, "n_labelled": 250}]


@pytest.mark.parametrize(("decision", "text"), [
    ({"retrain": True, "streak": 2}, "retrain_compare_promote was triggered to train and compare a challenger"),
    ({"retrain": False, "streak": 1}, "no retrain yet: 1 of 2 breaching windows in a row (the next window decides)"),
    ({"retrain": False, "streak": 0}, "no retrain was decided for this window"),
    (None, "the retrain decision of this window is not recorded (see the decide task)"),
])
def test_regression_action(decision, text):
    assert regression_action(decision, consecutive=2) == text
