"""A conversation over a real SIP call: the caller (another voice, 8 kHz PCMU) asks, the scripted
agent answers what the script says, and on "goodbye" the agent says goodbye and hangs up (BYE)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from phoneagent.stack.services import Stack
from tests.e2e.conftest import transcribe
from tests.peers.sip_phone import BaresipPhone, wait_until
from tests.peers.voices import caller_wav
from tests.peers.wav import speech_seconds, trailing_silence_seconds, write_wav
from tests.stack_fixtures import ControlPlane, WorkerProcess


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def _wait_reply(phone: BaresipPhone, since: int, *, timeout: float = 60) -> np.ndarray:
    """Everything the caller heard after sample ``since`` once a reply was spoken and followed by silence."""

    def replied() -> bool:
        tail = phone.received_audio()[since:]
        return speech_seconds(tail) >= 1.0 and trailing_silence_seconds(tail) >= 1.2

    wait_until(replied, timeout=timeout, what="the agent's reply at the caller")
    return phone.received_audio()[since:]


def _heard(whisper: object, audio: np.ndarray, path: Path) -> set[str]:
    return _words(transcribe(whisper, str(write_wav(path, audio, 8000))))


def test_caller_asks_agent_answers_by_script_then_hangs_up_after_goodbye(
    stack: Stack,
    control_plane: ControlPlane,
    worker: WorkerProcess,
    whisper_tiny: object,
    voice: object,
    tmp_path: Path,
) -> None:
    settings = stack.settings
    question = caller_wav(tmp_path / "q.wav", "What are your opening hours on Saturday?", voice)
    goodbye = caller_wav(tmp_path / "bye.wav", "No thanks, goodbye.", voice)
    phone = BaresipPhone(tmp_path / "phone", rtp_ports=(43000, 43049)).start()
    try:
        phone.dial(f"sip:{settings.dev_number}@{settings.bind_host}:{settings.sip_port}", timeout=30)
        phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.2, timeout=90)  # the greeting

        mark = phone.received_audio().size
        phone.play(question)
        reply = _heard(whisper_tiny, _wait_reply(phone, mark), tmp_path / "reply.wav")
        assert {"monday", "friday", "saturday"} <= reply, reply  # the script's "hours" answer

        mark = phone.received_audio().size
        since = phone.play(goodbye)
        phone.wait_for_remote_bye(since=since, timeout=60)
        bye = _heard(whisper_tiny, phone.received_audio()[mark:], tmp_path / "bye-heard.wav")
        # the script's goodbye, "Thank you for calling. Goodbye.", heard in full before the BYE
        # (tiny.en writes the last word as "bye" or "goodbye")
        assert {"thank", "calling"} <= bye and bye & {"goodbye", "bye"}, bye
    finally:
        phone.close()

    def ended() -> dict[str, Any] | None:
        items = httpx.get(f"{control_plane.url}/calls", headers=control_plane.headers, timeout=10).json()[
            "items"
        ]
        done = [c for c in items if c["status"] == "ended" and c["end_reason"] == "agent_hangup"]
        return done[0] if done else None

    def ended_with_evidence() -> bool:
        call = ended()
        return call is not None and call["disconnect_reason"] is not None

    # the worker's report ends the record; LiveKit's webhook adds its evidence (may come second)
    wait_until(ended_with_evidence, timeout=30, what="the call record to end as agent_hangup, with evidence")
    call = ended()
    assert call is not None and call["disconnect_reason"] == "ROOM_DELETED"

    # every turn reached the control plane through the worker's event spool, with the latency split
    def transcript() -> list[dict[str, Any]]:
        url = f"{control_plane.url}/calls/{call['id']}"
        return list(httpx.get(url, headers=control_plane.headers, timeout=10).json()["transcript"])

    try:
        wait_until(lambda: len(transcript()) >= 5, timeout=30, what="five turns in the call record")
    finally:
        turns = transcript()
        print("turns:", [(t["seq"], t["speaker"], t["text"]) for t in turns])
    assert [t["speaker"] for t in turns[:5]] == ["agent", "caller", "agent", "caller", "agent"]
    assert "hours" in turns[1]["text"].lower() and turns[2]["text"].startswith("We are open")
    answer = turns[2]
    assert answer["total_ms"] is not None and answer["total_ms"] > 0
    assert answer["stt_ms"] is not None and answer["tts_ms"] is not None
