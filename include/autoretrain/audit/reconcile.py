"""The reconciler: MLflow's aliases against the alias audit; a move made outside AutoRetrain is recorded and alerted.

:func:`reconcile` takes the model's lock, settles the pending intents of crashed moves
(:func:`autoretrain.registry.finish_intents`), then compares where ``champion``, ``challenger``
and ``previous`` point in MLflow with where the last audit row of each left them. A difference
is a move nobody recorded (MLflow's REST API, its UI, a script): it is appended to the audit as
``external`` and reported as a critical alert through ``notify``. Runs in the monitoring DAG
(:class:`autoretrain.airflow.audit.ReconcileAliasesOperator`) and as ``autoretrain audit reconcile``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypedDict

from mlflow.tracking import MlflowClient
from sqlalchemy.engine import Engine

from autoretrain import registry
from autoretrain.alerts.messages import Alert, external_alias_move_alert, mlflow_model_url
from autoretrain.audit import aliases
from autoretrain.config import Settings
from autoretrain.promotion.payloads import AliasChange

log = logging.getLogger(__name__)

#: the aliases AutoRetrain serves and moves (serving loads champion and challenger; rollback uses previous)
TRACKED: Final = (registry.CHAMPION, registry.CHALLENGER, registry.PREVIOUS)
EXTERNAL: Final = "external"
ACTOR: Final = "autoretrain.reconciler"


class ReconciliationRecord(TypedDict):
    """:meth:`Reconciliation.as_dict`: the XCom of the reconcile task and the CLI's output."""

    name: str
    aliases: dict[str, str | None]
    finished: list[str]
    external: list[AliasChange]
    alerts: list[Any]


@dataclass(frozen=True)
class Reconciliation:
    """What one reconciliation found: MLflow's aliases, the moves it finished, the external moves."""

    name: str
    aliases: dict[str, str | None]
    finished: tuple[str, ...] = ()  # move ids of pending intents settled now
    external: tuple[AliasChange, ...] = ()
    alerts: tuple[Any, ...] = field(default_factory=tuple)  # what notify returned per alert

    @property
    def in_agreement(self) -> bool:
        """True when MLflow held exactly what the audit recorded (nothing external found)."""
        return not self.external

    def as_dict(self) -> ReconciliationRecord:
        return {"name": self.name, "aliases": dict(self.aliases), "finished": list(self.finished),
                "external": [c.copy() for c in self.external], "alerts": list(self.alerts)}


def reconcile(client: MlflowClient, engine: Engine, *, name: str, run_id: str, actor: str = ACTOR,
              notify: Callable[[Alert], Any] | None = None, tracked: Sequence[str] = TRACKED,
              airflow_url: str | None = None, tracking_uri: str = "",
              at: datetime | None = None) -> Reconciliation:
    """Settle pending moves, then record (``external``) and alert every alias MLflow holds elsewhere than audited."""
    now = at or datetime.now(UTC)
    with aliases.model_lock(engine, name) as conn:
        finished = registry.finish_intents(client, conn, name)
        actual: dict[str, str | None] = {}
        for alias in tracked:
            ref = registry.alias_version(client, name, alias)
            actual[alias] = ref.version if ref else None
        audited = aliases.audited_state(conn, name, tracked)
        external = tuple(AliasChange(alias=a, from_version=audited[a], to_version=actual[a])
                         for a in tracked if actual[a] != audited[a])
        if external:
            move_id = str(uuid.uuid4())
            rows: list[dict[str, Any]] = [
                {"created_at": now, "move_id": move_id, "model_name": name, "alias": c["alias"], "action": EXTERNAL,
                 "from_version": c["from_version"], "to_version": c["to_version"], "actor": actor, "run_id": run_id,
                 "reason": "moved outside AutoRetrain (found by the reconciler)", "reasons": [], "metrics": {},
                 "idempotency_key": f"{EXTERNAL}|{move_id}|{c['alias']}"} for c in external]
            with conn.begin():
                aliases.insert(conn, rows)
    for change in external:
        log.error("alias %s@%s is on version %s in MLflow, but the audit last recorded %s: moved outside "
                  "AutoRetrain; recorded as %r", name, change["alias"], change["to_version"], change["from_version"],
                  EXTERNAL)
    sent: list[Any] = []
    if external and notify is not None:
        moved_to = next((c["to_version"] for c in external if c["to_version"]), None)
        mlflow_url = mlflow_model_url(tracking_uri, name, moved_to) if moved_to else None
        sent.append(notify(external_alias_move_alert(model_name=name, changes=external, run_id=run_id,
                                                     airflow_url=airflow_url, mlflow_url=mlflow_url)))
    return Reconciliation(name=name, aliases=actual, finished=tuple(m.move_id for m in finished),
                          external=external, alerts=tuple(sent))


def reconcile_model(settings: Settings, *, run_id: str, actor: str = ACTOR,
                    notify: Callable[[Alert], Any] | None = None, airflow_url: str | None = None) -> Reconciliation:
    """:func:`reconcile` for the settings' model, MLflow server and database."""
    from autoretrain import tracking

    client = tracking.client_for(settings)
    with aliases.engine_for(settings) as engine:
        return reconcile(client, engine, name=settings.model_name, run_id=run_id, actor=actor, notify=notify,
                         airflow_url=airflow_url, tracking_uri=settings.resolved_tracking_uri())
