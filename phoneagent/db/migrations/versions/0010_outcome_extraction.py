"""agent profiles: outcome_schema, the JSON Schema the post-call extraction fills from the transcript;
outcome_extractions: its queue, one row per ended call of such a profile

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agent_profiles") as batch:
        batch.add_column(sa.Column("outcome_schema", sa.JSON(none_as_null=True), nullable=True))
    op.create_table(
        "outcome_extractions",
        sa.Column("call_id", sa.String(40), nullable=False),
        sa.Column("schema", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease", sa.String(40), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_outcome_extractions_call_id_calls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_outcome_extractions")),
    )
    op.create_index(
        "ix_outcome_extractions_due", "outcome_extractions", ["status", "next_attempt_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_outcome_extractions_due", table_name="outcome_extractions")
    op.drop_table("outcome_extractions")
    with op.batch_alter_table("agent_profiles") as batch:
        batch.drop_column("outcome_schema")
