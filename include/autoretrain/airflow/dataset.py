"""The dataset gate shared by the DAGs: validate (report + verdict), then snapshot what passed.

:class:`ValidateDatasetOperator` runs :func:`autoretrain.data.dataset_validation.validate_dataset`
on the configured source and the feedback up to the run's data interval end, writes the report
(``report.json`` + ``report.md``) to the artifact store, and fails with :class:`DatasetRejected`
(no retry) when a blocking check fails; the failure callback turns that into a
``validation_failed`` alert. :class:`SnapshotDatasetOperator` stores the validated rows under their
digest and emits :data:`VALIDATED_DATASET`. :class:`StaleDataAlertOperator` sends the
``stale_data`` alert when the validation's freshness warning says no new labelled data came in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowSkipException

from autoretrain.airflow.alerting import DeliveryRecord
from autoretrain.airflow.assets import VALIDATED_DATASET
from autoretrain.airflow.context import run_time, settings_for
from autoretrain.airflow.errors import DatasetRejected, maps_errors
from autoretrain.data.payloads import DatasetVerdict, SnapshotRecord

if TYPE_CHECKING:
    from pydantic import JsonValue


def _report_prefix(context: Mapping[str, Any]) -> str:
    safe_run = re.sub(r"[^A-Za-z0-9._-]+", "_", str(context["run_id"]))
    return f"{context['dag'].dag_id}/{safe_run}"


class ValidateDatasetOperator(BaseOperator):
    """Run every dataset check on source + feedback; write the report; fail on a blocking failure.

    ``feedback_loader`` is ``"package.module:function"`` (``(settings, *, until) -> DataFrame``);
    the default reads ``Settings.feedback_uri``. The XCom is the report summary.
    """

    template_fields: Sequence[str] = ("feedback_loader",)
    ui_color = "#e8f4fd"

    def __init__(self, *, feedback_loader: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.feedback_loader = feedback_loader

    @maps_errors
    def execute(self, context: Context) -> DatasetVerdict:
        from autoretrain.data.dataset_validation import render_json, render_markdown, validate_dataset
        from autoretrain.data.feedback import resolve_loader
        from autoretrain.data.snapshots import artifact_store, snapshot_times, write_report

        settings = settings_for(context)
        store = artifact_store(settings)
        times = snapshot_times(store)
        result = validate_dataset(settings, now=run_time(context), snapshot_times=times,
                                  feedback_loader=resolve_loader(self.feedback_loader))
        locations = write_report(store, _report_prefix(context), {"report.json": render_json(result),
                                                                   "report.md": render_markdown(result)})
        full = result.summary()
        # the full reports are in the artifact store; keep the XCom small
        summary: DatasetVerdict = {"source": full["source"], "passed": full["passed"], "digest": full["digest"],
                                   "rows": full["rows"], "now": full["now"], "failures": full["failures"],
                                   "warnings": full["warnings"], "report": locations}
        for line in render_markdown(result).splitlines():
            self.log.info("%s", line)
        if not result.passed:
            raise DatasetRejected(summary)
        return summary


class SnapshotDatasetOperator(BaseOperator):
    """Store the validated rows under their digest (once) and emit :data:`VALIDATED_DATASET`.

    Reads source and feedback again (feedback up to the same data interval end) and refuses to
    store anything whose digest differs from the validated one.
    """

    template_fields: Sequence[str] = ("validated", "feedback_loader")
    ui_color = "#e9f7ef"

    def __init__(self, *, validated: Any, feedback_loader: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("outlets", [VALIDATED_DATASET])
        super().__init__(**kwargs)
        self.validated: DatasetVerdict = validated  # an XComArg until Airflow renders it for execute
        self.feedback_loader = feedback_loader

    @maps_errors
    def execute(self, context: Context) -> SnapshotRecord:
        from autoretrain.data.dataset_validation import snapshot_validated, validate_dataset
        from autoretrain.data.feedback import resolve_loader
        from autoretrain.data.snapshots import artifact_store

        settings = settings_for(context)
        store = artifact_store(settings)
        result = validate_dataset(settings, now=run_time(context), feedback_loader=resolve_loader(self.feedback_loader))
        # changed or failing data is refused (SnapshotRefused: the next run deals with it)
        snapshot = snapshot_validated(store, result, expected_digest=self.validated["digest"])
        extra: dict[str, JsonValue] = {"digest": snapshot.digest, "rows": snapshot.rows, "uri": snapshot.uri}
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = extra
        return snapshot.as_dict()


class StaleDataAlertOperator(BaseOperator):
    """Alert when no new labelled data arrived within ``freshness_days``; skip when the data is fresh.

    ``validated`` is :class:`ValidateDatasetOperator`'s summary: its ``freshness`` warning (newest
    feedback timestamp or snapshot first seen, judged at the run's data interval end) decides.
    """

    template_fields: Sequence[str] = ("validated",)
    ui_color = "#fdecea"

    def __init__(self, *, validated: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validated: DatasetVerdict = validated  # an XComArg until Airflow renders it for execute

    @maps_errors
    def execute(self, context: Context) -> DeliveryRecord:
        from autoretrain.airflow.alerting import send_alert
        from autoretrain.airflow.context import airflow_url
        from autoretrain.alerts.messages import stale_data_alert
        from autoretrain.data.dataset_validation import freshness_warning

        stale = freshness_warning(self.validated)
        if stale is None:
            raise AirflowSkipException("labelled data is fresh (or its age is not known): no alert")
        alert = stale_data_alert(source=self.validated["source"], age_days=stale["score"],
                                 limit_days=stale["threshold"], details=stale["details"], run_id=context["run_id"],
                                 airflow_url=airflow_url(context))
        return send_alert(alert, settings_for(context), context=context).as_dict()
