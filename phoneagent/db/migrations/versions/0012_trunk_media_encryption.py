"""inbound_trunks, outbound_trunks: media_encryption, the trunk's SRTP mode toward the carrier
(disable, allow, require); the trunks made before it keep plain RTP, as LiveKit gave them

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("inbound_trunks", "outbound_trunks"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("media_encryption", sa.String(8), nullable=False, server_default="disable")
            )


def downgrade() -> None:
    for table in ("inbound_trunks", "outbound_trunks"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("media_encryption")
