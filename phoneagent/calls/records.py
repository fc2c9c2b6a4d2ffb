"""A call record kept true to its events: every stored event is read as facts, folded, written back.

``record_event`` stores one event (once per ``(source, event_id)``) and refreshes the record;
``refresh`` re-derives status, timings, end reason and evidence from *all* the call's events (see
``phoneagent.calls.lifecycle``) and queues the outgoing webhooks of each step the record took (and
``call.updated`` when an ended call's end reason changed). Nothing here commits: the caller owns the
transaction, so the event, the record and its webhooks are written together or not at all.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from phoneagent.calls import extraction, recording_state
from phoneagent.calls import lifecycle as lc
from phoneagent.calls.outbox import correct_end_reason, enqueue
from phoneagent.db.models import Call, CallEvent, CampaignContact
from phoneagent.db.states import is_call_status, is_end_reason

log = logging.getLogger("phoneagent.calls")

SIP_KIND = "SIP"
AGENT_KIND = "AGENT"


def _livekit_facts(call: Call, ev: CallEvent) -> list[lc.Fact]:
    participant = ev.payload.get("participant") or {}
    if participant.get("kind") != SIP_KIND:
        if ev.type == "room_finished":
            return [lc.Fact(ev.occurred_at, "ended", None, lc.NO_EVIDENCE)]
        return []
    status = (participant.get("attributes") or {}).get("sip.callStatus", "")
    if ev.type == "participant_joined":
        # livekit-sip v1.8.0 joins an inbound call's room while the phone rings (it answers once it
        # hears the agent's track); an outbound participant joins while it is still dialing
        if status == "active":
            return [lc.Fact(ev.occurred_at, "in_progress")]
        if call.direction == "inbound" or status == "ringing":
            return [lc.Fact(ev.occurred_at, "ringing")]
        return [lc.Fact(ev.occurred_at, "dialing")]
    if ev.type == "participant_left":
        # livekit-sip closes every inbound call by leaving the room: its disconnect reason is
        # CLIENT_INITIATED whatever happened, its last call status says more
        reason = participant.get("disconnectReason", "UNKNOWN_REASON")
        left = lc.inbound_phone_left(ev.occurred_at, status) if call.direction == "inbound" else None
        return [lc.sip_participant_left(ev.occurred_at, reason), *([left] if left else [])]
    return []


def _worker_facts(call: Call, ev: CallEvent) -> list[lc.Fact]:
    data = ev.payload.get("data") or {}
    if ev.type == "hangup":
        fact = lc.worker_hangup(ev.occurred_at, str(data.get("reason", "")))
        return [fact] if fact else []
    if ev.type == "answered" and call.direction == "inbound":
        # the worker reports it once the phone is active and its caller is heard (worker/phone.py)
        return [lc.Fact(ev.occurred_at, "in_progress")]
    if ev.type == "turn" and data.get("speaker") == "caller":
        return [lc.Fact(ev.occurred_at, "in_progress")]  # someone spoke on the line: it was answered
    return []


def _own_facts(ev: CallEvent) -> list[lc.Fact]:
    """Events the control plane wrote itself (source api or sweeper) carry their fact as it is."""
    f = ev.payload.get("fact")
    if not isinstance(f, dict):
        return []
    status, end_reason = f.get("status"), f.get("end_reason")
    if not is_call_status(status) or not (end_reason is None or is_end_reason(end_reason)):
        return []  # written by a version that knew other values: not evidence this one can weigh
    return [
        lc.Fact(
            ev.occurred_at,
            status,
            end_reason,
            int(f.get("strength", 0)),
            sip_status_code=f.get("sip_status_code"),
            sip_status_reason=f.get("sip_status_reason"),
        )
    ]


def facts_of(call: Call, ev: CallEvent) -> list[lc.Fact]:
    if ev.source == "livekit":
        return _livekit_facts(call, ev)
    if ev.source == "worker":
        return _worker_facts(call, ev)
    return _own_facts(ev)


def fact_payload(fact: lc.Fact, **extra: Any) -> dict[str, Any]:
    body = {
        "status": fact.status,
        "end_reason": fact.end_reason,
        "strength": fact.strength,
        "sip_status_code": fact.sip_status_code,
        "sip_status_reason": fact.sip_status_reason,
    }
    return {"fact": body, **extra}


def lock(session: Session, call: Call) -> bool:
    """Lock the call's row until the transaction ends (PostgreSQL; SQLite writes one at a time).
    Taken before a transaction adds an event: inserting the event takes a shared key lock on the
    row (its foreign key), and two transactions that each held one and then asked for this lock
    deadlocked (two replicas given the same call's events at once, as the cluster test does)."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    session.execute(select(Call.id).where(Call.id == call.id).with_for_update())
    return True


def refresh(session: Session, call: Call) -> None:
    """Re-derive the record from all its events; queue a webhook for each step it newly took.

    On PostgreSQL the call's row is locked first: two transactions adding events to one call (two
    replicas, or a webhook and a worker event at once) fold one after the other, the second with the
    first's event in view, instead of each folding a part and the last writer keeping its part."""
    if lock(session, call):
        session.refresh(call)
    events = session.scalars(select(CallEvent).where(CallEvent.call_id == call.id)).all()
    facts = [f for ev in events for f in facts_of(call, ev)]
    state = lc.fold(facts)
    before = (call.status, call.ringing_at, call.answered_at)
    reason_before = call.end_reason
    # a record never goes back (a state set directly, e.g. by an older version, has no event)
    call.status = max(call.status, state.status, key=lc.STATUSES.index)
    call.ringing_at, call.answered_at, call.ended_at = state.ringing_at, state.answered_at, state.ended_at
    call.end_reason = state.end_reason
    call.duration_ms = state.duration_ms
    call.sip_status_code, call.sip_status_reason = state.sip_status_code, state.sip_status_reason
    call.disconnect_reason = state.disconnect_reason
    session.flush()
    if before[1] is None and call.ringing_at is not None:
        enqueue(session, call, "call.ringing")
    if before[2] is None and call.answered_at is not None:
        enqueue(session, call, "call.answered")
        recording_state.begin(session, call)
    if before[0] == "ended" and call.end_reason != reason_before:
        _end_reason_changed(session, call, reason_before)
    if before[0] != "ended" and call.status == "ended":
        enqueue(session, call, "call.ended")
        recording_state.settle(session, call)
        extraction.queue(session, call)


def _end_reason_changed(session: Session, call: Call, before: str | None) -> None:
    """Later, better evidence changed why the ended call ended (in a warm transfer the caller's BYE
    ends the record as customer_hangup, the worker's declared transferred comes a moment later): the
    campaign contact it settled says so too, and so does each webhook endpoint told the old reason."""
    correct_end_reason(session, call, before)
    if call.campaign_id:
        session.execute(
            update(CampaignContact)
            .where(CampaignContact.last_call_id == call.id, CampaignContact.status.in_(("done", "failed")))
            .values(last_end_reason=call.end_reason)
        )


def record_event(
    session: Session,
    call: Call,
    *,
    source: str,
    event_id: str,
    type_: str,
    payload: dict[str, Any],
    at: datetime | None = None,
) -> bool:
    """Store one event for ``call`` and refresh it; False (no effect) when the event id was seen."""
    ev = CallEvent(
        call_id=call.id,
        room_name=call.room_name,
        source=source,
        event_id=event_id,
        type=type_,
        payload=payload,
        occurred_at=at or datetime.now(UTC),
    )
    lock(session, call)  # before the insert: see lock
    try:
        with session.begin_nested():
            session.add(ev)
    except IntegrityError:
        return False
    refresh(session, call)
    return True


def own_event(session: Session, call: Call, type_: str, fact: lc.Fact, event_id: str, **extra: Any) -> bool:
    """An event the control plane itself witnessed (it dialed, it was told to hang up, ...)."""
    return record_event(
        session,
        call,
        source="api",
        event_id=event_id,
        type_=type_,
        payload=fact_payload(fact, **extra),
        at=fact.at,
    )
