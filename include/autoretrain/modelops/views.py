"""The data of each Model Ops section, aggregated in SQL (SQLAlchemy Core) over AutoRetrain's tables.

Every function takes an engine and returns JSON-able dicts. Nothing here reads all rows of a table
into Python: lists are limited in SQL (``LIMIT``), totals and per-window figures are ``COUNT`` /
``SUM`` / ``GROUP BY`` queries, and JSON columns are parsed only for the rows a page shows.
Rows come from processes that handle untrusted input (MLflow tags, DAG-run conf): the renderer
escapes every string.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from autoretrain.db.schema import (
    alert_log,
    alias_audit,
    drift_windows,
    feedback,
    model_artifacts,
    predictions,
    routing_override,
)

#: the alias the registry keeps for each role on the page
ROLES = ("champion", "challenger", "previous")
RETRAIN_DAG = "retrain_compare_promote"


def _aware(value: datetime | None) -> str | None:
    """ISO time in UTC (SQLite hands back naive datetimes; every stored time is UTC)."""
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)).isoformat()


def _json(text: str | None, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def _audit_row(r: Any) -> dict[str, Any]:
    return {"id": r.id, "at": _aware(r.created_at), "alias": r.alias, "action": r.action,
            "from_version": r.from_version, "to_version": r.to_version, "actor": r.actor, "run_id": r.run_id,
            "reason": r.reason, "reasons": _json(r.reasons, []), "metrics": _json(r.metrics, {})}


# ---------------------------------------------------------------------------------- aliases
def aliases_now(engine: Engine, *, model_name: str, history: int = 30) -> dict[str, Any]:
    """Each role's version and its last move (latest audit row per alias), and the latest moves."""
    a = alias_audit
    latest = (sa.select(sa.func.max(a.c.id)).where(a.c.model_name == model_name, a.c.alias.in_(ROLES))
              .group_by(a.c.alias).scalar_subquery())
    with engine.connect() as conn:
        last = conn.execute(sa.select(a).where(a.c.id.in_(latest))).all()
        recent = conn.execute(sa.select(a).where(a.c.model_name == model_name)
                              .order_by(a.c.id.desc()).limit(history)).all()
        total = conn.execute(sa.select(sa.func.count()).select_from(a).where(a.c.model_name == model_name)).scalar()
    roles = {r.alias: {"version": r.to_version, "moved": _audit_row(r)} for r in last}
    return {"roles": {role: roles.get(role, {"version": None, "moved": None}) for role in ROLES},
            "history": [_audit_row(r) for r in recent], "moves_total": int(total or 0)}


# --------------------------------------------------------------------------------- versions
def registered_versions(engine: Engine, *, model_name: str, limit: int = 1000) -> list[dict[str, Any]]:
    """The versions AutoRetrain registered and vetted (``model_artifacts``), oldest first, at most ``limit``."""
    m = model_artifacts
    newest = (sa.select(m.c.version, m.c.run_id, m.c.registered_at, m.c.registered_by)
              .where(m.c.model_name == model_name).order_by(m.c.registered_at.desc(), m.c.version.desc())
              .limit(limit).subquery())
    with engine.connect() as conn:
        rows = conn.execute(sa.select(newest).order_by(newest.c.registered_at, newest.c.version)).all()
    return [{"version": r.version, "run_id": r.run_id, "registered_at": _aware(r.registered_at),
             "registered_by": r.registered_by} for r in rows]


# ------------------------------------------------------------------------------------ drift
def drift_over_time(engine: Engine, *, model_name: str, limit: int = 120) -> dict[str, Any]:
    """The latest ``limit`` windows (oldest first) with every check's score and threshold; totals in SQL."""
    d = drift_windows
    cols = (d.c.window_start, d.c.window_end, d.c.model_version, d.c.n_predictions, d.c.n_labelled,
            d.c.insufficient_data, d.c.drifted, d.c.report, d.c.mlflow_run_id, d.c.retrain, d.c.decision, d.c.action)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*cols).where(d.c.model_name == model_name)
                            .order_by(d.c.window_end.desc()).limit(limit)).all()
        totals = conn.execute(sa.select(
            sa.func.count(), sa.func.sum(sa.case((d.c.drifted, 1), else_=0)),
            sa.func.sum(sa.case((d.c.retrain.is_(True), 1), else_=0)),
            sa.func.sum(sa.case((d.c.insufficient_data, 1), else_=0)),
            sa.func.min(d.c.window_start), sa.func.max(d.c.window_end),
        ).where(d.c.model_name == model_name)).one()
    windows = [_window(r) for r in reversed(rows)]
    checks = sorted({c["name"] for w in windows for c in w["checks"]})
    return {"windows": windows, "checks": checks,
            "totals": {"windows": int(totals[0] or 0), "breached": int(totals[1] or 0),
                       "retrain": int(totals[2] or 0), "insufficient": int(totals[3] or 0),
                       "first": _aware(totals[4]), "last": _aware(totals[5])}}


def _window(r: Any) -> dict[str, Any]:
    report, decision = _json(r.report, {}), _json(r.decision, None)
    results = [c for c in report.get("results", []) if isinstance(c, dict)]
    checks = [{"name": str(c.get("name")), "score": c.get("score"), "threshold": c.get("threshold"),
               "drifted": bool(c.get("drifted"))} for c in results]
    measured = {str(c.get("name")): c.get("details") or {} for c in results}
    quality = {"accuracy": measured.get("feedback_accuracy", {}).get("accuracy"),
               "f1": measured.get("feedback_f1", {}).get("f1")}
    return {"start": _aware(r.window_start), "end": _aware(r.window_end), "model_version": r.model_version,
            "n_predictions": r.n_predictions, "n_labelled": r.n_labelled, "insufficient_data": r.insufficient_data,
            "drifted": r.drifted, "checks": checks, "feedback": quality, "mlflow_run_id": r.mlflow_run_id,
            "retrain": r.retrain,
            "streak": (decision or {}).get("streak"), "decision_reasons": (decision or {}).get("reasons", []),
            "action": r.action}


def window_at(engine: Engine, *, model_name: str, start: datetime, end: datetime) -> dict[str, Any] | None:
    """One window's row (the monitoring run's tab), or None when it was not measured."""
    d = drift_windows
    with engine.connect() as conn:
        row = conn.execute(sa.select(d).where(d.c.model_name == model_name, d.c.window_start == start,
                                              d.c.window_end == end)).first()
    return _window(row) if row is not None else None


# ------------------------------------------------------------------------------ live quality
def _bucket(conn: Connection, column: Any, seconds: int) -> Any:
    """``floor(epoch(column) / seconds)`` in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return sa.func.floor(sa.extract("epoch", column) / seconds)
    return sa.cast(sa.func.strftime("%s", column), sa.Integer) // seconds  # floor division (SQLAlchemy 2: / is true)


def window_quality(windows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Feedback accuracy / F1 and volumes per monitoring window, as the window's checks measured them."""
    return [{"start": w["start"], "end": w["end"], "n": w["n_predictions"], "labelled": w["n_labelled"],
             "accuracy": w["feedback"].get("accuracy"), "f1": w["feedback"].get("f1")} for w in windows]


def live_quality(engine: Engine, *, model_name: str, positive_label: str, now: datetime,
                 since: datetime | None = None, hours: float = 24.0, bucket_hours: float = 1.0) -> dict[str, Any]:
    """Served answers and their feedback per hour since the last measured window (at most ``hours`` back).

    The monitoring windows carry the measured figures (:func:`window_quality`); these buckets are
    what arrived since, aggregated in SQL: volume, labelled volume, accuracy, precision, recall, F1.
    """
    p, f = predictions, feedback
    seconds = int(bucket_hours * 3600)
    start = max(since or now - timedelta(hours=hours), now - timedelta(hours=hours))
    where = (p.c.model_name == model_name, p.c.role == "served", p.c.created_at >= start, p.c.created_at < now)
    pos_pred, pos_true = p.c.label == positive_label, f.c.label == positive_label
    with engine.connect() as conn:
        bucket = _bucket(conn, p.c.created_at, seconds).label("bucket")
        rows = conn.execute(
            sa.select(bucket, sa.func.count(), sa.func.count(f.c.label),
                      sa.func.sum(sa.case((p.c.label == f.c.label, 1), else_=0)),
                      sa.func.sum(sa.case((sa.and_(pos_pred, pos_true), 1), else_=0)),
                      sa.func.sum(sa.case((sa.and_(pos_pred, f.c.label.is_not(None), sa.not_(pos_true)), 1),
                                          else_=0)),
                      sa.func.sum(sa.case((sa.and_(sa.not_(pos_pred), pos_true), 1), else_=0)))
            .select_from(p.outerjoin(f, f.c.request_id == p.c.request_id)).where(*where).group_by(bucket)
            .order_by(bucket)).all()
    buckets = []
    for b, n, labelled, correct, tp, fp, fn in rows:
        tp, fp, fn, labelled = int(tp or 0), int(fp or 0), int(fn or 0), int(labelled or 0)
        buckets.append({"start": datetime.fromtimestamp(int(b) * seconds, UTC).isoformat(), "n": int(n),
                        "labelled": labelled, "accuracy": int(correct or 0) / labelled if labelled else None,
                        "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn) if tp + fn else None,
                        "f1": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else None})
    return {"since": start.isoformat(), "bucket_hours": bucket_hours, "buckets": buckets}


# ------------------------------------------------------------------------------- serving now
def serving_now(engine: Engine, *, model_name: str, now: datetime, minutes: float = 60.0) -> dict[str, Any]:
    """The routing override and, per variant and version, the last ``minutes`` of traffic and its error rate.

    The error rate is the share of labelled answers whose feedback label differs from the answer
    (the prediction log holds answered requests; HTTP failures are the service's own metrics).
    """
    p, f = predictions, feedback
    since = now - timedelta(minutes=minutes)
    with engine.connect() as conn:
        routing = conn.execute(sa.select(routing_override.c.config, routing_override.c.updated_at)
                               .where(routing_override.c.id == 1)).first()
        rows = conn.execute(
            sa.select(p.c.variant, p.c.model_version, p.c.role, sa.func.count(), sa.func.avg(p.c.latency_ms),
                      sa.func.count(f.c.label), sa.func.sum(sa.case((sa.and_(f.c.label.is_not(None),
                                                                          f.c.label != p.c.label), 1), else_=0)))
            .select_from(p.outerjoin(f, f.c.request_id == p.c.request_id))
            .where(p.c.model_name == model_name, p.c.created_at >= since, p.c.created_at < now)
            .group_by(p.c.variant, p.c.model_version, p.c.role)
            .order_by(p.c.role.desc(), sa.func.count().desc())).all()
    served = sum(int(r[3]) for r in rows if r.role == "served") or 0
    variants = [{"variant": r.variant, "version": r.model_version, "role": r.role, "requests": int(r[3]),
                 "share": (int(r[3]) / served) if served and r.role == "served" else None,
                 "latency_ms": float(r[4] or 0.0), "labelled": int(r[5] or 0),
                 "error_rate": (int(r[6] or 0) / int(r[5])) if r[5] else None} for r in rows]
    return {"routing": _json(routing.config, None) if routing else None,
            "routing_updated_at": _aware(routing.updated_at) if routing else None,
            "minutes": minutes, "served": served, "variants": variants}


# ------------------------------------------------------------------------------- the alert log
def alerts(engine: Engine, *, limit: int = 50, days: float = 30.0, now: datetime) -> dict[str, Any]:
    """The latest alerts and, over ``days``, counts per severity and status (delivered or not)."""
    t = alert_log
    since = now - timedelta(days=days)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.id, t.c.created_at, t.c.kind, t.c.severity, t.c.status, t.c.transport,
                                      t.c.channel, t.c.title, t.c.error, t.c.dag_id, t.c.run_id)
                            .order_by(t.c.id.desc()).limit(limit)).all()
        counts = conn.execute(sa.select(t.c.severity, t.c.status, sa.func.count()).where(t.c.created_at >= since)
                              .group_by(t.c.severity, t.c.status)).all()
    return {"days": days, "counts": [{"severity": s, "status": st, "n": int(n)} for s, st, n in counts],
            "rows": [{"id": r.id, "at": _aware(r.created_at), "kind": r.kind, "severity": r.severity,
                      "status": r.status, "delivered": r.status in ("sent", "logged"), "transport": r.transport,
                      "channel": r.channel, "title": r.title, "error": r.error, "dag_id": r.dag_id,
                      "run_id": r.run_id} for r in rows]}


# ------------------------------------------------------------------------- retraining timeline
def retrain_facts(engine: Engine, *, model_name: str, run_ids: Sequence[str] | None = None,
                  limit: int = 50) -> dict[str, dict[str, Any]]:
    """Per ``retrain_compare_promote`` run (Airflow run id): its alias moves (with the comparison's numbers) and alerts.

    ``run_ids`` None: the latest ``limit`` runs the alias audit or the alert log knows of.
    """
    a, t = alias_audit, alert_log
    prefix = f"{RETRAIN_DAG}/"
    with engine.connect() as conn:
        if run_ids is None:
            moved = (sa.select(sa.func.substr(a.c.run_id, len(prefix) + 1).label("run"), sa.func.max(a.c.created_at)
                               .label("at")).where(a.c.model_name == model_name, a.c.run_id.like(f"{prefix}%"))
                     .group_by(a.c.run_id))
            alerted = (sa.select(t.c.run_id.label("run"), sa.func.max(t.c.created_at).label("at"))
                       .where(t.c.dag_id == RETRAIN_DAG, t.c.run_id.is_not(None)).group_by(t.c.run_id))
            union = sa.union_all(moved, alerted).subquery()
            run_ids = [r[0] for r in conn.execute(sa.select(union.c.run).group_by(union.c.run)
                                                  .order_by(sa.func.max(union.c.at).desc()).limit(limit))]
        wanted = list(run_ids)[:limit]
        moves = conn.execute(sa.select(a).where(a.c.model_name == model_name,
                                                a.c.run_id.in_([prefix + r for r in wanted])).order_by(a.c.id)).all()
        sent = conn.execute(sa.select(t.c.run_id, t.c.created_at, t.c.kind, t.c.severity, t.c.status, t.c.title,
                                      t.c.message).where(t.c.dag_id == RETRAIN_DAG, t.c.run_id.in_(wanted))
                            .order_by(t.c.id)).all()
    out: dict[str, dict[str, Any]] = {r: {"run_id": r, "moves": [], "alerts": []} for r in wanted}
    for m in moves:
        out[m.run_id.removeprefix(prefix)]["moves"].append(_audit_row(m))
    for s in sent:
        out[s.run_id]["alerts"].append({"at": _aware(s.created_at), "kind": s.kind, "severity": s.severity,
                                        "status": s.status, "title": s.title, "message": s.message})
    for facts in out.values():
        facts["outcome"] = outcome(facts["moves"], facts["alerts"])
    return out


def outcome(moves: Sequence[dict[str, Any]], sent: Sequence[dict[str, Any]]) -> str:
    """promoted | rolled back | withdrawn | canary | rejected | no decision yet, from what the run left behind."""
    actions = {(m["alias"], m["action"]) for m in moves}
    kinds = {s["kind"] for s in sent}
    if ("champion", "promote") in actions:
        return "promoted"
    if ("champion", "rollback") in actions:
        return "rolled back"
    if ("challenger", "withdraw") in actions:
        return "withdrawn"
    if "rejection" in kinds:
        return "rejected"
    if ("challenger", "canary") in actions:
        return "canary"
    return "no decision yet"


def version_of_run(engine: Engine, *, model_name: str, dag_id: str, run_id: str) -> str | None:
    """The version a training / retrain run registered (``model_artifacts.registered_by``)."""
    m = model_artifacts
    with engine.connect() as conn:
        return conn.execute(sa.select(m.c.version).where(m.c.model_name == model_name,
                                                         m.c.registered_by == f"{dag_id}/{run_id}")
                            .order_by(m.c.registered_at.desc()).limit(1)).scalar()
