"""``autoretrain maintenance purge [--dry-run]``: the ``maintenance`` DAG's purge from the shell.

Purges prediction-log and feedback rows past ``retention_days`` (never a running canary's, nor a
prediction whose feedback is recent), redacts texts older than ``redact_after_days``, and
deletes old snapshots and validation reports (``--rows-only`` skips those, and MLflow with them).
Prints what it did as JSON; ``--dry-run`` only counts.

Wire it into ``autoretrain.cli.main.build_parser`` with ``maintenance_cli.add_commands(sub)``.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from autoretrain.config import load_settings


def add_commands(sub: Any) -> None:
    """Add ``maintenance`` and its ``purge`` sub-command to the ``autoretrain`` sub-command parsers."""
    parser = sub.add_parser("maintenance", help="retention: purge old rows, redact old texts, delete old snapshots")
    commands = parser.add_subparsers(dest="maintenance_command", required=True, metavar="{purge}")
    purge = commands.add_parser("purge", help="purge what is past retention (see `autoretrain maintenance purge -h`)")
    purge.add_argument("--dry-run", action="store_true", help="count what would go; change nothing")
    purge.add_argument("--rows-only", action="store_true", help="only the database (no snapshots, no MLflow)")
    purge.set_defaults(func=cmd_purge)


def cmd_purge(args: argparse.Namespace) -> int:
    """Run the purge now; print the rows, texts, snapshots and reports it touched."""
    from autoretrain.maintenance.retention import purge_database

    settings = load_settings(args.config).with_overrides({"tracking_uri": args.tracking_uri,
                                                          "model_name": args.model_name})
    now = datetime.now(UTC)  # wall clock on purpose: retention is about today
    out: dict[str, Any] = {"rows": purge_database(settings, now=now, dry_run=args.dry_run).as_dict()}
    if not args.rows_only:
        from autoretrain.maintenance.artifacts import purge_store

        out["artifacts"] = purge_store(settings, now=now, dry_run=args.dry_run)
    print(json.dumps(out, indent=2))
    return 0
