"""The prediction log writer, feedback and routing override on SQLite (Postgres: tests/integration)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from autoretrain.db import migrate
from autoretrain.db.engine import make_engine
from autoretrain.db.schema import predictions
from autoretrain.serving import prediction_log
from tests.conftest import migrated

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _row(i: int, **changes) -> dict:
    return {"request_id": f"req-{i}", "created_at": AT, "model_name": "m", "model_version": "1",
            "variant": "champion", "role": "served", "user_id": None, "text": f"message {i}",
            "probability": 0.25, "label": "ham", "latency_ms": 0.5, **changes}


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(migrated(f"sqlite:///{tmp_path / 'serving.db'}"))
    yield engine
    engine.dispose()


def _count_inserts(engine) -> list[int]:
    sizes: list[int] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO prediction_log"):
            sizes.append(len(parameters) if executemany else 1)

    return sizes


def test_every_queued_row_is_written_in_batches_and_stop_drains(engine):
    inserts = _count_inserts(engine)
    writer = prediction_log.PredictionLogWriter(engine, batch_size=100, flush_seconds=60)
    for i in range(250):
        assert writer.put(_row(i))
    writer.start()
    stats = writer.stop()
    assert inserts == [100, 100, 50]
    assert (stats.accepted, stats.written, stats.dropped, stats.lost, stats.depth) == (250, 250, 0, 0, 0)
    assert prediction_log.count_predictions(engine) == 250
    first = prediction_log.iter_rows(engine, predictions, limit=1)[0]
    assert {k: first[k] for k in ("request_id", "text", "probability", "label", "role")} == {
        "request_id": "req-0", "text": "message 0", "probability": 0.25, "label": "ham", "role": "served"}


def test_a_full_queue_drops_and_counts(engine):
    writer = prediction_log.PredictionLogWriter(engine, queue_size=10, batch_size=4)
    accepted = [writer.put(_row(i)) for i in range(15)]
    assert accepted == [True] * 10 + [False] * 5
    assert writer.stats().dropped == 5 and writer.stats().depth == 10
    writer.start()
    stats = writer.stop()
    assert (stats.written, stats.dropped, stats.lost) == (10, 5, 0)
    assert prediction_log.count_predictions(engine) == 10
    assert writer.put(_row(99)) is False and writer.stats().dropped == 6  # stopped: refused, counted


def test_flush_waits_until_rows_are_visible(engine):
    writer = prediction_log.PredictionLogWriter(engine, batch_size=1000, flush_seconds=60)
    writer.start()
    for i in range(7):
        writer.put(_row(i))
    assert writer.flush(timeout=10) is True
    assert prediction_log.count_predictions(engine) == 7 and prediction_log.prediction_exists(engine, "req-6")
    assert not prediction_log.prediction_exists(engine, "req-7")
    writer.stop()


def test_a_row_the_database_refuses_is_lost_alone(engine):
    writer = prediction_log.PredictionLogWriter(engine, batch_size=50)
    for i in range(5):
        writer.put(_row(i, text=None) if i == 2 else _row(i))  # NOT NULL violation
    writer.start()
    stats = writer.stop()
    assert (stats.written, stats.lost, stats.dropped) == (4, 1, 1)
    assert prediction_log.count_predictions(engine) == 4 and not prediction_log.prediction_exists(engine, "req-2")


def test_database_outage_is_retried_then_written(tmp_path):
    url = f"sqlite:///{tmp_path / 'late.db'}"
    engine = make_engine(url)  # not migrated yet: inserts fail
    writer = prediction_log.PredictionLogWriter(engine, batch_size=10, flush_seconds=0.05, retry_seconds=0.05)
    writer.start()
    for i in range(3):
        writer.put(_row(i))
    deadline = time.monotonic() + 10
    while writer.stats().failed_batches < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert writer.stats().failed_batches >= 2 and writer.stats().written == 0
    migrate.upgrade(url)
    assert writer.flush(timeout=10) is True
    stats = writer.stop()
    assert (stats.written, stats.lost, stats.dropped) == (3, 0, 0)


def test_rows_unwritable_at_shutdown_are_counted_lost(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'never.db'}")
    writer = prediction_log.PredictionLogWriter(engine, batch_size=10, flush_seconds=0.05, retry_seconds=0.05)
    writer.start()
    for i in range(4):
        writer.put(_row(i))
    stats = writer.stop(timeout=0.3)
    assert (stats.written, stats.lost, stats.dropped, stats.depth) == (0, 4, 4, 0)


def test_feedback_upsert_keeps_the_latest_label(engine):
    prediction_log.save_feedback(engine, request_id="req-1", label="spam", source="api", at=AT)
    prediction_log.save_feedback(engine, request_id="req-1", label="ham", source="moderator", at=AT)
    assert prediction_log.get_feedback(engine, "req-1") == {"request_id": "req-1", "label": "ham",
                                                    "source": "moderator", "created_at": AT.replace(tzinfo=None)}
    assert prediction_log.get_feedback(engine, "req-2") is None


def test_routing_override_round_trip(engine):
    assert prediction_log.load_routing(engine) is None
    prediction_log.save_routing(engine, {"mode": "canary", "canary_percent": 5.0}, at=AT)
    prediction_log.save_routing(engine, {"mode": "shadow"}, at=AT)
    assert prediction_log.load_routing(engine) == {"mode": "shadow"}
    prediction_log.clear_routing(engine)
    assert prediction_log.load_routing(engine) is None
