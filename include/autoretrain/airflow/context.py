"""What every AutoRetrain task reads from its Airflow context: its settings, its time, its ids.

A leaf of ``autoretrain.airflow``: operators, sensors and callbacks import it, it imports none of
them. :func:`settings_for` is where the documented precedence is applied: the defaults, the
worker's ``autoretrain.json`` and ``AUTORETRAIN_*`` environment, then the run's Params that a person
(or the triggering DAG) actually set. Params default to ``None``, which means "the worker's
setting", so a scheduled run uses the worker's configuration, not the DAG processor's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from autoretrain.config import Settings, load_settings
from autoretrain.promotion.payloads import AuditIds


def settings_for(context: Mapping[str, Any]) -> Settings:
    """The settings of this run: the worker's file and environment, overridden by the Params that are set.

    Raises :class:`~autoretrain.config.RunOverrideRefused` for a conf key the DAG does not declare, a
    connection setting, or a looser gate (see the module docstring).
    """
    worker = load_settings()
    _mask(worker)
    params = dict(context.get("params") or {})
    dag = context.get("dag")
    declared = set(getattr(dag, "params", None) or {}) if dag is not None else set(params)
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    settings = worker.for_run(params, declared=declared, conf=dict(conf))
    _mask(settings)
    return settings


_masked: set[str] = set()


def _mask(settings: Settings) -> None:
    """Register every secret of ``settings`` with Airflow's secrets masker (task logs show ``***``)."""
    from airflow.sdk.log import mask_secret

    for value in set(settings.secret_values()) - _masked:
        mask_secret(value)
        _masked.add(value)


def run_time(context: Mapping[str, Any]) -> datetime:
    """The run's reference time: data interval end, else logical date, else when the run was due."""
    for key in ("data_interval_end", "logical_date"):
        if context.get(key) is not None:
            return utc(context[key])
    return utc(context["dag_run"].run_after)


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (naive values are taken to be UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def context_ids(context: Mapping[str, Any] | None) -> dict[str, str | None]:
    """``dag_id``, ``run_id`` and ``task_id`` of a task context (None outside Airflow)."""
    if not context:
        return {"dag_id": None, "run_id": None, "task_id": None}
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    return {"dag_id": getattr(dag, "dag_id", None) or getattr(ti, "dag_id", None) or context.get("dag_id"),
            "run_id": str(context["run_id"]) if context.get("run_id") else getattr(ti, "run_id", None),
            "task_id": getattr(ti, "task_id", None)}


def audit_ids(context: Mapping[str, Any]) -> AuditIds:
    """``run_id`` (``<dag_id>/<run_id>``) and ``actor`` (``airflow:<dag_id>.<task_id>``) of alias moves."""
    dag_id = context["dag"].dag_id
    return {"run_id": f"{dag_id}/{context['run_id']}", "actor": f"airflow:{dag_id}.{context['ti'].task_id}"}


def airflow_base_url() -> str:
    """The Airflow UI's address (``[api] base_url``)."""
    from airflow.sdk.configuration import conf

    return str(conf.get("api", "base_url", fallback="http://localhost:8080/"))


def airflow_url(context: Mapping[str, Any]) -> str | None:
    """The link to this DAG run in the Airflow UI."""
    from autoretrain.alerts.messages import airflow_run_url

    ids = context_ids(context)
    if not ids["dag_id"] or not ids["run_id"]:
        return None
    return airflow_run_url(airflow_base_url(), ids["dag_id"], ids["run_id"])
