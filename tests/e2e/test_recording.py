"""Call recording through livekit-egress, end to end: a real SIP call (baresip, PCMU 8 kHz) to an agent
profile that records; the recording is checked as a person would check it (it is as long as the call,
the caller is on the left and the agent on the right, the agent's words are in it, the two sides are
in time with each other) and as an API client would (ranges, the signed webhook). Then egress is
killed mid-call: the call goes on and ends normally, and the record says why the recording failed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
from livekit import api

from phoneagent.stack.services import Stack
from phoneagent.telephony.client import livekit_api
from tests.e2e.conftest import transcribe
from tests.peers.receiver import WebhookReceiver
from tests.peers.recording import decode, head_missing_s, onset
from tests.peers.sip_phone import BaresipPhone, wait_until
from tests.peers.voices import caller_wav
from tests.peers.wav import speech_seconds, trailing_silence_seconds
from tests.stack_fixtures import PROFILE_GREETING, ControlPlane, WorkerProcess, registered_receiver

QUESTION = "What are your opening hours on Saturday?"
CALLER, AGENT = 0, 1  # channels of a dual recording


@pytest.fixture(scope="module")
def recording_on(control_plane: ControlPlane) -> Iterator[None]:
    """The e2e agent profile records its calls while this module runs."""
    with httpx.Client(base_url=control_plane.url, headers=control_plane.headers, timeout=30) as c:
        r = c.patch(f"/agents/{control_plane.agent_id}", json={"recording": True})
        assert r.status_code == 200 and r.json()["recording_format"] == "ogg", r.text
        assert r.json()["recording_layout"] == "dual"
        yield
        c.patch(f"/agents/{control_plane.agent_id}", json={"recording": False})


@pytest.fixture(scope="module")
def hooks(control_plane: ControlPlane) -> Iterator[WebhookReceiver]:
    with registered_receiver(control_plane, ["recording.ready", "recording.failed", "call.ended"]) as rx:
        yield rx


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def _get(cp: ControlPlane, path: str, **kw: Any) -> httpx.Response:
    return httpx.get(f"{cp.url}{path}", headers={**cp.headers, **kw.pop("headers", {})}, timeout=30, **kw)


def _newest_call(cp: ControlPlane, after: set[str]) -> dict[str, Any] | None:
    items = _get(cp, "/calls").json()["items"]
    fresh = [c for c in items if c["id"] not in after]
    return fresh[0] if fresh else None


def _call_ids(cp: ControlPlane) -> set[str]:
    return {c["id"] for c in _get(cp, "/calls").json()["items"]}


def _webhook(rx: WebhookReceiver, call_id: str, event_type: str, *, timeout: float) -> dict[str, Any]:
    def got() -> bool:
        return any(r.body["data"]["id"] == call_id for r in rx.of_type(event_type))

    wait_until(got, timeout=timeout, what=f"the {event_type} webhook")
    [hit] = [r for r in rx.of_type(event_type) if r.body["data"]["id"] == call_id]
    assert hit.signature_ok
    return dict(hit.body["data"])


def _wait_reply(phone: BaresipPhone, since: int, *, timeout: float = 60) -> None:
    def replied() -> bool:
        tail = phone.received_audio()[since:]
        return speech_seconds(tail) >= 1.0 and trailing_silence_seconds(tail) >= 1.2

    wait_until(replied, timeout=timeout, what="the agent's reply at the caller")


async def _delete_room(settings: Any, room: str) -> None:
    async with livekit_api(settings) as lk:
        await lk.room.delete_room(api.DeleteRoomRequest(room=room))


def _leave_no_room(settings: Any, room: str | None) -> None:
    """The agent stays in the room a while after the caller hung up: later tests must not see it."""
    if room:
        with contextlib.suppress(Exception):
            asyncio.run(_delete_room(settings, room))


async def _agent_tracks(settings: Any, room: str) -> list[api.TrackInfo]:
    async with livekit_api(settings) as lk:
        res = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
    return [t for p in res.participants if p.kind == api.ParticipantInfo.Kind.AGENT for t in p.tracks]


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_recorded_call_is_dual_channel_as_long_as_the_call_aligned_and_served_with_ranges(
    stack: Stack,
    control_plane: ControlPlane,
    worker: WorkerProcess,
    recording_on: None,
    hooks: WebhookReceiver,
    whisper_tiny: object,
    voice: object,
    tmp_path: Path,
) -> None:
    settings = stack.settings
    cp = control_plane
    before = _call_ids(cp)
    question = caller_wav(tmp_path / "q.wav", QUESTION, voice)
    phone = BaresipPhone(tmp_path / "phone", rtp_ports=(45000, 45049)).start()
    try:
        phone.dial(f"sip:{settings.dev_number}@{settings.bind_host}:{settings.sip_port}", timeout=30)
        phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.2, timeout=90)  # the greeting
        greeting_heard = phone.received_audio()
        call = _newest_call(cp, before)
        assert call is not None
        # the agent publishes its audio without Opus DTX (with DTX egress misplaces speech in time)
        tracks = asyncio.run(_agent_tracks(settings, call["room_name"]))
        assert tracks and all(t.disable_dtx for t in tracks), tracks
        wait_until(
            lambda: _get(cp, f"/calls/{call['id']}").json()["recording_status"] == "recording",
            timeout=30,
            what="both track recordings to start",
        )

        # three questions: a call of about 25 s, as calls are
        for _ in range(3):
            mark = phone.received_audio().size
            phone.play(question)
            _wait_reply(phone, mark)
        hang = phone.hangup()
        assert phone.bye_confirmed(since=hang, timeout=15)
    finally:
        phone.close()

    try:
        ready = _webhook(hooks, call["id"], "recording.ready", timeout=90)
    finally:
        _leave_no_room(settings, call["room_name"])
    detail = _get(cp, f"/calls/{call['id']}").json()
    assert (detail["status"], detail["end_reason"]) == ("ended", "customer_hangup")
    assert detail["recording_status"] == "ready" and detail["recording_error"] is None, detail
    assert [(t["role"], t["status"]) for t in detail["recording_tracks"]] == [
        ("caller", "complete"),
        ("agent", "complete"),
    ]
    assert detail["recording_egress_id"] == ",".join(t["egress_id"] for t in detail["recording_tracks"])
    assert ready["recording"]["status"] == "ready"
    assert ready["recording"]["location"] == detail["recording_location"]
    assert detail["recording_location"].endswith(f"/{call['id']}.ogg")
    assert (settings.recordings_path / detail["recording_location"]).is_file()

    # served whole and in ranges, as a player asks for it
    url = f"/calls/{call['id']}/recording"
    whole = _get(cp, url)
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/ogg"
    body = whole.content
    assert len(body) == detail["recording_size_bytes"] and body[:4] == b"OggS"
    first = _get(cp, url, headers={"Range": "bytes=0-999"})
    assert first.status_code == 206 and first.content == body[:1000]
    assert first.headers["content-range"] == f"bytes 0-999/{len(body)}"
    rest = _get(cp, url, headers={"Range": "bytes=1000-"})
    assert rest.status_code == 206 and first.content + rest.content == body
    (tmp_path / "recording.ogg").write_bytes(body)

    rec = decode(tmp_path / "recording.ogg")
    assert rec.channels.shape[0] == 2
    call_s = detail["duration_ms"] / 1000
    print(
        f"[recording] call {call_s:.2f} s, recording {rec.duration_s:.2f} s "
        f"(reported {detail['recording_duration_ms'] / 1000:.2f} s); recording started "
        f"{(_at(detail['recording_started_at']) - _at(detail['answered_at'])).total_seconds():.2f} s "
        "after the answer"
    )
    assert abs(rec.duration_s - call_s) <= 0.1 * call_s, (rec.duration_s, call_s)
    assert abs(rec.duration_s - detail["recording_duration_ms"] / 1000) < 0.1

    # each side on its own channel: the agent's turns on the right, the caller's on the left
    origin = _at(detail["recording_started_at"])
    turns = [t for t in detail["transcript"] if t["started_at"] and t["ended_at"]]
    agent_turns = [t for t in turns if t["speaker"] == "agent"]
    caller_turns = [t for t in turns if t["speaker"] == "caller"]
    assert agent_turns and caller_turns, turns
    for t in turns:
        a = (_at(t["started_at"]) - origin).total_seconds() + 0.3
        b = (_at(t["ended_at"]) - origin).total_seconds() - 0.3
        if b - a < 0.5:
            continue
        own, other = (AGENT, CALLER) if t["speaker"] == "agent" else (CALLER, AGENT)
        print(
            f"[recording] {t['speaker']} turn {a:.2f}-{b:.2f} s: rms own {rec.rms(own, a, b):.4f} "
            f"other {rec.rms(other, a, b):.4f}"
        )
        assert rec.rms(own, a, b) > 10 * rec.rms(other, a, b) + 1e-4, t

    # in time with each other: the caller's question and the agent's reply to it follow each other in
    # the file as they did on the line (the reply starts the measured turn latency after the question)
    question_span = [s for s in rec.speech_spans(CALLER) if s[1] - s[0] > 1.0][-1]
    reply_start = min(s[0] for s in rec.speech_spans(AGENT) if s[0] > question_span[0])
    gap = reply_start - question_span[1]
    reply_turn = next(t for t in agent_turns if _at(t["started_at"]) > _at(caller_turns[-1]["started_at"]))
    print(
        f"[recording] question {question_span[0]:.2f}-{question_span[1]:.2f} s, reply at "
        f"{reply_start:.2f} s: gap {gap:.3f} s; the worker measured {reply_turn['total_ms']} ms "
        "from end of speech to first audio"
    )
    assert gap > 0 and abs(gap - reply_turn["total_ms"] / 1000) < 0.4

    # the greeting whole: what the caller heard from its first sound is on the agent's channel from
    # its start (egress starts recording the agent's track 1.3-2.3 s late: the worker's copy of the
    # greeting is joined in front), and the agent greeted at once, not waiting for egress
    heard = greeting_heard[max(0, onset(greeting_heard, 8000)) :]
    agent_8k = np.round(decode(tmp_path / "recording.ogg", rate=8000).channels[AGENT] * 32767)
    missing = head_missing_s(heard, agent_8k, 8000)
    greeted_after = (_at(agent_turns[0]["started_at"]) - _at(detail["answered_at"])).total_seconds()
    print(
        f"[recording] greeting missing from the recording: {missing * 1000:.0f} ms; the agent greeted "
        f"{greeted_after:.2f} s after the answer"
    )
    assert missing < 0.2, missing
    assert greeted_after < 1.0, greeted_after

    # what the recording says: the greeting on the agent's channel (its own span: the whole channel,
    # three replies and long silences, made tiny.en drop words), the questions on the caller's
    hello = agent_turns[0]
    a, b = ((_at(hello[k]) - origin).total_seconds() for k in ("started_at", "ended_at"))
    greeting_wav = rec.channel_wav(AGENT, tmp_path / "agent.wav", start_s=a - 0.5, end_s=b + 0.5)
    agent_heard = _words(transcribe(whisper_tiny, str(greeting_wav)))
    assert {"thank", "calling", "dental", "help"} <= agent_heard, sorted(agent_heard)
    greeting = _words(PROFILE_GREETING)
    assert len(greeting & agent_heard) >= 0.8 * len(greeting)
    caller_heard = _words(transcribe(whisper_tiny, str(rec.channel_wav(CALLER, tmp_path / "caller.wav"))))
    assert {"hours", "saturday"} <= caller_heard, sorted(caller_heard)

    # the track files are gone: only the merged recording is kept
    assert not any((settings.recordings_path / ".tracks" / call["id"]).glob("*"))


def _kill_egress(stack: Stack) -> set[int]:
    """SIGKILL egress and every handler it runs (a crash: nothing gets to clean up or report)."""
    pid = json.loads(stack.paths.pidfile("egress").read_text())["pid"]
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    for p in procs:
        p.kill()
    psutil.wait_procs(procs, timeout=10)
    return {p.pid for p in procs}


def test_egress_killed_mid_call_the_call_goes_on_and_the_recording_says_why_it_failed(
    stack: Stack,
    control_plane: ControlPlane,
    worker: WorkerProcess,
    recording_on: None,
    hooks: WebhookReceiver,
    voice: object,
    tmp_path: Path,
) -> None:
    settings = stack.settings
    cp = control_plane
    before = _call_ids(cp)
    question = caller_wav(tmp_path / "q.wav", QUESTION, voice)
    call = None
    phone = BaresipPhone(tmp_path / "phone", rtp_ports=(45100, 45149)).start()
    try:
        phone.dial(f"sip:{settings.dev_number}@{settings.bind_host}:{settings.sip_port}", timeout=30)
        phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.2, timeout=90)  # the greeting
        call = _newest_call(cp, before)
        assert call is not None
        wait_until(
            lambda: _get(cp, f"/calls/{call['id']}").json()["recording_status"] == "recording",
            timeout=30,
            what="both track recordings to start",
        )
        killed = _kill_egress(stack)
        assert "egress" in [s.name for s in stack.status() if not s.running]

        # noticed while the call goes on: egress's processes no longer answer
        failed = _webhook(hooks, call["id"], "recording.failed", timeout=45)
        assert failed["status"] == "in_progress"
        assert "egress stopped responding" in failed["recording"]["error"]

        mark = phone.received_audio().size
        phone.play(question)
        _wait_reply(phone, mark)  # the agent still answers
        hang = phone.hangup()
        assert phone.bye_confirmed(since=hang, timeout=15)
    finally:
        phone.close()
        stack.up(progress=lambda m: print(f"[stack] {m}"))  # egress dead: started again
        _leave_no_room(settings, call["room_name"] if call else None)
    assert all(s.healthy for s in stack.status())

    ended = _webhook(hooks, call["id"], "call.ended", timeout=30)
    assert ended["end_reason"] == "customer_hangup" and ended["recording"]["status"] == "failed"
    detail = _get(cp, f"/calls/{call['id']}").json()
    assert (detail["status"], detail["end_reason"]) == ("ended", "customer_hangup")
    assert detail["recording_status"] == "failed" and detail["recording_location"] is None
    assert "egress stopped responding" in detail["recording_error"], detail["recording_error"]
    assert {t["status"] for t in detail["recording_tracks"]} == {"lost"}
    assert _get(cp, f"/calls/{call['id']}/recording").status_code == 404
    assert not psutil.pid_exists(min(killed)) or psutil.Process(min(killed)).status() == "zombie"
    # nothing of the partial track files is left behind
    assert not any((settings.recordings_path / ".tracks" / call["id"]).glob("*.ogg"))


@contextlib.contextmanager
def _full_disk(path: Path) -> Iterator[None]:
    """``path`` on a small file system (tmpfs) of its own, filled to the last byte, while in use."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(path)], check=True)
    try:
        with contextlib.suppress(OSError), (path / "filler").open("wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def test_the_recordings_disk_full_the_call_is_answered_and_the_recording_fails_saying_why(
    stack: Stack,
    control_plane: ControlPlane,
    worker: WorkerProcess,
    recording_on: None,
    hooks: WebhookReceiver,
    voice: object,
    tmp_path: Path,
) -> None:
    settings = stack.settings
    cp = control_plane
    before = _call_ids(cp)
    question = caller_wav(tmp_path / "q.wav", QUESTION, voice)
    call = None
    with _full_disk(settings.recordings_path / ".tracks"):
        phone = BaresipPhone(tmp_path / "phone", rtp_ports=(45150, 45199)).start()
        try:
            phone.dial(f"sip:{settings.dev_number}@{settings.bind_host}:{settings.sip_port}", timeout=30)
            phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.2, timeout=90)  # the greeting
            call = _newest_call(cp, before)
            assert call is not None
            mark = phone.received_audio().size
            phone.play(question)
            _wait_reply(phone, mark)  # the agent answers, the disk full or not
            hang = phone.hangup()
            assert phone.bye_confirmed(since=hang, timeout=15)
        finally:
            phone.close()
            _leave_no_room(settings, call["room_name"] if call else None)
        failed = _webhook(hooks, call["id"], "recording.failed", timeout=60)
    print(f"[disk full] recording error: {failed['recording']['error']}")
    assert all(s.healthy for s in stack.status())  # egress too: nothing else broke
    ended = _webhook(hooks, call["id"], "call.ended", timeout=30)
    assert ended["end_reason"] == "customer_hangup" and ended["recording"]["status"] == "failed"
    detail = _get(cp, f"/calls/{call['id']}").json()
    assert (detail["status"], detail["end_reason"]) == ("ended", "customer_hangup")
    assert detail["recording_status"] == "failed" and detail["recording_location"] is None
    assert "space" in detail["recording_error"].lower(), detail["recording_error"]
