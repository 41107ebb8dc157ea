"""Composite indexes for the hot queries: a model's served predictions in a time range, its latest windows.

``prediction_log (model_name, role, created_at)``: the monitoring windows and the canary read the
served rows of one model in ``[since, until)`` (only ``created_at`` was indexed, so every read
scanned the whole range of all models and roles). ``drift_windows (model_name, window_end)``:
``decide_window`` reads the latest windows of a model up to an end (the hysteresis lookup).

On Postgres the indexes are built ``CONCURRENTLY``, outside a transaction, so the prediction
service keeps writing its log while they build. If a build fails there, Postgres leaves an
INVALID index behind: drop it (``DROP INDEX CONCURRENTLY <name>``) and upgrade again.

Revision ID: 0002
Revises: 0001
Create Date: 2026-03-09
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_prediction_log_model_role_created": ("prediction_log", ["model_name", "role", "created_at"]),
    "ix_drift_windows_model_end": ("drift_windows", ["model_name", "window_end"]),
}


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, (table, columns) in INDEXES.items():
            op.create_index(name, table, columns, postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, (table, _) in reversed(INDEXES.items()):
            op.drop_index(name, table_name=table, postgresql_concurrently=True)
