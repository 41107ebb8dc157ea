"""The Model Ops page in Airflow's nav and a Model Ops tab on every DAG run (issue 13).

Only the plugin object: the app and its security live in :mod:`autoretrain.airflow.modelops`.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from autoretrain.airflow.modelops import URL_PREFIX, LazyApp, create_app, external_views


class ModelOpsPlugin(AirflowPlugin):
    """The model's life on one page, behind Airflow's login."""

    name = "autoretrain_modelops"
    fastapi_apps = [{"app": LazyApp(create_app), "url_prefix": URL_PREFIX, "name": "AutoRetrain Model Ops"}]
    external_views = external_views()
