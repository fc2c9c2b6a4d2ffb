"""LiveKit webhook events into call records: stored once per event id, applied idempotently.

A SIP participant joining a room opens (or completes) the inbound call record; the same participant
leaving ends it. The tenant is found through the LiveKit trunk or dispatch rule the call came in on.
Events arriving twice are recorded once and have no second effect.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.json_format import MessageToDict
from livekit import api
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from phoneagent.calls.worker_events import attach_waiting
from phoneagent.db.models import Call, CallEvent, DispatchRule, InboundTrunk

SIP_KIND = api.ParticipantInfo.Kind.SIP


def _tenant_for_sip(session: Session, attrs: dict[str, str]) -> tuple[str | None, str | None]:
    """(tenant_id, agent_profile_id) from the LiveKit trunk / rule ids the call carries."""
    rule = session.scalar(select(DispatchRule).where(DispatchRule.livekit_id == attrs.get("sip.ruleID", "")))
    if rule is not None:
        return rule.tenant_id, rule.agent_profile_id
    trunk = session.scalar(
        select(InboundTrunk).where(InboundTrunk.livekit_id == attrs.get("sip.trunkID", ""))
    )
    return (trunk.tenant_id, None) if trunk is not None else (None, None)


def ingest_livekit_event(session: Session, event: api.WebhookEvent) -> bool:
    """Store and apply one event; False (and no effect) when this event id was seen before. Commits."""
    occurred = datetime.fromtimestamp(event.created_at, UTC) if event.created_at else datetime.now(UTC)
    call = _apply(session, event, occurred)
    session.add(
        CallEvent(
            call_id=call.id if call else None,
            source="livekit",
            event_id=event.id,
            type=event.event,
            payload=MessageToDict(event),
            occurred_at=occurred,
        )
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


def _apply(session: Session, event: api.WebhookEvent, at: datetime) -> Call | None:
    room = event.room.name if event.HasField("room") else ""
    call = session.scalar(select(Call).where(Call.room_name == room)) if room else None
    if not event.HasField("participant") or event.participant.kind != SIP_KIND:
        return call
    if (
        session.scalar(
            select(CallEvent.id).where(CallEvent.source == "livekit", CallEvent.event_id == event.id)
        )
        is not None
    ):
        return call  # a duplicate: the insert will be refused, so do nothing here
    attrs = dict(event.participant.attributes)
    if event.event == "participant_joined" and call is None:
        tenant_id, agent_id = _tenant_for_sip(session, attrs)
        if tenant_id is None:
            return None  # not a phoneagent trunk
        call = Call(
            tenant_id=tenant_id,
            direction="inbound",
            status="in_progress",
            room_name=room,
            from_number=attrs.get("sip.phoneNumber", ""),
            to_number=attrs.get("sip.trunkPhoneNumber", ""),
            agent_profile_id=agent_id,
            sip_call_id=attrs.get("sip.callID"),
            created_at=at,
            answered_at=at,
        )
        session.add(call)
        session.flush()
        attach_waiting(session, call)
    elif event.event == "participant_left" and call is not None and call.status != "ended":
        call.status = "ended"
        call.ended_at = at
        reason = api.DisconnectReason.Name(event.participant.disconnect_reason)
        # the agent ends a call by deleting its room; any other departure of the caller is a hang-up
        call.end_reason = call.end_reason or (
            "agent_hangup" if reason == "ROOM_DELETED" else "customer_hangup"
        )
        call.disconnect_reason = reason
        if call.answered_at is not None:
            call.duration_ms = int((at - call.answered_at).total_seconds() * 1000)
    return call
