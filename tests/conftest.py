"""Shared fixtures: unique Postgres databases, a real ``mlflow server``, the Airflow metadata DB.

Airflow reads its configuration when first imported, so the environment for this test session
(its own AIRFLOW_HOME and metadata database on the local Postgres) is set here, at import time.
Every database this session creates has a unique name and is dropped at the end.

Nothing creates AutoRetrain's tables at run time: a test that needs them gets a database through
:func:`migrated` (``migrated(postgres_db("x"))``, ``migrated(f"sqlite:///{tmp_path / 'x.db'}")``),
and the session's default database (SQLite under AUTORETRAIN_STATE_DIR) is upgraded once, as
``make setup`` does for a checkout.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",  # as in every deployed process (ADR 0007)
    # mlflow server otherwise starts a job runner and ~8 huey consumers (for its GenAI jobs), which
    # AutoRetrain never uses: on 2 cores they slowed every test that starts a server
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "GIT_PYTHON_REFRESH": "quiet",
    # no Deadline Alerts in DAGs parsed by this process: dag.test() (Airflow 3.3.2) fails a run that
    # succeeds when its DAG has one (it looks the SDK's DeadlineAlert objects up as database ids);
    # under the real scheduler they work, and test_deadline_alerts runs them there
    "AUTORETRAIN_RUN_DEADLINES": "",
})
os.environ.pop("MLFLOW_TRACKING_URI", None)
(SESSION_TMP / "airflow").mkdir(parents=True, exist_ok=True)


# --------------------------------------------------------------------- AutoRetrain's database
def migrated(url: str) -> str:
    """``url`` after ``autoretrain db upgrade`` (to head): the tables exist, and the check passes."""
    from autoretrain.db import migrate

    migrate.upgrade(url)
    return url


def share_model_records(url: str) -> str:
    """Copy the ``model_artifacts`` rows of the session's database (where the tests register) into ``url``.

    The prediction service reads a version's record from its own ``database_url``; in a deployment that
    is the database training wrote to. A test that gives a service its own database shares the records.
    """
    import sqlalchemy as sa

    from autoretrain.config import load_settings
    from autoretrain.db.engine import database_url, make_engine
    from autoretrain.db.schema import model_artifacts

    source, target = make_engine(database_url(load_settings())), make_engine(url)
    try:
        with source.connect() as conn:
            rows = [dict(r) for r in conn.execute(sa.select(model_artifacts)).mappings()]
        with target.begin() as conn:
            known = {(r.model_name, r.version) for r in conn.execute(
                sa.select(model_artifacts.c.model_name, model_artifacts.c.version))}
            missing = [r for r in rows if (r["model_name"], r["version"]) not in known]
            if missing:
                conn.execute(model_artifacts.insert(), missing)
    finally:
        source.dispose()
        target.dispose()
    return url


@pytest.fixture(scope="session", autouse=True)
def state_database() -> str:
    """The session's default database (SQLite under AUTORETRAIN_STATE_DIR), migrated like a fresh checkout."""
    from autoretrain.config import load_settings
    from autoretrain.db.engine import database_url

    url = database_url(load_settings())
    assert str(SESSION_TMP) in url, f"the default database {url} is not this session's"
    return migrated(url)


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


def eventually(check: Callable[[], Any], *, what: str, timeout: float = 30.0, interval: float = 0.2) -> Any:
    """The first truthy ``check()``, polled every ``interval`` s; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(interval)
    return value


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


@contextlib.contextmanager
def serving_process(cmd: list[str], health_url: str, log_path: Path, *, timeout: float = 90.0,
                    env: Mapping[str, str] | None = None) -> Generator[None, None, None]:
    """Run ``cmd`` (output to ``log_path``) until the block ends; wait for ``health_url`` first.

    ``env`` adds to (or overrides) this process's environment for ``cmd`` only.
    """
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                                env={**os.environ, **env} if env else None)
    try:
        wait_http(health_url, timeout=timeout, proc=proc)
        yield
    except Exception:
        sys.stderr.write(log_path.read_text()[-3000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


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
    with serving_process(cmd, f"http://127.0.0.1:{port}/health", log_path):
        yield MlflowServer(uri=f"http://127.0.0.1:{port}", artifacts=artifacts, log=log_path)


# -------------------------------------------------------------------------------- Airflow DB
@pytest.fixture(scope="session")
def airflow_db() -> str:
    """The Airflow metadata tables, created in this session's own Postgres database."""
    create_database(AIRFLOW_DB)
    from airflow.utils import db

    db.initdb()
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def dag_from_bag(dag_id: str):
    """The DAG ``dag_id`` parsed from the project's dags/ folder (no import errors allowed)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags"))
    assert not bag.import_errors
    return bag.dags[dag_id]


def task_states(run) -> dict[str, str]:
    """task id (``task[i]`` for mapped ones) -> state, for one DAG run."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == run.dag_id,
                                                 TaskInstance.run_id == run.run_id).all()
        return {ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in tis}


def retrain_conf_triggered_by(monitoring_run) -> dict:
    """The conf of the one ``retrain_compare_promote`` run this monitoring run triggered.

    Other test modules run retrain_compare_promote in the same Airflow DB: the conf names its trigger.
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == "retrain_compare_promote").all()
        mine = [r for r in runs if (r.conf or {}).get("monitoring_run_id") == monitoring_run.run_id]
        assert len(mine) == 1, [(r.run_id, r.conf) for r in runs]
        return dict(mine[0].conf)


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
    with serving_process(cmd, f"http://127.0.0.1:{port}/moto-api/", log_path, timeout=60):
        yield S3Server(endpoint=f"http://127.0.0.1:{port}", log=log_path)
