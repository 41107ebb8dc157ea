"""The model card's markdown (pure render; publishing is exercised by the integration tests)."""

from __future__ import annotations

import math

import numpy as np

from autoretrain.promotion.decision import Policy, Scores, decide_promotion
from autoretrain.training.model_card import CardInputs, render

METRICS = {"accuracy": 0.9812, "precision": 0.97, "recall": 0.89, "f1": 0.9283, "mcc": 0.918, "fpr": 0.004,
           "ece": 0.012, "roc_auc": 0.991, "pr_auc": 0.97, "brier": 0.015, "tp": 130, "fp": 4, "fn": 16, "tn": 884,
           "n": 1034}
INTERVALS = {"accuracy": (0.973, 0.988), "f1": (0.899, 0.953), "fpr": (0.001, 0.009)}


def card(**changes) -> CardInputs:
    values = dict(name="sms-spam", version="4", family="linear_svm", trained_by="retrain_compare_promote/manual__1",
                  positive_label="spam", threshold=0.5,
                  data={"source": "data/SMSSpamCollection", "digest": "ab" * 32, "base_digest": "cd" * 32,
                        "feedback_digest": "ef" * 32, "rows_raw": 5574, "rows_deduplicated": 5169,
                        "rows_train": 4215, "rows_test": 1059, "rows_feedback_train": 80, "rows_feedback_test": 25},
                  metrics=METRICS, intervals=INTERVALS, interval_samples=2000,
                  gates={"passed": True, "reasons": ["accuracy 0.9812 >= 0.9500: pass"]})
    values.update(changes)
    return CardInputs(**values)


def test_card_sections_in_order() -> None:
    text = render(card())
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == ["# Model card: sms-spam version 4", "## Data", "## Hold-out metrics", "## Gates",
                        "## Comparison", "## Limitations"]
    assert "trained by `retrain_compare_promote/manual__1`" in text
    assert "Predicts `spam` when P(spam) >= 0.5." in text


def test_data_and_metrics_tables() -> None:
    text = render(card())
    assert "| data digest (base + feedback) | `abababababababab` |" in text
    assert "| labelled traffic in the hold-out | 25 |" in text
    assert "| f1 | 0.9283 | [0.8990, 0.9530] |" in text
    assert "| mcc | 0.9180 | - |" in text  # no interval given
    assert "Confusion counts: tp 130, fp 4, fn 16, tn 884" in text
    assert "(2000 resamples)" in text
    assert "F1 is known to about +/-0.027" in text  # half the interval width


def test_missing_data_rows_are_left_out_and_nan_shown() -> None:
    text = render(card(data={"source": "x"}, metrics={**METRICS, "roc_auc": math.nan}))
    assert "| source | x |" in text and "feedback digest" not in text
    assert "| roc_auc | n/a | - |" in text


def test_failed_gates_and_comparison_are_shown() -> None:
    labels = np.array(["spam"] * 40 + ["ham"] * 160)
    good = np.where(labels == "spam", 0.97, 0.02)
    worse = good.copy()
    worse[:12] = 0.02
    decision = decide_promotion(Scores("3", labels, good), Scores("4", labels, worse), Policy())
    text = render(card(gates={"passed": False, "reasons": ["f1 0.8235 >= 0.9000: FAIL"]},
                       comparison=decision.as_dict()))
    assert "## Gates\n\n**FAILED**\n\n- f1 0.8235 >= 0.9000: FAIL" in text
    assert "## Comparison with the champion\n\n**reject**" in text
    assert "| metric | champion v3 | this version | difference |" in text
    assert "| f1 | 1.0000 | 0.8235 | -0.1765 |" in text  # 28 of 40 spam caught: 56 / 68
    assert f"- {decision.reasons[-1]}" in text and "On the same 200 hold-out messages:" in text


def test_per_origin_table() -> None:
    text = render(card(by_origin={"base": {"n": 1034, "accuracy": 0.98, "f1": 0.93, "fpr": 0.004},
                                  "feedback": {"n": 25, "accuracy": 0.92, "f1": 0.95, "fpr": 0.0}}))
    assert "| feedback | 25 | 0.9200 | 0.9500 | 0.0000 |" in text
