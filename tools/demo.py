"""`make demo`: the whole closed loop on embedded defaults, through the real Airflow scheduler.

1. reset the demo stack's state (.autoretrain/stack, the Airflow metadata DB, and the embedded stores
   .autoretrain/mlflow.db, mlartifacts, autoretrain.db) and start it: MLflow server, Airflow api-server +
   scheduler + dag-processor + triggerer (LocalExecutor, SQLite), the prediction service (tools/stack.py);
2. unpause the DAGs; the scheduler starts the `training` DAG's latest weekly slot, which trains
   and registers the first champion; the prediction service loads it;
3. replay held-out SMS through POST /predict, with the true labels sent back to POST /feedback;
   the `monitoring` DAG measures that window: no drift;
4. inject drift: a new spam campaign (friendly "crypto went up, send your wallet" messages the
   2012 corpus never saw) in two consecutive windows; `monitoring` measures each; the second
   confirms the drift (hysteresis) and triggers `retrain_compare_promote`;
5. the retrain trains a challenger on the base data + labelled traffic, compares it with the
   champion (gates, improvement, McNemar), runs a one-minute canary on live traffic (10 % of
   users), promotes it, and the service swaps to it without a restart;
6. print a summary (versions before/after, metrics, drift scores, alerts, timings, URLs) and
   leave the stack running for browsing; `make down` stops it.

Everything lives under `.autoretrain/` (git-ignored). A second `make demo` starts over.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stack  # noqa: E402 - tools/stack.py, next to this file
from autoretrain.config import load_settings  # noqa: E402
from devstack.airflow_api import AirflowAPI  # noqa: E402
from devstack.scenarios import holdout_messages, referral_campaign  # noqa: E402

# The demo's only departures from the defaults, so the loop fits in a few minutes: a one-minute
# canary checked every 10 s, and the service polling the registry every 2 s. Each can be set in the
# environment instead (e.g. `AUTORETRAIN_CANARY_MINUTES=0 make demo` promotes without a canary).
DEMO_ENV = {
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # the demo unpauses what it uses
    **{key: os.environ.get(key, default) for key, default in (
        ("AUTORETRAIN_CANARY_MINUTES", "1"),
        ("AUTORETRAIN_CANARY_GRACE_SECONDS", "5"),
        ("AUTORETRAIN_CANARY_POKE_SECONDS", "10"),
        ("AUTORETRAIN_RELOAD_INTERVAL_SECONDS", "2"),
    )},
}
DAGS = ("training", "monitoring", "retrain_compare_promote", "rollback", "dataset_validation")
STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


# ----------------------------------------------------------------------------------- service
class Service:
    """Client of the prediction service: predict, feedback, current versions."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def _call(self, method: str, path: str, body: Any = None, auth: bool = False) -> Any:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return json.loads(response.read())

    def predict(self, text: str, user: str) -> dict[str, Any]:
        return self._call("POST", "/predict", {"message": text, "user_id": user})

    def feedback(self, request_id: str, label: str) -> None:
        for _ in range(20):  # the prediction reaches the log within ~0.2 s of the answer
            try:
                self._call("POST", "/feedback", {"request_id": request_id, "label": label, "source": "demo"},
                           auth=True)
                return
            except urllib.error.HTTPError as err:
                if err.code != 404:
                    raise
                time.sleep(0.2)

    def champion_version(self) -> str | None:
        try:
            return self._call("GET", "/models/current")["variants"].get("champion", {}).get("version")
        except (OSError, KeyError):
            return None


def replay(service: Service, messages: list[tuple[str, str]], *, user_offset: int = 0) -> dict[str, Any]:
    """Send each message to /predict as one user, then its true label to /feedback; return counts."""
    answers = []
    for i, (text, _) in enumerate(messages):
        answers.append(service.predict(text, f"user-{(user_offset + i) % 5000}"))
    for answer, (_, label) in zip(answers, messages, strict=True):
        service.feedback(answer["request_id"], label)
    wrong = sum(a["label"] != label for a, (_, label) in zip(answers, messages, strict=True))
    return {"n": len(messages), "errors": wrong, "versions": sorted({a["model_version"] for a in answers})}


class BackgroundTraffic(threading.Thread):
    """Steady labelled traffic while the retrain runs, so the canary has live requests to judge."""

    def __init__(self, service: Service, messages: list[tuple[str, str]], per_second: float = 20) -> None:
        super().__init__(daemon=True)
        self.service, self.messages, self.pause = service, messages, 1 / per_second
        self.stop_event = threading.Event()
        self.sent = 0
        self.by_variant: dict[str, int] = {}

    def run(self) -> None:
        i = 0
        while not self.stop_event.is_set():
            text, label = self.messages[i % len(self.messages)]
            try:
                answer = self.service.predict(text, f"user-{(10_000 + i) % 5000}")
                self.service.feedback(answer["request_id"], label)
                self.by_variant[answer["variant"]] = self.by_variant.get(answer["variant"], 0) + 1
                self.sent += 1
            except OSError as err:  # keep going: a demo hiccup is not a reason to stop the loop
                say(f"traffic: {err}")
            i += 1
            time.sleep(self.pause)


# ----------------------------------------------------------------------------------- Airflow
def follow(api: AirflowAPI, dag_id: str, run_id: str, timeout: float = 900) -> dict[str, Any]:
    """Wait for a DAG run, printing each task as it finishes."""
    def on_task(ti: dict[str, Any]) -> None:
        if ti.get("state") in ("success", "failed", "skipped", "up_for_retry", "upstream_failed"):
            name = ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else "")
            took = f" ({ti['duration']:.1f} s)" if ti.get("duration") else ""
            say(f"  {dag_id}.{name}: {ti['state']}{took}")

    run = api.wait_run(dag_id, run_id, timeout=timeout, on_task=on_task)
    if run["state"] != "success":
        raise SystemExit(f"{dag_id} run {run_id} {run['state']}; see the Airflow UI at {stack.AIRFLOW_URL} "
                         f"or the logs under {stack.STATE / 'logs'}")
    return run


def first_run(api: AirflowAPI, dag_id: str, wait: float = 40) -> str:
    """The run the scheduler created when the DAG was unpaused (its latest slot), else a manual one."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        runs = api.dag_runs(dag_id)
        if runs:
            return runs[0]["dag_run_id"]
        time.sleep(1)
    return api.trigger(dag_id, note="demo")  # no conf: a key the DAG does not declare would fail the run


def monitor(api: AirflowAPI, start: datetime, end: datetime, label: str) -> dict[str, Any]:
    """Trigger the monitoring DAG on the window [start, end) and return what it measured and decided."""
    hours = (end - start).total_seconds() / 3600
    run_id = api.trigger("monitoring", {"window_end": end.isoformat(), "window_hours": hours},
                         note=f"demo: {label}")
    began = time.monotonic()
    follow(api, "monitoring", run_id)
    measured = api.xcom("monitoring", run_id, "measure")
    decided = api.xcom("monitoring", run_id, "decide", key="decision")
    drifted = [r for r in measured.get("results", []) if r.get("drifted")]
    say(f"window '{label}': {measured.get('n_predictions')} predictions, "
        f"{len(drifted)} of {len(measured.get('results', []))} checks drifted"
        + (": " + ", ".join(f"{r['name']} {r['score']:.3f} > {r['threshold']:.3f}" for r in drifted) if drifted
           else ""))
    for reason in decided.get("reasons", []):
        say(f"  decision: {reason}")
    return {"run_id": run_id, "seconds": round(time.monotonic() - began, 1), "retrain": bool(decided.get("retrain")),
            "n_predictions": measured.get("n_predictions"),
            "drifted_checks": {r["name"]: round(float(r["score"]), 4) for r in drifted},
            "scores": {r["name"]: round(float(r["score"]), 4) for r in measured.get("results", [])}}


# ----------------------------------------------------------------------------------- the loop
def reset() -> None:
    """Stop a running stack and start from empty state (the demo is repeatable).

    The stack runs on the checkout's embedded stores, so these go too: MLflow's store and artifacts
    and AutoRetrain's database under ``.autoretrain/``.
    """
    stack.down(progress=say)
    airflow_home = Path(os.environ["AIRFLOW_HOME"])
    shutil.rmtree(stack.STATE, ignore_errors=True)
    shutil.rmtree(stack.MLFLOW_ARTIFACTS, ignore_errors=True)
    for name in ("mlflow.db", Path(stack.DATABASE_URL.removeprefix("sqlite:///")).name):
        for path in stack.STORES.glob(f"{name}*"):  # the file and its -wal / -shm companions
            path.unlink()
    say(f"reset: the stack's state and the embedded stores under {stack.STORES}")
    for path in airflow_home.glob("airflow.db*"):
        path.unlink()
    shutil.rmtree(airflow_home / "logs", ignore_errors=True)
    subprocess.run([str(stack.BIN / "airflow"), "db", "migrate"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


class Windows:
    """Contiguous monitoring windows, like the scheduled 6-hour ones: each starts where the last ended."""

    def __init__(self) -> None:
        self.start = datetime.now(UTC) - timedelta(minutes=1)

    def next(self) -> tuple[datetime, datetime]:
        """Close the current window now (after at least 40 s: the DAG measures windows of 36 s or more)."""
        time.sleep(1.0)  # the last predictions reach the log
        wait = (self.start + timedelta(seconds=40) - datetime.now(UTC)).total_seconds()
        if wait > 0:  # never end a window in the future: later traffic would fall into it unmeasured
            say(f"  (window open for {wait:.0f} s more: windows are at least 40 s long)")
            time.sleep(wait)
        end = datetime.now(UTC)
        start, self.start = self.start, end
        return start, end


def main() -> int:
    settings = load_settings()
    timings: dict[str, float] = {}

    step("1/6 start the stack: MLflow, Airflow (api-server, scheduler, dag-processor, triggerer), prediction service")
    reset()
    stack.up(DEMO_ENV, progress=lambda m: say("  " + m))
    api = AirflowAPI(stack.AIRFLOW_URL, "admin", stack.airflow_password())
    api.wait_for_dags(DAGS)
    service = Service(stack.SERVING_URL, stack.token("feedback"))
    timings["stack_up_s"] = round(time.monotonic() - STARTED, 1)
    say(f"stack up; DAGs parsed ({', '.join(DAGS)})")

    step("2/6 training DAG through the scheduler (the latest weekly slot), first champion")
    for dag_id in ("training", "monitoring", "retrain_compare_promote", "rollback"):
        api.set_paused(dag_id, False)
    say("unpaused training, monitoring, retrain_compare_promote, rollback; dataset_validation (weekly, Mondays) "
        "stays paused: the loop does not need it (unpause it in the UI, or `airflow dags unpause "
        "dataset_validation`)")
    began = time.monotonic()
    follow(api, "training", first_run(api, "training"))
    timings["training_s"] = round(time.monotonic() - began, 1)
    while service.champion_version() is None:
        time.sleep(1)
    first = service.champion_version()
    say(f"prediction service answers with champion v{first}")

    step("3/6 replay held-out SMS through /predict, true labels to /feedback; monitoring: expect no drift")
    holdout = holdout_messages(settings)
    windows = Windows()
    quiet = replay(service, holdout[:400])
    say(f"replayed {quiet['n']} held-out messages: {quiet['errors']} misclassified by v{first}")
    measured = {"held-out traffic": monitor(api, *windows.next(), "held-out traffic")}

    step("4/6 inject drift: a new spam campaign in two consecutive windows")
    drift_started = time.monotonic()
    campaign_day = 0
    loop_from = None
    for label in ("campaign, window 1", "campaign, window 2"):
        campaign_day += 1
        ordinary = holdout[400 + 100 * campaign_day:500 + 100 * campaign_day]
        mixed = referral_campaign(120, 40, seed=campaign_day) + ordinary
        sent = replay(service, mixed, user_offset=1000 * campaign_day)
        say(f"replayed {sent['n']} messages (120 campaign spam): {sent['errors']} misclassified by v{first}")
        loop_from = time.monotonic()
        measured[label] = monitor(api, *windows.next(), label)
        if measured[label]["retrain"]:
            break

    step("5/6 retrain_compare_promote: challenger, comparison, canary on live traffic, promotion")
    runs = [r for r in api.dag_runs("retrain_compare_promote") if r["run_type"] != "scheduled"]
    if not runs:
        print("monitoring did not trigger a retrain; see the decisions above", file=sys.stderr)
        return 1
    retrain_id = runs[0]["dag_run_id"]
    traffic = BackgroundTraffic(service, referral_campaign(4, 36, seed=9) + holdout[700:1000])
    traffic.start()
    began = time.monotonic()
    follow(api, "retrain_compare_promote", retrain_id)
    timings["retrain_s"] = round(time.monotonic() - began, 1)
    deadline = time.monotonic() + 60
    while service.champion_version() == first and time.monotonic() < deadline:
        time.sleep(0.5)
    serving_at = time.monotonic()
    traffic.stop_event.set()
    traffic.join(timeout=10)
    second = service.champion_version()
    answer = service.predict(referral_campaign(1, 0, seed=99)[0][0], "user-final")
    timings["drift_injection_to_new_champion_s"] = round(serving_at - drift_started, 1)
    timings["confirming_monitoring_run_to_new_champion_s"] = round(serving_at - loop_from, 1) if loop_from else None
    decision = api.xcom("retrain_compare_promote", retrain_id, "compare", key="decision")
    say(f"champion v{first} -> v{second}; a new campaign message is now '{answer['label']}' "
        f"(p={answer['spam_probability']:.2f}, v{answer['model_version']})")
    canary = canary_share(settings, api.xcom("retrain_compare_promote", retrain_id, "start_canary"))
    if canary:
        say(f"canary window: the challenger answered {canary['challenger']} of {canary['requests']} requests "
            f"({canary['challenger_share']:.1%}; configured {canary['configured_percent']} % of users)")
    readme = readme_commands(settings)
    say(f"README commands, as printed: `autoretrain models` lists {readme['versions']} versions "
        f"(champion v{readme['champion']}), `autoretrain audit` {readme['moves']} alias moves")

    ops = api.model_ops("aliases")["roles"]
    say(f"Model Ops page ({stack.MODEL_OPS_URL}): champion v{ops['champion']['version']}, "
        f"previous v{ops['previous']['version']}")

    step("6/6 summary")
    summary = build_summary(settings, first, second, measured, decision, canary, timings)
    (stack.STATE / "demo-summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps(summary, indent=2, default=str))
    print(f"\nThe stack keeps running for browsing (stop it with `make down`):\n{stack.urls()}")
    print(f"Summary saved to {stack.STATE / 'demo-summary.json'}")
    print(f"\nModel Ops (log in as admin): {stack.MODEL_OPS_URL}")
    return 0 if second != first and readme["champion"] == second else 1


def canary_share(settings: Any, canary: dict[str, Any] | None) -> dict[str, Any] | None:
    """Served requests by variant from the canary's start to the promotion (not over the whole demo)."""
    from autoretrain.audit import aliases
    from autoretrain.db.engine import make_engine
    from autoretrain.serving import prediction_log

    if not canary:
        return None  # canary_minutes=0: promoted without a canary
    engine = make_engine(stack.DATABASE_URL)
    try:
        promoted = aliases.history(engine, settings.model_name, alias="champion", limit=1)[0].created_at
        rows = prediction_log.served_between(engine, model_name=settings.model_name,
                                             since=datetime.fromisoformat(canary["started_at"]), until=promoted)
    finally:
        engine.dispose()
    challenger = sum(r["variant"] == "challenger" for r in rows)
    return {"from": canary["started_at"], "until": promoted.isoformat(), "requests": len(rows),
            "challenger": challenger, "challenger_share": round(challenger / max(len(rows), 1), 4),
            "configured_percent": canary["canary_percent"]}


def readme_commands(settings: Any) -> dict[str, Any]:
    """Run the README's `autoretrain models` and `autoretrain audit` exactly as printed (no variables set).

    They must read the stack's stores by default; a demo whose README commands show an empty store
    fails here instead of misleading the next person who types them.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AUTORETRAIN_"))}
    cli = str(stack.BIN / "autoretrain")
    models = json.loads(subprocess.run([cli, "models"], env=env, capture_output=True, text=True, check=True).stdout)
    audit = json.loads(subprocess.run([cli, "audit", "--limit", "10"], env=env, capture_output=True, text=True,
                                      check=True).stdout)
    champion = next((str(v["version"]) for v in models["versions"] if "champion" in v["aliases"]), None)
    if not models["versions"] or not audit["moves"] or champion is None:
        raise SystemExit(f"the README's commands read an empty store: {models} {audit}")
    return {"versions": len(models["versions"]), "champion": champion, "moves": len(audit["moves"])}


def build_summary(settings: Any, first: str | None, second: str | None, windows: dict[str, Any],
                  decision: dict[str, Any], canary: dict[str, Any] | None, timings: dict[str, Any]) -> dict[str, Any]:
    from autoretrain import tracking
    from autoretrain.alerts.store import AlertStore

    client = tracking.client_for(settings.with_overrides({"tracking_uri": stack.MLFLOW_URL}))

    def version(v: str | None) -> dict[str, Any]:
        if v is None:
            return {}
        mv = client.get_model_version(settings.model_name, v)
        return {"version": v, "family": mv.tags.get("autoretrain.family"), "aliases": list(mv.aliases),
                "own_holdout": {k.removeprefix("holdout_"): round(float(x), 4) for k, x in mv.tags.items()
                                if k.startswith("holdout_")}}

    with AlertStore(stack.DATABASE_URL) as alerts:
        raised = [{"kind": a.kind, "severity": a.severity, "title": a.title, "status": a.status,
                   "transport": a.transport} for a in reversed(alerts.records(limit=50))]
    numbers = decision.get("numbers", {})
    return {
        "model": settings.model_name,
        "champion_before": version(first), "champion_after": version(second),
        "note": ("own_holdout: each version on the hold-out of its own training run (different messages); "
                 "comparison: both versions on the same messages, the challenger's hold-out with the campaign"),
        "comparison": {"promote": decision.get("promote"), "n": numbers.get("n"),
                       "same_holdout": {role: {k: (round(float(x), 4) if isinstance(x, float) else x)
                                               for k, x in (numbers.get(role) or {}).items()
                                               if k in ("version", "accuracy", "f1", "ece", "fpr")}
                                        for role in ("champion", "challenger")},
                       "mcnemar": numbers.get("mcnemar"), "reasons": decision.get("reasons")},
        "drift_windows": windows,
        "canary_window": canary,
        "alerts": raised,
        "seconds": {**timings, "total": round(time.monotonic() - STARTED, 1)},
    }


if __name__ == "__main__":
    sys.exit(main())
