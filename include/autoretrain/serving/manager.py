"""Which model versions serve: poll the registry aliases, load and verify new versions, swap atomically.

A background thread polls every ``reload_interval_seconds``. A new version is downloaded, its
SHA-256 checked (:func:`autoretrain.registry.load_verified`), compiled and warmed up off the request
path; only then does one assignment publish a new :class:`ServingState`. A request reads the state
once, so it never sees a half-loaded model. If a version fails to load or verify, the old model
keeps serving, the failure is logged and counted, and that version is retried with a backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from autoretrain import lineage
from autoretrain.registry import ModelRef
from autoretrain.serving.predictor import Predictor, compile_predictor
from autoretrain.serving.routing import CHAMPION, RoutingConfig
from autoretrain.serving.telemetry import ServingMetrics

log = logging.getLogger(__name__)

RETRY_SECONDS = (30.0, 60.0, 120.0, 300.0)  # backoff for a version that failed to load or verify

Lookup = Callable[[str], ModelRef | None]  # alias -> the version holding it, None if no such alias
Loader = Callable[[ModelRef], Any]  # version -> fitted sklearn pipeline (verified)
RoutingSource = Callable[[], RoutingConfig]


@dataclass(frozen=True)
class LoadedModel:
    ref: ModelRef
    predictor: Predictor
    loaded_at: datetime

    def describe(self) -> dict[str, Any]:
        metrics = {k: float(v) for k, v in self.ref.tags.items() if k.startswith("holdout_") and _is_number(v)}
        return {"version": self.ref.version, "run_id": self.ref.run_id, "sha256": self.ref.sha256,
                "aliases": list(self.ref.aliases), "family": self.ref.tags.get(lineage.FAMILY),
                "metrics": metrics, "loaded_at": self.loaded_at.isoformat(), "fast_path": self.predictor.fast}


@dataclass(frozen=True)
class ServingState:
    """What serves right now; replaced as a whole, never mutated."""

    routing: RoutingConfig
    models: Mapping[str, LoadedModel] = field(default_factory=dict)
    checked_at: datetime | None = None

    @property
    def champion(self) -> LoadedModel | None:
        return self.models.get(CHAMPION)


class ModelManager:
    """Keeps ``state`` in step with the registry aliases and the routing configuration."""

    def __init__(self, *, lookup: Lookup, loader: Loader, routing: RoutingSource, metrics: ServingMetrics,
                 positive_label: str, interval: float = 10.0) -> None:
        self._lookup, self._loader, self._routing = lookup, loader, routing
        self._metrics, self._positive, self._interval = metrics, positive_label, interval
        self.state = ServingState(routing=RoutingConfig())
        self.failures: deque[dict[str, Any]] = deque(maxlen=20)
        self._retry: dict[tuple[str, str | None], tuple[int, float]] = {}  # (version, sha) -> attempts, at
        self._lock = threading.Lock()  # one refresh at a time (poller thread, admin endpoint)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the poller must survive anything; the old state serves on
                log.exception("model poll failed; the current models keep serving")
                self._metrics.poll_errors.inc()
            self._stop.wait(self._interval)

    # ------------------------------------------------------------------------------- polling
    def refresh(self) -> ServingState:
        """One poll: routing override, then every alias the routing needs; publish the result."""
        with self._lock:
            routing = self._current_routing()
            models: dict[str, LoadedModel] = {}
            for alias in routing.variants:
                model = self._resolve(alias, models)
                if model is not None:
                    models[alias] = model
            self.state = ServingState(routing=routing, models=models, checked_at=datetime.now(UTC))
            self._metrics.set_models({a: m.ref.version for a, m in models.items()})
            return self.state

    def _current_routing(self) -> RoutingConfig:
        try:
            return self._routing()
        except Exception as err:  # noqa: BLE001 - a database hiccup keeps the current routing
            log.warning("could not read the routing override, keeping %s: %s", self.state.routing.mode, err)
            self._metrics.poll_errors.inc()
            return self.state.routing

    def _resolve(self, alias: str, fresh: Mapping[str, LoadedModel]) -> LoadedModel | None:
        current = self.state.models.get(alias)
        try:
            ref = self._lookup(alias)
        except Exception as err:  # noqa: BLE001 - registry unreachable: keep what serves
            log.warning("registry lookup of alias %s failed, keeping version %s: %s", alias,
                        current.ref.version if current else None, err)
            self._metrics.poll_errors.inc()
            return current
        if ref is None:
            if current is not None and alias == CHAMPION:
                log.warning("alias %s disappeared from the registry; keeping version %s", alias,
                            current.ref.version)
                return current
            return None
        same = self._loaded(ref, fresh)
        if same is not None:
            return LoadedModel(ref=ref, predictor=same.predictor, loaded_at=same.loaded_at)
        attempts, retry_at = self._retry.get((ref.version, ref.sha256), (0, 0.0))
        if time.monotonic() < retry_at:
            return current
        return self._load(alias, ref, attempts) or current

    def _loaded(self, ref: ModelRef, fresh: Mapping[str, LoadedModel]) -> LoadedModel | None:
        """A model of the same version and hash that is already in memory (e.g. challenger promoted)."""
        for model in [*fresh.values(), *self.state.models.values()]:
            if model.ref.version == ref.version and model.ref.sha256 == ref.sha256:
                return model
        return None

    def _load(self, alias: str, ref: ModelRef, attempts: int) -> LoadedModel | None:
        started = time.perf_counter()
        try:
            pipeline = self._loader(ref)
            predictor = compile_predictor(pipeline, positive_label=self._positive)  # warms it up too
        except Exception as err:  # noqa: BLE001 - any failure: the previous model keeps serving
            delay = RETRY_SECONDS[min(attempts, len(RETRY_SECONDS) - 1)]
            self._retry[(ref.version, ref.sha256)] = (attempts + 1, time.monotonic() + delay)
            self._metrics.reloads.labels(alias, "failure").inc()
            self.failures.append({"alias": alias, "version": ref.version, "error": f"{type(err).__name__}: {err}",
                                  "at": datetime.now(UTC).isoformat(), "retry_in_seconds": delay})
            log.error("could not load %s version %s for alias %s (the previous model keeps serving; retry in "
                      "%.0fs): %s", ref.name, ref.version, alias, delay, err)
            return None
        self._retry.pop((ref.version, ref.sha256), None)
        self._metrics.reloads.labels(alias, "success").inc()
        log.info("loaded %s version %s for alias %s in %.1fs (fast path: %s)", ref.name, ref.version, alias,
                 time.perf_counter() - started, predictor.fast)
        return LoadedModel(ref=ref, predictor=predictor, loaded_at=datetime.now(UTC))


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
