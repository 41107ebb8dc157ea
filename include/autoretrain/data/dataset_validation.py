"""Validate a dataset source plus accumulated feedback, render the report, snapshot what passed.

The weekly ``dataset_validation`` DAG, the training gate and ``autoretrain validate`` all run
:func:`validate_dataset`: the configured source (``Settings.data_uri``) and the feedback up to the
run's data interval end are combined; every check of :data:`~autoretrain.data.validation.DATASET_CHECKS`
runs on the combination (freshness judged at ``now`` over feedback timestamps and snapshot times),
and the feedback alone gets the per-row checks. A source that cannot be read is a failed
``readable`` check, so every problem comes back as a report, not as a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from autoretrain.config import Settings
from autoretrain.data.feedback import FeedbackLoader, empty_feedback, load_feedback
from autoretrain.data.payloads import CheckSummary, DatasetSummary
from autoretrain.data.pii import redact
from autoretrain.data.snapshots import ArtifactStore, Snapshot, write_snapshot
from autoretrain.data.sources import DataSourceError, SourcePolicy, frame_digest, read_dataset, redact_uri
from autoretrain.data.validation import (
    FEEDBACK_CHECKS,
    CheckResult,
    ValidationReport,
    dataset_checks,
    unreadable_report,
    validate_frame,
)
from autoretrain.errors import AutoRetrainError

log = logging.getLogger(__name__)


class SnapshotRefused(AutoRetrainError, ValueError):
    """The rows to snapshot failed validation or changed since they were validated (no retry helps)."""


@dataclass(frozen=True)
class DatasetValidation:
    """The reports of one validation, and the validated rows when the source could be read."""

    source: str
    now: datetime
    dataset: ValidationReport
    feedback: ValidationReport | None = None
    frame: pd.DataFrame | None = None  # label, text: what a snapshot stores
    source_rows: int = 0
    feedback_rows: int = 0

    @property
    def passed(self) -> bool:
        return self.dataset.passed and (self.feedback is None or self.feedback.passed)

    @property
    def digest(self) -> str | None:
        return frame_digest(self.frame) if self.frame is not None else None

    def failures(self) -> list[CheckResult]:
        """Blocking failures; feedback-only checks are prefixed ``feedback.``."""
        out = list(self.dataset.failures)
        if self.feedback is not None:
            out += [_prefixed(c) for c in self.feedback.failures]
        return out

    def summary(self) -> DatasetSummary:
        """JSON-able result (the XCom and ``report.json``)."""
        return {"source": self.source, "passed": self.passed, "digest": self.digest,
                "rows": {"source": self.source_rows, "feedback": self.feedback_rows,
                         "total": 0 if self.frame is None else len(self.frame)},
                "now": self.now.isoformat(),
                "failures": [_check_dict(c) for c in self.failures()],
                "warnings": [_check_dict(c) for c in self.dataset.warnings],
                "reports": {"dataset": self.dataset.as_dict(),
                            "feedback": None if self.feedback is None else self.feedback.as_dict()}}


def _prefixed(check: CheckResult) -> CheckResult:
    return CheckResult(f"feedback.{check.name}", check.score, check.threshold, check.passed, check.details,
                       check.blocking)


def freshness_warning(summary: Mapping[str, Any]) -> CheckSummary | None:
    """The failed ``freshness`` check of a validation summary (no new labelled data in time), or None."""
    for check in summary.get("warnings") or []:
        if check.get("name") == "freshness":
            return check
    return None


def _check_dict(check: CheckResult) -> CheckSummary:
    return {"name": check.name, "score": check.score, "threshold": check.threshold,
            "details": redact(check.details), "blocking": check.blocking}


def validate_dataset(settings: Settings, *, now: datetime, source_uri: str | None = None,
                     feedback_loader: FeedbackLoader = load_feedback,
                     snapshot_times: tuple[datetime, ...] | list[datetime] = ()) -> DatasetValidation:
    """Read the source (default ``settings.data_uri``) and feedback up to ``now``, and check both."""
    uri = source_uri or settings.resolved_data_uri()
    shown = redact_uri(uri)
    try:
        source = read_dataset(uri, labels=settings.labels, text_column=settings.text_column,
                              label_column=settings.label_column, policy=SourcePolicy.from_settings(settings)).frame
    except DataSourceError as err:
        log.warning("dataset %s cannot be read: %s", shown, redact(str(err)))
        return DatasetValidation(source=shown, now=now, dataset=unreadable_report(shown, str(err)))
    try:
        feedback = feedback_loader(settings, until=now)
    except DataSourceError as err:
        log.warning("feedback cannot be read: %s", redact(str(err)))
        return DatasetValidation(source=shown, now=now, dataset=validate_frame(
            source, settings, source=shown, checks=dataset_checks(now=now, timestamps=snapshot_times)),
            feedback=unreadable_report("feedback", str(err)), frame=None, source_rows=len(source))
    feedback = feedback if len(feedback) else empty_feedback()
    combined = pd.concat([source.assign(timestamp=pd.NaT), feedback], ignore_index=True) if len(feedback) \
        else source
    checks = dataset_checks(now=now, timestamps=snapshot_times)
    dataset = validate_frame(combined, settings, source=shown, checks=checks)
    feedback_report = (validate_frame(feedback, settings, source="feedback", checks=FEEDBACK_CHECKS)
                       if len(feedback) else None)
    return DatasetValidation(source=shown, now=now, dataset=dataset, feedback=feedback_report,
                             frame=combined[["label", "text"]].reset_index(drop=True),
                             source_rows=len(source), feedback_rows=len(feedback))


def snapshot_validated(store: ArtifactStore, result: DatasetValidation, *, expected_digest: str | None) -> Snapshot:
    """Store the validated rows, after checking they are the rows the checks saw (same digest)."""
    if not result.passed or result.frame is None:
        raise SnapshotRefused(f"dataset {result.source} did not pass validation; nothing to snapshot")
    if result.digest != expected_digest:
        raise SnapshotRefused(f"dataset {result.source} changed since it was validated (digest "
                         f"{str(expected_digest)[:12]} -> {str(result.digest)[:12]}); the next run validates it")
    return write_snapshot(store, result.frame, source=result.source, now=result.now)


# ----------------------------------------------------------------------------------- rendering
def render_json(result: DatasetValidation) -> str:
    """The full report as JSON (details redacted)."""
    summary = result.summary()
    for report in (summary["reports"]["dataset"], summary["reports"]["feedback"]):
        for check in report["checks"] if report else []:
            check["details"] = redact(check["details"])
    return json.dumps(summary, indent=2, sort_keys=False)


def render_markdown(result: DatasetValidation) -> str:
    """The report as a Markdown page: verdict, counts, and one table row per check."""
    verdict = "PASSED" if result.passed else "FAILED"
    lines = [f"# Dataset validation: {verdict}", "",
             f"- source: `{result.source}`", f"- judged at: {result.now.isoformat()}",
             f"- rows: {result.source_rows} from the source + {result.feedback_rows} feedback",
             f"- digest: `{result.digest or 'n/a'}`", ""]
    for title, report in (("Dataset", result.dataset), ("Feedback alone", result.feedback)):
        if report is None:
            continue
        lines += [f"## {title}", "", "| check | verdict | score | limit | blocking | details |",
                  "|---|---|---|---|---|---|"]
        for c in report.checks:
            details = redact(c.details).replace("|", "\\|")
            lines.append(f"| {c.name} | {c.verdict} | {c.score:.4g} | {c.threshold:.4g} | "
                         f"{'yes' if c.blocking else 'no'} | {details} |")
        lines.append("")
    return "\n".join(lines)
