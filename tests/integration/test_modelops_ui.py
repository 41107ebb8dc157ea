"""Model Ops in the Airflow UI (issue 13): a real ``airflow api-server`` with the plugin, after a closed loop.

The loop is seeded cheaply and for real: the ``training`` DAG registers v1 (``dag.test()``); 350
messages scored by v1 (held-out SMS, then a campaign v1 calls ham, with users' labels) go into the
prediction log; ``monitoring`` measures that window (drift, hysteresis of one window) and
``retrain_compare_promote`` (the conf monitoring gave it, no canary) promotes v2. The api-server then
runs on the same Airflow, AutoRetrain and MLflow databases.

* anonymous requests to every page and JSON route get 401 and no data; a forged token gets 403;
* a logged-in client gets the loop: champion v2, the breached window, the retrain with the p-values
  its ``compare`` task pushed to XCom;
* headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright) logs in through Airflow's
  login form, opens the nav page and the three DAG-run tabs and reads what a person reads; it saves
  screenshots at 1440 and 390 px to docs/img/. Skipped only when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from autoretrain import registry, tracking
from autoretrain.config import load_settings
from autoretrain.db.engine import make_engine
from autoretrain.db.schema import feedback, predictions
from devstack.scenarios import holdout_messages, referral_campaign
from tests.conftest import (
    ROOT,
    SESSION_TMP,
    dag_from_bag,
    free_port,
    migrated,
    retrain_conf_triggered_by,
    serving_process,
    task_states,
)

pytestmark = pytest.mark.integration

FAST = {"families": ["logreg"], "cv_folds": 2}
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "docs" / "img"


@dataclass
class Loop:
    model_name: str
    database_url: str
    training_run: str
    monitoring_run: str
    retrain_run: str
    env: dict[str, str]


def _log_traffic(settings, engine, messages: list[tuple[str, str]], *, start: datetime) -> None:
    """What the service would have logged: v1's answers to ``messages``, then the users' labels."""
    from autoretrain.training.families import positive_proba
    from autoretrain.training.steps import as_frame

    model, _ = registry.load_trusted(settings, tracking.client_for(settings), registry.CHAMPION)
    proba = positive_proba(model, as_frame([t for t, _ in messages]), settings.positive_label)
    rows, labels = [], []
    for i, ((text, truth), p) in enumerate(zip(messages, proba, strict=True)):
        at, rid = start + timedelta(milliseconds=100 * i), uuid.uuid4().hex
        answer = settings.positive_label if p >= settings.decision_threshold else settings.negative_label
        rows.append({"request_id": rid, "created_at": at, "model_name": settings.model_name, "model_version": "1",
                     "variant": registry.CHAMPION, "role": "served", "user_id": f"u{i}", "text": text,
                     "probability": float(p), "label": answer, "latency_ms": 1.5})
        labels.append({"request_id": rid, "label": truth, "source": "user", "created_at": at})
    with engine.begin() as conn:
        conn.execute(sa.insert(predictions), rows)
        conn.execute(sa.insert(feedback), labels)


@pytest.fixture(scope="module")
def loop(airflow_db, mlflow_server, postgres_db) -> Iterator[Loop]:
    started = time.monotonic()
    model_name = f"sms-spam-ops-{uuid.uuid4().hex[:8]}"
    env = {"MLFLOW_TRACKING_URI": mlflow_server.uri, "AUTORETRAIN_MODEL_NAME": model_name,
           "AUTORETRAIN_DATABASE_URL": migrated(postgres_db("modelops")), "AUTORETRAIN_BOOTSTRAP_SAMPLES": "500",
           "AUTORETRAIN_EXPERIMENT_NAME": f"modelops-{model_name}"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = load_settings()
        trained = dag_from_bag("training").test(run_conf={**FAST})
        assert trained.state == "success", task_states(trained)
        engine = make_engine(env["AUTORETRAIN_DATABASE_URL"])
        start = datetime.now(UTC) - timedelta(minutes=2)
        _log_traffic(settings, engine, holdout_messages(settings)[:150] + referral_campaign(150, 50, seed=11),
                     start=start)
        engine.dispose()
        end = datetime.now(UTC) + timedelta(seconds=1)
        watched = dag_from_bag("monitoring").test(run_conf={
            "window_end": end.isoformat(), "window_hours": (end - start).total_seconds() / 3600,
            "drift_consecutive_windows": 1})
        assert task_states(watched)["trigger_retrain"] == "success", task_states(watched)
        conf = retrain_conf_triggered_by(watched)
        retrained = dag_from_bag("retrain_compare_promote").test(run_conf={**conf, **FAST, "canary_minutes": 0})
        assert task_states(retrained)["promote"] == "success", task_states(retrained)
        print(f"\n  closed loop seeded in {time.monotonic() - started:.0f} s", flush=True)
        yield Loop(model_name=model_name, database_url=env["AUTORETRAIN_DATABASE_URL"],
                   training_run=trained.run_id, monitoring_run=watched.run_id, retrain_run=retrained.run_id, env=env)


@dataclass
class ApiServer:
    url: str
    password: str

    def token(self) -> str:
        answer = httpx.post(f"{self.url}/auth/token", json={"username": "admin", "password": self.password},
                            timeout=30)
        return answer.raise_for_status().json()["access_token"]


@pytest.fixture(scope="module")
def api_server(loop: Loop) -> Iterator[ApiServer]:
    port = free_port()
    cmd = [str(Path(sys.executable).parent / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(port)]
    with serving_process(cmd, f"http://127.0.0.1:{port}/api/v2/monitor/health", SESSION_TMP / "modelops-api.log",
                         env={**loop.env, "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}"}, timeout=120):
        passwords = Path(os.environ["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        yield ApiServer(url=f"http://127.0.0.1:{port}", password=json.loads(passwords.read_text())["admin"])


def routes(loop: Loop) -> list[str]:
    sections = ["aliases", "versions", "drift", "quality", "timeline", "alerts", "serving"]
    runs = [("training", loop.training_run), ("monitoring", loop.monitoring_run),
            ("retrain_compare_promote", loop.retrain_run)]
    return (["/modelops/", "/modelops/api/overview", *(f"/modelops/api/sections/{s}" for s in sections)]
            + [f"/modelops/{kind}/{dag}/{run}" for dag, run in runs for kind in ("runs", "api/runs")])


def test_every_route_refuses_anonymous_and_forged_requests(api_server: ApiServer, loop: Loop) -> None:
    with httpx.Client(base_url=api_server.url, timeout=30) as http:
        for path in routes(loop):
            anonymous = http.get(path)
            assert anonymous.status_code == 401, (path, anonymous.status_code, anonymous.text[:200])
            assert anonymous.json() == {"detail": "Not authenticated"}, path  # no data, not even the model name
            forged = http.get(path, headers={"Authorization": "Bearer not-a-jwt"})
            assert forged.status_code == 403 and loop.model_name not in forged.text, path
            cookie = http.get(path, cookies={"_token": "forged"})
            assert cookie.status_code == 403 and loop.model_name not in cookie.text, path


def compare_decision(api_server: ApiServer, http: httpx.Client, loop: Loop) -> dict:
    """What the retrain's ``compare`` task pushed to XCom (the source the page's p-values must match)."""
    path = (f"/api/v2/dags/retrain_compare_promote/dagRuns/{loop.retrain_run}/taskInstances/compare/xcomEntries/"
            "decision")
    value = http.get(path, params={"deserialize": "true"}).raise_for_status().json()["value"]
    return json.loads(value) if isinstance(value, str) else value


def test_a_logged_in_user_gets_the_loop(api_server: ApiServer, loop: Loop) -> None:
    headers = {"Authorization": f"Bearer {api_server.token()}"}
    with httpx.Client(base_url=api_server.url, headers=headers, timeout=60) as http:
        for path in routes(loop):
            assert http.get(path).status_code == 200, path
        data = http.get("/modelops/api/overview").json()
        decision = compare_decision(api_server, http, loop)
    assert data["model_name"] == loop.model_name
    roles = {role: held["version"] for role, held in data["aliases"]["roles"].items()}
    assert roles == {"champion": "2", "challenger": None, "previous": "1"}
    assert [v["version"] for v in data["versions"]] == ["1", "2"] and all(v["vetted"] for v in data["versions"])
    assert data["versions"][1]["metrics"]["f1"] is not None and data["versions"][1]["intervals"]["f1"] is not None
    assert data["drift"]["totals"]["windows"] == 1 and data["drift"]["totals"]["breached"] == 1
    assert any(c["drifted"] for c in data["drift"]["windows"][0]["checks"])
    run = next(r for r in data["timeline"] if r["run_id"] == loop.retrain_run)
    assert run["outcome"] == "promoted" and run["trigger"]["source"] == "drift"
    promote = next(m for m in run["moves"] if m["alias"] == "champion")
    assert promote["metrics"]["mcnemar"]["p_value"] == decision["numbers"]["mcnemar"]["p_value"]
    assert data["serving"]["served"] == 350 and data["quality"]["windows"][0]["labelled"] == 350


def test_the_page_and_its_tabs_in_a_real_browser(api_server: ApiServer, loop: Loop) -> None:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: install Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with httpx.Client(base_url=api_server.url, headers={"Authorization": f"Bearer {api_server.token()}"},
                      timeout=60) as http:
        p_value = compare_decision(api_server, http, loop)["numbers"]["mcnemar"]["p_value"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(f"{api_server.url}/plugin/model-ops")  # not logged in: Airflow's login form first
            page.wait_for_url("**/auth/login**")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", api_server.password)
            page.locator("button[type=submit]").click()
            page.wait_for_url("**/plugin/model-ops")
            frame = page.frame_locator("iframe")
            assert frame.locator("[data-role=champion]").inner_text(timeout=30_000) == "v2"
            assert frame.locator("[data-role=previous]").inner_text() == "v1"
            assert frame.locator("#drift circle.breach").count() >= 1
            breached = frame.locator("#drift tbody tr").first.inner_text()
            assert "v1" not in breached and ">" in breached.replace("&gt;", ">")  # a check over its threshold
            timeline = frame.locator("#timeline").inner_text()
            assert f"McNemar p={p_value:.3g}" in timeline and "promoted" in timeline
            page.screenshot(path=str(SCREENSHOTS / "modelops-airflow-1440.png"))
            page.goto(f"{api_server.url}/modelops/")  # the page itself, full length, with the session cookie
            page.screenshot(path=str(SCREENSHOTS / "modelops-1440.png"), full_page=True)
            narrow = browser.new_page(viewport={"width": 390, "height": 844},
                                      storage_state=page.context.storage_state())
            narrow.goto(f"{api_server.url}/modelops/")
            assert narrow.locator("[data-role=champion]").inner_text() == "v2"
            width = narrow.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the page is {width} px wide at 390 px: it must not scroll sideways"
            narrow.screenshot(path=str(SCREENSHOTS / "modelops-390.png"), full_page=True)
            tabs = {"retrain_compare_promote": (loop.retrain_run, f"McNemar p={p_value:.3g}"),
                    "monitoring": (loop.monitoring_run, "breached"), "training": (loop.training_run, "Version v1")}
            for dag_id, (run_id, expected) in tabs.items():
                page.goto(f"{api_server.url}/dags/{dag_id}/runs/{run_id}/plugin/model-ops-dag-run")
                body = page.frame_locator("iframe").locator("body")
                assert expected in body.inner_text(timeout=30_000), dag_id
                page.screenshot(path=str(SCREENSHOTS / f"modelops-tab-{dag_id.replace('_', '-')}-1440.png"))
        finally:
            browser.close()
