"""The prediction log under faults, for real: uvicorn service processes, Postgres, SIGKILL and SIGTERM.

Each test answers requests, breaks something (the process killed at full load, the database made
read-only as in a failover, the tables dropped and recreated empty, SIGTERM while the database
refuses writes), repairs it, and checks that every request_id the service answered is in the
database: 0 lost (issue 12, finding 5).
"""

from __future__ import annotations

import functools
import re
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from autoretrain.db.engine import make_engine
from autoretrain.db.schema import predictions
from tests.conftest import ROOT, SESSION_TMP, _admin_execute, eventually, migrated
from tests.integration import test_serving
from tests.integration.test_serving import Service

_eventually = functools.partial(eventually, interval=0.1)  # this module's polling

pytestmark = pytest.mark.integration
models, start_service = test_serving.models, test_serving.start_service  # its fixtures, shared here


def _grace_seconds() -> int:
    """The prediction service's stop_grace_period in docker-compose.yaml (what SIGKILL waits for)."""
    compose = (ROOT / "docker-compose.yaml").read_text()
    block = compose[compose.index("\n  prediction:"):]
    seconds = re.search(r"stop_grace_period: (\d+)s", block)
    assert seconds, "docker-compose.yaml: the prediction service has no stop_grace_period in seconds"
    return int(seconds.group(1))


def _logged_ids(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.select(predictions.c.request_id)).scalars())
    finally:
        engine.dispose()


def _wait_logged(url: str, ids: set[str], *, timeout: float = 60.0) -> set[str]:
    """The ids of ``ids`` still missing from the database once they all land or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        missing = ids - _logged_ids(url)
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.25)


def _database_name(url: str) -> str:
    name = sa.make_url(url).database
    assert name
    return name


def _read_only(url: str, on: bool) -> None:
    """As in a failover to a replica: new transactions are read-only; existing sessions are cut."""
    name = _database_name(url)
    _admin_execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {"on" if on else "off"}')
    _admin_execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
                   "AND pid <> pg_backend_pid()")


def _predict(service: Service, count: int, prefix: str) -> list[str]:
    ids = []
    for i in range(count):
        response = service.post("/predict", {"message": f"{prefix} message {i}", "user_id": f"u{i}"})
        assert response.status_code == 200, response.text
        ids.append(response.json()["request_id"])
    return ids


@pytest.fixture
def state_dir() -> Path:
    path = SESSION_TMP / f"log-faults-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    return path


# ------------------------------------------------------------------------- (a) SIGKILL at full load
def test_sigkill_at_full_load_loses_no_answered_row(models, start_service, postgres_db, state_dir):
    url = migrated(postgres_db("log_sigkill"))
    env = {"model_name": models.name, "database_url": url, "routing_mode": "full", "state_dir": state_dir}
    (service,) = start_service(**env)
    answered: list[str] = []
    lock, killed = threading.Lock(), threading.Event()

    def client(worker: int) -> None:
        with httpx.Client(base_url=service.url, timeout=10) as http:
            for i in range(2000 // 16):
                try:
                    response = http.post("/predict", json={"message": f"load {worker}-{i}", "user_id": f"u{i}"})
                except httpx.HTTPError:
                    assert killed.is_set()
                    return
                assert response.status_code == 200
                with lock:
                    answered.append(response.json()["request_id"])
                    if len(answered) == 1500:  # killed while ~500 more are being sent
                        service.proc.send_signal(signal.SIGKILL)
                        killed.set()

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(client, range(16)))
    assert service.proc.wait(timeout=10) == -signal.SIGKILL
    before_restart = len(set(answered) & _logged_ids(url))
    (again,) = start_service(**env)
    missing = _wait_logged(url, set(answered))
    replayed = again.metric("autoretrain_prediction_log_replayed_total")
    print(f"\nSIGKILL at full load: {len(answered)} answered, {before_restart} in the database at the kill, "
          f"{replayed or 0:.0f} spooled rows replayed at restart, {len(missing)} lost")
    assert len(answered) >= 1500 and missing == set()
    assert replayed is not None and replayed >= len(answered) - before_restart
    assert again.metric("autoretrain_prediction_log_dropped_total") == 0.0
    engine = make_engine(url)
    with engine.connect() as conn:  # replayed once: no request logged twice
        duplicates = conn.execute(sa.text("SELECT count(*) FROM (SELECT request_id FROM prediction_log "
                                          "GROUP BY request_id, role HAVING count(*) > 1) d")).scalar_one()
    engine.dispose()
    assert duplicates == 0


# ------------------------------------------------------------------------ (b) read-only database
def test_read_only_database_keeps_rows_in_the_spool_and_ready_degraded(models, start_service, postgres_db,
                                                                       state_dir):
    url = migrated(postgres_db("log_readonly"))
    (service,) = start_service(model_name=models.name, database_url=url, routing_mode="full", state_dir=state_dir)
    before = _predict(service, 50, "before")
    assert _wait_logged(url, set(before)) == set()
    _read_only(url, True)
    try:
        during = _predict(service, 300, "during")
        ready = _eventually(lambda: (r := service.get("/ready")).json().get("reasons") and r, what="degraded")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert "read-only transaction" in ready.json()["reasons"][0]
        assert service.metric("autoretrain_prediction_log_queue_depth") == 300.0
        assert service.metric("autoretrain_prediction_log_spool_bytes") > 0
        assert service.metric("autoretrain_prediction_log_failed_batches_total") >= 1
    finally:
        _read_only(url, False)
    missing = _wait_logged(url, set(before) | set(during))
    print(f"\nread-only database: {len(during)} answered meanwhile, {len(missing)} lost")
    assert missing == set()
    _eventually(lambda: service.get("/ready").json()["status"] == "ready", what="ready again")
    assert service.metric("autoretrain_prediction_log_dropped_total") == 0.0


# -------------------------------------------------------------------- (c) tables recreated empty
def test_rows_land_after_the_tables_are_recreated_empty(models, start_service, postgres_db, state_dir):
    url = migrated(postgres_db("log_recreated"))
    (service,) = start_service(model_name=models.name, database_url=url, routing_mode="full", state_dir=state_dir)
    engine = make_engine(url)
    with engine.begin() as conn:  # a database restored empty: no tables at all
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    during = _predict(service, 200, "gap")
    ready = _eventually(lambda: (r := service.get("/ready")).json().get("reasons") and r, what="degraded")
    assert 'relation "prediction_log" does not exist' in ready.json()["reasons"][0]
    migrated(url)  # autoretrain db upgrade on the empty database
    missing = _wait_logged(url, set(during))
    print(f"\ntables recreated: {len(during)} answered while missing, {len(missing)} lost")
    assert missing == set()
    assert service.metric("autoretrain_prediction_log_dropped_total") == 0.0


# ------------------------------------------------------------------------- (d) SIGTERM in an outage
def test_sigterm_during_an_outage_exits_in_the_grace_period_and_replays_at_start(models, start_service,
                                                                                 postgres_db, state_dir):
    url = migrated(postgres_db("log_sigterm"))
    env = {"model_name": models.name, "database_url": url, "routing_mode": "full", "state_dir": state_dir}
    (service,) = start_service(**env)
    _read_only(url, True)
    try:
        during = _predict(service, 200, "outage")
        _eventually(lambda: service.metric("autoretrain_prediction_log_failed_batches_total"), what="a failed insert")
        started = time.monotonic()
        service.proc.send_signal(signal.SIGTERM)
        assert service.proc.wait(timeout=_grace_seconds()) == -signal.SIGTERM
        took = time.monotonic() - started
        assert _logged_ids(url) == set()
        assert "200 left in the spool" in service.log.read_text()
    finally:
        _read_only(url, False)
    (again,) = start_service(**env)
    missing = _wait_logged(url, set(during))
    print(f"\nSIGTERM in an outage: exited after {took:.1f}s (grace {_grace_seconds()}s), "
          f"{again.metric('autoretrain_prediction_log_replayed_total'):.0f} replayed at start, {len(missing)} lost")
    assert missing == set() and took < _grace_seconds()
    assert again.metric("autoretrain_prediction_log_replayed_total") == 200.0
