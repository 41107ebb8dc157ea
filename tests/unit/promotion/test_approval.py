"""The approval gate's pure parts: the request a reviewer reads, and what an answer (or its absence) means."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autoretrain.promotion import approval

COMPARISON = {
    "name": "sms-spam", "version": "4", "champion_version": "3", "promote": True, "by_origin": {},
    "reasons": ["gate accuracy 0.9812 >= 0.95: pass", "f1 0.8812 -> 0.9312: gain +0.0500, needed +0.0050: pass",
                "promote: every check passed"],
    "numbers": {"n": 1200, "n_positive": 160,
                "champion": {"version": "3", "accuracy": 0.97, "precision": 0.95, "recall": 0.82, "f1": 0.8812,
                             "mcc": 0.86, "fpr": 0.006, "ece": 0.021},
                "challenger": {"version": "4", "accuracy": 0.981, "precision": 0.96, "recall": 0.905, "f1": 0.9312,
                               "mcc": 0.92, "fpr": 0.005, "ece": 0.018},
                "mcnemar": {"b": 3, "c": 19, "p_value": 0.000855, "statistic": 0.0, "method": "exact binomial"},
                "bootstrap": {"metric": "f1", "delta": 0.05, "ci_low": 0.021, "ci_high": 0.08, "p_value": 0.0,
                              "confidence": 0.9, "samples": 500, "seed": 42}},
}


def test_the_request_shows_both_models_side_by_side_with_the_tests_reasons_and_cards() -> None:
    body = approval.request_body(COMPARISON, challenger_url="http://ml/#/models/sms-spam/versions/4",
                                 champion_url="http://ml/#/models/sms-spam/versions/3", timeout_hours=0.5)
    lines = body.splitlines()
    assert "| metric | champion (v3) | challenger (v4) |" in lines
    assert "| f1 | 0.8812 | 0.9312 |" in lines and "| fpr | 0.0060 | 0.0050 |" in lines
    assert "- McNemar: p = 0.000855 (challenger alone right 19, champion alone right 3)" in lines
    assert "- paired bootstrap of f1: delta 0.0500, CI [0.0210, 0.0800], p = 0.0000" in lines
    assert "- promote: every check passed" in lines
    assert ("[challenger's model card](http://ml/#/models/sms-spam/versions/4) · "
            "[champion's model card](http://ml/#/models/sms-spam/versions/3)") in lines
    assert "No answer within 0.5 h withdraws the challenger." in body
    assert approval.request_subject(COMPARISON) == "Approve sms-spam version 4 as champion? (champion: version 3)"


def test_the_canary_reasons_are_in_the_request_when_one_ran() -> None:
    body = approval.request_body(COMPARISON, canary={"reasons": ["error rate 0.0000 <= 0.01: pass"]})
    assert "passed its comparison and its canary." in body
    assert body.splitlines()[-1] == "- error rate 0.0000 <= 0.01: pass"


AT = datetime(2026, 12, 1, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(("response", "outcome", "reason"), [
    ({"chosen_options": ["Approve"], "params_input": {"comment": "ship  it"},
      "responded_by_user": {"id": "admin", "name": "admin"}, "responded_at": AT},
     "approved", "approval: approved by admin: ship it"),
    ({"chosen_options": ["Reject"], "params_input": {"comment": "recall on promos is too low"},
      "responded_by_user": {"id": "7", "name": "alice"}, "responded_at": AT},
     "rejected", "approval: rejected by alice: recall on promos is too low"),
    ({"chosen_options": ["Reject"], "params_input": {"comment": ""}, "responded_by_user": None,
      "responded_at": AT, "timedout": True},
     "timeout", "approval: no answer before the timeout (requested 2026-12-01T14:00:00+00:00); withdrawn"),
])
def test_an_answer_says_who_decided_what(response: dict, outcome: str, reason: str) -> None:
    answer = approval.read_answer(response, version="4", requested_at="2026-12-01T14:00:00+00:00")
    assert answer["outcome"] == outcome and answer["approved"] is (outcome == "approved")
    assert answer["reasons"] == [reason]
    assert answer["at"] == "2026-12-01T14:30:00+00:00"
    assert answer["by"] == (response["responded_by_user"] or {}).get("name")


def test_an_approve_chosen_by_the_timeout_is_still_no_approval() -> None:
    """No user behind the answer: whatever was chosen, nobody approved."""
    answer = approval.read_answer({"chosen_options": ["Approve"], "responded_by_user": None, "timedout": True},
                                  version="4")
    assert answer["outcome"] == "timeout" and answer["approved"] is False


def test_an_unknown_option_is_refused_and_long_comments_are_cut() -> None:
    with pytest.raises(ValueError, match=r"approval answer \['Maybe'\] is not one of \['Approve', 'Reject'\]"):
        approval.read_answer({"chosen_options": ["Maybe"], "responded_by_user": {"id": "a", "name": "a"}},
                             version="4")
    answer = approval.read_answer({"chosen_options": ["Reject"], "params_input": {"comment": "x" * 5000},
                                   "responded_by_user": {"id": "a", "name": "a"}}, version="4")
    assert len(answer["comment"]) == approval.MAX_COMMENT_CHARS
    assert approval.approval_metrics(answer)["by"] == "a"
