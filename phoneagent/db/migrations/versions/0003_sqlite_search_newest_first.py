"""SQLite transcript search walks its index newest first

The FTS5 table gets the tenant as an indexed token and a rowid derived from the call's created_at
(phoneagent.calls.query's scheme at this revision, frozen below), so that a page of search results
is read in index order and the re-index of a transcript finds its row by rowid instead of scanning
the table. PostgreSQL: no change.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The search rowid scheme as it was when this revision was written, frozen here: the query module may
# change its scheme later (with a migration of its own), and this revision must keep doing what it did.
SEARCH_SLOTS = 1024  # rowids per microsecond of created_at (calls created in the same microsecond)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SQLITE_SEARCH_INSERT = (
    "INSERT INTO call_search (rowid, call_id, tenant, body) VALUES (:rowid, :id, :tenant, :body)"
)


def search_rowid_base(created_at: datetime) -> int:
    """The first search-index rowid of a call created at ``created_at``."""
    aware = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    return ((aware - _EPOCH) // timedelta(microseconds=1)) * SEARCH_SLOTS


def tenant_token(tenant_id: str) -> str:
    """The tenant as one token of the search index (the tokenizer splits at ``_``)."""
    return "t" + "".join(ch for ch in tenant_id.lower() if ch.isalnum())


def _created(value: object) -> datetime:
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    op.execute("ALTER TABLE call_search RENAME TO call_search_0002")
    op.execute(
        "CREATE VIRTUAL TABLE call_search USING fts5("
        "call_id UNINDEXED, tenant, body, tokenize='porter unicode61')"
    )
    rows = bind.execute(
        sa.text(
            "SELECT s.call_id, c.tenant_id, c.created_at, s.body FROM call_search_0002 s "
            "JOIN calls c ON c.id = s.call_id ORDER BY c.created_at"
        )
    )
    used: set[int] = set()
    for call_id, tenant_id, created_at, body in rows:
        base = rowid = search_rowid_base(_created(created_at))
        while rowid in used:
            rowid += 1
        if rowid >= base + SEARCH_SLOTS:
            raise RuntimeError(f"more than {SEARCH_SLOTS} calls created in one microsecond")
        used.add(rowid)
        bind.execute(
            sa.text(SQLITE_SEARCH_INSERT),
            {"rowid": rowid, "id": call_id, "tenant": tenant_token(tenant_id), "body": body},
        )
    op.execute("DROP TABLE call_search_0002")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    op.execute("ALTER TABLE call_search RENAME TO call_search_0003")
    op.execute(
        "CREATE VIRTUAL TABLE call_search USING fts5("
        "call_id UNINDEXED, tenant_id UNINDEXED, body, tokenize='porter unicode61')"
    )
    op.execute(
        "INSERT INTO call_search (call_id, tenant_id, body) "
        "SELECT s.call_id, c.tenant_id, s.body FROM call_search_0003 s JOIN calls c ON c.id = s.call_id"
    )
    op.execute("DROP TABLE call_search_0003")
