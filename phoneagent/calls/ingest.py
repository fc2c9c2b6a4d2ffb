"""LiveKit webhook events into call records: stored once per event id, read as lifecycle facts.

A SIP participant joining a room opens the inbound call record (the tenant is found through the
LiveKit dispatch rule or trunk the call came in on); an outbound call's record exists already, named
by its room. What each event means for the record (answered, ended and why) is decided in one place,
``phoneagent.calls.records``. Events arriving twice are stored once and have no second effect.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from phoneagent.calls import recording_state
from phoneagent.calls.records import record_event
from phoneagent.calls.worker_events import attach_waiting
from phoneagent.db.models import Call, CallEvent, DispatchRule, InboundTrunk, RecordingEgress
from phoneagent.telephony.egress import EgressState
from phoneagent.telephony.webhooks import LiveKitEvent

log = logging.getLogger("phoneagent.calls")


def _tenant_for_sip(session: Session, attrs: dict[str, str]) -> tuple[str | None, str | None]:
    """(tenant_id, agent_profile_id) from the LiveKit trunk / rule ids the call carries."""
    rule = session.scalar(select(DispatchRule).where(DispatchRule.livekit_id == attrs.get("sip.ruleID", "")))
    if rule is not None:
        return rule.tenant_id, rule.agent_profile_id
    trunk = session.scalar(
        select(InboundTrunk).where(InboundTrunk.livekit_id == attrs.get("sip.trunkID", ""))
    )
    return (trunk.tenant_id, None) if trunk is not None else (None, None)


def _open_inbound(session: Session, event: LiveKitEvent, at: datetime) -> Call | None:
    attrs = event.participant_attributes
    tenant_id, agent_id = _tenant_for_sip(session, attrs)
    if tenant_id is None:
        return None  # not a phoneagent trunk
    call = Call(
        tenant_id=tenant_id,
        direction="inbound",
        status="queued",
        room_name=event.room,
        from_number=attrs.get("sip.phoneNumber", ""),
        to_number=attrs.get("sip.trunkPhoneNumber", ""),
        agent_profile_id=agent_id,
        sip_call_id=attrs.get("sip.callID"),
        created_at=at,
    )
    session.add(call)
    session.flush()
    return call


def _same_call(session: Session, call: Call, attrs: dict[str, str]) -> bool:
    """Whether a SIP participant's event in ``call``'s room is about ``call``: the same SIP call id
    when both are known, and the tenant of the rule or trunk it came in on. Room names are made by the
    server and unique per call, so a mismatch means a room name reused or forged: logged, not applied."""
    sip_call_id = attrs.get("sip.callID")
    same = not (call.sip_call_id and sip_call_id and call.sip_call_id != sip_call_id)
    if same and call.direction == "inbound" and ("sip.ruleID" in attrs or "sip.trunkID" in attrs):
        tenant_id, _ = _tenant_for_sip(session, attrs)
        same = tenant_id == call.tenant_id
    if not same:
        log.warning(
            "a SIP participant's event names another call than the one in its room; not applied",
            extra={"call_id": call.id, "room": call.room_name},
        )
    return same


def _apply_egress(session: Session, state: EgressState) -> None:
    """An egress webhook about one of our track recordings (others are stored and otherwise ignored)."""
    row = session.scalar(select(RecordingEgress).where(RecordingEgress.egress_id == state.egress_id))
    if row is not None:
        recording_state.apply_egress(session, row, state)


def ingest_livekit_event(session: Session, event: LiveKitEvent) -> tuple[bool, Call | None]:
    """Store and apply one event; (False, ...) and no effect when this event id was seen. Commits.

    Returns the call the event belongs to, if any (the caller may act on it, e.g. the sweeper)."""
    seen = session.scalar(
        select(CallEvent.id).where(CallEvent.source == "livekit", CallEvent.event_id == event.id)
    )
    if seen is not None:
        return False, None
    at = datetime.fromtimestamp(event.created_at, UTC) if event.created_at else datetime.now(UTC)
    room = event.room
    call = session.scalar(select(Call).where(Call.room_name == room)) if room else None
    sip = event.participant_kind == "sip"
    if call is not None and sip and not _same_call(session, call, event.participant_attributes):
        call = None  # kept, unattached: never on another call's record, never a second call in its room
    elif call is None and sip and event.type == "participant_joined":
        call = _open_inbound(session, event, at)
    payload = event.payload
    try:
        if call is None:
            session.add(
                CallEvent(
                    room_name=room or None,
                    source="livekit",
                    event_id=event.id,
                    type=event.type,
                    payload=payload,
                    occurred_at=at,
                )
            )
        elif not record_event(
            session, call, source="livekit", event_id=event.id, type_=event.type, payload=payload, at=at
        ):
            # the same event, stored by a concurrent request (LiveKit sends each event to every URL it
            # has, e.g. a replica and the balancer in front of all): what this one opened goes too
            session.rollback()
            return False, None
        else:
            attach_waiting(session, call)
        if event.egress is not None:
            _apply_egress(session, event.egress)
        session.commit()
    except IntegrityError:  # the same event, stored by a concurrent request
        session.rollback()
        return False, None
    return True, call
