"""redact_at_rest: the prediction log stores the message with its e-mails and numbers replaced."""

from __future__ import annotations

import re

import pytest

from tests.unit.serving.test_app import _rows, make_client, pipelines  # noqa: F401 - fixtures

MESSAGE = "call 07700 900123 or mail a.b@example.com"


@pytest.mark.parametrize("fast_lane", [True, False])
def test_with_redact_at_rest_no_digit_of_a_phone_number_reaches_the_database(make_client, fast_lane):  # noqa: F811
    client, _ = make_client(fast_lane=fast_lane, redact_at_rest=True)
    answer = client.post("/predict", json={"message": MESSAGE, "user_id": "u1"})
    assert answer.status_code == 200
    (row,) = _rows(client)
    assert row["text"] == "call [PHONE] or mail [EMAIL]"
    assert not re.search(r"\d", row["text"]) and "@" not in row["text"]
    assert row["request_id"] == answer.json()["request_id"]


def test_by_default_the_text_is_stored_as_sent(make_client):  # noqa: F811
    client, _ = make_client()
    assert client.post("/predict", json={"message": MESSAGE}).status_code == 200
    assert [r["text"] for r in _rows(client)] == [MESSAGE]
