"""Operators of the ``maintenance`` DAG: thin over :mod:`autoretrain.maintenance`.

Both take ``dry_run`` from the run's Params, the time from the run's data interval end (a
retried task uses the same cut-offs), and return what they purged as the XCom; the counts and
durations are in the task log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context

from autoretrain.airflow.context import run_time, settings_for
from autoretrain.airflow.errors import maps_errors

if TYPE_CHECKING:  # pandas (snapshots) and SQLAlchemy stay out of DAG parsing
    from autoretrain.maintenance.artifacts import ArtifactsPurgeRecord
    from autoretrain.maintenance.retention import RowsPurgeRecord


def _dry_run(context: Context) -> bool:
    return bool((context.get("params") or {}).get("dry_run"))


class PurgeRowsOperator(BaseOperator):
    """Purge prediction-log and feedback rows past ``retention_days`` and redact old texts."""

    ui_color = "#f3e8fd"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    @maps_errors
    def execute(self, context: Context) -> RowsPurgeRecord:
        from autoretrain.maintenance.retention import purge_database

        return purge_database(settings_for(context), now=run_time(context), dry_run=_dry_run(context)).as_dict()


class PurgeArtifactsOperator(BaseOperator):
    """Delete old dataset snapshots (not the newest ``snapshot_keep``, none a version used) and reports."""

    ui_color = "#f3e8fd"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    @maps_errors
    def execute(self, context: Context) -> ArtifactsPurgeRecord:
        from autoretrain.maintenance.artifacts import purge_store

        return purge_store(settings_for(context), now=run_time(context), dry_run=_dry_run(context))
