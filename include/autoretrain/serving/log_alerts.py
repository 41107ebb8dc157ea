"""The prediction log's alert: warning when rows back up in the spool, critical when rows are dropped.

The prediction service has no Slack connection (delivery runs in Airflow): the alert goes to the
service log and to the alert table (``alert_log``, status ``logged``) when the database takes it,
with the same cool-down as every alert. Prometheus raises the same condition from the metrics
(``deploy/prometheus/alerts.yml``).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from autoretrain.alerts.messages import Alert, in_cooldown, prediction_log_alert
from autoretrain.alerts.store import LOGGED, AlertStore
from autoretrain.serving.log_writer import LogHealth, WriterStats

log = logging.getLogger(__name__)


def recorder(url: str, *, cooldown_minutes: int, spool: str) -> Callable[[LogHealth, WriterStats], None]:
    """The writer's ``on_alert``: build the alert, log it, record it in ``alert_log`` unless in cool-down."""
    service = f"prediction service {socket.gethostname()}:{os.getpid()}"

    def record(health: LogHealth, stats: WriterStats) -> None:
        if health.status == "ok":
            log.warning("prediction log: back to normal (%d rows in the spool)", stats.depth)
            return
        alert = prediction_log_alert(service=service, status=health.status, reasons=health.reasons,
                                     backlog_rows=stats.depth, spool=spool)
        log.warning("ALERT %s [%s]: %s", alert.kind, alert.severity, alert.text)
        _store(url, alert, timedelta(minutes=cooldown_minutes))

    return record


def _store(url: str, alert: Alert, cooldown: timedelta) -> None:
    now = datetime.now(UTC)
    try:
        with AlertStore(url) as store:
            if in_cooldown(store.last_delivered(alert.dedup_key), now, cooldown):
                return
            store.record(created_at=now, kind=alert.kind, severity=alert.severity, dedup_key=alert.dedup_key,
                         status=LOGGED, transport="log", title=alert.title, message=alert.text)
    except (sa.exc.SQLAlchemyError, OSError) as err:  # the database may well be the trouble: the log has it
        log.warning("prediction log: the alert could not be recorded in alert_log: %s", err)
