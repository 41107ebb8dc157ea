"""Shutdown does not wait for a poll stuck in MLflow's retries (MLflow down at SIGTERM)."""

from __future__ import annotations

import threading
import time

from autoretrain.registry import ModelRef
from autoretrain.serving.log_writer import WriterStats
from autoretrain.serving.manager import ModelManager
from autoretrain.serving.routing import RoutingConfig
from autoretrain.serving.telemetry import ServingMetrics


def test_stop_returns_while_a_poll_hangs_in_the_registry() -> None:
    entered, release = threading.Event(), threading.Event()

    def lookup(alias: str) -> ModelRef | None:  # as MLflow's client retrying a dead server for minutes
        entered.set()
        release.wait(120)
        return None

    metrics = ServingMetrics(lambda: WriterStats(0, 0, 0, 0, 0, 0))
    manager = ModelManager(lookup=lookup, loader=lambda ref: None, routing=RoutingConfig, metrics=metrics,
                           positive_label="spam", interval=0.1)
    manager.start()
    try:
        assert entered.wait(10), "the poller never asked the registry"
        began = time.monotonic()
        manager.stop(timeout=1.0)
        assert time.monotonic() - began < 3.0
    finally:
        release.set()
