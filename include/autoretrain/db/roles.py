"""The services' database role on Postgres: rows yes, history no (``autoretrain db grant <role>``).

``deploy/postgres/roles.sql`` creates two roles: a migration role that owns every table (it runs
``autoretrain db upgrade``), and the role the prediction service and the Airflow tasks log in
with. :func:`grant_service`, run by the owner after every upgrade, gives that role exactly what
the code needs and nothing more:

* the working tables (:data:`WORKING`): SELECT, INSERT, UPDATE, DELETE;
* ``alias_audit``: SELECT and INSERT only (the append-only trigger refuses UPDATE and DELETE even to
  the owner; the service role cannot TRUNCATE it, create triggers on it, or disable its trigger,
  which needs ownership);
* ``alias_intents``: SELECT, INSERT, and UPDATE of ``status``, ``completed_at``, ``detail`` only;
* the version table: SELECT (the schema check); the id sequences: USAGE, SELECT.

Everything is revoked first, so running it again leaves exactly these grants.
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from autoretrain.db import schema
from autoretrain.db.migrate import VERSION_TABLE
from autoretrain.errors import AutoRetrainError

APPEND_ONLY: Final = "alias_audit"
INTENTS: Final = "alias_intents"
INTENT_COLUMNS: Final = ("status", "completed_at", "detail")
WORKING: Final = tuple(sorted(set(schema.metadata.tables) - {APPEND_ONLY, INTENTS}))


class GrantError(AutoRetrainError):
    """The grants could not be made (not Postgres, unknown role, or not run by the tables' owner)."""


def statements(role: str) -> list[str]:
    """The GRANT/REVOKE statements that give ``role`` the services' rights (quoted identifiers)."""
    who = _quote(role)
    tables = [*sorted(schema.metadata.tables), VERSION_TABLE]
    out = [f"REVOKE ALL ON TABLE {', '.join(_quote(t) for t in tables)} FROM {who}"]
    out += [f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {_quote(t)} TO {who}" for t in WORKING]
    out += [f"GRANT SELECT, INSERT ON TABLE {_quote(APPEND_ONLY)} TO {who}",
            f"GRANT SELECT, INSERT ON TABLE {_quote(INTENTS)} TO {who}",
            f"GRANT UPDATE ({', '.join(INTENT_COLUMNS)}) ON TABLE {_quote(INTENTS)} TO {who}",
            f"GRANT SELECT ON TABLE {_quote(VERSION_TABLE)} TO {who}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {who}"]
    return out


def grant_service(engine: Engine, role: str) -> list[str]:
    """Give ``role`` the services' rights on the migrated database at ``engine``; the statements run."""
    if engine.dialect.name != "postgresql":
        raise GrantError(f"database roles are a Postgres feature; {engine.dialect.name} has none to grant")
    todo = statements(role)
    with engine.begin() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar():
            raise GrantError(f"role {role!r} does not exist; create it with deploy/postgres/roles.sql first")
        try:
            for statement in todo:
                conn.execute(sa.text(statement))
        except sa.exc.ProgrammingError as err:
            raise GrantError(f"granting {role!r} failed: {err.orig}; run it as the tables' owner (the migration "
                             "role) after `autoretrain db upgrade`") from err
    return todo


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
