"""api keys: sessions_after, the instant before which review sessions of the key are over (sign-out);
tenants: allowed_countries, where the operator lets a tenant's calls go

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 00:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("sessions_after", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("allowed_countries", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("allowed_countries")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("sessions_after")
