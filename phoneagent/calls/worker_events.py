"""Call events from workers: answered, each turn (text, timings, latency split), the call's outcome,
hangup, fallbacks, tools.

Stored once per event id (workers resend from their spool until acknowledged). An event for a room
whose call record does not exist yet (the LiveKit webhook is late) waits, keyed by room, and is applied
when the record appears (see ``attach_waiting``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from phoneagent.calls.consultation import TRANSFER_EVENT, apply_transfer
from phoneagent.calls.outcome import apply_outcome
from phoneagent.calls.query import index_transcript
from phoneagent.calls.records import lock, refresh
from phoneagent.db.models import Call, CallEvent, CallTurn

log = logging.getLogger("phoneagent.calls")


def _ms(value: Any) -> int | None:
    return int(round(float(value) * 1000)) if isinstance(value, int | float) else None


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(float(value), UTC) if isinstance(value, int | float) else None


def _apply(session: Session, call: Call, ev: CallEvent) -> None:
    data = ev.payload.get("data", {})
    if ev.type == "turn":
        seq = int(data["seq"])
        turn = session.scalar(select(CallTurn).where(CallTurn.call_id == call.id, CallTurn.seq == seq))
        if turn is None:
            turn = CallTurn(call_id=call.id, seq=seq, speaker=str(data.get("speaker", "agent")), text="")
            session.add(turn)
        turn.text = str(data.get("text", ""))
        turn.started_at, turn.ended_at = _ts(data.get("started_at")), _ts(data.get("ended_at"))
        turn.stt_ms, turn.brain_ms = _ms(data.get("stt_s")), _ms(data.get("brain_s"))
        turn.tts_ms, turn.total_ms = _ms(data.get("tts_s")), _ms(data.get("total_s"))
        turn.interrupted = data.get("interrupted") is True
        split = data.get("split_ms")
        turn.latency_split = (
            {str(k): int(v) for k, v in split.items() if isinstance(v, int | float)}
            if isinstance(split, dict)
            else None
        )
        session.flush()
        turns = session.scalars(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
        index_transcript(session, call, "\n".join(t.text for t in turns))
    elif ev.type == "outcome":
        apply_outcome(session, call)  # the latest of the call's outcome events, whichever came last
    elif ev.type == TRANSFER_EVENT:
        session.flush()
        apply_transfer(session, call)  # likewise: the latest account of its warm transfer
    # what the event means for the call's state (answered, hung up and why) is read by refresh()


def belongs(ev: CallEvent, call: Call) -> bool:
    """Whether a worker's event in ``call``'s room is about ``call``: the tenant and call the worker
    was dispatched for, when it says, are this call's (an event that names another is kept, unattached,
    with a log line)."""
    key = ev.payload or {}
    if key.get("call_id", call.id) == call.id and key.get("tenant_id", call.tenant_id) == call.tenant_id:
        return True
    log.warning(
        "a worker event names another call than the one in its room; not applied",
        extra={"call_id": call.id, "event_id": ev.event_id},
    )
    return False


def ingest_worker_events(session: Session, events: list[dict[str, Any]]) -> list[str]:
    """Store and apply a batch; returns the ids of the events that were new. Commits once per event (a
    duplicate in a batch does not undo the others)."""
    new: list[str] = []
    for raw in events:
        room = str(raw["room"])
        key = {k: str(raw[k]) for k in ("tenant_id", "call_id") if raw.get(k)}
        ev = CallEvent(
            source="worker",
            event_id=str(raw["event_id"]),
            type=str(raw["type"]),
            room_name=room,
            payload={"data": raw.get("data", {}), **key},
            occurred_at=_ts(raw.get("at")) or datetime.now(UTC),
        )
        session.add(ev)
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            continue
        call = session.scalar(select(Call).where(Call.room_name == room))
        if call is not None and belongs(ev, call):
            lock(session, call)  # before the event names it (records.lock)
            ev.call_id = call.id
            _apply(session, call, ev)
            refresh(session, call)
        session.commit()
        new.append(ev.event_id)
    return new


def attach_waiting(session: Session, call: Call) -> None:
    """Apply the worker events that arrived before this call record existed (caller commits)."""
    waiting = session.scalars(
        select(CallEvent)
        .where(
            CallEvent.room_name == call.room_name, CallEvent.call_id.is_(None), CallEvent.source == "worker"
        )
        .order_by(CallEvent.occurred_at, CallEvent.id)
    )
    found = False
    for ev in waiting:
        if not belongs(ev, call):
            continue
        ev.call_id = call.id
        _apply(session, call, ev)
        found = True
    if found:
        session.flush()
        refresh(session, call)
