"""The maintenance DAG end to end with dag.test() (Airflow on Postgres), a real mlflow server, a migrated Postgres.

Old prediction-log and feedback rows go; a running canary's rows, a prediction whose feedback is
recent, and recent rows stay; old texts are redacted; snapshots beyond the newest
``snapshot_keep`` go unless a registered version was trained on them; old validation reports go.
A dry run first changes nothing.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from autoretrain import lineage
from autoretrain.data.snapshots import LocalStore, list_snapshots, write_report, write_snapshot
from autoretrain.db.engine import make_engine
from autoretrain.db.schema import feedback, predictions, routing_override
from tests.conftest import dag_from_bag, migrated, task_states

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
PHONE = "call 07700 900123 to claim"
#: request id -> (age of the prediction, age of its feedback or None)
AGES = {
    "old-1": (timedelta(days=150), None), "old-2": (timedelta(days=130), timedelta(days=125)),
    "old-label-recent": (timedelta(days=140), timedelta(days=3)),
    "canary": (timedelta(days=100), None),  # the canary started 101 days ago and is still running
    "month-old": (timedelta(days=40), None), "recent": (timedelta(days=2), timedelta(days=1)),
}


@pytest.fixture
def env(monkeypatch, tmp_path, postgres_db, mlflow_server):
    db = migrated(postgres_db("maintenance"))
    name = f"sms-spam-maintenance-{uuid.uuid4().hex[:8]}"
    for key, value in {"AUTORETRAIN_DATABASE_URL": db, "AUTORETRAIN_ARTIFACT_STORE_URI": str(tmp_path / "artifacts"),
                       "MLFLOW_TRACKING_URI": mlflow_server.uri, "AUTORETRAIN_MODEL_NAME": name,
                       "AUTORETRAIN_RETENTION_DAYS": "90", "AUTORETRAIN_REDACT_AFTER_DAYS": "30",
                       "AUTORETRAIN_SNAPSHOT_KEEP": "2", "AUTORETRAIN_PURGE_BATCH_SIZE": "2"}.items():
        monkeypatch.setenv(key, value)
    engine = make_engine(db)
    rows, labels = [], []
    for request_id, (age, fb_age) in AGES.items():
        rows.append({"request_id": request_id, "created_at": NOW - age, "model_name": name, "model_version": "1",
                     "variant": "champion", "role": "served", "user_id": None, "text": PHONE, "probability": 0.9,
                     "label": "spam", "latency_ms": 1.0})
        if fb_age is not None:
            labels.append({"request_id": request_id, "label": "spam", "source": "api", "created_at": NOW - fb_age})
    with engine.begin() as conn:
        conn.execute(predictions.insert(), rows)
        conn.execute(feedback.insert(), labels)
        conn.execute(routing_override.insert().values(id=1, config='{"mode": "canary", "canary_percent": 10.0}',
                                                      updated_at=NOW - timedelta(days=101)))
    store = LocalStore(tmp_path / "artifacts")
    digests = [write_snapshot(store, pd.DataFrame({"label": ["ham"], "text": [f"snapshot {i}"]}), source="test",
                              now=NOW - timedelta(days=10 * (5 - i))).digest for i in range(5)]  # oldest first
    write_report(store, "dataset_validation/old", {"report.json": json.dumps({"now": (NOW - timedelta(days=200))
                                                                                .isoformat()}), "report.md": "#"})
    write_report(store, "dataset_validation/new", {"report.json": json.dumps({"now": NOW.isoformat()})})
    _register_trained_on(mlflow_server.uri, name, digests[1])
    yield engine, store, digests
    engine.dispose()


def _register_trained_on(uri: str, name: str, digest: str) -> None:
    """A registered version whose training run's data digest is ``digest`` (what training tags)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.create_experiment(f"maintenance-{uuid.uuid4().hex[:8]}")
    run = client.create_run(experiment, tags={lineage.DATA_DIGEST: digest})
    client.set_terminated(run.info.run_id)
    client.create_registered_model(name)
    client.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
                                tags={lineage.PARENT_RUN_ID: run.info.run_id})


def _state(engine) -> tuple[dict[str, str], list[str]]:
    with engine.connect() as conn:
        texts = dict(conn.execute(sa.select(predictions.c.request_id, predictions.c.text)).all())
        labelled = sorted(conn.execute(sa.select(feedback.c.request_id)).scalars())
    return texts, labelled


def test_the_maintenance_dag_purges_what_is_past_retention_and_nothing_a_canary_needs(airflow_db, env):
    engine, store, digests = env
    before = _state(engine)
    dry = dag_from_bag("maintenance").test(run_conf={"dry_run": True})
    assert dry.state == "success", task_states(dry)
    assert _state(engine) == before
    assert len(list_snapshots(store)) == 5

    run = dag_from_bag("maintenance").test()
    assert run.state == "success", task_states(run)
    assert task_states(run) == {"purge_rows": "success", "purge_artifacts": "success"}
    texts, labelled = _state(engine)
    # from the canary's start on, nothing is redacted either (its agreement check replays the texts)
    assert texts == {"old-label-recent": "call [PHONE] to claim", "canary": PHONE, "month-old": PHONE,
                     "recent": PHONE}
    assert labelled == ["old-label-recent", "recent"]
    # the newest two, and the one version 1 was trained on
    assert sorted(m["digest"] for m in list_snapshots(store)) == sorted([digests[1], digests[3], digests[4]])
    assert store.keys("reports/") == ["reports/dataset_validation/new/report.json"]

    with engine.begin() as conn:  # the canary ended: its old rows go on the next run
        conn.execute(routing_override.update().values(config='{"mode": "full"}'))
    assert dag_from_bag("maintenance").test().state == "success"
    assert _state(engine)[0] == {"old-label-recent": "call [PHONE] to claim", "month-old": "call [PHONE] to claim",
                                 "recent": PHONE}
