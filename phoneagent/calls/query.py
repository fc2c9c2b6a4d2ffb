"""The call log: filters, full-text search in transcripts, and keyset pagination (newest first).

Every filter on a column has a composite index (tenant, filter column, created_at, id), so a page costs
the same at ten rows or ten million (the outcome filters, JSON paths into ``Call.outcome``, have none:
they are checked on the tenant's calls newest first, so a rare outcome costs a longer scan):

- the cursor is the last row's (created_at, id), opaque to clients, applied as
  ``created_at <= ts AND (created_at < ts OR id < last_id)`` so that the index range starts at the
  cursor instead of scanning every newer row;
- ``number`` matches the caller or the callee: the two indexed branches are each cut to one page before
  they are merged, instead of merging and sorting every call of a busy line;
- transcript search on SQLite walks the FTS5 index itself newest first: a transcript's FTS rowid is its
  call's created_at in microseconds times ``SEARCH_SLOTS`` (plus a free slot for calls created in the
  same microsecond), and the tenant is a token of the indexed row, so a page of matches is read in
  rowid order and the search stops after one page, for common words and rare ones alike. PostgreSQL
  searches its ``tsvector`` GIN index.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, Select, String, and_, column, or_, select, table, text, union
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from phoneagent.calls.outcome import OutcomeFilter
from phoneagent.db.models import Call, CallEvent, CallTurn
from phoneagent.errors import InvalidField

# rowids per microsecond of created_at in the SQLite search index (calls created in the same µs)
SEARCH_SLOTS = 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_search = table("call_search", column("rowid", Integer), column("call_id", String))


@dataclass(frozen=True)
class CallFilter:
    status: str | None = None
    end_reason: str | None = None
    direction: str | None = None
    number: str | None = None
    agent_profile_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None
    outcome: OutcomeFilter | None = None


@dataclass(frozen=True)
class _Cursor:
    created_at: datetime
    call_id: str
    search_rowid: int | None = None  # set on pages of a SQLite transcript search


_CURSOR_YEARS = (1970, 2200)


def encode_cursor(call: Call, search_rowid: int | None = None) -> str:
    raw = f"{call.created_at.isoformat()}|{call.id}"
    if search_rowid is not None:
        raw += f"|{search_rowid}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> _Cursor:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        parts = raw.split("|")
        if len(parts) not in (2, 3) or not parts[1]:
            raise ValueError(raw)
        at = datetime.fromisoformat(parts[0])
        rowid = int(parts[2]) if len(parts) == 3 else None
        # only what encode_cursor makes: a call's time (no year 1 or 9999, whose search rowids overflow)
        if not _CURSOR_YEARS[0] <= at.year <= _CURSOR_YEARS[1] or not 0 <= (rowid or 0) < 2**63:
            raise ValueError(raw)
        return _Cursor(at, parts[1], rowid)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidField("cursor", "not a cursor returned by this API") from None


def search_rowid_base(created_at: datetime) -> int:
    """The first SQLite search-index rowid of a call created at ``created_at``."""
    aware = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    return ((aware - _EPOCH) // timedelta(microseconds=1)) * SEARCH_SLOTS


def tenant_token(tenant_id: str) -> str:
    """The tenant as one token of the SQLite search index (the tokenizer splits at ``_``)."""
    return "t" + "".join(ch for ch in tenant_id.lower() if ch.isalnum())


def _words(q: str) -> list[str]:
    # control characters (a NUL ends an FTS5 string, PostgreSQL refuses it in text) are not words
    printable = "".join(ch if ch.isprintable() else " " for ch in q)
    words = [w for w in printable.replace('"', " ").split() if w]
    if not words:
        raise InvalidField("q", "search needs at least one word")
    return words


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _filters(tenant_id: str, f: CallFilter) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [Call.tenant_id == tenant_id]
    for col, value in (
        (Call.status, f.status),
        (Call.end_reason, f.end_reason),
        (Call.direction, f.direction),
        (Call.agent_profile_id, f.agent_profile_id),
    ):
        if value is not None:
            conds.append(col == value)
    if f.since:
        conds.append(Call.created_at >= f.since)
    if f.until:
        conds.append(Call.created_at < f.until)
    if f.outcome is not None:
        conds += f.outcome.conditions()
    return conds


def _before(c: _Cursor) -> ColumnElement[bool]:
    # the first term bounds the index range; the second breaks ties at the cursor's timestamp
    return and_(Call.created_at <= c.created_at, or_(Call.created_at < c.created_at, Call.id < c.call_id))


_NEWEST = (Call.created_at.desc(), Call.id.desc())


def _by_number(conds: list[ColumnElement[bool]], number: str, n: int) -> ColumnElement[bool]:
    """Calls from or to ``number``: each indexed branch cut to ``n`` rows before the merge."""
    branches = [
        select(Call.id).where(*conds, col == number).order_by(*_NEWEST).limit(n).subquery()
        for col in (Call.from_number, Call.to_number)
    ]
    return Call.id.in_(union(*(select(b.c.id) for b in branches)))


def _pg_search(tenant_id: str, q: str) -> ColumnElement[bool]:
    ids = (
        select(text("call_id"))
        .select_from(text("call_search"))
        .where(text("tsv @@ phraseto_tsquery('english', :phrase) AND tenant_id = :tenant"))
        .params(phrase=" ".join(_words(q)), tenant=tenant_id)
    )
    return Call.id.in_(ids)


def _sqlite_search_page(
    session: Session, tenant_id: str, f: CallFilter, c: _Cursor | None, n: int
) -> list[tuple[Call, int]]:
    match = f'tenant : "{tenant_token(tenant_id)}" AND body : "{" ".join(_words(f.q or ""))}"'
    conds = _filters(tenant_id, f)
    if f.number:
        conds.append(or_(Call.from_number == f.number, Call.to_number == f.number))
    if c is not None:
        bound = c.search_rowid if c.search_rowid is not None else search_rowid_base(c.created_at)
        conds.append(_search.c.rowid < bound)
    stmt: Select[Any] = (
        select(Call, _search.c.rowid)
        .select_from(_search)
        .join(Call, Call.id == _search.c.call_id)
        .where(text("call_search MATCH :match").bindparams(match=match), *conds)
        .order_by(_search.c.rowid.desc())
        .limit(n)
    )
    return [(row[0], int(row[1])) for row in session.execute(stmt)]


def list_calls(
    session: Session, tenant_id: str, f: CallFilter, *, limit: int, cursor: str | None
) -> tuple[list[Call], str | None]:
    c = decode_cursor(cursor) if cursor else None
    if f.q and _is_sqlite(session):
        found = _sqlite_search_page(session, tenant_id, f, c, limit + 1)
        more = len(found) > limit
        found = found[:limit]
        rows = [call for call, _ in found]
        return rows, (encode_cursor(*found[-1]) if more and found else None)
    conds = _filters(tenant_id, f)
    if c is not None:
        conds.append(_before(c))
    if f.q:
        conds.append(_pg_search(tenant_id, f.q))
    if f.number:
        conds = [Call.tenant_id == tenant_id, _by_number(conds, f.number, limit + 1)]
    q = select(Call).where(*conds).order_by(*_NEWEST).limit(limit + 1)
    rows = list(session.scalars(q))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1]) if more and rows else None)


def call_detail(session: Session, call: Call) -> tuple[list[CallTurn], list[CallEvent]]:
    turns = list(session.scalars(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq)))
    events = list(
        session.scalars(
            select(CallEvent)
            .where(CallEvent.call_id == call.id)
            .order_by(CallEvent.occurred_at, CallEvent.id)
        )
    )
    return turns, events


def events_after(session: Session, tenant_id: str, after: int | None, *, limit: int) -> list[CallEvent]:
    """The tenant's call events in arrival order: the ``limit`` latest when ``after`` is None, else the
    first ``limit`` after that event id. Events still waiting for their call record have no tenant yet
    and appear once attached (in the call's detail; a tail that has moved past their id skips them)."""
    q = select(CallEvent).join(Call, Call.id == CallEvent.call_id).where(Call.tenant_id == tenant_id)
    if after is None:
        rows = list(session.scalars(q.order_by(CallEvent.id.desc()).limit(limit)))
        rows.reverse()
        return rows
    return list(session.scalars(q.where(CallEvent.id > after).order_by(CallEvent.id).limit(limit)))


def index_transcript(session: Session, call: Call, body: str) -> None:
    """(Re)write the call's searchable transcript; the caller owns the transaction."""
    if not _is_sqlite(session):
        session.execute(text("DELETE FROM call_search WHERE call_id = :id"), {"id": call.id})
        session.execute(
            text("INSERT INTO call_search (call_id, tenant_id, body) VALUES (:id, :tenant, :body)"),
            {"id": call.id, "tenant": call.tenant_id, "body": body},
        )
        return
    lo = search_rowid_base(call.created_at)
    rows = session.execute(
        text("SELECT rowid, call_id FROM call_search WHERE rowid BETWEEN :lo AND :hi"),
        {"lo": lo, "hi": lo + SEARCH_SLOTS - 1},
    )
    taken = {int(rowid): str(call_id) for rowid, call_id in rows}
    mine = [rowid for rowid, call_id in taken.items() if call_id == call.id]
    if mine:
        rowid = mine[0]
        session.execute(text("DELETE FROM call_search WHERE rowid = :r"), {"r": rowid})
    else:
        free = [r for r in range(lo, lo + SEARCH_SLOTS) if r not in taken]
        if not free:
            raise InvalidField("created_at", f"more than {SEARCH_SLOTS} calls created in one microsecond")
        rowid = free[0]
    session.execute(
        text(SQLITE_SEARCH_INSERT),
        {"rowid": rowid, "id": call.id, "tenant": tenant_token(call.tenant_id), "body": body},
    )


SQLITE_SEARCH_INSERT = (
    "INSERT INTO call_search (rowid, call_id, tenant, body) VALUES (:rowid, :id, :tenant, :body)"
)
