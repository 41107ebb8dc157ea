"""Only declared Params (issue 12, finding 3): forged confs fail before any work; force never skips a gate.

Each forged conf is triggered as a person with trigger rights would (``dag.test(run_conf=...)``,
real MLflow server, Airflow and AutoRetrain tables on Postgres): the first task fails without
retries, nothing reaches MLflow, and the failure alert names the offending key. Then a forced
retrain whose challenger is a coin flip against the champion (the same model again: no
significant difference) is not promoted.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from autoretrain import registry, tracking
from autoretrain.config import load_settings
from autoretrain.db import schema
from autoretrain.db.engine import make_engine
from tests.conftest import dag_from_bag, migrated, task_states

pytestmark = pytest.mark.integration

FORGED = {
    "accuracy_min": ({"accuracy_min": 0}, "accuracy_min=0.0 is below the configured 0.95: a run may only raise it"),
    "database_url": ({"database_url": "postgresql://attacker:pw@10.9.9.9/stolen"},
                     "conf key(s) ['database_url'] are not Params of this DAG"),
    "tracking_uri": ({"tracking_uri": "http://10.9.9.9:5000"},
                     "conf key(s) ['tracking_uri'] are not Params of this DAG"),
    "bogus": ({"bogus": 1}, "conf key(s) ['bogus'] are not Params of this DAG"),
}


@pytest.fixture
def env(mlflow_server, postgres_db, model_name, monkeypatch):
    db = migrated(postgres_db("forged"))
    for key, value in {"MLFLOW_TRACKING_URI": mlflow_server.uri, "AUTORETRAIN_MODEL_NAME": model_name,
                       "AUTORETRAIN_DATABASE_URL": db, "AUTORETRAIN_EXPERIMENT_NAME": f"forged-{model_name}",
                       "AUTORETRAIN_BOOTSTRAP_SAMPLES": "500", "AUTORETRAIN_ALERT_COOLDOWN_MINUTES": "0"}.items():
        monkeypatch.setenv(key, value)
    return load_settings()


def _failure_alerts(settings, run_id: str) -> list[str]:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(schema.alert_log.c.message).where(
                schema.alert_log.c.run_id == run_id, schema.alert_log.c.kind == "task_failure"))
            return [r.message for r in rows]
    finally:
        engine.dispose()


def _runs_of(settings, run_id: str) -> list:
    client = tracking.client_for(settings)
    experiment = client.get_experiment_by_name(settings.experiment_name)
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`airflow.run_id` = '{run_id}'")


@pytest.mark.parametrize("case", list(FORGED))
def test_forged_training_conf_fails_before_any_work(airflow_db, env, case):
    settings = env
    conf, message = FORGED[case]
    run = dag_from_bag("training").test(run_conf={"families": ["complement_nb"], "cv_folds": 2, **conf})
    states = task_states(run)
    assert run.state == "failed"
    assert states["load"] == "failed" and "success" not in states.values(), states
    assert _runs_of(settings, run.run_id) == []  # no MLflow run: it failed before any work
    assert client_models(settings) == []
    alerts = _failure_alerts(settings, run.run_id)
    assert alerts and all(message in text for text in alerts), alerts


def _decision(run) -> dict:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter(XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id,
                                              XComModel.task_id == "compare", XComModel.key == "decision").one()
        value = row.value
    return XComModel.deserialize_value(row) if isinstance(value, str | bytes) else value


def client_models(settings) -> list:
    return tracking.client_for(settings).search_registered_models(f"name = '{settings.model_name}'")


def test_forged_retrain_conf_fails_at_its_first_task(airflow_db, env):
    settings = env
    run = dag_from_bag("retrain_compare_promote").test(run_conf={"accuracy_min": 0, "f1_min": 0, "force": True})
    states = task_states(run)
    assert run.state == "failed" and states["trigger"] == "failed"
    assert "success" not in states.values(), states
    alerts = _failure_alerts(settings, run.run_id)
    assert any("conf key(s) ['accuracy_min', 'f1_min'] are not Params of this DAG" in a for a in alerts), alerts


def test_force_does_not_promote_a_coin_flip_challenger(airflow_db, env):
    settings = env
    fast = {"families": ["complement_nb"], "cv_folds": 2, "canary_minutes": 0}
    first = dag_from_bag("retrain_compare_promote").test(run_conf={**fast, "reason": "bootstrap"})
    assert first.state == "success", task_states(first)
    client = tracking.client_for(settings)
    assert registry.alias_version(client, settings.model_name, "champion").version == "1"

    # the same data again: the challenger is the champion's twin, no better than a coin flip between them
    forced = dag_from_bag("retrain_compare_promote").test(run_conf={**fast, "force": True, "reason": "forced"})
    states = task_states(forced)
    assert forced.state == "success", states
    assert states["reject"] == "success" and states["promote"] == "skipped", states
    decision = _decision(forced)
    assert decision["promote"] is False and decision["numbers"]["forced"] is False
    assert decision["numbers"]["mcnemar"]["significant"] is False
    assert decision["reasons"][-2] == "force waives only the improvement margin, not significance"
    assert decision["reasons"][-1] == "reject: failed improvement, significance"
    assert registry.alias_version(client, settings.model_name, "champion").version == "1"
