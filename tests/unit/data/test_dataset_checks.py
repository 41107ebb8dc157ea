"""Dataset checks: a corpus of bad inputs, each failing with a clear message, and every check's limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from autoretrain.config import Settings
from autoretrain.data.dataset_validation import render_json, render_markdown, snapshot_validated, validate_dataset
from autoretrain.data.feedback import empty_feedback
from autoretrain.data.snapshots import LocalStore
from autoretrain.data.validation import (
    DATASET_CHECKS,
    CheckResult,
    DataValidationError,
    check_class_balance,
    check_duplicates,
    check_empty_texts,
    check_freshness,
    check_leakage,
    check_minimum_samples,
    check_pii,
    check_schema,
    check_split_leakage,
    dataset_checks,
    validate_frame,
)

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SETTINGS = Settings()
CHECK_NAMES = ["schema", "minimum_samples", "class_balance", "empty_texts", "duplicates", "split_leakage",
               "pii", "freshness"]


def good_rows(n: int = 1200, spam_every: int = 6) -> list[str]:
    """``n`` distinct ``label<TAB>text`` lines, one in ``spam_every`` spam."""
    return [f"{'spam' if i % spam_every == 0 else 'ham'}\tmessage {i} about the {i % 13} o'clock train"
            for i in range(n)]


def no_feedback(settings: Settings, *, until: datetime) -> pd.DataFrame:
    return empty_feedback()


def run(tmp_path: Path, content: bytes, name: str = "data.tsv"):
    path = tmp_path / name
    path.write_bytes(content)
    return validate_dataset(SETTINGS, now=NOW, source_uri=str(path), feedback_loader=no_feedback)


# ------------------------------------------------------------------------------- bad inputs corpus
BAD_INPUTS = {
    "empty_file": (b"", "readable", "is empty"),
    "header_only": (b"label\ttext\n", "readable", "no data rows (only a header)"),
    "missing_tab": ("\n".join(good_rows(3) + ["spam WIN a prize no tab"]).encode(), "readable",
                    "line 4: expected 'label<TAB>text' (2 fields), found no tab"),
    "extra_columns": ("\n".join(good_rows(2) + ["ham\thello\t2026-01-01"]).encode(), "readable",
                      "line 3: expected 'label<TAB>text' (2 fields), found 3 tab-separated fields"),
    "unknown_labels": ("\n".join(good_rows(4) + ["spma\tfree entry"]).encode(), "readable",
                       "1 row(s) with an unknown label (expected one of ['ham', 'spam']): line 5: 'spma'"),
    "non_utf8": (b"ham\tfine\nham\tok\nspam\tcaf\xe9 prize\n", "readable",
                 "line 3: not valid UTF-8 (byte 0xe9)"),
    "binary_garbage": (bytes(range(256)) * 64, "readable", "contains NUL bytes"),
    "ten_mb_line": (("ham\thello\n" + "ham\t" + "x" * 10_000_000 + "\n").encode(), "readable",
                    "line 2: 10,000,004 characters long (limit 100,000)"),
    "one_class_only": ("\n".join(f"ham\tordinary message {i}" for i in range(1200)).encode(), "class_balance",
                       "label counts {'ham': 1200, 'spam': 0}; minority share 0.0%"),
    "half_duplicates": ("\n".join(good_rows(600) * 2).encode(), "duplicates",
                        "600 repeated text(s) (50.0%); first repeats at rows 601, 602, 603, 604, 605 (and 595 more)"),
    "too_few_rows": ("\n".join(good_rows(40)).encode(), "minimum_samples", "40 rows, need at least 1000"),
    "mostly_empty_texts": ("\n".join(good_rows(700) + ["ham\t   " for _ in range(300)]).encode(),
                           "empty_texts", "300 empty or whitespace-only text(s) (30.0%) at rows 701, 702"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_naming_the_problem(tmp_path, case):
    content, check, message = BAD_INPUTS[case]
    result = run(tmp_path, content)
    assert result.passed is False
    failed = {c.name: c.details for c in result.failures()}
    assert check in failed, failed
    assert message in failed[check]
    with pytest.raises(ValueError, match="did not pass validation; nothing to snapshot"):  # no training data
        snapshot_validated(LocalStore(tmp_path / "store"), result, expected_digest=result.digest or "")
    assert not (tmp_path / "store").exists()


def test_unreadable_source_is_one_failed_readable_check(tmp_path):
    result = run(tmp_path, b"")
    assert [c.name for c in result.dataset.checks] == ["readable"]
    assert result.frame is None and result.digest is None
    assert "| readable | FAILED | 0 | 1 | yes |" in render_markdown(result)


def test_good_input_passes_every_blocking_check(tmp_path):
    result = run(tmp_path, "\n".join(good_rows()).encode())
    assert result.passed
    assert [c.name for c in result.dataset.checks] == CHECK_NAMES
    assert [c.verdict for c in result.dataset.checks] == ["ok"] * 8
    assert result.source_rows == 1200 and result.feedback_rows == 0 and result.feedback is None
    summary = result.summary()
    assert summary["failures"] == [] and summary["rows"] == {"source": 1200, "feedback": 0, "total": 1200}
    assert '"passed": true' in render_json(result)


def test_feedback_is_checked_alone_and_combined(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text("\n".join(good_rows()), encoding="utf-8")

    def feedback(settings: Settings, *, until: datetime) -> pd.DataFrame:
        return pd.DataFrame({"label": ["spam", "ham", "spma"], "text": ["call 07700 900123", "", "x"],
                             "timestamp": pd.to_datetime(["2026-02-28", "2026-03-01", "2026-03-01"], utc=True)})

    result = validate_dataset(SETTINGS, now=NOW, source_uri=str(path), feedback_loader=feedback)
    assert result.feedback_rows == 3 and result.source_rows == 1200
    failures = {c.name: c.details for c in result.failures()}
    assert list(failures) == ["schema", "feedback.schema", "feedback.empty_texts"]
    assert failures["schema"] == "1 unknown label(s) ['spma'] (expected ['ham', 'spam']) at row 1203"
    assert failures["feedback.empty_texts"] == "1 empty or whitespace-only text(s) (33.3%) at row 2"
    fresh = {c.name: c for c in result.dataset.checks}["freshness"]
    assert fresh.passed and fresh.score == pytest.approx(1 + 8 / 24, abs=1e-3)


# ------------------------------------------------------------------------------------ each check
def frame(labels: list[str], texts: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"label": labels, "text": texts})


def test_schema():
    assert check_schema(frame(["ham"], ["hi"]), SETTINGS).passed
    missing = check_schema(pd.DataFrame({"text": ["hi"]}), SETTINGS)
    assert (missing.passed, missing.details) == (False, "missing column(s) ['label']")
    bad = check_schema(pd.DataFrame({"label": ["ham", "eggs", "ham"], "text": ["a", "b", 3],
                                     "line": [4, 9, 12]}), SETTINGS)
    assert bad.details == ("1 non-string text(s) at line 12; 1 unknown label(s) ['eggs'] "
                           "(expected ['ham', 'spam']) at line 9")


def test_unknown_label_that_is_really_a_text_is_redacted():
    swapped = check_schema(frame(["mail me: a.b@example.com", "ham"], ["spam", "hi"]), SETTINGS)
    assert "['mail me: [EMAIL]']" in swapped.details and "example.com" not in swapped.details


@pytest.mark.parametrize(("rows", "passed"), [(999, False), (1000, True)])
def test_minimum_samples_boundary(rows, passed):
    result = check_minimum_samples(frame(["ham"] * rows, ["x"] * rows), SETTINGS)
    assert (result.passed, result.score, result.threshold) == (passed, float(rows), 1000.0)


@pytest.mark.parametrize(("spam", "passed"), [(4, False), (5, True)])
def test_class_balance_boundary(spam, passed):
    result = check_class_balance(frame(["spam"] * spam + ["ham"] * (100 - spam), ["x"] * 100), SETTINGS)
    assert (result.passed, result.score) == (passed, pytest.approx(spam / 100))


@pytest.mark.parametrize(("empty", "passed"), [(20, True), (21, False)])
def test_empty_texts_boundary(empty, passed):
    result = check_empty_texts(frame(["ham"] * 100, [" \t"] * empty + ["x"] * (100 - empty)), SETTINGS)
    assert (result.passed, result.score) == (passed, pytest.approx(empty / 100))


def test_duplicates_are_judged_after_normalization():
    result = check_duplicates(frame(["ham"] * 4, ["Hello  World", "hello world", "other", "x"]), SETTINGS)
    assert (result.passed, result.score) == (False, pytest.approx(0.25))
    assert "1 repeated text(s) (25.0%); first repeats at row 2" in result.details


def test_split_leakage_detects_shared_texts_and_the_gate_split_has_none():
    leaked = check_split_leakage(frame(["ham", "spam"], ["same text", "a"]), frame(["ham"], ["Same  TEXT"]))
    assert (leaked.passed, leaked.score, leaked.details) == (False, 1.0, "1 text(s) in both train and test")
    rows = [(("spam" if i % 5 == 0 else "ham"), f"text {i % 300}") for i in range(900)]  # 2/3 repeats
    clean = check_leakage(pd.DataFrame(rows, columns=["label", "text"]), SETTINGS)
    assert (clean.name, clean.passed, clean.score) == ("split_leakage", True, 0.0)
    impossible = check_leakage(frame(["ham"] * 10, [f"t{i}" for i in range(10)]), SETTINGS)
    assert impossible.passed is False and impossible.details.startswith("no train/test split possible")


def test_pii_counts_without_values_and_does_not_block():
    result = check_pii(frame(["spam", "ham", "ham", "spam"], [
        "Call 09061701461 to claim", "mail jo@example.org", "nothing here", "card 4111 1111 1111 1111"]), SETTINGS)
    assert (result.passed, result.blocking, result.verdict) == (False, False, "WARNING")
    assert result.score == pytest.approx(0.75)
    assert result.details == ("3 message(s) (75.0%) hold personal data: 1 phone number(s), 1 e-mail(s), "
                              "1 card-like number(s) at rows 1, 2, 4; redacted in logs and alerts")
    assert check_pii(frame(["ham"], ["see you at 6"]), SETTINGS).passed


def test_freshness():
    plain = frame(["ham"], ["x"])
    assert check_freshness(plain, SETTINGS, now=NOW).details == (
        "not judged: no timestamped feedback or snapshots")
    assert check_freshness(plain, SETTINGS, timestamps=[NOW]).details == "not judged: no reference time given"
    fresh = check_freshness(plain, SETTINGS, now=NOW, timestamps=[NOW - timedelta(days=45),
                                                                   NOW - timedelta(days=30)])
    assert (fresh.passed, fresh.score, fresh.blocking) == (True, 30.0, False)
    stale = check_freshness(plain, SETTINGS, now=NOW, timestamps=[datetime(2026, 1, 1)])  # naive = UTC
    assert (stale.passed, stale.verdict) == (False, "WARNING")
    assert stale.details == "newest data 2026-01-01 00:00 UTC is 60.3 day(s) old (limit 30)"
    column = plain.assign(timestamp=[pd.Timestamp("2026-03-01T08:00:00Z")])
    assert check_freshness(column, SETTINGS, now=NOW, timestamps=[datetime(2025, 1, 1, tzinfo=UTC)]).score == 1.0


def test_default_checks_are_the_full_list_and_the_gate_raises():
    assert [getattr(c, "__name__", None) for c in DATASET_CHECKS] == [f"check_{n}" if n != "split_leakage"
                                                                      else "check_leakage" for n in CHECK_NAMES]
    assert [c.func.__name__ for c in dataset_checks(now=NOW)[-1:]] == ["check_freshness"]
    report = validate_frame(frame(["ham"] * 3, ["a", "b", "c"]), SETTINGS, source="three.tsv")
    assert [c.name for c in report.checks] == CHECK_NAMES
    with pytest.raises(DataValidationError, match=r"^dataset three.tsv failed validation: minimum_samples "
                                                  r"FAILED: 3 rows, need at least 1000"):
        report.raise_for_failures()


def test_describe_says_failed_or_warning():
    assert CheckResult("x", 2, 1, False, "d").describe() == "x FAILED: d (score 2, limit 1)"
    assert CheckResult("x", 2, 1, False, "d", blocking=False).describe() == "x WARNING: d (score 2, limit 1)"
