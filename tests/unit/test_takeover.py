"""One agent per call after livekit-server restarts: the agent that has the call keeps it, a job sent
again to the live call leaves once that agent is back, and takes over only if it never comes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import pytest
from livekit import rtc

from phoneagent.worker.takeover import (
    ANSWERED,
    TOOK_OVER,
    Handover,
    call_already_up,
    call_has_its_agent,
    marked_answered,
)

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

        self.local_participant = self
        self.metadata = ""
        self.attributes: dict[str, str] = {}

    def join(self, p: _Participant) -> None:
        self.remote_participants[p.identity] = p
        self.emit("participant_connected", p)

    async def set_attributes(self, attributes: dict[str, str]) -> None:  # the local participant's
        self.attributes |= attributes


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


def test_a_room_marked_answered_is_a_call_already_up_however_young_and_whatever_its_phone_says() -> None:
    # livekit-sip's phone rejoins a restored room without its "active" status, 6 s into the call
    rejoined = _Room(_phone("ringing"))
    marked = json.dumps({ANSWERED: True})
    assert call_already_up(rejoined, room_age_s=6.0, room_metadata=marked)  # type: ignore[arg-type]
    rejoined.metadata = marked  # as the room itself says, once joined
    assert call_already_up(rejoined, room_age_s=6.0)  # type: ignore[arg-type]
    assert not call_already_up(_Room(_phone("ringing")), room_age_s=6.0, room_metadata="")  # type: ignore[arg-type]
    for other in ("", "not json", "[1]", json.dumps({ANSWERED: False}), json.dumps({"x": 1})):
        assert not marked_answered(other), other


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


def test_the_calls_own_agent_back_after_a_takeover_leaves_and_the_one_that_took_over_stays() -> None:
    async def scenario() -> tuple[list[str], list[str], dict[str, str]]:
        # the job that waited in vain takes the call over and marks itself; it never leaves for that
        room_new = _Room(_phone("active"))
        left_new: list[str] = []
        new = Handover(room_new, lambda: left_new.append("new"))  # type: ignore[arg-type]
        await new.take_over()
        room_new.join(_Participant("agent-old", AGENT))
        # the call's own agent: its reconnect brings it back to a room where a marked agent is
        old_room = _Room(_phone("active"), _Participant("agent-new", AGENT, {TOOK_OVER: "1"}))
        left_old: list[str] = []
        Handover(old_room, lambda: left_old.append("old"))  # type: ignore[arg-type]
        old_room.emit("reconnected")
        old_room.emit("participant_attributes_changed", {}, old_room.remote_participants["agent-new"])
        return left_new, left_old, room_new.attributes

    assert asyncio.run(scenario()) == ([], ["old"], {TOOK_OVER: "1"})


def test_an_agent_leaves_when_the_other_marks_itself_and_not_for_an_unmarked_job() -> None:
    waiting = _Participant("agent-new", AGENT)
    room = _Room(_phone("active"))
    left: list[str] = []
    Handover(room, lambda: left.append("old"))  # type: ignore[arg-type]
    room.join(waiting)  # a job that waits for this agent: it is the one that leaves, not this one
    assert left == []
    waiting.attributes[TOOK_OVER] = "1"  # it took over an instant before this agent came back
    room.emit("participant_attributes_changed", {TOOK_OVER: "1"}, waiting)
    assert left == ["old"]
