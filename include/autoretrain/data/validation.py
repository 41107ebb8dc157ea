"""Dataset checks: small named units, each with its declared limit, score and verdict.

Every check returns a :class:`CheckResult`; the limit used travels with the result into MLflow,
logs and alerts. A failed *blocking* check stops training (:meth:`ValidationReport.raise_for_failures`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from autoretrain.config import Settings
from autoretrain.data.prepare import normalize_text, shared_texts

log = logging.getLogger(__name__)


class DataValidationError(ValueError):
    """A dataset failed one or more blocking checks; the message lists each one."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        failed = "; ".join(r.describe() for r in report.failures)
        super().__init__(f"dataset {report.source} failed validation: {failed}")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: its score against its limit, and whether it passed."""

    name: str
    score: float
    threshold: float
    passed: bool
    details: str = ""
    blocking: bool = True

    def describe(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return f"{self.name} {verdict}: {self.details} (score {self.score:.4g}, limit {self.threshold:.4g})"


@dataclass(frozen=True)
class ValidationReport:
    """All check results for one dataset."""

    source: str
    checks: tuple[CheckResult, ...] = field(default_factory=tuple)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.blocking and not c.passed]

    @property
    def passed(self) -> bool:
        return not self.failures

    def raise_for_failures(self) -> None:
        if self.failures:
            raise DataValidationError(self)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "passed": self.passed, "checks": [asdict(c) for c in self.checks]}


Check = Callable[[pd.DataFrame, Settings], CheckResult]


def check_schema(frame: pd.DataFrame, settings: Settings) -> CheckResult:
    """Columns ``label`` and ``text`` exist, texts are strings, labels are in the label set."""
    missing = [c for c in ("label", "text") if c not in frame.columns]
    if missing:
        return CheckResult("schema", 0.0, 1.0, False, f"missing column(s) {missing}")
    non_str = int((~frame["text"].map(lambda v: isinstance(v, str))).sum())
    unknown = sorted(set(frame["label"].astype(str)) - set(settings.labels))
    ok = non_str == 0 and not unknown
    details = "columns, types and labels as expected" if ok else (
        f"{non_str} non-string text(s); unknown labels {unknown} (expected {list(settings.labels)})")
    return CheckResult("schema", 1.0 if ok else 0.0, 1.0, ok, details)


def check_minimum_samples(frame: pd.DataFrame, settings: Settings) -> CheckResult:
    """At least ``minimum_samples`` rows."""
    n = len(frame)
    return CheckResult("minimum_samples", float(n), float(settings.minimum_samples),
                       n >= settings.minimum_samples, f"{n} rows, need at least {settings.minimum_samples}")


def check_class_balance(frame: pd.DataFrame, settings: Settings) -> CheckResult:
    """Each label holds at least ``min_minority_share`` of the rows (one class only fails)."""
    counts = frame["label"].value_counts().reindex(list(settings.labels), fill_value=0)
    share = float(counts.min() / max(len(frame), 1))
    return CheckResult("class_balance", share, settings.min_minority_share,
                       share >= settings.min_minority_share,
                       f"label counts {counts.to_dict()}; minority share {share:.1%}")


def check_empty_texts(frame: pd.DataFrame, settings: Settings) -> CheckResult:
    """Empty or whitespace-only texts are at most ``max_empty_share`` of the rows."""
    empty = int(frame["text"].astype(str).str.strip().eq("").sum())
    share = empty / max(len(frame), 1)
    return CheckResult("empty_texts", share, settings.max_empty_share, share <= settings.max_empty_share,
                       f"{empty} empty or whitespace-only text(s) ({share:.1%})")


def check_duplicates(frame: pd.DataFrame, settings: Settings) -> CheckResult:
    """Repeated texts (after normalization) are at most ``max_duplicate_share`` of the rows."""
    repeats = int(frame["text"].map(normalize_text).duplicated().sum())
    share = repeats / max(len(frame), 1)
    return CheckResult("duplicates", share, settings.max_duplicate_share,
                       share <= settings.max_duplicate_share,
                       f"{repeats} repeated text(s) ({share:.1%}); duplicates are dropped before the split")


BASIC_CHECKS: tuple[Check, ...] = (check_schema, check_minimum_samples, check_class_balance,
                                   check_empty_texts, check_duplicates)


def validate_frame(frame: pd.DataFrame, settings: Settings, *, source: str,
                   checks: tuple[Check, ...] = BASIC_CHECKS) -> ValidationReport:
    """Run ``checks`` on ``frame`` and log each verdict."""
    results = []
    for check in checks:
        result = check(frame, settings)
        (log.info if result.passed else log.warning)("check %s", result.describe())
        results.append(result)
    return ValidationReport(source=source, checks=tuple(results))


def check_split_leakage(train: pd.DataFrame, test: pd.DataFrame) -> CheckResult:
    """No normalized text appears on both sides of the split."""
    shared = shared_texts(train, test)
    return CheckResult("split_leakage", float(shared), 0.0, shared == 0,
                       f"{shared} text(s) in both train and test")
