"""The closed loop against a running prediction service: drift in the traffic -> monitoring DAG ->
retrain_compare_promote -> the new champion answers POST /predict, without a restart.

Real Postgres (prediction log, feedback, drift windows, alias audit), a real mlflow server and the
service as a uvicorn process; the DAGs run under ``dag.test()``. The same loop under the real
scheduler is what ``make demo`` runs (and times).
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from autoretrain import registry, tracking
from autoretrain.config import load_settings
from devstack.scenarios import holdout_messages, referral_campaign
from tests.conftest import (
    SESSION_TMP,
    dag_from_bag,
    free_port,
    migrated,
    retrain_conf_triggered_by,
    serving_process,
    task_states,
)

FAST = {"families": ["logreg"], "cv_folds": 2}
TOKEN = "closed-loop-feedback-token-" + uuid.uuid4().hex  # strong enough for the service (issue 12)


def _replay(http: httpx.Client, messages: list[tuple[str, str]]) -> list[dict]:
    answers = [http.post("/predict", json={"message": text, "user_id": f"u{i}"}).raise_for_status().json()
               for i, (text, _) in enumerate(messages)]
    time.sleep(0.5)  # the log writer flushes every 0.2 s
    for answer, (_, label) in zip(answers, messages, strict=True):
        http.post("/feedback", json={"request_id": answer["request_id"], "label": label},
                  headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()
    return answers


def test_drift_in_live_traffic_ends_with_a_new_champion_answering_predict(airflow_db, mlflow_server, postgres_db,
                                                                         model_name, monkeypatch) -> None:
    db = migrated(postgres_db("closed_loop"))
    for key, value in {"MLFLOW_TRACKING_URI": mlflow_server.uri, "AUTORETRAIN_MODEL_NAME": model_name,
                       "AUTORETRAIN_DATABASE_URL": db, "AUTORETRAIN_FEEDBACK_TOKEN": TOKEN,
                       "AUTORETRAIN_BOOTSTRAP_SAMPLES": "500", "AUTORETRAIN_RELOAD_INTERVAL_SECONDS": "0.5",
                       "AUTORETRAIN_EXPERIMENT_NAME": f"closed-loop-{model_name}"}.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()

    # 1. the training DAG registers the first champion
    trained = dag_from_bag("training").test(run_conf={**FAST})
    assert trained.state == "success", task_states(trained)

    port = free_port()
    cmd = [sys.executable, "-m", "autoretrain.serving", "--host", "127.0.0.1", "--port", str(port)]
    with serving_process(cmd, f"http://127.0.0.1:{port}/ready", SESSION_TMP / "closed-loop-service.log"), \
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        # 2. live traffic: held-out SMS, then a new campaign the champion calls ham; users report it
        start = datetime.now(UTC) - timedelta(minutes=1)  # the DAG measures windows of 36 s or more
        holdout = holdout_messages(settings)
        quiet = _replay(http, holdout[:150])
        assert {a["model_version"] for a in quiet} == {"1"}
        campaign = referral_campaign(150, 50, seed=11)
        before = _replay(http, campaign)
        assert sum(a["label"] == "spam" for a in before[:150]) < 15  # the champion misses the campaign
        end = datetime.now(UTC) + timedelta(seconds=1)

        # 3. monitoring measures the window from the prediction log and triggers the retrain
        hours = (end - start).total_seconds() / 3600
        watched = dag_from_bag("monitoring").test(run_conf={"window_end": end.isoformat(), "window_hours": hours,
                                                            "drift_consecutive_windows": 1})
        states = task_states(watched)
        assert states["trigger_retrain"] == "success" and states["no_action"] == "skipped", states

        # 4. the retrain (with the conf monitoring gave it) promotes a challenger
        conf = retrain_conf_triggered_by(watched)
        assert conf["reason"] == "drift detected by monitoring" and conf["drift_reasons"]["retrain"] is True
        retrained = dag_from_bag("retrain_compare_promote").test(run_conf={**conf, **FAST, "canary_minutes": 0})
        states = task_states(retrained)
        assert retrained.state == "success" and states["promote"] == "success", states
        client = tracking.client_for(settings)
        assert registry.alias_version(client, model_name, registry.CHAMPION).version == "2"

        # 5. the running service answers with v2 without a restart, and now catches the campaign
        deadline = time.monotonic() + 30
        fresh = referral_campaign(40, 0, seed=12)
        while True:
            answers = [http.post("/predict", json={"message": t}).raise_for_status().json() for t, _ in fresh]
            if {a["model_version"] for a in answers} == {"2"} or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert {a["model_version"] for a in answers} == {"2"}
        assert sum(a["label"] == "spam" for a in answers) >= 36  # >= 90 % of unseen campaign messages
