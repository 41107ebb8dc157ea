"""Shared fixtures: unique Postgres databases, a real ``mlflow server``, the Airflow metadata DB.

Airflow reads its configuration when first imported, so the environment for this test session
(its own AIRFLOW_HOME and metadata database on the local Postgres) is set here, at import time.
Every database this session creates has a unique name and is dropped at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PG_HOST = os.environ.get("AUTORETRAIN_TEST_PGHOST", "127.0.0.1")
PG_ADMIN_URL = f"postgresql://postgres@{PG_HOST}:5432/postgres"
SESSION_ID = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
SESSION_TMP = Path(tempfile.mkdtemp(prefix=f"autoretrain-test-{SESSION_ID}-"))
AIRFLOW_DB = f"autoretrain_test_af_{SESSION_ID}"

os.environ.update({
    "AUTORETRAIN_HOME": str(ROOT),
    "AIRFLOW_HOME": str(SESSION_TMP / "airflow"),
    "AIRFLOW_CONFIG": str(ROOT / "airflow.cfg"),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@{PG_HOST}:5432/{AIRFLOW_DB}",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AUTORETRAIN_STATE_DIR": str(SESSION_TMP / "state"),  # never write into the checkout's .autoretrain
    "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "GIT_PYTHON_REFRESH": "quiet",
})
os.environ.pop("MLFLOW_TRACKING_URI", None)
(SESSION_TMP / "airflow").mkdir(parents=True, exist_ok=True)


# ------------------------------------------------------------------------------------- Postgres
def _admin_execute(sql: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(sql))
    finally:
        engine.dispose()


_created_dbs: list[str] = []


def create_database(name: str) -> str:
    """Create database ``name`` on the local Postgres; it is dropped when the session ends."""
    _admin_execute(f'CREATE DATABASE "{name}"')
    _created_dbs.append(name)
    return f"postgresql://postgres@{PG_HOST}:5432/{name}"


@pytest.fixture(scope="session")
def postgres_db() -> Callable[[str], str]:
    """Factory: ``postgres_db("purpose")`` -> URL of a new, empty, uniquely named database."""
    return lambda purpose: create_database(f"autoretrain_test_{purpose}_{SESSION_ID}_{uuid.uuid4().hex[:4]}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if "airflow.settings" in sys.modules:  # close Airflow's pool before its database is dropped
        sys.modules["airflow.settings"].dispose_orm()
    for name in _created_dbs:
        try:
            _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as err:  # noqa: BLE001 - cleanup must try every database
            sys.stderr.write(f"could not drop test database {name}: {err}\n")
    shutil.rmtree(SESSION_TMP, ignore_errors=True)


# -------------------------------------------------------------------------------- MLflow server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, *, timeout: float = 90.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@dataclass
class MlflowServer:
    uri: str
    artifacts: Path
    log: Path


@pytest.fixture(scope="session")
def mlflow_server(postgres_db: Callable[[str], str]) -> Iterator[MlflowServer]:
    """A real ``mlflow server`` on 127.0.0.1 with a Postgres backend store and local artifacts."""
    backend = postgres_db("mlflow")
    port = free_port()
    artifacts = SESSION_TMP / "mlartifacts"
    log_path = SESSION_TMP / "mlflow-server.log"
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", backend,
           "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1"]
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
        yield MlflowServer(uri=f"http://127.0.0.1:{port}", artifacts=artifacts, log=log_path)
    except Exception:
        sys.stderr.write(log_path.read_text()[-3000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


# -------------------------------------------------------------------------------- Airflow DB
@pytest.fixture(scope="session")
def airflow_db() -> str:
    """The Airflow metadata tables, created in this session's own Postgres database."""
    create_database(AIRFLOW_DB)
    from airflow.utils import db

    db.initdb()
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


@pytest.fixture
def model_name() -> str:
    """A registered-model name unique to the test, so tests never see each other's aliases."""
    return f"sms-spam-test-{uuid.uuid4().hex[:8]}"


# ----------------------------------------------------------------------------- S3 (moto server)
@dataclass
class S3Server:
    endpoint: str
    log: Path


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    """A moto S3 server process on 127.0.0.1 (real S3 HTTP protocol); use unique bucket names.

    Point boto3 at it with ``AWS_ENDPOINT_URL=<endpoint>`` and any ``AWS_ACCESS_KEY_ID``/secret.
    """
    port = free_port()
    log_path = SESSION_TMP / "moto-server.log"
    cmd = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/moto-api/", timeout=60, proc=proc)
        yield S3Server(endpoint=f"http://127.0.0.1:{port}", log=log_path)
    except Exception:
        sys.stderr.write(log_path.read_text()[-3000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
