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
