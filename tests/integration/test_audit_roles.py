"""The services' database role cannot rewrite the alias audit (real Postgres, deploy/postgres/autoretrain-roles.sql).

Each test makes a unique database and two unique roles with the same script compose runs at first
start (roles are global to the Postgres cluster: they are dropped at the end), migrates as the
owner, grants with ``autoretrain db grant``, then attacks the audit as the service role.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from autoretrain import registry
from autoretrain.audit import aliases, intents
from autoretrain.db import migrate
from autoretrain.db.engine import make_engine
from tests.conftest import PG_HOST, ROOT, _admin_execute, create_database
from tests.unit.audit.test_aliases import FakeRegistry

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


@dataclass
class Roles:
    database: str
    owner_url: str
    service_url: str
    owner: str
    service: str
    passwords: tuple[str, str]

    def run_script(self) -> None:
        """deploy/postgres/autoretrain-roles.sql with these names (as 20-roles.sh runs it)."""
        _roles_sql(self.database, self.owner, self.passwords[0], self.service, self.passwords[1])


def _roles_sql(database: str, owner: str, owner_password: str, service: str, service_password: str) -> None:
    """deploy/postgres/20-roles.sh as an entrypoint runs it (POSTGRES_USER a superuser)."""
    env = {"PATH": os.environ["PATH"], "PGHOST": PG_HOST, "POSTGRES_USER": "postgres", "DB_NAME": database,
           "DB_OWNER_USER": owner, "DB_OWNER_PASSWORD": owner_password, "DB_SERVICE_USER": service,
           "DB_SERVICE_PASSWORD": service_password,
           "ROLES_SQL": str(ROOT / "deploy" / "postgres" / "autoretrain-roles.sql")}
    done = subprocess.run([str(ROOT / "deploy" / "postgres" / "20-roles.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def roles() -> Iterator[Roles]:
    tag = uuid.uuid4().hex[:8]
    database, owner, service = f"autoretrain_test_roles_{tag}", f"ar_test_owner_{tag}", f"ar_test_service_{tag}"
    create_database(database)
    owner_pw, service_pw = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    made = Roles(database=database, owner=owner, service=service, passwords=(owner_pw, service_pw),
                 owner_url=f"postgresql://{owner}:{owner_pw}@{PG_HOST}:5432/{database}",
                 service_url=f"postgresql://{service}:{service_pw}@{PG_HOST}:5432/{database}")
    try:
        made.run_script()
        yield made
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        for role in (service, owner):
            _admin_execute(f'DROP ROLE IF EXISTS "{role}"')


def _grant(url: str, role: str) -> None:
    done = subprocess.run([str(BIN / "autoretrain"), "db", "--database-url", url, "grant", role],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "alias_audit: SELECT, INSERT only" in done.stdout


ATTACKS = {
    "TRUNCATE alias_audit": "permission denied",
    "DELETE FROM alias_audit": "permission denied",
    "UPDATE alias_audit SET reason = 'edited'": "permission denied",
    "ALTER TABLE alias_audit DISABLE TRIGGER alias_audit_append_only": "must be owner",
    "ALTER TABLE alias_audit DISABLE TRIGGER ALL": "must be owner",
    "DROP TRIGGER alias_audit_append_only ON alias_audit": "must be owner",
    "CREATE TRIGGER t BEFORE INSERT ON alias_audit FOR EACH ROW EXECUTE FUNCTION alias_audit_append_only()":
        "permission denied",
    "DROP TABLE alias_audit": "must be owner",
    "CREATE OR REPLACE FUNCTION alias_audit_append_only() RETURNS trigger AS $$ BEGIN RETURN NEW; END; $$ "
    "LANGUAGE plpgsql": "permission denied for schema public",
    "DELETE FROM alias_intents": "permission denied",
    "TRUNCATE alias_intents": "permission denied",
    "UPDATE alias_intents SET changes = '[]'": "permission denied",
    "CREATE TABLE sneaky (id int)": "permission denied",
}


def _attack_and_check(service_url: str) -> str:
    """Every attack refused; INSERT works; a real move (intent, MLflow, audit) works as the service."""
    engine = make_engine(service_url)
    client = FakeRegistry(aliases={})
    try:
        registry.move_alias(client, engine, name="sms", alias="champion", version="1", actor="test",
                            reason="first", run_id="run-1", action="assign")
        before = len(aliases.history(engine, "sms"))
        refused = {}
        for statement, expected in ATTACKS.items():
            with pytest.raises(sa.exc.ProgrammingError) as err, engine.begin() as conn:
                conn.execute(sa.text(statement))
            refused[statement] = expected in str(err.value.orig)
        assert refused == dict.fromkeys(ATTACKS, True), refused
        registry.move_alias(client, engine, name="sms", alias="champion", version="2", actor="test",
                            reason="second", run_id="run-2", action="promote")
        history = aliases.history(engine, "sms")
        assert len(history) == before + 2 and [r.reason for r in history][-1] == "first"
        assert [i.status for i in intents.history(engine, "sms")] == ["completed", "completed"]
        with engine.connect() as conn:
            owner, disabled = conn.execute(sa.text(
                "SELECT pg_get_userbyid(c.relowner), t.tgenabled FROM pg_class c JOIN pg_trigger t "
                "ON t.tgrelid = c.oid WHERE c.relname = 'alias_audit' AND t.tgname = 'alias_audit_append_only'")).one()
        assert disabled == "O"  # the trigger is still enabled
        return owner
    finally:
        engine.dispose()


def test_the_service_role_cannot_truncate_delete_update_or_disable_the_trigger(roles) -> None:
    migrate.upgrade(roles.owner_url)  # the migration role creates (and owns) every table
    _grant(roles.owner_url, roles.service)
    assert _attack_and_check(roles.service_url) == roles.owner


def test_an_existing_database_is_handed_to_the_owner_role(roles) -> None:
    """A deployment from before the roles: tables made by the superuser; roles.sql again, then the grant."""
    admin_url = f"postgresql://postgres@{PG_HOST}:5432/{roles.database}"
    migrate.upgrade(admin_url)
    roles.run_script()  # idempotent: the roles exist; the superuser's tables change hands
    engine = make_engine(admin_url)
    try:
        with engine.connect() as conn:
            owners = set(conn.execute(sa.text("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'"))
                         .scalars())
    finally:
        engine.dispose()
    assert owners == {roles.owner}
    _grant(roles.owner_url, roles.service)
    assert _attack_and_check(roles.service_url) == roles.owner
