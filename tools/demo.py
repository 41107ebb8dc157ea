"""`make demo`: the training DAG on embedded defaults, end to end, with a summary at the end.

Starts an MLflow server (SQLite store, local artifacts) on 127.0.0.1:5000 unless one already
answers there, prepares Airflow's SQLite metadata DB, runs the `training` DAG with `airflow dags
test` (real operators, real MLflow), then loads `models:/<name>@champion` through the verified
registry and prints what happened. Everything lives under `.autoretrain/demo/` (git-ignored);
the MLflow server keeps running for browsing; `make down` stops it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".autoretrain" / "demo"
BIN = Path(sys.executable).parent
MLFLOW_PORT = int(os.environ.get("AUTORETRAIN_DEMO_MLFLOW_PORT", "5000"))
MLFLOW_URI = f"http://127.0.0.1:{MLFLOW_PORT}"


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start_mlflow() -> None:
    if answers(f"{MLFLOW_URI}/health"):
        print(f"MLflow already answers at {MLFLOW_URI}; using it")
        return
    log = (STATE / "mlflow.log").open("a")
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{STATE / 'mlflow.db'}",
         "--artifacts-destination", str(STATE / "mlartifacts"), "--host", "127.0.0.1",
         "--port", str(MLFLOW_PORT), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (STATE / "mlflow.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + 120
    while not answers(f"{MLFLOW_URI}/health"):
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"MLflow server did not start; see {STATE / 'mlflow.log'}")
        time.sleep(1)
    print(f"MLflow server started at {MLFLOW_URI} (pid {proc.pid}, log {STATE / 'mlflow.log'})")


def main() -> int:
    started = time.monotonic()
    STATE.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_TRACKING_URI": MLFLOW_URI, "PYTHONUNBUFFERED": "1"}

    step("1/4 MLflow tracking server (SQLite store, local artifacts)")
    start_mlflow()

    step("2/4 Airflow metadata database (SQLite, embedded default)")
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    print(f"ready: {os.environ.get('AIRFLOW_HOME')}/airflow.db")

    step("3/4 training DAG: load -> validate -> train (mapped) -> select -> evaluate -> register -> gate -> alias")
    log_path = STATE / "training-dag.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([str(BIN / "airflow"), "dags", "test", "training"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:  # show progress: task states and our own log lines
            log.write(line)
            if any(k in line for k in ("[autoretrain", "Following branch", "DagRun Finished", "ERROR", "Traceback")):
                print("   " + " ".join(line.split()[1:])[:150], flush=True)  # drop the timestamp
        if proc.wait() != 0:
            print(f"training DAG failed; full log: {log_path}")
            return 1

    step("4/4 champion, loaded through the verified registry")
    from autoretrain import registry, tracking
    from autoretrain.config import load_settings

    settings = load_settings().with_overrides({"tracking_uri": MLFLOW_URI})
    client = tracking.client_for(settings)
    model, ref = registry.load_verified(client, settings.model_name, registry.CHAMPION)
    import pandas as pd

    samples = ["URGENT! You have won a 1 week FREE membership in our £100,000 Prize Jackpot! Txt WIN to 81010",
               "I'll be home late tonight, don't wait for dinner"]
    proba = model.predict_proba(pd.DataFrame({"text": samples}))[:, list(model.classes_).index("spam")]
    summary = {
        "model": f"models:/{settings.model_name}@champion", "version": ref.version, "aliases": list(ref.aliases),
        "family": ref.tags.get("autoretrain.family"), "sha256": ref.sha256[:16] + "...",
        "holdout": {k.removeprefix("holdout_"): float(v) for k, v in ref.tags.items() if k.startswith("holdout_")},
        "examples": {s[:40] + "...": round(float(p), 4) for s, p in zip(samples, proba, strict=True)},
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(summary, indent=2))
    print(f"\nMLflow UI:   {MLFLOW_URI}  (experiment '{settings.experiment_name}', model '{settings.model_name}')")
    print(f"DAG log:     {log_path}")
    print("Stop the MLflow server with `make down`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
