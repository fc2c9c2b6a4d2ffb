"""What the rest of phoneagent needs from telephony: the protocols its use cases are written against.

``phoneagent.telephony`` holds the one LiveKit implementation of each (``LiveKitCalls``,
``LiveKitEgress``, ``LiveKitSip``); the tests plug fakes in here (``tests/peers/fake_telephony.py``).
Every method raises phoneagent errors only (``phoneagent.errors``: ``TelephonyError`` and its
subclasses, ``LiveKitRefused``), never LiveKit's or aiohttp's own; a ``retryable`` one is worth
another try later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from phoneagent.telephony.calls import DialOutcome, RoomPeople
from phoneagent.telephony.egress import CallTracks, EgressState
from phoneagent.telephony.sip import InboundSpec, LiveKitObject, OutboundSpec, RuleSpec

__all__ = [
    "CallControl",
    "CallTracks",
    "DialOutcome",
    "EgressControl",
    "EgressState",
    "InboundSpec",
    "LiveKitObject",
    "OutboundSpec",
    "RoomPeople",
    "RuleSpec",
    "SipProvisioning",
]


class CallControl(Protocol):
    """Placing and ending calls: the dialer's, the sweeper's and the hang-up route's view of LiveKit."""

    async def create_room(self, room: str) -> None:
        """Create the room (a warm transfer's consultation leg: the caller's agent joins it)."""
        ...

    async def dispatch_agent(self, room: str, agent_name: str, metadata: dict[str, Any]) -> None:
        """Create the room and send the agent into it."""
        ...

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
        """Ring the number until it answers, refuses or the ring timeout passes; never raises for
        the callee's answer (that is the outcome)."""
        ...

    async def people(self, room: str) -> RoomPeople | None:
        """Who is in the room; None when the room does not exist."""
        ...

    async def room_names(self) -> list[str]:
        """The names of the rooms LiveKit holds."""
        ...

    async def agent_jobs(self, room: str) -> int | None:
        """How many agent jobs were assigned to a worker in the room; None when the room is gone."""
        ...

    async def redispatch(self, room: str) -> bool:
        """Offer the room's agent dispatches that no worker took to the workers again (a new dispatch
        with the same agent and metadata each, the old one deleted); whether any was offered."""
        ...

    async def end_room(self, room: str) -> None:
        """Hang up everyone in the room; a room that is gone already is no error."""
        ...

    async def aclose(self) -> None: ...


class EgressControl(Protocol):
    """Recording a call's audio tracks: the recorder's view of LiveKit egress."""

    async def tracks(self, room: str) -> CallTracks | None: ...

    async def start_track(self, *, room: str, track_id: str, filepath: str) -> EgressState: ...

    async def state(self, egress_id: str) -> EgressState | None: ...

    async def answers(self, egress_id: str) -> bool | None:
        """Whether the egress's own process answers (True), does not (False), or it is over (None)."""
        ...

    async def stop(self, egress_id: str) -> bool:
        """Ask the egress to finish its file; False when its process does not answer."""
        ...

    async def aclose(self) -> None: ...


class SipProvisioning(Protocol):
    """SIP trunks and dispatch rules (blocking: the resource routes run in a thread pool)."""

    def create_inbound(self, spec: InboundSpec, tag: str) -> str: ...

    def update_inbound(self, trunk_id: str, spec: InboundSpec, tag: str) -> None: ...

    def create_outbound(self, spec: OutboundSpec, tag: str) -> str: ...

    def update_outbound(self, trunk_id: str, spec: OutboundSpec, tag: str) -> None: ...

    def delete_trunk(self, trunk_id: str) -> None: ...

    def create_rule(self, spec: RuleSpec, tag: str) -> str: ...

    def update_rule(self, rule_id: str, spec: RuleSpec, tag: str) -> None: ...

    def delete_rule(self, rule_id: str) -> None: ...

    def list_all(self) -> list[LiveKitObject]: ...


if TYPE_CHECKING:  # the LiveKit implementations are checked against the protocols here, by mypy
    from phoneagent.telephony.calls import LiveKitCalls
    from phoneagent.telephony.egress import LiveKitEgress
    from phoneagent.telephony.sip import LiveKitSip

    _calls: type[CallControl] = LiveKitCalls
    _egress: type[EgressControl] = LiveKitEgress
    _sip: type[SipProvisioning] = LiveKitSip
