"""Metrics, calibration error, model selection and quality gates: pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    precision_score,
    recall_score,
    roc_auc_score,
)

from autoretrain.training.payloads import GateVerdict, HoldoutMetrics

ECE_BINS = 15

#: metric name -> True when larger is better (used by selection and gates)
HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True, "precision": True, "recall": True, "f1": True, "mcc": True, "roc_auc": True,
    "pr_auc": True, "ece": False, "brier": False, "fpr": False,
}


def json_safe(value: Any) -> Any:
    """JSON-able copy: numpy scalars to Python, NaN/inf to None (XCom, MLflow and Postgres JSON refuse NaN)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def expected_calibration_error(y_true: Sequence[int] | np.ndarray, proba: Sequence[float] | np.ndarray,
                               *, bins: int = ECE_BINS) -> float:
    """ECE of P(positive): sum over equal-width bins of |observed rate - mean predicted| x bin weight."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(proba, dtype=float)
    if len(y) == 0:
        return float("nan")
    index = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(total)


def compute_metrics(y_true: Sequence[str] | np.ndarray, proba: Sequence[float] | np.ndarray, *,
                    positive_label: str, threshold: float = 0.5) -> HoldoutMetrics:
    """Every evaluation metric from true labels and P(positive).

    ``f1``, ``precision`` and ``recall`` are of the positive class (spam); ``fpr`` is the share of
    negatives (ham) flagged as positive; ``ece`` is over 15 bins of P(positive).
    """
    y = (np.asarray(y_true) == positive_label).astype(int)
    p = np.asarray(proba, dtype=float)
    pred = (p >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    both = len(set(y)) == 2
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "mcc": float(matthews_corrcoef(y, pred)),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "ece": expected_calibration_error(y, p),
        "brier": float(brier_score_loss(y, p)),
        "fpr": float(fp / (fp + tn)) if (fp + tn) else 0.0,
        "tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp),
        "n": int(len(y)), "n_positive": int(y.sum()),
    }


@dataclass(frozen=True)
class Selection:
    """Which candidate won, by which metric, and why."""

    winner: str
    metric: str
    tie_break: str
    ranking: list[dict[str, str | float]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def select_best(candidates: Mapping[str, Mapping[str, float]], *, metric: str = "f1",
                tie_break: str = "mcc", decimals: int = 4) -> Selection:
    """The candidate with the best ``metric`` (rounded to ``decimals``); ties go to ``tie_break``.

    ``candidates`` maps a name to its (cross-validation) metrics. Remaining ties go to the name
    that sorts first, so the result is deterministic.
    """
    if not candidates:
        raise ValueError("select_best needs at least one candidate")
    for name, values in candidates.items():
        for key in (metric, tie_break):
            if key not in values:
                raise KeyError(f"candidate {name!r} has no metric {key!r} (has {sorted(values)})")

    def rank(name: str) -> tuple[float, float, str]:
        m, t = candidates[name][metric], candidates[name][tie_break]
        sign_m = 1 if HIGHER_IS_BETTER.get(metric, True) else -1
        sign_t = 1 if HIGHER_IS_BETTER.get(tie_break, True) else -1
        return (-sign_m * round(m, decimals), -sign_t * round(t, decimals), name)

    order = sorted(candidates, key=rank)
    winner, runner_up = order[0], order[1] if len(order) > 1 else None
    reasons = [f"{winner} has the best {metric} ({candidates[winner][metric]:.4f})"]
    if runner_up is not None:
        tied = round(candidates[winner][metric], decimals) == round(candidates[runner_up][metric], decimals)
        if tied:
            reasons = [f"{winner} ties {runner_up} on {metric} ({candidates[winner][metric]:.4f}) and wins "
                       f"on {tie_break} ({candidates[winner][tie_break]:.4f} vs "
                       f"{candidates[runner_up][tie_break]:.4f})"]
        else:
            reasons.append(f"runner-up {runner_up}: {metric} {candidates[runner_up][metric]:.4f}")
    ranking: list[dict[str, str | float]] = [
        {"name": n, metric: candidates[n][metric], tie_break: candidates[n][tie_break]} for n in order]
    return Selection(winner=winner, metric=metric, tie_break=tie_break, ranking=ranking, reasons=reasons)


@dataclass(frozen=True)
class GateDecision:
    """Whether a model passes the absolute quality gates, with one reason per gate."""

    passed: bool
    reasons: list[str]

    def as_dict(self) -> GateVerdict:
        return {"passed": self.passed, "reasons": list(self.reasons)}


def check_gates(metrics: Mapping[str, float], *, accuracy_min: float, f1_min: float,
                ece_max: float) -> GateDecision:
    """Absolute gates on hold-out metrics: accuracy >= min, F1 >= min, ECE <= max."""
    gates = [("accuracy", ">=", accuracy_min), ("f1", ">=", f1_min), ("ece", "<=", ece_max)]
    reasons, passed = [], True
    for name, op, limit in gates:
        value = metrics.get(name)
        if value is None or np.isnan(value):
            ok = False
            reasons.append(f"{name} is missing: gate {op} {limit} cannot be checked")
        else:
            ok = value >= limit if op == ">=" else value <= limit
            reasons.append(f"{name} {value:.4f} {op} {limit:.4f}: {'pass' if ok else 'FAIL'}")
        passed = passed and ok
    return GateDecision(passed=bool(passed), reasons=reasons)  # numpy scalars give np.bool_: not JSON-able
