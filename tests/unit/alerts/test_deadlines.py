"""The Deadline Alert callback, called as the triggerer calls it (context of the DAG run and the deadline)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from autoretrain.airflow.deadlines import deadline_missed, describe, run_deadline
from autoretrain.alerts.store import AlertStore
from tests.conftest import migrated


@pytest.mark.parametrize(("seconds", "text"), [(7200, "2 h"), (1800, "30 min"), (90, "90 s"), (3, "3 s"),
                                               (5400, "90 min")])
def test_describe(seconds, text):
    assert describe(seconds) == text


def test_run_deadline_follows_the_setting(monkeypatch):
    monkeypatch.setenv("AUTORETRAIN_RUN_DEADLINES", "monitoring=45s,training=0")
    assert run_deadline("training") is None and run_deadline("rollback") is None
    alert = run_deadline("monitoring")
    assert alert.interval.total_seconds() == 45 and alert.callback.kwargs == {"limit": "45 s after it was queued"}


def test_callback_sends_the_deadline_alert_to_log_and_table(tmp_path, monkeypatch):
    url = migrated(f"sqlite:///{tmp_path / 'alerts.db'}")
    monkeypatch.setenv("AUTORETRAIN_DATABASE_URL", url)
    context = {"dag_run": {"dag_id": "monitoring", "dag_run_id": "manual__x", "state": "queued"},
               "deadline": {"id": "0190", "deadline_time": datetime(2026, 3, 2, 6, 30, 0, 123, tzinfo=UTC)}}
    output = asyncio.run(deadline_missed(context, limit="30 min after it was queued"))
    assert output == "deadline alert logged (log)"  # Airflow stores it in a text column
    with AlertStore(url) as store:
        (row,) = store.records()
    assert (row.kind, row.severity, row.dag_id, row.run_id, row.title) == (
        "deadline", "warning", "monitoring", "manual__x", "monitoring run missed its deadline")
    assert row.message.splitlines()[1] == ("Run `manual__x` is still queued past its deadline 2026-03-02 06:30:00 UTC "
                                           "(30 min after it was queued)")
    assert row.message.splitlines()[-1] == "<http://localhost:8080/dags/monitoring/runs/manual__x|Airflow run>"
