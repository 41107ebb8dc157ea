"""Airflow Deadline Alerts under the real scheduler: a run held past its deadline reaches Slack and e-mail.

A DAG-level callback cannot be exercised with ``dag.test()`` (see tests/conftest.py), so this module
starts what a deployment runs, as native processes on loopback: api-server, scheduler, dag-processor
and triggerer (the Deadline Alert callback is an ``AsyncCallback``: it runs in the triggerer), on a
fresh Postgres metadata database, with ``run_deadlines=monitoring=3s``. The test pauses
``monitoring`` and triggers it through the REST API: the run stays queued (held), its deadline
(queued + 3 s) passes, the scheduler hands the callback to the triggerer, and the alert arrives,
exactly, at the Slack receiver and the SMTP server, with one alert_log row per channel.

Time: ~40-60 s on 2 cores (migrate ~10 s, the four processes up and the DAGs parsed ~25 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from autoretrain.alerts.store import AlertStore
from devstack import localstack
from devstack.airflow_api import AirflowAPI
from tests.conftest import eventually, free_port, migrated
from tests.integration.conftest import SlackReceiver, SmtpReceiver, slack_receiving, smtp_receiving

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
TO = "oncall@autoretrain.test"


@dataclass
class Stack:
    api: AirflowAPI
    base_url: str
    airflow_db: str
    alerts_db: str
    slack: SlackReceiver
    smtp: SmtpReceiver


@pytest.fixture(scope="module")
def stack(postgres_db, tmp_path_factory) -> Iterator[Stack]:
    """One Airflow (api-server, scheduler, dag-processor, triggerer) for the module, and both receivers."""
    home, state = tmp_path_factory.mktemp("deadline-airflow"), tmp_path_factory.mktemp("deadline-stack")
    airflow_db = postgres_db("deadline_airflow").replace("postgresql://", "postgresql+psycopg2://", 1)
    alerts_db, port = migrated(postgres_db("deadline_alerts")), free_port()
    base_url = f"http://127.0.0.1:{port}"
    with slack_receiving() as slack, smtp_receiving() as smtp:
        env = {**os.environ,
               "AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
               "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",  # nothing runs a task here: no preloading needed
               "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # no cron runs: only the run the test triggers
               "AIRFLOW__API__BASE_URL": base_url + "/",
               "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
               "AUTORETRAIN_RUN_DEADLINES": "monitoring=3s",
               "AUTORETRAIN_DATABASE_URL": alerts_db,
               "AUTORETRAIN_SLACK_WEBHOOK_CONN_ID": "slack_deadline_test",
               "AIRFLOW_CONN_SLACK_DEADLINE_TEST": slack.webhook_connection(),
               "AUTORETRAIN_ALERT_EMAIL_TO": TO, "AUTORETRAIN_ALERT_EMAIL_FROM": "airflow@autoretrain.test",
               "AUTORETRAIN_SMTP_CONN_ID": "smtp_deadline_test",
               "AIRFLOW_CONN_SMTP_DEADLINE_TEST": smtp.connection(),
               "AUTORETRAIN_MODELOPS_URL": f"{base_url}/modelops",
               "PYTHONUNBUFFERED": "1"}
        migrate = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True,
                                 timeout=240)
        assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
        airflow = str(BIN / "airflow")
        services = [
            localstack.Service("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
                               health_url=f"{base_url}/api/v2/monitor/health"),
            localstack.Service("scheduler", [airflow, "scheduler", "--skip-serve-logs"]),
            localstack.Service("dag-processor", [airflow, "dag-processor"]),
            localstack.Service("triggerer", [airflow, "triggerer", "--skip-serve-logs"]),
        ]
        with localstack.up(services, state, env):
            password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
            yield Stack(AirflowAPI(base_url, "admin", password), base_url, airflow_db, alerts_db, slack, smtp)


def _rows(url: str) -> list[tuple]:
    with AlertStore(url) as store:
        return [(r.kind, r.status, r.transport, r.channel, r.dag_id, r.run_id) for r in reversed(store.records())]


def _callback_states(airflow_db: str, run_id: str) -> list[tuple]:
    engine = sa.create_engine(airflow_db)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(
                "SELECT d.missed, c.state, c.output FROM deadline d JOIN dag_run r ON r.id = d.dagrun_id "
                "LEFT JOIN callback c ON c.id = d.callback_id WHERE r.run_id = :run_id"), {"run_id": run_id})]
    finally:
        engine.dispose()


def test_a_run_held_past_its_deadline_alerts_on_slack_and_email(stack: Stack):
    started = time.monotonic()
    api = stack.api
    api.wait_for_dags(["monitoring"], timeout=150)
    api.set_paused("monitoring", True)  # the run is held in "queued": nothing starts it
    run_id = api.trigger("monitoring", note="held past its deadline")
    queued_at = datetime.fromisoformat(api.dag_run("monitoring", run_id)["queued_at"].replace("Z", "+00:00"))

    eventually(lambda: len(_rows(stack.alerts_db)) == 2, what="the deadline alert on both channels", timeout=90,
               interval=0.5)
    with AlertStore(stack.alerts_db) as store:
        recorded = min(r.created_at for r in store.records())
    late = (recorded - (queued_at + timedelta(seconds=3))).total_seconds()
    print(f"  deadline alert recorded {late:.1f} s after the deadline passed "
          f"({time.monotonic() - started:.0f} s after the DAGs were looked up)")

    run_url = f"{stack.base_url}/dags/monitoring/runs/{run_id.replace(':', '%3A').replace('+', '%2B')}"
    modelops = f"{stack.base_url}/modelops?model=sms-spam"
    deadline = f"{queued_at + timedelta(seconds=3):%Y-%m-%d %H:%M:%S} UTC"
    body = (f"Run `{run_id}` is still queued past its deadline {deadline} (3 s after it was queued)",
            "nothing was stopped: the run goes on, and Airflow records the missed deadline",
            "open the run: a task waiting for a worker slot or pool, a sensor still poking, or a call to MLflow or "
            "the database that hangs; mark the run failed to stop it, or clear the stuck task")
    assert [r.body["text"] for r in stack.slack.requests] == [
        f":warning: *monitoring run missed its deadline*\n{body[0]}\n*Done:* {body[1]}\n*You can:* {body[2]}\n"
        f"<{run_url}|Airflow run> · <{modelops}|Model Ops>"]
    (mail,) = stack.smtp.messages
    assert (mail.mail_from, mail.rcpt_tos, mail.message["Subject"]) == (
        "airflow@autoretrain.test", [TO], "[AutoRetrain warning] monitoring run missed its deadline")
    (part,) = mail.message.get_payload()
    assert part.get_payload(decode=True).decode() == (
        "<p><strong>monitoring run missed its deadline</strong></p>\n"
        f"<p>{body[0].replace(f'`{run_id}`', f'<code>{run_id}</code>')}</p>\n"
        f"<p><strong>Done:</strong> {body[1]}</p>\n<p><strong>You can:</strong> {body[2]}</p>\n"
        f'<p><a href="{run_url}">Airflow run</a> · <a href="{modelops.replace("&", "&amp;")}">Model Ops</a></p>')
    assert _rows(stack.alerts_db) == [("deadline", "sent", "slack_webhook", None, "monitoring", run_id),
                                      ("deadline", "sent", "email", TO, "monitoring", run_id)]
    eventually(lambda: _callback_states(stack.airflow_db, run_id) == [
        (True, "success", "deadline alert sent (slack_webhook+email)")],
               what="Airflow to record the deadline as missed and its callback as succeeded", timeout=30)
    assert api.dag_run("monitoring", run_id)["state"] == "queued"  # the alert changed nothing about the run
