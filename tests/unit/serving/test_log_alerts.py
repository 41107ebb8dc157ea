"""The prediction log's alert: raised when rows back up, recorded in alert_log with the cool-down."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from autoretrain.alerts.store import AlertStore
from autoretrain.db.engine import make_engine
from autoretrain.serving import log_alerts, log_writer
from tests.conftest import migrated

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _row(i: int) -> dict:
    return {"request_id": f"req-{i}", "created_at": AT, "model_name": "m", "model_version": "1",
            "variant": "champion", "role": "served", "user_id": None, "text": f"message {i}",
            "probability": 0.25, "label": "ham", "latency_ms": 0.5}


def test_a_backlog_raises_a_warning_once_recorded_and_clears(tmp_path, caplog):
    url = migrated(f"sqlite:///{tmp_path / 'log.db'}")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE prediction_log RENAME TO prediction_log_away")
    seen: list[tuple[str, int]] = []
    record = log_alerts.recorder(url, cooldown_minutes=60, spool=str(tmp_path / "spool"))

    def on_alert(health: log_writer.LogHealth, stats: log_writer.WriterStats) -> None:
        seen.append((health.status, stats.depth))
        record(health, stats)

    writer = log_writer.PredictionLogWriter(engine, spool_dir=tmp_path / "spool", backlog_rows=2,
                                                flush_seconds=0.05, retry_seconds=0.05, max_retry_seconds=0.05,
                                                on_alert=on_alert)
    writer.start()
    for i in range(3):
        writer.put(_row(i))
    deadline = time.monotonic() + 10
    while not seen:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert seen == [("degraded", 3)]
    assert "ALERT prediction_log [warning]" in caplog.text and "3 rows wait in the spool" in caplog.text
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE prediction_log_away RENAME TO prediction_log")
    assert writer.flush(timeout=10)
    while len(seen) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    writer.stop()
    assert seen == [("degraded", 3), ("ok", 0)]
    with AlertStore(url) as store:
        (alert,) = store.records()
    assert (alert.kind, alert.severity, alert.status) == ("prediction_log", "warning", "logged")
    assert "is backing up prediction-log rows" in alert.title
    record(log_writer.LogHealth("degraded", ("again",)), writer.stats())  # within the cool-down
    with AlertStore(url) as store:
        assert len(store.records()) == 1
    engine.dispose()
