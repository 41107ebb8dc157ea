"""The Model Ops FastAPI app that the Airflow plugin mounts (plugins/modelops.py), behind Airflow's login.

Airflow does not protect a plugin's FastAPI app: every route here depends on Airflow's own security
dependencies (:mod:`airflow.api_fastapi.core_api.security`), which take the user from the
``Authorization: Bearer`` JWT or the UI's ``_token`` cookie (401 without one, 403 on a bad one) and
ask the configured auth manager. The page and the JSON routes need read access to the runs of the
three DAGs they report on; a run's tab needs read access to that DAG's runs. The data comes from
:mod:`autoretrain.modelops` (AutoRetrain's tables, the registry) and Airflow's DAG runs (read here,
the only package allowed to import Airflow).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from autoretrain.config import Settings, load_settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

#: the DAGs the page reports on: reading it needs read access to the runs of each
DAGS = ("training", "monitoring", "retrain_compare_promote")
#: the URL prefix the plugin mounts the app under (the nav entry and the tabs point here)
URL_PREFIX = "/modelops"


class LazyApp:
    """An ASGI app that builds the real one (:func:`create_app`) on its first request.

    Airflow loads every plugin in every task process too (for macros); building the app there
    would import FastAPI and Airflow's API security into each task for nothing. In the api-server
    those modules are loaded already, so the first request pays almost nothing.
    """

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory, self._app, self._lock = factory, None, threading.Lock()

    @property
    def app(self) -> Any:
        with self._lock:
            if self._app is None:
                self._app = self._factory()
            return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@functools.cache
def _state() -> tuple[Settings, Engine]:
    """The api-server's settings and one engine on AutoRetrain's database, made on first use."""
    from autoretrain.db.engine import database_url
    from autoretrain.db.migrate import checked_engine

    settings = load_settings()
    return settings, checked_engine(database_url(settings))


def _runs(dag_id: str, *, run_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """DAG runs of ``dag_id`` from Airflow's database, newest first (or the one ``run_id``)."""
    import sqlalchemy as sa
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    query = sa.select(DagRun.run_id, DagRun.state, DagRun.run_type, DagRun.conf, DagRun.start_date,
                      DagRun.data_interval_start, DagRun.data_interval_end).where(DagRun.dag_id == dag_id)
    query = query.where(DagRun.run_id == run_id) if run_id else query.order_by(DagRun.id.desc()).limit(limit)
    with create_session() as session:
        rows = session.execute(query).all()
    return [{"run_id": r.run_id, "state": str(r.state) if r.state else None, "run_type": str(r.run_type),
             "conf": r.conf if isinstance(r.conf, dict) else {}, "start": r.start_date.isoformat() if r.start_date
             else None, "interval": (r.data_interval_start, r.data_interval_end)} for r in rows]


def _links(settings: Settings) -> Any:
    from autoretrain.modelops.overview import mlflow_ui_base
    from autoretrain.modelops.sections import Links

    return Links(mlflow_ui_base(settings.resolved_tracking_uri()), settings.model_name)


def overview_data() -> dict[str, Any]:
    from autoretrain.modelops.overview import collect

    settings, engine = _state()
    return collect(settings, engine, runs=_runs("retrain_compare_promote"))


def run_data(dag_id: str, run_id: str) -> dict[str, Any]:
    from autoretrain.airflow.monitoring import window_of
    from autoretrain.config import SettingsError
    from autoretrain.modelops.overview import run_tab

    settings, engine = _state()
    found = _runs(dag_id, run_id=run_id)
    if not found:
        from fastapi import HTTPException

        raise HTTPException(404, f"DAG {dag_id!r} has no run {run_id!r}")
    run, window = found[0], None
    if dag_id == "monitoring":
        start, end = run["interval"]
        try:
            window = window_of({"params": run["conf"], "data_interval_start": start, "data_interval_end": end})
        except (SettingsError, ValueError):
            window = None
    public = {k: v for k, v in run.items() if k != "interval"}
    return run_tab(settings, engine, dag_id=dag_id, run_id=run_id, run=public, window=window)


def create_app() -> FastAPI:
    """The app: ``/`` the page, ``/runs/{dag_id}/{run_id}`` a run's tab, ``/api/...`` the same data as JSON."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import HTMLResponse, JSONResponse

    from autoretrain.modelops.overview import SECTIONS, section
    from autoretrain.modelops.sections import overview_page, run_tab

    read_runs = [Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=dag)) for dag in DAGS]
    read_this_run = [Depends(requires_access_dag("GET", DagAccessEntity.RUN))]  # dag_id from the path
    app = FastAPI(title="AutoRetrain Model Ops", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse, dependencies=read_runs)
    def page() -> HTMLResponse:
        return HTMLResponse(overview_page(overview_data(), _links(_state()[0])), headers=_HTML)

    @app.get("/api/overview", dependencies=read_runs)
    def overview_json() -> JSONResponse:
        return JSONResponse(overview_data(), headers=_NO_STORE)

    @app.get("/api/sections/{name}", dependencies=read_runs)
    def section_json(name: str) -> JSONResponse:
        if name not in SECTIONS:
            raise HTTPException(404, f"no section {name!r}; one of {', '.join(SECTIONS)}")
        settings, engine = _state()
        runs = _runs("retrain_compare_promote") if name == "timeline" else None
        return JSONResponse(section(name, settings, engine, now=datetime.now(UTC), runs=runs), headers=_NO_STORE)

    @app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse, dependencies=read_this_run)
    def run_page(dag_id: str, run_id: str) -> HTMLResponse:
        return HTMLResponse(run_tab(run_data(dag_id, run_id), _links(_state()[0])), headers=_HTML)

    @app.get("/api/runs/{dag_id}/{run_id}", dependencies=read_this_run)
    def run_json(dag_id: str, run_id: str) -> JSONResponse:
        return JSONResponse(run_data(dag_id, run_id), headers=_NO_STORE)

    return app


_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
#: the pages run no script and load nothing: a policy that says so (and only Airflow may frame them)
_HTML = {**_NO_STORE, "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                                  "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"}


def external_views(destinations: Sequence[str] = ("dag_run",)) -> list[dict[str, Any]]:
    """The nav entry (the page) and the tab on every DAG run (``{DAG_ID}``/``{RUN_ID}`` filled in by the UI)."""
    prefix = URL_PREFIX.lstrip("/")  # relative hrefs: they work behind a proxy's sub-path too
    views: list[dict[str, Any]] = [{"name": "Model Ops", "href": f"{prefix}/", "url_route": "model-ops",
                                    "destination": "nav", "nav_top_level": True}]
    views += [{"name": "Model Ops", "href": f"{prefix}/runs/{{DAG_ID}}/{{RUN_ID}}", "destination": d,
               "url_route": f"model-ops-{d.replace('_', '-')}"} for d in destinations]
    return views
