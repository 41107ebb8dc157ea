"""Attacks on the model supply chain through MLflow, on loopback: nothing AutoRetrain did not vet loads.

A real ``mlflow server`` (no auth: the attacker can write to it, as issue 12 found), a migrated Postgres
database for AutoRetrain, and a real prediction service process. Version 1 is registered by AutoRetrain
and is champion; then, in order:

(a) with MLflow's REST API only, a pickle-format model whose unpickling writes a marker file is
    registered, its ``autoretrain.sha256`` tag set to its real digest and ``champion`` moved to it;
(b) a skops model whose own MLmodel trusts ``posix.system`` is pushed through registration and made champion;
(c) a version AutoRetrain registered has its artifact overwritten afterwards, then made champion;
(d) new service processes start with MLflow down, and with the champion pointing at a refused version.

Each time: the service and ``load_verified`` refuse, the marker never appears, version 1 keeps
answering, one critical ``model_integrity`` alert is recorded per refused version (not one per poll),
and a fresh start serves the verified last-known-good copy.
"""

from __future__ import annotations

import functools
import os
import pickle
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.sklearn
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from autoretrain import lineage, registry, tracking
from autoretrain.alerts.store import AlertStore
from autoretrain.audit import artifacts
from autoretrain.config import Settings, load_settings
from autoretrain.db.engine import make_engine
from autoretrain.training.families import build_pipeline
from autoretrain.training.steps import SKOPS_TRUSTED_TYPES, pinned_requirements
from tests.conftest import SESSION_TMP, eventually, free_port, migrated, wait_http

_eventually = functools.partial(eventually, timeout=60.0)  # this module's polling

pytestmark = pytest.mark.integration

TEXTS = ["win a free prize now", "call to claim your cash award", "see you at lunch", "ok thanks, talk later"] * 10
LABELS = ["spam", "spam", "ham", "ham"] * 10
KEY = "integrity-key-" + uuid.uuid4().hex
POLL = 0.5  # reload_interval_seconds of the services here


class Payload:
    """Unpickling this runs ``exec``: it writes ``marker`` (what an attacker's model would do, harmlessly)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",)


@dataclass
class Stack:
    settings: Settings
    client: Any
    engine: sa.Engine
    name: str
    db_url: str
    state_dir: Path
    mlflow_uri: str
    artifacts: Path


@dataclass
class Service:
    proc: subprocess.Popen
    http: httpx.Client
    log: Path

    def version(self) -> str:
        response = self.http.post("/predict", json={"message": "win a free prize now"})
        assert response.status_code == 200, response.text
        return str(response.json()["model_version"])

    def failures(self) -> list[dict[str, Any]]:
        return list(self.http.get("/models/current").json()["recent_failures"])


def _log_model(stack: Stack, pipeline: Any, **kwargs: Any) -> tuple[str, str]:
    experiment = tracking.ensure_experiment(stack.client, stack.settings.experiment_name)
    with mlflow.start_run(experiment_id=experiment) as run:
        info = mlflow.sklearn.log_model(pipeline, name="model", pip_requirements=pinned_requirements(), **kwargs)
    return run.info.run_id, info.model_uri


def _register(stack: Stack, pipeline: Any) -> registry.ModelRef:
    """Registered by AutoRetrain, as training does: vetted, recorded with its HMAC."""
    run_id, uri = _log_model(stack, pipeline, skops_trusted_types=list(SKOPS_TRUSTED_TYPES))
    return registry.register_version(stack.client, name=stack.name, model_uri=uri, run_id=run_id,
                                     engine=stack.engine, key=KEY, registered_by="test")


def _alerts(stack: Stack) -> list[tuple[str, str, str]]:
    with AlertStore(stack.db_url) as store:
        return sorted((r.dedup_key, r.severity, r.status) for r in store.records() if r.kind == "model_integrity")


@pytest.fixture(scope="module")
def stack(mlflow_server, postgres_db) -> Iterator[Stack]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
        name = f"sms-integrity-{uuid.uuid4().hex[:8]}"
        db_url = migrated(postgres_db("integrity"))
        state_dir = SESSION_TMP / f"integrity-state-{uuid.uuid4().hex[:6]}"
        settings = load_settings().with_overrides({"model_name": name, "experiment_name": "test-integrity",
                                                   "database_url": db_url, "integrity_key": KEY,
                                                   "state_dir": str(state_dir)})
        engine = make_engine(db_url)
        stack = Stack(settings=settings, client=tracking.client_for(settings), engine=engine, name=name,
                      db_url=db_url, state_dir=state_dir, mlflow_uri=mlflow_server.uri,
                      artifacts=mlflow_server.artifacts)
        v1 = _register(stack, build_pipeline(ComplementNB()).fit(pd.DataFrame({"text": TEXTS}), LABELS))
        assert v1.version == "1"
        registry.set_alias(stack.client, name, registry.CHAMPION, "1")
        yield stack
        engine.dispose()


@pytest.fixture(scope="module")
def start_service(stack) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def start(*, tracking_uri: str | None = None, ready: bool = True) -> Service:
        port = free_port()
        log = SESSION_TMP / f"integrity-serving-{port}.log"
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri or stack.mlflow_uri,
               "AUTORETRAIN_MODEL_NAME": stack.name, "AUTORETRAIN_DATABASE_URL": stack.db_url,
               "AUTORETRAIN_INTEGRITY_KEY": KEY, "AUTORETRAIN_STATE_DIR": str(stack.state_dir),
               "AUTORETRAIN_RELOAD_INTERVAL_SECONDS": str(POLL), "AUTORETRAIN_ROUTING_MODE": "full"}
        with log.open("w") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "autoretrain.serving", "--host", "127.0.0.1",
                                     "--port", str(port)], env=env, stdout=fh, stderr=subprocess.STDOUT)
        service = Service(proc=proc, http=httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30), log=log)
        started.append(service)
        try:
            wait_http(f"http://127.0.0.1:{port}/{'ready' if ready else 'health'}", timeout=120, proc=proc)
        except Exception:
            sys.stderr.write(log.read_text()[-4000:])
            raise
        return service

    yield start
    for service in started:  # all at once: each may take its whole grace period to stop
        service.http.close()
        if service.proc.poll() is None:
            service.proc.terminate()
    for service in started:
        try:
            service.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.proc.kill()
            service.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def service(start_service) -> Service:
    """The long-running service: champion version 1, loaded verified (and kept as last-known-good)."""
    service = start_service()
    assert service.version() == "1"
    return service


def _rest(stack: Stack, method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(method, f"{stack.mlflow_uri}{path}", timeout=30, **kwargs)
    assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}"
    return response.json() if response.content else {}


def _pickle_model_dir(root: Path, marker: Path) -> Path:
    """An MLflow sklearn model directory in the pickle format whose model file runs code when unpickled."""
    root.mkdir(parents=True)
    (root / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n    model_path: model.pkl\n"
        "  sklearn:\n    code: null\n    pickled_model: model.pkl\n    serialization_format: cloudpickle\n"
        "    sklearn_version: 1.9.1\nmlflow_version: 3.17.2\n", encoding="utf-8")
    (root / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    return root


def _marker_after_unpickling(path: Path) -> bool:
    """Unpickle ``path`` in a throwaway process: True when that wrote the marker (the payload is real)."""
    code = "import pickle, sys; pickle.loads(open(sys.argv[1], 'rb').read())"
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
    return True


# ------------------------------------------------------------------------------------------- (a)
def test_a_pickle_model_registered_through_the_rest_api_never_loads(stack, service):
    marker = SESSION_TMP / f"pwned-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        local = _pickle_model_dir(Path(tmp) / "model", marker)
        assert _marker_after_unpickling(local / "model.pkl") and marker.exists()  # the payload does run code
        marker.unlink()
        # the attacker: MLflow's REST API only (no AutoRetrain code, no database access)
        experiment = _rest(stack, "POST", "/api/2.0/mlflow/experiments/create",
                           json={"name": f"attacker-{uuid.uuid4().hex[:6]}"})["experiment_id"]
        run = _rest(stack, "POST", "/api/2.0/mlflow/runs/create", json={"experiment_id": experiment})["run"]
        run_id = run["info"]["run_id"]
        for path in sorted(local.iterdir()):
            _rest(stack, "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run_id}/artifacts/model/"
                                f"{path.name}", content=path.read_bytes())
    version = _rest(stack, "POST", "/api/2.0/mlflow/model-versions/create",
                    json={"name": stack.name, "source": f"runs:/{run_id}/model", "run_id": run_id})
    version = str(version["model_version"]["version"])
    with tempfile.TemporaryDirectory() as tmp:  # the real digest of what a load downloads
        digest = registry.tree_sha256(mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{stack.name}/{version}", dst_path=tmp))
    _rest(stack, "POST", "/api/2.0/mlflow/model-versions/set-tag",
          json={"name": stack.name, "version": version, "key": lineage.SHA256, "value": digest})
    _rest(stack, "POST", "/api/2.0/mlflow/registered-models/alias",
          json={"name": stack.name, "alias": "champion", "version": version})

    failures = _eventually(lambda: [f for f in service.failures() if f["version"] == version],
                           what=f"the refusal of version {version}")
    assert "was not registered by AutoRetrain" in failures[0]["error"]
    time.sleep(8 * POLL)  # several more polls: not retried, not alerted again
    assert {service.version() for _ in range(20)} == {"1"}  # the old champion still answers
    assert service.log.read_text().count(f"REFUSED {stack.name} version {version} ") == 1
    assert _alerts(stack) == [(f"model_integrity:{stack.name}:{version}", "critical", "logged")]
    with pytest.raises(registry.ModelIntegrityError, match="was not registered by AutoRetrain"):
        registry.load_verified(stack.client, stack.name, registry.CHAMPION, engine=stack.engine, key=KEY)
    with pytest.raises(registry.ModelIntegrityError, match="was not registered by AutoRetrain"):
        registry.load_trusted(stack.settings, stack.client, registry.CHAMPION)  # the Airflow workers' door
    # even a forged record written straight into AutoRetrain's database fails without the key
    with stack.engine.begin() as conn:
        conn.execute(sa.insert(artifacts.model_artifacts).values(
            model_name=stack.name, version=version, run_id=run_id, sha256=digest, hmac="", format="skops",
            registered_at=sa.func.now(), registered_by="attacker"))
    with pytest.raises(registry.ModelIntegrityError, match="does not verify under integrity_key"):
        registry.load_verified(stack.client, stack.name, version, engine=stack.engine, key=KEY)
    assert not marker.exists()  # no process unpickled it


# ------------------------------------------------------------------------------------------- (b)
def test_a_skops_model_that_trusts_its_own_dangerous_types_is_refused(stack, service):
    hostile = Pipeline([("run", FunctionTransformer(func=os.system))])
    extra = ["posix.system", "builtins.eval", "sklearn.preprocessing._function_transformer.FunctionTransformer"]
    run_id, uri = _log_model(stack, hostile, skops_trusted_types=extra)
    with pytest.raises(registry.ModelIntegrityError, match=r"types outside AutoRetrain's trusted list.*posix\.system"):
        registry.register_version(stack.client, name=stack.name, model_uri=uri, run_id=run_id, engine=stack.engine,
                                  key=KEY)  # AutoRetrain will not vet it: no record is written
    version = registry._version_of_run(stack.client, stack.name, run_id).version
    assert artifacts.find(stack.engine, stack.name, version) is None
    registry.set_alias(stack.client, stack.name, registry.CHAMPION, version)
    _eventually(lambda: [f for f in service.failures() if f["version"] == version],
                what=f"the refusal of version {version}")
    assert {service.version() for _ in range(10)} == {"1"}
    assert (f"model_integrity:{stack.name}:{version}", "critical", "logged") in _alerts(stack)


# ------------------------------------------------------------------------------------------- (c)
def test_an_artifact_overwritten_after_registration_is_refused(stack, service):
    ref = _register(stack, build_pipeline(ComplementNB(alpha=0.3)).fit(pd.DataFrame({"text": TEXTS}), LABELS))
    other = build_pipeline(LogisticRegression()).fit(pd.DataFrame({"text": TEXTS}), LABELS)
    model_id = ref.source.removeprefix("models:/") if ref.source else ""
    stored = [p for p in stack.artifacts.rglob("model.skops") if model_id and model_id in p.as_posix()]
    assert len(stored) == 1, stored
    with tempfile.TemporaryDirectory() as tmp:  # a valid skops model of trusted types, just not the vetted one
        mlflow.sklearn.save_model(other, f"{tmp}/m", serialization_format="skops")
        stored[0].write_bytes(Path(f"{tmp}/m/model.skops").read_bytes())
    with pytest.raises(registry.ModelIntegrityError, match=f"version {ref.version}: artifact SHA-256 .* does not "
                                                           "match the registered"):
        registry.load_verified(stack.client, stack.name, ref.version, engine=stack.engine, key=KEY)
    registry.set_alias(stack.client, stack.name, registry.CHAMPION, ref.version)
    failures = _eventually(lambda: [f for f in service.failures() if f["version"] == ref.version],
                           what=f"the refusal of version {ref.version}")
    assert "does not match the registered" in failures[0]["error"]
    assert {service.version() for _ in range(10)} == {"1"}
    assert (f"model_integrity:{stack.name}:{ref.version}", "critical", "logged") in _alerts(stack)


# ------------------------------------------------------------------------------------------- (d)
def test_a_fresh_start_serves_the_last_known_good_copy(stack, service, start_service):
    copy = stack.state_dir / "last-known-good" / stack.name
    assert (copy / "champion.json").is_file() and (copy / "1").is_dir()
    # the champion alias points at the refused version of (c): a new replica still serves version 1
    refused = start_service()
    assert refused.version() == "1"
    assert refused.http.get("/models/current").json()["variants"]["champion"]["version"] == "1"
    # MLflow unreachable at start (nothing listens on that port): the verified copy serves
    down = start_service(tracking_uri=f"http://127.0.0.1:{free_port()}")
    assert down.version() == "1"
    assert "serving the last-known-good champion" in down.log.read_text()
    # a copy changed on disk is verified against the record too: refused, the service waits for MLflow
    (copy / "1" / "model.skops").write_bytes(b"changed on disk")
    broken = start_service(tracking_uri=f"http://127.0.0.1:{free_port()}", ready=False)
    _eventually(lambda: "the last-known-good champion was refused" in broken.log.read_text(),
                what="the refusal of the changed copy")
    assert broken.http.get("/ready").status_code == 503


# ------------------------------------------------------------------- a version from before 0003
def _vet(stack: Stack, version: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUTORETRAIN_DATABASE_URL": stack.db_url, "AUTORETRAIN_INTEGRITY_KEY": KEY,
           "AUTORETRAIN_STATE_DIR": str(stack.state_dir)}
    return subprocess.run([sys.executable, "-m", "autoretrain.cli.main", "--tracking-uri", stack.mlflow_uri,
                           "--model-name", stack.name, "vet", version, "--by", "ops-oncall"],
                          env=env, capture_output=True, text=True, timeout=300)


def test_a_version_registered_before_the_records_loads_only_once_a_person_vets_it(stack):
    """Upgrading to 0003 leaves older versions without a record: `autoretrain vet` vets and records one."""
    pipeline = build_pipeline(ComplementNB(alpha=0.7)).fit(pd.DataFrame({"text": TEXTS}), LABELS)
    _, uri = _log_model(stack, pipeline, skops_trusted_types=list(SKOPS_TRUSTED_TYPES))
    version = str(mlflow.register_model(uri, stack.name).version)  # as main registered before revision 0003
    with pytest.raises(registry.ModelIntegrityError, match="not registered by AutoRetrain"):
        registry.load_verified(stack.client, stack.name, version, engine=stack.engine, key=KEY)
    done = _vet(stack, version)
    assert done.returncode == 0, done.stderr[-2000:]
    record = artifacts.find(stack.engine, stack.name, version)
    assert record is not None and record.registered_by == "vetted by ops-oncall"
    model, ref = registry.load_verified(stack.client, stack.name, version, engine=stack.engine, key=KEY)
    assert ref.version == version and list(model.predict(pd.DataFrame({"text": TEXTS[:4]}))) == list(
        pipeline.predict(pd.DataFrame({"text": TEXTS[:4]})))
    assert _vet(stack, version).returncode == 0  # again: the record stays as it was
    assert artifacts.find(stack.engine, stack.name, version) == record


def test_vetting_refuses_what_registration_refuses(stack):
    hostile = Pipeline([("run", FunctionTransformer(func=os.system))])
    trusting = ["posix.system", "sklearn.preprocessing._function_transformer.FunctionTransformer"]
    _, uri = _log_model(stack, hostile, skops_trusted_types=trusting)
    version = str(mlflow.register_model(uri, stack.name).version)
    done = _vet(stack, version)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "types outside AutoRetrain's trusted list" in done.stderr and "Traceback" not in done.stderr
    assert artifacts.find(stack.engine, stack.name, version) is None
