"""worker events wait by room

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_events") as batch:
        batch.add_column(sa.Column("room_name", sa.String(length=128), nullable=True))
        batch.create_index("ix_call_events_room", ["room_name"])


def downgrade() -> None:
    with op.batch_alter_table("call_events") as batch:
        batch.drop_index("ix_call_events_room")
        batch.drop_column("room_name")
