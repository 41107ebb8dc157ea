"""Nothing runs on a database that is behind: the service does not start, DAG-task code and the CLI refuse.

Each refusal is :class:`SchemaOutOfDate` with the same one line, naming the database and what to run.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from autoretrain.alerts.store import AlertStore
from autoretrain.audit import aliases
from autoretrain.config import Settings
from autoretrain.db import migrate
from autoretrain.monitoring import windows
from autoretrain.serving.app import create_app
from autoretrain.training.steps import labelled_feedback
from tests.conftest import free_port

BIN = Path(sys.executable).parent
TOKEN = secrets.token_urlsafe(32)  # a weak token would stop the start before the schema check
T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def behind(tmp_path) -> Settings:
    """Settings on a database migrated to 0001 only (the code needs 0005)."""
    url = f"sqlite:///{tmp_path / 'autoretrain.db'}"
    migrate.upgrade(url, "0001")
    return Settings(database_url=url, model_name="sms", api_token=TOKEN, state_dir=str(tmp_path / "state"))


def line(settings: Settings, revision: str = "0001") -> str:
    return (f"database {settings.database_url} is at revision {revision}, this code needs 0005: "
            "run `autoretrain db upgrade`")


def test_the_service_does_not_start_on_a_database_behind(behind) -> None:
    started: list[str] = []
    app = create_app(behind, lookup=lambda alias: started.append(alias), loader=lambda ref: None)
    with pytest.raises(migrate.SchemaOutOfDate) as refused, TestClient(app):
        pytest.fail("the app served")
    assert str(refused.value) == line(behind)
    assert started == []  # the model manager never polled the registry
    assert not app.state.service.writer.stats().accepted


def test_python_m_autoretrain_serving_exits_with_the_one_line(behind, tmp_path) -> None:
    port = free_port()
    env = {**os.environ, "AUTORETRAIN_DATABASE_URL": behind.database_url, "AUTORETRAIN_API_TOKEN": TOKEN,
           "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}  # never reached: the check comes first
    done = subprocess.run([sys.executable, "-m", "autoretrain.serving", "--host", "127.0.0.1", "--port", str(port)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [text for text in done.stderr.splitlines() if " ERROR " in text]
    assert [text.split(" ERROR ", 1)[1] for text in errors] == [f"autoretrain.serving: {line(behind)}"]
    assert "Traceback" not in done.stderr and "Uvicorn running" not in done.stderr
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # the port was never bound


@pytest.mark.parametrize("step", [
    pytest.param(lambda s: windows.read_decision(s, start=T0, end=T0), id="monitoring.read_decision"),
    pytest.param(lambda s: windows.record_action(s, start=T0, end=T0, action="no action"), id="monitoring.record"),
    pytest.param(lambda s: labelled_feedback(s, until=T0), id="training.labelled_feedback"),
    pytest.param(lambda s: aliases.engine_for(s).__enter__(), id="audit.engine_for"),
    pytest.param(lambda s: AlertStore(s.database_url), id="alerts.AlertStore"),
])
def test_dag_task_code_refuses_a_database_behind(behind, step) -> None:
    with pytest.raises(migrate.SchemaOutOfDate) as refused:
        step(behind)
    assert str(refused.value) == line(behind)


def test_the_same_code_runs_once_the_database_is_upgraded(behind) -> None:
    migrate.upgrade(behind.database_url)
    assert windows.read_decision(behind, start=T0, end=T0) is None
    assert labelled_feedback(behind, until=T0).empty
    with AlertStore(behind.database_url) as store:
        assert store.records() == []


def test_the_cli_refuses_with_the_one_line(behind, tmp_path) -> None:
    env = {**os.environ, "AUTORETRAIN_DATABASE_URL": behind.database_url}
    done = subprocess.run([str(BIN / "autoretrain"), "audit"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert [text.split(" ERROR ", 1)[1] for text in done.stderr.splitlines() if " ERROR " in text] == [
        f"autoretrain: {line(behind)}"]
    assert "Traceback" not in done.stderr
