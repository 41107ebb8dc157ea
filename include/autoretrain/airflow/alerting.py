"""Deliver alerts: an atomic cool-down, severity routing, the Slack provider's notifiers, the alert table.

:func:`send_alert` is the one door every alert goes through (the failure callback of every task,
:class:`SendAlertOperator` tasks, the training gate). It never raises because of Slack or the
alert table: an unreachable or misconfigured Slack is recorded as ``failed`` and the pipeline goes
on. With no Slack connection configured (the embedded default) the alert goes to the log and the
table (``logged``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypedDict

from airflow.sdk import BaseOperator, Context

from autoretrain.airflow.context import airflow_url, context_ids, settings_for
from autoretrain.airflow.errors import maps_errors
from autoretrain.alerts.messages import (
    BUILDERS,
    Alert,
    Route,
    build_alert,
    mlflow_run_url,
    route_for,
)
from autoretrain.config import Settings, redact_url
from autoretrain.data.pii import redact

log = logging.getLogger("autoretrain.alerts")

SLACK_USERNAME = "AutoRetrain"
SLACK_TIMEOUT_SECONDS = 10
LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}


DeliveryStatus = Literal["sent", "logged", "failed", "suppressed"]


class DeliveryRecord(TypedDict):
    """:meth:`Delivery.as_dict`: the XCom of the alert tasks."""

    status: DeliveryStatus
    transport: str
    channel: str | None
    dedup_key: str
    error: str | None
    alert_id: int | None


@dataclass(frozen=True)
class Delivery:
    """What happened to one alert: ``sent``, ``logged``, ``failed`` or ``suppressed``."""

    status: DeliveryStatus
    transport: str
    channel: str | None
    dedup_key: str
    error: str | None = None
    alert_id: int | None = None

    def as_dict(self) -> DeliveryRecord:
        return {"status": self.status, "transport": self.transport, "channel": self.channel,
                "dedup_key": self.dedup_key, "error": self.error, "alert_id": self.alert_id}


def send_alert(alert: Alert, settings: Settings, *, context: Mapping[str, Any] | None = None,
               now: datetime | None = None) -> Delivery:
    """Route ``alert`` by severity, hold it back within the cool-down, deliver it, record it."""
    from autoretrain.alerts.store import FAILED, LOGGED, SENT, SUPPRESSED

    now = now or datetime.now(UTC)  # wall clock on purpose: a cool-down is about when people were told
    alert = replace(alert, title=settings.scrub(alert.title), text=settings.scrub(alert.text),
                    links=tuple((name, settings.scrub(url)) for name, url in alert.links))  # no secret leaves
    ids = context_ids(context)
    store = _open_store(settings)
    cooldown = timedelta(minutes=max(settings.alert_cooldown_minutes, 0))
    # the claim is one atomic write: of N senders of the same alert at once, one is granted (an
    # unusable table grants: an alert is better sent twice than lost)
    claim = _guard(lambda: store.claim(alert.dedup_key, now=now, cooldown=cooldown), "claim") if store else None
    route = route_for(alert.severity, settings)
    if claim is not None and not claim.granted:
        log.info("alert %s suppressed: last delivered %s, cool-down %d min", alert.dedup_key,
                 claim.held_since, settings.alert_cooldown_minutes)
        delivery = Delivery(SUPPRESSED, route.transport, route.channel, alert.dedup_key)
    else:
        log.log(LOG_LEVELS[alert.severity], "alert [%s] %s", alert.severity, alert.text)
        delivery = Delivery(LOGGED, route.transport, route.channel, alert.dedup_key)
        if route.transport != "log":
            error = _deliver(route, alert, context or {})
            delivery = Delivery(FAILED if error else SENT, route.transport, route.channel, alert.dedup_key, error)
        if delivery.status == FAILED and claim is not None:  # nobody was told: the next attempt may send
            _guard(lambda: store.release(claim), "release")
    if store is None:
        return delivery
    alert_id = _guard(lambda: store.record(
        created_at=now, kind=alert.kind, severity=alert.severity, dedup_key=alert.dedup_key,
        status=delivery.status, transport=route.transport, channel=route.channel, title=alert.title,
        message=alert.text, error=delivery.error, **ids), "write")
    store.close()
    return replace(delivery, alert_id=alert_id)


def _deliver(route: Route, alert: Alert, context: Mapping[str, Any]) -> str | None:
    """Post through the provider's notifier; the error text when Slack refused or was unreachable."""
    try:
        # notify(), not __call__: the text may hold "{{" from data, which must not be rendered as Jinja
        _notifier(route, alert).notify(dict(context))
    except Exception as err:  # noqa: BLE001 - any Slack/connection failure must not fail the pipeline
        error = redact(f"{type(err).__name__}: {err}")[:1000]
        log.warning("alert %s could not be sent to Slack (%s %s): %s", alert.dedup_key, route.transport,
                    route.conn_id, error)
        return error
    return None


def _notifier(route: Route, alert: Alert) -> Any:
    if route.conn_id is None:  # route_for names the connection of both Slack transports
        raise ValueError(f"alert route {route.transport} has no Slack connection id")
    if route.transport == "slack_api":
        from airflow.providers.slack.notifications.slack import SlackNotifier

        if route.channel is None:  # route_for gives slack_api routes the severity's channel
            raise ValueError("alert route slack_api has no channel")
        return SlackNotifier(slack_conn_id=route.conn_id, channel=route.channel, text=alert.text,
                             username=SLACK_USERNAME, unfurl_links=False, unfurl_media=False,
                             timeout=SLACK_TIMEOUT_SECONDS)
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    return SlackWebhookNotifier(slack_webhook_conn_id=route.conn_id, text=alert.text, unfurl_links=False,
                                unfurl_media=False, timeout=SLACK_TIMEOUT_SECONDS)


def _open_store(settings: Settings) -> Any:
    import sqlalchemy as sa

    from autoretrain.alerts.store import AlertStore
    from autoretrain.db.engine import database_url
    from autoretrain.db.migrate import SchemaOutOfDate

    try:
        return AlertStore(database_url(settings))
    except SchemaOutOfDate as err:
        log.error("alert table unavailable; alerts are logged only: %s", err)
        return None
    except (sa.exc.SQLAlchemyError, OSError) as err:
        log.error("alert table unavailable (%s); alerts are logged only: %s",
                  redact_url(settings.database_url) or "local SQLite", settings.scrub(redact(str(err)))[:500])
        return None


def _guard(fn: Any, action: str) -> Any:
    import sqlalchemy as sa

    try:
        return fn()
    except sa.exc.SQLAlchemyError as err:
        log.error("alert table %s failed: %s", action, redact(str(err))[:500])
        return None


# ------------------------------------------------------------------------------------ operator
class SendAlertOperator(BaseOperator):
    """Build an alert of ``kind`` (drift, regression, promotion, rejection, rollback...) and send it.

    ``fields`` are the builder's keyword arguments (templated: pass ``other_task.output`` values);
    ``run_id`` and the Airflow link are filled in, and ``mlflow_run_id`` becomes an MLflow link.
    The task succeeds whatever Slack does; the XCom is the :class:`Delivery`.
    """

    template_fields: Sequence[str] = ("fields",)
    ui_color = "#fdecea"

    def __init__(self, *, kind: str, fields: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if kind not in BUILDERS:
            raise ValueError(f"unknown alert kind {kind!r}; known: {sorted(BUILDERS)}")
        self.kind = kind
        self.fields = dict(fields or {})

    @maps_errors
    def execute(self, context: Context) -> DeliveryRecord:
        settings = settings_for(context)
        fields = {"run_id": context["run_id"], "airflow_url": airflow_url(context), **self.fields}
        if "mlflow_run_id" in fields:
            fields["mlflow_url"] = mlflow_run_url(settings.resolved_tracking_uri(), fields.pop("mlflow_run_id"))
        delivery = send_alert(build_alert(self.kind, **fields), settings, context=context)
        return delivery.as_dict()
