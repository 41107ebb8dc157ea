"""The JSON-able shapes of the data stage: check results, dataset summaries, snapshots (types only).

A leaf: ``TypedDict`` s and nothing else, so the operators of :mod:`autoretrain.airflow` can name
what they pass through XCom without importing pandas at DAG parse time. At run time every value
is a plain ``dict``.

No ``from __future__ import annotations`` here: ``TypedDict`` reads ``NotRequired`` from evaluated
annotations (with string annotations Python 3.11 counts every key in ``__required_keys__``).
"""

from typing import TypedDict


class CheckRecord(TypedDict):
    """:meth:`autoretrain.data.validation.CheckResult.as_dict`: one check, its score against its limit."""

    name: str
    score: float
    threshold: float
    passed: bool
    details: str
    blocking: bool


class ValidationReportRecord(TypedDict):
    """:meth:`autoretrain.data.validation.ValidationReport.as_dict`."""

    source: str
    passed: bool
    checks: list[CheckRecord]


class CheckSummary(TypedDict):
    """A failed or warning check in a dataset summary (details redacted; it failed, so no ``passed``)."""

    name: str
    score: float
    threshold: float
    details: str
    blocking: bool


class DedupSummary(TypedDict):
    """:meth:`autoretrain.data.prepare.DedupReport.as_dict`."""

    rows_in: int
    rows_out: int
    duplicates_dropped: int
    conflicting_texts_dropped: int


class FeedbackSummary(TypedDict):
    """:meth:`autoretrain.data.challenger.FeedbackReport.as_dict`: what happened to the labelled traffic."""

    rows_in: int
    already_in_base: int
    duplicates_dropped: int
    conflicting_texts_dropped: int
    rows_train: int
    rows_test: int


class RowCounts(TypedDict):
    """Rows of a validated dataset: from the source, from feedback, and both together."""

    source: int
    feedback: int
    total: int


class DatasetReports(TypedDict):
    """The full reports of a dataset validation (the feedback one only when there was feedback)."""

    dataset: ValidationReportRecord
    feedback: ValidationReportRecord | None


class DatasetSummary(TypedDict):
    """:meth:`autoretrain.data.dataset_validation.DatasetValidation.summary` (``report.json``)."""

    source: str
    passed: bool
    digest: str | None
    rows: RowCounts
    now: str  # ISO 8601
    failures: list[CheckSummary]
    warnings: list[CheckSummary]
    reports: DatasetReports


class RejectedDataset(TypedDict):
    """What a dataset rejection carries to its alert: the source and its blocking failures."""

    source: str
    passed: bool
    failures: list[CheckSummary]


class DatasetVerdict(TypedDict):
    """The XCom of the dataset gate: the summary without the full reports, and where they are stored."""

    source: str
    passed: bool
    digest: str | None
    rows: RowCounts
    now: str
    failures: list[CheckSummary]
    warnings: list[CheckSummary]
    report: dict[str, str]  # file name -> its URI in the artifact store


class SnapshotRecord(TypedDict):
    """:meth:`autoretrain.data.snapshots.Snapshot.as_dict`: a stored, validated dataset."""

    digest: str
    rows: int
    label_counts: dict[str, int]
    source: str
    first_seen: str  # ISO 8601, UTC
    uri: str
    created: bool
