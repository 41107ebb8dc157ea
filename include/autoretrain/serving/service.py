"""Score a request: route it, run the model, queue the log row, count it; the shadow model after."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from time import perf_counter
from typing import TypedDict

from autoretrain.config import Settings
from autoretrain.data.pii import text_at_rest
from autoretrain.errors import TransientError
from autoretrain.serving.log_writer import PredictionLogWriter
from autoretrain.serving.manager import LoadedModel, ModelManager, ServingState
from autoretrain.serving.routing import CHAMPION, choose
from autoretrain.serving.telemetry import ServingMetrics

ShadowJob = tuple[LoadedModel, str, str, str | None, str, datetime]  # model, variant, text, user, id, time


class TopFeature(TypedDict):
    term: str
    weight: float


class Answer(TypedDict):
    """The answer to one message (:class:`autoretrain.serving.schemas.PredictResponse`)."""

    label: str
    spam_probability: float
    model_version: str
    variant: str
    request_id: str
    timestamp: str  # ISO 8601, UTC
    top_features: list[TopFeature]


class NotReady(TransientError, RuntimeError):
    """No champion is loaded yet (the service just started, or the registry has none)."""


class PredictionService:
    """The request path: no I/O, no pandas; a log row goes to the writer's queue."""

    def __init__(self, settings: Settings, *, manager: ModelManager, writer: PredictionLogWriter,
                 metrics: ServingMetrics) -> None:
        self.manager, self.writer, self.metrics = manager, writer, metrics
        self.model_name, self._salt, self._top_k = settings.model_name, settings.routing_salt, settings.top_features
        self._threshold = settings.decision_threshold
        self._positive, self._negative = settings.positive_label, settings.negative_label
        self._at_rest = text_at_rest(settings.redact_at_rest)  # the text the log stores (issue 12)

    def not_ready_reason(self, state: ServingState) -> str:
        if state.checked_at is None:
            return f"loading models:/{self.model_name}@champion (first poll of the registry not finished)"
        failures = [f for f in self.manager.failures if f["alias"] == CHAMPION]
        if failures:
            last = failures[-1]
            return f"champion version {last['version']} could not be loaded: {last['error']}"
        return f"the registry has no models:/{self.model_name}@champion yet; train and promote a model first"

    def predict(self, text: str, user_id: str | None, *, started: float | None = None,
                state: ServingState | None = None) -> tuple[Answer, ShadowJob | None]:
        """The answer to one message, and the shadow scoring to run after answering (if any)."""
        started = perf_counter() if started is None else started
        state = self.manager.state if state is None else state
        champion = state.champion
        if champion is None:
            raise NotReady(self.not_ready_reason(state))
        request_id = str(uuid.uuid4())
        variant = choose(state.routing, request_id if user_id is None else user_id, self._salt)
        model = state.models.get(variant)
        if model is None:  # e.g. canary without a challenger alias: the champion answers
            self.metrics.fallbacks.labels(variant).inc()
            model, variant = champion, CHAMPION
        proba, top = model.predictor.score(text, self._top_k)
        now = datetime.now(UTC)
        label = self._log(model, variant, "served", text, user_id, request_id, now, proba, started)
        answer: Answer = {"label": label, "spam_probability": proba, "model_version": model.ref.version,
                          "variant": variant, "request_id": request_id,
                          "timestamp": now.isoformat(timespec="milliseconds"),
                          "top_features": [{"term": term, "weight": weight} for term, weight in top]}
        alias = state.routing.shadow
        shadow = state.models.get(alias) if alias else None
        if alias is None or shadow is None:
            return answer, None
        return answer, (shadow, alias, text, user_id, request_id, now)

    def shadow(self, job: ShadowJob) -> None:
        """Score with the shadow model and log it (never returned to the client)."""
        model, variant, text, user_id, request_id, at = job
        started = perf_counter()
        proba, _ = model.predictor.score(text, 0)
        self._log(model, variant, "shadow", text, user_id, request_id, at, proba, started)

    def run_shadows(self, jobs: list[ShadowJob]) -> None:
        for job in jobs:
            self.shadow(job)

    def _log(self, model: LoadedModel, variant: str, role: str, text: str, user_id: str | None,
             request_id: str, at: datetime, proba: float, started: float) -> str:
        label = self._positive if proba >= self._threshold else self._negative
        self.writer.put({"request_id": request_id, "created_at": at, "model_name": model.ref.name,
                         "model_version": model.ref.version, "variant": variant, "role": role,
                         "user_id": user_id, "text": self._at_rest(text), "probability": proba, "label": label,
                         "latency_ms": (perf_counter() - started) * 1000.0})
        self.metrics.predicted(label, model.ref.version, variant, role)
        return label
