"""Model Ops in the Airflow UI (issue 13): a real ``airflow api-server`` with the plugin, after a closed loop.

The loop is the package fixture ``closed_loop`` (tests/integration/conftest.py, shared with
test_closed_loop): ``training`` registers v1, 350 messages go through the prediction service with
users' labels, ``monitoring`` measures that window (drift) and ``retrain_compare_promote`` promotes
v2. The api-server then runs on the same Airflow, AutoRetrain and MLflow databases.

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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    ROOT,
    SESSION_TMP,
    free_port,
    serving_process,
)

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "docs" / "img"


@dataclass
class ApiServer:
    url: str
    password: str

    def token(self) -> str:
        answer = httpx.post(f"{self.url}/auth/token", json={"username": "admin", "password": self.password},
                            timeout=30)
        return answer.raise_for_status().json()["access_token"]


@pytest.fixture(scope="module")
def api_server(closed_loop) -> Iterator[ApiServer]:
    port = free_port()
    env = {k: v for k, v in closed_loop.env.items() if not k.endswith("_TOKEN")}  # it needs no service token
    cmd = [str(Path(sys.executable).parent / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(port)]
    with serving_process(cmd, f"http://127.0.0.1:{port}/api/v2/monitor/health", SESSION_TMP / "modelops-api.log",
                         env={**env, "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}"}, timeout=120):
        passwords = Path(os.environ["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        yield ApiServer(url=f"http://127.0.0.1:{port}", password=json.loads(passwords.read_text())["admin"])


def routes(loop) -> list[str]:
    sections = ["aliases", "versions", "drift", "quality", "timeline", "alerts", "serving"]
    runs = [("training", loop.training_run), ("monitoring", loop.monitoring_run),
            ("retrain_compare_promote", loop.retrain_run)]
    return (["/modelops/", "/modelops/api/overview", *(f"/modelops/api/sections/{s}" for s in sections)]
            + [f"/modelops/{kind}/{dag}/{run}" for dag, run in runs for kind in ("runs", "api/runs")])


def test_every_route_refuses_anonymous_and_forged_requests(api_server: ApiServer, closed_loop) -> None:
    with httpx.Client(base_url=api_server.url, timeout=30) as http:
        for path in routes(closed_loop):
            anonymous = http.get(path)
            assert anonymous.status_code == 401, (path, anonymous.status_code, anonymous.text[:200])
            assert anonymous.json() == {"detail": "Not authenticated"}, path  # no data, not even the model name
            forged = http.get(path, headers={"Authorization": "Bearer not-a-jwt"})
            assert forged.status_code == 403 and closed_loop.model_name not in forged.text, path
            cookie = http.get(path, cookies={"_token": "forged"})
            assert cookie.status_code == 403 and closed_loop.model_name not in cookie.text, path


def compare_decision(api_server: ApiServer, http: httpx.Client, closed_loop) -> dict:
    """What the retrain's ``compare`` task pushed to XCom (the source the page's p-values must match)."""
    path = (f"/api/v2/dags/retrain_compare_promote/dagRuns/{closed_loop.retrain_run}/taskInstances/compare/xcomEntries/"
            "decision")
    value = http.get(path, params={"deserialize": "true"}).raise_for_status().json()["value"]
    return json.loads(value) if isinstance(value, str) else value


def test_a_logged_in_user_gets_the_loop(api_server: ApiServer, closed_loop) -> None:
    headers = {"Authorization": f"Bearer {api_server.token()}"}
    with httpx.Client(base_url=api_server.url, headers=headers, timeout=60) as http:
        for path in routes(closed_loop):
            answer = http.get(path)
            assert answer.status_code == 200, path
            if "/api/" not in path:  # the pages run no script and only Airflow may frame them
                assert "default-src 'none'" in answer.headers["content-security-policy"], path
                assert "frame-ancestors 'self'" in answer.headers["content-security-policy"], path
        data = http.get("/modelops/api/overview").json()
        decision = compare_decision(api_server, http, closed_loop)
    assert data["model_name"] == closed_loop.model_name
    roles = {role: held["version"] for role, held in data["aliases"]["roles"].items()}
    assert roles == {"champion": "2", "challenger": None, "previous": "1"}
    assert [v["version"] for v in data["versions"]] == ["1", "2"] and all(v["vetted"] for v in data["versions"])
    assert data["versions"][1]["metrics"]["f1"] is not None and data["versions"][1]["intervals"]["f1"] is not None
    assert data["drift"]["totals"]["windows"] == 1 and data["drift"]["totals"]["breached"] == 1
    assert any(c["drifted"] for c in data["drift"]["windows"][0]["checks"])
    run = next(r for r in data["timeline"] if r["run_id"] == closed_loop.retrain_run)
    assert run["outcome"] == "promoted" and run["trigger"]["source"] == "drift"
    promote = next(m for m in run["moves"] if m["alias"] == "champion")
    assert promote["metrics"]["mcnemar"]["p_value"] == decision["numbers"]["mcnemar"]["p_value"]
    # the 350 answers of the loop (test_closed_loop may have added its own since)
    assert data["serving"]["served"] >= 350 and data["quality"]["windows"][0]["labelled"] == 350


def test_the_page_and_its_tabs_in_a_real_browser(api_server: ApiServer, closed_loop) -> None:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: install Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with httpx.Client(base_url=api_server.url, headers={"Authorization": f"Bearer {api_server.token()}"},
                      timeout=60) as http:
        p_value = compare_decision(api_server, http, closed_loop)["numbers"]["mcnemar"]["p_value"]
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
            tabs = {"retrain_compare_promote": (closed_loop.retrain_run, f"McNemar p={p_value:.3g}"),
                    "monitoring": (closed_loop.monitoring_run, "breached"),
                    "training": (closed_loop.training_run, "Version v1")}
            for dag_id, (run_id, expected) in tabs.items():
                page.goto(f"{api_server.url}/dags/{dag_id}/runs/{run_id}/plugin/model-ops-dag-run")
                body = page.frame_locator("iframe").locator("body")
                assert expected in body.inner_text(timeout=30_000), dag_id
                page.screenshot(path=str(SCREENSHOTS / f"modelops-tab-{dag_id.replace('_', '-')}-1440.png"))
        finally:
            browser.close()
