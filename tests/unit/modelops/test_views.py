"""The Model Ops data layer on SQLite and Postgres: each section's figures from seeded rows, exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from autoretrain.db.engine import make_engine
from autoretrain.db.schema import (
    alert_log,
    alias_audit,
    drift_windows,
    feedback,
    model_artifacts,
    predictions,
    routing_override,
)
from autoretrain.modelops import views
from tests.conftest import migrated

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MODEL = "sms"


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path):
    url = (f"sqlite:///{tmp_path / 'ops.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_db")("modelops"))
    engine = make_engine(migrated(url))
    yield engine
    engine.dispose()


def audit(conn, i: int, *, alias: str, action: str, frm: str | None, to: str | None, run: str,
          metrics: dict | None = None, reasons: list[str] | None = None, model: str = MODEL) -> None:
    conn.execute(alias_audit.insert().values(
        created_at=NOW - timedelta(hours=10 - i), move_id=f"m{i}", model_name=model, alias=alias, action=action,
        from_version=frm, to_version=to, actor="airflow:x.y", run_id=run, reason=f"reason {i}",
        reasons=json.dumps(reasons or []), metrics=json.dumps(metrics or {}), idempotency_key=f"k{i}"))


def test_aliases_now_is_the_latest_move_of_each_alias(engine) -> None:
    with engine.begin() as conn:
        audit(conn, 1, alias="champion", action="assign", frm=None, to="1", run="training/t1")
        audit(conn, 2, alias="challenger", action="canary", frm=None, to="2", run="retrain_compare_promote/r1")
        audit(conn, 3, alias="champion", action="promote", frm="1", to="2", run="retrain_compare_promote/r1")
        audit(conn, 4, alias="previous", action="promote", frm=None, to="1", run="retrain_compare_promote/r1")
        audit(conn, 5, alias="challenger", action="promote", frm="2", to=None, run="retrain_compare_promote/r1")
        audit(conn, 6, alias="champion", action="assign", frm=None, to="9", run="training/t9", model="other")
    got = views.aliases_now(engine, model_name=MODEL, history=3)
    assert {r: v["version"] for r, v in got["roles"].items()} == {"champion": "2", "challenger": None, "previous": "1"}
    assert got["roles"]["champion"]["moved"]["action"] == "promote"
    assert [m["id"] for m in got["history"]] == [5, 4, 3] and got["moves_total"] == 5


def window(conn, i: int, *, drifted: bool, score: float, retrain: bool | None = None, model: str = MODEL) -> None:
    start = NOW - timedelta(hours=6 * (10 - i))
    report = {"results": [{"name": "vocab", "score": score, "threshold": 0.2, "drifted": drifted, "details": {}},
                          {"name": "psi", "score": 0.01, "threshold": 0.25, "drifted": False, "details": {}},
                          {"name": "feedback_accuracy", "score": 0.01, "threshold": 0.02, "drifted": False,
                           "details": {"accuracy": 0.9 + i / 100, "n_labelled": 10}}]}
    conn.execute(drift_windows.insert().values(
        model_name=model, window_start=start, window_end=start + timedelta(hours=6), model_version="1",
        n_predictions=100 + i, n_labelled=10, insufficient_data=False, drifted=drifted, report=json.dumps(report),
        mlflow_run_id=f"run{i}", retrain=retrain, decision=json.dumps({"retrain": bool(retrain), "reasons": [],
                                                                      "streak": 2 if drifted else 0}),
        action="retrain triggered" if retrain else "no action", computed_at=start))


def test_drift_over_time_limits_the_rows_but_counts_every_window(engine) -> None:
    with engine.begin() as conn:
        for i in range(10):
            window(conn, i, drifted=i in (3, 8, 9), score=0.5 if i in (3, 8, 9) else 0.1, retrain=i == 9)
        window(conn, 5, drifted=True, score=0.9, model="other")
    got = views.drift_over_time(engine, model_name=MODEL, limit=4)
    assert [w["mlflow_run_id"] for w in got["windows"]] == ["run6", "run7", "run8", "run9"]  # oldest first
    assert got["totals"] == {"windows": 10, "breached": 3, "retrain": 1, "insufficient": 0,
                             "first": (NOW - timedelta(hours=60)).isoformat(), "last": NOW.isoformat()}
    assert got["checks"] == ["feedback_accuracy", "psi", "vocab"]
    quality = views.window_quality(got["windows"])
    assert quality[-1] == {"start": (NOW - timedelta(hours=6)).isoformat(), "end": NOW.isoformat(), "n": 109,
                           "labelled": 10, "accuracy": pytest.approx(0.99), "f1": None}
    last = got["windows"][-1]
    assert last["drifted"] and last["streak"] == 2 and last["action"] == "retrain triggered"
    assert last["checks"][0] == {"name": "vocab", "score": 0.5, "threshold": 0.2, "drifted": True}
    start = NOW - timedelta(hours=6)
    assert views.window_at(engine, model_name=MODEL, start=start, end=NOW)["mlflow_run_id"] == "run9"
    assert views.window_at(engine, model_name=MODEL, start=NOW, end=NOW + timedelta(hours=1)) is None


def predict(conn, i: int, *, at: datetime, label: str, truth: str | None, variant: str = "champion",
            version: str = "1", role: str = "served") -> None:
    conn.execute(predictions.insert().values(
        request_id=f"r{i}", created_at=at, model_name=MODEL, model_version=version, variant=variant, role=role,
        user_id=None, text="t", probability=0.9 if label == "spam" else 0.1, label=label, latency_ms=2.0 + i % 2))
    if truth is not None:
        conn.execute(feedback.insert().values(request_id=f"r{i}", label=truth, source="user", created_at=at))


def test_live_quality_per_hour_since_the_last_window(engine) -> None:
    with engine.begin() as conn:
        # 09:00-10:00: 4 labelled of 5: tp 1, fp 1, fn 1, tn 1
        for i, (label, truth) in enumerate([("spam", "spam"), ("spam", "ham"), ("ham", "spam"), ("ham", "ham"),
                                            ("ham", None)]):
            predict(conn, i, at=NOW - timedelta(hours=3) + timedelta(minutes=i), label=label, truth=truth)
        predict(conn, 10, at=NOW - timedelta(minutes=30), label="spam", truth="spam")
        predict(conn, 11, at=NOW - timedelta(minutes=30), label="ham", truth="spam", role="shadow")  # not served
        predict(conn, 12, at=NOW - timedelta(hours=7), label="ham", truth="ham")  # before the last window ended
    got = views.live_quality(engine, model_name=MODEL, positive_label="spam", now=NOW,
                             since=NOW - timedelta(hours=6))
    assert got["since"] == (NOW - timedelta(hours=6)).isoformat()
    buckets = got["buckets"]
    assert [(b["start"], b["n"], b["labelled"]) for b in buckets] == [
        ((NOW - timedelta(hours=3)).isoformat(), 5, 4), ((NOW - timedelta(hours=1)).isoformat(), 1, 1)]
    assert buckets[0]["accuracy"] == pytest.approx(0.5) and buckets[0]["f1"] == pytest.approx(0.5)
    assert buckets[0]["precision"] == pytest.approx(0.5) and buckets[0]["recall"] == pytest.approx(0.5)
    assert buckets[1]["accuracy"] == 1.0 and buckets[1]["f1"] == 1.0
    capped = views.live_quality(engine, model_name=MODEL, positive_label="spam", now=NOW, hours=2,
                                since=NOW - timedelta(hours=6))
    assert [b["n"] for b in capped["buckets"]] == [1]  # never more than ``hours`` back


def test_serving_now_counts_each_variant_and_its_feedback_error_rate(engine) -> None:
    at = NOW - timedelta(minutes=5)
    with engine.begin() as conn:
        for i in range(9):
            predict(conn, i, at=at, label="ham", truth="spam" if i == 0 else "ham" if i < 4 else None)
        predict(conn, 20, at=at, label="spam", truth="ham", variant="challenger", version="2")
        predict(conn, 21, at=at - timedelta(hours=2), label="spam", truth=None)  # before the hour
        conn.execute(routing_override.insert().values(id=1, config=json.dumps({"mode": "canary",
                                                                               "canary_percent": 10.0}),
                                                      updated_at=at))
    got = views.serving_now(engine, model_name=MODEL, now=NOW)
    assert got["routing"] == {"mode": "canary", "canary_percent": 10.0} and got["served"] == 10
    champion, challenger = got["variants"]
    assert (champion["variant"], champion["requests"], champion["labelled"]) == ("champion", 9, 4)
    assert champion["share"] == pytest.approx(0.9) and champion["error_rate"] == pytest.approx(0.25)
    assert (challenger["version"], challenger["requests"], challenger["error_rate"]) == ("2", 1, 1.0)


def test_alerts_latest_rows_and_counts(engine) -> None:
    with engine.begin() as conn:
        for i, (severity, status) in enumerate([("warning", "sent"), ("critical", "failed"), ("warning", "sent"),
                                                ("info", "suppressed")]):
            conn.execute(alert_log.insert().values(
                created_at=NOW - timedelta(days=40 if i == 0 else 1), kind="drift", severity=severity,
                dedup_key="d", status=status, transport="slack", title=f"alert {i}", message="m",
                error="HTTP 500" if status == "failed" else None, dag_id="monitoring", run_id=f"run{i}"))
    got = views.alerts(engine, now=NOW, limit=2)
    assert [r["title"] for r in got["rows"]] == ["alert 3", "alert 2"]
    assert sorted((c["severity"], c["status"], c["n"]) for c in got["counts"]) == [
        ("critical", "failed", 1), ("info", "suppressed", 1), ("warning", "sent", 1)]  # alert 0 is 40 days old
    assert got["rows"][0]["delivered"] is False and got["rows"][1]["delivered"] is True


def test_retrain_facts_and_outcomes(engine) -> None:
    numbers = {"mcnemar": {"p_value": 0.0021}, "bootstrap": {"p_value": 0.004},
               "challenger": {"f1": 0.95}, "champion": {"f1": 0.7}}
    with engine.begin() as conn:
        audit(conn, 1, alias="champion", action="promote", frm="1", to="2", run="retrain_compare_promote/r1",
              metrics=numbers, reasons=["trigger (drift): x", "improvement ok"])
        audit(conn, 2, alias="challenger", action="canary", frm=None, to="3", run="retrain_compare_promote/r2")
        audit(conn, 3, alias="challenger", action="withdraw", frm="3", to=None, run="retrain_compare_promote/r2")
        conn.execute(alert_log.insert().values(
            created_at=NOW, kind="rejection", severity="warning", dedup_key="d", status="logged", transport="log",
            title="version 4 rejected", message="McNemar p=0.41", dag_id="retrain_compare_promote", run_id="r3"))
    facts = views.retrain_facts(engine, model_name=MODEL)
    assert list(facts) == ["r3", "r2", "r1"]  # newest first
    assert {r: f["outcome"] for r, f in facts.items()} == {"r1": "promoted", "r2": "withdrawn", "r3": "rejected"}
    assert facts["r1"]["moves"][0]["metrics"]["mcnemar"]["p_value"] == 0.0021
    only = views.retrain_facts(engine, model_name=MODEL, run_ids=["r1", "unknown"])
    assert only["unknown"] == {"run_id": "unknown", "moves": [], "alerts": [], "outcome": "no decision yet"}


def test_registered_versions_and_the_version_of_a_run(engine) -> None:
    with engine.begin() as conn:
        for v in (1, 2, 3):
            conn.execute(model_artifacts.insert().values(
                model_name=MODEL, version=str(v), run_id=f"run{v}", sha256="0" * 64, hmac="", format="skops",
                registered_at=NOW + timedelta(minutes=v), registered_by=f"training/t{v}"))
    assert [v["version"] for v in views.registered_versions(engine, model_name=MODEL, limit=2)] == ["2", "3"]
    assert views.version_of_run(engine, model_name=MODEL, dag_id="training", run_id="t2") == "2"
    assert views.version_of_run(engine, model_name=MODEL, dag_id="training", run_id="nope") is None
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(model_artifacts)).scalar() == 3
