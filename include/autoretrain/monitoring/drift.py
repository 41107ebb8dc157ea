"""Drift checks: small named units with declared default thresholds, each returning a DriftResult.

Modelled on evidently's stattests registry (``legacy/calculations/stattests/registry.py``): a check
is registered with its name, its default threshold and what it needs (texts, probabilities or
feedback labels). :func:`run_checks` compares a window of production messages with the champion's
reference and returns a :class:`DriftReport`; every result carries the threshold it was judged by.

Thresholds are effect sizes on the check's own scale (PSI, Kolmogorov-Smirnov D, ROC-AUC, accuracy
points...). So that small windows do not raise false alarms, a check's effective threshold is the
larger of its declared threshold and its *noise floor*: the value that sampling noise alone exceeds
with probability ``alpha`` at this window's size (``details["noise_floor"]``). ADR 0003 explains the
measures and the defaults; ``make bench-drift-quality`` measures detection and false alarms.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from autoretrain.monitoring import checks as _checks  # noqa: F401 - importing it registers every check
from autoretrain.monitoring.payloads import DriftReportRecord, DriftResultRecord
from autoretrain.monitoring.reference import (
    ALPHA,
    MIN_LABELS,
    MIN_WINDOW_SIZE,
    TEXT_ROWS,
    CheckContext,
    Reference,
    Sample,
    WindowStats,
    build_reference,
)
from autoretrain.monitoring.registry import CHECKS, Check, default_thresholds
from autoretrain.training.evaluation import json_safe

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class DriftResult:
    """One check's verdict: ``drifted`` is ``score > threshold``; ``details`` say why."""

    name: str
    score: float
    threshold: float
    drifted: bool
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> DriftResultRecord:
        """Plain JSON-able values (for MLflow, the metrics table, Slack)."""
        return {"name": self.name, "score": self.score, "threshold": self.threshold,
                "drifted": self.drifted, "details": json_safe(self.details)}


@dataclass(frozen=True)
class DriftReport:
    """All check results for one window, or ``insufficient_data`` when the window is too small."""

    results: list[DriftResult]
    insufficient_data: bool
    n_window: int
    n_reference: int
    n_labelled: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # check name -> why it did not run
    text_rows: int = 0  # window messages the text checks read (all, or a uniform sample of TEXT_ROWS)

    @property
    def drifted(self) -> bool:
        """True when any check is over its threshold (never for insufficient data)."""
        return any(r.drifted for r in self.results)

    def result(self, name: str) -> DriftResult | None:
        """The result of check ``name``, if it ran."""
        return next((r for r in self.results if r.name == name), None)

    def as_dict(self) -> DriftReportRecord:
        """Plain JSON-able values."""
        return {"drifted": self.drifted, "insufficient_data": self.insufficient_data,
                "n_window": self.n_window, "n_reference": self.n_reference, "n_labelled": self.n_labelled,
                "text_rows": self.text_rows, "skipped": dict(self.skipped),
                "results": [r.as_dict() for r in self.results]}


# ------------------------------------------------------------------------------ running
def run_checks(reference: Reference | Sample, window: Sample | Sequence[str], *, model: Any = None,
               thresholds: Mapping[str, float] | None = None, labels: Sequence[str | None] | None = None,
               checks: Sequence[str] | None = None, drift_threshold: float | None = None,
               min_window_size: int = MIN_WINDOW_SIZE, min_labels: int = MIN_LABELS, alpha: float = ALPHA,
               max_text_rows: int | None = TEXT_ROWS, positive_label: str = "spam", seed: int = 0) -> DriftReport:
    """Run the drift checks of ``window`` against ``reference``.

    ``window``: the messages and the champion's P(positive) for each (computed with ``model`` when
    missing). ``labels``: feedback labels aligned with the window's messages, ``None`` where there
    is none. ``thresholds``: per-check overrides of the declared thresholds (``drift_threshold``
    sets those on the PSI scale). ``checks``: run only these. A window with fewer than
    ``min_window_size`` messages is reported as insufficient data, without running any check.
    The text checks read at most ``max_text_rows`` messages, sampled uniformly (``None``: all);
    the prediction and feedback checks always read every message. ``positive_label`` is used only
    when ``reference`` is a plain :class:`Sample` (a :class:`Reference` carries its own).
    """
    if not isinstance(reference, Reference):
        reference = build_reference(reference.texts, proba=reference.proba, model=model,
                                    positive_label=positive_label, seed=seed)
    window = window if isinstance(window, Sample) else Sample(texts=window)
    texts = window.texts if isinstance(window.texts, list | tuple) else list(window.texts)  # e.g. a Series
    names = list(checks) if checks is not None else list(CHECKS)
    unknown = sorted(set(names) - set(CHECKS)) + sorted(set(thresholds or {}) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown drift check(s) {unknown}; known: {sorted(CHECKS)}")
    if len(texts) < min_window_size:
        reason = f"insufficient data: {len(texts)} messages in the window, fewer than {min_window_size}"
        return DriftReport(results=[], insufficient_data=True, n_window=len(texts), n_reference=reference.n,
                           skipped=dict.fromkeys(names, reason))
    proba = _window_proba(window, texts, model, reference.positive_label)
    y = _window_labels(labels, len(texts), reference.positive_label)
    limits = default_thresholds(drift_threshold) | dict(thresholds or {})
    rng = np.random.default_rng(seed)
    win = WindowStats(texts, proba, y, reference, rng, text_rows=max_text_rows)
    ctx = CheckContext(alpha=alpha, z=float(stats.norm.isf(alpha)), rng=rng)
    n_labelled = int(np.count_nonzero(y >= 0)) if y is not None else 0
    results, skipped = [], {}
    for name in names:
        check = CHECKS[name]
        why_not = _missing_input(check, reference, proba, n_labelled, min_labels)
        if why_not:
            skipped[name] = why_not
            continue
        score, floor, details = check.measure(reference, win, ctx)
        threshold = max(float(limits[name]), floor)
        details = {"declared_threshold": float(limits[name]), "noise_floor": round(floor, 6), **details}
        results.append(DriftResult(name, round(float(score), 6), round(threshold, 6), bool(score > threshold),
                                   details))
    log.info("drift checks on %d messages (%d labelled): %d of %d over their threshold %s; skipped %s",
             len(texts), n_labelled, sum(r.drifted for r in results), len(results),
             [r.name for r in results if r.drifted], sorted(skipped))
    return DriftReport(results=results, insufficient_data=False, n_window=len(texts), n_reference=reference.n,
                       n_labelled=n_labelled, skipped=skipped, text_rows=win.text_rows)


def _window_proba(window: Sample, texts: Sequence[str], model: Any, positive_label: str) -> np.ndarray | None:
    if window.proba is not None:
        proba = np.asarray(window.proba, dtype=float)
        if len(proba) != len(texts):
            raise ValueError(f"window proba has {len(proba)} values for {len(texts)} messages")
        bad = np.flatnonzero(~np.isfinite(proba) | (proba < 0) | (proba > 1))
        if len(bad):
            raise ValueError(f"window proba has {len(bad)} value(s) outside [0, 1] or not finite, e.g. "
                             f"{proba[bad[0]]!r} at position {bad[0]}; drop or re-score those predictions")
        return proba
    if model is None:
        return None
    import pandas as pd

    from autoretrain.training.families import positive_proba

    return positive_proba(model, pd.DataFrame({"text": [str(t) for t in texts]}), positive_label)


def _window_labels(labels: Sequence[str | None] | None, n: int, positive_label: str) -> np.ndarray | None:
    """1 = positive, 0 = negative, -1 = no feedback."""
    if labels is None:
        return None
    if len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries for {n} window messages (use None for no feedback)")
    return np.array([-1 if v is None or v != v or v == "" else int(v == positive_label) for v in labels],
                    dtype=int)  # v != v: NaN, how pandas marks a missing label


def _missing_input(check: Check, reference: Reference, proba: Any, n_labelled: int, min_labels: int) -> str:
    if check.needs in ("proba", "labels") and proba is None:
        return "no window probabilities (pass window.proba or a model)"
    if check.needs == "proba" and reference.proba is None:
        return "the reference has no probabilities"
    if check.needs == "labels":
        if reference.metrics is None:
            return "the reference has no baseline evaluation (labels + proba, or metrics)"
        if n_labelled < min_labels:
            return f"{n_labelled} labelled messages in the window, fewer than {min_labels}"
    return ""


# ------------------------------------------------------------------------------ the decision
WindowOutcome = DriftReport | Mapping[str, Any] | bool | None
