"""The alert cool-down claim: one row per ``dedup_key``, claimed by a conditional write.

``send_alert`` read the alert log, then delivered, then wrote: two workers sending the same alert
at once both read "not delivered" and both sent (4 identical alerts at once: 3 sent). The
``alert_cooldown`` row is claimed atomically instead (:meth:`autoretrain.alerts.store.AlertStore.claim`):
an ``INSERT`` on the primary key for a key never seen, else an ``UPDATE ... WHERE claimed_at <=
now - cool-down``; the database lets exactly one of the racers win, on Postgres and on SQLite.

The upgrade fills the table from ``alert_log`` (the newest ``sent``/``logged`` row per key), so a
cool-down running at upgrade time goes on; the downgrade drops the table (the log keeps the rows).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_cooldown",
        sa.Column("dedup_key", sa.String(500), primary_key=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claim_id", sa.String(36), nullable=False),
    )
    op.execute("INSERT INTO alert_cooldown (dedup_key, claimed_at, claim_id) "
               "SELECT dedup_key, MAX(created_at), 'alert_log' FROM alert_log "
               "WHERE status IN ('sent', 'logged') GROUP BY dedup_key")


def downgrade() -> None:
    op.drop_table("alert_cooldown")
