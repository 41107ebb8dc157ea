"""Serving benchmark: AutoRetrain's prediction service vs ``mlflow models serve`` on the same model.

In a temporary folder: an ``mlflow server`` (SQLite store), one model trained and registered as
champion through ``autoretrain.training.steps.run_training``; then each server in turn on loopback, one
process and one worker each: ``mlflow models serve --env-manager local`` and
``python -m autoretrain.serving`` with prediction logging ON (SQLite). The same small asyncio
HTTP/1.1 keep-alive client sends single-message requests (messages of the SMS dataset) at
concurrency 1 and 8. Ours is then stopped with SIGTERM and its prediction log counted. Last,
durability: ours is started again, SIGKILLed at full load (c=8) once 2,000 requests are answered,
restarted, and every answered request_id is looked up in its log (the spool is replayed at start);
and the cost of one ``PredictionLogWriter.put`` (the spool write on the request path) is timed.

Prints a table and, last, one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # no GenAI job runner beside the server


# ------------------------------------------------------------------------------------- client
@dataclass
class Level:
    concurrency: int
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    chunks = []  # chunked transfer encoding
    while size := int((await reader.readline()).strip(), 16):
        chunks.append(await reader.readexactly(size))
        await reader.readline()
    await reader.readline()
    return status, b"".join(chunks)


async def _drive(port: int, path: str, bodies: list[bytes], concurrency: int) -> Level:
    """Send every body once over ``concurrency`` keep-alive connections; time each request."""
    latencies: list[float] = []
    errors = 0
    pending = iter(bodies)
    prefix = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n".encode()

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for body in pending:
            started = time.perf_counter()
            writer.write(prefix + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status, _ = await _read_response(reader)
            latencies.append((time.perf_counter() - started) * 1000.0)
            errors += status != 200
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return Level(concurrency, len(bodies), time.perf_counter() - started, latencies, errors)


def drive(port: int, path: str, bodies: list[bytes], concurrency: int) -> Level:
    try:
        import uvloop

        return uvloop.run(_drive(port, path, bodies, concurrency))
    except ImportError:
        return asyncio.run(_drive(port, path, bodies, concurrency))


# ----------------------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the process behind {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s")


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as fh:
        return subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen, timeout: float = 60.0) -> int:
    """SIGTERM the process group (mlflow serve runs uvicorn in a child), wait, SIGKILL if needed."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def post(port: int, path: str, payload: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


# --------------------------------------------------------------------------------------- steps
def register_model(tmp: Path, env: dict[str, str], families: str, cv_folds: int) -> tuple[str, dict]:
    """An mlflow server on SQLite in ``tmp``, and a champion trained by run_training."""
    port = free_port()
    server = start([str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
                    "--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1",
                    "--port", str(port), "--workers", "1"], env, tmp / "mlflow-server.log")
    uri = f"http://127.0.0.1:{port}"
    wait_http(f"{uri}/health", server)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    from autoretrain.config import load_settings
    from autoretrain.db import migrate
    from autoretrain.db.engine import database_url
    from autoretrain.training.steps import RunKey, run_training

    settings = load_settings().with_overrides({"families": families.split(","), "cv_folds": cv_folds,
                                               "model_name": env["AUTORETRAIN_MODEL_NAME"],
                                               "experiment_name": "bench-serving",
                                               # the service below reads the model's record from this database
                                               "database_url": f"sqlite:///{tmp / 'serving.db'}"})
    migrate.upgrade(database_url(settings))  # the alias move is audited there, the model's digest recorded
    result = run_training(settings, RunKey("bench_serving", uuid.uuid4().hex[:12]))
    if result["alias"]["alias"] != "champion":
        raise RuntimeError(f"the benchmark model did not become champion: {result['alias']}")
    return uri, {"server": server, "family": result["selected"], "version": result["registered"]["version"]}


async def _drive_until(port: int, bodies: list[bytes], concurrency: int, answered: int,
                       proc: subprocess.Popen) -> list[str]:
    """POST /predict at ``concurrency`` until ``answered`` requests are answered, then SIGKILL ``proc``."""
    ids: list[str] = []
    pending = iter(bodies)
    prefix = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for body in pending:
                writer.write(prefix + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                status, payload = await _read_response(reader)
                if status == 200:
                    ids.append(json.loads(payload)["request_id"])
                if len(ids) == answered and proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)  # the other connections have requests in flight
        except (OSError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return ids


def sigkill_at_load(port: int, bodies: list[bytes], env: dict[str, str], tmp: Path, db: Path,
                    answered: int = 2000) -> dict[str, int]:
    """Answered, in the database at the kill, replayed at restart and lost (answered but never logged)."""
    import sqlalchemy as sa

    from autoretrain.db.engine import make_engine
    from autoretrain.db.schema import predictions

    def logged() -> set[str]:
        engine = make_engine(f"sqlite:///{db}")
        with engine.connect() as conn:
            ids = set(conn.execute(sa.select(predictions.c.request_id)).scalars())
        engine.dispose()
        return ids

    cmd = [sys.executable, "-m", "autoretrain.serving", "--host", "127.0.0.1", "--port", str(port)]
    proc = start(cmd, env, tmp / "ours-killed.log")
    wait_http(f"http://127.0.0.1:{port}/ready", proc)
    ids = asyncio.run(_drive_until(port, (bodies * 2)[: answered * 2], 8, answered, proc))
    proc.wait()
    at_kill = len(set(ids) & logged())
    again = start(cmd, env, tmp / "ours-restarted.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/ready", again)
        deadline = time.monotonic() + 60
        while (missing := set(ids) - logged()) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop(again)
    return {"answered": len(ids), "at_kill": at_kill, "replayed": len(ids) - at_kill - len(missing),
            "lost": len(missing), "killed_with": proc.returncode}


def put_cost_us(tmp: Path, rows: int = 20_000) -> float:
    """Mean microseconds of one ``PredictionLogWriter.put`` (encode + append to the spool) on this disk."""
    from datetime import UTC, datetime

    from autoretrain.db import migrate
    from autoretrain.db.engine import make_engine
    from autoretrain.serving.log_writer import PredictionLogWriter

    url = f"sqlite:///{tmp / 'put-cost.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    writer = PredictionLogWriter(engine, spool_dir=tmp / "put-cost-spool")
    writer.start()
    row = {"request_id": "", "created_at": datetime.now(UTC), "model_name": "m", "model_version": "1",
           "variant": "champion", "role": "served", "user_id": "user-1", "probability": 0.1, "label": "ham",
           "text": "Ok lar... Joking wif u oni...", "latency_ms": 0.7}
    started = time.perf_counter()
    for i in range(rows):
        writer.put({**row, "request_id": f"req-{i}"})
    cost = (time.perf_counter() - started) / rows * 1e6
    writer.stop()
    engine.dispose()
    return cost


def bench(name: str, port: int, path: str, bodies: list[bytes], warmup: int) -> dict[int, Level]:
    drive(port, path, bodies[:warmup], 8)
    levels = {c: drive(port, path, bodies, c) for c in (1, 8)}
    for level in levels.values():
        if level.errors:
            raise RuntimeError(f"{name}: {level.errors} of {level.requests} requests at c={level.concurrency} "
                               "did not answer 200")
    return levels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per concurrency level (>= 2000)")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--families", default="complement_nb", help="families trained for the benchmark model")
    parser.add_argument("--cv-folds", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, databases)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    tmp = Path(tempfile.mkdtemp(prefix="autoretrain-bench-serving-"))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "AUTORETRAIN_HOME": str(ROOT), "AUTORETRAIN_MODEL_NAME": f"bench-serving-{uuid.uuid4().hex[:6]}",
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    procs: list[subprocess.Popen] = []
    try:
        uri, info = register_model(tmp, env, args.families, args.cv_folds)
        procs.append(info["server"])
        env["MLFLOW_TRACKING_URI"] = uri
        from autoretrain.config import load_settings
        from autoretrain.data.sources import read_dataset
        from autoretrain.db import migrate
        from autoretrain.db.engine import make_engine
        from autoretrain.serving import prediction_log

        settings = load_settings()
        texts = [t for t in read_dataset(settings.resolved_data_uri(), labels=settings.labels).frame["text"]
                 if t.strip() and len(t) <= settings.max_message_chars]
        texts = (texts * (args.requests // len(texts) + 1))[:args.requests]
        ours_bodies = [json.dumps({"message": t, "user_id": f"user-{i % 1000}"}).encode()
                       for i, t in enumerate(texts)]
        mlflow_bodies = [json.dumps({"dataframe_records": [{"text": t}]}).encode() for t in texts]
        model_uri = f"models:/{env['AUTORETRAIN_MODEL_NAME']}@champion"

        port = free_port()
        mlflow = start([str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
                        "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                       # the baseline loads through mlflow.sklearn, which AutoRetrain's processes refuse
                       # (ADR 0007); here only, on the model this benchmark just trained and vetted
                       {**env, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}, tmp / "mlflow-serve.log")
        procs.append(mlflow)
        mlflow_start = wait_http(f"http://127.0.0.1:{port}/ping", mlflow)
        sample = post(port, "/invocations", {"dataframe_records": [{"text": texts[0]}]})
        theirs = bench("mlflow models serve", port, "/invocations", mlflow_bodies, args.warmup)
        stop(mlflow)

        port = free_port()
        db = tmp / "serving.db"
        migrate.upgrade(f"sqlite:///{db}")  # the service refuses a database that is not migrated
        ours_env = {**env, "AUTORETRAIN_DATABASE_URL": f"sqlite:///{db}", "AUTORETRAIN_ROUTING_MODE": "full",
                    "AUTORETRAIN_STATE_DIR": str(tmp / "state")}
        ours = start([sys.executable, "-m", "autoretrain.serving", "--host", "127.0.0.1", "--port", str(port)],
                     ours_env, tmp / "ours.log")
        procs.append(ours)
        ours_start = wait_http(f"http://127.0.0.1:{port}/ready", ours)
        answer = post(port, "/predict", {"message": texts[0]})
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/models/current", timeout=10) as response:
            fast_path = json.loads(response.read())["variants"]["champion"]["fast_path"]
        mine = bench("autoretrain.serving", port, "/predict", ours_bodies, args.warmup)
        exit_code = stop(ours)
        requests_sent = 1 + args.warmup + 2 * args.requests

        rows_logged = prediction_log.count_predictions(make_engine(f"sqlite:///{db}"))
        killed = sigkill_at_load(free_port(), ours_bodies, ours_env, tmp, db)
        put_us = put_cost_us(tmp)
    finally:
        for proc in reversed(procs):
            stop(proc)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"model: {model_uri} version {info['version']} ({info['family']}); {os.cpu_count()} cores; "
          f"{args.requests} requests per level after {args.warmup} warm-up; mlflow answered {sample}, "
          f"ours answered label={answer['label']} (fast path: {fast_path})")
    print(f"startup to ready: mlflow {mlflow_start:.1f}s, ours {ours_start:.1f}s; ours exited with {exit_code} "
          "on SIGTERM" + (f"; kept {tmp}" if args.keep else ""))
    print(f"SIGKILL at full load (c=8) after {killed['answered']} answers: {killed['at_kill']} in the database "
          f"at the kill, {killed['replayed']} replayed from the spool at restart, {killed['lost']} lost; "
          f"PredictionLogWriter.put (spool write) {put_us:.1f} us per row")
    print(f"{'server':<22}{'c':>3}{'rps':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, levels in (("mlflow models serve", theirs), ("autoretrain.serving", mine)):
        for c, lv in levels.items():
            print(f"{name:<22}{c:>3}{lv.rps:>10.0f}{lv.pct(0.5):>9.2f}{lv.pct(0.9):>9.2f}{lv.pct(0.99):>9.2f}"
                  f"{max(lv.latencies_ms):>9.2f}")
    figures = {
        "ours_rps_c1": round(mine[1].rps, 1), "ours_rps_c8": round(mine[8].rps, 1),
        "mlflow_rps_c1": round(theirs[1].rps, 1), "mlflow_rps_c8": round(theirs[8].rps, 1),
        "rps_ratio_c8": round(mine[8].rps / theirs[8].rps, 2),
        "ours_p50_ms_c1": round(mine[1].pct(0.5), 3), "ours_p99_ms_c1": round(mine[1].pct(0.99), 3),
        "ours_p50_ms_c8": round(mine[8].pct(0.5), 3), "ours_p99_ms_c8": round(mine[8].pct(0.99), 3),
        "mlflow_p50_ms_c1": round(theirs[1].pct(0.5), 3), "mlflow_p99_ms_c8": round(theirs[8].pct(0.99), 3),
        "requests_sent": requests_sent, "rows_logged": rows_logged, "fast_path": fast_path,
        "requests_per_level": args.requests, "cores": os.cpu_count(),
        "durable_log": True, "sigkill_answered": killed["answered"], "sigkill_rows_at_kill": killed["at_kill"],
        "sigkill_rows_replayed": killed["replayed"], "rows_lost_after_sigkill": killed["lost"],
        "log_put_us": round(put_us, 2),
    }
    checks = {"rps_ratio_c8 >= 5": figures["rps_ratio_c8"] >= 5,
              "ours_p99_ms_c8 <= 15": figures["ours_p99_ms_c8"] <= 15,
              "rows_logged == requests_sent": rows_logged == requests_sent,
              "rows_lost_after_sigkill == 0": killed["lost"] == 0 and killed["answered"] >= 2000}
    print("targets: " + ", ".join(f"{k}: {'ok' if v else 'MISSED'}" for k, v in checks.items()))
    print(json.dumps(figures))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
