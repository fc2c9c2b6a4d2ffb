"""calls: parent_call_id, the call a consultation leg was dialed for (a warm transfer's call to the
person who takes the caller over); transfer, what the call's warm transfer came to, as its worker
reported it

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("parent_call_id", sa.String(40), nullable=True))
        batch.add_column(sa.Column("transfer", sa.JSON(none_as_null=True), nullable=True))
        batch.create_index(batch.f("ix_calls_parent_call_id"), ["parent_call_id"], unique=False)
        batch.create_foreign_key(
            batch.f("fk_calls_parent_call_id_calls"), "calls", ["parent_call_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_constraint(batch.f("fk_calls_parent_call_id_calls"), type_="foreignkey")
        batch.drop_index(batch.f("ix_calls_parent_call_id"))
        batch.drop_column("transfer")
        batch.drop_column("parent_call_id")
