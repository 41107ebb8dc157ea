"""Prometheus metrics of the prediction service, and the ASGI middleware that times every request.

Each app has its own registry (several apps can live in one test process). With one uvicorn worker
per process, every process exposes its own ``/metrics``; scrape each of them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from time import perf_counter
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from autoretrain.errors import AutoRetrainError
from autoretrain.serving.log_writer import WriterStats

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class _LogCollector(Collector):
    """Reads the prediction-log writer's counters at scrape time."""

    def __init__(self, stats: Callable[[], WriterStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterable[Any]:
        s = self._stats()
        yield GaugeMetricFamily("autoretrain_prediction_log_queue_depth",
                                "Prediction-log rows waiting in the spool to be written (the backlog)", value=s.depth)
        yield CounterMetricFamily("autoretrain_prediction_log_written", "Prediction-log rows written",
                                  value=s.written)
        yield CounterMetricFamily("autoretrain_prediction_log_dropped",
                                  "Prediction-log rows dropped (spool full or unwritable, writer stopped), "
                                  "plus those the database refused for good", value=s.dropped)
        yield CounterMetricFamily("autoretrain_prediction_log_failed_batches",
                                  "Prediction-log batch inserts that failed and were retried",
                                  value=s.failed_batches)
        yield GaugeMetricFamily("autoretrain_prediction_log_spool_bytes",
                                "Bytes of the local prediction-log spool (rows not yet deleted)", value=s.spool_bytes)
        yield CounterMetricFamily("autoretrain_prediction_log_rejected",
                                  "Prediction-log rows the database refused for good (kept in spool/rejected.jsonl)",
                                  value=s.lost)
        yield CounterMetricFamily("autoretrain_prediction_log_replayed",
                                  "Prediction-log rows found in the spool at start (left by a stopped or killed "
                                  "process)", value=s.adopted)
        yield GaugeMetricFamily("autoretrain_prediction_log_failing_seconds",
                                "For how long prediction-log inserts have been failing (0: the last one committed)",
                                value=s.failing_seconds)


class ServingMetrics:
    """The service's metrics, in a registry of their own."""

    def __init__(self, log_stats: Callable[[], WriterStats]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram("autoretrain_request_duration_seconds", "Request latency by endpoint",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("autoretrain_request_errors", "Responses with status >= 400",
                              ["endpoint", "status"], registry=r)
        self.predictions = Counter("autoretrain_predictions", "Predictions by label, model version, "
                                   "variant and role (served or shadow)",
                                   ["label", "version", "variant", "role"], registry=r)
        self.reloads = Counter("autoretrain_model_reloads", "Model loads by alias and outcome "
                               "(success, failure: the previous model kept serving)", ["alias", "outcome"],
                               registry=r)
        self.poll_errors = Counter("autoretrain_registry_poll_errors",
                                   "Polls of the registry aliases or routing override that failed", registry=r)
        self.fallbacks = Counter("autoretrain_routing_fallbacks", "Requests routed to a variant that is "
                                 "not loaded, answered by the champion", ["wanted"], registry=r)
        self.model_info = Gauge("autoretrain_model_info", "1 for each alias -> version being served",
                                ["alias", "version"], registry=r)
        r.register(_LogCollector(log_stats))
        self._children: dict[tuple[str, ...], Any] = {}

    def predicted(self, label: str, version: str, variant: str, role: str) -> None:
        key = (label, version, variant, role)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.predictions.labels(*key)
        child.inc()

    def set_models(self, versions: dict[str, str]) -> None:
        self.model_info.clear()
        for alias, version in versions.items():
            self.model_info.labels(alias, version).set(1)


class BodyTooLarge(AutoRetrainError):
    """Raised from ``receive`` when a streamed body (no Content-Length) passes the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over {limit} bytes; send smaller messages or fewer per batch")


class TelemetryMiddleware:
    """Times each HTTP request, counts errors, and answers 413 to bodies over ``max_body_bytes``."""

    def __init__(self, app: ASGIApp, *, metrics: ServingMetrics, endpoints: Iterable[str],
                 max_body_bytes: int) -> None:
        self.app, self.metrics, self.max_body = app, metrics, max_body_bytes
        self.endpoints = frozenset(endpoints)
        self._latency = {e: metrics.latency.labels(e) for e in [*self.endpoints, "other"]}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        endpoint = scope["path"] if scope["path"] in self.endpoints else "other"
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        received = 0

        async def counted_receive() -> Message:  # bodies without Content-Length are bounded too
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise BodyTooLarge(self.max_body)
            return message

        try:
            if self._too_large(scope):
                await _reply(send_status, 413, str(BodyTooLarge(self.max_body)))
            else:
                await self.app(scope, counted_receive, send_status)
        except BodyTooLarge as err:  # raised through the fast lane (FastAPI routes: see app.py)
            if status != 500:  # a response has started; nothing more can be said
                raise
            await _reply(send_status, 413, str(err))
        finally:
            self._latency[endpoint].observe(perf_counter() - started)
            if status >= 400:
                self.metrics.errors.labels(endpoint, str(status)).inc()

    def _too_large(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"content-length":
                return not value.isdigit() or int(value) > self.max_body
        return False


async def _reply(send: Callable[[Message], Awaitable[None]], status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
