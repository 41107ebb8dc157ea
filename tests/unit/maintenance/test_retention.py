"""The purge of prediction-log and feedback rows, on migrated SQLite and Postgres databases.

Rows of every age around the cut-off (``retention_days`` + guard), predictions whose feedback is
recent, a running canary's window, texts to redact; batches smaller than the rows to purge.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from autoretrain.config import Settings
from autoretrain.db.engine import make_engine
from autoretrain.db.schema import feedback, predictions, routing_override
from autoretrain.maintenance.retention import horizon, purge_rows
from tests.conftest import migrated

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SETTINGS = Settings(retention_days=90, retention_guard_hours=24, purge_batch_size=3)
PHONE = "WIN! call 07700 900123 now"

#: request id -> (age of the prediction, age of its feedback or None); served and shadow rows alike
AGES = {
    **{f"old-{i}": (timedelta(days=120 + i), None) for i in range(7)},  # 7 rows: three batches of 3
    "old-fb-old": (timedelta(days=120), timedelta(days=100)),  # both go
    "old-fb-recent": (timedelta(days=120), timedelta(days=10)),  # training still reads both
    "in-guard": (timedelta(days=90, hours=12), None),  # past retention_days, not past the guard
    "canary-era": (timedelta(days=95), None),  # goes, unless a canary started before it
    "recent": (timedelta(days=5), timedelta(days=4)),
}


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path):
    url = (f"sqlite:///{tmp_path / 'retention.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_db")("retention"))
    engine = make_engine(migrated(url))
    rows, labels = [], []
    for request_id, (age, fb_age) in AGES.items():
        for role in ("served", "shadow"):
            rows.append({"request_id": request_id, "created_at": NOW - age, "model_name": "sms-spam",
                         "model_version": "3", "variant": "champion" if role == "served" else "challenger",
                         "role": role, "user_id": None, "text": f"{PHONE} ({request_id})", "probability": 0.9,
                         "label": "spam", "latency_ms": 1.0})
        if fb_age is not None:
            labels.append({"request_id": request_id, "label": "spam", "source": "api", "created_at": NOW - fb_age})
    with engine.begin() as conn:
        conn.execute(predictions.insert(), rows)
        conn.execute(feedback.insert(), labels)
    yield engine
    engine.dispose()


def _left(engine) -> tuple[list[str], list[str]]:
    with engine.connect() as conn:
        kept = conn.execute(sa.select(predictions.c.request_id).distinct().order_by(predictions.c.request_id))
        labelled = conn.execute(sa.select(feedback.c.request_id).order_by(feedback.c.request_id))
        return kept.scalars().all(), labelled.scalars().all()


def _canary(engine, started: datetime, mode: str = "canary") -> None:
    with engine.begin() as conn:
        conn.execute(routing_override.insert().values(id=1, config=json.dumps({"mode": mode, "canary_percent": 10.0}),
                                                      updated_at=started))


def test_rows_past_retention_and_guard_are_purged_in_batches(engine, caplog):
    caplog.set_level("INFO", logger="autoretrain.maintenance")
    dry = purge_rows(SETTINGS, engine, now=NOW, dry_run=True)
    assert (dry.prediction_log, dry.prediction_feedback) == (2 * 9, 1)
    assert len(_left(engine)[0]) == len(AGES)  # a dry run deletes nothing

    done = purge_rows(SETTINGS, engine, now=NOW)
    assert (done.prediction_log, done.prediction_feedback, done.redacted) == (2 * 9, 1, 0)
    assert done.horizon.purge_before == NOW - timedelta(days=91)
    assert _left(engine) == (["in-guard", "old-fb-recent", "recent"], ["old-fb-recent", "recent"])
    progress = [r.getMessage() for r in caplog.records if "purged so far" in r.getMessage()]
    assert progress[-1] == "retention: prediction_log: 18 row(s) purged so far (6 batch(es))"
    assert purge_rows(SETTINGS, engine, now=NOW).prediction_log == 0  # a second run finds nothing


def test_a_running_canary_keeps_every_row_from_its_start_on(engine):
    _canary(engine, NOW - timedelta(days=96))  # started before "canary-era" was logged
    done = purge_rows(SETTINGS, engine, now=NOW)
    assert done.horizon.canary_started == NOW - timedelta(days=96)
    assert done.horizon.purge_before == NOW - timedelta(days=97)  # its start, minus the guard
    assert _left(engine)[0] == ["canary-era", "in-guard", "old-fb-recent", "recent"]
    assert done.prediction_log == 2 * 8


def test_a_routing_override_that_is_not_a_canary_protects_nothing(engine):
    _canary(engine, NOW - timedelta(days=96), mode="full")
    assert horizon(SETTINGS, engine, now=NOW).canary_started is None
    purge_rows(SETTINGS, engine, now=NOW)
    assert "canary-era" not in _left(engine)[0]


def test_old_texts_are_redacted_and_new_ones_kept(engine):
    settings = dataclasses.replace(SETTINGS, retention_days=365, redact_after_days=30)
    with engine.begin() as conn:  # a harmless figure is left as it is, and not counted
        conn.execute(predictions.update().where(predictions.c.request_id == "old-0").values(text="£1.50 off today"))
    done = purge_rows(settings, engine, now=NOW)
    assert (done.prediction_log, done.redacted) == (0, 2 * (len(AGES) - 2))
    with engine.connect() as conn:
        texts = dict(conn.execute(sa.select(predictions.c.request_id, predictions.c.text)
                                  .where(predictions.c.role == "served")).all())
    assert texts["old-1"] == "WIN! call [PHONE] now (old-1)"
    assert texts["old-0"] == "£1.50 off today"
    assert texts["recent"] == f"{PHONE} (recent)"
    assert purge_rows(settings, engine, now=NOW).redacted == 0


def test_bad_retention_settings_are_refused():
    with pytest.raises(ValueError, match="purge_batch_size=0 must be at least 1"):
        Settings(purge_batch_size=0)
    with pytest.raises(ValueError, match="redact_after_days=-1 must be >= 0"):
        Settings(redact_after_days=-1)
