"""The whole Model Ops page's data in one dict, and each DAG-run tab's: the views put together.

The retraining timeline starts from the runs Airflow knows (passed in by the caller, which may read
Airflow's database; this package does not import Airflow) and adds what each run left in
AutoRetrain's tables. Without them (the CLI, the benchmark) the runs come from those tables alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.engine import Engine

from autoretrain import registry
from autoretrain.config import Settings
from autoretrain.modelops import versions as version_meta
from autoretrain.modelops import views

#: the sections of the page, each answered by one JSON route
SECTIONS = ("aliases", "versions", "drift", "quality", "timeline", "alerts", "serving")


def mlflow_ui_base(tracking_uri: str) -> str | None:
    """The MLflow UI address to link to: an http(s) tracking URI without any user:password part."""
    parts = urlsplit(tracking_uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def registry_reader(settings: Settings) -> Callable[[], list[Any]]:
    """Reads every version of the model from MLflow (one search) when the cache asks for it."""
    def read() -> list[Any]:
        from autoretrain import tracking

        return registry.list_versions(tracking.client_for(settings), settings.model_name)
    return read


def versions(settings: Settings, engine: Engine, *, read: Callable[[], Sequence[Any]] | None = None,
             cache: version_meta.VersionCache | None = None) -> list[dict[str, Any]]:
    """Vetted versions (SQL) with their registry metadata (cached for ``cache.ttl`` seconds)."""
    cache = cache or version_meta.CACHE
    described = cache.get((settings.resolved_tracking_uri(), settings.model_name), read or registry_reader(settings))
    return version_meta.merge(views.registered_versions(engine, model_name=settings.model_name), described)


def _trigger(conf: Mapping[str, Any], run_type: str | None) -> dict[str, Any]:
    """Why a retrain started, from its DAG-run conf (untrusted: shown, never acted on)."""
    drift = conf.get("drift_reasons") if isinstance(conf.get("drift_reasons"), dict) else None
    source = "drift" if drift else "asset" if run_type == "asset_triggered" else "manual"
    reasons = [str(r) for r in (drift or {}).get("reasons", [])][:10] if drift else []
    return {"source": source, "reason": str(conf.get("reason") or source)[:500], "drift": reasons,
            "monitoring_run_id": conf.get("monitoring_run_id")}


def timeline(settings: Settings, engine: Engine, *, runs: Sequence[Mapping[str, Any]] | None = None,
             limit: int = 50) -> list[dict[str, Any]]:
    """Every retrain run (Airflow's, newest first, when given) with its moves, comparison, alerts and outcome."""
    if runs is None:
        facts = views.retrain_facts(engine, model_name=settings.model_name, limit=limit)
        return list(facts.values())
    runs = list(runs)[:limit]
    facts = views.retrain_facts(engine, model_name=settings.model_name, run_ids=[str(r["run_id"]) for r in runs])
    out = []
    for run in runs:
        item = facts[str(run["run_id"])]
        out.append({**item, "state": run.get("state"), "start": run.get("start"),
                    "trigger": _trigger(run.get("conf") or {}, run.get("run_type"))})
    return out


def quality(settings: Settings, engine: Engine, *, now: datetime, drift: Mapping[str, Any] | None = None
            ) -> dict[str, Any]:
    """Per monitoring window (as measured) and, since the last one, per hour from the prediction log."""
    drift = drift or views.drift_over_time(engine, model_name=settings.model_name)
    windows = drift["windows"]
    since = datetime.fromisoformat(windows[-1]["end"]) if windows else None
    return {"windows": views.window_quality(windows),
            "live": views.live_quality(engine, model_name=settings.model_name, positive_label=settings.positive_label,
                                       now=now, since=since)}


def section(name: str, settings: Settings, engine: Engine, *, now: datetime,
            runs: Sequence[Mapping[str, Any]] | None = None, drift: Mapping[str, Any] | None = None) -> Any:
    """One section's data (the JSON route ``api/<name>``); ``drift``: that section's data, when already read."""
    model = settings.model_name
    if name == "aliases":
        return views.aliases_now(engine, model_name=model)
    if name == "versions":
        return versions(settings, engine)
    if name == "drift":
        return views.drift_over_time(engine, model_name=model)
    if name == "quality":
        return quality(settings, engine, now=now, drift=drift)
    if name == "timeline":
        return timeline(settings, engine, runs=runs)
    if name == "alerts":
        return views.alerts(engine, now=now)
    if name == "serving":
        return views.serving_now(engine, model_name=model, now=now)
    raise KeyError(f"no Model Ops section {name!r}; one of {', '.join(SECTIONS)}")


def collect(settings: Settings, engine: Engine, *, now: datetime | None = None,
            runs: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Every section of the page."""
    now = now or datetime.now(UTC)
    data: dict[str, Any] = {"drift": section("drift", settings, engine, now=now)}
    for name in SECTIONS:
        if name != "drift":
            data[name] = section(name, settings, engine, now=now, runs=runs, drift=data["drift"])
    return {"model_name": settings.model_name, "now": now.isoformat(), **{name: data[name] for name in SECTIONS}}


def run_tab(settings: Settings, engine: Engine, *, dag_id: str, run_id: str,
            run: Mapping[str, Any] | None = None, window: tuple[datetime, datetime] | None = None) -> dict[str, Any]:
    """The data of the tab on one DAG run (``run``: Airflow's view of it; ``window``: a monitoring run's)."""
    model = settings.model_name
    out: dict[str, Any] = {"dag_id": dag_id, "run_id": run_id, "kind": None}
    if dag_id == views.RETRAIN_DAG:
        out["kind"] = "retrain"
        out["run"] = timeline(settings, engine, runs=[{"run_id": run_id, **(run or {})}])[0]
        out["version"] = views.version_of_run(engine, model_name=model, dag_id=dag_id, run_id=run_id)
    elif dag_id == "monitoring":
        out["kind"] = "monitoring"
        out["window"] = views.window_at(engine, model_name=model, start=window[0], end=window[1]) if window else None
    elif dag_id == "training":
        out["kind"] = "training"
        version = views.version_of_run(engine, model_name=model, dag_id=dag_id, run_id=run_id)
        out["version"] = next((v for v in versions(settings, engine) if v["version"] == version), None) \
            if version else None
    return out
