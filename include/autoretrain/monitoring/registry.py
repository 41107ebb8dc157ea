"""The registry of drift checks: each a small named unit with its declared default threshold.

Modelled on evidently's stattests registry (``legacy/calculations/stattests/registry.py``):
:func:`register_check` adds a measurement under its name, default threshold and what it needs
(texts, probabilities or feedback labels); :mod:`autoretrain.monitoring.checks` registers them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autoretrain.monitoring.reference import CheckContext, Reference, WindowStats

#: a check's measurement: ``(reference, window, ctx) -> (score, noise_floor, details)``
Measure = Callable[[Reference, WindowStats, CheckContext], tuple[float, float, dict[str, Any]]]


@dataclass(frozen=True)
class Check:
    """A registered check: its name, default threshold, what it needs and its measurement.

    ``measure(reference, window, ctx)`` returns ``(score, noise_floor, details)``.
    """

    name: str
    default_threshold: float
    needs: str  # "texts" | "proba" | "labels"
    description: str
    measure: Measure
    psi_scale: bool = False  # its default follows Settings.drift_threshold


CHECKS: dict[str, Check] = {}


def register_check(name: str, *, default_threshold: float, needs: str, description: str,
                   psi_scale: bool = False) -> Callable[[Measure], Measure]:
    """Decorator: register ``measure`` as the check ``name`` with its declared default threshold."""
    def wrap(measure: Measure) -> Measure:
        CHECKS[name] = Check(name, default_threshold, needs, description, measure, psi_scale)
        return measure
    return wrap


def default_thresholds(drift_threshold: float | None = None) -> dict[str, float]:
    """Every check's declared threshold; ``drift_threshold`` replaces those on the PSI scale."""
    return {c.name: (drift_threshold if c.psi_scale and drift_threshold is not None else c.default_threshold)
            for c in CHECKS.values()}
