"""Champion vs challenger: should the challenger be promoted? A pure decision with every reason.

:func:`decide_promotion` takes both models' P(positive) on the *same* evaluation set (paired
predictions) and the :class:`Policy`, and returns a :class:`Decision`. The challenger is promoted
when all three hold:

1. **gates**: its accuracy >= ``accuracy_min``, F1 >= ``f1_min``, ECE <= ``ece_max``;
2. **improvement**: its ``target_metric`` beats the champion's by at least ``min_improvement``
   (lower-is-better metrics such as ``ece`` or ``fpr`` count the other way round);
3. **significance**: the paired test(s) of ``test`` reject "no difference" at ``significance_level``
   in the challenger's favour: McNemar's test (``mcnemar``; the challenger must also be right
   alone more often than the champion), the paired bootstrap of the target metric (``bootstrap``;
   one-sided), or both (``both``). Both tests are always computed and reported.

With no champion (the first model) only the gates count. ``force`` waives (2) alone: a challenger
that passes every gate and is significantly better (3), but by less than ``min_improvement``, is
promoted. Force never skips a gate or the significance test, so it cannot promote a coin flip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autoretrain.config import COMPARISON_TESTS, Settings
from autoretrain.promotion.payloads import DecisionRecord
from autoretrain.promotion.stats import COUNT_METRICS, mcnemar, paired_bootstrap
from autoretrain.training.evaluation import HIGHER_IS_BETTER, check_gates, compute_metrics, json_safe

#: metrics reported for both models and their difference
REPORTED = ("accuracy", "precision", "recall", "f1", "mcc", "fpr", "ece", "brier", "roc_auc", "pr_auc")


@dataclass(frozen=True)
class Scores:
    """One model's P(positive) on an evaluation set, with the set's true labels (``version`` None: unknown)."""

    version: str | None
    labels: Sequence[str]
    proba: Sequence[float]

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.proba) or len(self.labels) == 0:
            raise ValueError(f"scores of version {self.version}: {len(self.labels)} labels and "
                             f"{len(self.proba)} probabilities; expected one non-zero length")


@dataclass(frozen=True)
class Policy:
    """The thresholds of the decision (see the module docstring)."""

    accuracy_min: float = 0.95
    f1_min: float = 0.90
    ece_max: float = 0.05
    min_improvement: float = 0.005
    target_metric: str = "f1"
    significance_level: float = 0.05
    test: str = "mcnemar"
    bootstrap_samples: int = 2000
    seed: int = 42
    threshold: float = 0.5
    positive_label: str = "spam"
    force: bool = False

    def __post_init__(self) -> None:
        if self.test not in COMPARISON_TESTS:
            raise ValueError(f"test={self.test!r} is not one of {COMPARISON_TESTS}")
        if self.target_metric not in HIGHER_IS_BETTER:
            raise ValueError(f"target_metric={self.target_metric!r} is not one of {sorted(HIGHER_IS_BETTER)}")
        if not 0.0 < self.significance_level < 1.0:
            raise ValueError(f"significance_level={self.significance_level} must be inside (0, 1)")

    @classmethod
    def from_settings(cls, settings: Settings, *, force: bool = False) -> Policy:
        return cls(accuracy_min=settings.accuracy_min, f1_min=settings.f1_min, ece_max=settings.ece_max,
                   min_improvement=settings.min_improvement, target_metric=settings.target_metric,
                   significance_level=settings.significance_level, test=settings.comparison_test,
                   bootstrap_samples=settings.bootstrap_samples, seed=settings.random_seed,
                   threshold=settings.decision_threshold, positive_label=settings.positive_label, force=force)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Decision:
    """Promote or not, every reason in order, and the numbers behind them (JSON-able)."""

    promote: bool
    reasons: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> DecisionRecord:
        return {"promote": self.promote, "reasons": list(self.reasons), "numbers": self.numbers}


def decide_promotion(champion: Scores | None, challenger: Scores, policy: Policy) -> Decision:
    """Gates, improvement over the champion and a paired significance test -> :class:`Decision`."""
    labels = np.asarray(challenger.labels)
    chal_metrics = compute_metrics(labels, challenger.proba, positive_label=policy.positive_label,
                                   threshold=policy.threshold)
    gates = check_gates(chal_metrics, accuracy_min=policy.accuracy_min, f1_min=policy.f1_min,
                        ece_max=policy.ece_max)
    numbers: dict[str, Any] = {
        "n": int(len(labels)), "n_positive": int(np.sum(labels == policy.positive_label)),
        "policy": policy.as_dict(), "challenger": _report(challenger.version, chal_metrics), "champion": None,
        "gates": gates.as_dict(), "checks": {"gates": gates.passed}, "forced": False}
    reasons = [f"gate {r}" for r in gates.reasons]
    if champion is None:
        reasons.append("no champion yet: the first model needs only its gates")
        return _verdict(gates.passed, reasons, numbers, policy)
    _check_paired(champion, challenger)
    if champion.version is not None and champion.version == challenger.version:
        reasons.append(f"the challenger is the champion (version {champion.version}): nothing to promote")
        numbers["checks"].update(improvement=False, significance=False)
        return Decision(False, [*reasons, "reject: the challenger is already the champion"], json_safe(numbers))
    champ_metrics = compute_metrics(labels, champion.proba, positive_label=policy.positive_label,
                                    threshold=policy.threshold)
    numbers["champion"] = _report(champion.version, champ_metrics)
    numbers["delta"] = {k: chal_metrics[k] - champ_metrics[k] for k in REPORTED}
    improved, reason = _improvement(champ_metrics, chal_metrics, policy, numbers)
    reasons.append(reason)
    significant, test_reasons = _significance(labels, champion, challenger, policy, numbers)
    reasons += test_reasons
    numbers["checks"].update(improvement=improved, significance=significant)
    return _verdict(gates.passed and improved and significant, reasons, numbers, policy)


def _check_paired(champion: Scores, challenger: Scores) -> None:
    a, b = np.asarray(champion.labels), np.asarray(challenger.labels)
    if a.shape != b.shape or not np.array_equal(a, b):
        raise ValueError(f"champion (version {champion.version}, {len(a)} rows) and challenger (version "
                         f"{challenger.version}, {len(b)} rows) were not scored on the same evaluation set; "
                         "a paired comparison needs the same messages in the same order")


def _report(version: str | None, metrics: dict[str, float]) -> dict[str, Any]:
    return {"version": version, **{k: metrics[k] for k in (*REPORTED, "tp", "fp", "fn", "tn")}}


def _improvement(champ: dict[str, float], chal: dict[str, float], policy: Policy,
                 numbers: dict[str, Any]) -> tuple[bool, str]:
    metric = policy.target_metric
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    gain = sign * (chal[metric] - champ[metric])
    ok = bool(gain >= policy.min_improvement - 1e-12)  # 1e-12: a gain equal to the minimum passes
    numbers["improvement"] = {"metric": metric, "gain": gain, "min_improvement": policy.min_improvement,
                              "passed": ok}
    direction = "" if sign > 0 else " (lower is better)"
    return ok, (f"{metric}{direction} {champ[metric]:.4f} -> {chal[metric]:.4f}: gain {gain:+.4f}, "
                f"needed {policy.min_improvement:+.4f}: {'pass' if ok else 'FAIL'}")


def _significance(labels: np.ndarray, champion: Scores, challenger: Scores, policy: Policy,
                  numbers: dict[str, Any]) -> tuple[bool, list[str]]:
    positive = labels == policy.positive_label
    champ_pred = np.asarray(champion.proba, dtype=float) >= policy.threshold
    chal_pred = np.asarray(challenger.proba, dtype=float) >= policy.threshold
    alpha = policy.significance_level
    test = mcnemar(champ_pred == positive, chal_pred == positive)
    mcnemar_ok = test.p_value < alpha and test.c > test.b
    metric = policy.target_metric if policy.target_metric in COUNT_METRICS else "f1"
    boot = paired_bootstrap(positive, champ_pred, chal_pred, metric=metric, samples=policy.bootstrap_samples,
                            seed=policy.seed, confidence=1.0 - 2.0 * alpha)
    boot_ok = boot.p_value < alpha
    numbers["mcnemar"] = {**test.as_dict(), "significant": mcnemar_ok}
    numbers["bootstrap"] = {**boot.as_dict(), "significant": boot_ok}
    required = {"mcnemar": ("mcnemar",), "bootstrap": ("bootstrap",), "both": ("mcnemar", "bootstrap")}[policy.test]
    role = {name: "required" if name in required else "reported only" for name in ("mcnemar", "bootstrap")}
    reasons = [
        f"McNemar ({test.method}, {role['mcnemar']}): challenger alone right on {test.c}, champion alone "
        f"right on {test.b}, p={test.p_value:.4g} {'<' if test.p_value < alpha else '>='} {alpha:g}: "
        f"{'significant' if mcnemar_ok else 'FAIL' if 'mcnemar' in required else 'not significant'}",
        f"paired bootstrap of {metric} ({boot.samples} resamples, {role['bootstrap']}): delta {boot.delta:+.4f}, "
        f"{boot.confidence:.0%} CI [{boot.ci_low:+.4f}, {boot.ci_high:+.4f}], one-sided p={boot.p_value:.4g}: "
        f"{'significant' if boot_ok else 'FAIL' if 'bootstrap' in required else 'not significant'}",
    ]
    ok = {"mcnemar": mcnemar_ok, "bootstrap": boot_ok}
    return all(ok[name] for name in required), reasons


def _verdict(passed: bool, reasons: list[str], numbers: dict[str, Any], policy: Policy) -> Decision:
    gates_ok = numbers["checks"]["gates"]
    if passed:
        return Decision(True, [*reasons, "promote: every check passed"], json_safe(numbers))
    failed = [name for name, ok in numbers["checks"].items() if not ok]
    if policy.force and gates_ok and failed == ["improvement"]:  # only the margin is waived, never a gate or test
        numbers["forced"] = True
        return Decision(True, [*reasons, "promote (forced): every gate passes and the gain is significant; "
                                         "failed checks overridden: improvement"], json_safe(numbers))
    if policy.force:
        kept = ", ".join(f for f in failed if f != "improvement")
        reasons.append(f"force waives only the improvement margin, not {kept}")
    return Decision(False, [*reasons, f"reject: failed {', '.join(failed)}"], json_safe(numbers))
