"""calls: outcome, what the call came to (intents, confirmations, slots, success) as its worker
reported it; agent profiles: success, the condition on the outcome that makes a call a success

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("outcome", sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table("agent_profiles") as batch:
        batch.add_column(sa.Column("success", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agent_profiles") as batch:
        batch.drop_column("success")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("outcome")
