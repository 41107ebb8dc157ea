"""The prediction service for real: uvicorn processes over HTTP, a real mlflow server (Postgres store)
and the prediction log on Postgres.

Covers sticky routing across two processes, a live routing switch shared through the database, hot
reload on an alias move, a tampered artifact refused while the old model keeps serving, a graceful
stop that loses no prediction, and a schemathesis fuzz of the OpenAPI schema with no 5xx.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.sklearn
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.naive_bayes import ComplementNB

from autoretrain import registry, tracking
from autoretrain.config import Settings, load_settings
from autoretrain.data.sources import read_dataset
from autoretrain.db.engine import database_url, make_engine
from autoretrain.db.schema import predictions
from autoretrain.serving import prediction_log
from autoretrain.serving.routing import RoutingConfig, choose
from autoretrain.training.families import build_pipeline, get_family
from autoretrain.training.steps import SKOPS_TRUSTED_TYPES, pinned_requirements
from tests.conftest import SESSION_TMP, eventually, free_port, migrated, share_model_records, wait_http

pytestmark = pytest.mark.integration

TOKEN = "serving-token-" + uuid.uuid4().hex  # the admin token
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FEEDBACK_TOKEN = "serving-feedback-" + uuid.uuid4().hex
SALT = "test-routing-salt-00882-of-the-canary-tests"  # 93 of 1,000 users on a 10 % canary


# ------------------------------------------------------------------------------------ helpers
@dataclass
class Models:
    settings: Settings
    client: Any
    name: str  # champion v1 (run_training), challenger v2 (logistic regression)
    v1: Any
    v2: Any


def _register(settings: Settings, client: Any, pipeline: Any, name: str) -> registry.ModelRef:
    """Log ``pipeline`` in a new run and register it the way training does (with its SHA-256)."""
    experiment = tracking.ensure_experiment(client, settings.experiment_name)
    with mlflow.start_run(experiment_id=experiment) as run:
        info = mlflow.sklearn.log_model(pipeline, name="model", pip_requirements=pinned_requirements(),
                                        skops_trusted_types=list(SKOPS_TRUSTED_TYPES))
    engine = make_engine(database_url(settings))  # the session's database: share_model_records copies from it
    try:
        return registry.register_version(client, name=name, model_uri=info.model_uri, run_id=run.info.run_id,
                                         engine=engine)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def models(mlflow_server) -> Iterator[Models]:
    """Champion v1 (sigmoid-calibrated ComplementNB, as training often picks), challenger v2 (logreg).

    Fitted here on 2,000 messages and registered through the same registry functions as training
    (run_training itself is exercised by tests/integration/test_training_dag.py and the benchmark).
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
        name = f"sms-serving-{uuid.uuid4().hex[:8]}"
        settings = load_settings().with_overrides({"model_name": name, "experiment_name": "test-serving"})
        frame = read_dataset(settings.resolved_data_uri(), labels=settings.labels).frame.iloc[:2000]
        x, y = frame[["text"]], frame["label"].to_numpy()
        v1 = build_pipeline(CalibratedClassifierCV(ComplementNB(), method="sigmoid", cv=3)).fit(x, y)
        v2 = build_pipeline(get_family("logreg").make(0)).fit(x, y)
        client = tracking.client_for(settings)
        assert [_register(settings, client, p, name).version for p in (v1, v2)] == ["1", "2"]
        registry.set_alias(client, name, "champion", "1")
        registry.set_alias(client, name, "challenger", "2")
        yield Models(settings=settings, client=client, name=name, v1=v1, v2=v2)


@dataclass
class Service:
    proc: subprocess.Popen
    url: str
    log: Path
    db_url: str

    http: httpx.Client

    def post(self, path: str, payload: Any, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, json=payload, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def metric(self, name: str, **labels: str) -> float | None:
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.get("/metrics").text.splitlines():
            if line.startswith(f"{name}{{{wanted}}} " if labels else f"{name} "):
                return float(line.rsplit(" ", 1)[1])
        return None


@pytest.fixture(scope="module")
def start_service(mlflow_server) -> Iterator[Callable[..., list[Service]]]:
    """Start ``python -m autoretrain.serving`` processes with AUTORETRAIN_* overrides; all stopped at the end."""
    started: list[Service] = []

    def start(count: int = 1, **env: Any) -> list[Service]:  # env must name database_url
        services = []
        for _ in range(count):
            port = free_port()
            log = SESSION_TMP / f"serving-{port}.log"
            full_env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.uri, "AUTORETRAIN_ADMIN_TOKEN": TOKEN,
                        "AUTORETRAIN_FEEDBACK_TOKEN": FEEDBACK_TOKEN, "AUTORETRAIN_ROUTING_SALT": SALT,
                        "AUTORETRAIN_RELOAD_INTERVAL_SECONDS": "1",
                        **{f"AUTORETRAIN_{k.upper()}": str(v) for k, v in env.items()}}
            with log.open("w") as fh:
                proc = subprocess.Popen([sys.executable, "-m", "autoretrain.serving", "--host", "127.0.0.1",
                                         "--port", str(port)], env=full_env, stdout=fh, stderr=subprocess.STDOUT)
            url = f"http://127.0.0.1:{port}"
            share_model_records(env["database_url"])  # the versions the tests registered, as training would
            services.append(Service(proc=proc, url=url, log=log, db_url=env["database_url"],
                                    http=httpx.Client(base_url=url, timeout=30)))
            started.append(services[-1])
        for service in services:  # started together, waited for together
            try:
                wait_http(service.url + "/ready", timeout=120, proc=service.proc)
            except Exception:
                sys.stderr.write(service.log.read_text()[-4000:])
                raise
        return services

    yield start
    for service in started:
        service.http.close()
        if service.proc.poll() is None:
            service.proc.terminate()
            try:
                service.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                service.proc.kill()
                service.proc.wait()


def _variants(service: Service, users: list[str]) -> list[tuple[str, str]]:
    """(variant, model_version) per user, through /predict/batch (chunks of 200)."""
    out = []
    for start in range(0, len(users), 200):
        items = [{"message": "are we still on for tonight?", "user_id": u} for u in users[start:start + 200]]
        response = service.post("/predict/batch", {"items": items})
        assert response.status_code == 200, response.text
        out += [(p["variant"], p["model_version"]) for p in response.json()["predictions"]]
    return out


# -------------------------------------------------------------------------------------- routing
@pytest.fixture(scope="module")
def pair(models, start_service, postgres_db) -> list[Service]:
    """Two processes on one Postgres log, canary 10 % to the challenger."""
    return start_service(2, model_name=models.name, database_url=migrated(postgres_db("serving_pair")),
                         routing_mode="canary", canary_percent=10)


def test_sticky_assignment_holds_across_two_processes(pair):
    a, b = pair
    users = [f"user-{i}" for i in range(1000)]
    expected = [choose(RoutingConfig(mode="canary", canary_percent=10), u, SALT) for u in users]
    versions = {"champion": "1", "challenger": "2"}
    assert _variants(a, users) == _variants(b, users) == [(v, versions[v]) for v in expected]
    assert expected.count("challenger") == 93  # canary 10 % of these 1,000 users (10,000: tests/unit)
    for i, user in enumerate(users[:40]):  # single requests, alternating processes
        answer = pair[i % 2].post("/predict", {"message": "hi", "user_id": user}).json()
        assert answer["variant"] == expected[i]


def test_requests_without_user_id_are_assigned_per_request(pair):
    a, _ = pair
    answers = [a.post("/predict", {"message": "lunch?"}).json() for _ in range(300)]
    expected = [choose(RoutingConfig(mode="canary", canary_percent=10), x["request_id"], SALT) for x in answers]
    assert [x["variant"] for x in answers] == expected
    assert 0 < expected.count("challenger") < 300


def test_routing_switch_reaches_every_process_without_restart(pair, postgres_db):
    a, b = pair
    pids = (a.proc.pid, b.proc.pid)
    try:
        put = a.http.put("/admin/routing", headers=AUTH,
                         json={"mode": "ab", "ab_weights": {"champion": 1, "challenger": 3}})
        assert put.status_code == 200 and put.json()["source"] == "override"
        eventually(lambda: b.get("/models/current").json()["routing"]["mode"] == "ab", what="B switching to ab")
        users = [f"ab-user-{i}" for i in range(400)]
        config = RoutingConfig(mode="ab", ab_weights=(("champion", 1), ("challenger", 3)))
        assert [v for v, _ in _variants(b, users)] == [choose(config, u, SALT) for u in users]

        assert b.http.put("/admin/routing", headers=AUTH, json={"mode": "shadow"}).status_code == 200
        eventually(lambda: a.get("/models/current").json()["routing"]["mode"] == "shadow", what="A in shadow")
        answer = a.post("/predict", {"message": "URGENT! call 09061701461 to claim your prize"}).json()
        assert (answer["variant"], answer["model_version"]) == ("champion", "1")
        engine = make_engine(a.db_url)
        rows = eventually(lambda: _rows_of(engine, answer["request_id"], expect=2), what="the shadow row")
        assert sorted((r["variant"], r["model_version"], r["role"]) for r in rows) == [
            ("challenger", "2", "shadow"), ("champion", "1", "served")]
        engine.dispose()
    finally:
        assert a.http.delete("/admin/routing", headers=AUTH).json()["mode"] == "canary"
        eventually(lambda: b.get("/models/current").json()["routing"]["mode"] == "canary", what="B back")
    assert (a.proc.pid, b.proc.pid) == pids and a.proc.poll() is None and b.proc.poll() is None


def _rows_of(engine: Any, request_id: str, *, expect: int) -> list[dict] | None:
    rows = [r for r in prediction_log.iter_rows(engine, predictions, limit=100_000) if r["request_id"] == request_id]
    return rows if len(rows) == expect else None


# ---------------------------------------------------------------------------------- hot reload
def _artifact_dir(artifacts: Path, ref: registry.ModelRef) -> Path:
    """Where the mlflow server keeps the files of ``ref`` (``models:/m-<id>`` -> .../m-<id>/artifacts)."""
    model_id = ref.source.removeprefix("models:/")
    found = [p for p in artifacts.rglob(model_id) if p.is_dir()]
    assert len(found) == 1, f"expected one folder for {model_id} under {artifacts}, found {found}"
    return found[0] / "artifacts"


def test_alias_move_is_picked_up_and_a_tampered_artifact_is_refused(models, start_service, postgres_db,
                                                                     mlflow_server):
    client, name = models.client, f"sms-reload-{uuid.uuid4().hex[:8]}"
    for pipeline in (models.v1, models.v2):
        _register(models.settings, client, pipeline, name)
    registry.set_alias(client, name, "champion", "1")
    (service,) = start_service(model_name=name, database_url=migrated(postgres_db("serving_reload")),
                               routing_mode="full")
    pid = service.proc.pid
    assert service.post("/predict", {"message": "hi"}).json()["model_version"] == "1"

    registry.set_alias(client, name, "champion", "2")
    eventually(lambda: service.post("/predict", {"message": "hi"}).json()["model_version"] == "2",
               what="serving version 2 after the alias move")
    assert service.metric("autoretrain_model_reloads_total", alias="champion", outcome="success") == 2.0

    tampered = _register(models.settings, client, models.v1, name)
    assert tampered.version == "3"
    mlmodel = _artifact_dir(mlflow_server.artifacts, tampered) / "MLmodel"
    mlmodel.write_text(mlmodel.read_text() + "\n# edited after registration\n")  # still loadable YAML
    share_model_records(service.db_url)
    with pytest.raises(registry.ModelIntegrityError, match="does not match the registered"):
        engine = make_engine(service.db_url)
        try:
            registry.load_verified(client, name, "3", engine=engine)
        finally:
            engine.dispose()
    registry.set_alias(client, name, "champion", "3")

    failures = eventually(lambda: service.get("/models/current").json()["recent_failures"],
                          what="the failed load of version 3")
    assert [(f["alias"], f["version"]) for f in failures] == [("champion", "3")]
    assert "ModelIntegrityError" in failures[0]["error"] and "SHA-256" in failures[0]["error"]
    assert {service.post("/predict", {"message": "hi"}).json()["model_version"] for _ in range(20)} == {"2"}
    assert service.metric("autoretrain_model_reloads_total", alias="champion", outcome="refused") == 1.0
    assert service.get("/models/current").json()["variants"]["champion"]["version"] == "2"
    assert service.get("/ready").status_code == 200 and service.proc.pid == pid and service.proc.poll() is None
    assert "REFUSED " + name + " version 3 for alias champion" in service.log.read_text()


# ------------------------------------------------------------------------------------ shutdown
def test_graceful_stop_writes_every_prediction(models, start_service, postgres_db):
    url = migrated(postgres_db("serving_stop"))
    (service,) = start_service(model_name=models.name, database_url=url, routing_mode="full",
                               log_flush_seconds=600, log_batch_size=100_000)  # nothing written before stop
    messages = ["hello 🎉 world", "NUL \x00 inside", "日本語のテキスト", "FREE entry! txt WIN to 80086"]
    http = service.http
    answers = [http.post("/predict", json={"message": messages[i % 4], "user_id": f"u{i}"}) for i in range(200)]
    batch = http.post("/predict/batch", json={"items": [{"message": f"batch message {i}"} for i in range(50)]})
    assert [r.status_code for r in answers] == [200] * 200 and batch.status_code == 200
    engine = make_engine(url)
    assert prediction_log.count_predictions(engine) == 0  # all 250 rows are still in the writer's queue
    assert service.metric("autoretrain_prediction_log_queue_depth") == 250.0

    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(timeout=60) == -signal.SIGTERM  # uvicorn re-raises the signal after its shutdown
    assert prediction_log.count_predictions(engine) == 250
    assert prediction_log.count_predictions(engine, role="served", model_version="1") == 250
    texts = {r["text"] for r in prediction_log.iter_rows(engine, predictions, limit=1000)}
    assert {"hello 🎉 world", "NUL \ufffd inside", "日本語のテキスト"} <= texts  # Postgres text cannot hold NUL
    ids = {r["request_id"] for r in prediction_log.iter_rows(engine, predictions, limit=1000)}
    assert ids == {r.json()["request_id"] for r in answers} | {p["request_id"] for p in batch.json()["predictions"]}
    assert "stopped: 250 predictions logged, 0 dropped" in service.log.read_text()
    engine.dispose()


# ---------------------------------------------------------------------------------------- fuzz
def test_openapi_fuzzing_finds_no_server_error(models, start_service, postgres_db):
    (service,) = start_service(model_name=models.name, database_url=migrated(postgres_db("serving_fuzz")),
                               routing_mode="canary")
    before = _server_errors(service)  # /ready answered 503 while the model loaded: not the fuzzer's doing
    report = SESSION_TMP / f"schemathesis-{uuid.uuid4().hex[:6]}.xml"
    cmd = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{service.url}/openapi.json",
           "--checks", "not_a_server_error", "--max-examples", "25", "--seed", "1234",
           "--phases", "examples,coverage,fuzzing", "--header", f"Authorization: Bearer {TOKEN}",
           "--generation-database", "none", "--request-timeout", "20", "--no-color",
           "--report", "junit", "--report-junit-path", str(report)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert _server_errors(service) == before
    requests_seen = service.metric("autoretrain_request_duration_seconds_count", endpoint="/predict")
    assert requests_seen is not None and requests_seen >= 25  # the fuzzer did reach the service


def _server_errors(service: Service) -> dict[str, float]:
    """5xx answers so far, by metric line labels."""
    out = {}
    for line in service.get("/metrics").text.splitlines():
        if line.startswith("autoretrain_request_errors_total{") and 'status="5' in line:
            labels, value = line.rsplit(" ", 1)
            out[labels] = float(value)
    return out
