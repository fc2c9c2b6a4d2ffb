"""The egress adapter against the real stack (livekit-server v1.13.5, egress v1.8.6): a TrackEgress
records a published Opus track into an OGG file, the probe tells a live egress from a killed one
(which livekit-server keeps reporting ACTIVE), and a request nobody takes is EgressUnavailable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import psutil
from livekit import api, rtc

from phoneagent.errors import EgressUnavailable
from phoneagent.stack.services import Stack
from phoneagent.telephony.client import livekit_credentials
from phoneagent.telephony.egress import LiveKitEgress
from tests.peers.recording import decode, tone_share


async def _publish_tone(
    stack: Stack, room_name: str, freq: float
) -> tuple[rtc.Room, str, asyncio.Task[None]]:
    """An agent in ``room_name`` publishing a tone without DTX, as phoneagent's worker publishes."""
    creds = livekit_credentials(stack.settings)
    token = (
        api.AccessToken(creds.api_key, creds.api_secret)
        .with_identity("agent")
        .with_kind("agent")
        .with_grants(api.VideoGrants(room_join=True, room=room_name))
        .to_jwt()
    )
    room = rtc.Room()
    await room.connect(creds.url, token)
    source = rtc.AudioSource(48_000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("agent", source)
    opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE, dtx=False)
    pub = await room.local_participant.publish_track(track, opts)

    async def feed() -> None:
        n = 0
        while True:
            t = (np.arange(480) + n) / 48_000
            n += 480
            frame = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)
            await source.capture_frame(rtc.AudioFrame(frame.tobytes(), 48_000, 1, 480))

    return room, pub.sid, asyncio.create_task(feed())


async def _published(egress: LiveKitEgress, room: str, track_id: str) -> bool:
    """Whether LiveKit lists the agent's track in the room yet."""
    tracks = await egress.tracks(room)
    return tracks is not None and tracks.agent == track_id


async def _until(predicate: Callable[[], Awaitable[bool]], within_s: float) -> None:
    """Poll LiveKit (it tells nothing by itself) until ``predicate`` holds."""
    async with asyncio.timeout(within_s):
        while True:
            if await predicate():
                return
            await asyncio.sleep(0.2)


def test_a_track_egress_records_the_track_answers_the_probe_and_stops(stack: Stack, tmp_path: Path) -> None:
    async def run() -> None:
        egress = LiveKitEgress(stack.settings)
        room, track_id, feeding = await _publish_tone(stack, f"adapter-{tmp_path.name}", 1000.0)
        try:
            await _until(lambda: _published(egress, room.name, track_id), 15)
            tracks = await egress.tracks(room.name)
            assert tracks is not None and tracks.agent == track_id and tracks.caller is None
            started = await egress.start_track(
                room=room.name, track_id=track_id, filepath=str(tmp_path / "a.ogg")
            )
            assert started.status == "starting" and started.track_id == track_id

            async def active() -> bool:
                st = await egress.state(started.egress_id)
                return st is not None and st.status == "active"

            await _until(active, 15)
            assert await egress.answers(started.egress_id) is True
            await asyncio.sleep(2.0)  # not a wait for an event: two seconds of tone to record
            assert await egress.stop(started.egress_id) is True

            async def ended() -> bool:
                st = await egress.state(started.egress_id)
                return st is not None and st.ended

            await _until(ended, 20)
            done = await egress.state(started.egress_id)
            assert done is not None and done.status == "complete" and done.filename == str(tmp_path / "a.ogg")
            assert done.file_started_ns and done.file_duration_ns and done.file_duration_ns > 1_500_000_000
            assert await egress.answers(started.egress_id) is None  # over: nothing to probe
        finally:
            feeding.cancel()
            await room.disconnect()
            await egress.aclose()

    asyncio.run(run())
    rec = decode(tmp_path / "a.ogg")
    assert tone_share(rec, 0, 1000.0, 0.5, rec.duration_s - 0.5) > 0.9


def test_a_killed_egress_answers_no_probe_or_stop_and_takes_no_request(stack: Stack, tmp_path: Path) -> None:
    async def run() -> None:
        egress = LiveKitEgress(stack.settings)
        room, track_id, feeding = await _publish_tone(stack, f"adapter-{tmp_path.name}", 440.0)
        try:
            await _until(lambda: _published(egress, room.name, track_id), 15)
            started = await egress.start_track(
                room=room.name, track_id=track_id, filepath=str(tmp_path / "a.ogg")
            )

            async def active() -> bool:
                st = await egress.state(started.egress_id)
                return st is not None and st.status == "active"

            await _until(active, 15)
            pid = json.loads(stack.paths.pidfile("egress").read_text())["pid"]
            procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
            for p in procs:
                p.kill()
            psutil.wait_procs(procs, timeout=10)

            assert await egress.answers(started.egress_id) is False
            assert await egress.stop(started.egress_id) is False
            still = await egress.state(started.egress_id)
            assert still is not None and still.status == "active"  # livekit-server never learns otherwise
            try:
                await egress.start_track(room=room.name, track_id=track_id, filepath=str(tmp_path / "b.ogg"))
            except EgressUnavailable as exc:
                assert "no response from servers" in exc.message
            else:
                raise AssertionError("a request with no egress running was taken")
        finally:
            feeding.cancel()
            await room.disconnect()
            await egress.aclose()

    try:
        asyncio.run(run())
    finally:
        stack.up(progress=lambda _m: None)  # egress started again for the tests that follow
    assert {s.name: s.healthy for s in stack.status()}["egress"]
