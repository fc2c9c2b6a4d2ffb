"""api keys: sessions_after, the instant before which review sessions of the key are over (sign-out)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 00:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.add_column(sa.Column('sessions_after', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.drop_column('sessions_after')
