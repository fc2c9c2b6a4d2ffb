"""dispatch rules: room names made by the server (each rule's id starts its calls' room names; no
"direct" rule putting every caller in one room)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 23:40:00

LiveKit's copies of existing rules keep their old room names until each rule is updated (any PATCH
re-sends it) or re-created; README, "Security", says so.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE dispatch_rules SET room_prefix = id, room_name = ''")
    op.execute("UPDATE dispatch_rules SET kind = 'individual' WHERE kind = 'direct'")


def downgrade() -> None:
    pass  # the rooms tenants named themselves are not restored
