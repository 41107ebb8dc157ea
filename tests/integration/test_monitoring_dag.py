"""The monitoring DAG on a real Postgres prediction log and a real MLflow server: both branches."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from autoretrain import tracking
from autoretrain.config import load_settings
from autoretrain.db import schema
from autoretrain.db.engine import make_engine
from autoretrain.monitoring import windows as monitoring
from autoretrain.training.steps import RunKey, run_training
from tests.conftest import dag_from_bag, migrated, retrain_conf_triggered_by, task_states

pytestmark = pytest.mark.integration

CAMPAIGN = ["Your crypto wallet {n} is locked! Verify your seed phrase at bit.ly/w{n} to claim {n} USDT bonus",
            "ALERT: BTC airdrop {n} reserved 4 u. Connect wallet now at claim-{n}.io before midnight",
            "Congrats! Elon giveaway: send 0.1 ETH get 2 ETH back. Wallet ref {n}, act fast"]


@pytest.fixture(scope="module")
def env(mlflow_server, postgres_db):
    """One champion (trained on the bundled data) and a fresh Postgres prediction log for this module."""
    db = migrated(postgres_db("monitoring"))
    name = f"sms-spam-monitoring-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
        mp.setenv("AUTORETRAIN_MODEL_NAME", name)
        mp.setenv("AUTORETRAIN_DATABASE_URL", db)
        mp.setenv("AUTORETRAIN_EXPERIMENT_NAME", f"monitoring-test-{name}")
        settings = load_settings()
        result = run_training(settings.with_overrides({"families": ["logreg"], "cv_folds": 3}),
                              RunKey("test", uuid.uuid4().hex))
        assert result["alias"]["alias"] == "champion"
        client = tracking.client_for(settings)
        holdout = tracking.load_frame(client, result["parent_run_id"], "test")
        engine = make_engine(db)
        yield settings, engine, holdout
        engine.dispose()


def _campaign(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(CAMPAIGN).format(n=rng.randint(100, 99999)) for _ in range(count)]


def _log(engine, rows: list[tuple[str, str | None]], *, start: datetime, model_name: str) -> None:
    """Write served predictions (text, feedback label or None) spread over one hour after ``start``."""
    predictions, feedback = [], []
    for i, (text, label) in enumerate(rows):
        request_id = uuid.uuid4().hex
        at = start + timedelta(seconds=i * 3600 / len(rows))
        predictions.append({"request_id": request_id, "created_at": at, "model_name": model_name,
                            "model_version": "1", "variant": "champion", "role": "served", "user_id": None,
                            "text": text, "probability": 0.5, "label": "ham", "latency_ms": 1.0})
        if label is not None:
            feedback.append({"request_id": request_id, "label": label, "source": "test", "created_at": at})
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.predictions), predictions)
        if feedback:
            conn.execute(sa.insert(schema.feedback), feedback)


def test_quiet_window_records_no_action_and_drifted_window_triggers_retraining(airflow_db, env):
    settings, engine, holdout = env
    base = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
    quiet = [(t, lab) for t, lab in zip(holdout["text"], holdout["label"], strict=True)][:400]
    _log(engine, quiet, start=base, model_name=settings.model_name)
    quiet_end = base + timedelta(hours=6)

    run = dag_from_bag("monitoring").test(run_conf={"window_end": quiet_end.isoformat(), "window_hours": 6,
                                "drift_consecutive_windows": 1})
    states = task_states(run)
    assert states["measure"] == states["decide"] == "success"
    assert states["drift_detected"] == "skipped" and states["no_action"] == "success"
    assert states["awaiting_confirmation"] == "skipped"
    assert states["trigger_retrain"] == "skipped" and states["drift_alert"] == "skipped"
    assert states["regression_alert"] == "skipped"  # the champion's accuracy on its own hold-out is fine
    assert states["reconcile_aliases"] == "success"  # the champion's assignment is in the audit: nothing external
    row = monitoring.read_window_row(settings, start=base, end=quiet_end)
    assert row["n_predictions"] == 400 and row["n_labelled"] == 400
    assert row["retrain"] is False and row["action"] == "no action"
    assert row["insufficient_data"] is False

    # a backfilled run (past date, no Params) measures its own data interval: the run at 06:00 covers 00:00-06:00
    backfill = dag_from_bag("monitoring").test(logical_date=quiet_end)
    assert (backfill.data_interval_start, backfill.data_interval_end) == (base, quiet_end)
    assert task_states(backfill)["measure"] == "success" and task_states(backfill)["no_action"] == "success"
    row = monitoring.read_window_row(settings, start=base, end=quiet_end)
    assert row["n_predictions"] == 400 and row["action"] == "no action" and row["retrain"] is False

    drifted_start = quiet_end
    spam = [(text, "spam") for text in _campaign(200)]
    ham = [(t, "ham") for t in holdout.loc[holdout["label"] == "ham", "text"].head(200)]
    _log(engine, spam + ham, start=drifted_start, model_name=settings.model_name)
    drifted_end = drifted_start + timedelta(hours=6)
    run = dag_from_bag("monitoring").test(run_conf={"window_end": drifted_end.isoformat(), "window_hours": 6,
                                "drift_consecutive_windows": 1})
    states = task_states(run)
    assert states["drift_detected"] == "success" and states["no_action"] == "skipped"
    assert states["awaiting_confirmation"] == "skipped" and states["drift_alert"] == "success"
    assert states["trigger_retrain"] == "success" and states["record_retrain"] == "success"
    conf = retrain_conf_triggered_by(run)
    assert conf["reason"] == "drift detected by monitoring"
    assert conf["drift_reasons"]["retrain"] is True
    assert any("emerging_terms" in reason for reason in conf["drift_reasons"]["reasons"])
    row = monitoring.read_window_row(settings, start=drifted_start, end=drifted_end)
    assert row["n_predictions"] == 400 and row["retrain"] is True and row["drifted"] is True
    drifted = {r["name"] for r in row["report"]["results"] if r["drifted"]}
    assert {"emerging_terms", "vocabulary_oov"} <= drifted
    assert any("emerging_terms" in reason for reason in row["decision"]["reasons"])

    client = tracking.client_for(settings)
    mlflow_run = client.get_run(row["mlflow_run_id"])
    assert mlflow_run.data.metrics["n_predictions"] == 400
    assert {a.path for a in client.list_artifacts(row["mlflow_run_id"], "reports")} == {
        "reports/evidently_drift_report.html"}

    # a third window breaches too, but three in a row are required: the run says it waits, and which
    # window it ignored (an empty hour between them) and why
    empty_end = drifted_end + timedelta(hours=1)
    dag_from_bag("monitoring").test(run_conf={"window_end": empty_end.isoformat(), "window_hours": 1})
    third_start = empty_end
    _log(engine, [(text, "spam") for text in _campaign(200, seed=8)] + ham, start=third_start,
         model_name=settings.model_name)
    third_end = third_start + timedelta(hours=6)
    run = dag_from_bag("monitoring").test(run_conf={"window_end": third_end.isoformat(), "window_hours": 6,
                                                    "drift_consecutive_windows": 3})
    states = task_states(run)
    assert states["awaiting_confirmation"] == "success", states
    assert states["drift_detected"] == states["no_action"] == states["trigger_retrain"] == "skipped"
    row = monitoring.read_window_row(settings, start=third_start, end=third_end)
    assert row["action"] == "awaiting confirmation" and row["retrain"] is False
    assert row["decision"]["reasons"][0] == "2 consecutive breaching window(s), 3 required: waiting"
    assert ("window 2026-11-02 12:00:00 - 13:00:00 UTC ignored: insufficient data: 0 messages in the window, "
            "fewer than 100") in row["decision"]["reasons"]

    # every monitoring run ended, each named after the window it measured (the quiet one was measured twice)
    experiment = client.get_experiment_by_name(settings.monitoring_experiment).experiment_id
    runs = client.search_runs([experiment],
                              filter_string=f"tags.`autoretrain.run_key` LIKE 'monitoring/{settings.model_name}/%'")
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.info.run_name for r in runs) == [
        "window 2026-11-02 00:00:00 - 06:00:00 UTC", "window 2026-11-02 06:00:00 - 12:00:00 UTC",
        "window 2026-11-02 12:00:00 - 13:00:00 UTC", "window 2026-11-02 13:00:00 - 19:00:00 UTC"]

    # the same window again replaces its row instead of adding one (idempotent per window)
    monitoring.measure_window(settings, start=drifted_start, end=drifted_end)
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(monitoring.drift_windows)).scalar_one()
    assert count == 4


def test_feedback_that_disagrees_with_the_champion_sends_the_regression_alert(airflow_db, env):
    """One in four labels contradicts the champion: accuracy under the floor and F1 down -> critical alert."""
    settings, engine, holdout = env
    start = datetime(2026, 10, 19, 0, 0, tzinfo=UTC)  # before the other tests' windows: a history of its own
    rows = list(zip(holdout["text"], holdout["label"], strict=True))[:400]
    flipped = [(text, ({"ham": "spam", "spam": "ham"}[label] if i % 4 == 0 else label))
               for i, (text, label) in enumerate(rows)]
    _log(engine, flipped, start=start, model_name=settings.model_name)
    end = start + timedelta(hours=6)
    run = dag_from_bag("monitoring").test(run_conf={"window_end": end.isoformat(), "window_hours": 6,
                                                    "drift_consecutive_windows": 2})
    states = task_states(run)
    assert states["regression_alert"] == "success" and states["awaiting_confirmation"] == "success", states

    row = monitoring.read_window_row(settings, start=start, end=end)
    feedback = {r["name"]: r for r in row["report"]["results"]}
    accuracy, f1 = feedback["feedback_accuracy"]["details"]["accuracy"], feedback["feedback_f1"]
    assert accuracy < settings.accuracy_floor and f1["drifted"] is True
    (alert,) = _regression_rows(settings)
    assert (alert.status, alert.severity, alert.dag_id, alert.task_id, alert.run_id) == (
        "logged", "critical", "monitoring", "regression_alert", run.run_id)
    assert alert.title == f"{settings.model_name} version 1 regressed on live feedback"
    drop = f1["details"]["baseline_f1"] - f1["details"]["f1"]
    lines = alert.message.splitlines()
    assert lines[1:5] == [
        f"Monitoring run `{run.run_id}` in window 2026-10-19 00:00:00 - 06:00:00 UTC, 400 labelled predictions:",
        f"• accuracy {accuracy:.4g} is under the floor 0.93",
        f"• f1 {f1['details']['f1']:.4g} is {drop:.4g} under its evaluation {f1['details']['baseline_f1']:.4g} "
        f"(limit {f1['threshold']:.4g})",
        "*Done:* version 1 keeps serving; no retrain yet: 1 of 2 breaching windows in a row (the next window decides)"]
    assert f"/#/runs/{row['mlflow_run_id']}|MLflow>" in lines[-1]
    assert f"/#/models/{settings.model_name}/versions/1|MLflow version>" in lines[-1]


def _regression_rows(settings) -> list:
    from autoretrain.alerts.store import AlertStore

    with AlertStore(settings.database_url) as store:
        return [r for r in reversed(store.records()) if r.kind == "regression"]


def test_window_without_a_champion_ends_in_no_action_at_once(airflow_db, env, monkeypatch):
    """Found under the real scheduler: with no champion the sensor waited its whole 10-minute timeout."""
    settings, _, _ = env
    monkeypatch.setenv("AUTORETRAIN_MODEL_NAME", f"never-trained-{uuid.uuid4().hex[:8]}")
    end = datetime(2026, 11, 9, 6, 0, tzinfo=UTC)
    run = dag_from_bag("monitoring").test(run_conf={"window_end": end.isoformat(), "window_hours": 6})
    states = task_states(run)
    assert run.state == "success", states
    assert states["measure"] == states["decide"] == states["no_action"] == "success"
    assert states["drift_detected"] == "skipped" and states["trigger_retrain"] == "skipped"
    row = monitoring.read_window_row(load_settings(), start=end - timedelta(hours=6), end=end)
    assert row["report"]["status"] == "no champion" and row["insufficient_data"] is True
    assert row["model_version"] is None and row["n_predictions"] == 0
    assert row["retrain"] is False and row["action"] == "no action"
    assert row["decision"]["reasons"][0] == "no window with enough data to judge"


def test_drift_endpoint_and_cli_give_the_monitoring_json(env, tmp_path, capsys):
    from fastapi.testclient import TestClient

    from autoretrain.cli.main import main
    from autoretrain.serving.app import create_app

    settings, _, holdout = env
    admin = "monitoring-admin-token-" + uuid.uuid4().hex
    ham = holdout.loc[holdout["label"] == "ham", "text"].head(150).tolist()
    app = create_app(settings.with_overrides({"admin_token": admin}))
    with TestClient(app, headers={"Authorization": f"Bearer {admin}"}) as client:
        for _ in range(100):  # the service loads the champion in the background
            if client.get("/ready").status_code == 200:
                break
            import time

            time.sleep(0.2)
        drifted = client.post("/drift/calculate", json={"messages": _campaign(150) + ham})
        assert drifted.status_code == 200, drifted.text
        body = drifted.json()
        assert body["drifted"] is True and body["n_messages"] == 300 and body["model_version"] == "1"
        assert "emerging_terms" in {r["name"] for r in body["results"] if r["drifted"]}
        few = client.post("/drift/calculate", json={"messages": ham[:5]})
        assert few.status_code == 200 and few.json()["insufficient_data"] is True
        bad = client.post("/drift/calculate", json={"messages": ham[:3], "labels": ["ham"]})
        assert bad.status_code == 422 and "labels has 1 entries but messages has 3" in bad.text

    current = tmp_path / "current.tsv"
    current.write_text("".join(f"spam\t{t}\n" for t in _campaign(150, seed=3)) + "".join(f"ham\t{t}\n" for t in ham),
                       encoding="utf-8")
    capsys.readouterr()
    assert main(["drift", "--current", str(current)]) == 1  # exit 1: drifted
    report = __import__("json").loads(capsys.readouterr().out)
    assert report["n_messages"] == 300 and report["n_labelled"] == 300 and report["drifted"] is True


def test_the_reconcile_task_records_and_alerts_an_alias_moved_in_mlflow(airflow_db, env):
    """Issue 12: a move made straight through MLflow's API is found by the monitoring DAG's reconcile task."""
    from autoretrain.audit import aliases as audit

    settings, engine, _ = env
    client = tracking.client_for(settings)
    client.set_registered_model_alias(settings.model_name, "challenger", "1")  # nobody recorded this
    try:
        end = datetime(2026, 11, 16, 6, 0, tzinfo=UTC)
        run = dag_from_bag("monitoring").test(run_conf={"window_end": end.isoformat(), "window_hours": 6})
        assert task_states(run)["reconcile_aliases"] == "success"
        moves = [r for r in audit.history(engine, settings.model_name) if r.action == "external"]
        assert [(r.alias, r.from_version, r.to_version) for r in moves] == [("challenger", None, "1")]
        assert moves[0].actor == "airflow:monitoring.reconcile_aliases"
        with engine.connect() as conn:
            alerts = conn.execute(sa.select(schema.alert_log).where(
                schema.alert_log.c.kind == "external_alias_move")).mappings().all()
        assert [(a["severity"], a["task_id"]) for a in alerts] == [("critical", "reconcile_aliases")]
        assert "challenger: audited version none → version 1 in MLflow" in alerts[0]["message"]
    finally:
        client.delete_registered_model_alias(settings.model_name, "challenger")
