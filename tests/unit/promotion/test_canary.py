"""check_canary on simulated canary traffic routed exactly as the service routes it."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from autoretrain.promotion.canary import FAIL, PASS, WAIT, CanaryPolicy, check_canary, wilson_upper
from autoretrain.serving.routing import RoutingConfig, choose

SALT = "test-routing-salt-00882-of-the-canary-tests"  # 93 of USERS (12 of the first 100) on the challenger
POLICY = CanaryPolicy(canary_percent=10, salt=SALT, min_requests=50, min_labelled=20)
USERS = [f"user-{i}" for i in range(1000)]  # 93 of them land on the challenger at 10 % (see test_serving)


def is_spam(i: int) -> bool:
    return i % 8 == 0  # 1 message in 8 is spam


def traffic(*, users: list[str] = USERS, challenger_loaded: bool = True,
            challenger_label: Callable[[int], str] | None = None, feedback_every: int = 0,
            challenger_version: str = "7", probability: float | None = None) -> list[dict]:
    """Served rows: the champion (v6) is always right; the challenger by default too."""
    rows = []
    for i, user in enumerate(users):
        truth = "spam" if is_spam(i) else "ham"
        variant = choose(RoutingConfig(mode="canary", canary_percent=10), user, SALT)
        if variant == "challenger" and not challenger_loaded:
            variant = "champion"  # the service falls back to the champion
        label = truth if variant == "champion" or challenger_label is None else challenger_label(i)
        p = (0.9 if label == "spam" else 0.1) if probability is None or variant == "champion" else probability
        rows.append({"request_id": f"req-{i}", "user_id": user, "variant": variant,
                     "model_version": challenger_version if variant == "challenger" else "6",
                     "probability": p, "label": label, "text": f"message {i}",
                     "feedback_label": truth if feedback_every and i % feedback_every == 0 else None})
    return rows


def challenger_spam() -> int:
    """Spam messages among the 93 challenger users."""
    config = RoutingConfig(mode="canary", canary_percent=10)
    return sum(1 for i, u in enumerate(USERS) if is_spam(i) and choose(config, u, SALT) == "challenger")


def replay(rows: list[dict]) -> dict[str, str]:
    """The champion's labels for the challenger's requests (the champion is always right here)."""
    return {r["request_id"]: "spam" if is_spam(int(r["request_id"][4:])) else "ham"
            for r in rows if r["variant"] == "challenger"}


def judge(rows: list[dict], *, complete: bool = True, policy: CanaryPolicy = POLICY):
    return check_canary(rows, challenger_version="7", champion_version="6", champion_labels=replay(rows),
                        policy=policy, window_complete=complete)


def checks(verdict) -> dict[str, tuple[bool, bool]]:
    return {c.name: (c.passed, c.judged) for c in verdict.checks}


# ------------------------------------------------------------------------------------ outcomes
def test_healthy_canary_passes_at_the_end_of_the_window() -> None:
    verdict = judge(traffic())
    assert verdict.status == PASS
    assert verdict.numbers == {"served": 1000, "challenger": 93, "champion": 907, "meant_for_challenger": 93,
                               "fallbacks": 0, "invalid_scores": 0, "other_versions": 0, "window_complete": True}
    assert checks(verdict) == {"traffic": (True, True), "error_rate": (True, True), "score_shift": (True, True),
                               "agreement": (True, True), "accuracy": (True, False)}
    assert verdict.reasons[-1] == "pass: every judged check passed over the whole window"
    assert verdict.reasons[0] == "traffic ok: 93 challenger answers of 1000 served requests (score 93, limit 50)"


def test_healthy_canary_waits_while_the_window_is_open() -> None:
    verdict = judge(traffic(), complete=False)
    assert verdict.status == WAIT and verdict.reasons[-1] == "wait: the canary window is still open"


def test_a_challenger_that_never_answers_fails_early_on_errors() -> None:
    verdict = judge(traffic(challenger_loaded=False), complete=False)
    assert verdict.status == FAIL
    error = next(c for c in verdict.checks if c.name == "error_rate")
    assert (error.score, error.judged, error.passed) == (1.0, True, False)
    assert error.details == "93 fallback(s) to the champion and 0 invalid score(s) of 93 request(s) routed to the " \
                            "challenger"
    assert verdict.reasons[-1] == "fail: error_rate"


def test_invalid_scores_count_as_errors() -> None:
    verdict = judge(traffic(probability=math.nan))
    error = next(c for c in verdict.checks if c.name == "error_rate")
    assert verdict.status == FAIL and verdict.numbers["invalid_scores"] == 93 and error.score == 1.0


@pytest.mark.parametrize(("complete", "status", "last"), [
    (False, WAIT, "wait: the canary window is still open"),
    (True, FAIL, "fail: the window ended with 12 challenger answers, fewer than the 50 needed to judge it"),
])
def test_too_little_traffic(complete: bool, status: str, last: str) -> None:
    verdict = judge(traffic(users=USERS[:100]), complete=complete)
    assert verdict.status == status and verdict.reasons[-1] == last
    assert checks(verdict)["error_rate"] == (True, False)  # 12 requests: not judged yet


def test_a_challenger_that_flags_everything_fails_agreement_and_score_shift() -> None:
    verdict = judge(traffic(challenger_label=lambda i: "spam"), complete=False)
    assert verdict.status == FAIL
    assert checks(verdict)["agreement"] == (False, True) and checks(verdict)["score_shift"] == (False, True)
    agreement = next(c for c in verdict.checks if c.name == "agreement")
    assert agreement.score == pytest.approx(challenger_spam() / 93)
    assert verdict.reasons[-1] == "fail: score_shift, agreement"


def test_accuracy_is_judged_where_feedback_exists() -> None:
    wrong_on_spam = traffic(challenger_label=lambda i: "ham", feedback_every=1)
    verdict = judge(wrong_on_spam, policy=CanaryPolicy(salt=SALT, min_agreement=0.5, max_score_shift=0.5))
    accuracy = next(c for c in verdict.checks if c.name == "accuracy")
    assert accuracy.judged and not accuracy.passed
    assert accuracy.score == pytest.approx(1.0 - wilson_upper(93 - challenger_spam(), 93))  # champion 100 %
    assert verdict.status == FAIL and verdict.reasons[-1] == "fail: accuracy"
    assert "on 93 labelled challenger answers vs 100.0% on 907 labelled champion answers" in accuracy.details


def test_accuracy_needs_enough_labels() -> None:
    verdict = judge(traffic(challenger_label=lambda i: "ham", feedback_every=10),
                    policy=CanaryPolicy(salt=SALT, min_agreement=0.5, max_score_shift=0.5, min_labelled=20))
    accuracy = next(c for c in verdict.checks if c.name == "accuracy")
    assert not accuracy.judged and verdict.status == PASS


def test_rows_of_other_versions_are_left_out() -> None:
    rows = traffic(challenger_version="5")  # the service still served the old challenger
    verdict = judge(rows)
    assert verdict.numbers["challenger"] == 0 and verdict.numbers["other_versions"] == 93
    assert verdict.status == FAIL  # the window ended without answers of the version under test


def test_requests_without_user_id_are_routed_by_request_id() -> None:
    rows = traffic()
    for row in rows:
        row["user_id"] = None
        row["variant"] = choose(RoutingConfig(mode="canary", canary_percent=10), row["request_id"], SALT)
        row["model_version"] = "7" if row["variant"] == "challenger" else "6"
    verdict = judge(rows)
    assert verdict.numbers["fallbacks"] == 0
    assert verdict.numbers["meant_for_challenger"] == verdict.numbers["challenger"] > 0


def test_policy_from_settings() -> None:
    from autoretrain.config import Settings

    policy = CanaryPolicy.from_settings(Settings(canary_percent=25, routing_salt="s", canary_min_requests=7))
    assert (policy.canary_percent, policy.salt, policy.min_requests, policy.max_error_rate) == (25.0, "s", 7, 0.01)


def test_verdict_is_json_able() -> None:
    import json

    data = json.loads(json.dumps(judge(traffic()).as_dict()))
    assert data["status"] == "pass" and [c["name"] for c in data["checks"]] == [
        "traffic", "error_rate", "score_shift", "agreement", "accuracy"]


@pytest.mark.parametrize(("successes", "n", "upper"), [
    (82, 93, 0.9263),  # p=0.8817: (p + z^2/2n + z*sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z=1.6449
    (45, 46, 0.9951),
    (0, 10, 0.2130),
    (10, 10, 1.0),
    (0, 0, 1.0),
])
def test_wilson_upper_bound(successes: int, n: int, upper: float) -> None:
    assert wilson_upper(successes, n) == pytest.approx(upper, abs=1e-4)


def test_one_unlucky_label_does_not_fail_a_good_canary() -> None:
    rows = traffic(feedback_every=2)
    wrong = next(r for r in rows if r["variant"] == "challenger" and r["feedback_label"])
    wrong["label"] = "spam" if wrong["label"] == "ham" else "ham"  # 1 error in ~46 labelled answers
    labelled = sum(1 for r in rows if r["variant"] == "challenger" and r["feedback_label"])
    accuracy = next(c for c in judge(rows).checks if c.name == "accuracy")
    assert 1 / labelled > POLICY.max_accuracy_drop  # the plain accuracy drop would fail it
    assert accuracy.judged and accuracy.passed
    assert accuracy.score == pytest.approx(1.0 - wilson_upper(labelled - 1, labelled))
