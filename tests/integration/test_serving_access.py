"""Access to the real prediction service (uvicorn process, mlflow server, Postgres): the attacks of issue 12.

Weak tokens stop the process at start; the feedback token cannot call /admin/*; /drift/calculate
needs the admin token, refuses oversized batches (413) and calls beyond its concurrency (429);
user ids precomputed with the old public routing salt reach the challenger only at the canary share.
"""

from __future__ import annotations

import concurrent.futures
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from autoretrain import registry, tracking
from autoretrain.config import load_settings
from autoretrain.data.sources import read_dataset
from autoretrain.serving import access
from autoretrain.serving.routing import CHALLENGER, RoutingConfig, choose
from autoretrain.training.steps import RunKey, run_training
from tests.conftest import SESSION_TMP, free_port, migrated, wait_http
from tests.unit.deploy.test_compose import ENV_EXAMPLE, read_env_file

pytestmark = pytest.mark.integration

ADMIN = "admin-token-" + uuid.uuid4().hex
FEEDBACK = "feedback-token-" + uuid.uuid4().hex
SALT = "access-test-salt-" + uuid.uuid4().hex


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Service:
    proc: subprocess.Popen
    http: httpx.Client
    log: Path

    def cpu_seconds(self) -> float:
        """User + system CPU time of the service process so far (/proc/<pid>/stat)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        """Peak resident memory of the service process (VmHWM)."""
        line = next(x for x in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
                    if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024


@pytest.fixture(scope="module")
def champion(mlflow_server, postgres_db) -> Iterator[dict[str, str]]:
    """A champion trained on the bundled data (it has a drift reference); also set as the challenger."""
    db = migrated(postgres_db("serving_access"))
    name = f"sms-access-{uuid.uuid4().hex[:8]}"
    env = {"MLFLOW_TRACKING_URI": mlflow_server.uri, "AUTORETRAIN_MODEL_NAME": name,
           "AUTORETRAIN_DATABASE_URL": db, "AUTORETRAIN_EXPERIMENT_NAME": f"access-{name}"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = load_settings()
        result = run_training(settings.with_overrides({"families": ["logreg"], "cv_folds": 2}),
                              RunKey("test", uuid.uuid4().hex))
        assert result["alias"]["alias"] == "champion"
        client = tracking.client_for(settings)
        registry.set_alias(client, name, "challenger", registry.alias_version(client, name, "champion").version)
    yield env


@pytest.fixture(scope="module")
def start(champion) -> Iterator[Callable[..., Service]]:
    """Start ``python -m autoretrain.serving`` with AUTORETRAIN_* overrides and wait for /ready."""
    started: list[Service] = []

    def run(**settings: Any) -> Service:
        port = free_port()
        log = SESSION_TMP / f"serving-access-{port}.log"
        env = {**os.environ, **champion, "AUTORETRAIN_RELOAD_INTERVAL_SECONDS": "1",
               **{f"AUTORETRAIN_{k.upper()}": str(v) for k, v in settings.items()}}
        with log.open("w") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "autoretrain.serving", "--host", "127.0.0.1",
                                     "--port", str(port)], env=env, stdout=fh, stderr=subprocess.STDOUT)
        service = Service(proc, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300), log)
        started.append(service)
        try:
            wait_http(f"http://127.0.0.1:{port}/ready", timeout=120, proc=proc)
        except Exception:
            sys.stderr.write(log.read_text()[-4000:])
            raise
        return service

    yield run
    for service in started:
        service.http.close()
        service.proc.terminate()
        try:
            service.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.proc.kill()
            service.proc.wait()


def _messages(count: int) -> list[str]:
    texts = read_dataset(load_settings().resolved_data_uri(), labels=("ham", "spam")).frame["text"].tolist()
    return [f"{texts[i % len(texts)]} #{i}" for i in range(count)]


# ----------------------------------------------------------------------------------- weak tokens
def _start_and_wait_for_exit(env: dict[str, str], tmp_path: Path) -> tuple[int, str]:
    full = {**os.environ, "AUTORETRAIN_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}",
            "AUTORETRAIN_STATE_DIR": str(tmp_path / "state"), "AUTORETRAIN_FEEDBACK_TOKEN": FEEDBACK,
            "AUTORETRAIN_ADMIN_TOKEN": ADMIN, **env}
    done = subprocess.run([sys.executable, "-m", "autoretrain.serving", "--port", str(free_port())], env=full,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(("variable", "value", "reason"), [
    ("AUTORETRAIN_ADMIN_TOKEN", "a", "has 1 characters, fewer than 32"),
    ("AUTORETRAIN_FEEDBACK_TOKEN", "<.env.example>", "is an example value"),
    ("AUTORETRAIN_API_TOKEN", "a", "has 1 characters, fewer than 32"),
    ("AUTORETRAIN_ROUTING_SALT", "autoretrain", "is an example value"),
    # a fixed id: the random token in it differed between pytest-xdist workers, which refuse to run then
    pytest.param("AUTORETRAIN_FEEDBACK_TOKEN", ADMIN, "feedback_token and admin_token are the same value",
                 id="AUTORETRAIN_FEEDBACK_TOKEN-<ADMIN>-feedback_token and admin_token are the same value"),
])
def test_a_weak_token_stops_the_service_at_start_with_one_line(variable, value, reason, tmp_path):
    if value == "<.env.example>":
        value = read_env_file(ENV_EXAMPLE)[variable]
    code, output = _start_and_wait_for_exit({variable: value}, tmp_path)
    errors = [line for line in output.splitlines() if " ERROR " in line]
    assert code == 2, output[-3000:]
    assert len(errors) == 1 and reason in errors[0] and "Traceback" not in output, output[-3000:]
    assert errors[0].endswith("python -c 'import secrets; print(secrets.token_urlsafe(32))'") or "same value" in reason
    assert value not in errors[0] or len(value) < 12  # a strong secret is never echoed


# ----------------------------------------------------------------------------------- roles
def test_each_token_opens_only_its_own_endpoints(start):
    service = start(feedback_token=FEEDBACK, admin_token=ADMIN, routing_salt=SALT)
    http = service.http
    assert http.get("/admin/routing", headers=bearer(FEEDBACK)).status_code == 401  # feedback writers: no admin
    assert http.post("/admin/reload", headers=bearer(FEEDBACK)).status_code == 401
    assert http.get("/admin/routing", headers=bearer(ADMIN)).json()["source"] == "settings"
    assert http.post("/admin/reload", headers=bearer(ADMIN)).status_code == 200
    feedback = {"request_id": "no-such-request", "label": "spam"}
    assert http.post("/feedback", json=feedback, headers=bearer(ADMIN)).status_code == 401
    assert http.post("/feedback", json=feedback, headers=bearer(FEEDBACK)).status_code == 404  # past the guard
    drift = {"messages": ["hello"]}
    no_token = http.post("/drift/calculate", json=drift)
    assert no_token.status_code == 401 and no_token.headers["www-authenticate"] == "Bearer"
    assert http.post("/drift/calculate", json=drift, headers=bearer(FEEDBACK)).status_code == 401
    assert http.post("/drift/calculate", json=drift, headers=bearer(ADMIN)).status_code == 200


def test_a_role_without_a_token_is_off_not_open(start):
    service = start(feedback_token=FEEDBACK, admin_token="", routing_salt=SALT)
    for method, path in (("GET", "/admin/routing"), ("PUT", "/admin/routing"), ("DELETE", "/admin/routing"),
                         ("POST", "/admin/reload"), ("POST", "/drift/calculate")):
        for headers in ({}, bearer(FEEDBACK), bearer(ADMIN)):
            response = service.http.request(method, path, headers=headers, json={"messages": ["x"], "mode": "full"})
            assert response.status_code == 403, (method, path, headers, response.text)
            assert "no admin token is configured; set AUTORETRAIN_ADMIN_TOKEN" in response.json()["detail"]


# ----------------------------------------------------------------------------------- drift limits
def _concurrently(service: Service, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda b: service.http.post("/drift/calculate", json=b, headers=bearer(ADMIN)), bodies))


def test_four_50000_message_drift_calls_are_refused_with_413(start):
    service = start(feedback_token=FEEDBACK, admin_token=ADMIN, routing_salt=SALT)
    body = {"messages": _messages(50_000)}
    cpu, rss = service.cpu_seconds(), service.peak_rss_mb()
    answers = _concurrently(service, [body] * 4)
    used, peak = service.cpu_seconds() - cpu, service.peak_rss_mb()
    assert [a.status_code for a in answers] == [413] * 4
    assert answers[0].json() == {"detail": "50,000 messages is more than drift_max_messages=10,000 per call; split "
                                           "the batch (or run the monitoring DAG on the window)"}
    sys.stderr.write(f"\n4 x 50,000-message drift calls refused: {used:.1f} s CPU, "
                     f"peak RSS {rss:.0f} -> {peak:.0f} MB\n")
    assert used < 15.0  # parsing 4 x ~4 MB of JSON; the checks themselves never run


def test_drift_calls_beyond_the_limit_get_429_with_retry_after(start):
    service = start(feedback_token=FEEDBACK, admin_token=ADMIN, routing_salt=SALT, drift_max_concurrent=1)
    body = {"messages": _messages(3_000)}
    answers = _concurrently(service, [body] * 4)
    assert sorted(a.status_code for a in answers) == [200, 429, 429, 429], [a.text[:200] for a in answers]
    refused = [a for a in answers if a.status_code == 429]
    assert all(int(a.headers["retry-after"]) >= 1 for a in refused)
    assert "drift calculation(s) already running (drift_max_concurrent)" in refused[0].json()["detail"]
    ok = next(a for a in answers if a.status_code == 200).json()
    assert ok["n_messages"] == 3_000
    again = service.http.post("/drift/calculate", json=body, headers=bearer(ADMIN))  # the slot is free again
    assert again.status_code == 200


# ----------------------------------------------------------------------------------- routing salt
def test_ids_chosen_with_the_public_salt_reach_the_challenger_only_at_the_canary_share(start, tmp_path):
    """The attack: pick user_ids that the old public salt ("autoretrain") sends to the challenger.

    The service here has no salt configured: it generates a secret one into its state folder.
    """
    state = tmp_path / "state"
    service = start(feedback_token=FEEDBACK, admin_token=ADMIN, state_dir=state, routing_mode="canary",
                    canary_percent=10)
    config = RoutingConfig(mode="canary", canary_percent=10)
    chosen = [u for u in (f"attacker-{i}" for i in range(20_000)) if choose(config, u, "autoretrain") == CHALLENGER]
    chosen = chosen[:1000]
    variants = []
    for begin in range(0, len(chosen), 200):
        items = [{"message": "are we still on for tonight?", "user_id": u} for u in chosen[begin:begin + 200]]
        response = service.http.post("/predict/batch", json={"items": items})
        assert response.status_code == 200, response.text
        variants += [p["variant"] for p in response.json()["predictions"]]
    share = variants.count(CHALLENGER) / len(variants)
    sys.stderr.write(f"\n1,000 ids picked with the public salt: {share:.1%} reached the challenger (was 100 %)\n")
    assert 0.05 < share < 0.15  # the canary share (10 %, s.d. 0.95 %), not 100 %
    salt_file = state / access.SALT_FILE
    assert stat.S_IMODE(salt_file.stat().st_mode) == 0o600
    salt = salt_file.read_text().strip()
    assert variants == [choose(config, u, salt) for u in chosen]  # the generated salt is the one in use
    assert salt not in service.log.read_text()
