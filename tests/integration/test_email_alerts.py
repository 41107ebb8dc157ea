"""E-mail next to Slack: the SMTP provider's notifier to a real SMTP server (aiosmtpd) on loopback.

Connections come from ``AIRFLOW_CONN_<ID>`` (JSON) as a deployment defines them; the alert table
is a fresh Postgres database per test. Asserted: the exact e-mail (envelope, headers, HTML body)
and Slack payload of one alert, one alert_log row per channel, a cool-down per channel (a failed
e-mail is retried while Slack stays quiet), and that the SMTP password appears nowhere.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from autoretrain.airflow.alerting import send_alert
from autoretrain.alerts.messages import regression_alert, task_failure_alert
from autoretrain.alerts.store import AlertStore
from autoretrain.config import Settings
from tests.conftest import free_port, migrated
from tests.integration.conftest import SMTP_PASSWORD, SMTP_USER

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
RUN = "http://airflow.example/dags/training/runs/manual__1"
FAILURE = task_failure_alert(dag_id="training", task_id="register", run_id="manual__1", try_number=3,
                             error="registry call to sales@example.com failed", airflow_url=RUN,
                             log_url=f"{RUN}/tasks/register")
TO = ("ops@autoretrain.test", "ml-team@autoretrain.test")


@pytest.fixture
def settings(postgres_db, monkeypatch, slack_receiver, smtp_receiver) -> Settings:
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_TEST", smtp_receiver.connection(from_email="alerts@autoretrain.test"))
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DOWN", json.dumps(
        {"conn_type": "smtp", "host": "127.0.0.1", "port": free_port(),
         "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 5, "retry_limit": 0}}))
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_TEST", slack_receiver.webhook_connection())
    return Settings(database_url=migrated(postgres_db("email_alerts")), alert_cooldown_minutes=60,
                    slack_webhook_conn_id="slack_webhook_test", alert_email_to=TO, smtp_conn_id="smtp_test")


def _rows(settings: Settings) -> list[tuple]:
    with AlertStore(settings.database_url) as store:
        return [(r.kind, r.status, r.transport, r.channel, r.error) for r in reversed(store.records())]


def _html(message) -> str:
    (part,) = message.message.get_payload()
    assert part.get_content_type() == "text/html" and part.get_content_charset() == "utf-8"
    return part.get_payload(decode=True).decode()


def test_slack_and_email_get_the_same_alert_exactly(settings, slack_receiver, smtp_receiver):
    delivery = send_alert(FAILURE, settings, now=T0)

    assert (delivery.status, delivery.transport) == ("sent", "slack_webhook+email")
    assert [(c["transport"], c["status"]) for c in delivery.as_dict()["channels"]] == [
        ("slack_webhook", "sent"), ("email", "sent")]
    assert [r.body["text"] for r in slack_receiver.requests] == [FAILURE.text]
    (mail,) = smtp_receiver.messages
    assert smtp_receiver.logins == [f"LOGIN:{SMTP_USER}:ok"] or smtp_receiver.logins == [f"PLAIN:{SMTP_USER}:ok"]
    assert (mail.mail_from, mail.rcpt_tos) == ("alerts@autoretrain.test", list(TO))
    assert (mail.message["From"], mail.message["To"], mail.message["Subject"]) == (
        "alerts@autoretrain.test", "ops@autoretrain.test, ml-team@autoretrain.test",
        "[AutoRetrain critical] Task failed: training.register")
    assert _html(mail) == (
        "<p><strong>Task failed: training.register</strong></p>\n"
        "<p>Run <code>manual__1</code>, try 3</p>\n"
        "<p>Error: registry call to [EMAIL] failed</p>\n"
        "<p><strong>Done:</strong> no more retries; the tasks after it did not run</p>\n"
        "<p><strong>You can:</strong> read the task log, fix the cause, then clear the task in Airflow to run it "
        "again</p>\n"
        f'<p><a href="{RUN}">Airflow run</a> · <a href="{RUN}/tasks/register">task log</a></p>')
    assert _rows(settings) == [("task_failure", "sent", "slack_webhook", None, None),
                               ("task_failure", "sent", "email", ", ".join(TO), None)]
    with AlertStore(settings.database_url) as store:
        assert not any(SMTP_PASSWORD in repr(r) for r in store.records())


def test_each_channel_has_its_own_cooldown_and_a_failed_email_is_retried(settings, slack_receiver, smtp_receiver):
    down = dataclasses.replace(settings, smtp_conn_id="smtp_down")
    first = send_alert(FAILURE, down, now=T0)
    again = send_alert(FAILURE, settings, now=T0 + timedelta(minutes=5))  # the SMTP server is back
    quiet = send_alert(FAILURE, settings, now=T0 + timedelta(minutes=10))

    assert [first.status, again.status, quiet.status] == ["sent", "sent", "suppressed"]
    assert len(slack_receiver.requests) == 1 and len(smtp_receiver.messages) == 1
    rows = _rows(settings)
    assert [r[1:3] for r in rows] == [("sent", "slack_webhook"), ("failed", "email"),
                                      ("suppressed", "slack_webhook"), ("sent", "email"),
                                      ("suppressed", "slack_webhook"), ("suppressed", "email")]
    assert rows[1][4].startswith("ConnectionRefusedError: [Errno 111]")
    no_slack = dataclasses.replace(down, slack_webhook_conn_id="", alert_cooldown_minutes=0)
    only_log = send_alert(FAILURE, no_slack, now=T0 + timedelta(minutes=15))
    assert (only_log.status, only_log.transport) == ("failed", "log+email")  # the log alone told nobody
    assert only_log.error.startswith("email: ConnectionRefusedError")


def test_email_only_with_the_model_ops_and_mlflow_links(settings, slack_receiver, smtp_receiver):
    mail_only = dataclasses.replace(settings, slack_webhook_conn_id="", alert_email_severities=("critical",),
                                    modelops_url="http://airflow.example/modelops")
    alert = regression_alert(model_name="sms-spam", version=3, run_id="scheduled__2026-03-02T06:00:00+00:00",
                             window="window 2026-03-02 00:00 - 06:00 UTC", n_labelled=250,
                             action="no retrain yet: 1 of 2 breaching windows in a row",
                             findings=[{"metric": "accuracy", "value": 0.912, "limit": 0.93, "baseline": None}],
                             mlflow_url="http://mlflow.example/#/runs/abc",
                             model_url="http://mlflow.example/#/models/sms-spam/versions/3")
    assert send_alert(alert, mail_only, now=T0).status == "sent"

    assert slack_receiver.requests == []
    assert _rows(settings) == [("regression", "logged", "log", None, None),
                               ("regression", "sent", "email", ", ".join(TO), None)]
    (mail,) = smtp_receiver.messages
    assert mail.message["Subject"] == "[AutoRetrain critical] sms-spam version 3 regressed on live feedback"
    assert _html(mail) == (
        "<p><strong>sms-spam version 3 regressed on live feedback</strong></p>\n"
        "<p>Monitoring run <code>scheduled__2026-03-02T06:00:00+00:00</code> in window 2026-03-02 00:00 - 06:00 "
        "UTC, 250 labelled predictions:</p>\n"
        "<ul>\n<li>accuracy 0.912 is under the floor 0.93</li>\n</ul>\n"
        "<p><strong>Done:</strong> version 3 keeps serving; no retrain yet: 1 of 2 breaching windows in a row</p>\n"
        "<p><strong>You can:</strong> roll back now with the rollback DAG (or <code>autoretrain rollback</code>) if "
        "the previous version did better; read the window's labelled feedback in the MLflow run</p>\n"
        '<p><a href="http://mlflow.example/#/runs/abc">MLflow</a> · '
        '<a href="http://mlflow.example/#/models/sms-spam/versions/3">MLflow version</a> · '
        '<a href="http://airflow.example/modelops?model=sms-spam&amp;version=3">Model Ops</a></p>')
