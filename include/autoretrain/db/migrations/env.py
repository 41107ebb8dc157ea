"""Alembic's environment for AutoRetrain: migrate the connection :mod:`autoretrain.db.migrate` opened.

Online only, one transaction per revision (a revision may leave it, e.g. for ``CREATE INDEX
CONCURRENTLY`` on Postgres). Autogenerate compares :data:`autoretrain.db.schema.metadata` with
AutoRetrain's tables only and writes batch operations, which SQLite needs for most ALTERs.
"""

from __future__ import annotations

from alembic import context

from autoretrain.db import schema

config = context.config
connection = config.attributes.get("connection")
if context.is_offline_mode() or connection is None:
    raise RuntimeError("AutoRetrain's migrations run online through autoretrain.db.migrate (`autoretrain db "
                       "upgrade`), on the connection it opens; the alembic command line and --sql are not set up")

context.configure(
    connection=connection,
    target_metadata=schema.metadata,
    version_table=config.get_main_option("version_table"),
    transaction_per_migration=True,
    render_as_batch=True,
    compare_type=True,
    include_name=lambda name, kind, _parents: kind != "table" or schema.owns_table(name or ""),
)
with context.begin_transaction():
    context.run_migrations()
