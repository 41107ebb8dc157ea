"""The alert table (SQLite here; Postgres in tests/integration) and send_alert without Slack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autoretrain.airflow.alerting import send_alert
from autoretrain.alerts.messages import drift_alert, task_failure_alert
from autoretrain.alerts.store import AlertStore
from autoretrain.config import Settings
from tests.conftest import migrated

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ALERT = task_failure_alert(dag_id="d", task_id="t", run_id="r", try_number=1, error="boom")


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(database_url=migrated(f"sqlite:///{tmp_path / 'alerts.db'}"), alert_cooldown_minutes=30)


def _statuses(settings: Settings) -> list[tuple[str, str, datetime]]:
    with AlertStore(settings.database_url) as store:
        return [(r.dedup_key, r.status, r.created_at) for r in reversed(store.records())]


def test_last_delivered_ignores_failed_and_suppressed(settings):
    with AlertStore(settings.database_url) as store:
        common = {"kind": "k", "severity": "info", "dedup_key": "k:1", "transport": "log", "title": "t",
                  "message": "m"}
        assert store.last_delivered("k:1") is None
        store.record(created_at=T0, status="logged", **common)
        store.record(created_at=T0 + timedelta(minutes=5), status="failed", error="x", **common)
        store.record(created_at=T0 + timedelta(minutes=6), status="suppressed", **common)
        assert store.last_delivered("k:1") == T0
        assert store.last_delivered("k:2") is None
        with pytest.raises(ValueError, match="status 'lost' is not one of"):
            store.record(created_at=T0, status="lost", **common)
        assert [r.status for r in store.records(dedup_key="k:1")] == ["suppressed", "failed", "logged"]


def test_without_slack_alerts_are_logged_then_held_back_for_the_cooldown(settings, caplog):
    caplog.set_level("INFO", logger="autoretrain.alerts")
    other = drift_alert(model_name="m", checks=[{"name": "psi", "score": 0.3, "threshold": 0.1, "drifted": True}],
                        run_id="r")
    outcomes = [send_alert(ALERT, settings, now=T0).status,
                send_alert(ALERT, settings, now=T0 + timedelta(minutes=29)).status,
                send_alert(other, settings, now=T0 + timedelta(minutes=29)).status,  # another key: not held
                send_alert(ALERT, settings, now=T0 + timedelta(minutes=30)).status]
    assert outcomes == ["logged", "suppressed", "logged", "logged"]
    assert _statuses(settings) == [("task_failure:d.t", "logged", T0),
                                   ("task_failure:d.t", "suppressed", T0 + timedelta(minutes=29)),
                                   ("drift:m:psi", "logged", T0 + timedelta(minutes=29)),
                                   ("task_failure:d.t", "logged", T0 + timedelta(minutes=30))]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [f"alert [critical] {ALERT.text}"] * 2


def test_an_unusable_alert_table_does_not_stop_the_alert(tmp_path, caplog):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where a folder should be")
    settings = Settings(database_url=f"sqlite:///{blocked / 'alerts.db'}")
    delivery = send_alert(ALERT, settings, now=T0)
    assert (delivery.status, delivery.alert_id) == ("logged", None)
    assert any("alert table unavailable" in r.getMessage() for r in caplog.records)
    assert any(r.getMessage() == f"alert [critical] {ALERT.text}" for r in caplog.records)


def test_a_database_behind_the_code_is_logged_in_one_line_and_the_alert_still_goes_out(tmp_path, caplog):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'never-migrated.db'}")
    delivery = send_alert(ALERT, settings, now=T0)
    assert (delivery.status, delivery.alert_id) == ("logged", None)
    (line,) = [r.getMessage() for r in caplog.records if "alert table unavailable" in r.getMessage()]
    assert line == (f"alert table unavailable; alerts are logged only: database {settings.database_url} is at "
                    "revision none (empty), this code needs 0004: run `autoretrain db upgrade`")
    assert any(r.getMessage() == f"alert [critical] {ALERT.text}" for r in caplog.records)
