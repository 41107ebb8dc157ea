"""The alert cool-down under a race, on Postgres, through the Slack provider to the loopback receiver.

Finding 7 of issue 12: the cool-down was check-then-act (read the alert log, send, write), so 4
identical alerts at once sent 3. Now the claim is one conditional write: N senders of the same
alert at once, as threads of one process or as separate processes, deliver exactly one message;
the others record ``suppressed``. A failed send gives the claim back, so the next attempt is sent.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from autoretrain.airflow.alerting import send_alert
from autoretrain.alerts.messages import task_failure_alert
from autoretrain.alerts.store import AlertStore
from autoretrain.config import Settings
from tests.conftest import migrated

pytestmark = pytest.mark.integration

N = 8
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ALERT = task_failure_alert(dag_id="training", task_id="train", run_id="r1", try_number=3, error="MLflow down")


@pytest.fixture
def settings(postgres_db, monkeypatch, slack_receiver) -> Settings:
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_RACE_TEST", slack_receiver.webhook_connection())
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_RACE_DOWN", json.dumps(
        {"conn_type": "slackwebhook", "password": "http://127.0.0.1:9/services/T0/B0/nobody-listens"}))
    return Settings(database_url=migrated(postgres_db("alert_race")), alert_cooldown_minutes=60,
                    slack_webhook_conn_id="slack_race_test")


def _statuses(settings: Settings) -> Counter[str]:
    with AlertStore(settings.database_url) as store:
        return Counter(r.status for r in store.records(dedup_key=ALERT.dedup_key))


def test_eight_threads_racing_the_same_alert_send_exactly_one(settings, slack_receiver):
    barrier = threading.Barrier(N)
    outcomes: list[str] = []

    def race() -> None:
        barrier.wait()
        outcomes.append(send_alert(ALERT, settings, now=T0).status)

    threads = [threading.Thread(target=race) for _ in range(N)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["sent"] + ["suppressed"] * (N - 1)
    assert len(slack_receiver.requests) == 1
    assert _statuses(settings) == {"sent": 1, "suppressed": N - 1}
    # the cool-down still ends: an hour later the same alert goes out once more
    assert send_alert(ALERT, settings, now=T0 + timedelta(minutes=60)).status == "sent"
    assert len(slack_receiver.requests) == 2


def _send_in_child(settings: Settings, barrier: multiprocessing.synchronize.Barrier, queue) -> None:
    barrier.wait()
    queue.put(send_alert(ALERT, settings, now=T0).status)


def test_eight_processes_racing_the_same_alert_send_exactly_one(settings, slack_receiver):
    ctx = multiprocessing.get_context("fork")  # the children inherit the connections' environment
    barrier, queue = ctx.Barrier(N), ctx.Queue()
    procs = [ctx.Process(target=_send_in_child, args=(settings, barrier, queue)) for _ in range(N)]
    for proc in procs:
        proc.start()
    outcomes = [queue.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
    assert [p.exitcode for p in procs] == [0] * N
    assert sorted(outcomes) == ["sent"] + ["suppressed"] * (N - 1)
    assert len(slack_receiver.requests) == 1
    assert _statuses(settings) == {"sent": 1, "suppressed": N - 1}


def test_a_failed_send_gives_the_claim_back(settings, slack_receiver):
    down = dataclasses.replace(settings, slack_webhook_conn_id="slack_race_down")
    assert send_alert(ALERT, down, now=T0).status == "failed"
    assert send_alert(ALERT, settings, now=T0 + timedelta(minutes=1)).status == "sent"  # not held back
    assert send_alert(ALERT, settings, now=T0 + timedelta(minutes=2)).status == "suppressed"
    assert send_alert(ALERT, down, now=T0 + timedelta(minutes=61)).status == "failed"
    # the failed one restored the claim of minute 1: still an hour after it, not after minute 61
    assert send_alert(ALERT, settings, now=T0 + timedelta(minutes=62)).status == "sent"
    assert len(slack_receiver.requests) == 2
