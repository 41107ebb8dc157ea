"""Drift checks, the retrain decision and the Evidently report helper (pure functions)."""

from __future__ import annotations

import json
import math
import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

from autoretrain.monitoring import textstats as ts
from autoretrain.monitoring.decision import Decision, decide_retrain, window_breaches
from autoretrain.monitoring.drift import DriftReport, DriftResult, run_checks
from autoretrain.monitoring.reference import DRIFT_THRESHOLD, Sample, build_reference, out_of_fold_proba
from autoretrain.monitoring.registry import CHECKS, default_thresholds
from autoretrain.monitoring.report import evidently_report_html
from autoretrain.training.families import build_pipeline, positive_proba

HAM_WORDS = ("ok see you later tonight home dinner love call me when get there thanks going to work tomorrow "
             "morning meeting sorry late bus train what time are we movie lunch mum dad friday weekend nice "
             "good night sleep coffee shop back soon yes no maybe where how").split()
SPAM_WORDS = ("free win winner prize claim cash urgent txt reply stop now mobile offer award guaranteed "
              "ringtone voucher bonus holiday entry draw 08001234 150p customer service selected "
              "congratulations double minutes camera").split()
FOREIGN_WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
                 "labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation").split()
TEXT_CHECKS = ("vocabulary_oov", "emerging_terms", "vocabulary_jaccard", "tfidf_js", "text_length_psi",
               "character_class_psi", "domain_classifier")
PREDICTION_CHECKS = ("prediction_psi", "prediction_ks", "positive_rate")
FEEDBACK_CHECKS = ("feedback_accuracy", "feedback_f1", "calibration_ece")


def messages(n: int, *, spam_share: float, seed: int, words: tuple[str, ...] | None = None) -> pd.DataFrame:
    """``n`` synthetic SMS (label, text): ham and spam from their own vocabularies."""
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random(n) < spam_share, "spam", "ham")
    texts = []
    for label in labels:
        vocabulary = words or (SPAM_WORDS if label == "spam" else HAM_WORDS)
        text = " ".join(rng.choice(vocabulary, size=rng.integers(4, 13)))
        texts.append(text.upper() if label == "spam" and rng.random() < 0.3 else text.capitalize())
    return pd.DataFrame({"label": labels, "text": texts})


@pytest.fixture(scope="module")
def world() -> dict:
    """A model trained on 800 synthetic messages; its reference with out-of-sample scores."""
    train = messages(800, spam_share=0.13, seed=1)
    model = build_pipeline(LogisticRegression(C=10.0, solver="liblinear")).fit(train[["text"]], train["label"])
    calibration = messages(800, spam_share=0.13, seed=2)  # out-of-sample scores for the reference
    reference = build_reference(list(train["text"]), proba=positive_proba(model, calibration, "spam"),
                                labels=list(calibration["label"]), model=model)
    return {"train": train, "model": model, "reference": reference}


def window_of(world: dict, frame: pd.DataFrame) -> Sample:
    return Sample(list(frame["text"]), positive_proba(world["model"], frame, "spam"))


def by_name(report: DriftReport) -> dict[str, DriftResult]:
    return {r.name: r for r in report.results}


# ------------------------------------------------------------------------------ the registry
def test_every_check_declares_a_default_threshold_and_what_it_needs() -> None:
    assert set(CHECKS) == set(TEXT_CHECKS + PREDICTION_CHECKS + FEEDBACK_CHECKS)
    for check in CHECKS.values():
        assert check.default_threshold > 0
        assert check.needs in ("texts", "proba", "labels")
        assert check.description
    assert {c.name for c in CHECKS.values() if c.psi_scale} == {"text_length_psi", "character_class_psi",
                                                                 "prediction_psi"}


def test_default_thresholds_follow_drift_threshold_on_the_psi_scale_only() -> None:
    defaults = default_thresholds()
    assert defaults["prediction_psi"] == DRIFT_THRESHOLD == 0.15
    assert defaults["domain_classifier"] == 0.55
    raised = default_thresholds(0.25)
    assert raised["prediction_psi"] == raised["text_length_psi"] == raised["character_class_psi"] == 0.25
    assert {k: v for k, v in raised.items() if not CHECKS[k].psi_scale} == \
        {k: v for k, v in defaults.items() if not CHECKS[k].psi_scale}


# ------------------------------------------------------------------------------ constructed cases
def test_identical_samples_do_not_drift(world: dict) -> None:
    train = world["train"]
    report = run_checks(world["reference"], window_of(world, train), labels=list(train["label"]))
    assert not report.insufficient_data
    assert [r.name for r in report.results] == list(CHECKS)
    assert [r.name for r in report.results if r.drifted] == []
    assert not report.drifted


def test_a_new_sample_of_the_same_distribution_does_not_drift(world: dict) -> None:
    window = messages(600, spam_share=0.13, seed=3)
    report = run_checks(world["reference"], window_of(world, window), labels=list(window["label"]))
    assert [r.name for r in report.results if r.drifted] == []
    assert report.n_window == 600 and report.n_labelled == 600 and report.text_rows == 600


def test_repeating_every_message_is_not_drift(world: dict) -> None:
    window = messages(300, spam_share=0.13, seed=4)
    twice = pd.concat([window, window], ignore_index=True)
    report = run_checks(world["reference"], window_of(world, twice), labels=list(twice["label"]))
    assert [r.name for r in report.results if r.drifted] == []


def test_disjoint_vocabulary_drifts_on_every_text_check(world: dict) -> None:
    window = messages(400, spam_share=0.0, seed=5, words=FOREIGN_WORDS)
    results = by_name(run_checks(world["reference"], window_of(world, window)))
    assert {name for name in TEXT_CHECKS if results[name].drifted} == set(TEXT_CHECKS)  # longer words too
    oov = results["vocabulary_oov"].details
    assert oov["oov_rate"] == pytest.approx(1.0)
    assert oov["messages_with_oov"] == pytest.approx(1.0)
    assert results["vocabulary_jaccard"].details["jaccard"] == pytest.approx(0.0)
    assert results["emerging_terms"].score == pytest.approx(1.0)
    terms = results["emerging_terms"].details["emerging_terms"]
    assert {t["term"] for t in terms} <= set(FOREIGN_WORDS) and all(t["new"] for t in terms)
    assert all(t["reference_count"] == 0 for t in terms)
    assert results["domain_classifier"].score > 0.99


def test_a_spam_campaign_shows_as_emerging_terms(world: dict) -> None:
    window = messages(500, spam_share=0.13, seed=6)
    spam = window.index[window["label"] == "spam"]
    window.loc[spam, "text"] = window.loc[spam, "text"] + " claim your bitcoin airdrop now"
    results = by_name(run_checks(world["reference"], window_of(world, window)))
    emerging = results["emerging_terms"]
    assert emerging.drifted
    assert emerging.score == pytest.approx(len(spam) / 500)  # every campaign message, nothing else
    assert {t["term"]: (t["window_count"], t["new"]) for t in emerging.details["emerging_terms"]} == {
        "airdrop": (len(spam), True), "bitcoin": (len(spam), True), "your": (len(spam), True)}


def test_prior_shift_13_to_40_percent_spam_is_prediction_drift() -> None:
    # scores constructed exactly: spam at 0.9, ham at 0.1
    reference = build_reference(["some text"] * 2 + ["other words"], proba=[0.9] * 130 + [0.1] * 870)
    window = Sample(["some text"] * 1000, [0.9] * 400 + [0.1] * 600)
    results = by_name(run_checks(reference, window, checks=list(PREDICTION_CHECKS)))
    assert results["positive_rate"].score == pytest.approx(0.27)
    assert results["positive_rate"].details["reference_rate"] == pytest.approx(0.13)
    assert results["positive_rate"].details["window_rate"] == pytest.approx(0.40)
    assert results["prediction_ks"].score == pytest.approx(0.27)
    # reference deciles put 0.1 and 0.9 in their own bins: PSI over (0.87, 0.13) -> (0.60, 0.40)
    expected = (0.6 - 0.87) * math.log(0.6 / 0.87) + (0.4 - 0.13) * math.log(0.4 / 0.13)
    assert results["prediction_psi"].score == pytest.approx(expected, abs=1e-5)
    assert all(r.drifted for r in results.values())


def test_prior_shift_from_the_model_is_detected(world: dict) -> None:
    window = messages(500, spam_share=0.40, seed=7)
    results = by_name(run_checks(world["reference"], window_of(world, window)))
    assert {name for name in PREDICTION_CHECKS if results[name].drifted} == set(PREDICTION_CHECKS)
    assert results["positive_rate"].details["window_rate"] == pytest.approx(0.40, abs=0.05)


def test_concept_drift_shows_only_through_feedback(world: dict) -> None:
    window = messages(500, spam_share=0.13, seed=8)
    labels = np.where(window["label"] == "spam", "ham", window["label"])  # all spam is now "ham"
    results = by_name(run_checks(world["reference"], window_of(world, window), labels=list(labels)))
    assert {r.name for r in results.values() if r.drifted} == set(FEEDBACK_CHECKS)
    accuracy = results["feedback_accuracy"]
    assert accuracy.details["accuracy"] == pytest.approx(1 - (window["label"] == "spam").mean(), abs=0.01)
    assert accuracy.score == pytest.approx(accuracy.details["baseline_accuracy"] - accuracy.details["accuracy"],
                                           abs=1e-6)


def scored_labels(n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (label, score) pairs of a well-calibrated, 98 %-accurate classifier, 13 % positives."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.13
    p = np.where(y, rng.beta(12, 1, n), rng.beta(1, 30, n))
    return np.where(y, "spam", "ham"), p


@pytest.mark.parametrize("n", [500, 25_000])  # 25,000 labels: the bootstrap floor is scaled from 10,000
def test_feedback_checks_on_many_labels(n: int) -> None:
    ref_labels, ref_proba = scored_labels(4_000, seed=20)
    reference = build_reference(["a b"], proba=ref_proba, labels=list(ref_labels))
    labels, proba = scored_labels(n, seed=21)
    calm = run_checks(reference, Sample(["a b"] * n, proba), labels=list(labels), checks=list(FEEDBACK_CHECKS))
    assert [r.name for r in calm.results if r.drifted] == []
    flipped = np.where((labels == "spam") & (np.arange(n) % 3 == 0), "ham", labels)  # a third of spam
    drifted = run_checks(reference, Sample(["a b"] * n, proba), labels=list(flipped),
                         checks=list(FEEDBACK_CHECKS))
    assert {r.name for r in drifted.results if r.drifted} >= {"feedback_accuracy", "feedback_f1"}
    assert by_name(drifted)["feedback_accuracy"].score == pytest.approx(0.13 / 3, abs=0.012)


# ------------------------------------------------------------------------------ inputs and outputs
@pytest.mark.parametrize("size, minimum, insufficient", [(99, 100, True), (100, 100, False), (30, 20, False),
                                                          (0, 1, True)])
def test_small_windows_are_insufficient_data_not_drift(world: dict, size: int, minimum: int,
                                                       insufficient: bool) -> None:
    window = messages(size, spam_share=0.5, seed=9, words=FOREIGN_WORDS)
    report = run_checks(world["reference"], window_of(world, window) if size else Sample([]),
                        min_window_size=minimum)
    assert report.insufficient_data is insufficient
    if insufficient:
        assert report.results == [] and not report.drifted
        assert set(report.skipped) == set(CHECKS)
        assert report.skipped["prediction_psi"] == (f"insufficient data: {size} messages in the window, "
                                                    f"fewer than {minimum}")
        assert window_breaches(report, accuracy_floor=0.93) is None


def test_feedback_checks_are_skipped_without_labels_or_with_too_few(world: dict) -> None:
    window = messages(300, spam_share=0.13, seed=10)
    none = run_checks(world["reference"], window_of(world, window))
    assert set(none.skipped) == set(FEEDBACK_CHECKS) and none.n_labelled == 0
    few = [label if i < 20 else None for i, label in enumerate(window["label"])]
    report = run_checks(world["reference"], window_of(world, window), labels=few)
    assert report.skipped["feedback_f1"] == "20 labelled messages in the window, fewer than 50"
    assert report.n_labelled == 20
    assert run_checks(world["reference"], window_of(world, window), labels=few, min_labels=20).skipped == {}


def test_missing_feedback_may_be_none_empty_or_nan_and_series_are_accepted(world: dict) -> None:
    window = messages(300, spam_share=0.13, seed=22)
    labels = pd.Series(list(window["label"]), index=range(1000, 1300), dtype=object)
    labels.iloc[:100] = None
    labels.iloc[100:150] = float("nan")
    labels.iloc[150:160] = ""
    texts = pd.Series(list(window["text"]), index=range(1000, 1300))
    proba = positive_proba(world["model"], window, "spam")
    report = run_checks(world["reference"], Sample(texts, proba), labels=labels, max_text_rows=200)
    assert report.n_labelled == 140 and report.text_rows == 200
    assert by_name(report)["feedback_accuracy"].details["n_labelled"] == 140


@pytest.mark.parametrize("value", [float("nan"), 1.5, -0.1])
def test_scores_outside_0_1_are_refused_with_their_position(world: dict, value: float) -> None:
    proba = np.full(200, 0.2)
    proba[7] = value
    with pytest.raises(ValueError, match=r"1 value\(s\) outside \[0, 1\] or not finite, e\.g\. .* at position 7"):
        run_checks(world["reference"], Sample(["x"] * 200, proba))


def test_prediction_checks_are_skipped_without_scores_unless_a_model_scores_the_window(world: dict) -> None:
    texts = list(messages(200, spam_share=0.13, seed=11)["text"])
    skipped = run_checks(world["reference"], texts).skipped
    assert set(skipped) == set(PREDICTION_CHECKS + FEEDBACK_CHECKS)
    assert skipped["positive_rate"] == "no window probabilities (pass window.proba or a model)"
    scored = run_checks(world["reference"], texts, model=world["model"])
    assert set(scored.skipped) == set(FEEDBACK_CHECKS)  # no labels
    assert {r.name for r in scored.results} == set(TEXT_CHECKS + PREDICTION_CHECKS)


def test_threshold_overrides_travel_with_the_result(world: dict) -> None:
    reference = build_reference(["a b", "c d"], proba=[0.9] * 13 + [0.1] * 87)
    window = Sample(["a b"] * 500, [0.9] * 200 + [0.1] * 300)
    report = run_checks(reference, window, checks=["positive_rate", "prediction_psi"],
                        thresholds={"positive_rate": 0.5}, drift_threshold=2.0)
    results = by_name(report)
    assert results["positive_rate"].threshold == 0.5 and not results["positive_rate"].drifted
    assert results["positive_rate"].details["declared_threshold"] == 0.5
    assert results["prediction_psi"].threshold == 2.0 and not results["prediction_psi"].drifted


def test_noise_floor_raises_the_threshold_for_small_windows() -> None:
    reference = build_reference(["a b"], proba=np.linspace(0, 1, 10_000))
    small = run_checks(reference, Sample(["a b"] * 100, np.linspace(0, 1, 100)), checks=["prediction_ks"])
    large = run_checks(reference, Sample(["a b"] * 10_000, np.linspace(0, 1, 10_000)), checks=["prediction_ks"])
    ks_small, ks_large = small.results[0], large.results[0]
    assert ks_small.threshold == pytest.approx(ts.ks_critical_value(10_000, 100, alpha=0.001), abs=1e-6)
    assert ks_small.threshold > 0.1 == ks_large.threshold
    assert ks_large.details["noise_floor"] < 0.1


def test_unknown_check_names_are_rejected(world: dict) -> None:
    with pytest.raises(ValueError, match=r"unknown drift check\(s\) \['nope'\]"):
        run_checks(world["reference"], ["x"] * 200, checks=["nope"])
    with pytest.raises(ValueError, match="unknown drift check"):
        run_checks(world["reference"], ["x"] * 200, thresholds={"psi": 0.2})


@pytest.mark.parametrize("kwargs, message", [
    ({"labels": ["ham"] * 3}, "labels has 3 entries for 200 window messages"),
    ({"window": Sample(["x"] * 200, [0.5] * 3)}, "window proba has 3 values for 200 messages"),
])
def test_misaligned_inputs_name_the_sizes(world: dict, kwargs: dict, message: str) -> None:
    window = kwargs.pop("window", Sample(["x"] * 200, [0.5] * 200))
    with pytest.raises(ValueError, match=message):
        run_checks(world["reference"], window, **kwargs)


def test_report_is_json_able_and_keeps_every_threshold(world: dict) -> None:
    window = messages(300, spam_share=0.13, seed=12)
    report = run_checks(world["reference"], window_of(world, window), labels=list(window["label"]))
    data = json.loads(json.dumps(report.as_dict()))
    assert data["n_window"] == 300 and data["insufficient_data"] is False
    for result in data["results"]:
        assert set(result) == {"name", "score", "threshold", "drifted", "details"}
        assert result["threshold"] >= result["details"]["declared_threshold"]
        assert result["drifted"] == (result["score"] > result["threshold"])


def test_reference_is_picklable_and_reusable(world: dict) -> None:
    clone = pickle.loads(pickle.dumps(world["reference"]))
    window = messages(300, spam_share=0.13, seed=13)
    a = run_checks(world["reference"], window_of(world, window)).as_dict()
    b = run_checks(clone, window_of(world, window)).as_dict()
    assert a == b


def test_a_sample_reference_is_built_on_the_fly(world: dict) -> None:
    train = world["train"]
    report = run_checks(Sample(list(train["text"]), positive_proba(world["model"], train, "spam")),
                        window_of(world, messages(300, spam_share=0.13, seed=14)), model=world["model"])
    assert report.n_reference == train["text"].nunique()
    assert set(report.skipped) == set(FEEDBACK_CHECKS)  # no reference labels: no baseline evaluation


def test_large_windows_sample_the_text_checks(world: dict) -> None:
    window = messages(1_000, spam_share=0.13, seed=15)
    report = run_checks(world["reference"], window_of(world, window), max_text_rows=300)
    assert report.text_rows == 300 and report.n_window == 1_000
    assert not report.drifted


def test_out_of_fold_proba_are_probabilities_of_every_message(world: dict) -> None:
    train = world["train"]
    proba = out_of_fold_proba(world["model"], train["text"], train["label"], positive_label="spam", folds=3)
    assert proba.shape == (len(train),)
    assert ((proba >= 0) & (proba <= 1)).all()
    assert np.mean((proba >= 0.5) == (train["label"] == "spam")) > 0.95


def test_the_leave_one_out_oov_rate_of_the_reference() -> None:
    # tokens: a a | a b | c d -> b, c, d appear in one message each: 3 of 6 tokens would be new
    reference = build_reference(["a a", "a b", "c d"])
    assert reference.oov_rate == pytest.approx(3 / 6)
    assert reference.n_model == 5  # sentinel + a, b, c, d


# ------------------------------------------------------------------------------ textstats
@pytest.mark.parametrize("texts", [
    ["Hello, World! hello", "", "naïve café — ÉTÉ 2024", "a_b c-d e.f", "zqxsentinelxqz inside", "x"],
    [f"message {i} with £{i * 3} and www.example{i % 4}.com" for i in range(50)],
])
def test_tokenize_counts_like_the_vectorizer(texts: list[str]) -> None:
    ids = ts.TokenIds()
    tokens = ts.tokenize(texts, ids, pattern=ts.compile_token_pattern(ts.DEFAULT_TOKEN_PATTERN))
    # the internal sentinel token is the one token dropped (a message holding it is tokenized alone)
    counter = CountVectorizer(token_pattern=ts.DEFAULT_TOKEN_PATTERN, lowercase=True, stop_words=[ts.SENTINEL])
    expected = counter.fit_transform(texts).toarray()
    names = counter.get_feature_names_out()
    got = tokens.counts.toarray()[:, [ids[t] for t in names]]
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(tokens.lengths, expected.sum(axis=1))


def test_char_features_on_a_hand_made_example() -> None:
    f = ts.char_features(["", "AB12!", "£5 €", "é"])
    np.testing.assert_allclose(f["length"], [0, 5, 4, 1])
    np.testing.assert_allclose(f["digit"], [0, 2 / 5, 1 / 4, 0])
    np.testing.assert_allclose(f["upper"], [0, 2 / 5, 0, 0])
    np.testing.assert_allclose(f["punct"], [0, 1 / 5, 0, 0])
    np.testing.assert_allclose(f["currency"], [0, 0, 2 / 4, 0])
    np.testing.assert_allclose(f["non_ascii"], [0, 0, 2 / 4, 1])


def test_statistics_on_known_values() -> None:
    assert ts.js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    assert ts.js_divergence([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0)
    m = np.array([0.75, 0.25])  # mixture of (0.5, 0.5) and (1, 0): JS = H(m) - (1 + 0) / 2
    assert ts.js_divergence([1, 1], [1, 0]) == pytest.approx(-np.sum(m * np.log2(m)) - 0.5)
    assert ts.jaccard(np.array([1, 1, 0], bool), np.array([0, 1, 1], bool)) == pytest.approx(1 / 3)
    assert ts.jaccard(np.zeros(3, bool), np.zeros(3, bool)) == 1.0
    value, bins = ts.psi(np.arange(100.0), np.arange(100.0))
    assert (value, bins) == (pytest.approx(0.0), 10)
    assert ts.psi_noise_floor(1000, 1000, 10, alpha=0.001) == pytest.approx(27.877 / 500, rel=1e-3)
    assert ts.ks_critical_value(100, 100, alpha=0.05) == pytest.approx(1.358 * math.sqrt(2 / 100), rel=1e-3)
    assert ts.ratio_variance(np.array([1.0, 1.0]), np.array([2.0, 2.0])) == 0.0


# ------------------------------------------------------------------------------ the decision
def report(*drifted: str, accuracy: float | None = None, insufficient: bool = False) -> dict:
    """A report as read back from the metrics table: ``drifted`` names the breaching checks."""
    results = [{"name": n, "score": 0.3, "threshold": 0.15, "drifted": True, "details": {}} for n in drifted]
    results.append({"name": "prediction_ks", "score": 0.01, "threshold": 0.1, "drifted": False, "details": {}})
    if accuracy is not None:
        results.append({"name": "feedback_accuracy", "score": 0.0, "threshold": 0.02, "drifted": False,
                        "details": {"accuracy": accuracy}})
    return {"insufficient_data": insufficient, "results": [] if insufficient else results}


B, OK, NONE = report("prediction_psi"), report(), None
LOW = report(accuracy=0.90)


@pytest.mark.parametrize("history, consecutive, retrain, streak", [
    ([], 2, False, 0),
    ([B], 1, True, 1),
    ([B], 2, False, 1),
    ([B, B], 2, True, 2),
    ([OK, B, B], 2, True, 2),
    ([B, B, OK], 2, False, 0),
    ([B, OK, B], 2, False, 1),
    ([B, B, B], 3, True, 3),
    ([B, B], 3, False, 2),
    ([B, NONE, B], 2, True, 2),
    ([B, report(insufficient=True), B], 2, True, 2),
    ([NONE, NONE], 1, False, 0),
    ([True, True], 2, True, 2),
    ([True, False], 1, False, 0),
    ([False, True], 1, True, 1),
    ([LOW, LOW], 2, True, 2),
    ([report(accuracy=0.95), report(accuracy=0.95)], 1, False, 0),
    ([B, LOW], 2, True, 2),
])
def test_decide_retrain_hysteresis(history: list, consecutive: int, retrain: bool, streak: int) -> None:
    decision = decide_retrain(history, consecutive=consecutive, accuracy_floor=0.93)
    assert (decision.retrain, decision.streak) == (retrain, streak)
    assert decision.reasons


def test_decide_retrain_reasons_name_checks_thresholds_and_the_floor() -> None:
    decision = decide_retrain([report("prediction_psi", accuracy=0.9), NONE,
                               report("emerging_terms", "prediction_psi", accuracy=0.91)],
                              consecutive=2, accuracy_floor=0.93)
    assert decision == Decision(True, [
        "2 consecutive breaching window(s), 2 required",
        "latest window: emerging_terms 0.3 > threshold 0.15",
        "latest window: prediction_psi 0.3 > threshold 0.15",
        "latest window: feedback accuracy 0.9100 < floor 0.9300",
        "window 2 of 3 ignored: not measured",
    ], 2)
    assert json.loads(json.dumps(decision.as_dict()))["retrain"] is True


def test_decide_retrain_waits_and_says_so() -> None:
    decision = decide_retrain([OK, B], consecutive=3)
    assert decision == Decision(False, ["1 consecutive breaching window(s), 3 required: waiting",
                                        "latest window: prediction_psi 0.3 > threshold 0.15"], 1)
    assert decide_retrain([B, OK]).reasons == [
        "latest window: no check over its threshold, feedback accuracy not below the floor"]
    assert decide_retrain([NONE]).reasons == ["no window with enough data to judge",
                                              "window 1 of 1 ignored: not measured"]


def test_decide_retrain_names_the_ignored_windows_it_looked_at_and_why() -> None:
    small = {"insufficient_data": True, "n_window": 40, "results": [],
             "skipped": {"tfidf_js": "insufficient data: 40 messages in the window, fewer than 100"}}
    unmonitored = {"status": "no champion", "insufficient_data": True, "drifted": False, "results": []}
    history = [unmonitored, OK, B, small, B]
    names = ["00-06", "06-12", "12-18", "18-24", "24-30"]
    decision = decide_retrain(history, consecutive=3, names=names)
    assert decision.reasons == [  # the window before the streak's start is outside what was looked at
        "2 consecutive breaching window(s), 3 required: waiting",
        "latest window: prediction_psi 0.3 > threshold 0.15",
        "18-24 ignored: insufficient data: 40 messages in the window, fewer than 100"]
    assert decide_retrain([unmonitored], names=["00-06"]).reasons == [
        "no window with enough data to judge", "00-06 ignored: no champion to measure it with"]
    with pytest.raises(ValueError, match="names has 1 labels for 2 windows"):
        decide_retrain([OK, B], names=["x"])


@pytest.mark.parametrize("result, breaches", [
    ({"name": "x", "score": 0.2, "threshold": 0.15}, ["x 0.2 > threshold 0.15"]),  # no flag: score > threshold
    ({"name": "x", "score": 0.15, "threshold": 0.15}, []),
    ({"name": "x", "score": 0.2, "threshold": 0.15, "drifted": False}, []),  # the stored verdict wins
    ({"name": "feedback_accuracy", "score": 0.0, "threshold": 0.02, "drifted": False,
      "details": {"accuracy": 0.93}}, []),  # at the floor is not below it
])
def test_window_breaches_reads_stored_results(result: dict, breaches: list[str]) -> None:
    assert window_breaches({"results": [result]}, accuracy_floor=0.93) == breaches


def test_decide_retrain_can_ignore_checks_and_rejects_bad_settings() -> None:
    assert not decide_retrain([B, B], checks={"emerging_terms"}).retrain
    assert decide_retrain([B, B], checks={"prediction_psi"}).retrain
    with pytest.raises(ValueError, match="consecutive=0 must be at least 1"):
        decide_retrain([B], consecutive=0)


def test_decide_retrain_on_drift_reports(world: dict) -> None:
    drifted = run_checks(world["reference"], window_of(world, messages(300, spam_share=0.45, seed=16)))
    calm = run_checks(world["reference"], window_of(world, messages(300, spam_share=0.13, seed=17)))
    assert drifted.drifted and not calm.drifted
    assert decide_retrain([drifted, drifted]).retrain
    assert not decide_retrain([calm, drifted]).retrain


# ------------------------------------------------------------------------------ Evidently
def test_evidently_report_is_one_self_contained_html_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"text": list(messages(300, spam_share=0.13, seed=18)["text"]),
                              "score": rng.beta(1, 8, 300)})
    window = pd.DataFrame({"text": list(messages(200, spam_share=0.0, seed=19, words=FOREIGN_WORDS)["text"]),
                           "score": rng.beta(4, 2, 200)})
    path = evidently_report_html(reference, window, tmp_path / "reports" / "drift.html")
    html = path.read_text(encoding="utf-8")
    assert path.stat().st_size > 500_000  # the widgets' JavaScript is inlined
    assert "Dataset Drift is detected" in html and '"column_name": "text"' in html
    assert not re.search(r"<script[^>]+src=", html)  # nothing fetched from a CDN
