"""A small client of Airflow 3's public REST API (``/api/v2``), for the demo, `make up` and tests.

Only what AutoRetrain drives from outside Airflow: log in (the simple auth manager's
``POST /auth/token``), wait for the DAG processor to have parsed the DAGs, pause/unpause,
trigger a run with a conf, and follow a run's task states until it finishes. Standard library
only, so it works in any process of the venv.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any

FINISHED = frozenset({"success", "failed"})


class AirflowAPIError(RuntimeError):
    """The API answered with an error, or a run did not finish as expected."""


class AirflowAPI:
    """Talks to ``base_url`` (e.g. ``http://127.0.0.1:8080``) as ``username``."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self.timeout = timeout
        self._token: str | None = None

    # --- HTTP -----------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - configured URL
                payload = response.read()
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:500]
            if err.code == 401 and auth and self._token is not None:  # token expired: log in again once
                self._token = None
                return self._request(method, path, body, auth)
            raise AirflowAPIError(f"{method} {path} -> HTTP {err.code}: {detail}") from err
        return json.loads(payload) if payload else None

    def token(self) -> str:
        if self._token is None:
            answer = self._request("POST", "/auth/token",
                                   {"username": self.username, "password": self._password}, auth=False)
            self._token = answer["access_token"]
        return self._token

    # --- DAGs -----------------------------------------------------------------------------------
    def version(self) -> str:
        return self._request("GET", "/api/v2/version")["version"]

    def dag(self, dag_id: str) -> dict[str, Any]:
        return self._request("GET", f"/api/v2/dags/{_q(dag_id)}")

    def import_errors(self) -> list[dict[str, Any]]:
        return self._request("GET", "/api/v2/importErrors")["import_errors"]

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 180.0) -> None:
        """Wait until the DAG processor has parsed and stored every DAG; fail early on an import error."""
        pending = set(dag_ids)
        deadline = time.monotonic() + timeout
        while pending:
            for dag_id in sorted(pending):
                try:
                    self.dag(dag_id)
                    pending.discard(dag_id)
                except AirflowAPIError as err:
                    if "HTTP 404" not in str(err):
                        raise
            if pending:
                errors = self.import_errors()
                if errors:
                    first = errors[0]
                    raise AirflowAPIError(f"DAG import error in {first.get('filename')}: {first.get('stack_trace')}")
                if time.monotonic() > deadline:
                    raise AirflowAPIError(f"DAGs not parsed after {timeout:.0f} s: {', '.join(sorted(pending))}")
                time.sleep(1.0)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._request("PATCH", f"/api/v2/dags/{_q(dag_id)}", {"is_paused": paused})

    # --- runs -----------------------------------------------------------------------------------
    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, note: str | None = None) -> str:
        """Start a manual run now; return its run id."""
        body: dict[str, Any] = {"logical_date": None, "conf": dict(conf or {})}
        if note:
            body["note"] = note
        return self._request("POST", f"/api/v2/dags/{_q(dag_id)}/dagRuns", body)["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self._request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")

    def dag_runs(self, dag_id: str, limit: int = 100) -> list[dict[str, Any]]:
        return self._request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns?limit={limit}&order_by=-run_after")[
            "dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances?limit=1000"
        return self._request("GET", path)["task_instances"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, *, try_number: int = 1,
                 map_index: int = -1) -> list[str]:
        """The lines of one try's task log (structured events as JSON), as the UI's log view has them."""
        path = (f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/logs/{try_number}"
                f"?full_content=true&map_index={map_index}")
        content = self._request("GET", path).get("content") or []
        return [item if isinstance(item, str) else json.dumps(item) for item in content]

    def model_ops(self, section: str = "aliases") -> Any:
        """One section of the Model Ops plugin's data (``/modelops/api/sections/<section>``), logged in."""
        return self._request("GET", f"/modelops/api/sections/{section}")

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        """The value a task pushed (JSON), e.g. the dict an operator returned."""
        path = (f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/xcomEntries/{_q(key)}"
                f"?map_index={map_index}&deserialize=true")
        return self._request("GET", path)["value"]

    def set_run_state(self, dag_id: str, run_id: str, state: str) -> dict[str, Any]:
        """Mark a run ``success``/``failed``/``queued`` (a failed run stops its running tasks)."""
        return self._request("PATCH", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}", {"state": state})

    # --- human in the loop ----------------------------------------------------------------------
    def hitl_detail(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        """The Human-in-the-loop request of a task (subject, body, options, and the answer once given)."""
        return self._request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/"
                                    f"{_q(task_id)}/{map_index}/hitlDetails")

    def respond(self, dag_id: str, run_id: str, task_id: str, chosen: list[str],
                params_input: Mapping[str, Any] | None = None, map_index: int = -1) -> dict[str, Any]:
        """Answer a waiting Human-in-the-loop task as this user (Browse -> Required Actions does the same)."""
        body = {"chosen_options": list(chosen), "params_input": dict(params_input or {})}
        return self._request("PATCH", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/"
                                      f"{_q(task_id)}/{map_index}/hitlDetails", body)

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 600.0, poll: float = 2.0,
                 on_task: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Follow a run until it finishes; call ``on_task`` once per task instance state change."""
        seen: dict[tuple[str, int], str | None] = {}
        deadline = time.monotonic() + timeout
        while True:
            run = self.dag_run(dag_id, run_id)
            if on_task is not None:
                for ti in self.task_instances(dag_id, run_id):
                    key = (ti["task_id"], ti.get("map_index", -1))
                    if seen.get(key, "") != ti.get("state"):
                        seen[key] = ti.get("state")
                        on_task(ti)
            if run["state"] in FINISHED:
                return run
            if time.monotonic() > deadline:
                raise AirflowAPIError(f"{dag_id} run {run_id} still {run['state']} after {timeout:.0f} s")
            time.sleep(poll)


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")
