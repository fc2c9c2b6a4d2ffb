"""One agent per call after livekit-server restarts: the job that reconnected gives way."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from livekit import rtc

from phoneagent.worker.takeover import GiveWayAfterReconnect

pytestmark = pytest.mark.unit


@dataclass
class _Participant:
    identity: str
    kind: rtc.ParticipantKind.ValueType


class _Room(rtc.EventEmitter[str]):
    """What the rule reads of an rtc.Room: its name, who is in it, and its events."""

    def __init__(self) -> None:
        super().__init__()
        self.name = "dsp_x"
        self.remote_participants: dict[str, _Participant] = {
            "sip_caller": _Participant("sip_caller", rtc.ParticipantKind.PARTICIPANT_KIND_SIP)
        }

    def join(self, identity: str, kind: rtc.ParticipantKind.ValueType) -> None:
        self.remote_participants[identity] = p = _Participant(identity, kind)
        self.emit("participant_connected", p)


AGENT = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT


def _guarded() -> tuple[_Room, list[str]]:
    room, left = _Room(), []
    GiveWayAfterReconnect(room, lambda: left.append("left"))  # type: ignore[arg-type]
    return room, left


def test_the_job_that_reconnected_leaves_to_the_new_agent_once() -> None:
    room, left = _guarded()
    room.emit("reconnected")
    assert left == []  # no other agent yet: a network blip changes nothing
    room.join("agent-AJ_new", AGENT)
    room.join("agent-AJ_third", AGENT)
    assert left == ["left"]


def test_an_agent_already_there_at_the_reconnect_is_seen() -> None:
    room, left = _guarded()
    room.remote_participants["agent-AJ_new"] = _Participant("agent-AJ_new", AGENT)
    room.emit("reconnected")
    assert left == ["left"]


def test_a_job_that_never_reconnected_stays_and_a_new_phone_is_no_agent() -> None:
    room, left = _guarded()
    room.join("agent-AJ_old", AGENT)  # the new job sees the old one rejoin: it keeps the call
    assert left == []
    room.remote_participants.pop("agent-AJ_old")  # it gave way
    room.emit("reconnected")  # a later network blip
    room.join("sip_other", rtc.ParticipantKind.PARTICIPANT_KIND_SIP)
    assert left == []
