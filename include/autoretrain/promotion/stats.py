"""Paired significance tests and bootstrap confidence intervals: pure numpy/scipy, no I/O.

Used by the champion/challenger decision (:mod:`autoretrain.promotion.decision`) and the model card
(:mod:`autoretrain.training.model_card`). Every function is deterministic for a given ``seed``.

* :func:`mcnemar` compares two classifiers on the same messages through the *discordant pairs*:
  ``b`` messages only the champion got right, ``c`` messages only the challenger got right. Below
  :data:`EXACT_BELOW` discordant pairs it uses the exact binomial test, otherwise the chi-square
  statistic with Edwards' continuity correction, ``(|b - c| - 1)^2 / (b + c)``. Both are two-sided.
* :func:`paired_bootstrap` resamples the messages (the same indices for both models) and reports
  the difference of a metric (F1 by default), its percentile interval and a one-sided p-value: the
  share of resamples in which the challenger is not better.
* :func:`metric_intervals` gives percentile bootstrap intervals of one model's hold-out metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

#: below this many discordant pairs McNemar's chi-square approximation is poor: exact binomial
EXACT_BELOW = 25
#: metrics with a vectorized bootstrap (from the four confusion counts)
COUNT_METRICS = ("accuracy", "precision", "recall", "f1", "fpr", "mcc")
_CHUNK = 500  # resamples per vectorized block (memory: _CHUNK x n indices)


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on paired correctness; ``b``: only the champion right, ``c``: only the challenger."""

    b: int
    c: int
    statistic: float
    p_value: float
    method: str  # "exact binomial" | "chi-square, continuity corrected" | "no discordant pairs"

    @property
    def discordant(self) -> int:
        return self.b + self.c

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "discordant": self.discordant}


@dataclass(frozen=True)
class BootstrapResult:
    """Paired bootstrap of ``metric(challenger) - metric(champion)`` (lower-is-better metrics negated)."""

    metric: str
    delta: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float  # one-sided: share of resamples where the challenger is not better
    samples: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar(champion_correct: Sequence[bool] | np.ndarray, challenger_correct: Sequence[bool] | np.ndarray,
            *, exact_below: int = EXACT_BELOW) -> McNemarResult:
    """McNemar's two-sided test on per-message correctness of two models on the same messages."""
    a = np.asarray(champion_correct, dtype=bool)
    z = np.asarray(challenger_correct, dtype=bool)
    if a.shape != z.shape or a.ndim != 1:
        raise ValueError(f"paired correctness must be two 1-d arrays of one length, got {a.shape} and {z.shape}")
    b, c = int(np.sum(a & ~z)), int(np.sum(~a & z))
    n = b + c
    if n == 0:
        return McNemarResult(b=0, c=0, statistic=0.0, p_value=1.0, method="no discordant pairs")
    if n < exact_below:
        p = float(sps.binomtest(c, n, 0.5, alternative="two-sided").pvalue)
        return McNemarResult(b=b, c=c, statistic=float(min(b, c)), p_value=min(p, 1.0), method="exact binomial")
    statistic = (abs(b - c) - 1) ** 2 / n
    return McNemarResult(b=b, c=c, statistic=float(statistic), p_value=float(sps.chi2.sf(statistic, 1)),
                         method="chi-square, continuity corrected")


# ------------------------------------------------------------------------------------- bootstrap
def _counts(y: np.ndarray, pred: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, ...]:
    """Confusion counts (tp, fp, fn, tn) of each resample (rows of ``idx``)."""
    ys, ps = y[idx], pred[idx]
    tp = np.sum(ys & ps, axis=1)
    fp = np.sum(~ys & ps, axis=1)
    fn = np.sum(ys & ~ps, axis=1)
    tn = idx.shape[1] - tp - fp - fn
    return tp.astype(float), fp.astype(float), fn.astype(float), tn.astype(float)


def _metric(name: str, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> np.ndarray:
    """``name`` from confusion counts, elementwise; 0 where undefined (as sklearn's zero_division=0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "accuracy":
            out = (tp + tn) / (tp + fp + fn + tn)
        elif name == "precision":
            out = tp / (tp + fp)
        elif name == "recall":
            out = tp / (tp + fn)
        elif name == "f1":
            out = 2 * tp / (2 * tp + fp + fn)
        elif name == "fpr":
            out = fp / (fp + tn)
        elif name == "mcc":
            out = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        else:
            raise ValueError(f"no count-based bootstrap for metric {name!r}; known: {COUNT_METRICS}")
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def _resamples(n: int, samples: int, seed: int) -> list[np.ndarray]:
    """Index blocks of ``samples`` resamples with replacement of ``range(n)``."""
    rng = np.random.default_rng(seed)
    sizes = [min(_CHUNK, samples - start) for start in range(0, samples, _CHUNK)]
    return [rng.integers(0, n, size=(size, n)) for size in sizes]


def _as_bool(values: Sequence[Any] | np.ndarray, positive: Any) -> np.ndarray:
    arr = np.asarray(values)
    return arr.astype(bool) if arr.dtype == bool else arr == positive


def paired_bootstrap(y_true: Sequence[Any] | np.ndarray, champion_pred: Sequence[Any] | np.ndarray,
                     challenger_pred: Sequence[Any] | np.ndarray, *, positive: Any = True, metric: str = "f1",
                     samples: int = 2000, seed: int = 42, confidence: float = 0.95) -> BootstrapResult:
    """Paired bootstrap of ``metric(challenger) - metric(champion)`` over the same resampled messages.

    ``fpr`` is lower-is-better, so its difference is taken the other way round: a positive delta
    always means the challenger is better.
    """
    y = _as_bool(y_true, positive)
    a, z = _as_bool(champion_pred, positive), _as_bool(challenger_pred, positive)
    if not (len(y) == len(a) == len(z)) or len(y) == 0:
        raise ValueError(f"paired bootstrap needs equal, non-empty lengths; got {len(y)}, {len(a)}, {len(z)}")
    if samples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"samples={samples} must be >= 1 and confidence={confidence} inside (0, 1)")
    sign = -1.0 if metric == "fpr" else 1.0
    full = np.arange(len(y))[None, :]
    delta = sign * float(_metric(metric, *_counts(y, z, full))[0] - _metric(metric, *_counts(y, a, full))[0])
    deltas = np.concatenate([sign * (_metric(metric, *_counts(y, z, idx)) - _metric(metric, *_counts(y, a, idx)))
                             for idx in _resamples(len(y), samples, seed)])
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(deltas, [tail, 1.0 - tail])
    p_value = (1.0 + float(np.sum(deltas <= 0.0))) / (samples + 1.0)
    return BootstrapResult(metric=metric, delta=delta, ci_low=float(low), ci_high=float(high),
                           confidence=confidence, p_value=p_value, samples=samples, seed=seed)


def metric_intervals(y_true: Sequence[Any] | np.ndarray, proba: Sequence[float] | np.ndarray, *,
                     positive: Any = True, threshold: float = 0.5, samples: int = 1000, seed: int = 42,
                     confidence: float = 0.95, ece_bins: int = 15) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of accuracy, precision, recall, F1, FPR, MCC and ECE."""
    y = _as_bool(y_true, positive)
    p = np.asarray(proba, dtype=float)
    if len(y) != len(p) or len(y) == 0:
        raise ValueError(f"labels and probabilities must have one non-zero length; got {len(y)} and {len(p)}")
    pred = p >= threshold
    blocks = _resamples(len(y), samples, seed)
    values: dict[str, list[np.ndarray]] = {name: [] for name in (*COUNT_METRICS, "ece")}
    bins = np.minimum((p * ece_bins).astype(int), ece_bins - 1)
    for idx in blocks:
        counts = _counts(y, pred, idx)
        for name in COUNT_METRICS:
            values[name].append(_metric(name, *counts))
        values["ece"].append(_ece_rows(y[idx].astype(float), p[idx], bins[idx], ece_bins))
    tail = (1.0 - confidence) / 2.0
    out = {}
    for name, parts in values.items():
        low, high = np.quantile(np.concatenate(parts), [tail, 1.0 - tail])
        out[name] = (float(low), float(high))
    return out


def _ece_rows(y: np.ndarray, p: np.ndarray, bins: np.ndarray, n_bins: int) -> np.ndarray:
    """ECE of each row (resample): sum over bins of |observed - predicted| x bin share."""
    rows, n = y.shape
    flat = bins + n_bins * np.arange(rows)[:, None]  # a distinct bin id per (row, bin)
    size = rows * n_bins
    observed = np.bincount(flat.ravel(), weights=y.ravel(), minlength=size).reshape(rows, n_bins)
    predicted = np.bincount(flat.ravel(), weights=p.ravel(), minlength=size).reshape(rows, n_bins)
    return np.abs(observed - predicted).sum(axis=1) / n  # sum_b (n_b/n)|obs_b/n_b - pred_b/n_b|
