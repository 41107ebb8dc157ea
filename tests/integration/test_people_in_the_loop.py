"""People in the loop (issue 14) under the real scheduler: an Airflow api-server, scheduler and DAG processor
(the project's LocalExecutor, Airflow's tables on a fresh Postgres database), driven only through the REST API.

One stack for the module, the tests in order (each leaves the registry as the next expects):

* a weekly (scheduled) ``training`` run with a champion hands its version to ``retrain_compare_promote``;
  it is trained and registered while another version's canary runs, the ``challenger`` alias never
  leaves the canary's version, the handed-over run waits for the canary's run, then compares and promotes;
* ``promotion_mode=approve``: the run waits in ``awaiting_input`` with the comparison in its request;
  Approve (``PATCH .../hitlDetails``) promotes, with the approver in the alias audit (and the time from
  the answer to the champion alias measured); Reject withdraws with the reviewer's comment; no answer
  within ``approval_timeout_hours`` withdraws and alerts;
* enough labels through the prediction log make ``feedback_trigger`` emit the labelled-feedback Asset,
  and ``retrain_compare_promote`` starts with reason "feedback"; a count with nothing new starts nothing.

Versions 1 (weak: 120 training rows) and 2 (calibrated ComplementNB) are registered in-process the way
training registers (hold-out scores in a parent run, the artifact record); version 3 comes from the DAG.

Time, on 2 shared cores with other engineers' suites running: 6 min 41 s at load average ~8 (7 min 57 s and
9 min 44 s at 12-14). At load ~8: the stack 61 s (``airflow db migrate`` with the seeding beside it; the session's
mlflow server another ~20 s when this module starts it), the weekly training during a 2-minute canary 188 s
(the training is the long pole), approval 33 s (with the prediction service started to time the swap),
rejection 20 s, timeout 37 s, feedback 10 s. Measured: approval -> champion alias 3.0 s (4.0-5.2 s at load
12-14), -> the new version answering /predict 6.7 s (15.6 s at load 13).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.naive_bayes import ComplementNB

from autoretrain import lineage, tracking
from autoretrain.alerts.store import AlertStore
from autoretrain.audit import aliases as audit
from autoretrain.config import Settings, load_settings
from autoretrain.data.sources import read_dataset
from autoretrain.db import schema
from autoretrain.db.engine import make_engine
from autoretrain.promotion import rollout
from autoretrain.training.families import build_pipeline
from devstack import localstack
from devstack.airflow_api import AirflowAPI
from tests.conftest import ROOT, SESSION_TMP, eventually, free_port, migrated, serving_process
from tests.integration.test_promotion_rollout import register

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
DAG = "retrain_compare_promote"
MIN_LABELS = 20
#: the worker's settings of the whole stack (a run's conf overrides only Params of RUN_SETTINGS)
WORKER = {"AUTORETRAIN_FAMILIES": "complement_nb", "AUTORETRAIN_CV_FOLDS": "2", "AUTORETRAIN_BOOTSTRAP_SAMPLES": "500",
          "AUTORETRAIN_CANARY_MINUTES": "0", "AUTORETRAIN_CANARY_POKE_SECONDS": "15",
          "AUTORETRAIN_CANARY_GRACE_SECONDS": "0", "AUTORETRAIN_FEEDBACK_RETRAIN_MIN_LABELS": str(MIN_LABELS),
          "AUTORETRAIN_EXPERIMENT_NAME": "people-in-the-loop",
          "AUTORETRAIN_F1_MIN": "0.75"}  # the seeded in-process ComplementNB scores F1 0.81 on its hold-out
HANDED_OVER_PATH = {"trigger", "source", "handed_over", "candidate", "compare", "no_canary", "approval"}


@dataclass
class Stack:
    api: AirflowAPI
    settings: Settings  # what the tasks see (tracking URI, database, model name)
    state_dir: Path
    versions: dict[str, str]  # "weak" (the first champion), "good"


def base_environment() -> dict[str, str]:
    """This process's environment without any Airflow, AutoRetrain or MLflow setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW", "AUTORETRAIN_", "MLFLOW_"))}


@pytest.fixture(scope="module")
def stack(mlflow_server, postgres_db) -> Iterator[Stack]:
    started = time.monotonic()
    work = SESSION_TMP / f"hitl-{uuid.uuid4().hex[:6]}"
    home, state_dir = work / "airflow", work / "stack"
    home.mkdir(parents=True)
    password, port = secrets.token_urlsafe(16), free_port()
    (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({"admin": password}))
    model_name = f"sms-spam-hitl-{uuid.uuid4().hex[:6]}"
    db = migrated(postgres_db("hitl"))
    airflow_db = postgres_db("hitl_airflow").replace("postgresql://", "postgresql+psycopg2://", 1)
    env = {**base_environment(), **WORKER,
           "AIRFLOW_HOME": str(home), "AIRFLOW_CONFIG": str(ROOT / "airflow.cfg"), "AUTORETRAIN_HOME": str(ROOT),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db, "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # each test unpauses only the DAGs it drives
           "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}/",
           "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
           "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2",  # the HITL timeout sweep (default 15 s)
           "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
           "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
           "MLFLOW_TRACKING_URI": mlflow_server.uri, "AUTORETRAIN_DATABASE_URL": db,
           "AUTORETRAIN_MODEL_NAME": model_name, "AUTORETRAIN_STATE_DIR": str(work / "state"),
           "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
           "GIT_PYTHON_REFRESH": "quiet", "PYTHONUNBUFFERED": "1"}
    migrate = subprocess.Popen([str(BIN / "airflow"), "db", "migrate"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    settings = load_settings().with_overrides({"tracking_uri": mlflow_server.uri, "model_name": model_name,
                                               "database_url": db, "experiment_name": WORKER[
                                                   "AUTORETRAIN_EXPERIMENT_NAME"], "bootstrap_samples": 500})
    versions = seed(settings)  # while Airflow's tables are created
    output, _ = migrate.communicate(timeout=300)
    assert migrate.returncode == 0, output[-3000:]
    airflow = str(BIN / "airflow")
    services = [
        localstack.Service("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
                           health_url=f"http://127.0.0.1:{port}/api/v2/monitor/health"),
        localstack.Service("scheduler", [airflow, "scheduler", "--skip-serve-logs"]),
        localstack.Service("dag-processor", [airflow, "dag-processor"]),
    ]
    with localstack.up(services, state_dir, env):
        api = AirflowAPI(f"http://127.0.0.1:{port}", "admin", password)
        api.wait_for_dags([DAG, "training", "feedback_trigger"], timeout=180)
        api.set_paused(DAG, False)  # Asset-scheduled: unpausing starts nothing by itself
        print(f"\n  stack up in {time.monotonic() - started:.0f} s", flush=True)
        yield Stack(api=api, settings=settings, state_dir=state_dir, versions=versions)


def seed(settings: Settings) -> dict[str, str]:
    """Version 1 (weak: 120 training rows) as champion, version 2 (good) registered without alias."""
    frame = read_dataset(load_settings().resolved_data_uri(), labels=("ham", "spam")).frame
    frame = frame[~frame["text"].str.casefold().duplicated()].reset_index(drop=True)
    train, holdout = frame.iloc[:3500], frame.iloc[4000:5000].reset_index(drop=True)
    x, y = train[["text"]], train["label"].to_numpy()
    weak = build_pipeline(ComplementNB()).fit(x.iloc[:120], y[:120])
    good = build_pipeline(CalibratedClassifierCV(ComplementNB(), method="sigmoid", cv=3)).fit(x, y)
    v1, v2 = (register(settings, model, holdout) for model in (weak, good))
    assert (v1.version, v2.version) == ("1", "2")
    rollout.promote_challenger(settings, version="1", run_id="test/seed", actor="test:hitl",
                               reasons=["seed: a weak first champion"])
    return {"weak": "1", "good": "2"}


@pytest.fixture
def seeded(stack: Stack) -> dict[str, str]:
    return stack.versions


# ------------------------------------------------------------------------------------------- helpers
def aliases(settings: Settings) -> dict[str, str]:
    client = tracking.client_for(settings)
    return {a: str(v) for a, v in client.get_registered_model(settings.model_name).aliases.items()}


def audit_rows(settings: Settings) -> list[audit.AuditRecord]:
    with audit.engine_for(settings) as engine:
        return list(reversed(audit.history(engine, settings.model_name, limit=500)))


def states(api: AirflowAPI, dag_id: str, run_id: str) -> dict[str, str]:
    return {ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]": ti["state"]
            for ti in api.task_instances(dag_id, run_id)}


def until(api: AirflowAPI, dag_id: str, run_id: str, check: Callable[[], Any], *, what: str,
          timeout: float = 150, interval: float = 1.0) -> Any:
    """``check()`` once truthy, polled while the run goes on; fails at once (with its task states) if the run ended."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        run = api.dag_run(dag_id, run_id)
        if run["state"] in ("success", "failed") and not (value := check()):
            raise AssertionError(f"{what}: run {run_id} ended {run['state']} first: {states(api, dag_id, run_id)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s: {states(api, dag_id, run_id)}")
        time.sleep(interval)
    return value


def wait_task(api: AirflowAPI, dag_id: str, run_id: str, task_id: str, state: str, timeout: float = 150) -> None:
    until(api, dag_id, run_id, lambda: states(api, dag_id, run_id).get(task_id) == state,
          what=f"{task_id} {state}", timeout=timeout)


def reset_champion(settings: Settings, version: str, why: str) -> None:
    """Put the weak version back as champion (audited), so the next challenger has something to beat."""
    rollout.rollback(settings, run_id=f"test/{why}", actor="test:hitl", reason=why, to_version=version)


def rollout_run(api: AirflowAPI, **conf: Any) -> str:
    return api.trigger(DAG, conf={"canary_minutes": 0, **conf})


def last_move(settings: Settings, alias: str) -> audit.AuditRecord:
    return next(r for r in reversed(audit_rows(settings)) if r.alias == alias)


# --------------------------------------------------------------------------------------------- tests
def test_weekly_training_with_a_champion_rolls_out_and_never_moves_a_running_canary(stack, seeded) -> None:
    api, settings = stack.api, stack.settings
    api.set_paused("training", False)  # catchup=False: the scheduler starts last Sunday's run at once, the next
    # cron point is next Sunday
    training_run = eventually(lambda: next((r["dag_run_id"] for r in api.dag_runs("training")), None),
                              what="the scheduled training run", timeout=60, interval=1.0)
    # a canary of version 2 while that training runs (2 minutes: the training registers well within it)
    canary_run = rollout_run(api, version=seeded["good"], canary_minutes=2, reason="canary under test")
    until(api, DAG, canary_run, lambda: aliases(settings).get("challenger") == "2", what="the canary's challenger",
          interval=0.5)
    seen = set()
    while states(api, DAG, canary_run).get("canary") not in ("success", "failed"):  # the canary still runs:
        seen.add(aliases(settings).get("challenger"))  # read after the state, so no withdraw can come between
        time.sleep(0.5)
    assert seen == {"2"}, f"challenger moved during the canary: {seen}"
    canary = api.wait_run(DAG, canary_run, timeout=60)
    canary_states = states(api, DAG, canary_run)
    assert canary["state"] == "success"
    assert canary_states["withdraw"] == "success" and canary_states["approval"] == "skipped"  # no traffic: failed
    training = api.wait_run("training", training_run, timeout=240)
    api.set_paused("training", True)  # (a paused DAG's running runs are not scheduled: only after it ended)
    assert training["state"] == "success" and training["run_type"] == "scheduled"
    t_states = states(api, "training", training_run)
    assert {k: t_states[k] for k in ("register", "alias", "needs_rollout", "rollout")} == dict.fromkeys(
        ("register", "alias", "needs_rollout", "rollout"), "success"), t_states
    assert api.xcom("training", training_run, "alias")["alias"] is None  # no challenger from the training itself
    ended = {ti["task_id"]: ti["end_date"] for ti in api.task_instances("training", training_run)}
    canary_end = next(ti["end_date"] for ti in api.task_instances(DAG, canary_run) if ti["task_id"] == "canary")
    assert ended["rollout"] < canary_end, "the weekly training did not hand its version over during the canary"

    handed = f"rollout__{training_run}"
    done = api.wait_run(DAG, handed, timeout=240)
    r_states = states(api, DAG, handed)
    assert done["state"] == "success", r_states
    assert done["conf"]["version"] == "3"
    assert {t for t, s in r_states.items() if s == "success"} == HANDED_OVER_PATH | {"promote"}
    assert r_states["load"] == "skipped" and r_states["register"] == "skipped"  # no training of its own
    assert aliases(settings) == {"champion": "3", "previous": "1"}
    moves = [(r.alias, r.action, r.from_version, r.to_version) for r in audit_rows(settings)]
    assert moves == [("champion", "promote", None, "1"), ("challenger", "canary", None, "2"),
                     ("challenger", "withdraw", "2", None), ("previous", "promote", None, "1"),
                     ("champion", "promote", "1", "3")]
    assert last_move(settings, "champion").reasons[0].startswith(f"trigger (training): weekly training {training_run}")


def test_approve_mode_waits_then_promotes_on_approval(stack, seeded) -> None:
    api, settings = stack.api, stack.settings
    reset_champion(settings, seeded["weak"], "before the approval test")
    run = rollout_run(api, version=seeded["good"], promotion_mode="approve", reason="approve test")
    port = free_port()
    service_env = {"MLFLOW_TRACKING_URI": settings.tracking_uri, "AUTORETRAIN_MODEL_NAME": settings.model_name,
                   "AUTORETRAIN_DATABASE_URL": settings.database_url, "AUTORETRAIN_ROUTING_MODE": "full",
                   "AUTORETRAIN_STATE_DIR": str(stack.state_dir / "serving"),
                   "AUTORETRAIN_RELOAD_INTERVAL_SECONDS": "0.5"}
    with serving_process([sys.executable, "-m", "autoretrain.serving", "--host", "127.0.0.1", "--port", str(port)],
                         f"http://127.0.0.1:{port}/ready", stack.state_dir / "serving.log", env=service_env,
                         timeout=120), httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        answering = _approve_and_time(stack, run, http)
    print(f"\n  approval -> new champion answering /predict: {answering:.1f} s", flush=True)


def _approve_and_time(stack: Stack, run: str, http: httpx.Client) -> float:
    """Approve once the run waits; the seconds from the answer to version 2 answering ``/predict``."""
    api, settings = stack.api, stack.settings

    def serving() -> str:
        response = http.post("/predict", json={"message": "win a free prize now"})
        assert response.status_code == 200, response.text
        return str(response.json()["model_version"])

    assert serving() == "1"
    wait_task(api, DAG, run, "approval", "awaiting_input")
    detail = api.hitl_detail(DAG, run, "approval")
    assert detail["subject"] == f"Approve {settings.model_name} version 2 as champion? (champion: version 1)"
    body = detail["body"]
    assert "| metric | champion (v1) | challenger (v2) |" in body and "| f1 |" in body
    assert "- McNemar: p = " in body and "- promote: every check passed" in body
    assert f"#/models/{settings.model_name}/versions/2" in body and f"#/models/{settings.model_name}/versions/1" in body
    assert detail["options"] == ["Approve", "Reject"] and detail["defaults"] == ["Reject"]
    assert aliases(settings) == {"champion": "1", "challenger": "2"}  # under review = the challenger
    time.sleep(4)  # it waits: nobody answered, nothing moves
    assert states(api, DAG, run)["approval"] == "awaiting_input" and aliases(settings)["champion"] == "1"

    assert serving() == "1"
    answered = time.monotonic()
    api.respond(DAG, run, "approval", ["Approve"], {"comment": "ship it"})
    eventually(lambda: aliases(settings).get("champion") == "2", what="champion on version 2", timeout=120,
               interval=0.1)
    to_alias = time.monotonic() - answered
    eventually(lambda: serving() == "2", what="version 2 answering /predict", timeout=60, interval=0.1)
    to_answer = time.monotonic() - answered
    done = api.wait_run(DAG, run, timeout=120)
    print(f"\n  approval -> champion alias moved: {to_alias:.1f} s, -> version 2 answers /predict: {to_answer:.1f} s; "
          f"run ended {time.monotonic() - answered:.1f} s after the answer", flush=True)
    assert done["state"] == "success" and states(api, DAG, run)["not_approved"] == "skipped"
    assert aliases(settings) == {"champion": "2", "previous": "1"}
    move = last_move(settings, "champion")
    assert (move.action, move.from_version, move.to_version) == ("promote", "1", "2")
    assert move.reason == "approval: approved by admin: ship it"
    assert move.metrics["approval"]["outcome"] == "approved" and move.metrics["approval"]["by"] == "admin"
    assert move.metrics["approval"]["comment"] == "ship it"
    assert api.xcom(DAG, run, "approval", key="answer")["by"] == "admin"
    with AlertStore(settings.database_url) as store:  # people were told a decision waited (no Slack here: logged)
        asked = store.records(dedup_key=f"approval_request:{settings.model_name}:2")
    assert [(r.kind, r.status) for r in asked] == [("approval_request", "logged")]
    assert "waits for your approval" in asked[0].title and "Required Actions" in asked[0].message
    return to_answer


def test_approve_mode_withdraws_on_rejection_with_the_comment_in_the_audit(stack, seeded) -> None:
    api, settings = stack.api, stack.settings
    reset_champion(settings, seeded["weak"], "before the rejection test")
    run = rollout_run(api, version="3", promotion_mode="approve", reason="reject test")
    wait_task(api, DAG, run, "approval", "awaiting_input")
    assert aliases(settings)["challenger"] == "3"
    api.respond(DAG, run, "approval", ["Reject"], {"comment": "too many false positives on promo texts"})
    done = api.wait_run(DAG, run, timeout=120)
    r_states = states(api, DAG, run)
    assert done["state"] == "success" and r_states["not_approved"] == "success" and r_states["promote"] == "skipped"
    assert aliases(settings) == {"champion": "1"}
    move = last_move(settings, "challenger")
    assert (move.action, move.from_version, move.to_version) == ("withdraw", "3", None)
    assert move.reason == "approval: rejected by admin: too many false positives on promo texts"
    assert move.metrics["approval"]["by"] == "admin"
    version = tracking.client_for(settings).get_model_version(settings.model_name, "3")
    assert version.tags[lineage.DECISION] == "rejected by reviewer"
    with AlertStore(settings.database_url) as store:
        told = store.records(dedup_key=f"rejection:{settings.model_name}:3")
    assert [r.kind for r in told] == ["rejection"] and "too many false positives" in told[0].message


def test_approve_mode_withdraws_and_alerts_when_nobody_answers(stack, seeded) -> None:
    api, settings = stack.api, stack.settings
    run = rollout_run(api, version=seeded["good"], promotion_mode="approve", approval_timeout_hours=0.005,
                      reason="timeout test")  # 18 s
    wait_task(api, DAG, run, "approval", "awaiting_input")
    waiting_since = time.monotonic()
    done = api.wait_run(DAG, run, timeout=120, poll=1.0)
    print(f"\n  approval timeout (18 s) resolved after {time.monotonic() - waiting_since:.0f} s", flush=True)
    r_states = states(api, DAG, run)
    assert done["state"] == "success" and r_states["not_approved"] == "success", r_states
    assert aliases(settings) == {"champion": "1"}
    move = last_move(settings, "challenger")
    assert (move.action, move.from_version, move.to_version) == ("withdraw", "2", None)
    assert move.reason.startswith("approval: no answer before the timeout")
    assert move.metrics["approval"]["outcome"] == "timeout" and move.metrics["approval"]["by"] is None
    with AlertStore(settings.database_url) as store:
        kinds = [r.kind for r in store.records(dedup_key=f"approval_timeout:{settings.model_name}:2")]
    assert kinds == ["approval_timeout"]


def test_enough_feedback_labels_start_a_retrain(stack, seeded) -> None:
    api, settings = stack.api, stack.settings
    at = datetime.now(UTC) - timedelta(minutes=15)  # inside the interval the scheduled count covers
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(schema.predictions.insert(), [
                {"request_id": f"fb-{i}", "created_at": at, "model_name": settings.model_name, "model_version": "1",
                 "variant": "champion", "role": "served", "user_id": None, "text": f"win a prize now {i}",
                 "probability": 0.2, "label": "ham", "latency_ms": 1.0} for i in range(MIN_LABELS)])
            conn.execute(schema.feedback.insert(), [
                {"request_id": f"fb-{i}", "label": "spam", "source": "test", "created_at": at}
                for i in range(MIN_LABELS)])
    finally:
        engine.dispose()
    before = {r["dag_run_id"] for r in api.dag_runs(DAG)}

    api.set_paused("feedback_trigger", False)  # catchup=False: the latest 10-minute window is counted at once
    count_run = eventually(lambda: next((r["dag_run_id"] for r in api.dag_runs("feedback_trigger")), None),
                           what="the scheduled count", timeout=60, interval=1.0)
    api.wait_run("feedback_trigger", count_run, timeout=90)
    extra = api.xcom("feedback_trigger", count_run, "count_labels")
    assert extra["new_labels"] == MIN_LABELS and extra["since"] is None

    retrain = eventually(lambda: next((r for r in api.dag_runs(DAG) if r["dag_run_id"] not in before), None),
                         what="a retrain started by the feedback Asset", timeout=90, interval=1.0)
    assert retrain["run_type"] == "asset_triggered"
    wait_task(api, DAG, retrain["dag_run_id"], "trigger", "success", timeout=90)
    reason = api.xcom(DAG, retrain["dag_run_id"], "trigger")
    assert reason == {"source": "feedback", "reason": f"feedback: {MIN_LABELS} new labels, 1 labelled-feedback "
                                                      "event(s)", "drift": None}
    api.set_run_state(DAG, retrain["dag_run_id"], "failed")  # its training is not what this test is about

    again = api.trigger("feedback_trigger")  # nothing new since the event: no event, no retrain
    api.wait_run("feedback_trigger", again, timeout=90)
    api.set_paused("feedback_trigger", True)
    assert states(api, "feedback_trigger", again) == {"count_labels": "skipped"}
    time.sleep(3)
    assert [r["dag_run_id"] for r in api.dag_runs(DAG) if r["dag_run_id"] not in before] == [retrain["dag_run_id"]]
