"""``autoretrain promote | rollback | audit``: the rollout steps of the DAGs, from the shell.

    autoretrain promote [VERSION] [--reason R] [--force] [--dry-run]   compare VERSION (default: the
        challenger) with the champion on VERSION's hold-out; promote it when the decision says so
        (refused with promotion_mode=approve unless --dry-run: the DAG's approval gate promotes)
    autoretrain rollback [--to VERSION] --reason R                      champion back to `previous`
    autoretrain audit [--alias A] [--limit N]                           the recorded alias moves
    autoretrain audit reconcile        finish crashed moves; record and alert moves made outside AutoRetrain

Each prints JSON on stdout. Exit codes: 0 done (promoted, rolled back), 1 rejected by the
comparison, 2 a usage, settings or registry error, 75 a transient fault (MLflow or the database
away: try again); errors are mapped to codes once, in :func:`autoretrain.cli.main.main`. Alias
moves are recorded with the actor ``cli:<user>@<host>`` and ``--run-id`` (default: a timestamp);
running the same command again with the same ``--run-id`` replays the recorded move instead of
making a second one.

Wire it into ``autoretrain.cli.main.build_parser`` with ``promotion_cli.add_commands(sub)``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import socket
import sys
import time
from datetime import UTC, datetime
from typing import Any

from autoretrain import lineage
from autoretrain.config import Settings, load_settings
from autoretrain.errors import EXIT_CHECK_FAILED, AutoRetrainError
from autoretrain.promotion.payloads import AuditIds
from autoretrain.registry import RegistryError

log = logging.getLogger(__name__)


class NotTrainedHere(RegistryError):
    """A version that AutoRetrain did not train: it has no hold-out to be compared on."""


class ApprovalRequired(AutoRetrainError):
    """``promotion_mode=approve``: the shell may compare, but only the rollout DAG's approval gate promotes."""


def add_commands(sub: Any) -> None:
    """Add ``promote``, ``rollback`` and ``audit`` to the ``autoretrain`` sub-command parsers."""
    promote = sub.add_parser("promote", help="compare a version with the champion and promote it if it wins")
    promote.add_argument("version", nargs="?", default=None, help="version number (default: the challenger alias)")
    promote.add_argument("--reason", default="promotion requested from the command line")
    promote.add_argument("--force", action="store_true",
                         help="waive only min_improvement: gates and significance still apply")
    promote.add_argument("--dry-run", action="store_true", help="print the decision, move nothing")
    promote.add_argument("--run-id", default=None, help="idempotency key of the alias moves")
    promote.set_defaults(func=cmd_promote)

    rollback = sub.add_parser("rollback", help="put the champion back on the previous version, in one step")
    rollback.add_argument("--to", dest="to_version", default=None, help="version to restore (default: previous)")
    rollback.add_argument("--reason", required=True, help="why (recorded with the alias move)")
    rollback.add_argument("--run-id", default=None, help="idempotency key of the alias move")
    rollback.set_defaults(func=cmd_rollback)

    history = sub.add_parser("audit", help="recorded alias moves, newest first (`audit reconcile`: check MLflow)")
    history.add_argument("what", nargs="?", choices=["history", "reconcile"], default="history",
                         help="history (default) or reconcile: compare MLflow's aliases with the audit; exit 1 "
                              "when an alias was moved outside AutoRetrain")
    history.add_argument("--alias", default=None, help="only this alias (champion, challenger, previous)")
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--run-id", default=None, help="reconcile: the run id its audit rows carry")
    history.set_defaults(func=cmd_audit)


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None)).with_overrides(
        {"tracking_uri": getattr(args, "tracking_uri", None), "model_name": getattr(args, "model_name", None)})


def _ids(args: argparse.Namespace, command: str) -> AuditIds:
    run_id = args.run_id or time.strftime(f"cli/{command}__%Y-%m-%dT%H:%M:%S")
    return {"run_id": run_id, "actor": f"cli:{getpass.getuser()}@{socket.gethostname()}"}


def _print(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def cmd_promote(args: argparse.Namespace) -> int:
    """Compare, then promote (no canary from the shell: run the DAG for a canary rollout)."""
    from autoretrain import registry, tracking
    from autoretrain.promotion import rollout

    settings = _settings(args)
    if settings.promotion_mode == "approve" and not args.dry_run:
        raise ApprovalRequired(f"promotion_mode='approve': a person approves every promotion, so this command "
                               f"compares only (--dry-run); roll the version out with the retrain_compare_promote "
                               f"DAG (conf {{\"version\": \"{args.version or '<N>'}\"}})")
    client = tracking.client_for(settings)
    ref = registry.get_version(client, settings.model_name, args.version or registry.CHALLENGER)
    parent = ref.tags.get(lineage.PARENT_RUN_ID)
    if not parent:
        raise NotTrainedHere(f"version {ref.version} has no {lineage.PARENT_RUN_ID} tag: it was not trained by "
                             "AutoRetrain, so there is no hold-out to compare on")
    decision = rollout.compare_challenger(settings, parent_run_id=parent, registered=ref.as_dict(), force=args.force)
    result: dict[str, Any] = {"decision": {"promote": decision["promote"], "reasons": decision["reasons"],
                                           "version": decision["version"],
                                           "champion_version": decision["champion_version"]}}
    if decision["promote"] and not args.dry_run:
        reasons = [f"cli: {args.reason}", *decision["reasons"]]
        result["promotion"] = rollout.promote_challenger(settings, version=ref.version, reasons=reasons,
                                                         **_ids(args, "promote"))
    _print(result)
    return 0 if decision["promote"] else EXIT_CHECK_FAILED


def cmd_rollback(args: argparse.Namespace) -> int:
    """Champion back to ``previous`` (or ``--to``), recorded."""
    from autoretrain.promotion import rollout

    result = rollout.rollback(_settings(args), reason=args.reason, to_version=args.to_version,
                              **_ids(args, "rollback"))
    _print(result)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Print the alias audit of the model, newest first (``reconcile``: check MLflow against it)."""
    from autoretrain.audit import aliases

    if args.what == "reconcile":
        return cmd_reconcile(args)
    from autoretrain.db.engine import database_url, redacted

    settings = _settings(args)
    url = redacted(database_url(settings))
    with aliases.engine_for(settings) as engine:
        records = aliases.history(engine, settings.model_name, alias=args.alias, limit=args.limit)
    if not records:  # say which database was read (see cmd_models)
        log.warning("no alias moves of %s in %s (set AUTORETRAIN_DATABASE_URL for another database; `make demo` "
                    "and `make up` use this checkout's)", settings.model_name, url)
    _print({"model": settings.model_name, "database": url, "moves": [
        {k: r.as_dict()[k] for k in ("created_at", "alias", "action", "from_version", "to_version", "actor",
                                     "run_id", "reason")} for r in records]})
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Settle pending moves; an alias moved outside AutoRetrain is recorded, alerted (critical), exit 1."""
    from autoretrain.alerts.messages import Alert
    from autoretrain.audit.reconcile import reconcile_model

    settings = _settings(args)

    def notify(alert: Alert) -> int | None:  # no Airflow here: the log and the alert table
        from autoretrain.alerts.store import LOGGED, AlertStore
        from autoretrain.db.engine import database_url

        log.error("alert [%s] %s", alert.severity, alert.text)
        with AlertStore(database_url(settings)) as store:
            return store.record(created_at=datetime.now(UTC), kind=alert.kind, severity=alert.severity,
                                dedup_key=alert.dedup_key, status=LOGGED, transport="log", title=alert.title,
                                message=alert.text)

    result = reconcile_model(settings, notify=notify, **_ids(args, "reconcile"))
    _print(result.as_dict())
    return 0 if result.in_agreement else EXIT_CHECK_FAILED
