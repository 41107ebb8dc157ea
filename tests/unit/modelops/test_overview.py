"""The page's sections put together: Airflow's retrain runs joined to what each left in AutoRetrain's tables."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from autoretrain.config import load_settings
from autoretrain.db.engine import make_engine
from autoretrain.db.schema import alias_audit, drift_windows, model_artifacts
from autoretrain.modelops import overview, versions
from autoretrain.modelops.sections import Links, overview_page, run_tab
from tests.conftest import migrated

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def setup(tmp_path):
    url = migrated(f"sqlite:///{tmp_path / 'ops.db'}")
    settings = load_settings(environ={"AUTORETRAIN_MODEL_NAME": "sms", "AUTORETRAIN_DATABASE_URL": url,
                                      "AUTORETRAIN_TRACKING_URI": "http://mlflow:5000"})
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(alias_audit.insert().values(
            created_at=NOW, move_id="m1", model_name="sms", alias="champion", action="promote", from_version="1",
            to_version="2", actor="airflow:retrain_compare_promote.promote", run_id="retrain_compare_promote/r1",
            reason="promoted", reasons=json.dumps(["ok"]), metrics=json.dumps({"mcnemar": {"p_value": 0.003}}),
            idempotency_key="k1"))
        conn.execute(model_artifacts.insert().values(
            model_name="sms", version="2", run_id="run2", sha256="0" * 64, hmac="", format="skops",
            registered_at=NOW, registered_by="training/t2"))
        start = NOW - timedelta(hours=6)
        conn.execute(drift_windows.insert().values(
            model_name="sms", window_start=start, window_end=NOW, model_version="1", n_predictions=5, n_labelled=2,
            insufficient_data=False, drifted=True, report=json.dumps({"results": [
                {"name": "vocab", "score": 0.5, "threshold": 0.2, "drifted": True}]}), mlflow_run_id="mon1",
            retrain=True, decision=json.dumps({"retrain": True, "reasons": ["vocab"], "streak": 1}),
            action="retrain triggered", computed_at=NOW))
    cache = versions.VersionCache(ttl=60)
    yield settings, engine, cache
    engine.dispose()


def test_the_timeline_starts_from_airflows_runs_and_reads_the_trigger_from_their_conf(setup) -> None:
    settings, engine, _ = setup
    runs = [{"run_id": "r2", "state": "running", "start": None, "run_type": "manual", "conf": {"reason": "a person"}},
            {"run_id": "r1", "state": "success", "start": NOW.isoformat(), "run_type": "manual",
             "conf": {"reason": "drift detected by monitoring", "drift_reasons": {"retrain": True,
                                                                                 "reasons": ["vocab 0.5 > 0.2"]}}}]
    got = overview.timeline(settings, engine, runs=runs)
    assert [(r["run_id"], r["outcome"], r["trigger"]["source"]) for r in got] == [
        ("r2", "no decision yet", "manual"), ("r1", "promoted", "drift")]
    assert got[1]["trigger"]["drift"] == ["vocab 0.5 > 0.2"] and got[1]["moves"][0]["metrics"]["mcnemar"]
    asset = overview.timeline(settings, engine, runs=[{"run_id": "r3", "run_type": "asset_triggered", "conf": {}}])
    assert asset[0]["trigger"]["source"] == "asset"


def test_collect_and_the_run_tabs(setup, monkeypatch) -> None:
    settings, engine, cache = setup
    monkeypatch.setattr(versions, "CACHE", cache)  # the page's cache, filled as one registry search would

    cache.get((settings.resolved_tracking_uri(), "sms"), lambda: [SimpleNamespace(
        version="2", aliases=("champion",), run_id="run2", tags={"holdout_f1": "0.95"})])
    data = overview.collect(settings, engine, now=NOW)
    assert data["aliases"]["roles"]["champion"]["version"] == "2"
    assert data["quality"]["windows"][0]["labelled"] == 2 and data["quality"]["live"]["since"] == NOW.isoformat()
    assert "data-role='champion'>v2<" in overview_page(data, Links("http://mlflow:5000", "sms"))
    training = overview.run_tab(settings, engine, dag_id="training", run_id="t2")
    assert training["version"]["metrics"]["f1"] == 0.95
    monitoring = overview.run_tab(settings, engine, dag_id="monitoring", run_id="m",
                                  window=(NOW - timedelta(hours=6), NOW))
    assert monitoring["window"]["mlflow_run_id"] == "mon1"
    assert "breached" in run_tab(monitoring, Links(None, "sms"))
    retrain = overview.run_tab(settings, engine, dag_id="retrain_compare_promote", run_id="r1",
                               run={"state": "success", "conf": {}})
    assert retrain["run"]["outcome"] == "promoted"
    assert "McNemar p=0.003" in run_tab(retrain, Links(None, "sms"))
