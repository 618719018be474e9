"""job heartbeats and dispatches: what the supervisor needs to recover lost and stuck jobs

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.db.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("dispatched_at", backend.db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("dispatches", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("heartbeat_at", backend.db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_jobs_state_heartbeat_at", ["state", "heartbeat_at"], unique=False)
        batch_op.create_index(
            "ix_jobs_state_dispatched_at", ["state", "dispatched_at"], unique=False
        )
    # The ORM sets the count itself; the server default only filled the existing rows.
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.alter_column("dispatches", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_state_dispatched_at")
        batch_op.drop_index("ix_jobs_state_heartbeat_at")
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("dispatches")
        batch_op.drop_column("dispatched_at")
