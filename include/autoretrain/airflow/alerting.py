"""Deliver alerts: an atomic cool-down, severity routing, the Slack and SMTP providers' notifiers, the alert table.

:func:`send_alert` is the one door every alert goes through (the failure callback of every task,
:class:`SendAlertOperator` tasks, the training gate, the Deadline Alert callback). It sends to
every configured channel: Slack (``SlackNotifier``/``SlackWebhookNotifier``) or, with no Slack
connection, the log; and e-mail (``SmtpNotifier``) when ``alert_email_to`` names recipients. It
never raises because of a channel or the alert table: an unreachable or misconfigured Slack or
SMTP server is recorded as ``failed`` on that channel's row and the pipeline goes on. With nothing
configured (the embedded default) the alert goes to the log and the table (``logged``).
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
    mlflow_model_url,
    mlflow_run_url,
    modelops_page_url,
    routes_for,
    scrubbed,
    with_links,
)
from autoretrain.config import Settings, redact_url
from autoretrain.data.pii import redact

log = logging.getLogger("autoretrain.alerts")

SLACK_USERNAME = "AutoRetrain"
SLACK_TIMEOUT_SECONDS = 10
LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}


DeliveryStatus = Literal["sent", "logged", "failed", "suppressed"]
#: what a multi-channel outcome reads as: one channel that told people is enough ("sent"); else a
#: channel that should have and could not ("failed") outweighs the task log
_PRECEDENCE = ("sent", "failed", "logged", "suppressed")


class ChannelRecord(TypedDict):
    """What happened on one channel (one row of the alert table)."""

    status: DeliveryStatus
    transport: str
    channel: str | None
    dedup_key: str
    error: str | None
    alert_id: int | None


class DeliveryRecord(ChannelRecord):
    """:meth:`Delivery.as_dict`: the XCom of the alert tasks (``channels``: each channel's own outcome)."""

    channels: list[ChannelRecord]


@dataclass(frozen=True)
class Delivery:
    """What happened to one alert: ``sent``, ``logged``, ``failed`` or ``suppressed``.

    With several channels (Slack and e-mail) the fields sum them up: ``sent`` when any channel
    sent it, else ``failed`` when one could not; ``transport`` joins them (``slack_api+email``);
    ``channel``/``alert_id`` are the first channel's; ``channels`` holds each channel's own
    outcome, as recorded in the alert table.
    """

    status: DeliveryStatus
    transport: str
    channel: str | None
    dedup_key: str
    error: str | None = None
    alert_id: int | None = None
    channels: tuple[Delivery, ...] = ()

    def as_dict(self) -> DeliveryRecord:
        return {**self._channel_dict(), "channels": [c._channel_dict() for c in self.channels or (self,)]}

    def _channel_dict(self) -> ChannelRecord:
        return {"status": self.status, "transport": self.transport, "channel": self.channel,
                "dedup_key": self.dedup_key, "error": self.error, "alert_id": self.alert_id}


def send_alert(alert: Alert, settings: Settings, *, context: Mapping[str, Any] | None = None,
               now: datetime | None = None) -> Delivery:
    """Route ``alert`` to every configured channel, hold it back within the cool-down, deliver it, record it.

    Each channel (Slack or the log, then e-mail) has its own cool-down claim and its own row in
    the alert table, so an e-mail that failed is tried again next time even though Slack got it.
    """
    now = now or datetime.now(UTC)  # wall clock on purpose: a cool-down is about when people were told
    alert = with_links(alert, _standard_links(alert, settings))
    alert = scrubbed(alert, settings.scrub)  # no secret leaves, whatever the channel
    store = _open_store(settings)
    cooldown = timedelta(minutes=max(settings.alert_cooldown_minutes, 0))
    routes = routes_for(alert.severity, settings)
    # each claim is one atomic write: of N senders of the same alert at once, one is granted (an
    # unusable table grants: an alert is better sent twice than lost)
    keys = [_claim_key(alert, route, i) for i, route in enumerate(routes)]
    claims = [_guard(lambda key=key: store.claim(key, now=now, cooldown=cooldown), "claim") if store else None
              for key in keys]
    if any(claim is None or claim.granted for claim in claims):
        log.log(LOG_LEVELS[alert.severity], "alert [%s] %s", alert.severity, alert.text)
    deliveries = [_deliver_on(route, claim, alert, settings, store=store, context=context, now=now)
                  for route, claim in zip(routes, claims, strict=True)]
    if store is not None:
        store.close()
    return deliveries[0] if len(deliveries) == 1 else _summed(deliveries)


def _standard_links(alert: Alert, settings: Settings) -> list[tuple[str, str | None]]:
    """The MLflow page of the version an alert is about, and the Model Ops page (when ``modelops_url`` is set)."""
    links: list[tuple[str, str | None]] = []
    if alert.model_version is not None:
        links.append(("model", mlflow_model_url(settings.resolved_tracking_uri(), settings.model_name,
                                                alert.model_version)))
    if settings.modelops_url:
        links.append(("modelops", modelops_page_url(settings.modelops_url, model_name=settings.model_name,
                                                    version=alert.model_version)))
    return links


def _claim_key(alert: Alert, route: Route, index: int) -> str:
    """The first channel (Slack or the log) claims the alert's own key, as before e-mail existed."""
    return alert.dedup_key if index == 0 else f"{alert.dedup_key} @{route.transport}"


def _deliver_on(route: Route, claim: Any, alert: Alert, settings: Settings, *, store: Any,
                context: Mapping[str, Any] | None, now: datetime) -> Delivery:
    """Deliver on one channel (unless its claim was refused) and record the outcome there."""
    from autoretrain.alerts.store import FAILED, LOGGED, SENT, SUPPRESSED

    if claim is not None and not claim.granted:
        log.info("alert %s suppressed on %s: last delivered %s, cool-down %d min", alert.dedup_key, route.transport,
                 claim.held_since, settings.alert_cooldown_minutes)
        delivery = Delivery(SUPPRESSED, route.transport, route.channel, alert.dedup_key)
    elif route.transport == "log":
        delivery = Delivery(LOGGED, route.transport, route.channel, alert.dedup_key)
    else:
        error = _deliver(route, alert, context or {}, sender=settings.alert_email_from)
        delivery = Delivery(FAILED if error else SENT, route.transport, route.channel, alert.dedup_key, error)
        if error and claim is not None:  # nobody was told here: the next attempt may send
            _guard(lambda: store.release(claim), "release")
    if store is None:
        return delivery
    ids = context_ids(context)
    alert_id = _guard(lambda: store.record(
        created_at=now, kind=alert.kind, severity=alert.severity, dedup_key=alert.dedup_key,
        status=delivery.status, transport=route.transport, channel=(route.channel or None) and route.channel[:200],
        title=alert.title, message=alert.text, error=delivery.error, **ids), "write")
    return replace(delivery, alert_id=alert_id)


def _summed(deliveries: list[Delivery]) -> Delivery:
    first = deliveries[0]
    status = min((d.status for d in deliveries), key=_PRECEDENCE.index)
    errors = "; ".join(f"{d.transport}: {d.error}" for d in deliveries if d.error) or None
    return Delivery(status, "+".join(d.transport for d in deliveries), first.channel, first.dedup_key, errors,
                    first.alert_id, tuple(deliveries))


def _deliver(route: Route, alert: Alert, context: Mapping[str, Any], *, sender: str = "") -> str | None:
    """Post through the provider's notifier; the error text when the channel refused or was unreachable."""
    try:
        # notify(), not __call__: the text may hold "{{" from data, which must not be rendered as Jinja
        _notifier(route, alert, sender=sender).notify(dict(context))
    except Exception as err:  # noqa: BLE001 - any Slack/SMTP/connection failure must not fail the pipeline
        error = redact(f"{type(err).__name__}: {err}")[:1000]
        log.warning("alert %s could not be sent (%s %s): %s", alert.dedup_key, route.transport, route.conn_id, error)
        return error
    return None


def _notifier(route: Route, alert: Alert, *, sender: str = "") -> Any:
    if route.conn_id is None:  # routes_for names the connection of every transport but the log
        raise ValueError(f"alert route {route.transport} has no connection id")
    if route.transport == "email":
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        from autoretrain.alerts.email import email_html, email_subject

        recipients = [r.strip() for r in (route.channel or "").split(",") if r.strip()]
        return SmtpNotifier(to=recipients, from_email=sender or None, subject=email_subject(alert),
                            html_content=email_html(alert), smtp_conn_id=route.conn_id)
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
