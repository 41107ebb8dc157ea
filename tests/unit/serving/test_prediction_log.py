"""The prediction log writer and its spool, feedback and routing override on SQLite (Postgres: tests/integration)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from autoretrain.db import migrate
from autoretrain.db.engine import make_engine
from autoretrain.db.schema import predictions
from autoretrain.serving import log_writer, prediction_log
from autoretrain.serving import spool as spool_mod
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


def _writer(engine, spool, **kwargs) -> log_writer.PredictionLogWriter:
    return log_writer.PredictionLogWriter(engine, spool_dir=spool, **kwargs)


def _segments(spool) -> list:
    return sorted(spool.glob("predictions-*.jsonl"))


def _kill(writer: log_writer.PredictionLogWriter) -> None:
    """What SIGKILL does to a writer: its threads stop mid-way, the kernel closes its descriptors (flocks go)."""
    writer._closed.set()
    with writer._cond:
        writer._stopping, writer._deadline = True, 0.0
    writer._wake.set()
    for thread in writer._threads:
        thread.join(5)
    for segment in writer._segments:
        spool_mod.Spool.release(segment)


@pytest.fixture
def spool(tmp_path):
    return tmp_path / "spool"


def test_every_spooled_row_is_written_in_batches_and_stop_drains(engine, spool):
    inserts = _count_inserts(engine)
    writer = _writer(engine, spool, batch_size=100, flush_seconds=60)
    writer.start()
    for i in range(250):
        assert writer.put(_row(i))
    stats = writer.stop()
    assert sum(inserts) == 250 and max(inserts) <= 100
    assert (stats.accepted, stats.written, stats.dropped, stats.lost, stats.depth) == (250, 250, 0, 0, 0)
    assert prediction_log.count_predictions(engine) == 250
    assert _segments(spool) == []  # every segment is deleted once its rows are committed
    first = prediction_log.iter_rows(engine, predictions, limit=1)[0]
    assert {k: first[k] for k in ("request_id", "text", "probability", "label", "role")} == {
        "request_id": "req-0", "text": "message 0", "probability": 0.25, "label": "ham", "role": "served"}
    assert first["created_at"].replace(tzinfo=UTC) == AT


def test_a_row_is_in_the_spool_file_before_put_returns(engine, spool):
    writer = _writer(engine, spool, batch_size=1000, flush_seconds=60)
    writer.start()
    assert writer.put(_row(1, text="line\nbreak \ud800 \x00"))
    (segment,) = _segments(spool)
    (line,) = segment.read_bytes().splitlines()
    assert log_writer.decode_row(line) == _row(1, text="line\nbreak \ud800 \x00")
    writer.stop()


@pytest.mark.parametrize("changes", [{}, {"user_id": "u-1", "text": "日本語 🎉 \"quoted\" \\ \t"},
                                     {"probability": float("nan")}, {"latency_ms": 1.5}, {"user_id": 7}])
def test_spool_lines_round_trip(changes):
    row = _row(3, **changes)
    decoded = log_writer.decode_row(log_writer.encode_row(row))
    assert json.dumps(decoded, default=str) == json.dumps(row, default=str)


def test_a_full_spool_drops_and_counts(engine, spool):
    writer = _writer(engine, spool, queue_size=10, batch_size=100, flush_seconds=60)
    assert writer.put(_row(0)) is False and writer.stats().dropped == 1  # not started: refused, counted
    writer.start()
    accepted = [writer.put(_row(i)) for i in range(15)]
    assert accepted == [True] * 10 + [False] * 5
    assert writer.stats().dropped == 6 and writer.stats().depth == 10 and writer.stats().dropping
    assert writer.health().status == "failing"
    stats = writer.stop()
    assert (stats.written, stats.dropped, stats.lost) == (10, 6, 0)
    assert prediction_log.count_predictions(engine) == 10
    assert writer.put(_row(99)) is False and writer.stats().dropped == 7  # stopped: refused, counted


def test_the_spool_byte_cap_drops_and_counts(engine, spool):
    writer = _writer(engine, spool, spool_max_bytes=1000, batch_size=100, flush_seconds=60)
    writer.start()
    line = len(log_writer.encode_row(_row(0)))
    accepted = sum(writer.put(_row(i)) for i in range(20))
    assert accepted == 1000 // line and writer.stats().dropped == 20 - accepted
    assert writer.stats().spool_bytes == accepted * line
    writer.stop()


def test_flush_waits_until_rows_are_visible(engine, spool):
    writer = _writer(engine, spool, batch_size=1000, flush_seconds=60)
    writer.start()
    for i in range(7):
        writer.put(_row(i))
    assert writer.flush(timeout=10) is True
    assert prediction_log.count_predictions(engine) == 7 and prediction_log.prediction_exists(engine, "req-6")
    assert not prediction_log.prediction_exists(engine, "req-7")
    writer.stop()


def test_a_row_the_database_refuses_is_kept_aside_alone(engine, spool):
    writer = _writer(engine, spool, batch_size=50)
    writer.start()
    for i in range(5):
        writer.put(_row(i, text=None) if i == 2 else _row(i))  # NOT NULL violation
    stats = writer.stop()
    assert (stats.written, stats.lost, stats.dropped) == (4, 1, 1)
    assert prediction_log.count_predictions(engine) == 4 and not prediction_log.prediction_exists(engine, "req-2")
    (rejected,) = [json.loads(line) for line in (spool / "rejected.jsonl").read_text().splitlines()]
    assert log_writer.decode_row(rejected["row"].encode())["request_id"] == "req-2"
    assert "IntegrityError" in rejected["reason"]


def test_database_outage_is_retried_then_written(tmp_path, spool):
    url = f"sqlite:///{tmp_path / 'late.db'}"
    engine = make_engine(url)  # not migrated yet: no table, inserts fail
    writer = _writer(engine, spool, batch_size=10, flush_seconds=0.05, retry_seconds=0.05, max_retry_seconds=0.1,
                     backlog_rows=2)
    writer.start()
    for i in range(3):
        writer.put(_row(i))
    deadline = time.monotonic() + 10
    while writer.stats().failed_batches < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert writer.stats().failed_batches >= 2 and writer.stats().written == 0
    health = writer.health()
    assert health.status == "degraded" and "no such table: prediction_log" in health.reasons[0]
    assert "3 prediction-log rows backed up" in health.reasons[1]
    migrate.upgrade(url)
    assert writer.flush(timeout=10) is True
    assert writer.health() == log_writer.LogHealth("ok", ())
    stats = writer.stop()
    assert (stats.written, stats.lost, stats.dropped, stats.duplicates) == (3, 0, 0, 0)
    assert prediction_log.count_predictions(engine) == 3


def test_rows_unwritable_at_shutdown_stay_in_the_spool_and_are_replayed(tmp_path, spool):
    url = f"sqlite:///{tmp_path / 'never.db'}"
    engine = make_engine(url)
    writer = _writer(engine, spool, batch_size=10, flush_seconds=0.05, retry_seconds=0.05)
    writer.start()
    for i in range(4):
        writer.put(_row(i))
    stats = writer.stop(timeout=0.3)
    assert (stats.written, stats.lost, stats.dropped, stats.depth) == (0, 0, 0, 4)
    assert len(_segments(spool)) == 1
    migrate.upgrade(url)
    again = _writer(engine, spool, batch_size=10, flush_seconds=0.05)
    again.start()
    assert again.stats().adopted == 4 and again.flush(timeout=10)
    stats = again.stop()
    assert (stats.written, stats.duplicates, stats.depth) == (4, 0, 0)
    assert prediction_log.count_predictions(engine) == 4 and _segments(spool) == []


def test_a_killed_writer_is_replayed_once_and_a_live_one_is_left_alone(engine, spool):
    first = _writer(engine, spool, batch_size=1000, flush_seconds=60)
    first.start()
    for i in range(50):  # spooled, not yet inserted
        first.put(_row(i))
    with engine.begin() as conn:  # as if 30 were committed just before the kill, their segment not yet deleted
        conn.execute(predictions.insert(), [_row(i) for i in range(30)])
    live = _writer(engine, spool, batch_size=1000, flush_seconds=60)
    live.start()
    assert live.stats().adopted == 0  # the first writer holds its segment: not adopted
    live.stop()
    _kill(first)
    replay = _writer(engine, spool, batch_size=7, flush_seconds=0.05)
    replay.start()
    assert replay.stats().adopted == 50 and replay.flush(timeout=10)
    stats = replay.stop()
    assert (stats.written, stats.duplicates, stats.depth) == (20, 30, 0)
    assert prediction_log.count_predictions(engine) == 50 and _segments(spool) == []


def test_a_torn_last_line_is_set_aside_and_the_rest_replayed(engine, spool):
    spool.mkdir()
    whole = b"".join(log_writer.encode_row(_row(i)) for i in range(3))
    (spool / "predictions-1-1-000000.jsonl").write_bytes(whole + log_writer.encode_row(_row(3))[:40])
    writer = _writer(engine, spool, batch_size=100, flush_seconds=0.05)
    writer.start()
    assert writer.stats().adopted == 4 and writer.flush(timeout=10)
    stats = writer.stop()
    assert (stats.written, stats.lost, stats.depth) == (3, 1, 0)
    assert "unreadable spool line" in (spool / "rejected.jsonl").read_text()


def test_each_database_has_its_own_spool(tmp_path):
    a = spool_mod.spool_dir(tmp_path, sa.make_url("postgresql+psycopg2://u:secret@db:5432/a"))
    assert a == spool_mod.spool_dir(tmp_path, sa.make_url("postgresql://other:pw@db:5432/a"))  # not the credentials
    assert a != spool_mod.spool_dir(tmp_path, sa.make_url("postgresql://u@db:5432/b"))
    assert a.parent == tmp_path / "spool"


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


def test_segments_rotate_under_steady_traffic_and_committed_ones_go(engine, spool, monkeypatch):
    monkeypatch.setattr(log_writer, "SEGMENT_BYTES", 2000)
    writer = _writer(engine, spool, batch_size=1000, flush_seconds=0.02)
    writer.start()
    for i in range(300):  # never idle long enough for the active segment to be fully committed
        writer.put(_row(i))
        time.sleep(0.001)
    assert writer.flush(timeout=10)
    assert prediction_log.count_predictions(engine) == 300
    assert len(_segments(spool)) <= 2 and writer.stats().spool_bytes <= 2000 + 300
    writer.stop()
    assert _segments(spool) == []
