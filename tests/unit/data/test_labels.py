"""Feedback that triggers: the decision to emit the labelled-feedback Asset event."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autoretrain.data.labels import feedback_event

UNTIL = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
SINCE = datetime(2026, 12, 1, 13, 50, tzinfo=UTC)


@pytest.mark.parametrize(("count", "emits"), [(0, False), (49, False), (50, True), (51, True)])
def test_an_event_once_enough_new_labels_came_in(count: int, emits: bool) -> None:
    extra = feedback_event(count, min_labels=50, since=SINCE, until=UNTIL, model_name="m")
    assert (extra is not None) is emits
    if emits:
        assert extra == {"model_name": "m", "new_labels": count, "min_labels": 50,
                         "since": "2026-12-01T13:50:00+00:00", "until": "2026-12-01T14:00:00+00:00"}


def test_the_first_event_has_no_start() -> None:
    assert feedback_event(5, min_labels=1, since=None, until=UNTIL, model_name="m")["since"] is None


def test_only_labels_of_served_predictions_in_the_window_count(tmp_path) -> None:
    from datetime import timedelta

    from autoretrain.config import Settings
    from autoretrain.data.labels import count_new_labels
    from autoretrain.db import schema
    from autoretrain.db.engine import make_engine
    from tests.conftest import migrated

    url = migrated(f"sqlite:///{tmp_path / 'db.sqlite'}")
    settings = Settings(database_url=url, model_name="m")
    engine = make_engine(url)
    rows = [("a", "m", "served", SINCE - timedelta(minutes=1)), ("b", "m", "served", SINCE + timedelta(minutes=1)),
            ("c", "m", "shadow", SINCE + timedelta(minutes=2)), ("d", "other", "served", SINCE + timedelta(minutes=3)),
            ("e", "m", "served", UNTIL), ("f", "m", "served", UNTIL + timedelta(seconds=1))]
    with engine.begin() as conn:
        conn.execute(schema.predictions.insert(), [
            {"request_id": rid, "created_at": SINCE, "model_name": name, "model_version": "1", "variant": "champion",
             "role": role, "user_id": None, "text": "t", "probability": 0.5, "label": "ham", "latency_ms": 1.0}
            for rid, name, role, _ in rows])
        conn.execute(schema.feedback.insert(), [{"request_id": rid, "label": "spam", "source": "test", "created_at": at}
                                                for rid, _, _, at in rows])
    engine.dispose()
    assert count_new_labels(settings, since=SINCE, until=UNTIL) == 2  # b and e: (since, until], served, this model
    assert count_new_labels(settings, since=None, until=UNTIL) == 3  # a too: the whole retention window
