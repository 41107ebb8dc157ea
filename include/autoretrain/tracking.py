"""MLflow experiment runs: find-or-create by a stable key, and data snapshots as run artifacts.

A retried task looks its run up by the ``autoretrain.run_key`` tag (``<dag_id>/<run_id>[/<part>]``)
instead of creating a second one.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from autoretrain import lineage
from autoretrain.config import Settings
from autoretrain.errors import AutoRetrainError, TransientError

log = logging.getLogger(__name__)


class ArtifactMissing(AutoRetrainError, FileNotFoundError):
    """A run lacks an artifact an earlier step should have logged (that step failed or never ran)."""


def client_for(settings: Settings) -> MlflowClient:
    """An MlflowClient on the configured tracking URI (also set as mlflow's global URI)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tqdm bars in task logs
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # "View run <url>": may hold a password
    uri = settings.resolved_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created if needed (safe when two tasks race)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def find_run(client: MlflowClient, experiment_id: str, run_key: str) -> str | None:
    """The id of the run tagged with ``run_key``, or None."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{lineage.RUN_KEY}` = '{run_key}'",
                              max_results=1, order_by=["attributes.start_time ASC"])
    return runs[0].info.run_id if runs else None


def find_or_create_run(client: MlflowClient, experiment_id: str, *, run_key: str, run_name: str,
                       tags: Mapping[str, str] | None = None, parent_run_id: str | None = None) -> str:
    """The run tagged with ``run_key``; created (as a child of ``parent_run_id``) when missing."""
    existing = find_run(client, experiment_id, run_key)
    if existing:
        log.info("reusing MLflow run %s for %s", existing, run_key)
        return existing
    all_tags = {lineage.RUN_KEY: run_key, **(tags or {})}
    if parent_run_id:
        all_tags[lineage.MLFLOW_PARENT_RUN_ID] = parent_run_id
    run = client.create_run(experiment_id, run_name=run_name, tags=all_tags)
    log.info("created MLflow run %s (%s) for %s", run.info.run_id, run_name, run_key)
    return run.info.run_id


@contextmanager
def run_closed(client: MlflowClient, run_id: str) -> Generator[None, None, None]:
    """A step's work on ``run_id``: the run ends FINISHED when the block ends, FAILED when it raises.

    Runs made with ``client.create_run`` stay RUNNING until someone ends them; every run AutoRetrain
    creates ends in one of the two states, so the MLflow UI never shows a run that is long over as
    "Running". A retried step reopens the run it finds and ends it again.
    """
    try:
        yield
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def log_json(client: MlflowClient, run_id: str, payload: Mapping[str, Any], path: str) -> None:
    """Store a JSON-able mapping (a step's payload) as the artifact ``path`` of the run."""
    client.log_dict(run_id, dict(payload), path)


def log_frame(client: MlflowClient, run_id: str, frame: pd.DataFrame, name: str) -> None:
    """Store ``frame`` as ``data/<name>.parquet`` in the run (overwrites on retry)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), artifact_path=lineage.FRAMES_DIR)


def load_frame(client: MlflowClient, run_id: str, name: str) -> pd.DataFrame:
    """Read ``data/<name>.parquet`` back from the run."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, f"{lineage.FRAMES_DIR}/{name}.parquet", tmp)
        except MlflowException as err:
            if _frame_listed(client, run_id, name):  # there, but the read failed: MLflow or S3 for now
                raise TransientError(f"could not read {lineage.FRAMES_DIR}/{name}.parquet of MLflow run "
                                     f"{run_id}: {err}") from err
            raise ArtifactMissing(f"MLflow run {run_id} has no {lineage.FRAMES_DIR}/{name}.parquet; "
                                    "did its load/validate task succeed?") from err
        return pd.read_parquet(path)


def _frame_listed(client: MlflowClient, run_id: str, name: str) -> bool:
    """Whether the run lists ``data/<name>.parquet``; True when MLflow cannot even list (a transient fault)."""
    try:
        listed = client.list_artifacts(run_id, lineage.FRAMES_DIR)
    except MlflowException:
        return True
    return any(info.path.endswith(f"{name}.parquet") for info in listed)


def version_data_digests(client: MlflowClient, name: str) -> set[str]:
    """The data digests (whole, base dataset) of the training runs of every version of ``name``.

    What a snapshot purge must keep: the content each registered version was trained on.
    """
    digests: set[str] = set()
    runs: set[str] = set()
    for mv in client.search_model_versions(f"name = '{name}'"):
        run_id = (mv.tags or {}).get(lineage.PARENT_RUN_ID) or mv.run_id
        if run_id and run_id not in runs:
            runs.add(run_id)
            tags = client.get_run(run_id).data.tags
            digests.update(tags[key] for key in (lineage.DATA_DIGEST, lineage.BASE_DIGEST) if tags.get(key))
    return digests
