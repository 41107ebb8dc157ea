"""The reconcile task: thin over :func:`autoretrain.audit.reconcile.reconcile_model`, alerts through ``send_alert``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context

from autoretrain.airflow.context import airflow_url, audit_ids, settings_for
from autoretrain.airflow.errors import maps_errors

if TYPE_CHECKING:  # the reconciler imports mlflow: not at DAG parse time
    from autoretrain.audit.reconcile import ReconciliationRecord


class ReconcileAliasesOperator(BaseOperator):
    """Settle crashed alias moves; record and alert (critical) every alias moved outside AutoRetrain.

    The task succeeds when it found an external move (the alert and the ``external`` audit row are
    its output); it fails only when MLflow or the database cannot be read (and is retried).
    """

    ui_color = "#f3e5f5"

    @maps_errors
    def execute(self, context: Context) -> ReconciliationRecord:
        from autoretrain.airflow.alerting import send_alert
        from autoretrain.alerts.messages import Alert
        from autoretrain.audit.reconcile import reconcile_model

        settings = settings_for(context)

        def notify(alert: Alert) -> Any:
            return send_alert(alert, settings, context=context).as_dict()

        result = reconcile_model(settings, **audit_ids(context), notify=notify, airflow_url=airflow_url(context))
        for move_id in result.finished:
            self.log.warning("finished the pending alias move %s", move_id)
        for change in result.external:
            self.log.error("external alias move: %s %s -> %s", change["alias"], change["from_version"],
                           change["to_version"])
        return result.as_dict()
