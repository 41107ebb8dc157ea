"""The prediction service in-process (TestClient): inputs, answers, auth, routing, reloads, metrics.

The registry is an in-memory stand-in here; tests/integration/test_serving.py runs the real thing
(mlflow server, Postgres, uvicorn processes).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import datetime
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from autoretrain.alerts.store import AlertStore
from autoretrain.config import Settings
from autoretrain.data.sources import read_dataset
from autoretrain.db.schema import predictions
from autoretrain.registry import ModelIntegrityError, ModelRef
from autoretrain.serving import prediction_log
from autoretrain.serving.app import create_app
from autoretrain.serving.routing import RoutingConfig, choose
from autoretrain.training.families import build_pipeline, get_family
from tests.conftest import ROOT, migrated

TOKEN = "tok-" + uuid.uuid4().hex  # the admin token
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FEEDBACK_TOKEN = "feedback-" + uuid.uuid4().hex
FEEDBACK = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}
SALT = "salt-" + uuid.uuid4().hex


class FakeRegistry:
    """Aliases -> versions -> fitted pipelines; versions in ``broken`` fail verification."""

    def __init__(self, pipelines: dict[str, Any], aliases: dict[str, str]) -> None:
        self.pipelines, self.aliases, self.broken, self.failing = pipelines, dict(aliases), set(), set()
        self.loads: list[str] = []

    def lookup(self, alias: str) -> ModelRef | None:
        version = self.aliases.get(alias)
        if version is None:
            return None
        return ModelRef(name="sms", version=version, run_id=f"run-{version}", source="memory",
                        sha256=f"sha-{version}", aliases=(alias,),
                        tags={"holdout_f1": "0.95", "autoretrain.family": "complement_nb", "note": "x"})

    def load(self, ref: ModelRef) -> Any:
        self.loads.append(ref.version)
        if ref.version in self.failing:
            raise OSError(f"artifact store unreachable for version {ref.version}")
        if ref.version in self.broken:
            raise ModelIntegrityError(f"sms version {ref.version}: artifact SHA-256 abc... does not match")
        return self.pipelines[ref.version]


@pytest.fixture(scope="module")
def pipelines() -> dict[str, Any]:
    frame = read_dataset(str(ROOT / "data/sms_spam_collection/SMSSpamCollection"), labels=("ham", "spam")).frame
    train = frame.iloc[:1500]
    fit = {name: build_pipeline(get_family(name).make(0)).fit(train[["text"]], train["label"].to_numpy())
           for name in ("complement_nb", "logreg")}
    return {"1": fit["complement_nb"], "2": fit["logreg"], "3": fit["complement_nb"]}


def _settings(tmp_path, **changes) -> Settings:
    values = {"model_name": "sms", "database_url": migrated(f"sqlite:///{tmp_path / 'serving.db'}"),
              "admin_token": TOKEN, "feedback_token": FEEDBACK_TOKEN, "routing_salt": SALT,
              "state_dir": str(tmp_path / "state"),
              "reload_interval_seconds": 60.0, "max_message_chars": 50, "max_batch_messages": 4,
              "log_flush_seconds": 0.05, **changes}
    return Settings(**values)


def _ready(client: TestClient) -> None:
    deadline = time.monotonic() + 30
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, client.get("/ready").json()
        time.sleep(0.02)


@pytest.fixture
def make_client(tmp_path, pipelines):
    clients = []

    def make(aliases: dict[str, str] | None = None, *, wait: bool = True, fast_lane: bool = True, **changes):
        fake = FakeRegistry(pipelines, {"champion": "1"} if aliases is None else aliases)
        app = create_app(_settings(tmp_path, **changes), lookup=fake.lookup, loader=fake.load, fast_lane=fast_lane)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        if wait:
            _ready(client)
        return client, fake

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _rows(client: TestClient) -> list[dict]:
    assert client.app.state.service.writer.flush(timeout=10)
    return prediction_log.iter_rows(client.app.state.engine, predictions, limit=10_000)


def _metric(client: TestClient, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return None


# --------------------------------------------------------------------------------------- predict
def test_predict_answers_with_the_champion(make_client, pipelines):
    client, _ = make_client()
    text = "WINNER!! Claim your FREE prize"
    response = client.post("/predict", json={"message": text, "user_id": "u1"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"label", "spam_probability", "model_version", "variant", "request_id", "timestamp",
                         "top_features"}
    expected = pipelines["1"].predict_proba(pd.DataFrame({"text": [text]}))[0, 1]
    assert body["spam_probability"] == pytest.approx(expected, rel=1e-9)
    assert (body["label"], body["model_version"], body["variant"]) == ("spam", "1", "champion")
    assert uuid.UUID(body["request_id"]).version == 4
    assert datetime.fromisoformat(body["timestamp"]).utcoffset().total_seconds() == 0
    assert [f["term"] for f in body["top_features"]] == ["claim", "prize", "winner", "your free", "claim your"]
    rows = _rows(client)
    assert len(rows) == 1
    assert {k: rows[0][k] for k in ("request_id", "text", "user_id", "model_version", "variant", "role", "label")} \
        == {"request_id": body["request_id"], "text": text, "user_id": "u1", "model_version": "1",
            "variant": "champion", "role": "served", "label": "spam"}
    assert rows[0]["probability"] == body["spam_probability"]


def test_unicode_and_emoji_are_served_and_logged_intact(make_client):
    client, _ = make_client()
    text = "Ünïcödé 🎉 日本語 ‘quotes’ \u00a0nbsp"
    response = client.post("/predict", json={"message": text})
    assert response.status_code == 200 and response.json()["label"] in ("ham", "spam")
    assert [r["text"] for r in _rows(client)] == [text]


BAD = [
    (b'{"message": ""}', "message: String should have at least 1 character"),
    (b'{"message": "   \\n\\t "}', "message: message is empty or only whitespace"),
    (json.dumps({"message": "x" * 51}).encode(), "message: String should have at most 50 characters"),
    (b'{"message": 42}', "message: Input should be a valid string"),
    (b'{"message": ["a"]}', "message: Input should be a valid string"),
    (b'{"message": "hi", "user_id": 7}', "user_id: Input should be a valid string"),
    (b'{"message": "hi", "user_id": ""}', "user_id: String should have at least 1 character"),
    (b'{"message": "hi", "colour": "red"}', "colour: Extra inputs are not permitted"),
    (b'{"msg": "hi"}', "message: Field required; msg: Extra inputs are not permitted"),
    (b'{"message": "hi"', "the request body is not valid JSON (Expecting ',' delimiter)"),
    (b"", "the request body must be a JSON object, sent with Content-Type: application/json"),
    (b'["hi"]', "the request body must be a JSON object, sent with Content-Type: application/json"),
    (b'{"message": "\\ud800"}',
     "message: Input should be a valid string, unable to parse raw data as a unicode string"),
]


@pytest.mark.parametrize("fast_lane", [True, False])
@pytest.mark.parametrize(("raw", "message"), BAD)
def test_bad_input_gets_a_422_that_says_what(make_client, raw, message, fast_lane):
    client, _ = make_client(fast_lane=fast_lane)
    response = client.post("/predict", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["message"] == message
    assert _rows(client) == []


def test_form_encoded_body_is_refused_with_a_hint(make_client):
    client, _ = make_client()
    response = client.post("/predict", data={"message": "hi"})
    assert response.status_code == 422
    assert response.json()["message"] == ("the request body must be a JSON object, sent with "
                                          "Content-Type: application/json")


def test_both_lanes_answer_alike(make_client):
    fast, _ = make_client(fast_lane=True)
    slow, _ = make_client(fast_lane=False)
    for payload in ({"message": "free entry, txt WIN"}, {"message": "see you at 5", "user_id": "ann"}):
        a, b = fast.post("/predict", json=payload), slow.post("/predict", json=payload)
        assert a.status_code == b.status_code == 200
        assert a.headers["content-type"] == b.headers["content-type"] == "application/json"
        strip = lambda r: {k: v for k, v in r.json().items() if k not in ("request_id", "timestamp")}  # noqa: E731
        assert strip(a) == strip(b)


def test_body_over_the_limit_gets_413(make_client):
    client, _ = make_client()
    huge = json.dumps({"message": "x" * 20_000_000})
    response = client.post("/predict", content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["detail"].startswith("request body over ")


def test_batch_routes_each_item_and_limits_the_size(make_client):
    client, _ = make_client({"champion": "1", "challenger": "2"}, routing_mode="canary", canary_percent=50)
    items = [{"message": "hello", "user_id": u} for u in ("user-1", "user-2", "user-1", "user-9")]
    response = client.post("/predict/batch", json={"items": items})
    assert response.status_code == 200
    answers = response.json()["predictions"]
    assert len({a["request_id"] for a in answers}) == 4
    expected = [choose(RoutingConfig(mode="canary", canary_percent=50), i["user_id"], SALT) for i in items]
    assert [a["variant"] for a in answers] == expected and expected[0] == expected[2]
    assert [a["model_version"] for a in answers] == [{"champion": "1", "challenger": "2"}[v] for v in expected]
    too_many = client.post("/predict/batch", json={"items": items + items[:1]})
    assert too_many.status_code == 422
    assert too_many.json()["message"] == "items: List should have at most 4 items after validation, not 5"
    assert len(_rows(client)) == 4


# ------------------------------------------------------------------------------ ready and reload
def test_not_ready_until_a_champion_exists(make_client):
    client, fake = make_client({}, wait=False)
    deadline = time.monotonic() + 10
    while client.app.state.service.manager.state.checked_at is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["detail"] == ("not ready: the registry has no models:/sms@champion yet; "
                                      "train and promote a model first")
    assert client.post("/predict", json={"message": "hi"}).status_code == 503
    fake.aliases["champion"] = "1"
    assert client.post("/admin/reload", headers=AUTH).status_code == 200
    assert client.get("/ready").json() == {"status": "ready", "versions": {"champion": "1"}}


def test_a_version_that_fails_verification_is_refused_once_alerted_and_the_old_one_serves(make_client):
    client, fake = make_client()
    manager = client.app.state.service.manager
    fake.broken.add("2")
    fake.aliases["champion"] = "2"
    client.post("/admin/reload", headers=AUTH)
    assert client.post("/predict", json={"message": "hi"}).json()["model_version"] == "1"
    assert _metric(client, "autoretrain_model_reloads_total", alias="champion", outcome="refused") == 1.0
    assert _metric(client, "autoretrain_model_reloads_total", alias="champion", outcome="success") == 1.0
    failure = client.get("/models/current").json()["recent_failures"]
    assert [(f["alias"], f["version"], f["retry_in_seconds"]) for f in failure] == [("champion", "2", None)]
    assert failure[0]["error"].startswith("ModelIntegrityError: sms version 2: artifact SHA-256")
    for _ in range(5):  # the poller never tries a refused version again (no log flood, no repeated alert)
        manager.refresh()
    assert fake.loads.count("2") == 1
    alerts = AlertStore(client.app.state.engine.url.render_as_string(hide_password=False)).records()
    assert [(a.kind, a.severity, a.status, a.dedup_key) for a in alerts] == [
        ("model_integrity", "critical", "logged", "model_integrity:sms:2")]
    assert "version 1 keeps serving" in alerts[0].message
    client.post("/admin/reload", headers=AUTH)  # an operator asks: verified again (and refused again)
    assert fake.loads.count("2") == 2
    fake.aliases["champion"] = "3"  # a good version is picked up
    client.post("/admin/reload", headers=AUTH)
    assert client.post("/predict", json={"message": "hi"}).json()["model_version"] == "3"
    assert _metric(client, "autoretrain_model_info", alias="champion", version="3") == 1.0
    assert _metric(client, "autoretrain_model_info", alias="champion", version="1") is None


def test_a_version_that_fails_to_load_is_retried_with_a_backoff(make_client):
    client, fake = make_client()
    fake.failing.add("2")
    fake.aliases["champion"] = "2"
    client.post("/admin/reload", headers=AUTH)
    assert client.post("/predict", json={"message": "hi"}).json()["model_version"] == "1"
    assert _metric(client, "autoretrain_model_reloads_total", alias="champion", outcome="failure") == 1.0
    failure = client.get("/models/current").json()["recent_failures"]
    assert [(f["alias"], f["version"], f["retry_in_seconds"]) for f in failure] == [("champion", "2", 30.0)]
    client.post("/admin/reload", headers=AUTH)  # inside the backoff: not retried, not counted again
    assert _metric(client, "autoretrain_model_reloads_total", alias="champion", outcome="failure") == 1.0


def test_models_current_describes_what_serves(make_client):
    client, _ = make_client({"champion": "1", "challenger": "2"}, routing_mode="shadow")
    body = client.get("/models/current").json()
    assert body["model_name"] == "sms"
    assert body["routing"] == {"mode": "shadow", "canary_percent": 10.0,
                               "ab_weights": {"champion": 50, "challenger": 50}}
    champion = body["variants"]["champion"]
    assert {k: champion[k] for k in ("version", "run_id", "sha256", "aliases", "family", "metrics", "fast_path")} \
        == {"version": "1", "run_id": "run-1", "sha256": "sha-1", "aliases": ["champion"],
            "family": "complement_nb", "metrics": {"holdout_f1": 0.95}, "fast_path": True}
    assert body["variants"]["challenger"]["version"] == "2"
    assert datetime.fromisoformat(champion["loaded_at"]) <= datetime.fromisoformat(body["last_check"])


# ------------------------------------------------------------------------------------- routing
def test_routing_switches_live_through_the_admin_api(make_client):
    client, _ = make_client({"champion": "1", "challenger": "2"})
    assert client.post("/predict", json={"message": "hi"}).json()["variant"] == "champion"
    put = client.put("/admin/routing", headers=AUTH, json={"mode": "canary", "canary_percent": 100})
    assert put.status_code == 200
    assert put.json() == {"mode": "canary", "canary_percent": 100.0,
                          "ab_weights": {"champion": 50, "challenger": 50}, "source": "override"}
    assert {client.post("/predict", json={"message": "hi"}).json()["model_version"] for _ in range(5)} == {"2"}
    bad = client.put("/admin/routing", headers=AUTH, json={"mode": "ab", "ab_weights": {"champion": 0}})
    assert bad.status_code == 422
    assert bad.json()["detail"] == "ab mode needs at least one variant with a weight above 0"
    back = client.delete("/admin/routing", headers=AUTH)
    assert back.json()["source"] == "settings" and back.json()["mode"] == "full"
    assert client.post("/predict", json={"message": "hi"}).json()["variant"] == "champion"


def test_shadow_scores_with_the_challenger_logs_it_and_never_returns_it(make_client):
    client, _ = make_client({"champion": "1", "challenger": "2"}, routing_mode="shadow")
    answer = client.post("/predict", json={"message": "free prize call now"}).json()
    assert (answer["variant"], answer["model_version"]) == ("champion", "1")
    rows = sorted(_rows(client), key=lambda r: r["role"])
    assert [(r["request_id"], r["variant"], r["model_version"], r["role"]) for r in rows] == [
        (answer["request_id"], "champion", "1", "served"), (answer["request_id"], "challenger", "2", "shadow")]
    assert _metric(client, "autoretrain_predictions_total", label=rows[1]["label"], role="shadow",
                   variant="challenger", version="2") == 1.0


def test_canary_without_a_challenger_falls_back_to_the_champion_and_counts_it(make_client):
    client, _ = make_client({"champion": "1"}, routing_mode="canary", canary_percent=100)
    assert client.post("/predict", json={"message": "hi"}).json()["variant"] == "champion"
    assert _metric(client, "autoretrain_routing_fallbacks_total", wanted="challenger") == 1.0


# ------------------------------------------------------------------------------------ feedback
def test_feedback_needs_a_configured_token(make_client):
    client, _ = make_client(feedback_token="")
    response = client.post("/feedback", json={"request_id": "x", "label": "spam"}, headers=FEEDBACK)
    assert response.status_code == 403
    assert "set AUTORETRAIN_FEEDBACK_TOKEN" in response.json()["detail"]


def test_feedback_auth_and_validation(make_client, caplog):
    caplog.set_level(logging.DEBUG)
    client, _ = make_client()
    request_id = client.post("/predict", json={"message": "free prize"}).json()["request_id"]
    payload = {"request_id": request_id, "label": "ham", "source": "moderator"}
    missing = client.post("/feedback", json=payload)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["detail"] == ("missing bearer token: send 'Authorization: Bearer "
                                        "<AUTORETRAIN_FEEDBACK_TOKEN>'")
    wrong = client.post("/feedback", json=payload, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "wrong bearer token (this endpoint takes the feedback token)"
    assert client.post("/feedback", json=payload, headers=AUTH).status_code == 401  # the admin token is not it
    unknown = client.post("/feedback", json={**payload, "request_id": "no-such-id"}, headers=FEEDBACK)
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == ("unknown request_id 'no-such-id': no prediction with this id is in "
                                        "the prediction log")
    bad_label = client.post("/feedback", json={**payload, "label": "eggs"}, headers=FEEDBACK)
    assert bad_label.status_code == 422 and bad_label.json()["message"] == "label: Input should be 'ham' or 'spam'"
    ok = client.post("/feedback", json=payload, headers=FEEDBACK)
    assert ok.status_code == 200
    assert {k: ok.json()[k] for k in ("request_id", "label", "source")} == payload
    row = prediction_log.get_feedback(client.app.state.engine, request_id)
    assert (row["label"], row["source"]) == ("ham", "moderator")
    assert TOKEN not in caplog.text and FEEDBACK_TOKEN not in caplog.text


def test_feedback_right_after_predict_finds_the_queued_row(make_client):
    client, _ = make_client(log_flush_seconds=60.0, log_batch_size=10_000)  # nothing written on its own
    request_id = client.post("/predict", json={"message": "hello"}).json()["request_id"]
    response = client.post("/feedback", json={"request_id": request_id, "label": "ham"}, headers=FEEDBACK)
    assert response.status_code == 200 and response.json()["source"] == "api"


# ------------------------------------------------------------------------------------- metrics
def test_metrics_count_predictions_errors_and_the_log_queue(make_client):
    client, _ = make_client()
    labels = [client.post("/predict", json={"message": m}).json()["label"]
              for m in ("hi there", "WINNER free prize call", "ok")]
    client.post("/predict", json={"message": ""})
    _rows(client)  # flushed
    for label in set(labels):
        assert _metric(client, "autoretrain_predictions_total", label=label, role="served", variant="champion",
                       version="1") == labels.count(label)
    assert _metric(client, "autoretrain_request_errors_total", endpoint="/predict", status="422") == 1.0
    assert _metric(client, "autoretrain_request_duration_seconds_count", endpoint="/predict") == 4.0
    assert _metric(client, "autoretrain_prediction_log_written_total") == 3.0
    assert _metric(client, "autoretrain_prediction_log_dropped_total") == 0.0
    assert _metric(client, "autoretrain_prediction_log_queue_depth") == 0.0
    client.get("/no/such/path")
    assert _metric(client, "autoretrain_request_errors_total", endpoint="other", status="404") == 1.0


def test_openapi_documents_the_endpoints(make_client):
    client, _ = make_client()
    spec = client.get("/openapi.json").json()
    assert {p for p in spec["paths"]} == {"/predict", "/predict/batch", "/feedback", "/health", "/ready",
                                          "/models/current", "/metrics", "/admin/routing", "/admin/reload",
                                          "/drift/calculate"}
    message = spec["components"]["schemas"]["PredictRequest"]["properties"]["message"]
    assert (message["minLength"], message["maxLength"]) == (1, 50)
    assert client.get("/docs").status_code == 200
    schemes = spec["components"]["securitySchemes"]
    assert schemes.keys() == {"feedback_token", "admin_token"}
    assert {s["type"] + "/" + s["scheme"] for s in schemes.values()} == {"http/bearer"}
    assert spec["paths"]["/feedback"]["post"]["security"] == [{"feedback_token": []}]
    assert spec["paths"]["/drift/calculate"]["post"]["security"] == [{"admin_token": []}]


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_streamed_body_over_the_limit_gets_413(make_client, path):
    client, _ = make_client()
    limit = 4 * (50 * 12 + 300) + 4096  # max_batch_messages * (max_message_chars * 12 + 300) + 4096

    def chunks():
        yield b'{"message": "'
        for _ in range(limit // 1000 + 1):
            yield b"x" * 1000
        yield b'"}'

    response = client.post(path, content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"detail": f"request body over {limit} bytes; send smaller messages or fewer "
                                          "per batch"}


def test_bad_serving_settings_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"reload_interval_seconds=0.0 must be between 0.1 and 86400 "
                                         r"\(AUTORETRAIN_RELOAD_INTERVAL_SECONDS or autoretrain.json\)"):
        create_app(_settings(tmp_path, reload_interval_seconds=0.0))
    with pytest.raises(ValueError, match="routing mode 'blue' is not one of"):
        create_app(_settings(tmp_path, routing_mode="blue"))
    with pytest.raises(ValueError, match="ab variant 'champion' must look like alias=weight"):
        create_app(_settings(tmp_path, ab_variants=("champion",)))


@pytest.mark.parametrize(("page", "assets"), [
    ("/docs", ["swagger-ui-bundle.js", "swagger-ui.css"]),
    ("/redoc", ["redoc.standalone.js"]),
])
def test_api_docs_work_offline(make_client, page, assets):
    """/docs was a blank page without internet: its Swagger UI came from a CDN (issue 15)."""
    client, _ = make_client()
    html = client.get(page)
    assert html.status_code == 200 and "/openapi.json" in html.text
    assert "cdn.jsdelivr.net" not in html.text and "fonts.googleapis.com" not in html.text
    for asset in assets:
        assert f"/docs-assets/{asset}" in html.text
        served = client.get(f"/docs-assets/{asset}")
        assert served.status_code == 200 and len(served.content) > 100_000, asset


# ------------------------------------------------------------------------- prediction-log health
def test_ready_is_degraded_while_the_log_table_is_gone_and_refuses_while_rows_drop(make_client):
    client, _ = make_client(log_ready_backlog_rows=2)
    engine = client.app.state.engine
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE prediction_log RENAME TO prediction_log_away")
    ids = [client.post("/predict", json={"message": f"hi {i}"}).json()["request_id"] for i in range(3)]
    deadline = time.monotonic() + 10
    while len(client.get("/ready").json().get("reasons", [])) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert "no such table: prediction_log" in ready.json()["reasons"][0]
    assert ready.json()["reasons"][1] == "3 prediction-log rows backed up in the spool (over 2)"
    assert _metric(client, "autoretrain_prediction_log_queue_depth") == 3.0
    assert _metric(client, "autoretrain_prediction_log_spool_bytes") > 0
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE prediction_log_away RENAME TO prediction_log")
    assert {r["request_id"] for r in _rows(client)} == set(ids)
    assert client.get("/ready").json() == {"status": "ready", "versions": {"champion": "1"}}

    full, _ = make_client(log_queue_size=1, log_flush_seconds=60.0, log_batch_size=10_000)
    assert [full.post("/predict", json={"message": "x"}).status_code for _ in range(2)] == [200, 200]
    refused = full.get("/ready")
    assert refused.status_code == 503 and "rows dropped in the last 60s (1 in all)" in refused.json()["detail"]
    assert _metric(full, "autoretrain_prediction_log_dropped_total") == 1.0
