"""A frame a task cannot read: missing (a failed load, no retry) vs there but unreadable for now (retry)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from autoretrain import tracking
from autoretrain.errors import TransientError


@pytest.fixture
def client_and_run(tmp_path: Path) -> tuple[MlflowClient, str]:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("frames", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    tracking.log_frame(client, run.info.run_id, pd.DataFrame({"text": ["hi"], "label": ["ham"]}), "train")
    return client, run.info.run_id


def test_a_logged_frame_reads_back(client_and_run: tuple[MlflowClient, str]) -> None:
    client, run_id = client_and_run
    assert tracking.load_frame(client, run_id, "train").to_dict("records") == [{"text": "hi", "label": "ham"}]


def test_a_missing_frame_is_not_retried(client_and_run: tuple[MlflowClient, str]) -> None:
    client, run_id = client_and_run
    with pytest.raises(tracking.ArtifactMissing, match="has no data/holdout.parquet") as caught:
        tracking.load_frame(client, run_id, "holdout")
    assert not caught.value.retryable


def test_a_frame_that_is_there_but_unreadable_for_now_is_retried(client_and_run: tuple[MlflowClient, str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    client, run_id = client_and_run

    def flaky(*_: object, **__: object) -> str:
        raise MlflowException("API request to endpoint /api/2.0/mlflow-artifacts/artifacts failed with error code 500")

    monkeypatch.setattr(client, "download_artifacts", flaky)
    with pytest.raises(TransientError, match="could not read data/train.parquet") as caught:
        tracking.load_frame(client, run_id, "train")
    assert caught.value.retryable
