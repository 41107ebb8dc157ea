"""Registry facade and idempotent steps against a real mlflow server (Postgres store, local artifacts)."""

from __future__ import annotations

import uuid

import mlflow
import mlflow.sklearn
import pandas as pd
import pytest
from sklearn.naive_bayes import ComplementNB

from autoretrain import lineage, registry, tracking
from autoretrain.config import load_settings
from autoretrain.db.engine import database_url, make_engine
from autoretrain.training.families import build_pipeline
from autoretrain.training.steps import (
    SKOPS_TRUSTED_TYPES,
    RunKey,
    load_data,
    pinned_requirements,
    train_family,
    validate_data,
)

pytestmark = pytest.mark.integration

TEXTS = ["win a free prize now", "call to claim your cash award", "see you at lunch", "ok thanks, talk later"] * 10
LABELS = ["spam", "spam", "ham", "ham"] * 10


@pytest.fixture
def settings(mlflow_server, model_name, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    return load_settings().with_overrides({"model_name": model_name, "experiment_name": "registry-tests",
                                           "cv_folds": 2})


@pytest.fixture
def engine(settings):
    """AutoRetrain's database (the session's, migrated): where registration records each version."""
    engine = make_engine(database_url(settings))
    yield engine
    engine.dispose()


def _logged_model(settings) -> tuple[str, str]:
    """Fit a tiny pipeline and log it: (run_id, model_uri)."""
    client = tracking.client_for(settings)
    experiment = tracking.ensure_experiment(client, settings.experiment_name)
    pipe = build_pipeline(ComplementNB()).fit(pd.DataFrame({"text": TEXTS}), LABELS)
    with mlflow.start_run(experiment_id=experiment) as run:
        info = mlflow.sklearn.log_model(pipe, name="model", pip_requirements=pinned_requirements(),
                                        skops_trusted_types=list(SKOPS_TRUSTED_TYPES))
    return run.info.run_id, info.model_uri


def test_register_is_idempotent_and_load_is_verified(settings, engine):
    client = tracking.client_for(settings)
    run_id, uri = _logged_model(settings)
    first = registry.register_version(client, name=settings.model_name, model_uri=uri, run_id=run_id, engine=engine)
    again = registry.register_version(client, name=settings.model_name, model_uri=uri, run_id=run_id, engine=engine)
    assert first.version == again.version == "1"
    assert len(client.search_model_versions(f"name = '{settings.model_name}'")) == 1
    assert first.sha256 and len(first.sha256) == 64
    registry.set_alias(client, settings.model_name, registry.CHAMPION, first.version)
    model, ref = registry.load_verified(client, settings.model_name, registry.CHAMPION, engine=engine)
    assert ref.version == "1" and ref.sha256 == first.sha256
    assert list(model.predict(pd.DataFrame({"text": ["free prize", "lunch later"]}))) == ["spam", "ham"]


def test_tampered_artifact_is_refused(settings, mlflow_server, engine):
    client = tracking.client_for(settings)
    run_id, uri = _logged_model(settings)
    ref = registry.register_version(client, name=settings.model_name, model_uri=uri, run_id=run_id, engine=engine)
    model_id = uri.removeprefix("models:/")
    stored = [p for p in mlflow_server.artifacts.rglob("model.skops") if model_id in p.as_posix()]
    assert len(stored) == 1, stored
    with stored[0].open("ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(registry.ModelIntegrityError, match=f"version {ref.version}.*does not match"):
        registry.load_verified(client, settings.model_name, ref.version, engine=engine)


def test_version_without_record_is_refused(settings, engine):
    client = tracking.client_for(settings)
    _, uri = _logged_model(settings)
    mv = mlflow.register_model(uri, settings.model_name)  # bypasses the facade: no model_artifacts record
    with pytest.raises(registry.ModelIntegrityError, match="was not registered by AutoRetrain"):
        registry.load_verified(client, settings.model_name, str(mv.version), engine=engine)


def test_unknown_alias_is_a_clear_error(settings):
    client = tracking.client_for(settings)
    assert registry.alias_version(client, settings.model_name, "champion") is None
    with pytest.raises(registry.RegistryError, match="no version or alias 'champion'"):
        registry.get_version(client, settings.model_name, "champion")


def test_retried_steps_reuse_their_runs(settings):
    client = tracking.client_for(settings)
    key = RunKey("test", uuid.uuid4().hex)
    loaded = load_data(settings, key)
    assert load_data(settings, key)["parent_run_id"] == loaded["parent_run_id"]
    validate_data(settings, parent_run_id=loaded["parent_run_id"])
    first = train_family(settings, parent_run_id=loaded["parent_run_id"], family="complement_nb")
    again = train_family(settings, parent_run_id=loaded["parent_run_id"], family="complement_nb")
    assert again["run_id"] == first["run_id"] and again["model_uri"] == first["model_uri"]
    experiment = tracking.ensure_experiment(client, settings.experiment_name)
    runs = client.search_runs([experiment], filter_string=f"tags.`{lineage.RUN_KEY}` LIKE '{key}%'")
    assert len(runs) == 2  # one parent, one family child
