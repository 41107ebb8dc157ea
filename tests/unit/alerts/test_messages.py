"""Alert message builders, links, severity routing and the cool-down rule: pure, no Slack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autoretrain.alerts.email import email_html, email_subject
from autoretrain.alerts.messages import (
    BUILDERS,
    MAX_TEXT_CHARS,
    Alert,
    Route,
    airflow_run_url,
    build_alert,
    deadline_alert,
    drift_alert,
    gate_failure_alert,
    in_cooldown,
    mlflow_model_url,
    mlflow_run_url,
    modelops_page_url,
    promotion_alert,
    regression_alert,
    rejection_alert,
    rollback_alert,
    route_for,
    routes_for,
    scrubbed,
    stale_data_alert,
    task_failure_alert,
    validation_failure_alert,
    with_links,
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
        text=(":red_circle: *Task failed: training.load*\nRun `r1`, try 3\n"
              "Error: cannot read row 'call [PHONE] now' Traceback...\n"
              "*Done:* no more retries; the tasks after it did not run\n"
              "*You can:* read the task log, fix the cause, then clear the task in Airflow to run it again\n"
              f"<{AF}|Airflow run> · <{ML}|MLflow> · <{AF}/tasks/load?try_number=3|task log>"),
        dedup_key="task_failure:training.load", links=(("airflow", AF), ("mlflow", ML)))
    assert alert.as_dict()["links"] == {"airflow": AF, "mlflow": ML}


def test_validation_failure_lists_each_check_with_score_and_limit():
    alert = validation_failure_alert(source="/data/sms.tsv", run_id="r2", airflow_url=AF, failures=[
        {"name": "minimum_samples", "score": 40.0, "threshold": 1000.0, "details": "40 rows, need at least 1000"},
        {"name": "class_balance", "score": 0.0, "threshold": 0.05, "details": "label counts {'ham': 40}"}])
    assert alert.text == (":red_circle: *Dataset validation failed*\nSource `/data/sms.tsv`, run `r2`\n"
                          "2 blocking check(s) failed:\n"
                          "• minimum_samples 40 (limit 1000): 40 rows, need at least 1000\n"
                          "• class_balance 0 (limit 0.05): label counts {'ham': 40}\n"
                          "*Done:* no model is trained on this data; the champion keeps serving\n"
                          "*You can:* fix the data at its source, or run again with another data source\n"
                          f"<{AF}|Airflow run>")
    assert (alert.severity, alert.dedup_key) == ("critical",
                                                 "validation_failed:/data/sms.tsv:class_balance,minimum_samples")


def test_drift_lists_only_drifted_checks_with_their_figures_never_raw_details():
    alert = drift_alert(model_name="sms-spam", run_id="r3", mlflow_url=ML, checks=[
        {"name": "text_length_psi", "score": 0.31234567, "threshold": 0.15, "drifted": True,
         "details": {"bins": [0.1, 0.2], "declared_threshold": 0.15}},
        {"name": "vocabulary_oov", "score": 0.01, "threshold": 0.1, "drifted": False},
        {"name": "emerging_terms", "score": 0.45, "threshold": 0.01, "drifted": True,
         "details": {"emerging_terms": [{"term": "wallet", "lift": 80.0}, {"term": "bitcoin", "lift": 60.0}]}},
        {"name": "label_shift", "score": 0.2, "threshold": 0.1, "passed": False, "details": "spam 31%"}])
    assert alert.text == (":warning: *Drift detected for sms-spam*\n"
                          "3 of 4 drift checks over their limit (monitoring run `r3`):\n"
                          "• emerging_terms 0.45 > limit 0.01: new or surging terms wallet, bitcoin\n"
                          "• text_length_psi 0.3123 > limit 0.15\n"
                          "• label_shift 0.2 > limit 0.1: spam 31%\n"
                          "*Done:* retrain_compare_promote was triggered to train and compare a challenger\n"
                          "*You can:* follow the retrain run; the champion serves until a challenger is promoted\n"
                          f"<{ML}|MLflow>")
    assert (alert.severity, alert.dedup_key) == ("warning", "drift:sms-spam:emerging_terms,label_shift,text_length_psi")


def test_many_drifted_checks_are_summed_up_not_cut_off():
    checks = [{"name": f"check_{i}", "score": 1.0 + i, "threshold": 0.5, "drifted": True} for i in range(13)]
    text = drift_alert(model_name="m", run_id="r", checks=checks, mlflow_url=ML).text
    assert text.count("• check_") == 6 and "• … and 7 more (all scores in the MLflow run)" in text
    assert text.endswith(f"<{ML}|MLflow>")


@pytest.mark.parametrize(("alert", "severity", "text", "key"), [
    (regression_alert(model_name="m", version=4, run_id="r", window="window 06:00 - 12:00 UTC", n_labelled=250,
                      action="retrain_compare_promote was triggered", findings=[
                          {"metric": "accuracy", "value": 0.912, "limit": 0.93, "baseline": None},
                          {"metric": "f1", "value": 0.81, "limit": 0.05, "baseline": 0.9}]),
     "critical", ":red_circle: *m version 4 regressed on live feedback*\n"
                 "Monitoring run `r` in window 06:00 - 12:00 UTC, 250 labelled predictions:\n"
                 "• accuracy 0.912 is under the floor 0.93\n"
                 "• f1 0.81 is 0.09 under its evaluation 0.9 (limit 0.05)\n"
                 "*Done:* version 4 keeps serving; retrain_compare_promote was triggered\n"
                 "*You can:* roll back now with the rollback DAG (or `autoretrain rollback`) if the previous version "
                 "did better; read the window's labelled feedback in the MLflow run", "regression:m:4:accuracy,f1"),
    (stale_data_alert(source="data/sms.tsv", age_days=41.46, limit_days=30, run_id="r",
                      details="newest data 2026-01-20 08:00 UTC is 41.5 day(s) old (limit 30)"),
     "warning", ":warning: *No new labelled data for 41 days*\nSource `data/sms.tsv`, validation run `r`:\n"
                "newest labelled data is 41.46 days old (limit 30 days)\n"
                "Check: newest data 2026-01-20 08:00 UTC is 41.5 day(s) old (limit 30)\n"
                "*Done:* the data passed its blocking checks and is used as it is; monitoring and retraining learn "
                "nothing new until labels come back\n*You can:* check that feedback still reaches POST /feedback and "
                "that feedback_uri is updated; raise freshness_days if this source is meant to change less often",
     "stale_data:data/sms.tsv"),
    (deadline_alert(dag_id="monitoring", run_id="r", limit="30 min after it was queued", state="running",
                    deadline_time="2026-03-02 06:30:00 UTC"),
     "warning", ":warning: *monitoring run missed its deadline*\n"
                "Run `r` is still running past its deadline 2026-03-02 06:30:00 UTC (30 min after it was queued)\n"
                "*Done:* nothing was stopped: the run goes on, and Airflow records the missed deadline\n"
                "*You can:* open the run: a task waiting for a worker slot or pool, a sensor still poking, or a call "
                "to MLflow or the database that hangs; mark the run failed to stop it, or clear the stuck task",
     "deadline:monitoring:r:30 min after it was queued"),
    (promotion_alert(model_name="m", version=5, previous_version=4, reasons=["McNemar p=0.0001234 < 0.05"],
                     run_id="r"),
     "info", ":information_source: *m version 5 promoted to champion*\nVersion 5 is champion, replacing version 4 "
             "(run `r`). Why:\n• McNemar p=0.0001234 < 0.05\n*Done:* the prediction service swaps to version 5 on "
             "its next poll; version 4 is kept as previous\n*You can:* roll back in one step with the rollback DAG "
             "(or `autoretrain rollback`)", "promotion:m:5"),
    (rejection_alert(model_name="m", version=6, champion_version=5, reasons=["f1 gain 0.001 < 0.005"],
                     run_id="r"),
     "info", ":information_source: *m version 6 rejected*\nVersion 6 was not promoted (run `r`). Why:\n"
             "• f1 gain 0.001 < 0.005\n*Done:* version 5 stays champion; version 6 gets no alias\n*You can:* read "
             "the comparison and model card in MLflow; more labelled data starts another retrain", "rejection:m:6"),
    (rollback_alert(model_name="m", from_version=5, to_version=4, reason="manual: bad canary", run_id="r"),
     "critical", ":red_circle: *m rolled back to version 4*\nChampion: version 5 → version 4 (run `r`)\n"
                 "Reason: manual: bad canary\n*Done:* version 4 serves all traffic again\n*You can:* find out what "
                 "was wrong with version 5 before the next promotion", "rollback:m:5->4"),
    (gate_failure_alert(model_name="m", version=2, run_id="r",
                        reasons=["accuracy 0.97 >= 0.95 ok", "f1 0.85 < 0.90 FAIL"]),
     "warning", ":warning: *m version 2 failed its quality gates and gets no alias*\nVersion 2 (run `r`) failed:\n"
                "• f1 0.85 < 0.90 FAIL\n*Done:* the version is registered without an alias; the champion is "
                "unchanged\n*You can:* read its model card in MLflow; more or cleaner training data usually fixes it",
     "gate_failed:m:2"),
])
def test_lifecycle_builders(alert, severity, text, key):
    assert (alert.severity, alert.text, alert.dedup_key) == (severity, text, key)


SAMPLE_FIELDS = {  # one realistic set of fields per kind: every alert kind is rendered and checked
    "task_failure": {"dag_id": "training", "task_id": "train", "run_id": "r", "try_number": 3,
                     "error": "MlflowException: API request failed after 7 retries"},
    "validation_failed": {"source": "s3://b/sms.tsv", "run_id": "r", "failures": [
        {"name": "duplicates", "score": 0.5, "threshold": 0.2, "details": "600 repeated text(s) (50.0%)"}]},
    "drift": {"model_name": "m", "run_id": "r", "checks": [
        {"name": "tfidf_js", "score": 0.0312345678, "threshold": 0.02, "drifted": True, "details": {"x": 1}}]},
    "regression": {"model_name": "m", "version": 3, "run_id": "r", "action": "waiting for the next window",
                   "findings": [{"metric": "f1", "value": 0.8123456, "limit": 0.05, "baseline": 0.9123456}]},
    "stale_data": {"source": "s3://b/sms.tsv", "age_days": 45.0, "limit_days": 30.0, "run_id": "r",
                   "details": "newest data 2026-01-20 08:00 UTC is 45.0 day(s) old (limit 30)"},
    "deadline": {"dag_id": "monitoring", "run_id": "r", "limit": "30 min after it was queued", "state": "running",
                 "deadline_time": "2026-03-02 06:30:00 UTC"},
    "promotion": {"model_name": "m", "version": 2, "previous_version": 1, "run_id": "r",
                  "reasons": ["McNemar p=0.0000123456 < 0.05", "f1 0.9712345678 vs 0.8012345678"]},
    "rejection": {"model_name": "m", "version": 2, "champion_version": 1, "run_id": "r",
                  "reasons": ["improvement 0.0012345678 < min_improvement 0.005"]},
    "rollback": {"model_name": "m", "from_version": 2, "to_version": 1, "reason": "canary error rate 0.0512345",
                 "run_id": "r"},
    "gate_failed": {"model_name": "m", "version": 2, "run_id": "r", "reasons": ["ece 0.0612345678 > 0.05 FAIL"]},
    "model_integrity": {"model_name": "m", "version": 7, "alias": "champion", "serving_version": 6,
                        "reason": "m version 7 was not registered by AutoRetrain (no model_artifacts record)"},
    "external_alias_move": {"model_name": "m", "run_id": "r", "changes": [
        {"alias": "champion", "from_version": "1", "to_version": "7"}]},
    "approval_request": {"model_name": "m", "version": 2, "champion_version": 1, "run_id": "r", "timeout_hours": 24,
                         "subject": "Approve m version 2 as champion? (champion: version 1)",
                         "champion_url": "http://mlflow.test/#/models/m/versions/1"},
    "approval_timeout": {"model_name": "m", "version": 2, "champion_version": 1, "run_id": "r",
                         "timeout_hours": 0.5},
}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_every_alert_kind_reads_well_in_slack(kind):
    alert = build_alert(kind, **SAMPLE_FIELDS[kind], airflow_url=AF, mlflow_url=ML)
    lines = alert.text.splitlines()
    assert lines[0].startswith(":") and f"*{alert.title}*" in lines[0]
    assert any(line.startswith("*Done:* ") for line in lines) and any(line.startswith("*You can:* ") for line in lines)
    assert lines[-1] == f"<{AF}|Airflow run> · <{ML}|MLflow>"
    assert "[PHONE]" not in alert.text and "[CARD]" not in alert.text  # figures are never taken for personal data
    assert "{" not in alert.text  # no raw Python dicts
    assert len(alert.text) <= MAX_TEXT_CHARS


def test_integrity_alert_is_critical_and_says_what_serves():
    alert = build_alert("model_integrity", **SAMPLE_FIELDS["model_integrity"])
    assert (alert.kind, alert.severity, alert.dedup_key) == ("model_integrity", "critical", "model_integrity:m:7")
    assert "version 6 keeps serving" in alert.text and "not retried" in alert.text
    assert "no model_artifacts record" in alert.text


def test_build_alert_by_kind_and_limits():
    assert set(BUILDERS) == set(SAMPLE_FIELDS)
    rollback = build_alert("rollback", model_name="m", from_version=2, to_version=1, reason="x", run_id="r")
    assert rollback.kind == "rollback"
    with pytest.raises(ValueError, match="unknown alert kind 'nope'"):
        build_alert("nope")
    with pytest.raises(ValueError, match="severity 'loud' is not one of"):
        Alert("k", "loud", "t", "x", "k")
    long = promotion_alert(model_name="m", version=1, previous_version=None, reasons=["word " * 200] * 20, run_id="r")
    assert len(long.text) <= MAX_TEXT_CHARS
    assert all(len(line) <= 210 for line in long.text.splitlines())  # each reason cut at a word, with "…"
    assert "• … and 14 more (the alias audit)" in long.text


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


# ------------------------------------------------------------------ e-mail, Model Ops, channels
def test_routes_for_adds_email_for_its_severities():
    mail = Settings(slack_webhook_conn_id="hook", alert_email_to=("ops@example.com", "ml@example.com"),
                    alert_email_severities=("critical",), smtp_conn_id="smtp_ops")
    assert routes_for("critical", mail) == (Route("slack_webhook", "hook", None),
                                            Route("email", "smtp_ops", "ops@example.com, ml@example.com"))
    assert routes_for("warning", mail) == (Route("slack_webhook", "hook", None),)
    assert routes_for("info", Settings()) == (Route("log"),)


def test_modelops_link_is_added_to_text_and_links_once():
    alert = promotion_alert(model_name="sms spam", version=5, previous_version=4, reasons=["ok"], run_id="r",
                            airflow_url=AF)
    url = modelops_page_url("http://af:8080/modelops/", model_name="sms spam", version=alert.model_version)
    assert url == "http://af:8080/modelops?model=sms+spam&version=5"
    assert modelops_page_url("", model_name="m") is None and modelops_page_url("javascript:x", model_name="m") is None
    linked = with_links(with_links(alert, [("modelops", url)]), [("modelops", "http://elsewhere/")])
    assert linked.links == (("airflow", AF), ("modelops", url))
    assert linked.text.splitlines()[-1] == f"<{AF}|Airflow run> · <{url}|Model Ops>"
    assert linked.text.rsplit("\n", 1)[0] == alert.text.rsplit("\n", 1)[0]


def test_scrubbed_renders_every_part_again():
    alert = task_failure_alert(dag_id="d", task_id="t", run_id="r", try_number=1, error="token s3cr3t refused",
                               airflow_url=AF, log_url=f"{AF}/tasks/t?s3cr3t")
    clean = scrubbed(alert, lambda text: text.replace("s3cr3t", "***"))
    assert "s3cr3t" not in clean.text and "s3cr3t" not in email_html(clean) and "s3cr3t" not in clean.log_url
    assert clean.text == alert.text.replace("s3cr3t", "***")


def test_email_subject_and_html_are_the_same_message():
    alert = validation_failure_alert(source="/data/<sms>.tsv", run_id="r2", airflow_url=AF, failures=[
        {"name": "minimum_samples", "score": 40.0, "threshold": 1000.0, "details": "40 rows & more"}])
    assert email_subject(alert) == "[AutoRetrain critical] Dataset validation failed"
    assert email_html(alert) == (
        "<p><strong>Dataset validation failed</strong></p>\n"
        "<p>Source <code>/data/&lt;sms&gt;.tsv</code>, run <code>r2</code></p>\n"
        "<p>1 blocking check(s) failed:</p>\n"
        "<ul>\n<li>minimum_samples 40 (limit 1000): 40 rows &amp; more</li>\n</ul>\n"
        "<p><strong>Done:</strong> no model is trained on this data; the champion keeps serving</p>\n"
        "<p><strong>You can:</strong> fix the data at its source, or run again with another data source</p>\n"
        f'<p><a href="{AF}">Airflow run</a></p>')
    long = build_alert("promotion", **{**SAMPLE_FIELDS["promotion"], "model_name": "m" * 300})
    assert len(email_subject(long)) == 150 and email_subject(long).endswith("…")
