"""The native stack (tools/stack.py): it runs on the stores the CLI reads by default, and only on loopback."""

from __future__ import annotations

import os

import pytest

import stack
from autoretrain.config import load_settings
from autoretrain.db.engine import database_url


def test_the_stack_runs_on_the_stores_the_cli_reads_without_variables(monkeypatch) -> None:
    """`autoretrain models` / `audit` as the README prints them must read what `make demo` wrote (issue 15)."""
    for name in [k for k in os.environ if k.startswith(("AUTORETRAIN_", "MLFLOW_"))]:
        monkeypatch.delenv(name)
    cli = load_settings()
    assert stack.MLFLOW_BACKEND == cli.resolved_tracking_uri()
    assert stack.DATABASE_URL == database_url(cli)
    mlflow = list(next(s for s in stack.services() if s.name == "mlflow").argv)
    assert mlflow[mlflow.index("--backend-store-uri") + 1] == stack.MLFLOW_BACKEND
    # artifacts as local paths, so the CLI on the SQLite store can load what the tasks logged
    assert "--artifacts-destination" not in mlflow
    assert mlflow[mlflow.index("--default-artifact-root") + 1] == str(stack.MLFLOW_ARTIFACTS)


def test_every_process_listens_on_loopback_only() -> None:
    commands = {s.name: list(s.argv) for s in stack.services()}
    assert commands["mlflow"][commands["mlflow"].index("--host") + 1] == "127.0.0.1"
    api = commands["airflow-api-server"]
    assert api[api.index("--host") + 1] == "127.0.0.1"
    for name in ("airflow-scheduler", "airflow-triggerer"):  # their log servers would bind every interface
        assert "--skip-serve-logs" in commands[name], name
    env = stack.stack_env()
    assert env["AUTORETRAIN_SERVING_HOST"] == "127.0.0.1" and env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:8080/"  # alert links name the address in use


def test_a_stopped_stack_is_not_an_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(stack, "STATE", tmp_path / "stack")
    assert stack.status() == 0
    out = capsys.readouterr().out
    assert "airflow-scheduler" in out and "stopped" in out and "make up" in out


@pytest.mark.parametrize("name", ["mlflow.db", "autoretrain.db"])
def test_the_stores_live_under_the_checkout_state_folder(name) -> None:
    assert str(stack.STORES / name) in (stack.MLFLOW_BACKEND + stack.DATABASE_URL)
