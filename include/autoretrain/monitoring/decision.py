"""The retrain decision over monitored windows: a breach rule and hysteresis (pure functions)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoretrain.monitoring.drift import DriftReport
from autoretrain.monitoring.payloads import RetrainDecision

#: what a window's outcome can be read from: a report, its ``as_dict()``, a breach flag, or nothing
WindowOutcome = DriftReport | Mapping[str, Any] | bool | None


@dataclass(frozen=True)
class Decision:
    """Whether to retrain, with the reasons; ``streak`` = breaching windows at the end of the history."""

    retrain: bool
    reasons: list[str]
    streak: int = 0

    def as_dict(self) -> RetrainDecision:
        return {"retrain": self.retrain, "reasons": list(self.reasons), "streak": self.streak}


def window_breaches(window: WindowOutcome, *, accuracy_floor: float,
                    checks: Collection[str] | None = None) -> list[str] | None:
    """Why one window breaches: ``[]`` when it does not, ``None`` when it carries no evidence.

    ``window`` is a :class:`DriftReport`, its ``as_dict()`` (e.g. read back from the metrics
    table), a plain breach flag, or ``None`` (no report). A check breaches when it drifted (or, in
    a dict without the flag, when ``score > threshold``); feedback accuracy below
    ``accuracy_floor`` breaches too. ``checks`` limits which checks count.
    """
    if window is None:
        return None
    if isinstance(window, bool | np.bool_):
        return ["breach flag set"] if window else []
    data = window.as_dict() if isinstance(window, DriftReport) else window
    if data.get("insufficient_data"):
        return None
    reasons = []
    for result in data.get("results", []):
        name = result["name"]
        if checks is not None and name not in checks:
            continue
        score, threshold = float(result["score"]), float(result["threshold"])
        drifted = result.get("drifted")
        if score > threshold if drifted is None else drifted:
            reasons.append(f"{name} {score:.4g} > threshold {threshold:.4g}")
        accuracy = (result.get("details") or {}).get("accuracy")
        if name == "feedback_accuracy" and accuracy is not None and accuracy < accuracy_floor:
            reasons.append(f"feedback accuracy {accuracy:.4f} < floor {accuracy_floor:.4f}")
    return reasons


def decide_retrain(history: Sequence[WindowOutcome], *, consecutive: int = 2, accuracy_floor: float = 0.93,
                   checks: Collection[str] | None = None, names: Sequence[str] | None = None) -> Decision:
    """Retrain when the last ``consecutive`` judged windows all breach (hysteresis against one-off noise).

    ``history`` is oldest first. Windows with insufficient data (or ``None``) carry no evidence:
    they neither extend nor break a streak; the reasons name those that fell inside the span the
    decision looked at (``names``: one label per window, e.g. its time span), and why they were
    ignored. See :func:`window_breaches` for what a breach is.
    """
    if consecutive < 1:
        raise ValueError(f"consecutive={consecutive} must be at least 1")
    if names is not None and len(names) != len(history):
        raise ValueError(f"names has {len(names)} labels for {len(history)} windows")
    verdicts = [window_breaches(w, accuracy_floor=accuracy_floor, checks=checks) for w in history]
    judged = [(i, b) for i, b in enumerate(verdicts) if b is not None]
    if not judged:
        return Decision(False, ["no window with enough data to judge",
                                *_ignored(history, verdicts, names, since=0)])
    streak = 0
    for _, breaches in reversed(judged):
        if not breaches:
            break
        streak += 1
    # the span the decision looked at: from the oldest window that counted (the streak's, or the
    # judged window that ended it) to the latest
    counted = judged[-min(streak + 1, len(judged))][0]
    note = _ignored(history, verdicts, names, since=counted)
    latest = [f"latest window: {reason}" for reason in judged[-1][1]]
    if streak >= consecutive:
        return Decision(True, [f"{streak} consecutive breaching window(s), {consecutive} required", *latest,
                               *note], streak)
    if streak:
        return Decision(False, [f"{streak} consecutive breaching window(s), {consecutive} required: waiting",
                                *latest, *note], streak)
    return Decision(False, ["latest window: no check over its threshold, feedback accuracy not below the floor",
                            *note], 0)


def _ignored(history: Sequence[WindowOutcome], verdicts: Sequence[list[str] | None],
             names: Sequence[str] | None, *, since: int) -> list[str]:
    """One reason per window from ``since`` on that carried no evidence: which one, and why."""
    notes = []
    for i in range(since, len(history)):
        if verdicts[i] is not None:
            continue
        label = names[i] if names is not None else f"window {i + 1} of {len(history)}"
        notes.append(f"{label} ignored: {_why_no_evidence(history[i])}")
    return notes


def _why_no_evidence(window: WindowOutcome) -> str:
    if window is None:
        return "not measured"
    data = window.as_dict() if isinstance(window, DriftReport) else window
    if not isinstance(data, Mapping):
        return "no report"
    if data.get("status") == "no champion":
        return "no champion to measure it with"
    skipped = [str(why) for why in (data.get("skipped") or {}).values()]
    if skipped and skipped[0].startswith("insufficient data"):
        return skipped[0]  # "insufficient data: 40 messages in the window, fewer than 100"
    n = data.get("n_window", data.get("n_predictions"))
    return f"insufficient data ({n} predictions)" if n is not None else "insufficient data"
