"""``autoretrain db upgrade | downgrade | current | history``: AutoRetrain's database migrations.

    autoretrain db upgrade [REVISION]     migrate up to REVISION (default: head, what this code needs)
    autoretrain db downgrade REVISION     migrate down to REVISION (``-1``: one step, ``base``: no tables)
    autoretrain db current                the revision the database is at, and whether it is head
    autoretrain db history                every revision, oldest first
    autoretrain db grant ROLE             Postgres: the services' rights for ROLE (run as the tables' owner)

Each works on the settings' ``database_url`` (empty: SQLite under ``state_dir``) unless
``--database-url`` is given, and prints the URL it worked on (password masked) with the
revision. Exit codes: 0 done (``current``: at head), 1 ``current`` found the database behind or
ahead, 2 an unknown revision or bad settings, 75 the database could not be reached.

Wire it into ``autoretrain.cli.main.build_parser`` with ``db_cli.add_commands(sub)``.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import sqlalchemy as sa

from autoretrain.config import load_settings
from autoretrain.errors import EXIT_CHECK_FAILED, EXIT_TEMPORARY, AutoRetrainError

log = logging.getLogger(__name__)


def _url_option() -> argparse.ArgumentParser:
    """``--database-url`` after the sub-command too (SUPPRESS: one given before it is not reset)."""
    option = argparse.ArgumentParser(add_help=False)
    option.add_argument("--database-url", default=argparse.SUPPRESS,
                        help="SQLAlchemy URL (default: settings database_url, $AUTORETRAIN_DATABASE_URL)")
    return option


def add_commands(sub: Any) -> None:
    """Add ``db`` and its four sub-commands to the ``autoretrain`` sub-command parsers."""
    parser = sub.add_parser("db", help="migrate AutoRetrain's database (upgrade, downgrade, current, history)")
    parser.add_argument("--database-url", default=None,
                        help="SQLAlchemy URL (default: settings database_url, $AUTORETRAIN_DATABASE_URL)")
    commands = parser.add_subparsers(dest="db_command", required=True,
                                     metavar="{upgrade,downgrade,current,history,grant}")

    def add(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[_url_option()], **kwargs)

    upgrade = add("upgrade", help="migrate up to REVISION (default: head)")
    upgrade.add_argument("revision", nargs="?", default="head", help="revision id, +N, or head (default)")
    upgrade.set_defaults(func=cmd_upgrade)
    downgrade = add("downgrade", help="migrate down to REVISION (-1: one step, base: no tables)")
    downgrade.add_argument("revision", help="revision id, -N, or base")
    downgrade.set_defaults(func=cmd_downgrade)
    add("current", help="the revision the database is at").set_defaults(func=cmd_current)
    add("history", help="every revision, oldest first").set_defaults(func=cmd_history)
    grant = add("grant", help="Postgres: give ROLE the services' rights (no UPDATE/DELETE/TRUNCATE of the audit)")
    grant.add_argument("role", help="the services' login role (deploy/postgres/roles.sql creates it)")
    grant.set_defaults(func=cmd_grant)


def cmd_upgrade(args: argparse.Namespace) -> int:
    """Migrate the database up to ``args.revision``."""
    from autoretrain.db import migrate

    return _on_database(args, lambda url: _moved(url, migrate.upgrade(url, args.revision)))


def cmd_downgrade(args: argparse.Namespace) -> int:
    """Migrate the database down to ``args.revision``."""
    from autoretrain.db import migrate

    return _on_database(args, lambda url: _moved(url, migrate.downgrade(url, args.revision)))


def cmd_grant(args: argparse.Namespace) -> int:
    """Grant the services' role its rights on the migrated database (as the tables' owner)."""
    from autoretrain.db import roles
    from autoretrain.db.engine import make_engine, redacted
    from autoretrain.db.migrate import check_schema

    def grant(url: str) -> int:
        engine = make_engine(url)
        try:
            check_schema(engine)  # grants name every table of head: migrate first
            done = roles.grant_service(engine, args.role)
        finally:
            engine.dispose()
        print(f"{redacted(url)}: {args.role} granted ({len(done)} statements; alias_audit: SELECT, INSERT only)")
        return 0

    return _on_database(args, grant)


def cmd_current(args: argparse.Namespace) -> int:
    """Print the database's revision; exit 1 when it is not the head this code needs."""
    from autoretrain.db import migrate
    from autoretrain.db.engine import redacted

    def show(url: str) -> int:
        found, head = migrate.current(url), migrate.head()
        state = "head" if found == head else f"this code needs {head}: run `autoretrain db upgrade`"
        print(f"{redacted(url)}: {found or 'none'} ({state})")
        return 0 if found == head else EXIT_CHECK_FAILED

    return _on_database(args, show)


def cmd_history(args: argparse.Namespace) -> int:
    """Print every revision, oldest first (no database needed)."""
    from autoretrain.db import migrate

    for revision in migrate.history():
        mark = " (head)" if revision.is_head else ""
        print(f"{revision.down_revision or 'base'} -> {revision.revision}{mark}: {revision.doc}")
    return 0


def _moved(url: str, migrated: Any) -> int:
    from autoretrain.db.engine import redacted

    before, after = migrated.before or "none", migrated.after or "none"
    change = f"{before} -> {after}" if before != after else f"already at {after}"
    print(f"{redacted(url)}: {change}")
    return 0


def _on_database(args: argparse.Namespace, work: Any) -> int:
    """``work(url)`` on the database the options name; errors become one line and an exit code."""
    from autoretrain.db.engine import database_url, redacted

    url = args.database_url or database_url(load_settings(getattr(args, "config", None)))
    try:
        return int(work(url))
    except AutoRetrainError as err:
        log.error("%s", err)
        return err.exit_code
    except sa.exc.SQLAlchemyError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        log.error("database %s: %s (is it reachable with this URL?)", redacted(url), first)
        return EXIT_TEMPORARY
