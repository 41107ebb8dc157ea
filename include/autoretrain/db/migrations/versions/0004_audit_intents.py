"""Write-ahead intents of alias moves: ``alias_intents`` (a move is committed here before MLflow is touched).

Every alias move first commits its planned changes as a ``pending`` intent, then changes MLflow,
then writes the ``alias_audit`` rows and marks the intent ``completed`` in one transaction. A
crash in between leaves a ``pending`` intent that the next move of the model, a retry or
``autoretrain audit reconcile`` finishes from MLflow's actual aliases. ``alias_audit`` itself
stays append-only (this revision does not touch it); the intent's status is the only column
that is ever updated, and only in this table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alias_intents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("move_id", sa.String(36), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_name", sa.String(256), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(250), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("idempotency_key", sa.String(600), nullable=False),
        sa.Column("changes", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_alias_intents_idempotency_key", "alias_intents", ["idempotency_key"])
    op.create_index("ix_alias_intents_model_status", "alias_intents", ["model_name", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_alias_intents_model_status", table_name="alias_intents")
    op.drop_index("ix_alias_intents_idempotency_key", table_name="alias_intents")
    op.drop_table("alias_intents")
