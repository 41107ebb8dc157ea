"""The table ``model_artifacts``: each model version AutoRetrain registered, its digest and HMAC.

The SHA-256 that loads were checked against was an MLflow tag, writable by anyone who can write
to MLflow. This table, in AutoRetrain's own database, is the authority instead (ADR 0007): a
version without a row never loads. Nothing is backfilled from MLflow (its tags are what an
attacker could write): versions registered before this revision have no row and are refused until
a person vouches for one with ``autoretrain vet VERSION --by NAME`` (vetted as at registration)
or it is trained again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_artifacts",
        sa.Column("model_name", sa.String(256), primary_key=True),
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("hmac", sa.String(64), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_by", sa.String(250), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_artifacts")
