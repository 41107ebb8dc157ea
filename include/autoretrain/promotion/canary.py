"""The canary check: is the challenger, answering ``canary_percent`` of live traffic, healthy? Pure.

:func:`check_canary` reads the served rows of the prediction log in the canary window and returns
``pass``, ``fail`` or ``wait`` with one named check per signal (rule 7: score, threshold, verdict):

==============  =====================================================================  ===========
check           measures                                                               judged when
==============  =====================================================================  ===========
traffic         challenger answers >= ``canary_min_requests``                          always
error_rate      requests the router sent to the challenger that it did not answer       >= min req.
                (answered by the champion instead: not loaded, failing) or answered
                with an invalid score, <= ``canary_max_error_rate``
score_shift     |spam rate of challenger answers - spam rate of champion answers|       >= min req.
                <= ``canary_max_score_shift`` (both variants see random users)
agreement       share of challenger answers the champion gives too (replayed on the     >= min req.
                same messages) >= ``canary_min_agreement``
accuracy        where feedback exists: champion accuracy - the challenger's accuracy    >= min lab.
                (one-sided 95 % Wilson upper bound: few labels must not fail a good
                canary) <= ``canary_max_accuracy_drop``
==============  =====================================================================  ===========

Which requests the router *meant* for the challenger is recomputed from the log with the same
sticky hash as the service (:func:`autoretrain.serving.routing.choose`), so fallbacks are visible
even though the log only holds what was served. A judged check that fails ends the canary at once
(``fail``); otherwise it waits for the end of the window, and passes if there was enough traffic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from autoretrain.config import Settings
from autoretrain.promotion.payloads import CanaryCheckRecord, CanaryNumbers, CanaryStatus, CanaryVerdictRecord
from autoretrain.serving.routing import CHALLENGER, CHAMPION, RoutingConfig, choose

PASS: Final = "pass"
FAIL: Final = "fail"
WAIT: Final = "wait"


@dataclass(frozen=True)
class CanaryPolicy:
    """Thresholds of the canary check and the routing it must reproduce."""

    canary_percent: float = 10.0
    salt: str = "autoretrain"
    positive_label: str = "spam"
    min_requests: int = 50
    max_error_rate: float = 0.01
    min_agreement: float = 0.90
    max_score_shift: float = 0.10
    max_accuracy_drop: float = 0.02
    min_labelled: int = 20

    @classmethod
    def from_settings(cls, settings: Settings) -> CanaryPolicy:
        return cls(canary_percent=float(settings.canary_percent), salt=settings.routing_salt,
                   positive_label=settings.positive_label, min_requests=settings.canary_min_requests,
                   max_error_rate=settings.canary_max_error_rate, min_agreement=settings.canary_min_agreement,
                   max_score_shift=settings.canary_max_score_shift,
                   max_accuracy_drop=settings.canary_max_accuracy_drop, min_labelled=settings.canary_min_labelled)


@dataclass(frozen=True)
class CanaryCheck:
    """One signal: its score against its threshold; ``judged`` False means too little data yet."""

    name: str
    score: float
    threshold: float
    passed: bool
    judged: bool
    details: str

    def describe(self) -> str:
        verdict = "ok" if self.passed else "FAIL" if self.judged else "not judged"
        return f"{self.name} {verdict}: {self.details} (score {self.score:.4g}, limit {self.threshold:.4g})"

    def as_dict(self) -> CanaryCheckRecord:
        return {"name": self.name, "score": self.score, "threshold": self.threshold, "passed": self.passed,
                "judged": self.judged, "details": self.details}


@dataclass(frozen=True)
class CanaryVerdict:
    """``pass`` (promote), ``fail`` (roll back) or ``wait`` (keep watching), with the reasons."""

    status: CanaryStatus
    reasons: list[str]
    checks: tuple[CanaryCheck, ...]
    numbers: CanaryNumbers

    def as_dict(self) -> CanaryVerdictRecord:
        return {"status": self.status, "reasons": list(self.reasons), "checks": [c.as_dict() for c in self.checks],
                "numbers": self.numbers.copy()}


def check_canary(rows: Sequence[Mapping[str, Any]], *, challenger_version: str, champion_version: str,
                 champion_labels: Mapping[str, str], policy: CanaryPolicy, window_complete: bool) -> CanaryVerdict:
    """Judge the canary from the served rows of its window (see the module docstring).

    ``rows`` are served prediction-log rows (``request_id``, ``user_id``, ``variant``,
    ``model_version``, ``probability``, ``label``, ``feedback_label``); ``champion_labels`` maps the
    request ids answered by the challenger to the label the champion gives the same message.
    """
    routing = RoutingConfig(mode="canary", canary_percent=policy.canary_percent)
    chal = [r for r in rows if r["variant"] == CHALLENGER and str(r["model_version"]) == challenger_version]
    champ = [r for r in rows if r["variant"] == CHAMPION and str(r["model_version"]) == champion_version]
    meant = [r for r in rows if choose(routing, r["user_id"] or r["request_id"], policy.salt) == CHALLENGER]
    fallbacks = sum(1 for r in meant if r["variant"] == CHAMPION)
    invalid = sum(1 for r in chal if not _valid(r["probability"]))
    enough = len(chal) >= policy.min_requests
    checks = (
        CanaryCheck("traffic", float(len(chal)), float(policy.min_requests), enough, True,
                    f"{len(chal)} challenger answers of {len(rows)} served requests"),
        _error_rate(len(meant), fallbacks, invalid, policy),
        _score_shift(chal, champ, policy, enough),
        _agreement(chal, champion_labels, policy, enough),
        _accuracy(chal, champ, policy),
    )
    numbers: CanaryNumbers = {
        "served": len(rows), "challenger": len(chal), "champion": len(champ), "meant_for_challenger": len(meant),
        "fallbacks": fallbacks, "invalid_scores": invalid, "other_versions": len(rows) - len(chal) - len(champ),
        "window_complete": window_complete}
    failed = [c for c in checks[1:] if c.judged and not c.passed]
    reasons = [c.describe() for c in checks]
    status: CanaryStatus
    if failed:
        status = FAIL
        reasons.append(f"fail: {', '.join(c.name for c in failed)}")
    elif not window_complete:
        status = WAIT
        reasons.append("wait: the canary window is still open")
    elif not enough:
        status = FAIL
        reasons.append(f"fail: the window ended with {len(chal)} challenger answers, fewer than the "
                       f"{policy.min_requests} needed to judge it")
    else:
        status = PASS
        reasons.append("pass: every judged check passed over the whole window")
    return CanaryVerdict(status=status, reasons=reasons, checks=checks, numbers=numbers)


def _valid(probability: Any) -> bool:
    return probability is not None and math.isfinite(float(probability)) and 0.0 <= float(probability) <= 1.0


def _error_rate(meant: int, fallbacks: int, invalid: int, policy: CanaryPolicy) -> CanaryCheck:
    rate = (fallbacks + invalid) / meant if meant else 0.0
    return CanaryCheck("error_rate", rate, policy.max_error_rate, rate <= policy.max_error_rate,
                       meant >= policy.min_requests,
                       f"{fallbacks} fallback(s) to the champion and {invalid} invalid score(s) of {meant} "
                       "request(s) routed to the challenger")


def _spam_rate(rows: Sequence[Mapping[str, Any]], positive: str) -> float:
    return sum(1 for r in rows if r["label"] == positive) / len(rows) if rows else 0.0


def _score_shift(chal: Sequence[Mapping[str, Any]], champ: Sequence[Mapping[str, Any]], policy: CanaryPolicy,
                 enough: bool) -> CanaryCheck:
    a, b = _spam_rate(chal, policy.positive_label), _spam_rate(champ, policy.positive_label)
    shift = abs(a - b)
    return CanaryCheck("score_shift", shift, policy.max_score_shift, shift <= policy.max_score_shift,
                       enough and len(champ) >= policy.min_requests,
                       f"{policy.positive_label} rate {a:.1%} on the challenger vs {b:.1%} on the champion")


def _agreement(chal: Sequence[Mapping[str, Any]], champion_labels: Mapping[str, str], policy: CanaryPolicy,
               enough: bool) -> CanaryCheck:
    paired = [r for r in chal if r["request_id"] in champion_labels]
    same = sum(1 for r in paired if champion_labels[r["request_id"]] == r["label"])
    share = same / len(paired) if paired else 1.0
    return CanaryCheck("agreement", share, policy.min_agreement, share >= policy.min_agreement,
                       enough and len(paired) >= policy.min_requests,
                       f"the champion gives the same label to {same} of {len(paired)} challenger answers")


def _accuracy(chal: Sequence[Mapping[str, Any]], champ: Sequence[Mapping[str, Any]],
              policy: CanaryPolicy) -> CanaryCheck:
    def labelled(rows: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
        known = [r for r in rows if r.get("feedback_label")]
        return len(known), sum(1 for r in known if r["feedback_label"] == r["label"])

    n_chal, right_chal = labelled(chal)
    n_champ, right_champ = labelled(champ)
    acc_chal = right_chal / n_chal if n_chal else 0.0
    acc_champ = right_champ / n_champ if n_champ else 0.0
    # a canary sees few labels: fail only when the challenger is worse by more than the allowed drop
    # even at the optimistic end of its accuracy (one-sided 95 % Wilson upper bound)
    drop = acc_champ - wilson_upper(right_chal, n_chal)
    judged = n_chal >= policy.min_labelled and n_champ >= policy.min_labelled
    return CanaryCheck("accuracy", drop, policy.max_accuracy_drop, drop <= policy.max_accuracy_drop, judged,
                       f"accuracy {acc_chal:.1%} on {n_chal} labelled challenger answers vs {acc_champ:.1%} on "
                       f"{n_champ} labelled champion answers (score: champion minus the challenger's 95 % upper "
                       "bound)")


def wilson_upper(successes: int, n: int, *, z: float = 1.6449) -> float:
    """One-sided upper confidence bound of a proportion (Wilson score; z=1.6449: 95 %)."""
    if n == 0:
        return 1.0
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))
