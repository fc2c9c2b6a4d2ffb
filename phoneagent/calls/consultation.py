"""Warm transfers' consultation legs: the call to the person who takes a caller over, a record of its own.

The caller's agent asks for the leg (``POST /webhooks/worker/consultations``) and the control plane
decides whether it may be dialed: the destination must be one the call's agent profile lists (the
same list its transfers are held to), a phone number the tenant's number policy allows, reached
through one of the tenant's outbound trunks. The leg is then an outbound call like any other:
queued, dialed by the ``Dialer`` under the tenant's and the trunk's caps (with no agent of its own:
the caller's agent joins its room to brief the person), its status and end reason folded from the
SIP answer and LiveKit's webhooks. ``parent_call_id`` links it to the caller's call, whose
``transfer`` holds what the warm transfer came to (reported by the worker, see ``apply_transfer``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from phoneagent.calls import lifecycle as lc
from phoneagent.calls.outbox import enqueue
from phoneagent.calls.records import own_event
from phoneagent.config import Settings
from phoneagent.db.base import new_id
from phoneagent.db.models import AgentProfile, Call, CallEvent, OutboundTrunk
from phoneagent.errors import ConfigError, Conflict, InvalidField, NotFound
from phoneagent.provisioning.tenants import number_policy_for
from phoneagent.telephony.destinations import TransferPolicy
from phoneagent.worker.brain_spec import WarmTransferSpec, parse_brain

# what a warm transfer came to (the worker's ``warm_transfer`` event, latest wins)
RESULTS = ("dialing", "briefing", "connected", "no_answer", "busy", "declined", "failed", "caller_left")
TRANSFER_EVENT = "warm_transfer"


class TransferData(BaseModel):
    """The worker's account of a warm transfer, as the record keeps it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    to: str = Field(max_length=64)
    result: str = Field(pattern="^(" + "|".join(RESULTS) + ")$")
    consultation_call_id: str | None = Field(default=None, max_length=40)
    answered_by: str | None = Field(default=None, max_length=128)
    briefing: str | None = Field(default=None, max_length=4000)
    # how the person answered the briefing: a key, their words, or nothing in time
    reply: str | None = Field(default=None, max_length=500)
    detail: str | None = Field(default=None, max_length=300)
    # once connected: who hung up first, ending the bridged call
    ended_by: str | None = Field(default=None, pattern="^(caller|person)$")
    at: float = Field(ge=1_577_836_800, le=4_102_444_800)


def _spec(profile: AgentProfile | None) -> tuple[WarmTransferSpec, TransferPolicy]:
    if profile is None:
        raise Conflict("this call has no agent profile, so it has no transfer destinations")
    try:
        brain = parse_brain(profile.llm)
    except ConfigError as exc:
        raise Conflict(f"the call's agent profile cannot be used: {exc.message}") from None
    script = (profile.llm or {}).get("script") or {}
    listed = [
        i.get("transfer_to", "")
        for i in script.get("intents", [])
        if isinstance(i, dict) and i.get("action") in ("transfer", "warm_transfer")
    ]
    return brain.warm_transfer, TransferPolicy.from_profile([*brain.transfer_destinations, *listed])


def _trunk(session: Session, parent: Call, spec: WarmTransferSpec) -> OutboundTrunk:
    if spec.outbound_trunk_id:
        trunk = session.get(OutboundTrunk, spec.outbound_trunk_id)
        if trunk is None or trunk.tenant_id != parent.tenant_id:
            raise Conflict(
                f"llm.warm_transfer.outbound_trunk_id {spec.outbound_trunk_id!r} is not a trunk of yours"
            )
        return trunk
    if parent.outbound_trunk_id:
        own = session.get(OutboundTrunk, parent.outbound_trunk_id)
        if own is not None:
            return own
    trunks = session.scalars(select(OutboundTrunk).where(OutboundTrunk.tenant_id == parent.tenant_id)).all()
    if len(trunks) == 1:
        return trunks[0]
    if not trunks:
        raise Conflict("the tenant has no outbound trunk to dial the warm transfer through")
    raise Conflict("the tenant has several outbound trunks: set llm.warm_transfer.outbound_trunk_id")


def live_parent(session: Session, room: str, tenant_id: str | None, call_id: str | None) -> Call:
    """The call going on in ``room`` (of this tenant, and this call when the worker knows it)."""
    call = session.scalar(select(Call).where(Call.room_name == room))
    if (
        call is None
        or (tenant_id is not None and call.tenant_id != tenant_id)
        or (call_id is not None and call.id != call_id)
    ):
        raise NotFound(f"no call of yours in room {room!r}")
    if call.status == "ended":
        raise Conflict("the call has ended")
    return call


def open_leg(
    session: Session, settings: Settings, *, room: str, tenant_id: str | None, call_id: str | None, to: str
) -> tuple[Call, WarmTransferSpec]:
    """Queue the consultation leg of the call in ``room`` to ``to`` (the dialer dials it); flushes, the
    caller commits. 404: no such live call; 409: the profile or trunks do not allow it; 422: ``to``
    is not a destination the profile lists, or one the number policy refuses."""
    parent = live_parent(session, room, tenant_id, call_id)
    profile = session.get(AgentProfile, parent.agent_profile_id) if parent.agent_profile_id else None
    spec, allowed = _spec(profile)
    try:
        uri = allowed.check(to)
    except ValueError as exc:
        raise InvalidField("to", str(exc)) from None
    if not uri.startswith("tel:"):
        raise InvalidField("to", "a warm transfer dials through an outbound trunk: give a phone number")
    number = uri.removeprefix("tel:")
    why = number_policy_for(session, settings, parent.tenant_id).why_refused(number)
    if why is not None:
        raise InvalidField("to", why)
    trunk = _trunk(session, parent, spec)
    from_number = parent.to_number if parent.to_number in trunk.numbers else (trunk.numbers or [""])[0]
    leg_id = new_id("call")
    leg = Call(
        id=leg_id,
        tenant_id=parent.tenant_id,
        direction="outbound",
        status="queued",
        from_number=from_number,
        to_number=number,
        outbound_trunk_id=trunk.id,
        room_name=f"consult-{leg_id}",
        ring_timeout_s=spec.ring_timeout_s,
        parent_call_id=parent.id,
        call_metadata={"consultation_of": parent.id},
    )
    session.add(leg)
    session.flush()
    own_event(session, leg, "queued", lc.Fact(leg.created_at, "queued"), f"{leg.id}:queued")
    enqueue(session, leg, "call.queued")
    session.flush()
    return leg, spec


def cancel_leg(session: Session, leg: Call) -> bool:
    """The agent gave up on a leg nobody answered (the caller hung up, or it waited past the ring
    timeout behind the tenant's caps): it ends as ``agent_hangup``, never dialed later. True when the
    leg was still live (its room must be ended: ``Dialer.hang_up``). Flushes; the caller commits."""
    # a queued leg is taken from the dialer's queue in one step: a dialer pass cannot claim it after
    queued = session.execute(
        update(Call).where(Call.id == leg.id, Call.status == "queued").values(status="dialing")
    )
    session.refresh(leg)
    if leg.status == "ended":
        return False
    live = bool(queued.rowcount != 1)  # type: ignore[attr-defined]
    own_event(
        session,
        leg,
        "cancelled_by_agent",
        lc.Fact(datetime.now(UTC), "ended", "agent_hangup", lc.DECLARED),
        f"{leg.id}:cancel",
    )
    session.flush()
    return live


def apply_transfer(session: Session, call: Call) -> None:
    """The call's ``transfer``: the latest of its worker's warm transfer events."""
    latest = session.scalar(
        select(CallEvent)
        .where(CallEvent.call_id == call.id, CallEvent.source == "worker", CallEvent.type == TRANSFER_EVENT)
        .order_by(CallEvent.occurred_at.desc(), CallEvent.id.desc())
        .limit(1)
    )
    data: dict[str, Any] | None = (latest.payload or {}).get("data") if latest is not None else None
    call.transfer = dict(data) if data else None
