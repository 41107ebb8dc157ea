"""decide_promotion: gates, improvement and paired significance, every branch and every reason."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autoretrain.config import Settings
from autoretrain.promotion.decision import Decision, Policy, Scores, decide_promotion

# 40 spam then 160 ham; a model is described by how many spam it misses (fn) and ham it flags (fp)
Y = np.array(["spam"] * 40 + ["ham"] * 160)
OPEN_GATES = {"accuracy_min": 0.0, "f1_min": 0.0, "ece_max": 1.0}


def proba(fn: int = 0, fp: int = 0, *, labels: np.ndarray = Y, hi: float = 0.97, lo: float = 0.02) -> np.ndarray:
    """Confident P(spam): the first ``fn`` spam scored ``lo``, the first ``fp`` ham scored ``hi``."""
    p = np.where(labels == "spam", hi, lo).astype(float)
    spam, ham = np.flatnonzero(labels == "spam"), np.flatnonzero(labels == "ham")
    p[spam[:fn]] = lo
    p[ham[:fp]] = hi
    return p


def decide(champion: tuple[int, int] | None, challenger: tuple[int, int], **policy) -> Decision:
    champ = None if champion is None else Scores("1", Y, proba(*champion))
    return decide_promotion(champ, Scores("2", Y, proba(*challenger)), Policy(**policy))


def failed(decision: Decision) -> set[str]:
    return {name for name, ok in decision.numbers["checks"].items() if not ok}


# ------------------------------------------------------------------------------------ the table
@pytest.mark.parametrize(
    ("champion", "challenger", "policy", "promote", "failures"),
    [
        pytest.param(None, (2, 0), {}, True, set(), id="first-model-passing-gates"),
        pytest.param(None, (10, 0), {}, False, {"gates"}, id="first-model-failing-f1-gate"),
        pytest.param(None, (10, 0), {"force": True}, False, {"gates"}, id="force-never-skips-gates"),
        pytest.param((20, 0), (2, 0), {}, True, set(), id="significantly-better"),
        pytest.param((4, 0), (2, 0), {}, False, {"significance"}, id="better-not-significant"),
        pytest.param((3, 1), (3, 1), {}, False, {"improvement", "significance"}, id="identical-predictions"),
        pytest.param((2, 0), (12, 0), {}, False, {"gates", "improvement", "significance"}, id="worse"),
        pytest.param((2, 0), (12, 0), {"force": True}, False, {"gates", "improvement", "significance"},
                     id="worse-force-still-gated"),
        pytest.param((4, 0), (2, 0), {"force": True}, False, {"significance"}, id="force-never-skips-significance"),
        pytest.param((20, 0), (2, 0), {"force": True, "min_improvement": 0.5}, True, {"improvement"},
                     id="force-waives-only-the-margin"),
        pytest.param((20, 0), (2, 0), {"min_improvement": 0.5}, False, {"improvement"}, id="gain-below-minimum"),
        pytest.param((20, 0), (2, 0), {"significance_level": 1e-6}, False, {"significance"}, id="strict-alpha"),
        pytest.param((20, 0), (2, 0), {"ece_max": 0.001}, False, {"gates"}, id="better-but-badly-calibrated"),
    ],
)
def test_decision_table(champion, challenger, policy, promote, failures) -> None:
    decision = decide(champion, challenger, **policy)
    assert decision.promote is promote
    assert failed(decision) == failures
    assert decision.numbers["forced"] is (promote and bool(failures))
    last = decision.reasons[-1]
    if decision.numbers["forced"]:
        assert last.startswith("promote (forced)") and all(f in last for f in failures)
    elif promote:
        assert last == "promote: every check passed"
    else:
        order = [n for n in ("gates", "improvement", "significance") if n in failures]
        assert last == f"reject: failed {', '.join(order)}"


# ------------------------------------------------------------------------------ reasons, numbers
def test_first_model_needs_only_the_gates() -> None:
    decision = decide(None, (2, 0))
    assert decision.reasons == ["gate accuracy 0.9900 >= 0.9500: pass", "gate f1 0.9744 >= 0.9000: pass",
                                "gate ece 0.0119 <= 0.0500: pass",
                                "no champion yet: the first model needs only its gates",
                                "promote: every check passed"]
    assert decision.numbers["champion"] is None and "mcnemar" not in decision.numbers
    assert decision.numbers["checks"] == {"gates": True}


def test_significant_promotion_reports_every_number() -> None:
    decision = decide((20, 0), (2, 0))
    n = decision.numbers
    assert (n["n"], n["n_positive"]) == (200, 40)
    assert (n["champion"]["version"], n["challenger"]["version"]) == ("1", "2")
    assert (n["champion"]["fn"], n["challenger"]["fn"]) == (20, 2)
    assert n["champion"]["f1"] == pytest.approx(40 / 60)  # tp 20, fn 20: 2*20 / (40 + 20)
    assert n["challenger"]["f1"] == pytest.approx(76 / 78)
    assert n["delta"]["f1"] == pytest.approx(76 / 78 - 40 / 60)
    assert n["improvement"] == {"metric": "f1", "gain": pytest.approx(76 / 78 - 40 / 60), "min_improvement": 0.005,
                                "passed": True}
    assert (n["mcnemar"]["b"], n["mcnemar"]["c"], n["mcnemar"]["method"]) == (0, 18, "exact binomial")
    assert n["mcnemar"]["p_value"] == pytest.approx(2 / 2**18)
    assert n["bootstrap"]["metric"] == "f1" and n["bootstrap"]["ci_low"] > 0
    assert n["bootstrap"]["confidence"] == pytest.approx(0.90)  # 1 - 2 alpha: matches the one-sided test
    assert decision.reasons[3] == "f1 0.6667 -> 0.9744: gain +0.3077, needed +0.0050: pass"
    assert decision.reasons[4].startswith("McNemar (exact binomial, required): challenger alone right on 18, "
                                          "champion alone right on 0, p=7.629e-06 < 0.05: significant")
    assert "reported only" in decision.reasons[5] and decision.reasons[5].endswith("significant")


def test_reject_reasons_name_the_failed_test() -> None:
    decision = decide((4, 0), (2, 0))
    assert decision.reasons[4] == ("McNemar (exact binomial, required): challenger alone right on 2, champion "
                                   "alone right on 0, p=0.5 >= 0.05: FAIL")
    assert decision.reasons[-1] == "reject: failed significance"


def test_a_worse_challenger_is_significant_the_wrong_way() -> None:
    n = decide((2, 0), (12, 0)).numbers
    assert (n["mcnemar"]["b"], n["mcnemar"]["c"]) == (10, 0)
    assert n["mcnemar"]["p_value"] < 0.05 and n["mcnemar"]["significant"] is False  # champion alone right
    assert n["improvement"]["gain"] < 0 and n["bootstrap"]["p_value"] == 1.0


# ----------------------------------------------------------------------------- choice of test
# 100 spam, 300 ham: the champion misses 30 spam; the challenger misses none but flags 25 ham.
# Accuracy barely moves (McNemar: b=25, c=30), F1 clearly improves (bootstrap).
Y2 = np.array(["spam"] * 100 + ["ham"] * 300)


@pytest.mark.parametrize(("test", "promote", "mcnemar_ok", "bootstrap_ok"), [
    ("mcnemar", False, False, True),
    ("bootstrap", True, False, True),
    ("both", False, False, True),
])
def test_the_configured_test_decides(test: str, promote: bool, mcnemar_ok: bool, bootstrap_ok: bool) -> None:
    champion = Scores("1", Y2, proba(30, 0, labels=Y2))
    challenger = Scores("2", Y2, proba(0, 25, labels=Y2))
    decision = decide_promotion(champion, challenger, Policy(test=test, **OPEN_GATES))
    n = decision.numbers
    assert (n["mcnemar"]["b"], n["mcnemar"]["c"]) == (25, 30)
    assert n["mcnemar"]["method"] == "chi-square, continuity corrected"
    assert n["mcnemar"]["p_value"] == pytest.approx(0.5896, abs=1e-4)  # (|25-30|-1)^2/55 = 0.2909
    assert (n["mcnemar"]["significant"], n["bootstrap"]["significant"]) == (mcnemar_ok, bootstrap_ok)
    assert decision.promote is promote
    assert failed(decision) == (set() if promote else {"significance"})


def test_both_tests_pass_together() -> None:
    decision = decide((20, 0), (2, 0), test="both")
    assert decision.promote and "required" in decision.reasons[5]


# --------------------------------------------------------------------------- target metrics
@pytest.mark.parametrize(("metric", "champion", "challenger", "gain"), [
    ("accuracy", (20, 0), (2, 0), 18 / 200),
    ("fpr", (0, 16), (0, 0), 16 / 160),  # lower is better: fewer false positives is a positive gain
    ("recall", (20, 0), (2, 0), 18 / 40),
])
def test_gain_is_signed_by_the_metric_direction(metric: str, champion, challenger, gain: float) -> None:
    decision = decide(champion, challenger, target_metric=metric, **OPEN_GATES)
    assert decision.numbers["improvement"]["gain"] == pytest.approx(gain)
    assert decision.numbers["improvement"]["passed"] is True
    assert decision.numbers["bootstrap"]["metric"] == metric


def test_metrics_without_a_count_bootstrap_fall_back_to_f1() -> None:
    decision = decide((20, 0), (2, 0), target_metric="brier", **OPEN_GATES)
    assert decision.numbers["bootstrap"]["metric"] == "f1"
    assert decision.reasons[3].startswith("brier (lower is better)")


def test_gain_exactly_at_the_minimum_passes() -> None:
    gain = 76 / 78 - 40 / 60
    assert decide((20, 0), (2, 0), min_improvement=gain).numbers["improvement"]["passed"] is True
    assert decide((20, 0), (2, 0), min_improvement=gain + 1e-6).numbers["improvement"]["passed"] is False


# ------------------------------------------------------------------------------ refusals, edges
def test_unpaired_evaluation_sets_are_refused() -> None:
    shuffled = Y[::-1].copy()
    with pytest.raises(ValueError, match="not scored on the same evaluation set"):
        decide_promotion(Scores("1", shuffled, proba(0, 0, labels=shuffled)), Scores("2", Y, proba()), Policy())
    with pytest.raises(ValueError, match="same evaluation set"):
        decide_promotion(Scores("1", Y[:-1], proba()[:-1]), Scores("2", Y, proba()), Policy())


def test_scores_must_match_their_labels() -> None:
    with pytest.raises(ValueError, match="200 labels and 199 probabilities"):
        Scores("1", Y, proba()[:-1])


def test_the_champion_cannot_challenge_itself() -> None:
    same = Scores("3", Y, proba(2, 0))
    decision = decide_promotion(same, same, Policy(force=True))
    assert decision.promote is False
    assert decision.reasons[-2:] == ["the challenger is the champion (version 3): nothing to promote",
                                     "reject: the challenger is already the champion"]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"test": "t-test"}, "test='t-test'"),
    ({"target_metric": "auc"}, "target_metric='auc'"),
    ({"significance_level": 0.0}, "significance_level=0.0"),
])
def test_policy_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Policy(**kwargs)


@pytest.mark.filterwarnings("ignore:A single label was found")
def test_policy_from_settings_and_json() -> None:
    settings = Settings(min_improvement=0.01, target_metric="accuracy", comparison_test="both",
                        significance_level=0.01, bootstrap_samples=500)
    policy = Policy.from_settings(settings, force=True)
    assert (policy.min_improvement, policy.target_metric, policy.test, policy.significance_level,
            policy.bootstrap_samples, policy.force, policy.positive_label) == (
        0.01, "accuracy", "both", 0.01, 500, True, "spam")
    single_class = np.array(["ham"] * 50)
    decision = decide_promotion(Scores("1", single_class, np.full(50, 0.1)),
                                Scores("2", single_class, np.full(50, 0.05)), Policy(**OPEN_GATES))
    text = json.dumps(decision.as_dict(), allow_nan=False)  # roc_auc is NaN on one class: stored as null
    assert json.loads(text)["numbers"]["challenger"]["roc_auc"] is None
