"""``autoretrain promote`` in approve mode: the shell compares only; the DAG's approval gate promotes."""

from __future__ import annotations

import logging

from autoretrain.cli.main import main
from autoretrain.errors import EXIT_INVALID


def test_promote_is_refused_in_approve_mode_before_anything_is_read(monkeypatch, caplog) -> None:
    monkeypatch.setenv("AUTORETRAIN_PROMOTION_MODE", "approve")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens: it must not be asked
    with caplog.at_level(logging.ERROR, logger="autoretrain"):
        assert main(["promote", "7", "--reason", "looks good"]) == EXIT_INVALID
    assert "promotion_mode='approve': a person approves every promotion" in caplog.text
    assert 'retrain_compare_promote DAG (conf {"version": "7"})' in caplog.text
