"""Speed of the Model Ops page's data on Postgres: 10,000 drift windows, 1,000 versions, 1M prediction-log rows.

A fresh, uniquely named Postgres database (dropped at the end) is migrated and filled with what a
long-lived deployment holds: 1,000 vetted versions (``model_artifacts``) with 3,000 alias moves
(assign, canary, promote) and 1,000 retrain runs' moves; 10,000 six-hour drift windows with 13
checks each; 1,000,000 served and shadow predictions over 30 days with 10 % feedback labels (COPY);
5,000 alerts. The registry's metadata of the 1,000 versions (family, hold-out metrics, intervals)
comes, as on the page, from the per-process cache (:mod:`autoretrain.modelops.versions`), filled
once here: a cold read is one MLflow search per model per 30 s, not timed (it depends on MLflow).
The page Airflow serves also reads the latest 50 ``retrain_compare_promote`` runs from Airflow's
own database (one query on its run table), not timed here. The machine is shared: the JSON line
carries the load average the figures were taken under.

Each section (one JSON route), the whole page's data (``/modelops/api/overview``), the page as
``/modelops/`` renders it (HTML included) and a retrain run's tab are timed 15 times after 2
warm-ups; the pass mark is a median under 300 ms for each of the last three (p95 reported too).
Peer, in the same run on the same database: the naive way, every row into Python and aggregated
there (the live-quality and serving figures from every prediction row of the period, the drift
page from every window's JSON, the aliases from every audit row, the timeline from every move).

Prints a table and, last, one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from autoretrain.config import load_settings
from autoretrain.db import migrate
from autoretrain.db.engine import make_engine
from autoretrain.db.schema import alert_log, alias_audit, drift_windows, feedback, model_artifacts, predictions
from autoretrain.modelops import overview, versions
from autoretrain.modelops.sections import Links, overview_page

PG = os.environ.get("AUTORETRAIN_BENCH_PGHOST", "127.0.0.1")
ADMIN_URL = f"postgresql://postgres@{PG}:5432/postgres"
MODEL = "sms-spam"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CHECKS = ("vocabulary_jaccard", "vocabulary_oov", "emerging_terms", "tfidf_js", "text_length_psi",
          "character_class_psi", "domain_classifier", "prediction_psi", "prediction_ks", "positive_rate",
          "feedback_accuracy", "feedback_f1", "calibration_ece")
LIMIT_MS = 300.0


def admin(sql: str) -> None:
    engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


# ------------------------------------------------------------------------------------ the data
def fill(engine: sa.Engine, *, n_versions: int, n_windows: int, n_predictions: int, rng: random.Random) -> None:
    """The tables of a long-lived deployment (see the module docstring)."""
    with engine.begin() as conn:
        conn.execute(sa.insert(model_artifacts), [
            {"model_name": MODEL, "version": str(v), "run_id": uuid.uuid4().hex, "sha256": "0" * 64, "hmac": "",
             "format": "skops", "registered_at": NOW - timedelta(hours=2 * (n_versions - v)),
             "registered_by": f"retrain_compare_promote/run{v}"} for v in range(1, n_versions + 1)])
        moves, i = [], 0
        for v in range(2, n_versions + 1):
            at = NOW - timedelta(hours=2 * (n_versions - v))
            numbers = json.dumps({"mcnemar": {"p_value": rng.random() / 20},
                                  "bootstrap": {"p_value": rng.random() / 20},
                                  "champion": {"f1": 0.9, "accuracy": 0.97, "ece": 0.02},
                                  "challenger": {"f1": 0.93, "accuracy": 0.98, "ece": 0.015}})
            for alias, action, frm, to in (("challenger", "canary", None, str(v)), ("champion", "promote", str(v - 1),
                                           str(v)), ("previous", "promote", str(v - 2), str(v - 1))):
                i += 1
                moves.append({"created_at": at, "move_id": str(i), "model_name": MODEL, "alias": alias,
                              "action": action, "from_version": frm, "to_version": to,
                              "actor": "airflow:retrain_compare_promote.promote",
                              "run_id": f"retrain_compare_promote/run{v}", "reason": "every check passed",
                              "reasons": json.dumps(["trigger (drift): drift detected", "gate f1: pass"]),
                              "metrics": numbers, "idempotency_key": f"k{i}"})
        conn.execute(sa.insert(alias_audit), moves)
        windows = []
        for w in range(n_windows):
            start = NOW - timedelta(hours=6 * (n_windows - w))
            drifted = rng.random() < 0.08
            results = [{"name": c, "score": rng.random() * (0.4 if drifted else 0.1), "threshold": 0.2,
                        "drifted": drifted and k < 3, "details": {"n": 400}} for k, c in enumerate(CHECKS)]
            windows.append({"model_name": MODEL, "window_start": start, "window_end": start + timedelta(hours=6),
                            "model_version": str(1 + w * n_versions // n_windows), "n_predictions": 400,
                            "n_labelled": 40, "insufficient_data": False, "drifted": drifted,
                            "report": json.dumps({"drifted": drifted, "results": results}),
                            "mlflow_run_id": uuid.uuid4().hex, "retrain": drifted,
                            "decision": json.dumps({"retrain": drifted, "reasons": [], "streak": int(drifted)}),
                            "action": "retrain triggered" if drifted else "no action", "computed_at": start})
        conn.execute(sa.insert(drift_windows), windows)
        conn.execute(sa.insert(alert_log), [
            {"created_at": NOW - timedelta(hours=a), "kind": rng.choice(["drift", "promotion", "task_failure"]),
             "severity": rng.choice(["info", "warning", "critical"]), "dedup_key": f"d{a % 50}",
             "status": rng.choice(["sent", "logged", "failed", "suppressed"]), "transport": "slack",
             "channel": "#ml", "title": f"alert {a}", "message": "m", "error": None,
             "dag_id": "retrain_compare_promote", "run_id": f"run{a % n_versions}"} for a in range(5000)])
    copy_predictions(engine, n_predictions, rng)


def copy_predictions(engine: sa.Engine, n: int, rng: random.Random) -> None:
    """``n`` predictions over 30 days (5 % shadow, 10 % canary traffic), 10 % with a feedback label (COPY)."""
    rows, labels = io.StringIO(), io.StringIO()
    span = 30 * 86400
    for i in range(n):
        at = NOW - timedelta(seconds=span * (n - i) / n)
        label = "spam" if rng.random() < 0.15 else "ham"
        role, variant = ("shadow", "challenger") if i % 20 == 0 else ("served", "challenger" if i % 10 == 1
                                                                       else "champion")
        rid = f"r{i}"
        rows.write(f"{rid}\t{at.isoformat()}\t{MODEL}\t{999 if variant == 'champion' else 1000}\t{variant}\t{role}\t"
                   f"u{i % 5000}\tmessage number {i}\t{rng.random():.4f}\t{label}\t1.5\n")
        if i % 10 == 0:
            truth = label if rng.random() < 0.9 else ("ham" if label == "spam" else "spam")
            labels.write(f"{rid}\t{truth}\tuser\t{at.isoformat()}\n")
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for sql, data in (("COPY prediction_log (request_id, created_at, model_name, model_version, variant, role, "
                           "user_id, text, probability, label, latency_ms) FROM STDIN", rows),
                          ("COPY prediction_feedback (request_id, label, source, created_at) FROM STDIN", labels)):
            if hasattr(cur, "copy_expert"):  # psycopg2
                data.seek(0)
                cur.copy_expert(sql, data)
            else:  # psycopg 3
                with cur.copy(sql) as copy:
                    copy.write(data.getvalue())
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def registry_metadata(n_versions: int, rng: random.Random) -> list[SimpleNamespace]:
    """What one MLflow search returns for the 1,000 versions (the page reads it through the cache)."""
    refs = []
    for v in range(1, n_versions + 1):
        f1 = 0.85 + rng.random() / 10
        refs.append(SimpleNamespace(version=str(v), aliases=("champion",) if v == n_versions else (),
                                    run_id=uuid.uuid4().hex, tags={
                                        "autoretrain.family": "logreg", "holdout_f1": f"{f1:.6f}",
                                        "holdout_mcc": f"{f1 - 0.03:.6f}", "holdout_ece": "0.020000",
                                        "interval_f1": f"{f1 - 0.02:.6f} {f1 + 0.02:.6f}"}))
    return refs


# --------------------------------------------------------------------------------- the peer
def naive(engine: sa.Engine, name: str) -> Any:
    """The section computed from every row in Python (what SQL aggregation replaces)."""
    with engine.connect() as conn:
        if name == "aliases":
            rows = conn.execute(sa.select(alias_audit).where(alias_audit.c.model_name == MODEL)).all()
            last = {}
            for r in rows:
                last[r.alias] = r
            return {a: r.to_version for a, r in last.items()}, sorted(rows, key=lambda r: -r.id)[:30]
        if name == "drift":
            rows = conn.execute(sa.select(drift_windows).where(drift_windows.c.model_name == MODEL)).all()
            parsed = [(r, json.loads(r.report), json.loads(r.decision)) for r in rows]
            return sum(r.drifted for r, _, _ in parsed), sorted(parsed, key=lambda x: x[0].window_end)[-240:]
        if name in ("quality", "serving"):
            since = NOW - (timedelta(days=7) if name == "quality" else timedelta(minutes=60))
            p, f = predictions, feedback
            rows = conn.execute(sa.select(p.c.created_at, p.c.variant, p.c.model_version, p.c.role, p.c.label,
                                          f.c.label.label("truth"))
                                .select_from(p.outerjoin(f, f.c.request_id == p.c.request_id))
                                .where(p.c.model_name == MODEL, p.c.created_at >= since, p.c.created_at < NOW)).all()
            out: dict[Any, list[int]] = defaultdict(lambda: [0, 0, 0])
            for r in rows:
                key = int(r.created_at.timestamp() // 21600) if name == "quality" else (r.variant, r.model_version)
                out[key][0] += 1
                if r.truth is not None:
                    out[key][1] += 1
                    out[key][2] += r.truth == r.label
            return dict(out)
        if name == "timeline":
            moves = conn.execute(sa.select(alias_audit).where(alias_audit.c.model_name == MODEL)).all()
            alerts = conn.execute(sa.select(alert_log)).all()
            runs: dict[str, list[Any]] = defaultdict(list)
            for m in moves:
                runs[m.run_id].append((m, json.loads(m.metrics)))
            for a in alerts:
                runs[f"retrain_compare_promote/{a.run_id}"].append(a)
            return sorted(runs, reverse=True)[:50]
        if name == "alerts":
            rows = conn.execute(sa.select(alert_log)).all()
            counts: dict[tuple[str, str], int] = defaultdict(int)
            for r in rows:
                counts[(r.severity, r.status)] += 1
            return counts, sorted(rows, key=lambda r: -r.id)[:50]
        if name == "versions":
            return conn.execute(sa.select(model_artifacts).where(model_artifacts.c.model_name == MODEL)).all()
    raise KeyError(name)


# ------------------------------------------------------------------------------------- timing
def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    for _ in range(2):
        fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"median_ms": round(statistics.median(samples), 1),
            "p95_ms": round(samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--windows", type=int, default=10_000)
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    rng = random.Random(13)
    name = f"autoretrain_bench_modelops_{uuid.uuid4().hex[:8]}"
    admin(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@{PG}:5432/{name}"
    try:
        started = time.perf_counter()
        migrate.upgrade(url)
        engine = make_engine(url)
        fill(engine, n_versions=args.versions, n_windows=args.windows, n_predictions=args.predictions, rng=rng)
        print(f"filled {name} in {time.perf_counter() - started:.0f} s: {args.versions} versions, {args.windows} "
              f"windows, {args.predictions} predictions", flush=True)
        settings = load_settings(environ={"AUTORETRAIN_MODEL_NAME": MODEL, "AUTORETRAIN_DATABASE_URL": url,
                                          "AUTORETRAIN_TRACKING_URI": "http://mlflow.invalid:5000"})
        cache = versions.VersionCache(ttl=3600)
        refs = registry_metadata(args.versions, rng)
        versions.CACHE = cache
        cache.get((settings.resolved_tracking_uri(), MODEL), lambda: refs)
        links = Links("http://mlflow.invalid:5000", MODEL)
        results: dict[str, dict[str, Any]] = {}
        for section in overview.SECTIONS:
            ours = timed(lambda s=section: overview.section(s, settings, engine, now=NOW), args.repeat)
            peer = timed(lambda s=section: naive(engine, s), max(3, args.repeat // 5)) if section != "versions" \
                else None
            results[section] = {**ours, **({"naive_median_ms": peer["median_ms"],
                                            "ratio": round(peer["median_ms"] / max(ours["median_ms"], 0.01), 1)}
                                           if peer else {})}
        data = timed(lambda: json.dumps(overview.collect(settings, engine, now=NOW)), args.repeat)
        page = timed(lambda: overview_page(overview.collect(settings, engine, now=NOW), links), args.repeat)
        tab = timed(lambda: overview.run_tab(settings, engine, dag_id="retrain_compare_promote", run_id="run500"),
                    args.repeat)
        engine.dispose()
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"\n{'section':<10} {'median ms':>10} {'p95 ms':>8} {'naive ms':>10} {'naive / ours':>13}")
    for section, r in results.items():
        print(f"{section:<10} {r['median_ms']:>10} {r['p95_ms']:>8} {r.get('naive_median_ms', '-'):>10} "
              f"{r.get('ratio', '-'):>13}")
    print(f"{'data':<10} {data['median_ms']:>10} {data['p95_ms']:>8}   (all sections as JSON, /modelops/api/overview)")
    print(f"{'page':<10} {page['median_ms']:>10} {page['p95_ms']:>8}   (all sections + HTML, /modelops/)")
    print(f"{'run tab':<10} {tab['median_ms']:>10} {tab['p95_ms']:>8}   (a retrain run's tab)")
    load = round(os.getloadavg()[0], 1)
    passed = all(r["median_ms"] < LIMIT_MS for r in (data, page, tab))
    verdict = "PASS" if passed else "FAIL"
    print(f"\nmedians: data {data['median_ms']} ms, page {page['median_ms']} ms, tab {tab['median_ms']} ms: {verdict} "
          f"(< {LIMIT_MS:.0f} ms); p95 page {page['p95_ms']} ms; load average {load} on {os.cpu_count()} CPUs")
    print(json.dumps({"bench": "modelops", "database": "postgresql", "versions": args.versions,
                      "drift_windows": args.windows, "prediction_rows": args.predictions, "limit_ms": LIMIT_MS,
                      "data": data, "page": page, "run_tab": tab, "load_average": load, "sections": results,
                      "peer": "naive Python over all rows",
                      "passed": passed}))
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
