"""Which model versions serve: poll the registry aliases, load and verify new versions, swap atomically.

A background thread polls every ``reload_interval_seconds``. A new version is downloaded, its
SHA-256 checked (:func:`autoretrain.registry.load_verified`), compiled and warmed up off the request
path; only then does one assignment publish a new :class:`ServingState`. A request reads the state
once, so it never sees a half-loaded model. If a version fails to load, the old model keeps
serving, the failure is logged and counted, and that version is retried with a backoff.

A version refused by verification (:class:`autoretrain.registry.ModelIntegrityError`: not
registered and vetted by AutoRetrain, or changed since) is different: it is logged once, raises one
``on_refused`` call (the critical alert) and is not tried again until ``refresh(retry_refused=True)``
(``POST /admin/reload``); the current model keeps serving. With no champion in memory (the service
just started) and MLflow down or the champion refused, the ``last_good`` copy serves (ADR 0007).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from autoretrain import lineage
from autoretrain.registry import ModelIntegrityError, ModelRef
from autoretrain.serving.predictor import Predictor, compile_predictor
from autoretrain.serving.routing import CHAMPION, RoutingConfig
from autoretrain.serving.telemetry import ServingMetrics

log = logging.getLogger(__name__)

RETRY_SECONDS = (30.0, 60.0, 120.0, 300.0)  # backoff for a version that failed to load or verify

Lookup = Callable[[str], ModelRef | None]  # alias -> the version holding it, None if no such alias
Loader = Callable[[ModelRef], Any]  # version -> fitted sklearn pipeline (verified)
RoutingSource = Callable[[], RoutingConfig]
#: (alias, refused version, the error, the version serving the alias now or None): the critical alert
OnRefused = Callable[[str, ModelRef, Exception, ModelRef | None], None]


class LastGood(Protocol):
    """A verified champion kept on disk (:class:`autoretrain.serving.integrity.LastKnownGood`)."""

    def remember(self, ref: ModelRef) -> None: ...

    def load(self) -> tuple[ModelRef, Any] | None: ...


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
                 positive_label: str, interval: float = 10.0, last_good: LastGood | None = None,
                 on_refused: OnRefused | None = None) -> None:
        self._lookup, self._loader, self._routing = lookup, loader, routing
        self._metrics, self._positive, self._interval = metrics, positive_label, interval
        self._last_good, self._on_refused = last_good, on_refused
        self.state = ServingState(routing=RoutingConfig())
        self.failures: deque[dict[str, Any]] = deque(maxlen=20)
        self._retry: dict[tuple[str, str | None], tuple[int, float]] = {}  # (version, sha) -> attempts, at
        self.refused: dict[tuple[str, str], str] = {}  # (name, version) -> why; never retried by the poller
        self._fallback_tried = False  # the last-known-good copy is read at most once per process
        self._lock = threading.Lock()  # one refresh at a time (poller thread, admin endpoint)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop polling. A poll stuck in MLflow's retries (MLflow down) is abandoned after ``timeout``:
        the thread is a daemon and swaps state atomically, so nothing is lost, and shutdown stays
        inside the container's grace period (it waited up to 30 s here before)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            if self._thread.is_alive():
                log.info("model poller still inside a registry call after %.0f s; left behind (daemon)", timeout)

    def _run(self) -> None:
        self._start_from_last_good()
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the poller must survive anything; the old state serves on
                log.exception("model poll failed; the current models keep serving")
                self._metrics.poll_errors.inc()
            self._stop.wait(self._interval)

    def _start_from_last_good(self) -> None:
        """Serve the verified last-known-good champion before the first poll (MLflow may be slow or down)."""
        with self._lock:
            if self.state.champion is not None:
                return
            model = self._fallback(CHAMPION)
            if model is not None:
                self.state = ServingState(routing=self.state.routing, models={CHAMPION: model})
                self._metrics.set_models({CHAMPION: model.ref.version})

    # ------------------------------------------------------------------------------- polling
    def refresh(self, *, retry_refused: bool = False) -> ServingState:
        """One poll: routing override, then every alias the routing needs; publish the result.

        ``retry_refused``: verify the refused versions again (an operator fixed the record or artifact).
        """
        with self._lock:
            if retry_refused:
                self.refused.clear()
            routing = self._current_routing()
            models: dict[str, LoadedModel] = {}
            for alias in routing.variants:
                model = self._resolve(alias, models)
                if model is not None:
                    models[alias] = model
            before = self.state.champion
            self.state = ServingState(routing=routing, models=models, checked_at=datetime.now(UTC))
            self._metrics.set_models({a: m.ref.version for a, m in models.items()})
            champion = self.state.champion
            if self._last_good is not None and champion is not None and (
                    before is None or before.ref.version != champion.ref.version):
                self._last_good.remember(champion.ref)
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
            return current or self._fallback(alias)
        if ref is None:
            if current is not None and alias == CHAMPION:
                log.warning("alias %s disappeared from the registry; keeping version %s", alias,
                            current.ref.version)
                return current
            return None
        same = self._loaded(ref, fresh)
        if same is not None:
            return LoadedModel(ref=ref, predictor=same.predictor, loaded_at=same.loaded_at)
        if (ref.name, ref.version) in self.refused:
            return current or self._fallback(alias)
        attempts, retry_at = self._retry.get((ref.version, ref.sha256), (0, 0.0))
        if time.monotonic() < retry_at:
            return current or self._fallback(alias)
        return self._load(alias, ref, attempts, current) or current or self._fallback(alias)

    def _fallback(self, alias: str) -> LoadedModel | None:
        """The last-known-good champion, when nothing serves it yet (read once per process)."""
        if alias != CHAMPION or self._last_good is None or self._fallback_tried:
            return None
        self._fallback_tried = True
        try:
            found = self._last_good.load()
            if found is None:
                log.warning("no last-known-good champion on disk: nothing serves until a verified champion loads")
                return None
            ref, pipeline = found
            predictor = compile_predictor(pipeline, positive_label=self._positive)
        except Exception as err:  # noqa: BLE001 - a bad copy is refused like any unverified model
            self._metrics.reloads.labels(alias, "failure").inc()
            self.failures.append({"alias": alias, "version": None, "error": f"last-known-good: {type(err).__name__}: "
                                  f"{err}", "at": datetime.now(UTC).isoformat(), "retry_in_seconds": None})
            log.error("the last-known-good champion was refused: %s", err)
            return None
        self._metrics.reloads.labels(alias, "last_known_good").inc()
        log.warning("serving the last-known-good champion %s version %s (verified against its record) until the "
                    "registry's champion loads verified", ref.name, ref.version)
        return LoadedModel(ref=ref, predictor=predictor, loaded_at=datetime.now(UTC))

    def _loaded(self, ref: ModelRef, fresh: Mapping[str, LoadedModel]) -> LoadedModel | None:
        """A model of the same version and hash that is already in memory (e.g. challenger promoted)."""
        for model in [*fresh.values(), *self.state.models.values()]:
            if model.ref.version == ref.version and model.ref.sha256 == ref.sha256:
                return model
        return None

    def _load(self, alias: str, ref: ModelRef, attempts: int, current: LoadedModel | None) -> LoadedModel | None:
        started = time.perf_counter()
        try:
            pipeline = self._loader(ref)
            predictor = compile_predictor(pipeline, positive_label=self._positive)  # warms it up too
        except ModelIntegrityError as err:  # not vetted by AutoRetrain: never retried by the poller
            self._refuse(alias, ref, err, current)
            return None
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

    def _refuse(self, alias: str, ref: ModelRef, err: ModelIntegrityError, current: LoadedModel | None) -> None:
        self.refused[(ref.name, ref.version)] = str(err)
        self._metrics.reloads.labels(alias, "refused").inc()
        self.failures.append({"alias": alias, "version": ref.version, "error": f"{type(err).__name__}: {err}",
                              "at": datetime.now(UTC).isoformat(), "retry_in_seconds": None})
        log.error("REFUSED %s version %s for alias %s (version %s keeps serving; not retried until POST "
                  "/admin/reload): %s", ref.name, ref.version, alias, current.ref.version if current else None, err)
        if self._on_refused is not None:
            try:
                self._on_refused(alias, ref, err, current.ref if current else None)
            except Exception:  # noqa: BLE001 - the alert must never stop the poller
                log.exception("the refusal alert of %s version %s failed", ref.name, ref.version)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
