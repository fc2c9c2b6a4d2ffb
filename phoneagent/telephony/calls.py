"""Placing and ending calls on LiveKit: agent dispatch, the SIP participant, the room.

The one place where livekit-sip's answers to an outbound INVITE are read (see ``DialOutcome``):

- answered: ``create_sip_participant(wait_until_answered=True)`` returns;
- a final SIP response (486 busy, 603 decline, 5xx, ...): ``SipCallError`` with ``sip_status_code``;
- nobody answered within the ring timeout: livekit-sip v1.8 cancels the INVITE and answers a plain
  ``canceled`` error with no SIP code ("sip request timed out");
- anything else (LiveKit unreachable, a refused request) is a failure with its message.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from google.protobuf.duration_pb2 import Duration
from livekit import api

from phoneagent.errors import CallRejected, LiveKitNotFound, LiveKitRefused, TelephonyError
from phoneagent.telephony.client import LiveKitClient

log = logging.getLogger("phoneagent.telephony")

SIP_KIND = api.ParticipantInfo.Kind.SIP
AGENT_KIND = api.ParticipantInfo.Kind.AGENT


@dataclass(frozen=True)
class DialOutcome:
    kind: str  # answered | sip_final (a final SIP response) | no_answer | failed
    sip_status_code: int | None = None
    sip_status_reason: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class RoomPeople:
    sip: list[dict[str, str]]  # attributes of each SIP participant
    agents: int


class LiveKitCalls(LiveKitClient):
    """Async LiveKit calls for the control plane's background tasks (one client per process)."""

    async def create_room(self, room: str) -> None:
        with self._errors():
            await self._api().room.create_room(
                api.CreateRoomRequest(name=room, empty_timeout=120, departure_timeout=5)
            )

    async def dispatch_agent(self, room: str, agent_name: str, metadata: dict[str, Any]) -> None:
        """Create the room and send the agent into it before the phone rings (it greets on answer)."""
        await self.create_room(room)
        lk = self._api()
        with self._errors():
            await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(
                    agent_name=agent_name, room=room, metadata=json.dumps(metadata)
                )
            )

    async def dial(
        self,
        *,
        room: str,
        trunk_id: str,
        to: str,
        from_number: str,
        identity: str,
        ring_timeout_s: int,
        max_call_s: int,
        attributes: dict[str, str] | None = None,
    ) -> DialOutcome:
        req = api.CreateSIPParticipantRequest(
            sip_trunk_id=trunk_id,
            sip_call_to=to,
            sip_number=from_number,
            room_name=room,
            participant_identity=identity,
            participant_name="phone",
            participant_attributes=attributes or {},
            wait_until_answered=True,
            ringing_timeout=Duration(seconds=ring_timeout_s),
            max_call_duration=Duration(seconds=max_call_s),
        )
        try:
            with self._errors():
                await self._api().sip.create_sip_participant(req, timeout=ring_timeout_s + 15)
        except CallRejected as exc:
            return DialOutcome("sip_final", exc.sip_status_code, exc.sip_status_reason, exc.message)
        except (TelephonyError, LiveKitRefused) as exc:
            return outcome_of_failed_dial(exc, ring_timeout_s)
        return DialOutcome("answered")

    async def people(self, room: str) -> RoomPeople | None:
        """Who is in the room; None when the room does not exist. Raises ``TelephonyError`` with
        ``no_response`` when LiveKit lists the room but no node answers for it (its node died).

        LiveKit asks the room's own node for its participants (``api.enable_psrpc_for_get_list_
        participants`` in the rendered config): "no response from servers" is also its answer for a
        room that does not exist at all, which its store tells apart."""
        try:
            with self._errors():
                res = await self._api().room.list_participants(api.ListParticipantsRequest(room=room))
        except LiveKitNotFound:
            return None
        except TelephonyError as exc:
            if exc.no_response and not await self._listed(room):
                return None
            raise
        if not res.participants and not await self._listed(room):
            return None
        sip = [dict(p.attributes) for p in res.participants if p.kind == SIP_KIND]
        agents = sum(1 for p in res.participants if p.kind == AGENT_KIND)
        return RoomPeople(sip=sip, agents=agents)

    async def _listed(self, room: str) -> bool:
        """Whether LiveKit's store holds the room (whether or not a node hosts it)."""
        with self._errors():
            res = await self._api().room.list_rooms(api.ListRoomsRequest(names=[room]))
        return bool(res.rooms)

    async def room_names(self) -> list[str]:
        """The names of the rooms LiveKit holds."""
        with self._errors():
            res = await self._api().room.list_rooms(api.ListRoomsRequest())
        return [r.name for r in res.rooms]

    async def agent_jobs(self, room: str) -> int | None:
        """How many agent jobs LiveKit assigned to a worker for the room's dispatches (a dispatch that
        found every worker full, or none at all, has none); None when the room does not exist."""
        try:
            with self._errors():
                dispatches = await self._api().agent_dispatch.list_dispatch(room)
        except LiveKitNotFound:
            return None
        return sum(len(d.state.jobs) for d in dispatches)

    async def redispatch(self, room: str) -> bool:
        """Offer again each of the room's dispatches that no worker took. With several livekit-server
        nodes, the room's node hands a job to the node whose workers claimed the most free room, and
        that claim can be a moment old: when those workers have just filled up, the job is refused and
        LiveKit does not try the other nodes' workers. A new dispatch is claimed afresh."""
        lk = self._api()
        with self._errors():
            dispatches = await lk.agent_dispatch.list_dispatch(room)
        offered = False
        for d in dispatches:
            # livekit-server gives every room a dispatch with no agent name (for workers registered
            # without one): phoneagent's agents are always named, and that one is left alone
            if d.state.jobs or not d.agent_name:
                continue
            with self._errors():
                await lk.agent_dispatch.create_dispatch(
                    api.CreateAgentDispatchRequest(agent_name=d.agent_name, room=room, metadata=d.metadata)
                )
            offered = True
            # the unserved one goes: a job of it still being assigned is ended (livekit-server ends a
            # deleted dispatch's jobs), and a room reloaded on another node does not launch it again
            try:
                with self._errors():
                    await lk.agent_dispatch.delete_dispatch(d.id, room)
            except (TelephonyError, LiveKitNotFound, LiveKitRefused) as exc:
                log.info("could not delete an unserved dispatch", extra={"room": room, "error": str(exc)})
        return offered

    async def end_room(self, room: str) -> None:
        """Hang up everyone in the room: the phone gets a BYE, or, while it rings, 486 Busy Here (an
        inbound call) or a CANCEL (an outbound one).

        A room whose node died (killed; nobody rejoined to bring it back on another node) stays in
        LiveKit's store for ever, and ``DeleteRoom`` asks that dead node ("could not find object", or
        no node answers). ``CreateRoom`` on such a room places it, with its own id, on a node that
        lives, which then deletes it."""
        try:
            await self._delete_room(room)
        except TelephonyError as exc:
            if exc.code in ("timeout", "unreachable"):  # LiveKit itself did not answer
                log.warning("could not delete the room", extra={"room": room, "error": exc.message})
                return
            if not await self._listed(room):
                return
            log.info("the room's node does not answer; placing it on one that does", extra={"room": room})
            await self.create_room(room)
            await self._delete_room(room)

    async def _delete_room(self, room: str) -> None:
        try:
            with self._errors():
                await self._api().room.delete_room(api.DeleteRoomRequest(room=room))
        except LiveKitNotFound:
            pass


def outcome_of_failed_dial(exc: TelephonyError | LiveKitRefused, ring_timeout_s: int) -> DialOutcome:
    """How a dial that LiveKit did not answer with a SIP final response ended (see the module doc)."""
    if exc.code in ("canceled", "deadline_exceeded", "timeout"):
        return DialOutcome("no_answer", detail=f"no answer within {ring_timeout_s} s")
    if exc.code == "unreachable":
        return DialOutcome("failed", detail=exc.message)  # "cannot reach LiveKit: ..."
    what = exc.message.removeprefix("LiveKit API: ").removeprefix(f"{exc.code}: ")
    return DialOutcome("failed", detail=f"{exc.code}: {what.removeprefix('LiveKit refused: ')}")
