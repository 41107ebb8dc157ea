"""``settings_for``: what a run's conf may change, checked against each DAG's declared Params (no scheduler)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from autoretrain.airflow.context import settings_for
from autoretrain.config import RunOverrideRefused, load_settings
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(ROOT / "dags"))


def _context(dag, conf: dict) -> dict:
    params = {name: dag.params[name] for name in dag.params}
    params.update(conf)  # as Airflow merges the conf into the Params
    return {"dag": dag, "params": params, "dag_run": SimpleNamespace(conf=conf)}


@pytest.mark.parametrize(("dag_id", "conf", "message"), [
    ("training", {"accuracy_min": 0}, "accuracy_min=0.0 is below the configured"),
    ("training", {"database_url": "sqlite:////tmp/x.db"}, "conf key(s) ['database_url'] are not Params"),
    ("training", {"tracking_uri": "http://10.0.0.1:5000"}, "conf key(s) ['tracking_uri'] are not Params"),
    ("dataset_validation", {"feedback_uri": "/etc/passwd"}, "conf key(s) ['feedback_uri'] are not Params"),
    ("dataset_validation", {"minimum_samples": 10}, "minimum_samples=10 is below the configured 1000"),
    ("retrain_compare_promote", {"bogus": 1, "f1_min": 0}, "conf key(s) ['bogus', 'f1_min'] are not Params"),
    ("monitoring", {"model_name": "other"}, "conf key(s) ['model_name'] are not Params"),
])
def test_forged_conf_is_refused(dagbag, dag_id: str, conf: dict, message: str) -> None:
    with pytest.raises(RunOverrideRefused) as info:
        settings_for(_context(dagbag.dags[dag_id], conf))
    assert message in str(info.value)


def test_declared_params_and_tighter_gates_apply(dagbag) -> None:
    worker = load_settings()
    settings = settings_for(_context(dagbag.dags["training"], {"f1_min": 0.95, "families": ["sgd"]}))
    assert (settings.f1_min, settings.families, settings.database_url) == (0.95, ("sgd",), worker.database_url)
    assert settings_for(_context(dagbag.dags["retrain_compare_promote"], {"force": True, "reason": "x"})) == worker
