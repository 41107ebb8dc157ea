"""Alerts through the Slack provider's notifiers to a Slack-compatible receiver on loopback.

Connections come from ``AIRFLOW_CONN_<ID>`` (JSON) exactly as a deployment would define them; the
alert table is a fresh Postgres database per test. Asserted: the exact payloads, the routing by
severity, the cool-down, and that an unreachable or misconfigured Slack is recorded as ``failed``
without failing anything.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from airflow.providers.slack.notifications.slack import ICON_URL

from autoretrain.airflow.alerting import send_alert
from autoretrain.alerts.messages import drift_alert, promotion_alert, task_failure_alert
from autoretrain.alerts.store import AlertStore
from autoretrain.config import Settings
from tests.conftest import migrated
from tests.integration.conftest import API_TOKEN

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
FAILURE = task_failure_alert(dag_id="training", task_id="train", run_id="scheduled__2026-03-01T02:00:00+00:00",
                             try_number=3, error="MLflow unreachable at http://mlflow:5000",
                             airflow_url="http://airflow.example/dags/training/runs/r1")


def _api_body(channel: str, text: str) -> dict:
    """What SlackNotifier posts to chat.postMessage for our settings (username, no unfurling)."""
    return {"channel": channel, "username": "AutoRetrain", "text": text, "icon_url": ICON_URL,
            "attachments": "[]", "blocks": "[]", "unfurl_links": False, "unfurl_media": False}


def _webhook_body(text: str) -> dict:
    return {"text": text, "unfurl_links": False, "unfurl_media": False}


@pytest.fixture
def settings(postgres_db, monkeypatch, slack_receiver) -> Settings:
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_TEST", slack_receiver.api_connection())
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_TEST", slack_receiver.webhook_connection())
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_DOWN_TEST", json.dumps(
        {"conn_type": "slackwebhook", "password": "http://127.0.0.1:9/services/T0/B0/nobody-listens"}))
    return Settings(database_url=migrated(postgres_db("alerts")), alert_cooldown_minutes=60,
                    alert_channel_critical="#ops-critical", alert_channel_warning="#ops-warning",
                    alert_channel_info="")


def _rows(settings: Settings) -> list[tuple]:
    with AlertStore(settings.database_url) as store:
        return [(r.kind, r.status, r.transport, r.channel, r.error) for r in reversed(store.records())]


def test_webhook_payload_and_cooldown(settings, slack_receiver):
    hook = dataclasses.replace(settings, slack_webhook_conn_id="slack_webhook_test")
    first = send_alert(FAILURE, hook, now=T0)
    again = send_alert(FAILURE, hook, now=T0 + timedelta(minutes=59))
    later = send_alert(FAILURE, hook, now=T0 + timedelta(minutes=61))
    assert (first.status, again.status, later.status) == ("sent", "suppressed", "sent")
    assert [(r.path, r.body) for r in slack_receiver.requests] == [
        (f"/services/{slack_receiver.webhook_url.split('/services/')[1]}", _webhook_body(FAILURE.text))] * 2
    assert _rows(settings) == [("task_failure", "sent", "slack_webhook", None, None),
                               ("task_failure", "suppressed", "slack_webhook", None, None),
                               ("task_failure", "sent", "slack_webhook", None, None)]


def test_api_routes_by_severity_and_keeps_info_off_slack(settings, slack_receiver):
    api = dataclasses.replace(settings, slack_conn_id="slack_api_test", slack_webhook_conn_id="slack_webhook_test")
    drift = drift_alert(model_name="sms-spam", run_id="r7", checks=[
        {"name": "psi_text_length", "score": 0.31, "threshold": 0.15, "drifted": True, "details": "PSI 0.31"},
        {"name": "oov_rate", "score": 0.02, "threshold": 0.1, "drifted": False}])
    promoted = promotion_alert(model_name="sms-spam", version=4, previous_version=3,
                               reasons=["f1 0.962 > 0.951 + 0.005"], run_id="r8")
    assert [send_alert(a, api, now=T0).status for a in (FAILURE, drift, promoted)] == ["sent", "sent", "logged"]
    assert [(r.path, r.headers["Authorization"], r.body) for r in slack_receiver.requests] == [
        ("/api/chat.postMessage", f"Bearer {API_TOKEN}", _api_body("#ops-critical", FAILURE.text)),
        ("/api/chat.postMessage", f"Bearer {API_TOKEN}", _api_body("#ops-warning", drift.text)),
    ]
    assert _rows(settings) == [("task_failure", "sent", "slack_api", "#ops-critical", None),
                               ("drift", "sent", "slack_api", "#ops-warning", None),
                               ("promotion", "logged", "log", None, None)]


def test_unreachable_or_misconfigured_slack_is_recorded_as_failed(settings, slack_receiver):
    down = dataclasses.replace(settings, slack_webhook_conn_id="slack_down_test")
    missing = dataclasses.replace(settings, slack_webhook_conn_id="slack_never_defined")
    assert send_alert(FAILURE, down, now=T0).status == "failed"
    assert send_alert(FAILURE, missing, now=T0).status == "failed"  # a failed send does not start a cool-down
    slack_receiver.fail_with = "channel_not_found"
    api = dataclasses.replace(settings, slack_conn_id="slack_api_test")
    assert send_alert(FAILURE, api, now=T0).status == "failed"
    rows = _rows(settings)
    assert [r[:3] for r in rows] == [("task_failure", "failed", "slack_webhook")] * 2 + [
        ("task_failure", "failed", "slack_api")]
    assert rows[0][4] == "URLError: <urlopen error [Errno 111] Connection refused>"
    assert rows[1][4] == "AirflowNotFoundException: The conn_id `slack_never_defined` isn't defined"
    assert "channel_not_found" in rows[2][4]
    assert len(slack_receiver.requests) == 1  # the API call that Slack refused


def test_no_slack_configured_goes_to_log_and_table(settings, slack_receiver, caplog):
    caplog.set_level("ERROR", logger="autoretrain.alerts")
    delivery = send_alert(FAILURE, settings, now=T0)
    assert (delivery.status, delivery.transport) == ("logged", "log")
    assert _rows(settings) == [("task_failure", "logged", "log", None, None)]
    assert [r.getMessage() for r in caplog.records] == [f"alert [critical] {FAILURE.text}"]
    assert slack_receiver.requests == []


def _context(exception: BaseException) -> dict:
    ti = SimpleNamespace(task_id="register", dag_id="training", run_id="manual__1", try_number=3,
                         log_url="http://localhost:8080/dags/training/runs/manual__1/tasks/register")
    return {"ti": ti, "dag": SimpleNamespace(dag_id="training"), "run_id": "manual__1",
            "exception": exception, "params": {}}


def test_failure_callback_posts_through_the_webhook_notifier(settings, slack_receiver, monkeypatch):
    """The task-level callback, called as Airflow calls it (a DAG-level notifier cannot run under dag.test)."""
    from autoretrain.airflow.callbacks import on_task_failure
    from autoretrain.airflow.errors import DatasetRejected

    monkeypatch.setenv("AUTORETRAIN_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("AUTORETRAIN_SLACK_WEBHOOK_CONN_ID", "slack_webhook_test")
    on_task_failure(_context(RuntimeError("registry call to sales@example.com failed")))
    rejected = DatasetRejected({"source": "s3://data/sms.tsv", "failures": [
        {"name": "minimum_samples", "score": 12.0, "threshold": 1000.0, "details": "12 rows, need at least 1000"}]})
    on_task_failure(_context(rejected))
    run = "http://localhost:8080/dags/training/runs/manual__1"
    assert [r.body for r in slack_receiver.requests] == [
        _webhook_body(":red_circle: *Task failed: training.register*\n"
                      "Run `manual__1`, try 3\n"
                      "Error: registry call to [EMAIL] failed\n"
                      "*Done:* no more retries; the tasks after it did not run\n"
                      "*You can:* read the task log, fix the cause, then clear the task in Airflow to run it again\n"
                      f"<{run}|Airflow run> · <{run}/tasks/register|task log>"),
        _webhook_body(":red_circle: *Dataset validation failed*\n"
                      "Source `s3://data/sms.tsv`, run `manual__1`\n"
                      "1 blocking check(s) failed:\n"
                      "• minimum_samples 12 (limit 1000): 12 rows, need at least 1000\n"
                      "*Done:* no model is trained on this data; the champion keeps serving\n"
                      "*You can:* fix the data at its source, or run again with another data source\n"
                      f"<{run}|Airflow run>"),
    ]
    assert [r[:2] for r in _rows(settings)] == [("task_failure", "sent"), ("validation_failed", "sent")]


def test_alert_task_succeeds_whether_or_not_slack_answers(settings, slack_receiver, monkeypatch):
    """SendAlertOperator.execute with a task context: exact payload, and success when Slack is gone.

    (Connections resolved inside a real task run are covered by the dataset_validation DAG tests.)
    """
    from autoretrain.airflow.alerting import SendAlertOperator

    operator = SendAlertOperator(task_id="rollback", kind="rollback", fields={
        "model_name": "sms-spam", "from_version": 5, "to_version": 4, "mlflow_run_id": "0f1e2d3c",
        "reason": "accuracy 0.91 < floor 0.93 on 2,000 labelled predictions"})
    monkeypatch.setenv("AUTORETRAIN_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("AUTORETRAIN_SLACK_CONN_ID", "slack_api_test")
    monkeypatch.setenv("AUTORETRAIN_ALERT_CHANNEL_CRITICAL", "#ops-critical")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    context = {**_context(RuntimeError("unused")), "dag": SimpleNamespace(dag_id="rollback")}
    assert operator.execute(context)["status"] == "sent"
    text = (":red_circle: *sms-spam rolled back to version 4*\n"
            "Champion: version 5 → version 4 (run `manual__1`)\n"
            "Reason: accuracy 0.91 < floor 0.93 on 2,000 labelled predictions\n"
            "*Done:* version 4 serves all traffic again\n"
            "*You can:* find out what was wrong with version 5 before the next promotion\n"
            "<http://localhost:8080/dags/rollback/runs/manual__1|Airflow run> · "
            "<http://mlflow.internal:5000/#/runs/0f1e2d3c|MLflow> · "
            "<http://mlflow.internal:5000/#/models/sms-spam/versions/4|MLflow version>")  # added by send_alert
    assert [r.body for r in slack_receiver.requests] == [_api_body("#ops-critical", text)]

    monkeypatch.setenv("AUTORETRAIN_SLACK_CONN_ID", "slack_never_defined")
    monkeypatch.setenv("AUTORETRAIN_ALERT_COOLDOWN_MINUTES", "0")
    assert operator.execute(context)["status"] == "failed"  # recorded; the task does not raise
    assert [r[:3] for r in _rows(settings)] == [("rollback", "sent", "slack_api"), ("rollback", "failed", "slack_api")]
