"""`make up` / `make down` / `make status`: the AutoRetrain stack as native processes, on embedded defaults.

    python tools/stack.py up       start what is not running, wait until healthy, print the URLs
    python tools/stack.py down     stop everything (Airflow task processes included)
    python tools/stack.py status   what runs, and where

The stack: an MLflow server (SQLite store, local artifacts), Airflow 3's components on the
project's SQLite metadata DB with the LocalExecutor (api-server, scheduler, dag-processor,
triggerer) and the prediction service on ``models:/<model_name>@champion``. Every process gets the
same environment (tracking URI, AutoRetrain's database, the service's tokens), so the DAGs' tasks and the
service share one prediction log; ``up`` migrates that database (``autoretrain db upgrade``) before
starting anything. State, logs and pid files live under ``.autoretrain/stack/``
(git-ignored); ``make demo`` uses the same stack and runs the closed loop on it.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from autoretrain.config import Settings, load_settings
from autoretrain.db.engine import database_url
from devstack import localstack
from devstack.localstack import Service

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".autoretrain" / "stack"
BIN = Path(sys.executable).parent
HOST = os.environ.get("AUTORETRAIN_STACK_HOST", "127.0.0.1")  # every listening socket of the stack
AIRFLOW_PORT = int(os.environ.get("AIRFLOW__API__PORT", "8080"))
MLFLOW_PORT = 5000
SERVING_PORT = 8000
AIRFLOW_URL = f"http://{HOST}:{AIRFLOW_PORT}"
MODEL_OPS_URL = f"{AIRFLOW_URL}/plugin/model-ops"  # the plugin's page (plugins/modelops.py) inside Airflow's UI
MLFLOW_URL = f"http://{HOST}:{MLFLOW_PORT}"
SERVING_URL = f"http://{HOST}:{SERVING_PORT}"


def embedded_settings() -> Settings:
    """The settings of this checkout without any AUTORETRAIN_* or MLFLOW_* variable: what the CLI uses by default."""
    return load_settings(environ={k: v for k, v in os.environ.items() if k == "AUTORETRAIN_CONFIG"})


#: the checkout's embedded stores: MLflow's SQLite store (+ local artifacts) and AutoRetrain's tables
STORES = embedded_settings().state_path
MLFLOW_BACKEND = f"sqlite:///{STORES / 'mlflow.db'}"
MLFLOW_ARTIFACTS = STORES / "mlartifacts"
DATABASE_URL = database_url(embedded_settings())  # prediction log, feedback, drift windows, alerts, audit


def token(role: str) -> str:
    """The service's bearer token of ``role`` (feedback: POST /feedback; admin: /admin/*, /drift/calculate),
    generated once per stack folder (<role>_token, mode 0600)."""
    path = STATE / f"{role}_token"
    if not path.exists():
        STATE.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def airflow_password() -> str:
    """The admin password the simple auth manager generated (the file appears when the api-server starts)."""
    path = Path(os.environ["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    return json.loads(path.read_text())["admin"]


def stack_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every process of the stack shares."""
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": MLFLOW_URL,
        "AUTORETRAIN_DATABASE_URL": DATABASE_URL,
        "AUTORETRAIN_FEEDBACK_TOKEN": token("feedback"),
        "AUTORETRAIN_ADMIN_TOKEN": token("admin"),
        "AUTORETRAIN_SERVING_HOST": HOST,
        "AUTORETRAIN_SERVING_PORT": str(SERVING_PORT),
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__BASE_URL": AIRFLOW_URL + "/",  # alert links name the address the UI listens on
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",  # MLflow's loaders never unpickle here (ADR 0007)
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no job runner + huey consumers: unused, costly on 2 cores
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }


def services() -> list[Service]:
    airflow = str(BIN / "airflow")
    # artifacts as plain local paths (not proxied): the CLI on the SQLite store reads them as the tasks do
    return [
        Service("mlflow", [str(BIN / "mlflow"), "server", "--backend-store-uri", MLFLOW_BACKEND,
                           "--default-artifact-root", str(MLFLOW_ARTIFACTS), "--host", HOST,
                           "--port", str(MLFLOW_PORT), "--workers", "1"], f"{MLFLOW_URL}/health"),
        Service("airflow-api-server", [airflow, "api-server", "--host", HOST, "--port", str(AIRFLOW_PORT)],
                f"{AIRFLOW_URL}/api/v2/monitor/health"),
        # no log servers (they bind every interface): the api-server reads the task logs from this disk
        Service("airflow-scheduler", [airflow, "scheduler", "--skip-serve-logs"]),
        Service("airflow-dag-processor", [airflow, "dag-processor"]),
        Service("airflow-triggerer", [airflow, "triggerer", "--skip-serve-logs"]),
        Service("prediction-service", [str(BIN / "autoretrain"), "serve"], f"{SERVING_URL}/health"),
    ]


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) == 0


def up(extra_env: Mapping[str, str] | None = None, progress: Callable[[str], None] = print) -> None:
    """Start the stack's missing processes and wait until every one is healthy."""
    MLFLOW_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    already = localstack.running(STATE)
    ports = {"mlflow": MLFLOW_PORT, "airflow-api-server": AIRFLOW_PORT, "prediction-service": SERVING_PORT}
    busy = [f"{port} ({name})" for name, port in ports.items() if name not in already and _port_taken(port)]
    if busy:
        raise localstack.StackError(f"port(s) {', '.join(busy)} already in use by another program; stop it first")
    migrate_database(progress)
    wanted = services()
    localstack.start(wanted, STATE, stack_env(extra_env))
    localstack.wait_healthy(wanted, STATE, timeout=240, progress=progress)


def migrate_database(progress: Callable[[str], None] = print) -> None:
    """``autoretrain db upgrade`` on the stack's database: the service and the tasks refuse one that is behind."""
    done = subprocess.run([str(BIN / "autoretrain"), "-q", "db", "--database-url", DATABASE_URL, "upgrade"],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise localstack.StackError(f"`autoretrain db upgrade` on {DATABASE_URL} failed (exit {done.returncode}): "
                                    f"{(done.stderr or done.stdout).strip()[-2000:]}")
    progress(f"database: {done.stdout.strip()}")


def down(progress: Callable[[str], None] = print) -> None:
    # MLflow last: the service and the tasks talk to it while they shut down (the service's alias
    # poller would sit in urllib3 retries against a stopped MLflow, delaying its exit by ~30 s)
    users = [s.name for s in services() if s.name != "mlflow"]
    stopped = localstack.stop(STATE, users) + localstack.stop(STATE, ["mlflow"])
    progress(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def urls() -> str:
    try:
        password = airflow_password()
    except (OSError, KeyError, ValueError):
        password = "(see simple_auth_manager_passwords.json.generated in AIRFLOW_HOME)"
    return "\n".join([
        f"  Airflow UI    {AIRFLOW_URL}   (user admin, password {password})",
        f"  Model Ops     {MODEL_OPS_URL}   (in the Airflow UI's nav: the model's whole life on one page)",
        f"  MLflow UI     {MLFLOW_URL}",
        f"  API docs      {SERVING_URL}/docs   (bearer tokens: {STATE / 'feedback_token'}, {STATE / 'admin_token'})",
        f"  logs          {STATE / 'logs'}",
    ])


def status() -> int:
    """Print what runs; a stopped stack is a normal state (exit 0), not an error."""
    alive = localstack.running(STATE)
    for service in services():
        pid = alive.get(service.name)
        print(f"  {service.name:22s} {'running, pid ' + str(pid) if pid else 'stopped'}")  # noqa: T201
    if not alive:
        print("the stack is stopped: `make up` starts it, `make demo` runs the closed loop on it")  # noqa: T201
    return 0


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    if command == "up":
        try:
            up()
        except localstack.StackError as err:
            print(f"error: {err}", file=sys.stderr)  # noqa: T201
            return 1
        print("AutoRetrain stack is up (stop it with `make down`):\n" + urls())  # noqa: T201
        return 0
    if command == "down":
        down()
        return 0
    if command == "status":
        return status()
    print(__doc__, file=sys.stderr)  # noqa: T201
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
