"""assemble: base split + labelled traffic, split by text hash, de-duplicated, no leakage."""

from __future__ import annotations

import pandas as pd
import pytest

from autoretrain.data.challenger import assemble, holdout_side
from autoretrain.data.prepare import shared_texts

BASE_TRAIN = pd.DataFrame({"label": ["ham", "spam", "ham"], "text": ["see you at 6", "WIN cash now", "ok thanks"]})
BASE_TEST = pd.DataFrame({"label": ["ham", "spam"], "text": ["lunch tomorrow?", "free ringtone, txt GO"]})
SALT = "autoretrain-holdout-42"


def feedback(texts: list[str], labels: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame({"label": labels or ["spam"] * len(texts), "text": texts,
                         "request_id": [f"r{i}" for i in range(len(texts))]})


def test_feedback_joins_both_sides_by_text_hash() -> None:
    texts = [f"crypto club: double your coins {i} today" for i in range(400)]
    train, test, report = assemble(BASE_TRAIN, BASE_TEST, feedback(texts), test_size=0.2, salt=SALT)
    expected_test = [t for t in texts if holdout_side(t, test_size=0.2, salt=SALT)]
    assert test[test["origin"] == "feedback"]["text"].tolist() == expected_test
    assert (report.rows_in, report.rows_test, report.rows_train) == (400, len(expected_test), 400 - len(expected_test))
    assert 60 <= report.rows_test <= 100  # about 20 % of 400
    assert train["origin"].tolist()[:3] == ["base"] * 3 and test["origin"].tolist()[:2] == ["base"] * 2
    assert list(train.columns) == ["label", "text", "origin"]
    assert shared_texts(train, test) == 0


def test_the_side_depends_only_on_the_normalized_text() -> None:
    assert holdout_side("Double Your   COINS", test_size=0.5, salt=SALT) == holdout_side(
        "double your coins", test_size=0.5, salt=SALT)
    assert holdout_side("anything", test_size=0.0, salt=SALT) is False
    assert holdout_side("anything", test_size=1.0, salt=SALT) is True
    sides = {holdout_side(f"msg {i}", test_size=0.3, salt=s) for i in range(50) for s in ("a", "b")}
    assert sides == {True, False}


def test_duplicates_conflicts_and_base_texts_are_dropped() -> None:
    rows = feedback(["WIN CASH NOW", "new promo 1", "new  promo 1", "disputed", "disputed", "fresh message"],
                    ["ham", "spam", "spam", "spam", "ham", "ham"])
    train, test, report = assemble(BASE_TRAIN, BASE_TEST, rows, test_size=0.2, salt=SALT)
    assert report.as_dict() == {"rows_in": 6, "already_in_base": 1, "duplicates_dropped": 2,
                                "conflicting_texts_dropped": 1, "rows_train": report.rows_train,
                                "rows_test": report.rows_test}
    fb = pd.concat([train, test])
    assert sorted(fb[fb["origin"] == "feedback"]["text"]) == ["fresh message", "new promo 1"]
    assert (train["text"] == "WIN cash now").sum() == 1 and train.loc[train["text"] == "WIN cash now", "label"].item() \
        == "spam"  # the curated label wins


def test_no_feedback_keeps_the_base_split() -> None:
    train, test, report = assemble(BASE_TRAIN, BASE_TEST, feedback([]), test_size=0.2, salt=SALT)
    assert train[["label", "text"]].equals(BASE_TRAIN) and test[["label", "text"]].equals(BASE_TEST)
    assert (report.rows_in, report.rows_train, report.rows_test) == (0, 0, 0)


@pytest.mark.parametrize("salt", ["autoretrain-holdout-42", "autoretrain-holdout-7"])
def test_assembly_is_deterministic(salt: str) -> None:
    texts = [f"message number {i}" for i in range(100)]
    first = assemble(BASE_TRAIN, BASE_TEST, feedback(texts), test_size=0.2, salt=salt)
    again = assemble(BASE_TRAIN, BASE_TEST, feedback(list(reversed(texts))), test_size=0.2, salt=salt)
    assert set(first[1]["text"]) == set(again[1]["text"])
