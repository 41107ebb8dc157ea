"""Payload drift, end to end: the steps' results on a real MLflow server and Postgres match their TypedDicts.

One fast training run (``run_training``: every training step's payload nested in its result), the
comparison of that version with itself (the champion), and the monitoring steps on an hour with
no traffic. ``tests/unit/test_payloads.py`` checks the pure builders.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from autoretrain.config import load_settings
from autoretrain.monitoring import windows
from autoretrain.monitoring.payloads import MeasuredWindow, RetrainDecision, WindowRow
from autoretrain.promotion import rollout
from autoretrain.promotion.payloads import Comparison
from autoretrain.training.payloads import TrainingResult
from autoretrain.training.steps import RunKey, run_training
from tests.conftest import migrated
from tests.payloads import shape_errors

pytestmark = pytest.mark.integration


def test_step_results_match_their_payload_types(mlflow_server, postgres_db, model_name, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    db = migrated(postgres_db("payloads"))  # the prediction log the monitoring window reads (empty)
    settings = load_settings().with_overrides({
        "model_name": model_name, "experiment_name": f"payloads-{model_name}", "database_url": db,
        "monitoring_experiment": f"payloads-monitoring-{model_name}", "families": ["complement_nb"], "cv_folds": 3})

    trained = run_training(settings, RunKey("test_payloads", uuid.uuid4().hex[:12]))
    assert shape_errors(trained, TrainingResult) == []
    assert trained["alias"]["alias"] == "champion"

    compared = rollout.compare_challenger(settings, parent_run_id=trained["parent_run_id"],
                                          registered=trained["registered"])
    assert shape_errors(compared, Comparison) == []
    assert compared["promote"] is False  # the champion does not beat itself

    end = datetime(2026, 3, 2, 12, tzinfo=UTC)
    measured = windows.measure_window(settings, start=end - timedelta(hours=1), end=end)
    assert shape_errors(measured, MeasuredWindow) == []
    assert measured["insufficient_data"] is True and measured["n_predictions"] == 0
    decided = windows.decide_window(settings, start=end - timedelta(hours=1), end=end)
    assert shape_errors(decided, RetrainDecision) == []
    row = windows.read_window_row(settings, start=end - timedelta(hours=1), end=end)
    assert shape_errors(row, WindowRow) == []
    assert row is not None and row["decision"] == decided
