"""The dataset_validation DAG end to end with dag.test() (Airflow on Postgres), and the training gate.

Good data: the report and a content-addressed snapshot land in the artifact store and the asset is
updated. Bad data: the run fails at ``validate``, nothing is snapshotted, and the failure callback
posts the ``validation_failed`` alert through the Slack provider to the loopback receiver.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from autoretrain.alerts.messages import airflow_run_url, validation_failure_alert
from tests.conftest import ROOT, SESSION_TMP, dag_from_bag, migrated, task_states

pytestmark = pytest.mark.integration

CORPUS = ROOT / "data" / "sms_spam_collection" / "SMSSpamCollection"


def _jsonl(rows: list[tuple[str, str]]) -> bytes:
    """Snapshot content, written out independently of the code under test."""
    return b"".join(json.dumps([label, text], ensure_ascii=False).encode() + b"\n" for label, text in rows)


def _asset_events(run) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.name == "autoretrain_validated_dataset",
                        AssetEvent.source_run_id == run.run_id).all())
        return [dict(e.extra) for e in rows]


def _alert_rows(url: str) -> list[dict]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(
                "SELECT kind, severity, status, transport, dag_id, task_id, run_id, message FROM alert_log "
                "ORDER BY id")).mappings()]
    finally:
        engine.dispose()


@pytest.fixture
def env(monkeypatch, tmp_path, postgres_db, slack_receiver):
    artifacts = tmp_path / "artifacts"
    db = migrated(postgres_db("alerts"))
    monkeypatch.setenv("AUTORETRAIN_ARTIFACT_STORE_URI", str(artifacts))
    monkeypatch.setenv("AUTORETRAIN_DATABASE_URL", db)
    monkeypatch.setenv("AUTORETRAIN_SLACK_WEBHOOK_CONN_ID", "slack_autoretrain_test")
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_AUTORETRAIN_TEST", slack_receiver.webhook_connection())
    monkeypatch.setenv("AUTORETRAIN_DATA_ALLOWED_ROOTS", f"data,{tmp_path}")  # the tests' files are sources
    return artifacts, db, slack_receiver


def test_good_data_is_reported_snapshotted_and_announced(airflow_db, env, tmp_path, monkeypatch):
    artifacts, db, receiver = env
    now = datetime.now(UTC)
    stamps = [(now - timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ") for d in (9, 2, -400)]
    feedback = tmp_path / "feedback.csv"
    feedback.write_text("label,text,timestamp\n"
                        f"spam,WIN a FREE cruise! reply YES now,{stamps[0]}\n"
                        f"ham,see you at the station at six?,{stamps[1]}\n"
                        f"ham,arrives after this run: belongs to a later one,{stamps[2]}\n", encoding="utf-8")
    monkeypatch.setenv("AUTORETRAIN_FEEDBACK_URI", str(feedback))  # a connection setting: never from a run's conf
    run = dag_from_bag("dataset_validation").test()
    assert run.state == "success", task_states(run)
    assert task_states(run) == {"validate": "success", "snapshot": "success", "stale_data_alert": "skipped"}

    corpus = [tuple(line.split("\t")) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    expected = _jsonl(corpus + [("spam", "WIN a FREE cruise! reply YES now"),
                                ("ham", "see you at the station at six?")])
    digest = hashlib.sha256(expected).hexdigest()
    snapshot = artifacts / "snapshots" / digest
    assert (snapshot / "data.jsonl").read_bytes() == expected
    manifest = json.loads((snapshot / "manifest.json").read_text())
    assert manifest["rows"] == 5574 + 2 and manifest["label_counts"] == {"ham": 4828, "spam": 748}
    assert sorted(p.name for p in (artifacts / "snapshots").iterdir()) == [digest]

    report_dir = artifacts / "reports" / "dataset_validation"
    (run_dir,) = list(report_dir.iterdir())
    report = json.loads((run_dir / "report.json").read_text())
    assert report["passed"] is True and report["digest"] == digest
    assert report["rows"] == {"source": 5574, "feedback": 2, "total": 5576}
    checks = {c["name"]: c for c in report["reports"]["dataset"]["checks"]}
    assert list(checks) == ["schema", "minimum_samples", "class_balance", "empty_texts", "duplicates",
                            "split_leakage", "pii", "freshness"]
    assert checks["freshness"]["passed"] is True
    assert checks["freshness"]["details"].startswith(f"newest data {stamps[1][:10]} ")
    assert checks["freshness"]["score"] == pytest.approx(2.0, abs=0.01)
    assert [c["name"] for c in report["reports"]["feedback"]["checks"]] == ["schema", "empty_texts",
                                                                            "duplicates", "pii"]
    assert "# Dataset validation: PASSED" in (run_dir / "report.md").read_text()
    assert _asset_events(run) == [{"digest": digest, "rows": 5576, "uri": str(snapshot)}]
    assert receiver.requests == [] and _alert_rows(db) == []  # success is not an alert

    again = dag_from_bag("dataset_validation").test()
    assert again.state == "success"
    assert json.loads((snapshot / "manifest.json").read_text()) == manifest  # first_seen kept
    assert sorted(p.name for p in (artifacts / "snapshots").iterdir()) == [digest]


def test_no_new_labels_within_freshness_days_sends_the_stale_data_alert(airflow_db, env, tmp_path, monkeypatch):
    artifacts, db, receiver = env
    old = (datetime.now(UTC) - timedelta(days=45)).strftime("%Y-%m-%dT%H:%M:%SZ")
    feedback = tmp_path / "feedback.csv"
    feedback.write_text(f"label,text,timestamp\nham,the last label anyone sent,{old}\n", encoding="utf-8")
    monkeypatch.setenv("AUTORETRAIN_FEEDBACK_URI", str(feedback))
    run = dag_from_bag("dataset_validation").test()
    assert task_states(run) == {"validate": "success", "snapshot": "success", "stale_data_alert": "success"}

    (run_dir,) = list((artifacts / "reports" / "dataset_validation").iterdir())
    freshness = {c["name"]: c for c in json.loads((run_dir / "report.json").read_text())["warnings"]}["freshness"]
    assert freshness["score"] == pytest.approx(45.0, abs=0.01) and freshness["threshold"] == 30.0
    run_url = airflow_run_url("http://localhost:8080/", "dataset_validation", run.run_id)
    assert [r.body["text"] for r in receiver.requests] == [
        ":warning: *No new labelled data for 45 days*\n"
        f"Source `{ROOT / 'data/sms_spam_collection/SMSSpamCollection'}`, validation run `{run.run_id}`:\n"
        f"newest labelled data is {freshness['score']:.4g} days old (limit 30 days)\n"
        f"Check: {freshness['details']}\n"
        "*Done:* the data passed its blocking checks and is used as it is; monitoring and retraining learn nothing "
        "new until labels come back\n"
        "*You can:* check that feedback still reaches POST /feedback and that feedback_uri is updated; raise "
        "freshness_days if this source is meant to change less often\n"
        f"<{run_url}|Airflow run>"]
    assert [(r["kind"], r["severity"], r["status"], r["task_id"]) for r in _alert_rows(db)] == [
        ("stale_data", "warning", "sent", "stale_data_alert")]


def test_bad_data_fails_at_validate_alerts_and_snapshots_nothing(airflow_db, env, tmp_path):
    artifacts, db, receiver = env
    bad = tmp_path / "half_duplicates.tsv"
    rows = [f"{'spam' if i % 5 == 0 else 'ham'}\tmessage number {i}" for i in range(600)]
    bad.write_text("\n".join(rows + rows) + "\n", encoding="utf-8")  # 1200 rows, 50 % repeats
    run = dag_from_bag("dataset_validation").test(run_conf={"data_uri": str(bad)})
    assert run.state == "failed"
    assert task_states(run) == {"validate": "failed", "snapshot": "upstream_failed",
                                "stale_data_alert": "upstream_failed"}
    assert not (artifacts / "snapshots").exists()

    (run_dir,) = list((artifacts / "reports" / "dataset_validation").iterdir())
    report = json.loads((run_dir / "report.json").read_text())
    assert report["passed"] is False
    assert [f["name"] for f in report["failures"]] == ["duplicates"]
    assert report["failures"][0]["score"] == 0.5

    expected = validation_failure_alert(
        source=str(bad), failures=report["failures"], run_id=run.run_id,
        airflow_url=airflow_run_url("http://localhost:8080/", "dataset_validation", run.run_id))
    assert [(r.path, r.body) for r in receiver.requests] == [
        (receiver.webhook_url.removeprefix(receiver.base), {"text": expected.text, "unfurl_links": False,
                                                            "unfurl_media": False})]
    assert "• duplicates 0.5 (limit 0.2): 600 repeated text(s) (50.0%)" in expected.text
    rows = _alert_rows(db)
    assert [(r["kind"], r["severity"], r["status"], r["transport"], r["dag_id"], r["task_id"], r["run_id"])
            for r in rows] == [("validation_failed", "critical", "sent", "slack_webhook", "dataset_validation",
                                "validate", run.run_id)]


def test_unreadable_source_names_the_line_and_slack_down_does_not_matter(airflow_db, env, tmp_path,
                                                                         monkeypatch):
    artifacts, db, receiver = env
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_AUTORETRAIN_TEST",
                       json.dumps({"conn_type": "slackwebhook", "password": "http://127.0.0.1:9/services/x"}))
    # a short path: the message clips a check's detail at 120 characters, and the deeper tmp_path of a
    # pytest-xdist worker (.../popen-gw1/...) pushed "line 2: ..." past the cut
    short = SESSION_TMP / f"bad-{uuid.uuid4().hex[:6]}"
    short.mkdir()
    monkeypatch.setenv("AUTORETRAIN_DATA_ALLOWED_ROOTS", f"data,{tmp_path},{short}")
    bad = short / "latin1.tsv"
    bad.write_bytes(b"ham\tfine\nspam\tcaf\xe9 prize\n")
    run = dag_from_bag("dataset_validation").test(run_conf={"data_uri": str(bad)})
    assert run.state == "failed" and task_states(run)["validate"] == "failed"
    rows = _alert_rows(db)
    assert [(r["kind"], r["status"]) for r in rows] == [("validation_failed", "failed")]
    assert "• readable 0 (limit 1): " in rows[0]["message"]
    assert "line 2: not valid UTF-8 (byte 0xe9)" in rows[0]["message"]
    assert receiver.requests == []


def test_training_gate_runs_the_same_checks_and_never_trains_on_bad_data(airflow_db, env, tmp_path,
                                                                         mlflow_server, model_name,
                                                                         monkeypatch):
    from autoretrain import tracking
    from autoretrain.config import load_settings

    artifacts, db, receiver = env
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.setenv("AUTORETRAIN_MODEL_NAME", model_name)
    one_class = tmp_path / "only_ham.tsv"
    one_class.write_text("".join(f"ham\tordinary message {i}\n" for i in range(1200)), encoding="utf-8")
    run = dag_from_bag("training").test(run_conf={"data_uri": str(one_class), "families": ["complement_nb"],
                                          "cv_folds": 3})
    states = task_states(run)
    assert run.state == "failed"
    assert (states["load"], states["validate"]) == ("success", "failed")
    assert {states[t] for t in states if t not in ("load", "validate")} == {"upstream_failed"}
    client = tracking.client_for(load_settings())
    assert client.search_registered_models(f"name = '{model_name}'") == []

    rows = _alert_rows(db)
    assert [(r["kind"], r["status"], r["task_id"]) for r in rows] == [("validation_failed", "sent", "validate")]
    (request,) = receiver.requests
    assert request.body["text"] == rows[0]["message"]
    assert "• class_balance 0 (limit 0.05): label counts {'ham': 1200, 'spam': 0}" in rows[0]["message"]
