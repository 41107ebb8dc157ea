"""Monitoring of one time window of production traffic: read, measure, record, decide.

``measure_window`` reads the served predictions of ``[start, end)`` from the prediction log (with
any feedback labels), runs the drift checks against the champion's reference (its training
messages, and its out-of-sample scores on its own hold-out), logs the figures and an Evidently
HTML report to the MLflow monitoring experiment, and upserts one row per (model, window) into
``drift_windows``. ``decide_window`` applies :func:`autoretrain.monitoring.drift.decide_retrain` over the
latest windows (hysteresis) and records the decision on the same row, where the ``DriftSensor``
of the monitoring DAG reads it. Re-running a window replaces its row: every step is idempotent.
What the steps return is typed in :mod:`autoretrain.monitoring.payloads`.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from autoretrain import lineage
from autoretrain.config import Settings
from autoretrain.db.engine import database_url
from autoretrain.db.migrate import checked_engine
from autoretrain.db.schema import drift_windows, feedback, predictions
from autoretrain.monitoring.payloads import (
    AdhocDrift,
    DriftReportRecord,
    MeasuredWindow,
    RetrainDecision,
    UnmonitoredWindow,
    WindowMeasurement,
    WindowRow,
)

log = logging.getLogger(__name__)


def engine_for(settings: Settings) -> Engine:
    """The engine of AutoRetrain's database; SchemaOutOfDate when it is not migrated to head."""
    return checked_engine(database_url(settings))


@dataclass(frozen=True)
class Window:
    """The served predictions of one window: messages, logged scores, feedback labels (or None)."""

    start: datetime
    end: datetime
    texts: list[str]
    labels: list[str | None]
    versions: list[str]


def read_window(engine: Engine, *, start: datetime, end: datetime, model_name: str) -> Window:
    """Served (not shadow) predictions of ``model_name`` logged in ``[start, end)``, with feedback."""
    p, f = predictions, feedback
    query = (sa.select(p.c.text, p.c.model_version, f.c.label)
             .select_from(p.outerjoin(f, p.c.request_id == f.c.request_id))
             .where(p.c.role == "served", p.c.model_name == model_name,
                    p.c.created_at >= start, p.c.created_at < end)
             .order_by(p.c.id))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return Window(start=start, end=end, texts=[r.text for r in rows], labels=[r.label for r in rows],
                  versions=[r.model_version for r in rows])


@dataclass(frozen=True)
class Champion:
    """The verified champion, its training messages and its drift reference."""

    model: Any
    ref: Any  # registry.ModelRef
    train: Any  # DataFrame of the training split
    reference: Any  # drift.Reference


def load_champion(settings: Settings, client: Any) -> Champion:
    """The current champion (SHA-256 verified) with the reference built from its own training run."""
    from autoretrain import registry, tracking
    from autoretrain.monitoring.reference import build_reference
    from autoretrain.training.families import positive_proba

    model, ref = registry.load_trusted(settings, client, registry.CHAMPION)  # AutoRetrain's record, not MLflow's tag
    parent = ref.tags.get(lineage.PARENT_RUN_ID)
    if not parent:
        raise registry.RegistryError(f"{settings.model_name} version {ref.version} has no "
                                     "autoretrain.parent_run_id tag: its training data cannot be found")
    train = tracking.load_frame(client, parent, lineage.FRAME_TRAIN)
    holdout = tracking.load_frame(client, parent, lineage.FRAME_TEST)
    # out-of-sample scores (the hold-out's): in-sample ones are over-confident and read as drift
    reference = build_reference(train["text"].tolist(), proba=positive_proba(model, holdout, settings.positive_label),
                                labels=holdout["label"].tolist(), model=model,
                                positive_label=settings.positive_label,
                                decision_threshold=settings.decision_threshold, seed=settings.random_seed)
    return Champion(model=model, ref=ref, train=train, reference=reference)


def adhoc_drift(settings: Settings, champion: Champion, texts: list[str],
                labels: list[str | None] | None = None) -> AdhocDrift:
    """The same checks and JSON as a monitored window, for a posted or given batch of messages."""
    from autoretrain.monitoring.drift import Sample, run_checks

    report = run_checks(champion.reference, Sample(texts=texts), model=champion.model, labels=labels,
                        drift_threshold=settings.drift_threshold, min_window_size=settings.drift_min_window_size,
                        positive_label=settings.positive_label, seed=settings.random_seed)
    return {"model_name": settings.model_name, "model_version": champion.ref.version, "n_messages": len(texts),
            "n_labelled": sum(label is not None for label in labels or []), **report.as_dict()}


def measure_window(settings: Settings, *, start: datetime, end: datetime) -> WindowMeasurement:
    """Drift checks of one window, logged to MLflow and upserted into ``drift_windows``."""
    from autoretrain import registry, tracking
    from autoretrain.monitoring.drift import Sample, run_checks

    client = tracking.client_for(settings)
    if registry.alias_version(client, settings.model_name, registry.CHAMPION) is None:
        log.warning("no champion for %s yet: nothing to monitor", settings.model_name)
        unmonitored: UnmonitoredWindow = {"status": "no champion", "insufficient_data": True, "drifted": False,
                                          "results": []}
        engine = engine_for(settings)  # the window still gets its row, so its decision can be recorded
        _upsert(engine, settings=settings, window=Window(start, end, [], [], []), version=None,
                report=unmonitored, run_id=None)
        engine.dispose()
        return unmonitored
    champion = load_champion(settings, client)
    ref = champion.ref
    engine = engine_for(settings)
    window = read_window(engine, start=start, end=end, model_name=settings.model_name)
    # scores are recomputed with the champion, so a window that mixes versions (canary) is judged
    # by one model against that model's own reference
    report = run_checks(champion.reference, Sample(texts=window.texts), model=champion.model, labels=window.labels,
                        drift_threshold=settings.drift_threshold, min_window_size=settings.drift_min_window_size,
                        positive_label=settings.positive_label, seed=settings.random_seed)
    summary = report.as_dict()
    run_id = _log_to_mlflow(settings, client, window=window, report=summary, champion=champion)
    _upsert(engine, settings=settings, window=window, version=ref.version, report=summary, run_id=run_id)
    engine.dispose()
    n_labelled = sum(label is not None for label in window.labels)
    log.info("window %s..%s: %d predictions (%d labelled), drifted=%s, insufficient=%s", start, end,
             len(window.texts), n_labelled, summary.get("drifted"), summary.get("insufficient_data"))
    measured: MeasuredWindow = {"status": "measured", "model_version": ref.version, "n_predictions": len(window.texts),
                                "n_labelled": n_labelled, "mlflow_run_id": run_id, **summary}
    return measured


def decide_window(settings: Settings, *, start: datetime, end: datetime) -> RetrainDecision:
    """Retrain or not, over the latest windows up to this one (hysteresis), recorded on its row."""
    from autoretrain.monitoring.decision import decide_retrain

    engine = engine_for(settings)
    t = drift_windows
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.report, t.c.window_start, t.c.window_end)
                            .where(t.c.model_name == settings.model_name, t.c.window_end <= end)
                            .order_by(t.c.window_end.desc()).limit(max(settings.drift_consecutive_windows, 1) * 4)
                            ).all()
    rows = list(reversed(rows))
    history = [json.loads(r.report) for r in rows]
    decision: RetrainDecision
    if not history:  # no streak to report either
        decision = {"retrain": False, "reasons": ["no measured window: nothing to decide"]}
    else:
        names = [window_run_name(Window(_aware(r.window_start), _aware(r.window_end), [], [], [])) for r in rows]
        decision = decide_retrain(history, consecutive=settings.drift_consecutive_windows,
                                  accuracy_floor=settings.accuracy_floor, names=names).as_dict()
    with engine.begin() as conn:
        conn.execute(sa.update(t).where(t.c.model_name == settings.model_name, t.c.window_start == start,
                                        t.c.window_end == end)
                     .values(retrain=bool(decision["retrain"]), decision=json.dumps(decision)))
    engine.dispose()
    for reason in decision["reasons"]:
        log.info("decision: %s", reason)
    return decision


def read_decision(settings: Settings, *, start: datetime, end: datetime) -> dict[str, Any] | None:
    """The recorded decision of a window, or None while it is not decided yet."""
    row = read_window_row(settings, start=start, end=end)
    return row["decision"] if row else None


def read_window_row(settings: Settings, *, start: datetime, end: datetime) -> WindowRow | None:
    """The recorded row of a window (report and decision parsed), or None."""
    engine = engine_for(settings)
    t = drift_windows
    with engine.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.model_name == settings.model_name, t.c.window_start == start,
                                              t.c.window_end == end)).mappings().first()
    engine.dispose()
    if row is None:
        return None
    return {"model_name": row["model_name"], "window_start": row["window_start"], "window_end": row["window_end"],
            "model_version": row["model_version"], "n_predictions": row["n_predictions"],
            "n_labelled": row["n_labelled"], "insufficient_data": row["insufficient_data"],
            "drifted": row["drifted"], "report": json.loads(row["report"]), "mlflow_run_id": row["mlflow_run_id"],
            "retrain": row["retrain"], "decision": json.loads(row["decision"]) if row["decision"] else None,
            "action": row["action"], "computed_at": row["computed_at"]}


def record_action(settings: Settings, *, start: datetime, end: datetime, action: str) -> None:
    """Note what the DAG did about a window ("no action", "retrain triggered: ...")."""
    engine = engine_for(settings)
    t = drift_windows
    with engine.begin() as conn:
        conn.execute(sa.update(t).where(t.c.model_name == settings.model_name, t.c.window_start == start,
                                        t.c.window_end == end).values(action=action[:256]))
    engine.dispose()


def _upsert(engine: Engine, *, settings: Settings, window: Window, version: str | None,
            report: DriftReportRecord | UnmonitoredWindow, run_id: str | None) -> None:
    t = drift_windows
    key = {"model_name": settings.model_name, "window_start": window.start, "window_end": window.end}
    values = {"model_version": version, "n_predictions": len(window.texts),
              "n_labelled": sum(label is not None for label in window.labels),
              "insufficient_data": bool(report.get("insufficient_data")), "drifted": bool(report.get("drifted")),
              "report": json.dumps(report), "mlflow_run_id": run_id, "retrain": None, "decision": None,
              "action": None, "computed_at": window.end}
    with engine.begin() as conn:  # delete + insert in one transaction: a re-run replaces the row
        conn.execute(sa.delete(t).where(*(t.c[k] == v for k, v in key.items())))
        conn.execute(sa.insert(t).values(**key, **values))


def _log_to_mlflow(settings: Settings, client: Any, *, window: Window, report: DriftReportRecord,
                   champion: Champion) -> str:
    """One MLflow run per (model, window): check scores and thresholds, and the Evidently report."""
    from autoretrain import tracking

    experiment = tracking.ensure_experiment(client, settings.monitoring_experiment)
    key = f"monitoring/{settings.model_name}/{window.start.isoformat()}/{window.end.isoformat()}"
    run_id = tracking.find_or_create_run(client, experiment, run_key=key, run_name=window_run_name(window),
                                         tags={lineage.STAGE: "monitoring",
                                               lineage.MODEL_VERSION: champion.ref.version})
    with tracking.run_closed(client, run_id):
        client.log_metric(run_id, "n_predictions", len(window.texts))
        for result in report.get("results", []):
            client.log_metric(run_id, f"{result['name']}_score", float(result["score"]))
            client.log_metric(run_id, f"{result['name']}_threshold", float(result["threshold"]))
            client.log_metric(run_id, f"{result['name']}_drifted", float(bool(result["drifted"])))
        tracking.log_json(client, run_id, report, lineage.DRIFT_REPORT)
        if not report.get("insufficient_data"):
            _log_evidently(client, run_id, settings=settings, window=window, champion=champion)
    return run_id


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time stored here is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def window_run_name(window: Window) -> str:
    """``window 2026-03-02 06:00:00 - 12:00:00 UTC``: which window a monitoring run measured (unique per window)."""
    same_day = window.start.date() == window.end.date()
    end = f"{window.end:%H:%M:%S}" if same_day else f"{window.end:%Y-%m-%d %H:%M:%S}"
    return f"window {window.start:%Y-%m-%d %H:%M:%S} - {end} UTC"


def _log_evidently(client: Any, run_id: str, *, settings: Settings, window: Window, champion: Champion) -> None:
    import pandas as pd

    from autoretrain.monitoring.report import evidently_report_html
    from autoretrain.training.families import positive_proba

    reference = champion.train[["text"]].copy()
    current = pd.DataFrame({"text": window.texts})
    reference["score"] = positive_proba(champion.model, reference, settings.positive_label)
    current["score"] = positive_proba(champion.model, current, settings.positive_label)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / lineage.EVIDENTLY_REPORT
        evidently_report_html(reference, current, path)
        client.log_artifact(run_id, str(path), artifact_path=lineage.EVIDENTLY_DIR)
