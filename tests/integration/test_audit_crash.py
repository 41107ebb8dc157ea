"""The alias audit cannot miss a move: crash windows, a failed undo, external moves, two first trainings at once.

Real ``mlflow server`` (Postgres store) and AutoRetrain's tables on Postgres. A crash is a child
process that ends with ``os._exit`` at the chosen point (no ``finally``, no rollback, like a
SIGKILL): right after the intent committed (before MLflow is touched), or right after MLflow moved
(before the audit rows). Each time, the retry or the reconciler leaves MLflow and the audit in
agreement with every move recorded once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
import pytest
from sklearn.naive_bayes import ComplementNB

from autoretrain import registry, tracking
from autoretrain.alerts.store import AlertStore
from autoretrain.audit import aliases as audit
from autoretrain.audit import intents
from autoretrain.config import Settings, load_settings
from autoretrain.promotion import rollout
from autoretrain.training.families import build_pipeline
from autoretrain.training.steps import SKOPS_TRUSTED_TYPES, pinned_requirements
from tests.conftest import ROOT, migrated
from tests.integration.test_promotion_rollout import FaultProxy, audit_rows
from tests.integration.test_promotion_rollout import aliases as mlflow_aliases

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
ACTOR = "test:audit"
TEXTS = ["win a free prize now", "call to claim your cash award", "see you at lunch", "ok thanks, talk later"] * 10
LABELS = ["spam", "spam", "ham", "ham"] * 10


@pytest.fixture
def settings(mlflow_server, postgres_db, model_name, monkeypatch) -> Settings:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a dropped request must fail fast
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    return load_settings().with_overrides({"model_name": model_name, "tracking_uri": mlflow_server.uri,
                                           "experiment_name": "audit-tests",
                                           "database_url": migrated(postgres_db("audit"))})


def register(settings: Settings, n: int) -> list[str]:
    """``n`` registered versions of a tiny model (their numbers)."""
    client = tracking.client_for(settings)
    experiment = tracking.ensure_experiment(client, settings.experiment_name)
    pipe = build_pipeline(ComplementNB()).fit(pd.DataFrame({"text": TEXTS}), LABELS)
    versions = []
    with audit.engine_for(settings) as engine:
        for _ in range(n):
            with mlflow.start_run(experiment_id=experiment) as run:
                info = mlflow.sklearn.log_model(pipe, name="model", pip_requirements=pinned_requirements(),
                                                skops_trusted_types=list(SKOPS_TRUSTED_TYPES))
            versions.append(registry.register_version(client, name=settings.model_name, model_uri=info.model_uri,
                                                      run_id=run.info.run_id, engine=engine).version)
    return versions


def audited(settings: Settings) -> dict[str, str]:
    """Where the audit says each alias is (its last row per alias)."""
    state: dict[str, str | None] = {}
    for alias, _, _, to in audit_rows(settings):
        state[alias] = to
    return {a: v for a, v in state.items() if v is not None}


def intent_statuses(settings: Settings) -> list[str]:
    with audit.engine_for(settings) as engine:
        return [i.status for i in reversed(intents.history(engine, settings.model_name))]


def child_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "AUTORETRAIN_TRACKING_URI": settings.tracking_uri,
            "AUTORETRAIN_DATABASE_URL": settings.database_url, "AUTORETRAIN_MODEL_NAME": settings.model_name,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def run_child(settings: Settings, script: str, *, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=child_env(settings),
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "autoretrain"), *args], env=child_env(settings), capture_output=True,
                          text=True, timeout=180, cwd=ROOT)


PROMOTE_AND_DIE = """
    import os
    from autoretrain import registry
    from autoretrain.audit import intents
    from autoretrain.config import load_settings
    from autoretrain.promotion import rollout

    def die(*args, **kwargs):
        os._exit(137)  # no finally, no rollback: a SIGKILL at this line

    target = {where!r}
    if target == "before_mlflow":
        registry._apply = die
    else:
        intents.complete = die
    rollout.promote_challenger(load_settings(), version="2", run_id="retrain/run-2", actor="test:audit")
    raise SystemExit("the crash did not happen")
"""


# ------------------------------------------------------------------------------------ crash windows
def test_a_crash_after_the_intent_before_mlflow_is_finished_by_the_reconciler(settings) -> None:
    register(settings, 2)
    rollout.promote_challenger(settings, version="1", run_id="seed", actor=ACTOR)
    crashed = run_child(settings, PROMOTE_AND_DIE.format(where="before_mlflow"))
    assert crashed.returncode == 137, crashed.stderr[-2000:]
    assert mlflow_aliases(settings) == {"champion": "1"}  # MLflow never heard of the move ...
    assert audit_rows(settings) == [("champion", "promote", None, "1")]
    assert intent_statuses(settings) == ["completed", "pending"]  # ... but it was written ahead

    done = cli(settings, "audit", "reconcile", "--run-id", "monitoring/scheduled__1")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["external"] == [] and len(report["finished"]) == 1
    assert mlflow_aliases(settings) == {"champion": "2", "previous": "1"}  # rolled forward
    assert audit_rows(settings) == [("champion", "promote", None, "1"), ("previous", "promote", None, "1"),
                                    ("champion", "promote", "1", "2")]
    assert audited(settings) == mlflow_aliases(settings) and intent_statuses(settings) == ["completed"] * 2
    again = rollout.promote_challenger(settings, version="2", run_id="retrain/run-2", actor=ACTOR)  # Airflow's retry
    assert again["move"]["replayed"] is True and len(audit_rows(settings)) == 3


def test_a_crash_after_mlflow_before_the_audit_is_finished_by_the_retry(settings) -> None:
    register(settings, 2)
    rollout.promote_challenger(settings, version="1", run_id="seed", actor=ACTOR)
    crashed = run_child(settings, PROMOTE_AND_DIE.format(where="after_mlflow"))
    assert crashed.returncode == 137, crashed.stderr[-2000:]
    assert mlflow_aliases(settings) == {"champion": "2", "previous": "1"}  # MLflow moved ...
    assert audit_rows(settings) == [("champion", "promote", None, "1")]  # ... the audit rows were not written
    assert intent_statuses(settings) == ["completed", "pending"]

    retry = rollout.promote_challenger(settings, version="2", run_id="retrain/run-2", actor=ACTOR)
    assert retry["move"]["replayed"] is True and retry["previous_version"] == "1"
    assert audit_rows(settings) == [("champion", "promote", None, "1"), ("previous", "promote", None, "1"),
                                    ("champion", "promote", "1", "2")]
    assert intent_statuses(settings) == ["completed"] * 2
    with audit.engine_for(settings) as engine:
        result = rollout_reconcile(settings, engine)
    assert result.in_agreement and audited(settings) == mlflow_aliases(settings)


def rollout_reconcile(settings: Settings, engine):
    from autoretrain.audit.reconcile import reconcile

    return reconcile(tracking.client_for(settings), engine, name=settings.model_name, run_id="test/reconcile")


# ------------------------------------------------------------------------------------- failed undo
def test_a_failed_undo_says_where_each_alias_is_and_the_audit_agrees(settings, mlflow_server) -> None:
    register(settings, 2)
    rollout.promote_challenger(settings, version="1", run_id="seed", actor=ACTOR)
    proxy = FaultProxy(mlflow_server.uri)
    try:
        # MLflow dies after `previous` moved: the champion move and the undo (delete previous) get no answer
        proxy.block = lambda method, path, body: ((method == "POST" and path.endswith("/registered-models/alias")
                                                   and b'"champion"' in body) or method == "DELETE")
        flaky = settings.with_overrides({"tracking_uri": proxy.url})
        with pytest.raises(registry.AliasMoveError) as failed:
            rollout.promote_challenger(flaky, version="2", run_id="retrain/run-2", actor=ACTOR)
    finally:
        proxy.close()
    message = str(failed.value)
    assert "was undone" not in message and "could NOT be undone" in message
    assert "previous is on 1 (moved from nothing, could not be put back)" in message
    assert "champion is on 1 (not moved" in message
    assert [m for m, _ in proxy.blocked] == ["POST", "DELETE"]
    assert mlflow_aliases(settings) == {"champion": "1", "previous": "1"}  # previous == champion, and said so
    assert audit_rows(settings)[-1] == ("previous", "undo_failed", None, "1")
    assert audited(settings) == mlflow_aliases(settings) and intent_statuses(settings) == ["completed", "undo_failed"]
    with audit.engine_for(settings) as engine:
        assert rollout_reconcile(settings, engine).in_agreement  # nothing external: the audit knows
    rollout.promote_challenger(settings, version="2", run_id="retrain/run-2", actor=ACTOR)  # the retry
    assert mlflow_aliases(settings) == {"champion": "2", "previous": "1"} == audited(settings)
    assert audit_rows(settings)[-1] == ("champion", "promote", "1", "2")


# ---------------------------------------------------------------------------------- external moves
def test_a_move_made_directly_in_mlflow_is_recorded_and_alerted(settings) -> None:
    register(settings, 2)
    rollout.promote_challenger(settings, version="1", run_id="seed", actor=ACTOR)
    mlflow.MlflowClient(settings.tracking_uri).set_registered_model_alias(settings.model_name, "champion", "2")

    found = cli(settings, "audit", "reconcile", "--run-id", "cli/reconcile-1")
    assert found.returncode == 1, found.stderr[-2000:]  # exit 1: MLflow and the audit disagreed
    assert json.loads(found.stdout)["external"] == [{"alias": "champion", "from_version": "1", "to_version": "2"}]
    assert audit_rows(settings)[-1] == ("champion", "external", "1", "2")
    with AlertStore(settings.database_url) as store, store.engine.connect() as conn:
        from autoretrain.db.schema import alert_log

        alerts = conn.execute(alert_log.select()).mappings().all()
    assert [(a["kind"], a["severity"], a["status"]) for a in alerts] == [("external_alias_move", "critical",
                                                                          "logged")]
    assert "champion: audited version 1 → version 2 in MLflow" in alerts[0]["message"]

    again = cli(settings, "audit", "reconcile", "--run-id", "cli/reconcile-2")
    assert again.returncode == 0 and json.loads(again.stdout)["external"] == []  # recorded now: told once
    assert len(audit_rows(settings)) == 2


# ------------------------------------------------------------------------- two first trainings at once
ASSIGN_AT = """
    import time
    from autoretrain import registry
    from autoretrain.config import load_settings
    from autoretrain.training.steps import assign_alias

    slow = registry.alias_version
    def alias_version(*args, **kwargs):  # a slow MLflow: the "is there a champion?" read takes 1 s
        found = slow(*args, **kwargs)
        time.sleep(1.0)
        return found
    registry.alias_version = alias_version
    settings = load_settings()
    registered = registry.get_version(__import__("autoretrain.tracking").tracking.client_for(settings),
                                      settings.model_name, {version!r}).as_dict()
    time.sleep(max(0.0, {start!r} - time.time()))  # both start at the same instant
    print(assign_alias(settings, registered=registered, run_id="training/run-{version}")["alias"])
"""


def test_two_first_trainings_at_once_make_one_champion_and_hand_the_other_to_the_rollout(settings) -> None:
    register(settings, 2)
    start = time.time() + 20  # after both children imported everything
    children = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(ASSIGN_AT.format(version=v, start=start))],
                                 env=child_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 cwd=ROOT) for v in ("1", "2")]
    outcomes = [(child.wait(timeout=240), *child.communicate()) for child in children]
    assert [code for code, _, _ in outcomes] == [0, 0], [err[-2000:] for _, _, err in outcomes]
    chosen = {v: out.strip().splitlines()[-1] for v, (_, out, _) in zip(("1", "2"), outcomes, strict=True)}
    assert sorted(chosen.values()) == ["None", "champion"]  # the other waits for retrain_compare_promote (issue 14)
    champion = next(v for v, alias in chosen.items() if alias == "champion")
    assert mlflow_aliases(settings) == {"champion": champion}
    assert audit_rows(settings) == [("champion", "assign", None, champion)]
