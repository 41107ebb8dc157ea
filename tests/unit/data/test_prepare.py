"""De-duplication and the stratified, seeded, leakage-free split."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from autoretrain.data.prepare import DedupReport, deduplicate, normalize_text, shared_texts, split
from autoretrain.data.sources import read_dataset

CORPUS = Path(__file__).resolve().parents[3] / "data/sms_spam_collection/SMSSpamCollection"


def _frame(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["label", "text"])


@pytest.fixture(scope="module")
def corpus() -> pd.DataFrame:
    """The bundled corpus, de-duplicated."""
    frame, _ = deduplicate(read_dataset(str(CORPUS), labels=("ham", "spam")).frame)
    return frame


# ------------------------------------------------------------------------------------ normalize
@pytest.mark.parametrize(("text", "key"), [
    ("Hello  World", "hello world"),
    ("  hello\tworld\n", "hello world"),
    ("HELLO WORLD", "hello world"),
    ("Straße", "strasse"),
    ("", ""),
])
def test_normalize_text(text: str, key: str) -> None:
    assert normalize_text(text) == key


# ---------------------------------------------------------------------------------- deduplicate
def test_case_and_whitespace_variants_are_duplicates() -> None:
    frame = _frame([("ham", "See you later"), ("ham", "see  you later "), ("spam", "WIN NOW"),
                    ("ham", "SEE YOU\tLATER"), ("spam", "win now"), ("ham", "different")])
    out, report = deduplicate(frame)
    assert out.to_dict("list") == {"label": ["ham", "spam", "ham"],
                                   "text": ["See you later", "WIN NOW", "different"]}
    assert report == DedupReport(rows_in=6, rows_out=3, duplicates_dropped=3, conflicting_texts_dropped=0)
    assert list(out.index) == [0, 1, 2]


def test_conflicting_labels_are_dropped_and_counted() -> None:
    frame = _frame([("ham", "call me"), ("spam", "Call me"), ("ham", "CALL ME"),  # conflict, 3 rows
                    ("spam", "prize"), ("ham", "prize"),                          # conflict, 2 rows
                    ("ham", "ok"), ("ham", "ok"), ("spam", "free")])
    out, report = deduplicate(frame)
    assert out.to_dict("list") == {"label": ["ham", "spam"], "text": ["ok", "free"]}
    assert report.as_dict() == {"rows_in": 8, "rows_out": 2, "duplicates_dropped": 4,
                                "conflicting_texts_dropped": 2}
    assert report.rows_in - report.rows_out == report.duplicates_dropped + report.conflicting_texts_dropped


def test_no_duplicates_keeps_everything_in_order() -> None:
    frame = _frame([("spam", "b"), ("ham", "a"), ("ham", "c")])
    out, report = deduplicate(frame)
    pd.testing.assert_frame_equal(out, frame)
    assert report == DedupReport(rows_in=3, rows_out=3, duplicates_dropped=0, conflicting_texts_dropped=0)


def test_deduplicate_with_repeated_index_labels() -> None:
    frame = pd.concat([_frame([("ham", "Hi there"), ("spam", "WIN")]),
                       _frame([("spam", "hi  THERE"), ("ham", "other")])])
    out, report = deduplicate(frame)
    assert out.to_dict("list") == {"label": ["spam", "ham"], "text": ["WIN", "other"]}
    assert report.as_dict() == {"rows_in": 4, "rows_out": 2, "duplicates_dropped": 1,
                                "conflicting_texts_dropped": 1}


def test_deduplicate_bundled_corpus_numbers(corpus: pd.DataFrame) -> None:
    raw = read_dataset(str(CORPUS), labels=("ham", "spam")).frame
    _, report = deduplicate(raw)
    assert report.as_dict() == {"rows_in": 5574, "rows_out": 5159, "duplicates_dropped": 415,
                                "conflicting_texts_dropped": 0}
    assert corpus["text"].map(normalize_text).is_unique


# --------------------------------------------------------------------------------------- split
def _shares(frame: pd.DataFrame) -> dict[str, float]:
    return frame["label"].value_counts(normalize=True).to_dict()


def test_split_is_stratified_sized_and_leak_free_on_bundled_corpus(corpus: pd.DataFrame) -> None:
    train, test = split(corpus, test_size=0.2, seed=42)
    assert (len(train), len(test)) == (4127, 1032)
    overall = _shares(corpus)
    for part in (train, test):
        for label, share in _shares(part).items():
            assert share == pytest.approx(overall[label], abs=0.01)
    assert shared_texts(train, test) == 0
    assert sorted(pd.concat([train, test])["text"]) == sorted(corpus["text"])
    assert list(train.index) == list(range(len(train)))


def test_split_is_deterministic_for_a_seed(corpus: pd.DataFrame) -> None:
    sample = corpus.iloc[:500]
    first, second = split(sample, test_size=0.25, seed=7), split(sample, test_size=0.25, seed=7)
    pd.testing.assert_frame_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])
    other = split(sample, test_size=0.25, seed=8)
    assert set(other[1]["text"]) != set(first[1]["text"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_small_frame_has_exact_label_counts(seed: int) -> None:
    frame = _frame([("ham", f"h{i}") for i in range(40)] + [("spam", f"s{i}") for i in range(10)])
    train, test = split(frame, test_size=0.2, seed=seed)
    assert train["label"].value_counts().to_dict() == {"ham": 32, "spam": 8}
    assert test["label"].value_counts().to_dict() == {"ham": 8, "spam": 2}


@pytest.mark.parametrize("rows", [
    [("ham", "a"), ("ham", "b"), ("ham", "c")],
    [("ham", "a"), ("ham", "b"), ("spam", "c")],
])
def test_split_refuses_when_a_label_cannot_be_stratified(rows: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError, match="cannot stratify: each label needs at least 2 rows"):
        split(_frame(rows), test_size=0.5, seed=0)


# -------------------------------------------------------------------------------- shared_texts
def test_shared_texts_counts_normalized_overlap() -> None:
    a = _frame([("ham", "Hello there"), ("spam", "WIN"), ("ham", "only in a")])
    b = _frame([("ham", "hello  THERE"), ("ham", "win"), ("ham", "win "), ("spam", "only in b")])
    assert shared_texts(a, b) == 2
    assert shared_texts(a, a) == 3
