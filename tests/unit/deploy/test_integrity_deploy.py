"""Static checks of model integrity in the deployments (ADR 0007): no Docker, no Kubernetes needed.

Every process of the project image refuses pickle (``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``),
MLflow runs its basic-auth app and every client signs in, and the HMAC key reaches the processes
that register or load models but not MLflow.
"""

from __future__ import annotations

import configparser
import re
from typing import Any

import pytest
import yaml

from tests.unit.deploy.test_compose import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    HELM_VALUES,
    PROJECT_IMAGE,
    ROOT,
    interpolate,
    read_env_file,
)

FLAG = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def stack(raw: dict[str, Any]) -> dict[str, Any]:
    # every secret a value of its own, so a check can tell which one reached a service
    env = {k: f"{k.lower()}-secret" if v == "change-me" else v for k, v in read_env_file(ENV_EXAMPLE).items()}
    return interpolate(raw, env)


def _env(stack: dict[str, Any], name: str) -> dict[str, str]:
    return {k: str(v) for k, v in (stack["services"][name].get("environment") or {}).items()}


def test_every_process_of_the_project_image_refuses_pickle(raw: dict[str, Any], stack: dict[str, Any]) -> None:
    services = [name for name, service in raw["services"].items() if service.get("image") == PROJECT_IMAGE]
    assert {"mlflow", "prediction", "airflow-worker", "airflow-scheduler"} <= set(services)
    for name in services:
        assert _env(stack, name).get(FLAG) == "false", f"{name} may unpickle a model"
    assert re.search(rf"^\s+{FLAG}=false \\$", (ROOT / "Dockerfile").read_text(encoding="utf-8"), re.MULTILINE)
    assert re.search(rf"^export {FLAG} := false$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    assert f'"{FLAG}": "false"' in (ROOT / "tools" / "stack.py").read_text(encoding="utf-8")
    helm = yaml.safe_load(HELM_VALUES.read_text(encoding="utf-8"))
    assert {"name": FLAG, "value": "false"} in helm["env"]


def test_mlflow_runs_basic_auth_and_every_client_signs_in(stack: dict[str, Any]) -> None:
    mlflow = stack["services"]["mlflow"]
    command = mlflow["command"]
    assert command[command.index("--app-name") + 1] == "basic-auth"
    env = _env(stack, "mlflow")
    ini = env["MLFLOW_AUTH_CONFIG_PATH"]
    assert ini.startswith("/opt/autoretrain/")
    config = configparser.ConfigParser()
    config.read(ROOT / ini.removeprefix("/opt/autoretrain/"))
    assert config["mlflow"]["default_permission"] == "NO_PERMISSIONS"
    assert "admin_password" not in config["mlflow"]  # from the environment (.env), never from the file
    assert config["mlflow"]["database_uri"].startswith("sqlite:////opt/airflow/mlflow-auth/")
    assert "mlflow-auth:/opt/airflow/mlflow-auth" in mlflow["volumes"]
    admin = (env["MLFLOW_AUTH_ADMIN_USERNAME"], env["MLFLOW_AUTH_ADMIN_PASSWORD"])
    for name in ("prediction", "airflow-worker", "airflow-scheduler", "airflow-apiserver"):
        client = _env(stack, name)
        assert (client["MLFLOW_TRACKING_USERNAME"], client["MLFLOW_TRACKING_PASSWORD"]) == admin, name
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"]


def test_the_integrity_key_reaches_autoretrain_but_not_mlflow(stack: dict[str, Any]) -> None:
    key = _env(stack, "prediction")["AUTORETRAIN_INTEGRITY_KEY"]
    assert key == "autoretrain_integrity_key-secret"
    assert _env(stack, "airflow-worker")["AUTORETRAIN_INTEGRITY_KEY"] == key
    assert key not in _env(stack, "mlflow").values()
