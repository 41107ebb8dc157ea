"""docker-compose.yaml, unchanged, in containers: the image, the closed loop, and the faults a user would hit.

`make test-compose` runs this module (not `make test`): podman builds the project image on a local
Debian base and runs every service of the compose file (Airflow api-server, scheduler,
dag-processor, triggerer, two Celery workers, MLflow on Postgres + S3, the prediction service);
tools/compose/podman.override.yaml swaps only the images that cannot be pulled here (Postgres,
Redis, MinIO -> moto). The tests share one stack and run in file order: the closed loop first,
then each fault on the stack it left.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from autoretrain.config import load_settings
from devstack import compose_stack as cs
from devstack.airflow_api import AirflowAPI
from devstack.scenarios import holdout_messages, referral_campaign
from tests.conftest import eventually

DAGS = ("training", "monitoring", "retrain_compare_promote")
MODEL = "sms-spam"
ALL_FAMILIES = ["complement_nb", "logreg", "linear_svm", "sgd"]
pytestmark = pytest.mark.timeout(1800)  # per test: the stack runs on two cores
SERVICES_ON_THE_IMAGE = ("mlflow", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                         "airflow-triggerer", "airflow-worker", "prediction")


# ------------------------------------------------------------------------------------------ helpers
def airflow(stack: cs.ComposeStack) -> AirflowAPI:
    return AirflowAPI(stack.url("AIRFLOW_PORT"), stack.env.get("AIRFLOW_ADMIN_USER", "admin"),
                      stack.env["AIRFLOW_ADMIN_PASSWORD"], timeout=60)


def service(stack: cs.ComposeStack) -> httpx.Client:
    return httpx.Client(base_url=stack.url("PREDICTION_PORT"), timeout=30)


def champion_answering(stack: cs.ComposeStack) -> str | None:
    """The model version the service answers with, or None while it is not ready."""
    try:
        with service(stack) as http:
            answer = http.post("/predict", json={"message": "are we still on for lunch?"})
    except httpx.HTTPError:
        return None
    return str(answer.json()["model_version"]) if answer.status_code == 200 else None


def replay(stack: cs.ComposeStack, messages: list[tuple[str, str]], offset: int = 0) -> list[dict[str, Any]]:
    """Each message through POST /predict, its true label to POST /feedback."""
    token = stack.env["AUTORETRAIN_FEEDBACK_TOKEN"]
    with service(stack) as http:
        answers = [http.post("/predict", json={"message": text, "user_id": f"u{offset + i}"}).raise_for_status().json()
                   for i, (text, _) in enumerate(messages)]
        time.sleep(1.0)  # the log writer's flush
        for answer, (_, label) in zip(answers, messages, strict=True):
            http.post("/feedback", json={"request_id": answer["request_id"], "label": label},
                      headers={"Authorization": f"Bearer {token}"}).raise_for_status()
    return answers


def follow(api: AirflowAPI, dag_id: str, run_id: str, timeout: float = 900) -> dict[str, Any]:
    run = api.wait_run(dag_id, run_id, timeout=timeout)
    states = {ti["task_id"]: ti["state"] for ti in api.task_instances(dag_id, run_id)}
    assert run["state"] == "success", (dag_id, run_id, states)
    return run


def counts(stack: cs.ComposeStack) -> dict[str, int]:
    """Rows that must survive every fault: MLflow's runs and versions, Airflow's runs, AutoRetrain's tables."""
    mlflow = {table: int(stack.psql(f"SELECT count(*) FROM {table}", "mlflow"))
              for table in ("runs", "model_versions", "registered_model_aliases")}
    airflow_runs = {"dag_run": int(stack.psql("SELECT count(*) FROM dag_run", "airflow"))}
    ours = {table: int(stack.psql(f"SELECT count(*) FROM {table}"))
            for table in ("prediction_log", "prediction_feedback", "alias_audit", "model_artifacts", "drift_windows")}
    objects = stack.exec("minio", "python", "-c", S3_OBJECTS).stdout.strip()
    return {**mlflow, **airflow_runs, **ours, "s3_objects": int(objects)}


#: the objects in the bucket, counted inside the S3 stand-in's container (its port is not published)
S3_OBJECTS = ("import boto3; s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:9000', aws_access_key_id='x', "
              "aws_secret_access_key='x', region_name='us-east-1'); "
              "pages = s3.get_paginator('list_objects_v2').paginate(Bucket='autoretrain'); "
              "print(sum(p.get('KeyCount', 0) for p in pages))")


def champion_in_mlflow(stack: cs.ComposeStack) -> str | None:
    """The version MLflow's registry holds as champion (over its basic auth), or None if it does not answer."""
    auth = (stack.env.get("MLFLOW_TRACKING_USERNAME", "autoretrain"), stack.env["MLFLOW_TRACKING_PASSWORD"])
    try:
        r = httpx.get(stack.url("MLFLOW_PORT") + "/api/2.0/mlflow/registered-models/alias",
                      params={"name": MODEL, "alias": "champion"}, auth=auth, timeout=10)
    except httpx.HTTPError:
        return None
    return str(r.json()["model_version"]["version"]) if r.status_code == 200 else None


def settled(api: AirflowAPI, timeout: float = 1200) -> None:
    """Wait until no run of any DAG is queued or running (e.g. a rollout a training handed over)."""
    def idle() -> bool | None:
        busy = [r["dag_run_id"] for d in DAGS for r in api.dag_runs(d) if r["state"] in ("queued", "running")]
        return not busy or None

    eventually(idle, what="every DAG run finished", timeout=timeout, interval=5)


class Traffic(threading.Thread):
    """Requests one after another until stopped; keeps the request_id of every answered one."""

    def __init__(self, stack: cs.ComposeStack, messages: list[tuple[str, str]]) -> None:
        super().__init__(daemon=True)
        self.stack, self.messages = stack, messages
        self.answered: list[str] = []
        self.failed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with service(self.stack) as http:
            i = 0
            while not self.stop.is_set():
                text = self.messages[i % len(self.messages)][0]
                i += 1
                try:
                    answer = http.post("/predict", json={"message": text, "user_id": f"t{i}"}, timeout=5)
                except httpx.HTTPError:
                    self.failed += 1
                    time.sleep(0.2)
                    continue
                if answer.status_code == 200:
                    self.answered.append(answer.json()["request_id"])
                else:
                    self.failed += 1
                    time.sleep(0.2)
                time.sleep(0.02)


#: SIGKILL to every process of the service in its container (`podman kill` would count as a person's
#: stop, which the restart policy respects; a crash does not)
CRASH = ("import os, signal\n"
         "for pid in [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]:\n"
         "    try:\n"
         "        if b'autoretrain' in open(f'/proc/{pid}/cmdline', 'rb').read():\n"
         "            os.kill(int(pid), signal.SIGKILL)\n"
         "    except OSError:\n"
         "        pass\n")


def logged(stack: cs.ComposeStack, request_ids: list[str]) -> int:
    """How many of these answered requests have their row in the prediction log."""
    ids = ",".join(f"'{rid}'" for rid in request_ids if rid.replace("-", "").isalnum())
    return int(stack.psql(f"SELECT count(DISTINCT request_id) FROM prediction_log WHERE request_id IN ({ids})"))


# -------------------------------------------------------------------------------------------- tests
def test_images_run_as_the_declared_uid_and_hold_no_secret(stack: cs.ComposeStack, figures: dict[str, Any]) -> None:
    image = stack.inspect(cs.PROJECT_IMAGE)
    assert image["Config"]["User"] == str(cs.UID)
    for name in SERVICES_ON_THE_IMAGE:
        for container in stack.containers(name):
            assert cs.podman("exec", container, "id", "-u").stdout.strip() == str(cs.UID), container

    secrets = [stack.env[key] for key in cs.SECRET_KEYS]
    history = cs.podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", cs.PROJECT_IMAGE).stdout
    environment = "\n".join(image["Config"].get("Env") or [])
    assert not [s for s in secrets if s in history or s in environment]

    # the filesystem of every layer: the .env that sat in the build context must not be in it
    began = time.monotonic()
    root = cs.podman("image", "mount", cs.PROJECT_IMAGE).stdout.strip()
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".patterns") as patterns:
            patterns.write("\n".join(secrets) + "\n")
            patterns.flush()
            found = subprocess.run(["grep", "-rlaF", "-f", patterns.name, root], capture_output=True,
                                      text=True, check=False)
        assert found.returncode == 1, f"secrets found in the image: {found.stdout[:2000]}"  # 1: no match
        assert not (Path(root) / "opt/autoretrain/.env").exists()
    finally:
        cs.podman("image", "unmount", cs.PROJECT_IMAGE, check=False)
    figures["image"] = {"size_mb": round(int(image["Size"]) / 1e6), "uid": cs.UID,
                        "secrets_searched": len(secrets), "scan_s": round(time.monotonic() - began, 1),
                        "env_in_build_context": figures.get("env_in_build_context")}


def test_closed_loop_in_containers(stack: cs.ComposeStack, figures: dict[str, Any]) -> None:
    """Training registers a champion, traffic drifts, monitoring triggers a retrain, v2 answers."""
    api = airflow(stack)
    api.wait_for_dags(DAGS, timeout=300)
    began = time.monotonic()
    for dag_id in DAGS:
        api.set_paused(dag_id, False)
    # unpausing starts the weekly training's latest slot on the scheduler, as a user's first `up` does
    run_id = eventually(lambda: next((r["dag_run_id"] for r in api.dag_runs("training")), None),
                        what="the scheduled training run", timeout=120, interval=2)
    follow(api, "training", run_id)
    assert eventually(lambda: champion_answering(stack), what="the service on champion v1", timeout=120,
                      interval=2) == "1"
    figures["loop"] = {"training_s": round(time.monotonic() - began, 1)}

    settings = load_settings()
    start = datetime.now(UTC) - timedelta(seconds=5)
    holdout = holdout_messages(settings)
    replay(stack, holdout[:120])
    campaign = replay(stack, referral_campaign(150, 50, seed=11), offset=1000)
    assert sum(a["label"] == "spam" for a in campaign[:150]) < 15  # v1 misses the campaign
    time.sleep(max(0.0, (start + timedelta(seconds=41) - datetime.now(UTC)).total_seconds()))
    end = datetime.now(UTC)

    began = time.monotonic()
    watched = api.trigger("monitoring", {"window_end": end.isoformat(),
                                         "window_hours": (end - start).total_seconds() / 3600,
                                         "drift_consecutive_windows": 1}, note="compose test: drifted window")
    follow(api, "monitoring", watched)
    assert api.xcom("monitoring", watched, "decide", key="decision")["retrain"] is True
    figures["loop"]["monitoring_s"] = round(time.monotonic() - began, 1)

    began = time.monotonic()
    retrain = eventually(lambda: next((r["dag_run_id"] for r in api.dag_runs("retrain_compare_promote")
                                       if r["run_type"] != "scheduled"), None),
                         what="the retrain monitoring triggered", timeout=60, interval=2)
    traffic = Traffic(stack, referral_campaign(4, 36, seed=9) + holdout[300:500])  # the canary's users
    traffic.start()
    try:
        follow(api, "retrain_compare_promote", retrain, timeout=1200)
    finally:
        traffic.stop.set()
        traffic.join(timeout=10)
    assert eventually(lambda: champion_answering(stack) == "2" or None, what="the service on champion v2",
                      timeout=60, interval=1)
    with service(stack) as http:
        fresh = [http.post("/predict", json={"message": t}).json() for t, _ in referral_campaign(40, 0, seed=12)]
    assert {a["model_version"] for a in fresh} == {"2"}
    caught = sum(a["label"] == "spam" for a in fresh)
    assert caught >= 36, caught
    figures["loop"].update({"retrain_s": round(time.monotonic() - began, 1), "v2_caught_of_40": caught,
                            "canary_requests": len(traffic.answered)})


def test_a_worker_killed_mid_task_is_retried_on_the_other(stack: cs.ComposeStack, figures: dict[str, Any]) -> None:
    api = airflow(stack)
    workers = {stack.inspect(name)["Config"]["Hostname"]: name for name in stack.containers("airflow-worker")}
    assert len(workers) == 2, workers
    # four families: four mapped `train` tasks over both workers, long enough to be killed inside one
    run_id = api.trigger("training", {"families": ALL_FAMILIES}, note="compose test: worker killed mid-task")

    def running_train() -> dict[str, Any] | None:
        return next((t for t in api.task_instances("training", run_id) if t["task_id"] == "train"
                     and t["state"] == "running" and t.get("hostname") in workers), None)

    ti = eventually(running_train, what="train running on a worker", timeout=600, interval=1)
    time.sleep(3)  # well inside the task
    victims = {t["map_index"] for t in api.task_instances("training", run_id)
               if t["task_id"] == "train" and t["state"] == "running" and t.get("hostname") == ti["hostname"]}
    killed = workers[ti["hostname"]]
    cs.podman("kill", killed)
    cs.podman("stop", "--time", "1", killed, check=False)  # a dead node: the restart policy must not bring it back
    killed_at = time.monotonic()
    try:
        follow(api, "training", run_id, timeout=1200)
        trains = {t["map_index"]: t for t in api.task_instances("training", run_id) if t["task_id"] == "train"}
        for index in victims:
            finished = trains[index]
            assert finished["state"] == "success" and finished["try_number"] >= 2, finished
            assert finished["hostname"] != ti["hostname"], (finished["hostname"], ti["hostname"])
        figures["worker_killed"] = {"result": "retried on the other worker", "tasks_killed": len(victims),
                                    "try_numbers": sorted(trains[i]["try_number"] for i in victims),
                                    "kill_to_success_s": round(time.monotonic() - killed_at, 1)}
    finally:
        cs.podman("start", killed)
        stack.wait_healthy("airflow-worker", timeout=300)


def test_prediction_restart_loses_no_answered_row(stack: cs.ComposeStack, figures: dict[str, Any]) -> None:
    prediction = stack.container("prediction")
    results: dict[str, Any] = {}
    for how, action in (("SIGTERM (podman restart)", ["restart", "--time", "45", prediction]),
                        ("SIGKILL of the service's processes (a crash: the restart policy brings it back)",
                         ["exec", prediction, "python", "-c", CRASH])):
        traffic = Traffic(stack, holdout_messages(load_settings())[:200])
        traffic.start()
        eventually(lambda t=traffic: len(t.answered) >= 150 or None, what="traffic before the restart", timeout=60)
        cs.podman(*action, check=False)  # the crash ends the exec'd process too
        eventually(lambda: champion_answering(stack), what="the service back", timeout=180, interval=1)
        answered_before = len(traffic.answered)
        eventually(lambda t=traffic, n=answered_before: len(t.answered) >= n + 50 or None,
                   what="traffic after the restart", timeout=60)
        traffic.stop.set()
        traffic.join(timeout=10)
        answered = list(traffic.answered)
        in_log = eventually(lambda a=answered: (n := logged(stack, a)) == len(set(a)) and n or None,
                            what="every answered request in the prediction log", timeout=60, interval=1)
        results[how] = {"answered": len(answered), "in_log": in_log, "lost": len(set(answered)) - in_log,
                        "failed_requests_while_down": traffic.failed}
    figures["prediction_restarted"] = results


def test_postgres_restart_every_service_recovers(stack: cs.ComposeStack, figures: dict[str, Any]) -> None:
    before = counts(stack)
    cs.podman("restart", "--time", "20", stack.container("postgres"))
    restarted = time.monotonic()
    stack.wait_healthy("postgres", timeout=120)
    api = airflow(stack)
    # the service: answers and logs again
    eventually(lambda: champion_answering(stack), what="the prediction service answering", timeout=180, interval=2)
    answers = replay(stack, referral_campaign(5, 5, seed=21), offset=5000)
    eventually(lambda: logged(stack, [a["request_id"] for a in answers]) == len(answers) or None,
               what="new predictions logged after the restart", timeout=120, interval=2)
    # MLflow: the registry answers (basic auth) with the champion the service answers with
    assert eventually(lambda: champion_in_mlflow(stack), what="MLflow's registry", timeout=120,
                      interval=2) == champion_answering(stack)
    # Airflow: a run scheduled, executed on a worker and reported through the Execution API
    quiet_end = datetime.now(UTC) - timedelta(days=30)  # a window without traffic: measures, decides no_action
    run_id = eventually(lambda: api.trigger("monitoring", {"window_end": quiet_end.isoformat(), "window_hours": 1},
                                            note="compose test: after a Postgres restart"),
                        what="the api-server accepting a run", timeout=180, interval=3)
    follow(api, "monitoring", run_id, timeout=600)
    after = counts(stack)
    assert all(after[key] >= before[key] for key in before), (before, after)
    restarts = {name: stack.inspect(c)["RestartCount"] for name in stack.services()
                for c in stack.containers(name) if stack.inspect(c)["State"].get("Running")}
    figures["postgres_restarted"] = {"recovered_s": round(time.monotonic() - restarted, 1),
                                     "container_restarts": {k: v for k, v in restarts.items() if v},
                                     "manual_steps": 0}


def test_down_and_up_keep_every_model_run_and_row(stack: cs.ComposeStack, figures: dict[str, Any]) -> None:
    settled(airflow(stack))
    champion = champion_in_mlflow(stack)
    before = counts(stack)
    began = time.monotonic()
    stack.down()
    project = f"label=io.podman.compose.project={stack.project}"
    assert not cs.podman("ps", "-a", "-q", "--filter", project).stdout.strip()
    assert len(stack.volumes()) >= 5, stack.volumes()
    down_s = round(time.monotonic() - began, 1)
    up_s = stack.up(progress=lambda m: print(m, flush=True))
    after = counts(stack)
    for key in ("runs", "model_versions", "registered_model_aliases", "prediction_log", "prediction_feedback",
                "alias_audit",
                "model_artifacts", "drift_windows", "s3_objects"):
        assert after[key] == before[key], (key, before, after)
    assert after["dag_run"] >= before["dag_run"], (before, after)
    # the champion's artifacts came back from S3 (the stand-in's volume) and the service serves it
    assert champion_in_mlflow(stack) == champion
    assert eventually(lambda: champion_answering(stack), what="the service after up", timeout=180,
                      interval=2) == champion
    figures["down_up"] = {"down_s": down_s, "up_s": up_s, "rows_kept": before}


@pytest.fixture(autouse=True)
def _timed(request: pytest.FixtureRequest, figures: dict[str, Any]) -> Any:
    began = time.monotonic()
    yield
    figures.setdefault("test_s", {})[request.node.name.removeprefix("test_")] = round(time.monotonic() - began, 1)
