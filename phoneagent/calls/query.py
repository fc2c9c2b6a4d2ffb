"""The call log: filters, full-text search in transcripts, and keyset pagination (newest first).

Every filter has a composite index (tenant, filter column, created_at, id), so a page costs the same at
ten rows or ten million. The cursor is the last row's (created_at, id), opaque to clients.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, or_, select, text
from sqlalchemy.orm import Session

from phoneagent.db.models import Call, CallEvent, CallTurn
from phoneagent.errors import InvalidField


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


def encode_cursor(call: Call) -> str:
    raw = f"{call.created_at.isoformat()}|{call.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, call_id = raw.split("|", 1)
        return datetime.fromisoformat(ts), call_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidField("cursor", "not a cursor returned by this API") from None


def _search_ids(session: Session, tenant_id: str, q: str) -> Select[tuple[str]]:
    words = [w for w in q.replace('"', " ").split() if w]
    if not words:
        raise InvalidField("q", "search needs at least one word")
    if session.get_bind().dialect.name == "sqlite":
        phrase = '"' + " ".join(words) + '"'
        return (
            select(text("call_id"))
            .select_from(text("call_search"))
            .where(text("call_search MATCH :phrase AND tenant_id = :tenant"))
            .params(phrase=phrase, tenant=tenant_id)
        )
    return (
        select(text("call_id"))
        .select_from(text("call_search"))
        .where(text("tsv @@ phraseto_tsquery('english', :phrase) AND tenant_id = :tenant"))
        .params(phrase=" ".join(words), tenant=tenant_id)
    )


def list_calls(
    session: Session, tenant_id: str, f: CallFilter, *, limit: int, cursor: str | None
) -> tuple[list[Call], str | None]:
    q = select(Call).where(Call.tenant_id == tenant_id)
    for col, value in (
        (Call.status, f.status),
        (Call.end_reason, f.end_reason),
        (Call.direction, f.direction),
        (Call.agent_profile_id, f.agent_profile_id),
    ):
        if value is not None:
            q = q.where(col == value)
    if f.number:
        q = q.where(or_(Call.from_number == f.number, Call.to_number == f.number))
    if f.since:
        q = q.where(Call.created_at >= f.since)
    if f.until:
        q = q.where(Call.created_at < f.until)
    if f.q:
        q = q.where(Call.id.in_(_search_ids(session, tenant_id, f.q)))
    if cursor:
        ts, last_id = decode_cursor(cursor)
        q = q.where(or_(Call.created_at < ts, and_(Call.created_at == ts, Call.id < last_id)))
    rows = list(session.scalars(q.order_by(Call.created_at.desc(), Call.id.desc()).limit(limit + 1)))
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
    session.execute(text("DELETE FROM call_search WHERE call_id = :id"), {"id": call.id})
    session.execute(
        text("INSERT INTO call_search (call_id, tenant_id, body) VALUES (:id, :tenant, :body)"),
        {"id": call.id, "tenant": call.tenant_id, "body": body},
    )
