"""Metrics, calibration error, model selection and quality gates (pure functions)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from autoretrain.config import RANKABLE_METRICS
from autoretrain.training.evaluation import (
    HIGHER_IS_BETTER,
    GateDecision,
    check_gates,
    compute_metrics,
    expected_calibration_error,
    select_best,
)

# 4 spam, 6 ham. At threshold 0.5: spam 0.9/0.8/0.6 caught, 0.3 missed; ham 0.7 flagged.
Y_TRUE = ["spam", "spam", "spam", "spam", "ham", "ham", "ham", "ham", "ham", "ham"]
PROBA = [0.9, 0.8, 0.6, 0.3, 0.7, 0.2, 0.1, 0.1, 0.05, 0.4]


# ---------------------------------------------------------------------------------- compute_metrics
def test_compute_metrics_hand_made_example() -> None:
    m = compute_metrics(Y_TRUE, PROBA, positive_label="spam")
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (5, 1, 1, 3)
    assert (m["n"], m["n_positive"]) == (10, 4)
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["precision"] == pytest.approx(0.75)
    assert m["recall"] == pytest.approx(0.75)
    assert m["f1"] == pytest.approx(0.75)
    assert m["fpr"] == pytest.approx(1 / 6)
    assert m["mcc"] == pytest.approx((3 * 5 - 1 * 1) / math.sqrt(4 * 4 * 6 * 6))  # 14/24
    assert m["roc_auc"] == pytest.approx(21 / 24)  # 21 of the 24 (spam, ham) pairs ranked right
    assert m["brier"] == pytest.approx(1.4125 / 10)
    assert set(RANKABLE_METRICS) <= set(m)


def test_compute_metrics_threshold_is_inclusive_and_configurable() -> None:
    at_06 = compute_metrics(Y_TRUE, PROBA, positive_label="spam", threshold=0.6)
    assert (at_06["tn"], at_06["fp"], at_06["fn"], at_06["tp"]) == (5, 1, 1, 3)  # 0.6 >= 0.6 is spam
    at_075 = compute_metrics(Y_TRUE, PROBA, positive_label="spam", threshold=0.75)
    assert (at_075["tn"], at_075["fp"], at_075["fn"], at_075["tp"]) == (6, 0, 2, 2)
    assert at_075["precision"] == pytest.approx(1.0)
    assert at_075["recall"] == pytest.approx(0.5)
    assert at_075["fpr"] == 0.0
    assert at_075["roc_auc"] == pytest.approx(21 / 24)  # threshold-free


def test_compute_metrics_positive_label_is_respected() -> None:
    # the same scores read as P(ham): the roles of the classes swap
    m = compute_metrics(Y_TRUE, PROBA, positive_label="ham")
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (1, 3, 5, 1)
    assert m["n_positive"] == 6


def test_compute_metrics_single_class_has_nan_ranking_metrics() -> None:
    m = compute_metrics(["ham", "ham", "ham"], [0.1, 0.2, 0.7], positive_label="spam")
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (2, 1, 0, 0)
    assert math.isnan(m["roc_auc"]) and math.isnan(m["pr_auc"])
    assert m["fpr"] == pytest.approx(1 / 3)
    assert m["f1"] == 0.0


def test_compute_metrics_values_are_plain_python_numbers() -> None:
    m = compute_metrics(Y_TRUE, PROBA, positive_label="spam")
    assert all(type(v) in (int, float) for v in m.values())


# ------------------------------------------------------------------------------------------ ECE
def test_ece_perfectly_calibrated() -> None:
    # P=0.2 with 2 of 10 positive, P=0.8 with 8 of 10 positive: every bin's rate matches its score
    y = [1] * 2 + [0] * 8 + [1] * 8 + [0] * 2
    p = [0.2] * 10 + [0.8] * 10
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)


def test_ece_overconfident_constant() -> None:
    assert expected_calibration_error([1, 0] * 50, [0.9] * 100) == pytest.approx(0.4)


def test_ece_weights_bins_by_size() -> None:
    # bin of P=0.1 (3 rows, all negative): gap 0.1; bin of P=0.95 (1 row, negative): gap 0.95
    assert expected_calibration_error([0, 0, 0, 0], [0.1, 0.1, 0.1, 0.95]) == pytest.approx(
        0.75 * 0.1 + 0.25 * 0.95)


def test_ece_edges_of_the_range() -> None:
    assert expected_calibration_error([1, 0], [1.0, 0.0]) == pytest.approx(0.0)  # 1.0 falls in the last bin
    assert expected_calibration_error([0, 1], [1.0, 0.0]) == pytest.approx(1.0)
    assert expected_calibration_error([1, 1], [0.5, 0.5], bins=1) == pytest.approx(0.5)


def test_ece_empty_is_nan() -> None:
    assert math.isnan(expected_calibration_error([], []))


# ---------------------------------------------------------------------------------- select_best
def test_select_best_clear_winner() -> None:
    sel = select_best({"nb": {"f1": 0.90, "mcc": 0.88}, "svm": {"f1": 0.95, "mcc": 0.80},
                       "lr": {"f1": 0.93, "mcc": 0.99}})
    assert sel.winner == "svm"
    assert (sel.metric, sel.tie_break) == ("f1", "mcc")
    assert [r["name"] for r in sel.ranking] == ["svm", "lr", "nb"]
    assert sel.ranking[0] == {"name": "svm", "f1": 0.95, "mcc": 0.80}
    assert sel.reasons == ["svm has the best f1 (0.9500)", "runner-up lr: f1 0.9300"]


def test_select_best_tie_broken_by_tie_break() -> None:
    sel = select_best({"nb": {"f1": 0.93, "mcc": 0.90}, "svm": {"f1": 0.93001, "mcc": 0.92},
                       "lr": {"f1": 0.80, "mcc": 0.99}})
    assert sel.winner == "svm"
    assert sel.reasons == ["svm ties nb on f1 (0.9300) and wins on mcc (0.9200 vs 0.9000)"]


def test_select_best_full_tie_goes_to_first_name() -> None:
    metrics = {"f1": 0.9, "mcc": 0.8}
    assert select_best({"zeta": dict(metrics), "alpha": dict(metrics)}).winner == "alpha"


def test_select_best_single_candidate() -> None:
    sel = select_best({"only": {"f1": 0.5, "mcc": 0.1}})
    assert sel.winner == "only"
    assert sel.reasons == ["only has the best f1 (0.5000)"]


def test_select_best_lower_is_better_metric() -> None:
    candidates = {"a": {"ece": 0.05, "brier": 0.02, "f1": 0.99}, "b": {"ece": 0.01, "brier": 0.03, "f1": 0.5}}
    assert select_best(candidates, metric="ece", tie_break="brier").winner == "b"
    tied = {"a": {"ece": 0.02, "brier": 0.04}, "b": {"ece": 0.02, "brier": 0.03}}
    assert select_best(tied, metric="ece", tie_break="brier").winner == "b"


def test_select_best_missing_metric() -> None:
    with pytest.raises(KeyError, match=r"candidate 'b' has no metric 'mcc'"):
        select_best({"a": {"f1": 0.9, "mcc": 0.8}, "b": {"f1": 0.95}})


def test_select_best_empty() -> None:
    with pytest.raises(ValueError, match="at least one candidate"):
        select_best({})


def test_every_rankable_metric_has_a_direction() -> None:
    assert set(HIGHER_IS_BETTER) == set(RANKABLE_METRICS)
    assert {m for m, higher in HIGHER_IS_BETTER.items() if not higher} == {"ece", "brier", "fpr"}


# ---------------------------------------------------------------------------------- check_gates
GATES = {"accuracy_min": 0.95, "f1_min": 0.90, "ece_max": 0.05}


def test_gates_pass_including_exact_limits() -> None:
    decision = check_gates({"accuracy": 0.95, "f1": 0.90, "ece": 0.05}, **GATES)
    assert decision == GateDecision(passed=True, reasons=[
        "accuracy 0.9500 >= 0.9500: pass", "f1 0.9000 >= 0.9000: pass", "ece 0.0500 <= 0.0500: pass"])
    assert decision.as_dict() == {"passed": True, "reasons": decision.reasons}


@pytest.mark.parametrize(("metric", "value", "reason"), [
    ("accuracy", 0.9499, "accuracy 0.9499 >= 0.9500: FAIL"),
    ("f1", 0.85, "f1 0.8500 >= 0.9000: FAIL"),
    ("ece", 0.0501, "ece 0.0501 <= 0.0500: FAIL"),
])
def test_each_gate_can_fail_alone(metric: str, value: float, reason: str) -> None:
    metrics = {"accuracy": 0.99, "f1": 0.99, "ece": 0.01, metric: value}
    decision = check_gates(metrics, **GATES)
    assert decision.passed is False
    assert [r for r in decision.reasons if r.endswith("FAIL")] == [reason]


@pytest.mark.parametrize("metric", ["accuracy", "f1", "ece"])
@pytest.mark.parametrize("missing", ["nan", "absent", "none"])
def test_missing_or_nan_metric_fails_with_reason(metric: str, missing: str) -> None:
    metrics: dict = {"accuracy": 0.99, "f1": 0.99, "ece": 0.01}
    if missing == "nan":
        metrics[metric] = float("nan")
    elif missing == "none":
        metrics[metric] = None
    else:
        del metrics[metric]
    decision = check_gates(metrics, **GATES)
    assert decision.passed is False
    op, limit = {"accuracy": (">=", 0.95), "f1": (">=", 0.90), "ece": ("<=", 0.05)}[metric]
    assert f"{metric} is missing: gate {op} {limit} cannot be checked" in decision.reasons
    assert len(decision.reasons) == 3


def test_gates_with_numpy_scalars_give_a_json_able_plain_bool() -> None:
    decision = check_gates({"accuracy": np.float64(0.97), "f1": np.float32(0.93), "ece": np.float64(0.02)},
                           **GATES)
    assert decision.passed is True
    assert json.loads(json.dumps(decision.as_dict()))["passed"] is True
