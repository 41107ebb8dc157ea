"""McNemar's test, the paired bootstrap and bootstrap metric intervals against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from autoretrain.promotion.stats import EXACT_BELOW, _ece_rows, mcnemar, metric_intervals, paired_bootstrap
from autoretrain.training.evaluation import expected_calibration_error


def _pairs(b: int, c: int, both_right: int = 50, both_wrong: int = 3) -> tuple[list[bool], list[bool]]:
    """Correctness arrays with ``b`` champion-only and ``c`` challenger-only right answers."""
    champion = [True] * b + [False] * c + [True] * both_right + [False] * both_wrong
    challenger = [False] * b + [True] * c + [True] * both_right + [False] * both_wrong
    return champion, challenger


def _exact(b: int, c: int) -> float:
    n = b + c
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n)


def _chi2(b: int, c: int) -> tuple[float, float]:
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    return statistic, math.erfc(math.sqrt(statistic / 2))  # chi-square (1 df) survival function


# ---------------------------------------------------------------------------------------- McNemar
@pytest.mark.parametrize(("b", "c"), [(1, 9), (9, 1), (0, 5), (2, 2), (5, 5), (0, 24), (3, 21), (11, 13)])
def test_mcnemar_small_counts_use_the_exact_binomial(b: int, c: int) -> None:
    result = mcnemar(*_pairs(b, c))
    assert (result.b, result.c, result.discordant) == (b, c, b + c)
    assert result.method == "exact binomial"
    assert result.p_value == pytest.approx(_exact(b, c), rel=1e-9)


def test_mcnemar_exact_hand_value() -> None:
    assert mcnemar(*_pairs(1, 9)).p_value == pytest.approx(22 / 1024)  # 2 * (C(10,0) + C(10,1)) / 2^10
    assert mcnemar(*_pairs(0, 5)).p_value == pytest.approx(2 / 32)


@pytest.mark.parametrize(("b", "c"), [(10, 30), (30, 10), (0, 25), (12, 13), (40, 60), (100, 140)])
def test_mcnemar_large_counts_use_chi_square_with_continuity(b: int, c: int) -> None:
    result = mcnemar(*_pairs(b, c))
    statistic, p_value = _chi2(b, c)
    assert result.method == "chi-square, continuity corrected"
    assert result.statistic == pytest.approx(statistic)
    assert result.p_value == pytest.approx(p_value, rel=1e-9)


def test_mcnemar_switches_method_at_the_declared_count() -> None:
    assert EXACT_BELOW == 25
    assert mcnemar(*_pairs(12, 12)).method == "exact binomial"
    assert mcnemar(*_pairs(12, 13)).method == "chi-square, continuity corrected"
    assert mcnemar(*_pairs(12, 13), exact_below=26).method == "exact binomial"
    assert mcnemar(*_pairs(10, 30)).p_value == pytest.approx(0.0026636, abs=1e-6)  # (19^2 / 40 = 9.025)


def test_mcnemar_without_discordant_pairs_is_not_significant() -> None:
    result = mcnemar([True, False, True], [True, False, True])
    assert (result.b, result.c, result.p_value, result.method) == (0, 0, 1.0, "no discordant pairs")


def test_mcnemar_refuses_unpaired_input() -> None:
    with pytest.raises(ValueError, match="one length"):
        mcnemar([True, False], [True])


# --------------------------------------------------------------------------------- paired bootstrap
Y = np.array([True] * 40 + [False] * 160)


def _pred(fn: int = 0, fp: int = 0) -> np.ndarray:
    """Predictions on ``Y`` with ``fn`` missed positives (first ones) and ``fp`` flagged negatives."""
    pred = Y.copy()
    pred[:fn] = False
    pred[40:40 + fp] = True
    return pred


def test_identical_models_have_no_difference() -> None:
    result = paired_bootstrap(Y, _pred(fn=5), _pred(fn=5), samples=500)
    assert (result.delta, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert result.p_value == 1.0


def test_clearly_better_challenger_is_significant() -> None:
    result = paired_bootstrap(Y, _pred(fn=20), _pred(fn=2), samples=1000, seed=7)
    expected = f1_score(Y, _pred(fn=2)) - f1_score(Y, _pred(fn=20))
    assert result.delta == pytest.approx(expected)
    assert 0 < result.ci_low < expected < result.ci_high
    assert result.p_value == pytest.approx(1 / 1001)  # no resample has the challenger not better
    assert (result.samples, result.seed, result.metric) == (1000, 7, "f1")


def test_worse_challenger_has_a_negative_delta_and_large_p() -> None:
    result = paired_bootstrap(Y, _pred(fn=2), _pred(fn=20), samples=1000)
    assert result.delta < 0 and result.ci_high < 0 and result.p_value == 1.0


def test_lower_is_better_metric_counts_the_other_way() -> None:
    result = paired_bootstrap(Y, _pred(fp=10), _pred(fp=1), metric="fpr", samples=500)
    assert result.delta == pytest.approx(9 / 160)  # fewer false positives: a positive (better) delta
    assert result.ci_low > 0


def test_bootstrap_is_deterministic_per_seed() -> None:
    first = paired_bootstrap(Y, _pred(fn=6, fp=3), _pred(fn=3, fp=4), samples=600, seed=1)
    again = paired_bootstrap(Y, _pred(fn=6, fp=3), _pred(fn=3, fp=4), samples=600, seed=1)
    other = paired_bootstrap(Y, _pred(fn=6, fp=3), _pred(fn=3, fp=4), samples=600, seed=2)
    assert first == again
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)


def test_bootstrap_accepts_labels_with_a_positive_value() -> None:
    labels = np.where(Y, "spam", "ham")
    by_label = paired_bootstrap(labels, np.where(_pred(fn=9), "spam", "ham"), np.where(_pred(), "spam", "ham"),
                                positive="spam", samples=300)
    by_bool = paired_bootstrap(Y, _pred(fn=9), _pred(), samples=300)
    assert by_label == by_bool


@pytest.mark.parametrize(("kwargs", "match"), [({"samples": 0}, "samples"), ({"confidence": 1.0}, "confidence"),
                                               ({"metric": "roc_auc"}, "no count-based bootstrap")])
def test_bootstrap_refuses_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        paired_bootstrap(Y, _pred(), _pred(fn=1), **kwargs)


def test_bootstrap_refuses_unpaired_lengths() -> None:
    with pytest.raises(ValueError, match="equal, non-empty"):
        paired_bootstrap(Y, _pred(), _pred()[:-1])


# ------------------------------------------------------------------------------- metric intervals
def test_intervals_cover_the_point_estimates() -> None:
    rng = np.random.default_rng(3)
    proba = np.clip(np.where(Y, 0.8, 0.15) + rng.normal(0, 0.15, len(Y)), 0, 1)
    intervals = metric_intervals(Y, proba, samples=800)
    pred = proba >= 0.5
    assert set(intervals) == {"accuracy", "precision", "recall", "f1", "fpr", "mcc", "ece"}
    point = {"accuracy": float(np.mean(pred == Y)), "f1": f1_score(Y, pred),
             "ece": expected_calibration_error(Y, proba)}
    for name, value in point.items():
        low, high = intervals[name]
        assert low <= value <= high, (name, low, value, high)
        assert high - low > 0.005, name  # 200 rows: a real spread


def test_perfect_model_has_degenerate_intervals() -> None:
    intervals = metric_intervals(Y, np.where(Y, 1.0, 0.0), samples=200)
    assert intervals["accuracy"] == intervals["f1"] == intervals["mcc"] == (1.0, 1.0)
    assert intervals["fpr"] == intervals["ece"] == (0.0, 0.0)


def test_vectorized_ece_matches_the_evaluation_module() -> None:
    rng = np.random.default_rng(5)
    proba = rng.random(len(Y))
    idx = rng.integers(0, len(Y), size=(3, len(Y)))
    bins = np.minimum((proba * 15).astype(int), 14)
    rows = _ece_rows(Y[idx].astype(float), proba[idx], bins[idx], 15)
    assert rows == pytest.approx([expected_calibration_error(Y[i], proba[i]) for i in idx])
