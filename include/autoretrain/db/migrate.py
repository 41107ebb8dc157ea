"""Alembic, run from code: upgrade, downgrade, current, history, head, and the schema check.

There is no ``alembic.ini``: :func:`config` builds the configuration, with ``script_location`` in
this package (``db/migrations``) and AutoRetrain's own version table, so the database can be
shared with MLflow's or Airflow's alembic tables. Each revision runs in its own transaction; on
Postgres an advisory lock makes two upgrades started at once (an init job and a developer) run one
after the other.

Processes that use the database never create tables: they call :func:`check_schema` (or open the
engine with :func:`checked_engine`), which raises :class:`SchemaOutOfDate` with one line saying
what to run when the database is not at :func:`head`. A successful check is remembered per URL
for the life of the process, so hot paths ask alembic once.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine

from autoretrain.db import schema
from autoretrain.db.engine import make_engine, redacted
from autoretrain.errors import AutoRetrainError

log = logging.getLogger(__name__)

VERSION_TABLE = "autoretrain_alembic_version"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
UPGRADE_HINT = "run `autoretrain db upgrade`"
LOCK_TIMEOUT_SECONDS, LOCK_POLL_SECONDS = 600, 0.5
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"autoretrain:db:migrate").digest()[:8], "big", signed=True)

_checked: set[str] = set()  # URLs (with password) found at head by this process
_checked_lock = threading.Lock()


class SchemaOutOfDate(AutoRetrainError):
    """The database is not at the revision this code needs; ``autoretrain db upgrade`` brings it there."""


class MigrationError(AutoRetrainError):
    """A migration command could not run: an unknown revision, or a step the database refused."""


@dataclass(frozen=True)
class Migrated:
    """The revision a database was at before a migration command and after it (None: never migrated)."""

    before: str | None
    after: str | None


@dataclass(frozen=True)
class Revision:
    """One migration script: its id, the one before it, and the first line of its docstring."""

    revision: str
    down_revision: str | None
    doc: str
    is_head: bool


# ------------------------------------------------------------------------------------- alembic
def config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, built in code (``connection``: the one env.py migrates)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    cfg.set_main_option("version_table", VERSION_TABLE)
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")  # versions/0003_<message>.py
    cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    """The revision this code needs (the newest script in ``migrations/versions``)."""
    revision = _scripts().get_current_head()
    if revision is None:
        raise MigrationError(f"no migration script in {MIGRATIONS / 'versions'}: the package is incomplete")
    return revision


def history() -> list[Revision]:
    """Every revision, oldest first."""
    newest = head()
    scripts = reversed(list(_scripts().walk_revisions()))
    return [Revision(revision=s.revision, down_revision=s.down_revision if isinstance(s.down_revision, str) else None,
                     doc=(s.doc or "").strip().splitlines()[0] if s.doc else "", is_head=s.revision == newest)
            for s in scripts]


def current(url: str) -> str | None:
    """The revision the database at ``url`` is at (None: never migrated)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return _revision_of(conn)
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> Migrated:
    """Migrate the database at ``url`` up to ``revision`` (default: :func:`head`)."""
    return _run(url, lambda cfg: command.upgrade(cfg, revision), f"upgrade to {revision}")


def downgrade(url: str, revision: str) -> Migrated:
    """Migrate the database at ``url`` down to ``revision`` (``-1``: one step, ``base``: nothing left)."""
    return _run(url, lambda cfg: command.downgrade(cfg, revision), f"downgrade to {revision}")


def _run(url: str, step: Callable[[Config], None], what: str) -> Migrated:
    engine = make_engine(url)
    try:
        with engine.connect() as conn, _serialized(conn):
            before = _revision_of(conn)  # under the lock: another upgrade may have just finished
            step(config(conn))
            after = _revision_of(conn)
        _forget(engine)
        return Migrated(before=before, after=after)
    except CommandError as err:
        raise MigrationError(f"{what} of database {redacted(url)} failed: {err} "
                             "(the revisions: `autoretrain db history`)") from err
    finally:
        engine.dispose()  # also ends the session that holds the Postgres advisory lock


@contextmanager
def _serialized(conn: Connection) -> Generator[None, None, None]:
    """Hold a session-level advisory lock on Postgres (released when the connection closes).

    Polled with ``pg_try_advisory_lock``, never waited for inside ``pg_advisory_lock``: a session
    waiting there holds a snapshot, which the other upgrade's ``CREATE INDEX CONCURRENTLY`` waits
    for in turn (a deadlock).
    """
    if conn.dialect.name == "postgresql":
        deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
        while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": _LOCK_KEY}).scalar():
            conn.commit()
            if time.monotonic() > deadline:
                raise MigrationError(f"another migration of {redacted(conn.engine.url)} has held its lock for "
                                     f"{LOCK_TIMEOUT_SECONDS} s; wait for it (or end it) and run this again")
            log.info("waiting for another migration of %s to finish", redacted(conn.engine.url))
            time.sleep(LOCK_POLL_SECONDS)
        conn.commit()  # alembic must get the connection outside a transaction (one per revision)
    yield


def _revision_of(conn: Connection) -> str | None:
    heads = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_heads()
    if conn.in_transaction():
        conn.commit()  # the SELECT autobegan one; leave the connection as it was
    return ",".join(heads) if heads else None


# -------------------------------------------------------------------------------- the check
def check_schema(engine: Engine) -> None:
    """Refuse a database that is not at :func:`head` with :class:`SchemaOutOfDate` (one line).

    A database found at head is remembered for this process: later calls do not query it again.
    """
    key = engine.url.render_as_string(hide_password=False)
    if key in _checked:
        return
    wanted = head()
    with engine.connect() as conn:
        found = _revision_of(conn)
        if found == wanted:
            with _checked_lock:
                _checked.add(key)
            return
        raise SchemaOutOfDate(_out_of_date(conn, engine.url, found, wanted))


def checked_engine(url: str) -> Engine:
    """An engine on ``url`` once :func:`check_schema` accepts it (disposed again when it refuses)."""
    engine = make_engine(url)
    try:
        check_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _out_of_date(conn: Connection, url: sa.URL, found: str | None, wanted: str) -> str:
    where = f"database {redacted(url)}"
    if found is None:
        tables = [name for name in sa.inspect(conn).get_table_names() if schema.owns_table(name)]
        state = "tables made before migrations" if tables else "empty"
        return f"{where} is at revision none ({state}), this code needs {wanted}: {UPGRADE_HINT}"
    known = {r.revision for r in history()}
    if found in known:
        return f"{where} is at revision {found}, this code needs {wanted}: {UPGRADE_HINT}"
    return (f"{where} is at revision {found}, which this code does not know (it needs {wanted}): run the newer "
            f"AutoRetrain that migrated it, or downgrade the database to {wanted} with that version "
            f"(`autoretrain db downgrade {wanted}`)")


def _forget(engine: Engine) -> None:
    with _checked_lock:
        _checked.discard(engine.url.render_as_string(hide_password=False))


def schema_differences(engine: Engine) -> list[Any]:
    """What alembic's autogenerate finds between :data:`schema.metadata` and the database (AutoRetrain's tables)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True, "include_name": lambda name, kind, _parents: kind != "table"
            or schema.owns_table(name)})
        return compare_metadata(context, schema.metadata)
