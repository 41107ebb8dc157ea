"""Compare, promote, canary, withdraw, roll back: real mlflow server (Postgres store) and Postgres tables.

* a worse challenger is rejected and the champion stays;
* MLflow unreachable during a promotion (closed port; and a fault-injecting HTTP proxy that lets the
  ``previous`` move through and drops the ``champion`` one): aliases unchanged, no audit row, and
  the retry succeeds with exactly one record;
* the canary path on a real prediction log in Postgres: a good challenger passes and is promoted,
  a broken one fails and is withdrawn;
* ``retrain_compare_promote`` end to end with dag.test() (first model, then drifted labelled traffic
  in the prediction log makes a significantly better challenger, then an identical one is rejected),
  then the ``rollback`` DAG restores the previous champion exactly.
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.calibration import CalibratedClassifierCV
from sklearn.naive_bayes import ComplementNB

from autoretrain import lineage, registry, tracking
from autoretrain.alerts.store import AlertStore
from autoretrain.audit import aliases as audit
from autoretrain.cli.main import main as cli_main
from autoretrain.config import Settings, load_settings
from autoretrain.data.sources import read_dataset
from autoretrain.db import schema
from autoretrain.db.engine import make_engine
from autoretrain.errors import EXIT_CHECK_FAILED, EXIT_INVALID
from autoretrain.promotion import rollout
from autoretrain.serving import prediction_log as store
from autoretrain.serving.routing import RoutingConfig, choose
from autoretrain.training.evaluation import compute_metrics
from autoretrain.training.families import build_pipeline, get_family, positive_proba
from autoretrain.training.steps import SKOPS_TRUSTED_TYPES, pinned_requirements
from devstack.scenarios import referral_campaign
from tests.conftest import dag_from_bag, free_port, migrated, task_states

pytestmark = pytest.mark.integration

ACTOR = "test:rollout"


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def sms() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, hold-out rows) of the SMS corpus (no normalized text on both sides)."""
    frame = read_dataset(load_settings().resolved_data_uri(), labels=("ham", "spam")).frame
    frame = frame[~frame["text"].str.casefold().duplicated()].reset_index(drop=True)
    return frame.iloc[:3500].reset_index(drop=True), frame.iloc[4000:5000].reset_index(drop=True)


@pytest.fixture(scope="module")
def pipelines(sms) -> dict[str, Any]:
    """good: calibrated ComplementNB; logreg: another good one; weak: 120 rows; flipped: labels swapped."""
    train, _ = sms
    x, y = train[["text"]], train["label"].to_numpy()
    flipped = np.where(y == "spam", "ham", "spam")
    return {"good": build_pipeline(CalibratedClassifierCV(ComplementNB(), method="sigmoid", cv=3)).fit(x, y),
            "logreg": build_pipeline(get_family("logreg").make(0)).fit(x, y),
            "weak": build_pipeline(ComplementNB()).fit(x.iloc[:120], y[:120]),
            "flipped": build_pipeline(get_family("logreg").make(0)).fit(x, flipped)}


@pytest.fixture
def settings(mlflow_server, postgres_db, model_name, monkeypatch) -> Settings:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # "MLflow down" must fail fast, not back off
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    return load_settings().with_overrides({
        "model_name": model_name, "tracking_uri": mlflow_server.uri, "experiment_name": "rollout-tests",
        "database_url": migrated(postgres_db("rollout")), "bootstrap_samples": 500, "canary_minutes": 5,
        "canary_grace_seconds": 30, "canary_min_requests": 50,
        "routing_salt": "test-routing-salt-00882-of-the-canary-tests"})  # 93 of 1,000 users (tests/unit)


def register(settings: Settings, pipeline: Any, holdout: pd.DataFrame) -> registry.ModelRef:
    """Log ``pipeline`` with a parent run holding its hold-out scores, and register it (as training does)."""
    client = tracking.client_for(settings)
    experiment = tracking.ensure_experiment(client, settings.experiment_name)
    key = uuid.uuid4().hex[:8]
    parent = tracking.find_or_create_run(client, experiment, run_key=f"test/{key}", run_name=key,
                                         tags={"airflow.dag_id": "test", "airflow.run_id": key,
                                               "autoretrain.selected_family": "test"})
    proba = positive_proba(pipeline, holdout, "spam")
    tracking.log_frame(client, parent, holdout[["label", "text"]].assign(proba=proba), lineage.FRAME_HOLDOUT_SCORES)
    metrics = compute_metrics(holdout["label"], proba, positive_label="spam")
    client.log_batch(parent, metrics=[mlflow.entities.Metric(f"holdout_{k}", float(v), 0, 0)
                                      for k, v in metrics.items() if np.isfinite(v)])
    with mlflow.start_run(experiment_id=experiment) as run:
        info = mlflow.sklearn.log_model(pipeline, name="model", pip_requirements=pinned_requirements(),
                                        skops_trusted_types=list(SKOPS_TRUSTED_TYPES))
    with audit.engine_for(settings) as engine:  # the model's record goes where the tasks read it
        return registry.register_version(client, name=settings.model_name, model_uri=info.model_uri,
                                         run_id=run.info.run_id, tags={"autoretrain.parent_run_id": parent},
                                         engine=engine, key=settings.integrity_key)


def aliases(settings: Settings) -> dict[str, str]:
    client = tracking.client_for(settings)
    return {a: str(v) for a, v in client.get_registered_model(settings.model_name).aliases.items()}


def audit_rows(settings: Settings) -> list[tuple[str, str, str | None, str | None]]:
    with audit.engine_for(settings) as engine:
        return [(r.alias, r.action, r.from_version, r.to_version)
                for r in reversed(audit.history(engine, settings.model_name))]


# ------------------------------------------------------------------------------ comparison
def test_worse_challenger_is_rejected_and_the_champion_stays(settings, pipelines, sms) -> None:
    _, holdout = sms
    v1, v2 = (register(settings, pipelines[k], holdout) for k in ("good", "weak"))
    assert (v1.version, v2.version) == ("1", "2")
    rollout.promote_challenger(settings, version="1", run_id="seed", actor=ACTOR, reasons=["first model"])

    decision = rollout.compare_challenger(settings, parent_run_id=v2.tags["autoretrain.parent_run_id"],
                                          registered=v2.as_dict())

    assert decision["promote"] is False and decision["champion_version"] == "1"
    numbers = decision["numbers"]
    assert numbers["n"] == 1000 and numbers["checks"]["improvement"] is False
    assert numbers["mcnemar"]["b"] > numbers["mcnemar"]["c"]  # the champion alone is right more often
    assert numbers["champion"]["f1"] > numbers["challenger"]["f1"]
    assert decision["reasons"][-1].startswith("reject: failed ")
    assert aliases(settings) == {"champion": "1"}
    assert audit_rows(settings) == [("champion", "promote", None, "1")]
    client = tracking.client_for(settings)
    version = client.get_model_version(settings.model_name, "2")
    assert version.tags[lineage.DECISION] == "reject"
    assert "## Comparison with the champion\n\n**reject**" in version.description
    assert version.tags[lineage.MODEL_CARD].endswith("/model_card.md")


# ----------------------------------------------------------------------------- MLflow faults
class FaultProxy:
    """A loopback HTTP proxy in front of the mlflow server; ``block(method, path, body)`` drops a request."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.block: Callable[[str, str, bytes], bool] = lambda method, path, body: False
        self.blocked: list[tuple[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.block(self.command, self.path, body):
                    proxy.blocked.append((self.command, self.path))
                    self.close_connection = True  # as if the server died mid-request: no answer at all
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                reply = conn.getresponse()
                data = reply.read()
                self.send_response(reply.status)
                for key, value in reply.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PATCH = do_DELETE = _relay  # noqa: N815 - http.server's naming

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(mlflow_server) -> Iterator[FaultProxy]:
    fault = FaultProxy(mlflow_server.uri)
    yield fault
    fault.close()


def test_mlflow_unreachable_during_promotion_moves_nothing_and_the_retry_succeeds(settings, pipelines, sms,
                                                                                 proxy) -> None:
    _, holdout = sms
    for key in ("good", "logreg", "good"):
        register(settings, pipelines[key], holdout)
    rollout.promote_challenger(settings, version="1", run_id="seed", actor=ACTOR)
    assert audit_rows(settings) == [("champion", "promote", None, "1")]

    # 1. the server is down (nothing listens on the port)
    down = settings.with_overrides({"tracking_uri": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(registry.AliasMoveError, match="nothing was recorded, retry"):
        rollout.promote_challenger(down, version="2", run_id="run-2", actor=ACTOR)
    assert aliases(settings) == {"champion": "1"}
    assert len(audit_rows(settings)) == 1
    first = rollout.promote_challenger(settings, version="2", run_id="run-2", actor=ACTOR)  # the task's retry
    assert first["previous_version"] == "1" and aliases(settings) == {"champion": "2", "previous": "1"}
    again = rollout.promote_challenger(settings, version="2", run_id="run-2", actor=ACTOR)  # a second retry
    assert again["move"]["replayed"] is True
    assert audit_rows(settings) == [("champion", "promote", None, "1"), ("previous", "promote", None, "1"),
                                    ("champion", "promote", "1", "2")]

    # 2. the server dies between the two alias writes: `previous` moved, `champion` never answered
    proxy.block = lambda method, path, body: (method == "POST" and path.endswith("/registered-models/alias")
                                              and b'"champion"' in body)
    flaky = settings.with_overrides({"tracking_uri": proxy.url})
    with pytest.raises(registry.AliasMoveError, match="failed and was undone"):
        rollout.promote_challenger(flaky, version="3", run_id="run-3", actor=ACTOR)
    assert proxy.blocked == [("POST", "/api/2.0/mlflow/registered-models/alias")]
    assert aliases(settings) == {"champion": "2", "previous": "1"}  # previous was moved to 2, then put back
    assert len(audit_rows(settings)) == 3
    proxy.block = lambda method, path, body: False
    rollout.promote_challenger(flaky, version="3", run_id="run-3", actor=ACTOR)
    assert aliases(settings) == {"champion": "3", "previous": "2"}
    assert audit_rows(settings)[3:] == [("previous", "promote", "1", "2"), ("champion", "promote", "2", "3")]


def test_the_audit_table_refuses_updates_on_postgres(settings) -> None:
    with audit.engine_for(settings) as engine:
        with engine.begin() as conn:
            audit.insert(conn, [{"created_at": datetime(2026, 1, 1, tzinfo=UTC), "move_id": "m", "model_name": "x",
                                 "alias": "champion", "action": "assign", "from_version": None, "to_version": "1",
                                 "actor": ACTOR, "run_id": "r", "reason": "test", "idempotency_key": "k"}])
        for statement in ("UPDATE alias_audit SET reason = 'edited'", "DELETE FROM alias_audit"):
            with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
                conn.execute(sa.text(statement))
        assert [r.reason for r in audit.history(engine, "x")] == ["test"]


# -------------------------------------------------------------------------------------- canary
def log_canary_traffic(settings: Settings, models: dict[str, tuple[str, Any]], holdout: pd.DataFrame,
                       start: datetime) -> None:
    """Served rows as the service writes them: 1000 users on canary routing, feedback on every other one."""
    texts = holdout["text"].tolist()
    config = RoutingConfig(mode="canary", canary_percent=settings.canary_percent)
    proba = {alias: positive_proba(model, holdout, "spam") for alias, (_, model) in models.items()}
    rows = []
    for i, text in enumerate(texts):
        variant = choose(config, f"user-{i}", settings.routing_salt)
        p = float(proba[variant][i])
        rows.append({"request_id": f"req-{start.timestamp():.0f}-{i}", "model_name": settings.model_name,
                     "model_version": models[variant][0], "variant": variant, "role": "served",
                     "user_id": f"user-{i}", "text": text, "probability": p, "label": "spam" if p >= 0.5 else "ham",
                     "latency_ms": 1.0, "created_at": start + timedelta(seconds=31 + i * 0.2)})
    with audit.engine_for(settings) as engine:
        with engine.begin() as conn:
            conn.execute(schema.predictions.insert(), rows)
        for i, row in enumerate(rows[::2]):
            store.save_feedback(engine, request_id=row["request_id"], label=holdout["label"].iloc[2 * i],
                                source="test", at=start + timedelta(minutes=4))


def test_canary_passes_and_promotes_then_a_broken_one_is_withdrawn(settings, pipelines, sms, monkeypatch,
                                                                    capsys) -> None:
    _, holdout = sms
    for key in ("good", "logreg", "flipped"):
        register(settings, pipelines[key], holdout)
    rollout.promote_challenger(settings, version="1", run_id="seed", actor=ACTOR)
    t0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    canary = rollout.start_canary(settings, version="2", run_id="c-1", actor=ACTOR, reasons=["better"], now=t0)
    with audit.engine_for(settings) as engine:
        assert store.load_routing(engine) == {"mode": "canary", "canary_percent": 10.0}
    assert aliases(settings) == {"champion": "1", "challenger": "2"}
    log_canary_traffic(settings, {"champion": ("1", pipelines["good"]), "challenger": ("2", pipelines["logreg"])},
                       holdout, t0)
    waiting = rollout.canary_status(settings, canary=canary, now=t0 + timedelta(minutes=4, seconds=30))
    assert waiting["status"] == "wait" and waiting["numbers"]["served"] == 1000
    verdict = rollout.canary_status(settings, canary=canary, now=t0 + timedelta(minutes=6))
    assert verdict["status"] == "pass", verdict["reasons"]
    assert verdict["numbers"] == {"served": 1000, "challenger": 93, "champion": 907, "meant_for_challenger": 93,
                                  "fallbacks": 0, "invalid_scores": 0, "other_versions": 0, "window_complete": True}
    assert {c["name"]: c["judged"] for c in verdict["checks"]} == {
        "traffic": True, "error_rate": True, "score_shift": True, "agreement": True, "accuracy": True}

    promoted = rollout.promote_challenger(settings, version="2", run_id="c-1", actor=ACTOR, reasons=["canary ok"])
    assert promoted["routing"] == "full" and promoted["challenger_removed"] is True
    assert aliases(settings) == {"champion": "2", "previous": "1"}

    t1 = t0 + timedelta(hours=1)
    broken = rollout.start_canary(settings, version="3", run_id="c-2", actor=ACTOR, now=t1)
    log_canary_traffic(settings, {"champion": ("2", pipelines["logreg"]),
                                  "challenger": ("3", pipelines["flipped"])}, holdout, t1)
    early = rollout.canary_status(settings, canary=broken, now=t1 + timedelta(minutes=1))
    assert early["status"] == "wait" and early["numbers"]["challenger"] < 50  # too little traffic to judge yet
    failed = rollout.canary_status(settings, canary=broken, now=t1 + timedelta(minutes=4))  # before the window ends
    assert failed["status"] == "fail" and failed["numbers"]["window_complete"] is False
    assert {c["name"] for c in failed["checks"] if c["judged"] and not c["passed"]} == {"agreement", "score_shift",
                                                                                        "accuracy"}
    withdrawn = rollout.withdraw_challenger(settings, version="3", run_id="c-2", actor=ACTOR,
                                            reasons=failed["reasons"])
    assert withdrawn["champion_version"] == "2"
    assert aliases(settings) == {"champion": "2", "previous": "1"}
    with audit.engine_for(settings) as engine:
        assert store.load_routing(engine) == {"mode": "full"}
    assert audit_rows(settings) == [
        ("champion", "promote", None, "1"), ("challenger", "canary", None, "2"),
        ("previous", "promote", None, "1"), ("champion", "promote", "1", "2"), ("challenger", "promote", "2", None),
        ("challenger", "canary", None, "3"), ("challenger", "withdraw", "3", None)]
    client = tracking.client_for(settings)
    assert client.get_model_version(settings.model_name, "3").tags[lineage.DECISION] == "withdrawn after canary"

    # the same steps from the shell: `autoretrain promote | rollback | audit`
    monkeypatch.setenv("AUTORETRAIN_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("AUTORETRAIN_BOOTSTRAP_SAMPLES", "500")

    def cli(*argv: str) -> int:
        return cli_main(["--tracking-uri", settings.tracking_uri, "--model-name", settings.model_name, *argv])

    assert cli("promote", "3", "--reason", "second chance") == EXIT_CHECK_FAILED  # rejected by the comparison
    assert aliases(settings) == {"champion": "2", "previous": "1"}
    assert cli("rollback", "--reason", "ops call", "--run-id", "cli-1") == 0
    assert cli("rollback", "--reason", "ops call", "--run-id", "cli-1") == 0  # replayed
    assert cli("rollback", "--reason", "again", "--run-id", "cli-2") == EXIT_INVALID  # no previous champion
    assert aliases(settings) == {"champion": "1"}
    capsys.readouterr()
    assert cli("audit", "--alias", "champion", "--limit", "1") == 0
    (move,) = json.loads(capsys.readouterr().out)["moves"]
    assert {k: move[k] for k in ("alias", "action", "from_version", "to_version", "run_id", "reason")} == {
        "alias": "champion", "action": "rollback", "from_version": "2", "to_version": "1", "run_id": "cli-1",
        "reason": "ops call"}
    assert move["actor"].startswith("cli:")
    assert len(audit_rows(settings)) == 9


# ------------------------------------------------------------------------------ the DAGs end to end
def _decision(run) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter(XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id,
                                              XComModel.task_id == "compare", XComModel.key == "decision").one()
        value = row.value
    return XComModel.deserialize_value(row) if isinstance(value, str | bytes) else value


FAST = {"families": ["complement_nb"], "cv_folds": 2, "canary_minutes": 0}
PROMOTED_PATH = {"trigger", "source", "load", "validate", "families", "train[0]", "select", "evaluate", "register",
                 "candidate", "compare", "no_canary", "approval", "promote"}  # approval: auto mode passes through


def test_retrain_dag_promotes_on_drifted_traffic_and_rollback_restores_exactly(airflow_db, mlflow_server,
                                                                                  postgres_db, model_name,
                                                                                  monkeypatch) -> None:
    db = migrated(postgres_db("retrain_dag"))
    for key, value in {"MLFLOW_TRACKING_URI": mlflow_server.uri, "AUTORETRAIN_MODEL_NAME": model_name,
                       "AUTORETRAIN_DATABASE_URL": db, "AUTORETRAIN_BOOTSTRAP_SAMPLES": "1000"}.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    client = tracking.client_for(settings)

    # 1. no champion: the first model needs only its gates and is promoted directly
    first = dag_from_bag("retrain_compare_promote").test(run_conf={**FAST, "reason": "bootstrap"})
    states = task_states(first)
    assert first.state == "success", states
    assert {t for t, s in states.items() if s == "success"} == PROMOTED_PATH
    assert {t for t, s in states.items() if s == "skipped"} == {"handed_over", "reject", "dry_run", "start_canary",
                                                                "canary", "canary_verdict", "withdraw", "not_approved"}
    assert aliases(settings) == {"champion": "1"}
    v1 = registry.get_version(client, model_name, "1")
    assert v1.tags[lineage.MODEL_CARD] == f"runs:/{v1.run_id}/model_card.md"
    assert "## Comparison\n\nNot compared" not in client.get_model_version(model_name, "1").description

    # 2. drift: a new spam campaign reaches users; the champion calls it ham; users report it
    champion, _ = registry.load_trusted(settings, client, "champion")
    traffic = referral_campaign(200, 100)
    proba = positive_proba(champion, pd.DataFrame({"text": [t for t, _ in traffic]}), "spam")
    assert (proba[:200] >= 0.5).mean() < 0.05  # the champion misses the campaign
    at = datetime.now(UTC) - timedelta(hours=1)
    engine = make_engine(db)
    with engine.begin() as conn:
        conn.execute(schema.predictions.insert(), [
            {"request_id": f"drift-{i}", "created_at": at, "model_name": model_name, "model_version": "1",
             "variant": "champion", "role": "served", "user_id": None, "text": text, "probability": float(p),
             "label": "spam" if p >= 0.5 else "ham", "latency_ms": 1.0}
            for i, ((text, _), p) in enumerate(zip(traffic, proba, strict=True))])
    for i, (_, label) in enumerate(traffic):
        store.save_feedback(engine, request_id=f"drift-{i}", label=label, source="test", at=at)
    engine.dispose()

    conf = {**FAST, "reason": "drift: vocabulary shift in live traffic",  # as the monitoring DAG triggers it
            "drift_reasons": {"retrain": True, "reasons": ["text_psi 0.31 > 0.15"]}}
    second = dag_from_bag("retrain_compare_promote").test(run_conf=conf)
    states = task_states(second)
    assert second.state == "success", states
    assert {t for t, s in states.items() if s == "success"} == PROMOTED_PATH
    decision = _decision(second)
    assert decision["promote"] is True and decision["champion_version"] == "1" and decision["version"] == "2"
    n = decision["numbers"]
    assert n["checks"] == {"gates": True, "improvement": True, "significance": True}
    assert n["mcnemar"]["c"] > n["mcnemar"]["b"] and n["mcnemar"]["p_value"] < 0.05
    feedback = decision["by_origin"]["feedback"]
    assert feedback["n"] == n["n"] - decision["by_origin"]["base"]["n"] > 30
    assert feedback["challenger"]["recall"] > 0.9 > 0.1 > feedback["champion"]["recall"]
    assert aliases(settings) == {"champion": "2", "previous": "1"}
    parent = client.get_run(registry.get_version(client, model_name, "2").tags["autoretrain.parent_run_id"])
    assert parent.data.tags[lineage.FEEDBACK_ROWS] == "300"
    assert int(parent.data.metrics["rows_feedback_train"] + parent.data.metrics["rows_feedback_test"]) == 300
    card = client.get_model_version(model_name, "2").description
    assert "## Comparison with the champion\n\n**promote**" in card and "| feedback |" in card
    print("\ncomparison of one real cycle (n={}):\n{}\nby origin: {}".format(  # noqa: T201 - for the report
        n["n"], "\n".join(decision["reasons"]), decision["by_origin"]))

    # 3. the same data again: an identical challenger is not better, it is rejected and the champion stays
    third = dag_from_bag("retrain_compare_promote").test(run_conf={**FAST, "reason": "weekly"})
    states = task_states(third)
    assert third.state == "success", states
    assert {t for t, s in states.items() if s == "success"} == PROMOTED_PATH - {"no_canary", "approval",
                                                                                 "promote"} | {"reject"}
    rejected = _decision(third)
    assert (rejected["promote"], rejected["version"], rejected["champion_version"]) == (False, "3", "2")
    assert rejected["numbers"]["mcnemar"]["discordant"] == 0
    assert rejected["reasons"][-1] == "reject: failed improvement, significance"
    assert aliases(settings) == {"champion": "2", "previous": "1"}

    # 4. rollback restores the previous champion exactly, in one step
    rolled = dag_from_bag("rollback").test(run_conf={"reason": "complaints after the release"})
    assert rolled.state == "success", task_states(rolled)
    assert aliases(settings) == {"champion": "1"}
    restored, ref = registry.load_trusted(settings, client, "champion")
    assert (ref.version, ref.sha256) == ("1", v1.sha256)
    texts = pd.DataFrame({"text": [t for t, _ in traffic[:50]]})
    assert np.array_equal(restored.predict_proba(texts), champion.predict_proba(texts))
    again = dag_from_bag("rollback").test(run_conf={"reason": "twice"})
    assert again.state == "failed" and task_states(again)["rollback"] == "failed"  # no previous any more

    assert audit_rows(settings) == [
        ("champion", "promote", None, "1"), ("previous", "promote", None, "1"), ("champion", "promote", "1", "2"),
        ("champion", "rollback", "2", "1"), ("previous", "rollback", "1", None)]
    with audit.engine_for(settings) as engine:
        records = audit.history(engine, model_name)
    assert records[2].actor == "airflow:retrain_compare_promote.promote"
    assert records[2].reasons[0] == "trigger (drift): drift: vocabulary shift in live traffic"
    assert records[2].metrics["mcnemar"]["c"] == n["mcnemar"]["c"]
    assert records[0].reason == "complaints after the release" and records[0].actor == "airflow:rollback.rollback"
    with AlertStore(db) as alerts:
        kinds = [(r.kind, r.status) for r in reversed(alerts.records())]
    assert kinds == [("promotion", "logged"), ("promotion", "logged"), ("rejection", "logged"),
                     ("rollback", "logged"), ("task_failure", "logged")]
