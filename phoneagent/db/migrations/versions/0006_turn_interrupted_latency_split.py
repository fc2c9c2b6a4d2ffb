"""call turns: whether the agent was interrupted, and where its reply's time went (latency split)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 22:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_turns") as batch:
        batch.add_column(sa.Column("interrupted", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("latency_split", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_turns") as batch:
        batch.drop_column("latency_split")
        batch.drop_column("interrupted")
