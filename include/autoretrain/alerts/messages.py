"""Alerts as pure values: message builders, severity routing and the cool-down rule (no I/O).

The same text goes to the log, the alert table and Slack. Delivery (the Slack provider's
notifiers, the alert table) lives in :mod:`autoretrain.airflow.alerting`; everything here is
tested without Slack. Free text that may come from data (errors, check details, reasons) is
redacted with :func:`autoretrain.data.pii.redact` before it enters a message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from autoretrain.config import Settings
from autoretrain.data.pii import redact

SEVERITIES = ("info", "warning", "critical")
ICONS = {"info": ":information_source:", "warning": ":warning:", "critical": ":red_circle:"}
#: Slack accepts far more, but an alert that needs more than this is not being read
MAX_TEXT_CHARS = 3000


@dataclass(frozen=True)
class Alert:
    """One event worth telling people about: what, how bad, the message, and its de-duplication key."""

    kind: str
    severity: str
    title: str
    text: str
    dedup_key: str
    links: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {SEVERITIES}")

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity, "title": self.title, "text": self.text,
                "dedup_key": self.dedup_key, "links": dict(self.links)}


# ------------------------------------------------------------------------------------------ links
def airflow_run_url(base_url: str, dag_id: str, run_id: str) -> str:
    """The Airflow 3 UI page of a DAG run."""
    return f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def mlflow_run_url(tracking_uri: str, run_id: str | None) -> str | None:
    """The MLflow UI page of a run, when the tracking URI is an MLflow server (else None)."""
    if not tracking_uri.startswith(("http://", "https://")) or not run_id:
        return None
    return f"{tracking_uri.rstrip('/')}/#/runs/{run_id}"


def mlflow_model_url(tracking_uri: str, name: str, version: str | int) -> str | None:
    """The MLflow UI page of a registered model version (None without an MLflow server)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    return f"{tracking_uri.rstrip('/')}/#/models/{quote(name, safe='')}/versions/{version}"


# ------------------------------------------------------------------------------------- builders
def _clip(text: Any, limit: int = 500) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _alert(kind: str, severity: str, title: str, body: Sequence[str], *, dedup_key: str,
           airflow_url: str | None, mlflow_url: str | None) -> Alert:
    links = tuple((k, v) for k, v in (("airflow", airflow_url), ("mlflow", mlflow_url)) if v)
    lines = [f"{ICONS[severity]} *{title}*", *body]
    lines += [f"{'Airflow' if k == 'airflow' else 'MLflow'}: {v}" for k, v in links]
    text = "\n".join(lines)
    if len(text) > MAX_TEXT_CHARS:
        text = text[: MAX_TEXT_CHARS - 3] + "..."
    return Alert(kind=kind, severity=severity, title=title, text=text, dedup_key=dedup_key, links=links)


def _check_line(check: Mapping[str, Any]) -> str:
    score, threshold = float(check.get("score", 0.0)), float(check.get("threshold", 0.0))
    details = f": {_clip(redact(check['details']), 300)}" if check.get("details") else ""
    return f"- {check['name']} (score {score:.4g}, limit {threshold:.4g}){details}"


def task_failure_alert(*, dag_id: str, task_id: str, run_id: str, try_number: int | None,
                       error: str | None, airflow_url: str | None = None, log_url: str | None = None,
                       mlflow_url: str | None = None) -> Alert:
    """A task failed for good (retries exhausted)."""
    body = [f"Run: {run_id} (try {try_number or '?'})"]
    if error:
        body.append(f"Error: {_clip(redact(error))}")
    if log_url:
        body.append(f"Logs: {log_url}")
    return _alert("task_failure", "critical", f"Task failed: {dag_id}.{task_id}", body,
                  dedup_key=f"task_failure:{dag_id}.{task_id}", airflow_url=airflow_url, mlflow_url=mlflow_url)


def validation_failure_alert(*, source: str, failures: Sequence[Mapping[str, Any]], run_id: str,
                             airflow_url: str | None = None, mlflow_url: str | None = None) -> Alert:
    """A dataset failed blocking checks: no training starts on it."""
    names = sorted(str(f["name"]) for f in failures)
    body = [f"Source: {_clip(source, 200)}", f"Run: {run_id}",
            f"{len(failures)} blocking check(s) failed; no model is trained on this data:",
            *(_check_line(f) for f in failures)]
    return _alert("validation_failed", "critical", "Dataset validation failed", body,
                  dedup_key=f"validation_failed:{source}:{','.join(names)}", airflow_url=airflow_url,
                  mlflow_url=mlflow_url)


def drift_alert(*, model_name: str, checks: Sequence[Mapping[str, Any]], run_id: str,
                airflow_url: str | None = None, mlflow_url: str | None = None) -> Alert:
    """Live inputs or predictions drifted from the training reference."""
    drifted = [c for c in checks if c.get("drifted", not c.get("passed", True))]
    names = sorted(str(c["name"]) for c in drifted)
    body = [f"Run: {run_id}", f"{len(drifted)} of {len(checks)} drift check(s) over their limit:",
            *(_check_line(c) for c in drifted)]
    return _alert("drift", "warning", f"Drift detected for {model_name}", body,
                  dedup_key=f"drift:{model_name}:{','.join(names)}", airflow_url=airflow_url,
                  mlflow_url=mlflow_url)


def regression_alert(*, model_name: str, version: str | int, metric: str, value: float, floor: float,
                     window: str = "", run_id: str, airflow_url: str | None = None,
                     mlflow_url: str | None = None) -> Alert:
    """The champion's live metric fell below its floor."""
    span = f" over {window}" if window else ""
    body = [f"Run: {run_id}", f"{metric} {value:.4f}{span} is below the floor {floor:.4f}"]
    return _alert("regression", "critical", f"{model_name} version {version} regressed", body,
                  dedup_key=f"regression:{model_name}:{version}:{metric}", airflow_url=airflow_url,
                  mlflow_url=mlflow_url)


def promotion_alert(*, model_name: str, version: str | int, previous_version: str | int | None,
                    reasons: Sequence[str], run_id: str, airflow_url: str | None = None,
                    mlflow_url: str | None = None) -> Alert:
    """A challenger became champion."""
    was = f" (was version {previous_version})" if previous_version is not None else ""
    body = [f"Run: {run_id}", f"champion is now version {version}{was}",
            *(f"- {_clip(redact(r), 300)}" for r in reasons)]
    return _alert("promotion", "info", f"{model_name} version {version} promoted to champion", body,
                  dedup_key=f"promotion:{model_name}:{version}", airflow_url=airflow_url, mlflow_url=mlflow_url)


def rejection_alert(*, model_name: str, version: str | int, champion_version: str | int | None,
                    reasons: Sequence[str], run_id: str, airflow_url: str | None = None,
                    mlflow_url: str | None = None) -> Alert:
    """A challenger was not promoted; the champion stays."""
    kept = f"champion stays version {champion_version}" if champion_version is not None else "no champion"
    body = [f"Run: {run_id}", kept, *(f"- {_clip(redact(r), 300)}" for r in reasons)]
    return _alert("rejection", "info", f"{model_name} version {version} rejected", body,
                  dedup_key=f"rejection:{model_name}:{version}", airflow_url=airflow_url, mlflow_url=mlflow_url)


def rollback_alert(*, model_name: str, from_version: str | int, to_version: str | int, reason: str,
                   run_id: str, airflow_url: str | None = None, mlflow_url: str | None = None) -> Alert:
    """The champion alias went back to a previous version."""
    body = [f"Run: {run_id}", f"champion: version {from_version} -> version {to_version}",
            f"Reason: {_clip(redact(reason), 300)}"]
    return _alert("rollback", "critical", f"{model_name} rolled back to version {to_version}", body,
                  dedup_key=f"rollback:{model_name}:{from_version}->{to_version}", airflow_url=airflow_url,
                  mlflow_url=mlflow_url)


def gate_failure_alert(*, model_name: str, version: str | int, reasons: Sequence[str], run_id: str,
                       airflow_url: str | None = None, mlflow_url: str | None = None) -> Alert:
    """A newly trained version failed its absolute quality gates (it gets no alias)."""
    failed = [r for r in reasons if "FAIL" in r or "missing" in r] or list(reasons)
    body = [f"Run: {run_id}", *(f"- {_clip(redact(r), 300)}" for r in failed)]
    return _alert("gate_failed", "warning",
                  f"{model_name} version {version} failed its quality gates and gets no alias", body,
                  dedup_key=f"gate_failed:{model_name}:{version}", airflow_url=airflow_url, mlflow_url=mlflow_url)


BUILDERS: dict[str, Callable[..., Alert]] = {
    "task_failure": task_failure_alert,
    "validation_failed": validation_failure_alert,
    "drift": drift_alert,
    "regression": regression_alert,
    "promotion": promotion_alert,
    "rejection": rejection_alert,
    "rollback": rollback_alert,
    "gate_failed": gate_failure_alert,
}


def build_alert(kind: str, **fields: Any) -> Alert:
    """The alert of ``kind`` (a key of :data:`BUILDERS`) from its builder's keyword fields."""
    try:
        builder = BUILDERS[kind]
    except KeyError as err:
        raise ValueError(f"unknown alert kind {kind!r}; known: {sorted(BUILDERS)}") from err
    return builder(**fields)


# --------------------------------------------------------------------------- routing, cool-down
@dataclass(frozen=True)
class Route:
    """Where an alert goes: ``slack_api`` (a channel), ``slack_webhook``, or only ``log``."""

    transport: str
    conn_id: str | None = None
    channel: str | None = None


def route_for(severity: str, settings: Settings) -> Route:
    """The Slack API connection with the severity's channel, else the webhook, else the log only.

    An empty channel for a severity keeps that severity off Slack. A webhook posts to the one
    channel it was created for, so with a webhook the channel settings only decide on/off.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {SEVERITIES}")
    channel = getattr(settings, f"alert_channel_{severity}").strip()
    if not channel:
        return Route("log")
    if settings.slack_conn_id:
        return Route("slack_api", settings.slack_conn_id, channel)
    if settings.slack_webhook_conn_id:
        return Route("slack_webhook", settings.slack_webhook_conn_id, None)
    return Route("log")


def in_cooldown(last_delivered: datetime | None, now: datetime, cooldown: timedelta) -> bool:
    """True when the same alert was delivered less than ``cooldown`` before ``now``."""
    if last_delivered is None or cooldown <= timedelta(0):
        return False
    return now - last_delivered < cooldown
