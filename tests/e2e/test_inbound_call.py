"""A real phone call: baresip dials livekit-sip over UDP on loopback with PCMU 8 kHz; the agent
answers and greets with local Piper TTS; the caller records what it hears, then hangs up."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from livekit import api

from phoneagent.config import Settings
from phoneagent.stack.services import Stack
from tests.e2e.conftest import assert_greeting_heard, transcribe
from tests.peers.livekit_rooms import call_rooms
from tests.peers.processes import assert_all_gone
from tests.peers.sip_phone import BaresipPhone, wait_until
from tests.peers.wav import speech_seconds
from tests.stack_fixtures import ControlPlane, WorkerProcess

AGENT_STATE = "lk.agent.state"


def _agent_states(settings: Settings) -> set[str]:
    states = set()
    for participants in call_rooms(settings).values():
        for p in participants:
            if p.kind == api.ParticipantInfo.Kind.AGENT:
                states.add(p.attributes.get(AGENT_STATE, ""))
    return states


def _sip_participants(settings: Settings) -> int:
    return sum(
        1
        for participants in call_rooms(settings).values()
        for p in participants
        if p.kind == api.ParticipantInfo.Kind.SIP
    )


def _agents_in_rooms(settings: Settings) -> int:
    return sum(
        1
        for participants in call_rooms(settings).values()
        for p in participants
        if p.kind == api.ParticipantInfo.Kind.AGENT
    )


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def test_caller_hears_greeting_and_caller_hangup_ends_call_with_bye(
    stack: Stack, control_plane: ControlPlane, worker: WorkerProcess, whisper_tiny: object, tmp_path: Path
) -> None:
    settings = stack.settings
    phone = BaresipPhone(tmp_path / "phone", rtp_ports=(41000, 41049)).start()
    try:
        phone.dial(f"sip:{settings.dev_number}@{settings.bind_host}:{settings.sip_port}", timeout=30)

        # the greeting arrives: speech at the caller, then the agent goes back to listening
        wait_until(
            lambda: speech_seconds(phone.received_audio()) > 1.0,
            timeout=60,
            what="the agent's speech at the caller",
        )
        wait_until(
            lambda: "listening" in _agent_states(settings),
            timeout=60,
            what="the agent to finish its greeting",
        )
        # one more second of line audio after that, so the greeting's tail has crossed the bridge
        heard = phone.received_audio().size
        wait_until(
            lambda: phone.received_audio().size >= heard + 8000,
            timeout=20,
            what="one more second of audio at the caller",
        )
        assert _sip_participants(settings) == 1

        mark = phone.hangup()
        assert phone.bye_confirmed(since=mark, timeout=15)
        # livekit-sip took the BYE: the caller's participant leaves the room
        wait_until(
            lambda: _sip_participants(settings) == 0,
            timeout=30,
            what="the SIP participant to leave after BYE",
        )
        # and the agent's job with it: its place on the worker is free for the next caller
        wait_until(
            lambda: _agents_in_rooms(settings) == 0,
            timeout=10,
            what="the agent to leave the room after the caller hung up",
        )
    finally:
        code = phone.close()
    assert code == 0
    assert_all_gone({phone.pid} if phone.pid else set())

    received = phone.received_wav()
    assert received is not None
    # the agent profile's greeting, fetched by the worker
    assert_greeting_heard(transcribe(whisper_tiny, str(received)))

    # the control plane kept the record, from LiveKit's signed webhooks alone
    def ended_call() -> dict[str, Any] | None:
        items = httpx.get(f"{control_plane.url}/calls", headers=control_plane.headers, timeout=10).json()[
            "items"
        ]
        return items[0] if items and items[0]["status"] == "ended" else None

    wait_until(lambda: ended_call() is not None, timeout=30, what="the call record to end")
    call = ended_call()
    assert call is not None
    assert (call["direction"], call["end_reason"], call["agent_profile_id"]) == (
        "inbound",
        "customer_hangup",
        control_plane.agent_id,
    )
    assert call["to_number"] == settings.dev_number and call["duration_ms"] > 3000
