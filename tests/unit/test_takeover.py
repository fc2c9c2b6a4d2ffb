"""One agent per call after livekit-server restarts: the agent that has the call keeps it, a job sent
again to the live call leaves once that agent is back, and takes over only if it never comes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from livekit import rtc

from phoneagent.worker.takeover import call_already_up, call_has_its_agent

pytestmark = pytest.mark.unit

AGENT = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
SIP = rtc.ParticipantKind.PARTICIPANT_KIND_SIP


@dataclass
class _Participant:
    identity: str
    kind: rtc.ParticipantKind.ValueType
    attributes: dict[str, str] = field(default_factory=dict)


class _Room(rtc.EventEmitter[str]):
    """What the rule reads of an rtc.Room: its name, who is in it, and its events."""

    def __init__(self, *people: _Participant) -> None:
        super().__init__()
        self.name = "dsp_x"
        self.remote_participants = {p.identity: p for p in people}

    def join(self, p: _Participant) -> None:
        self.remote_participants[p.identity] = p
        self.emit("participant_connected", p)


def _phone(status: str) -> _Participant:
    return _Participant("sip_caller", SIP, {"sip.callStatus": status})


def test_a_job_for_a_ringing_phone_is_a_new_call_and_one_for_an_answered_phone_is_not() -> None:
    new = {"room_age_s": 0.4}
    assert not call_already_up(_Room(_phone("ringing")), **new)  # type: ignore[arg-type]
    assert call_already_up(_Room(_phone("active")), **new)  # type: ignore[arg-type]
    # a restored room: the rejoined phone says nothing yet, but the room is as old as the call
    assert call_already_up(_Room(_Participant("sip_caller", SIP)), room_age_s=25.0)  # type: ignore[arg-type]
    # the phone is rejoining the restored room, the call's agent is back already
    assert call_already_up(_Room(_Participant("agent-old", AGENT)), **new)  # type: ignore[arg-type]
    assert not call_already_up(_Room(), **new)  # type: ignore[arg-type]  # nobody: the caller left


def test_the_job_leaves_once_the_calls_own_agent_is_back_and_takes_over_when_it_never_comes() -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        present = _Room(_phone("active"), _Participant("agent-old", AGENT))
        at_once = await call_has_its_agent(present, within_s=5)  # type: ignore[arg-type]
        later = _Room(_phone("active"))
        asyncio.get_running_loop().call_later(0.05, later.join, _Participant("agent-old", AGENT))
        came_back = await call_has_its_agent(later, within_s=5)  # type: ignore[arg-type]
        gone = await call_has_its_agent(_Room(_phone("active")), within_s=0.1)  # type: ignore[arg-type]
        return at_once, came_back, gone

    assert asyncio.run(scenario()) == (True, True, False)
