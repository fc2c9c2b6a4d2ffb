"""A short test call through an outbound trunk, watched from inside its room (``probe_trunk``).

The probe joins a room of its own as a plain participant, asks livekit-sip to dial (the same
``CreateSIPParticipant`` request the dialer sends, waiting for the answer), and writes down what it
sees: the SIP participant's ``sip.callStatus`` as it changes (``dialing``, ``ringing`` on a 180/183,
``active`` once answered), the final SIP status of a refused INVITE, and, once answered, the phone's
audio (its level, and whether a tone the probe sends comes back: proof that media flows both ways
when the far end echoes) and DTMF (digits sent as RFC 4733 events, and any the far end sends back).
It always ends by deleting the room, which hangs the call up (a BYE, or a CANCEL while it rings).

It records observations only; ``phoneagent.calls.trunk_test`` says what they mean.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from google.protobuf.duration_pb2 import Duration
from livekit import api

from phoneagent.config import Settings
from phoneagent.errors import CallRejected, LiveKitRefused, TelephonyError
from phoneagent.telephony.calls import DialOutcome, outcome_of_failed_dial
from phoneagent.telephony.client import livekit_credentials, livekit_errors, new_livekit_api

if TYPE_CHECKING:
    from livekit import rtc

RATE = 8000  # what the phone carries: the tone is made and the phone's audio is read at this rate
FRAME = RATE // 50  # 20 ms
TONE_HZ = 1000.0  # 20 bins of 50 Hz in a 20 ms frame: the tone sits in one bin exactly
TONE_LEVEL = 0.3
DTMF_DIGITS = "159"
DTMF_CODES = {str(d): d for d in range(10)}
# a frame louder than this is audio from the phone; G.711 silence and comfort noise stay below it
HEARD_DBFS = -50.0
# a frame whose energy lies mostly in the tone's bin (and its neighbours) is our tone coming back
TONE_SHARE = 0.6


@dataclass
class PhoneAudio:
    frames: int = 0  # 20 ms frames received from the phone's track
    heard: int = 0  # frames above HEARD_DBFS
    tone: int = 0  # frames that are our tone, sent back
    peak_dbfs: float = -120.0
    first_heard_s: float | None = None


@dataclass
class ProbeResult:
    """What one test call showed. Times are seconds since the dial request."""

    room: str
    outcome: DialOutcome
    statuses: list[tuple[float, str]] = field(default_factory=list)  # sip.callStatus as it changed
    answered_s: float | None = None
    phone_track: bool = False  # the SIP participant published an audio track
    audio: PhoneAudio = field(default_factory=PhoneAudio)
    tone_sent_s: float = 0.0
    dtmf_sent: str = ""
    dtmf_back: str = ""
    hung_up_by_phone_s: float | None = None  # the far end hung up first
    ended_s: float = 0.0

    def saw(self, status: str) -> float | None:
        return next((t for t, s in self.statuses if s == status), None)


def frame_levels(samples: np.ndarray) -> tuple[float, float]:
    """(level in dBFS, share of the frame's energy within 50 Hz of TONE_HZ) of int16 samples."""
    x = samples.astype(np.float64) / 32768.0
    power = float(np.mean(x * x))
    dbfs = 10 * np.log10(power) if power > 0 else -120.0
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    total = float(spectrum[1:].sum())
    if total <= 0:
        return dbfs, 0.0
    hz = np.fft.rfftfreq(len(x), 1 / RATE)
    near = float(spectrum[np.abs(hz - TONE_HZ) <= 50.0].sum())
    return dbfs, near / total


def tone_frame(n: int) -> np.ndarray:
    t = (np.arange(FRAME) + n * FRAME) / RATE
    return (TONE_LEVEL * 32767 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16)


async def probe_trunk(
    settings: Settings,
    *,
    trunk_id: str,
    to: str,
    from_number: str,
    ring_timeout_s: int,
    listen_s: float = 3.0,
    dtmf_wait_s: float = 2.0,
) -> ProbeResult:
    """Dial ``to`` through the LiveKit outbound trunk ``trunk_id`` and watch the call for about
    ``listen_s`` after the answer, then hang up. LiveKit failures (unreachable, refused requests)
    leave as phoneagent errors before anything is dialled; the callee's answer is the result."""
    from livekit import rtc  # the control plane loads the realtime SDK only for a test call

    creds = livekit_credentials(settings)
    lk = new_livekit_api(settings)
    room_name = f"trunk-test-{uuid.uuid4().hex[:12]}"
    room = rtc.Room()
    start = time.monotonic()
    result = ProbeResult(room=room_name, outcome=DialOutcome("failed", detail="not dialled"))
    answered = asyncio.Event()
    gone = asyncio.Event()
    dtmf_back = asyncio.Event()
    readers: list[asyncio.Task[None]] = []

    def now() -> float:
        return round(time.monotonic() - start, 2)

    def is_phone(p: rtc.RemoteParticipant | rtc.Participant) -> bool:
        return getattr(p, "kind", None) == rtc.ParticipantKind.PARTICIPANT_KIND_SIP

    def status_of(p: rtc.RemoteParticipant | rtc.Participant) -> None:
        status = p.attributes.get("sip.callStatus", "")
        if status and (not result.statuses or result.statuses[-1][1] != status):
            result.statuses.append((now(), status))
        if status == "active":
            answered.set()
        if status == "hangup" and answered.is_set() and result.hung_up_by_phone_s is None:
            result.hung_up_by_phone_s = now()
            gone.set()

    def on_connected(p: rtc.RemoteParticipant) -> None:
        if is_phone(p):
            status_of(p)

    def on_attributes(_changed: dict[str, str], p: rtc.Participant) -> None:
        if is_phone(p):
            status_of(p)

    def on_left(p: rtc.RemoteParticipant) -> None:
        if is_phone(p) and answered.is_set() and result.hung_up_by_phone_s is None:
            result.hung_up_by_phone_s = now()
            gone.set()

    async def read_phone(track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1, frame_size_ms=20)
        audio = result.audio
        try:
            async for ev in stream:
                samples = np.frombuffer(ev.frame.data, dtype=np.int16)
                dbfs, share = frame_levels(samples)
                audio.frames += 1
                audio.peak_dbfs = max(audio.peak_dbfs, round(dbfs, 1))
                if dbfs > HEARD_DBFS:
                    audio.heard += 1
                    if audio.first_heard_s is None:
                        audio.first_heard_s = now()
                    if share >= TONE_SHARE:
                        audio.tone += 1
        finally:
            await stream.aclose()

    def on_track(track: rtc.Track, _pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
        if is_phone(p) and track.kind == rtc.TrackKind.KIND_AUDIO:
            result.phone_track = True
            readers.append(asyncio.create_task(read_phone(track)))

    def on_dtmf(ev: rtc.SipDTMF) -> None:
        result.dtmf_back += ev.digit
        if len(result.dtmf_back) >= len(result.dtmf_sent) > 0:
            dtmf_back.set()

    room.on("participant_connected", on_connected)
    room.on("participant_attributes_changed", on_attributes)
    room.on("participant_disconnected", on_left)
    room.on("track_subscribed", on_track)
    room.on("sip_dtmf_received", on_dtmf)
    try:
        with livekit_errors(url=creds.url):
            await lk.room.create_room(
                api.CreateRoomRequest(name=room_name, empty_timeout=30, departure_timeout=1)
            )
        token = (
            api.AccessToken(creds.api_key, creds.api_secret)
            .with_identity("phoneagent-trunk-test")
            .with_grants(api.VideoGrants(room_join=True, room=room_name))
            .to_jwt()
        )
        try:
            await room.connect(creds.url, token)
        except rtc.ConnectError as exc:
            raise TelephonyError(
                f"cannot join the test call's room: {exc.message}", code="unreachable", retryable=True
            ) from None
        source = rtc.AudioSource(RATE, 1)
        tone = rtc.LocalAudioTrack.create_audio_track("trunk-test-tone", source)
        await room.local_participant.publish_track(
            tone, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        start = time.monotonic()
        result.outcome = await _dial(
            lk, room_name, trunk_id, to, from_number, ring_timeout_s, max_call_s=ring_timeout_s + 60
        )
        if result.outcome.kind != "answered":
            result.ended_s = now()
            return result
        result.answered_s = now()
        answered.set()
        await _talk(source, result, gone, listen_s)
        if not gone.is_set():
            result.dtmf_sent = DTMF_DIGITS
            for digit in DTMF_DIGITS:
                await room.local_participant.publish_dtmf(code=DTMF_CODES[digit], digit=digit)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(dtmf_back, gone), dtmf_wait_s)
        result.ended_s = now()
        return result
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await room.disconnect()
        with contextlib.suppress(TelephonyError, LiveKitRefused), livekit_errors(url=creds.url):
            await lk.room.delete_room(api.DeleteRoomRequest(room=room_name))  # hangs the call up
        await lk.aclose()


async def _dial(
    lk: api.LiveKitAPI,
    room: str,
    trunk_id: str,
    to: str,
    from_number: str,
    ring_timeout_s: int,
    *,
    max_call_s: int,
) -> DialOutcome:
    req = api.CreateSIPParticipantRequest(
        sip_trunk_id=trunk_id,
        sip_call_to=to,
        sip_number=from_number,
        room_name=room,
        participant_identity="phone",
        participant_name="phone",
        wait_until_answered=True,
        ringing_timeout=Duration(seconds=ring_timeout_s),
        # a backstop: the call ends by itself even if this process dies before it deletes the room
        max_call_duration=Duration(seconds=max_call_s),
    )
    try:
        with livekit_errors():
            await lk.sip.create_sip_participant(req, timeout=ring_timeout_s + 15)
    except CallRejected as exc:
        return DialOutcome("sip_final", exc.sip_status_code, exc.sip_status_reason, exc.message)
    except (TelephonyError, LiveKitRefused) as exc:
        return outcome_of_failed_dial(exc, ring_timeout_s)
    return DialOutcome("answered")


async def _talk(source: rtc.AudioSource, result: ProbeResult, gone: asyncio.Event, listen_s: float) -> None:
    """Send the tone in 20 ms frames for ``listen_s`` (or until the phone hangs up), paced by the
    source's own queue, while the phone's audio is read."""
    from livekit import rtc

    frames = int(listen_s * 50)
    for n in range(frames):
        if gone.is_set():
            break
        frame = rtc.AudioFrame(tone_frame(n).tobytes(), RATE, 1, FRAME)
        await source.capture_frame(frame)
        result.tone_sent_s = round((n + 1) / 50, 2)
    await source.wait_for_playout()


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
