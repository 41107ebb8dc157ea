"""No secret leaves (issue 12, finding 2): a training run and a monitoring run with credentials everywhere.

The settings carry a Postgres ``database_url`` with a real password (a role created here, used for
every table), an MLflow ``tracking_uri`` with a password in its userinfo, an ``api_token`` and a
secret routing salt. The training DAG registers a champion (alias alert) and a forged run fails
(failure alert); the monitoring DAG measures a drifted window (drift alert through Slack). Then
every place a secret could land is read back and searched: MLflow params, tags and every
artifact of every run, the registered version's tags, AutoRetrain's alert rows, the Slack
requests, Airflow's XComs and the task logs (captured output and log files). Zero hits.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from autoretrain import tracking
from autoretrain.config import load_settings
from autoretrain.db import schema
from autoretrain.db.engine import make_engine
from tests.conftest import PG_ADMIN_URL, PG_HOST, SESSION_TMP, dag_from_bag, migrated, task_states

pytestmark = pytest.mark.integration

SUFFIX = uuid.uuid4().hex[:10]
PG_PASSWORD = f"s3cret-pg-{SUFFIX}"
MLFLOW_PASSWORD = f"s3cret-mlflow-{SUFFIX}"
API_TOKEN = f"s3cret-token-{SUFFIX}"
SALT = f"s3cret-salt-{SUFFIX}"
SECRETS = (PG_PASSWORD, MLFLOW_PASSWORD, API_TOKEN, SALT)
ROLE = f"autoretrain_secret_{SUFFIX}"
CAMPAIGN = "Your crypto wallet {n} is locked! Verify your seed phrase at bit.ly/w{n} to claim {n} USDT bonus"


def _admin(url: str, *statements: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def secret_db(postgres_db) -> Iterator[str]:
    """AutoRetrain's tables in a fresh database, used through a role that logs in with a password."""
    admin_url = migrated(postgres_db("secrets"))
    _admin(PG_ADMIN_URL, f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PG_PASSWORD}'")
    _admin(admin_url, f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {ROLE}",
           f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {ROLE}")
    database = admin_url.rsplit("/", 1)[1]
    try:
        yield f"postgresql://{ROLE}:{PG_PASSWORD}@{PG_HOST}:5432/{database}"
    finally:
        _admin(admin_url, f"DROP OWNED BY {ROLE}")
        _admin(PG_ADMIN_URL, f"DROP ROLE IF EXISTS {ROLE}")


@pytest.fixture
def env(mlflow_server, secret_db, slack_receiver, monkeypatch):
    host = mlflow_server.uri.removeprefix("http://")
    name = f"sms-spam-secrets-{SUFFIX}"
    for key, value in {
        "AUTORETRAIN_TRACKING_URI": f"http://autoretrain:{MLFLOW_PASSWORD}@{host}",
        "AUTORETRAIN_DATABASE_URL": secret_db,
        "AUTORETRAIN_API_TOKEN": API_TOKEN,
        "AUTORETRAIN_ROUTING_SALT": SALT,
        "AUTORETRAIN_MODEL_NAME": name,
        "AUTORETRAIN_EXPERIMENT_NAME": f"secrets-{name}",
        "AUTORETRAIN_MONITORING_EXPERIMENT": f"secrets-monitoring-{name}",
        "AUTORETRAIN_SLACK_WEBHOOK_CONN_ID": "slack_secrets_test",
        "AUTORETRAIN_ALERT_COOLDOWN_MINUTES": "0",
        "AIRFLOW_CONN_SLACK_SECRETS_TEST": slack_receiver.webhook_connection(),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return load_settings()


def _log_window(url: str, settings, holdout, *, start: datetime) -> None:
    rng = random.Random(3)
    spam = [CAMPAIGN.format(n=rng.randint(100, 99999)) for _ in range(200)]
    ham = list(holdout.loc[holdout["label"] == "ham", "text"].head(200))
    predictions, feedback = [], []
    for i, (text, label) in enumerate([(t, "spam") for t in spam] + [(t, "ham") for t in ham]):
        request_id, at = uuid.uuid4().hex, start + timedelta(seconds=i * 9)
        predictions.append({"request_id": request_id, "created_at": at, "model_name": settings.model_name,
                            "model_version": "1", "variant": "champion", "role": "served", "user_id": None,
                            "text": text, "probability": 0.5, "label": "ham", "latency_ms": 1.0})
        feedback.append({"request_id": request_id, "label": label, "source": "test", "created_at": at})
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(schema.predictions), predictions)
            conn.execute(sa.insert(schema.feedback), feedback)
    finally:
        engine.dispose()


def _hits(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def _mlflow_texts(settings, tmp_path: Path) -> dict[str, str]:
    """Every param, tag and artifact (downloaded) of every run of both experiments, and the version tags."""
    client = tracking.client_for(settings)
    out: dict[str, str] = {}
    experiments = [client.get_experiment_by_name(n) for n in (settings.experiment_name, settings.monitoring_experiment)]
    assert all(experiments), "both experiments exist"
    runs = client.search_runs([e.experiment_id for e in experiments], max_results=500)
    assert len(runs) >= 3  # training parent + family run(s) + the monitoring window
    for run in runs:
        rid = run.info.run_id
        out[f"run {rid} params"] = json.dumps(run.data.params)
        out[f"run {rid} tags"] = json.dumps(run.data.tags)
        target = tmp_path / rid
        target.mkdir()
        local = Path(client.download_artifacts(rid, "", str(target)))
        for path in (p for p in local.rglob("*") if p.is_file()):
            out[f"run {rid} artifact {path.relative_to(local)}"] = path.read_bytes().decode("utf-8", "replace")
    assert any("settings.database_url" in text for key, text in out.items() if key.endswith("params"))
    for version in client.search_model_versions(f"name = '{settings.model_name}'"):
        out[f"version {version.version} tags"] = json.dumps(version.tags) + str(version.source)
    return out


def _xcoms(run_ids: list[str]) -> str:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.run_id.in_(run_ids)).all()
        return "\n".join(str(r.value) for r in rows)


def test_no_secret_in_mlflow_alerts_xcoms_or_logs(airflow_db, env, secret_db, slack_receiver, tmp_path,
                                                  capfd, caplog):
    settings = env
    assert settings.database_url == secret_db and PG_PASSWORD in secret_db
    trained = dag_from_bag("training").test(run_conf={"families": ["logreg"], "cv_folds": 2})
    assert trained.state == "success", task_states(trained)
    forged = dag_from_bag("training").test(run_conf={"bogus": 1})  # a failure alert, with its error text
    assert forged.state == "failed"

    client = tracking.client_for(settings)
    ref = client.get_model_version_by_alias(settings.model_name, "champion")
    holdout = tracking.load_frame(client, ref.tags["autoretrain.parent_run_id"], "test")
    start = datetime(2026, 11, 9, 0, 0, tzinfo=UTC)
    _log_window(secret_db, settings, holdout, start=start)
    watched = dag_from_bag("monitoring").test(run_conf={"window_end": (start + timedelta(hours=6)).isoformat(),
                                                        "window_hours": 6, "drift_consecutive_windows": 1})
    states = task_states(watched)
    assert states["drift_alert"] == "success", states

    places = _mlflow_texts(settings, tmp_path)
    engine = make_engine(secret_db)
    try:
        with engine.connect() as conn:
            alerts = [dict(r._mapping) for r in conn.execute(sa.select(schema.alert_log))]
    finally:
        engine.dispose()
    kinds = {a["kind"] for a in alerts}
    assert {"task_failure", "drift"} <= kinds, kinds
    places["alert rows"] = json.dumps(alerts, default=str)
    assert slack_receiver.requests, "alerts reached the Slack receiver"
    places["slack requests"] = json.dumps([r.body for r in slack_receiver.requests])
    places["xcoms"] = _xcoms([trained.run_id, forged.run_id, watched.run_id])
    captured = capfd.readouterr()
    places["captured stdout/stderr"] = captured.out + captured.err
    places["captured log records"] = "\n".join(r.getMessage() for r in caplog.records)
    log_files = [p for p in (SESSION_TMP / "airflow" / "logs").rglob("*") if p.is_file()] if (
        SESSION_TMP / "airflow" / "logs").exists() else []
    for path in log_files:
        places[f"task log {path.name}"] = path.read_text(errors="replace")

    leaks = {place: [text[max(text.index(s) - 300, 0): text.index(s) + 60] for s in _hits(text)]
             for place, text in places.items() if _hits(text)}
    assert leaks == {}, leaks
    # the places were really read: the masked forms are there instead
    assert "autoretrain:***@" in places["alert rows"] or "autoretrain:***@" in places["slack requests"]
    assert any(f"{ROLE}:***@" in text for text in places.values())
    print(f"searched {len(places)} places ({sum(map(len, places.values())):,} characters, "
          f"{len(log_files)} task log files) for {len(SECRETS)} secrets: 0 hits")
