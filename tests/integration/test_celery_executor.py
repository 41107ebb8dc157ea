"""CeleryExecutor for real (issue 7): the compose file's Airflow environment, run natively.

What `docker compose up` runs, as plain processes on loopback: the api-server, a scheduler, a
dag-processor and two Redis-brokered Celery workers, every one with the `x-airflow-common`
environment of docker-compose.yaml. Only what must differ outside Docker is rewritten, in one
place (:func:`native_environment`): service hostnames become 127.0.0.1 and this test's ports,
database names become fresh Postgres databases, image paths become the checkout and a tmp
AIRFLOW_HOME. The test reads each process's environment back from /proc (every compose variable
arrived), triggers `training` through the REST API and asserts that the run succeeded, that every
task of it was executed by one of the two workers from the run's own Celery queue, and that the
champion alias exists in the MLflow registry. No triggerer: nothing in `training` defers.

Isolation from other runs on the shared Postgres and Redis: a unique Celery queue and unique
worker names, fresh databases, a tmp AIRFLOW_HOME, a free port for every server.

Time budget: under 4 minutes on 2 cores. Measured 2 min 50 s with other work on the machine
(load average ~5): mlflow and moto servers 15 s, `airflow db migrate` 6 s, the five processes up
20 s, the run itself (nine task hops, each a fresh task process importing mlflow) ~115 s. With a
load average above 10 from other test runs the same module took up to 6.5 minutes.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import pytest
import yaml

from autoretrain import registry
from devstack import localstack
from devstack.airflow_api import AirflowAPI
from tests.conftest import PG_HOST, ROOT, free_port

pytestmark = pytest.mark.integration

COMPOSE_FILE = ROOT / "docker-compose.yaml"
BIN = Path(sys.executable).parent
CONF = {"families": ["complement_nb", "logreg"], "cv_folds": 2}  # only declared Params: others fail the run
#: the training graph for two families: what must have run, and the branch that must be skipped
EXPECTED_STATES = {
    **dict.fromkeys(("load", "validate", "families", "train[0]", "train[1]", "select", "evaluate",
                     "register", "gate", "alias", "needs_rollout"), "success"),
    "gate_failed": "skipped",
    "rollout": "skipped",  # the first version becomes champion: no rollout to hand it to (issue 14)
}
#: this test's `.env` for the compose file (.env.example); every required secret not here is generated
DOTENV = {"AIRFLOW_ADMIN_USER": "admin", "AIRFLOW_WORKER_CONCURRENCY": "1"}  # 2 cores: one task at a time per worker


# --------------------------------------------------------------------------- compose environment
_INTERPOLATION = re.compile(r"\$(?:(?P<dollar>\$)|\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>\w+))")


def dotenv_value(name: str) -> str:
    """A fresh secret for the required variable ``name`` (Fernet-shaped for the Fernet key)."""
    if "FERNET" in name:
        from cryptography.fernet import Fernet

        return Fernet.generate_key().decode()
    return secrets.token_urlsafe(24)


def interpolate(value: str, dotenv: dict[str, str]) -> str:
    """Resolve compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$`` as `docker compose` does.

    Variables come from ``dotenv`` only, never from the host: a required one that is missing gets
    a generated secret (kept in ``dotenv``, so every use agrees), any other its default or "".
    """
    def replace(match: re.Match[str]) -> str:
        if match["dollar"]:
            return "$"
        name = match["name"] or match["bare"]
        if name not in dotenv and match["op"] and "?" in match["op"]:
            dotenv[name] = dotenv_value(name)
        if name in dotenv:
            return dotenv[name]
        return match["arg"] if match["op"] else ""

    return _INTERPOLATION.sub(replace, value)


@dataclass(frozen=True)
class Compose:
    services: frozenset[str]
    env: dict[str, str]  # x-airflow-common.environment, interpolated


def read_compose() -> Compose:
    """docker-compose.yaml: its service names and the Airflow environment, interpolated with test values."""
    assert COMPOSE_FILE.exists(), f"{COMPOSE_FILE} is missing: this test runs its x-airflow-common environment"
    spec = yaml.safe_load(COMPOSE_FILE.read_text())
    dotenv = dict(DOTENV)
    common = spec["x-airflow-common"]["environment"]
    env = {name: interpolate(_as_text(value), dotenv) for name, value in common.items()}
    return Compose(services=frozenset(spec["services"]), env=env)


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


# ---------------------------------------------------------------------- the native translation
@dataclass(frozen=True)
class Native:
    """Where the compose services live on loopback, and the test's own databases and folders."""

    addresses: Mapping[str, str]  # compose service -> host:port here
    databases: Mapping[str, str]  # database name in compose -> this test's database
    paths: Mapping[str, str]  # folder inside the image -> folder here


def native_environment(compose: Compose, native: Native) -> dict[str, str]:
    """The compose environment with service hosts, database names and image paths rewritten for loopback.

    Everything else passes verbatim. Postgres and Redis are the shared local servers, so their URLs
    take the local credentials (Postgres' trust superuser, no Redis password) instead of compose's.
    """
    return {name: _native_value(value, compose.services, native) for name, value in compose.env.items()}


def _native_value(value: str, services: frozenset[str], native: Native) -> str:
    for image_path, here in native.paths.items():
        value = re.sub(rf"{re.escape(image_path)}(?=/|$)", here, value)
    parts = urlsplit(value)
    if not parts.scheme or parts.hostname not in services:
        return value  # not a URL, or not one of compose's services (e.g. the bucket of s3://autoretrain/...)
    if parts.hostname not in native.addresses:
        raise AssertionError(f"compose service {parts.hostname!r} (in {value!r}) has no native address")
    netloc, path = native.addresses[parts.hostname], parts.path
    if parts.hostname == "postgres":
        netloc, path = f"postgres@{netloc}", "/" + native.databases[path.lstrip("/")]
    elif parts.hostname != "redis" and "@" in parts.netloc:
        netloc = f"{parts.netloc.rsplit('@', 1)[0]}@{netloc}"
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


def postgres_databases(compose: Compose) -> set[str]:
    """The databases the compose environment uses on its ``postgres`` service."""
    return {urlsplit(v).path.lstrip("/") for v in compose.env.values()
            if urlsplit(v).scheme and urlsplit(v).hostname == "postgres"}


def isolation_settings(*, queue: str, model_name: str) -> dict[str, str]:
    """What this run adds to the compose environment to share Redis, Postgres and ports with no one."""
    return {
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,  # tasks go to, and our workers read, this run's queue only
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # no cron or asset runs: only the run we trigger
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),  # 8974 in compose
        "AUTORETRAIN_MODEL_NAME": model_name,
    }


def base_environment() -> dict[str, str]:
    """This process's environment without any Airflow, AutoRetrain, MLflow or AWS setting."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "_AIRFLOW", "AUTORETRAIN_", "MLFLOW_", "AWS_"))}


# -------------------------------------------------------------------------------- the stack
@dataclass
class Stack:
    api: AirflowAPI
    queue: str
    workers: dict[str, str]  # service name -> celery node name
    state_dir: Path
    compose_env: dict[str, str]  # compose variable -> its native value, which every process must see


def services(*, api_port: int, health_port: str, queue: str, workers: Mapping[str, str]) -> list[localstack.Service]:
    """The compose file's Airflow services, as native commands (a triggerer is not needed: nothing defers)."""
    airflow = str(BIN / "airflow")
    stack = [
        localstack.Service("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(api_port)],
                           health_url=f"http://127.0.0.1:{api_port}/api/v2/monitor/health"),
        localstack.Service("scheduler", [airflow, "scheduler"], health_url=f"http://127.0.0.1:{health_port}/health"),
        localstack.Service("dag-processor", [airflow, "dag-processor"]),
    ]
    for name, node in workers.items():
        stack.append(localstack.Service(
            name, [airflow, "celery", "worker", "--queues", queue, "--celery-hostname", node,
                   "--without-mingle", "--without-gossip"],  # no chatter with other runs' workers on this Redis
            env={"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}))  # 8793 in every container
    return stack


def forget_queue(broker_url: str, queue: str) -> None:
    """Delete what Celery left in the shared Redis for this run's queue (its bindings, any message)."""
    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        keys = list(client.scan_iter(match=f"*{queue}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def airflow_init(env: dict[str, str]) -> str:
    """What compose's airflow-init does: migrate Airflow's (with the FAB auth manager's tables) and
    AutoRetrain's databases, then create the Airflow admin user (the role grants need compose's roles)."""
    password = dotenv_value("AIRFLOW_ADMIN_PASSWORD")
    user = DOTENV["AIRFLOW_ADMIN_USER"]
    create_admin = ["airflow", "users", "create", "--username", user, "--password", password, "--role", "Admin",
                    "--firstname", "Airflow", "--lastname", "Admin", "--email", f"{user}@autoretrain.invalid"]
    # the two migrations touch different databases: run them side by side; the user needs Airflow's tables
    for batch in ([["airflow", "db", "migrate"], ["autoretrain", "db", "upgrade"]], [create_admin]):
        procs = [subprocess.Popen([str(BIN / command[0]), *command[1:]], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for command in batch]
        outputs = [(proc, *proc.communicate(timeout=240)) for proc in procs]
        for proc, out, err in outputs:
            assert proc.returncode == 0, out[-3000:] + err[-3000:]
    return password


@contextlib.contextmanager
def compose_stack(*, mlflow_uri: str, s3_endpoint: str, postgres_db: Callable[[str], str], model_name: str,
                  workdir: Path) -> Generator[Stack, None, None]:
    """The compose file's Airflow services as native processes on loopback, for the length of the block."""
    started = time.monotonic()
    compose = read_compose()
    home, state_dir, api_port = workdir / "airflow", workdir / "stack", free_port()
    addresses = {"postgres": f"{PG_HOST}:5432", "redis": "127.0.0.1:6379", "mlflow": urlsplit(mlflow_uri).netloc,
                 "airflow-apiserver": f"127.0.0.1:{api_port}", "minio": urlsplit(s3_endpoint).netloc}
    databases = {name: urlsplit(postgres_db(f"celery_{name}")).path.lstrip("/")
                 for name in sorted(postgres_databases(compose))}
    native = Native(addresses=addresses, databases=databases,
                    paths={"/opt/autoretrain": str(ROOT), "/opt/airflow": str(home)})
    queue = f"autoretrain-test-{uuid.uuid4().hex[:10]}"
    translated = native_environment(compose, native)
    isolation = isolation_settings(queue=queue, model_name=model_name)
    assert not set(compose.env) & set(isolation), "isolation must add to the compose environment, not change it"
    # SPT_NOENV: setproctitle keeps its hands off the environment block, so /proc/<pid>/environ stays readable
    env = {**base_environment(), **translated, **isolation, "PYTHONUNBUFFERED": "1", "SPT_NOENV": "1"}
    print(f"\n  compose environment: {len(compose.env)} variables, "
          f"{sum(translated[k] != compose.env[k] for k in compose.env)} of them translated; queue {queue}", flush=True)

    password = airflow_init(env)
    print(f"  airflow-init (airflow db migrate, autoretrain db upgrade) done: {time.monotonic() - started:.0f} s",
          flush=True)

    from airflow.sdk.api.client import get_hostname  # the host name task instances report

    workers = {f"worker-{i}": f"w{i}-{queue}@{get_hostname()}" for i in (1, 2)}
    stack = services(api_port=api_port, health_port=isolation["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT"],
                     queue=queue, workers=workers)
    try:
        with localstack.up(stack, state_dir, env, progress=lambda m: print(f"  {m}", flush=True)):
            print(f"  stack up: {time.monotonic() - started:.0f} s", flush=True)
            api = AirflowAPI(f"http://127.0.0.1:{api_port}", DOTENV["AIRFLOW_ADMIN_USER"], password)
            yield Stack(api=api, queue=queue, workers=workers, state_dir=state_dir, compose_env=translated)
    finally:
        forget_queue(env["AIRFLOW__CELERY__BROKER_URL"], queue)


# -------------------------------------------------------------------------------- the test
def assert_every_process_has_the_compose_environment(stack: Stack) -> None:
    for name, pid in localstack.running(stack.state_dir).items():
        environ = psutil.Process(pid).environ()
        different = {k for k, v in stack.compose_env.items() if environ.get(k) != v}
        assert not different, f"{name} does not see these compose variables as expected: {sorted(different)}"


def executed_by(stack: Stack) -> dict[str, list[str]]:
    """Task instance id -> the Celery workers whose log shows them executing it."""
    seen: dict[str, list[str]] = {}
    for name, node in stack.workers.items():
        text = localstack.log_file(stack.state_dir, name).read_text(errors="replace")
        for line in text.splitlines():
            if "Executing workload in Celery" in line:
                match = re.search(r"\bid=UUID\('([0-9a-f-]{36})'\)", line)
                if match:
                    seen.setdefault(match[1], []).append(node)
    return seen


def _key(ti: dict) -> str:
    return ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"


def test_training_runs_on_celery_workers_with_the_compose_environment(mlflow_server, moto_server, model_name,
                                                                      postgres_db, tmp_path):
    with compose_stack(mlflow_uri=mlflow_server.uri, s3_endpoint=moto_server.endpoint, postgres_db=postgres_db,
                       model_name=model_name, workdir=tmp_path) as stack:
        started, api = time.monotonic(), stack.api
        assert_every_process_has_the_compose_environment(stack)

        api.wait_for_dags(["training"], timeout=150)
        paused = stack.compose_env.get("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "False").lower() == "true"
        assert api.dag("training")["is_paused"] is paused  # compose's setting, not airflow.cfg's, is in force
        api.set_paused("training", False)
        run_id = api.trigger("training", conf=CONF, note="celery integration test")
        run = api.wait_run("training", run_id, timeout=360, poll=0.5, on_task=lambda ti: print(
            f"  {_key(ti)} {ti['state']} on {ti.get('hostname') or '-'}", flush=True))
        print(f"  run finished: {time.monotonic() - started:.0f} s", flush=True)

        tis = api.task_instances("training", run_id)
        assert run["state"] == "success", {_key(ti): ti["state"] for ti in tis}
        assert run["conf"] == CONF and run["run_type"] == "manual"
        assert {_key(ti): ti["state"] for ti in tis} == EXPECTED_STATES
        assert [r["dag_run_id"] for r in api.dag_runs("training")] == [run_id]  # no scheduled run got in between

        executions = executed_by(stack)
        for ti in (ti for ti in tis if ti["state"] == "success"):
            assert len(executions.get(ti["id"], [])) == 1, f"{_key(ti)} executed by {executions.get(ti['id'])}"
            assert ti["queue"] == stack.queue, ti
            assert ti["hostname"] == executions[ti["id"]][0].split("@")[1], ti  # the host of the celery node
        print("  train tasks ran on: " + ", ".join(
            f"{_key(ti)} {executions[ti['id']][0].split('@')[0]}" for ti in tis if ti["task_id"] == "train"))

        # the task logs hold the project's own lines, not skops's import-time flood (~1,160 lines each, issue 15)
        logs = {_key(ti): api.task_log("training", run_id, ti["task_id"], try_number=ti["try_number"],
                                       map_index=ti["map_index"]) for ti in tis if ti["state"] == "success"}
        flooded = {key: sum("DeprecatedImportWarning" in line for line in lines) for key, lines in logs.items()}
        assert flooded == dict.fromkeys(logs, 0), flooded
        assert any("hold-out of" in line for line in logs["evaluate"]), logs["evaluate"][-20:]

    from autoretrain import tracking
    from autoretrain.config import load_settings

    client = tracking.client_for(load_settings().with_overrides({"tracking_uri": mlflow_server.uri,
                                                                 "model_name": model_name}))
    champion = registry.alias_version(client, model_name, "champion")
    assert champion is not None and champion.version == "1"
    assert champion.tags["airflow.dag_id"] == "training" and champion.tags["airflow.run_id"] == run_id
    assert champion.tags["autoretrain.family"] in CONF["families"]
