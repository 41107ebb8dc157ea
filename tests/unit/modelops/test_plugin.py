"""The plugin object and its app: a nav page, a DAG-run tab, and no route without Airflow's security."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from fastapi.routing import APIRoute

from tests.conftest import ROOT


def load_plugin():
    spec = importlib.util.spec_from_file_location("modelops_plugin", ROOT / "plugins" / "modelops.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ModelOpsPlugin


def test_loading_the_plugin_builds_no_app() -> None:
    """Airflow loads plugins in every task process: the plugin must not import FastAPI's app machinery there."""
    code = ("import sys, importlib.util; spec = importlib.util.spec_from_file_location('p', sys.argv[1]); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "app = m.ModelOpsPlugin.fastapi_apps[0]['app']; "
            "print('airflow.api_fastapi.core_api.security' in sys.modules, app._app)")
    done = subprocess.run([sys.executable, "-c", code, str(ROOT / "plugins" / "modelops.py")], capture_output=True,
                          text=True, timeout=120, check=True)
    assert done.stdout.split() == ["False", "None"], done.stdout + done.stderr


def test_the_plugin_mounts_the_app_and_adds_the_nav_page_and_the_run_tab() -> None:
    plugin = load_plugin()
    (app,) = plugin.fastapi_apps
    assert app["url_prefix"] == "/modelops"
    views = {v["destination"]: v for v in plugin.external_views}
    assert views["nav"]["href"] == "modelops/" and views["nav"]["url_route"] == "model-ops"
    assert views["dag_run"]["href"] == "modelops/runs/{DAG_ID}/{RUN_ID}"
    assert not any(v["href"].startswith("/") for v in plugin.external_views)  # relative: works behind a proxy


def test_every_route_depends_on_airflows_user_and_permission_check() -> None:
    (app,) = load_plugin().fastapi_apps
    routes = [r for r in app["app"].app.routes if isinstance(r, APIRoute)]  # the app LazyApp builds
    assert {r.path for r in routes} == {"/", "/api/overview", "/api/sections/{name}", "/runs/{dag_id}/{run_id}",
                                        "/api/runs/{dag_id}/{run_id}"}
    for route in routes:
        checks = [d.call for d in route.dependant.dependencies]
        assert checks and all(c.__qualname__ == "requires_access_dag.<locals>.inner" for c in checks), route.path
        users = {sub.call.__name__ for d in route.dependant.dependencies for sub in d.dependencies}
        assert users == {"get_user"}, route.path
    assert app["app"].app.openapi_url is None and app["app"].app.docs_url is None
