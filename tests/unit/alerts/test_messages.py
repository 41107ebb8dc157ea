"""Alert message builders, links, severity routing and the cool-down rule: pure, no Slack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autoretrain.alerts.messages import (
    BUILDERS,
    MAX_TEXT_CHARS,
    Alert,
    Route,
    airflow_run_url,
    build_alert,
    drift_alert,
    gate_failure_alert,
    in_cooldown,
    mlflow_model_url,
    mlflow_run_url,
    promotion_alert,
    regression_alert,
    rejection_alert,
    rollback_alert,
    route_for,
    task_failure_alert,
    validation_failure_alert,
)
from autoretrain.config import Settings

AF = "http://af:8080/dags/x/runs/r1"
ML = "http://mlflow:5000/#/runs/abc"


def test_links():
    assert airflow_run_url("http://af:8080/", "training", "manual__2026-03-01T02:00:00+00:00") == (
        "http://af:8080/dags/training/runs/manual__2026-03-01T02%3A00%3A00%2B00%3A00")
    assert mlflow_run_url("http://mlflow:5000/", "abc") == ML
    assert mlflow_run_url("sqlite:////tmp/mlflow.db", "abc") is None
    assert mlflow_run_url("http://mlflow:5000", "") is None
    assert mlflow_model_url("https://ml.example", "sms spam", 3) == "https://ml.example/#/models/sms%20spam/versions/3"
    assert mlflow_model_url("file:///tmp/mlruns", "m", 1) is None


def test_task_failure_message_is_redacted_and_linked():
    alert = task_failure_alert(dag_id="training", task_id="load", run_id="r1", try_number=3,
                               error="cannot read row 'call 07700 900123 now'\n  Traceback...",
                               airflow_url=AF, log_url=f"{AF}/tasks/load?try_number=3", mlflow_url=ML)
    assert alert == Alert(
        kind="task_failure", severity="critical", title="Task failed: training.load",
        text=(":red_circle: *Task failed: training.load*\nRun: r1 (try 3)\n"
              "Error: cannot read row 'call [PHONE] now' Traceback...\n"
              f"Logs: {AF}/tasks/load?try_number=3\nAirflow: {AF}\nMLflow: {ML}"),
        dedup_key="task_failure:training.load", links=(("airflow", AF), ("mlflow", ML)))
    assert alert.as_dict()["links"] == {"airflow": AF, "mlflow": ML}


def test_validation_failure_lists_each_check_with_score_and_limit():
    alert = validation_failure_alert(source="/data/sms.tsv", run_id="r2", airflow_url=AF, failures=[
        {"name": "minimum_samples", "score": 40.0, "threshold": 1000.0, "details": "40 rows, need at least 1000"},
        {"name": "class_balance", "score": 0.0, "threshold": 0.05, "details": "label counts {'ham': 40}"}])
    assert alert.text == (":red_circle: *Dataset validation failed*\nSource: /data/sms.tsv\nRun: r2\n"
                          "2 blocking check(s) failed; no model is trained on this data:\n"
                          "- minimum_samples (score 40, limit 1000): 40 rows, need at least 1000\n"
                          "- class_balance (score 0, limit 0.05): label counts {'ham': 40}\n"
                          f"Airflow: {AF}")
    assert (alert.severity, alert.dedup_key) == ("critical",
                                                 "validation_failed:/data/sms.tsv:class_balance,minimum_samples")


def test_drift_lists_only_drifted_checks():
    alert = drift_alert(model_name="sms-spam", run_id="r3", mlflow_url=ML, checks=[
        {"name": "psi_length", "score": 0.3, "threshold": 0.15, "drifted": True},
        {"name": "oov_rate", "score": 0.01, "threshold": 0.1, "drifted": False},
        {"name": "label_shift", "score": 0.2, "threshold": 0.1, "passed": False, "details": "spam 31%"}])
    assert alert.text == (":warning: *Drift detected for sms-spam*\nRun: r3\n2 of 3 drift check(s) over their limit:\n"
                          "- psi_length (score 0.3, limit 0.15)\n- label_shift (score 0.2, limit 0.1): spam 31%\n"
                          f"MLflow: {ML}")
    assert (alert.severity, alert.dedup_key) == ("warning", "drift:sms-spam:label_shift,psi_length")


@pytest.mark.parametrize(("alert", "severity", "text", "key"), [
    (regression_alert(model_name="m", version=4, metric="accuracy", value=0.912, floor=0.93,
                      window="7 days", run_id="r"),
     "critical", ":red_circle: *m version 4 regressed*\nRun: r\naccuracy 0.9120 over 7 days is below the floor 0.9300",
     "regression:m:4:accuracy"),
    (promotion_alert(model_name="m", version=5, previous_version=4, reasons=["f1 0.97 > 0.96"], run_id="r"),
     "info", ":information_source: *m version 5 promoted to champion*\nRun: r\nchampion is now version 5 "
             "(was version 4)\n- f1 0.97 > 0.96", "promotion:m:5"),
    (rejection_alert(model_name="m", version=6, champion_version=5, reasons=["f1 gain 0.001 < 0.005"],
                     run_id="r"),
     "info", ":information_source: *m version 6 rejected*\nRun: r\nchampion stays version 5\n"
             "- f1 gain 0.001 < 0.005", "rejection:m:6"),
    (rollback_alert(model_name="m", from_version=5, to_version=4, reason="manual: bad canary", run_id="r"),
     "critical", ":red_circle: *m rolled back to version 4*\nRun: r\nchampion: version 5 -> version 4\n"
                 "Reason: manual: bad canary", "rollback:m:5->4"),
    (gate_failure_alert(model_name="m", version=2, run_id="r",
                        reasons=["accuracy 0.97 >= 0.95 ok", "f1 0.85 < 0.90 FAIL"]),
     "warning", ":warning: *m version 2 failed its quality gates and gets no alias*\nRun: r\n- f1 0.85 < 0.90 FAIL",
     "gate_failed:m:2"),
])
def test_lifecycle_builders(alert, severity, text, key):
    assert (alert.severity, alert.text, alert.dedup_key) == (severity, text, key)


def test_build_alert_by_kind_and_limits():
    assert set(BUILDERS) == {"task_failure", "validation_failed", "drift", "regression", "promotion",
                             "rejection", "rollback", "gate_failed"}
    rollback = build_alert("rollback", model_name="m", from_version=2, to_version=1, reason="x", run_id="r")
    assert rollback.kind == "rollback"
    with pytest.raises(ValueError, match="unknown alert kind 'nope'"):
        build_alert("nope")
    with pytest.raises(ValueError, match="severity 'loud' is not one of"):
        Alert("k", "loud", "t", "x", "k")
    long = promotion_alert(model_name="m", version=1, previous_version=None, reasons=["r" * 290] * 20, run_id="r")
    assert len(long.text) == MAX_TEXT_CHARS and long.text.endswith("...")


# ---------------------------------------------------------------------------------------- routing
@pytest.mark.parametrize(("settings", "severity", "route"), [
    (Settings(), "critical", Route("log")),  # the embedded default: no Slack
    (Settings(slack_webhook_conn_id="hook"), "info", Route("slack_webhook", "hook", None)),
    (Settings(slack_conn_id="api"), "critical", Route("slack_api", "api", "#autoretrain-alerts")),
    (Settings(slack_conn_id="api"), "warning", Route("slack_api", "api", "#autoretrain")),
    (Settings(slack_conn_id="api", slack_webhook_conn_id="hook", alert_channel_info="#news"), "info",
     Route("slack_api", "api", "#news")),  # the API connection wins: it can pick channels
    (Settings(slack_conn_id="api", alert_channel_info=""), "info", Route("log")),
    (Settings(slack_webhook_conn_id="hook", alert_channel_warning="  "), "warning", Route("log")),
])
def test_route_for(settings, severity, route):
    assert route_for(severity, settings) == route


def test_route_for_unknown_severity():
    with pytest.raises(ValueError, match="severity 'page' is not one of"):
        route_for("page", Settings())


T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(("last", "now", "cooldown", "held"), [
    (None, T0, timedelta(minutes=60), False),
    (T0, T0 + timedelta(minutes=59, seconds=59), timedelta(minutes=60), True),
    (T0, T0 + timedelta(minutes=60), timedelta(minutes=60), False),
    (T0, T0, timedelta(0), False),  # cool-down 0: every alert goes out
])
def test_in_cooldown(last, now, cooldown, held):
    assert in_cooldown(last, now, cooldown) is held
