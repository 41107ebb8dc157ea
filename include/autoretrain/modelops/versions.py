"""Model versions as the page shows them: the registry's metadata (family, hold-out metrics and their
intervals, decision, links) joined to ``model_artifacts``, with a short per-process cache.

The registry is read with one search per model (:func:`autoretrain.registry.list_versions`), at most
once per ``ttl`` seconds per (tracking URI, model): the page answers from the cache in between, and
a version registered since shows up within ``ttl``. Tag values are untrusted: numbers are parsed
here (a bad one becomes None), strings are escaped by the renderer.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from autoretrain import lineage

METRICS = ("accuracy", "f1", "mcc", "ece", "fpr")
DEFAULT_TTL_SECONDS = 30.0


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _interval(text: str | None) -> list[float] | None:
    parts = (text or "").split()
    if len(parts) != 2:
        return None
    low, high = _number(parts[0]), _number(parts[1])
    return [low, high] if low is not None and high is not None else None


def describe(ref: Any) -> dict[str, Any]:
    """One registry version (:class:`autoretrain.registry.ModelRef`) as plain, parsed values."""
    tags = ref.tags
    return {"version": ref.version, "aliases": list(ref.aliases), "run_id": ref.run_id,
            "family": tags.get(lineage.FAMILY), "parent_run_id": tags.get(lineage.PARENT_RUN_ID),
            "dag_id": tags.get(lineage.AIRFLOW_DAG_ID), "airflow_run_id": tags.get(lineage.AIRFLOW_RUN_ID),
            "gates": tags.get(lineage.GATES), "decision": tags.get(lineage.DECISION),
            "model_card": tags.get(lineage.MODEL_CARD),
            "metrics": {m: _number(tags.get(f"{lineage.HOLDOUT_PREFIX}{m}")) for m in METRICS},
            "intervals": {m: _interval(tags.get(f"{lineage.INTERVAL_PREFIX}{m}")) for m in METRICS}}


@dataclass
class VersionCache:
    """``(tracking URI, model) -> (when read, versions)``; thread-safe, one registry read per ``ttl``."""

    ttl: float = DEFAULT_TTL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _entries: dict[tuple[str, str], tuple[float, list[dict[str, Any]]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: tuple[str, str], read: Callable[[], Sequence[Any]]) -> list[dict[str, Any]]:
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and self.clock() - hit[0] < self.ttl:
                return hit[1]
        described = [describe(ref) for ref in read()]
        with self._lock:
            self._entries[key] = (self.clock(), described)
        return described


CACHE = VersionCache()


def merge(registered: Sequence[dict[str, Any]], described: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``model_artifacts`` rows (what AutoRetrain vetted) with the registry's metadata of the same versions.

    A version the registry has but AutoRetrain never vetted is listed too, marked ``vetted: False``.
    """
    meta = {d["version"]: d for d in described}
    out = [{**meta.get(r["version"], {"version": r["version"], "aliases": [], "metrics": {}, "intervals": {}}),
            **r, "vetted": True} for r in registered]
    known = {r["version"] for r in registered}
    out += [{**d, "vetted": False, "registered_at": None} for d in described if d["version"] not in known]
    return sorted(out, key=lambda v: int(v["version"]) if str(v["version"]).isdigit() else 0)
