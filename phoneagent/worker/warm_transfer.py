"""Warm transfer: the caller holds while the agent dials a person, briefs them, and connects them.

1. The control plane opens the consultation leg (``POST /webhooks/worker/consultations``): it checks
   the destination against the call's agent profile and the number policy, and its dialer dials the
   person through the tenant's outbound trunk into a room of the leg's own, ``consult-<leg id>``.
2. The caller hears the profile's hold pattern on a track of its own; the agent stops listening and
   speaking to them, and joins the leg's room as an agent (before the person answers, to hear them).
3. The person answers: the agent briefs them (an LLM brain summarises the call; the scripted flow
   fills the profile's template with what it collected), then asks them to press 1 or say yes to take
   the call, 2 or no to decline.
4. Accepted: the agent says so and bridges the two rooms' audio, the caller's into the leg's room and
   the person's into the caller's. The agent's conversation is over; the bridge lasts until either
   side hangs up, then both rooms are closed and the call ends as ``transferred``.
5. Not answered, busy, declined, no reply in time, or failed: the leg's room is closed (a ringing
   leg is cancelled), the hold stops, and the agent comes back to the caller and says why.

Why a bridge and not a move: livekit-server v1.13.5 answers ``MoveParticipant`` with "not
implemented" (pkg/service/roommanager.go), which is what livekit-agents' own ``WarmTransferTask``
uses to put the person into the caller's room. The bridge costs the agent's job its slot until the
call ends; the agent's models sit idle meanwhile.

Every step is reported as a ``warm_transfer`` event on the caller's call (the latest one is the
record's ``transfer``); the leg has a call record of its own, linked by ``parent_call_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from livekit import api, rtc
from livekit.agents import AgentSession, llm, stt, tts, vad

from phoneagent.speech.audio import PHONE_RATE
from phoneagent.worker.brain_spec import BRIEFING_FIELD, WarmTransferSpec
from phoneagent.worker.phone import sip_participant
from phoneagent.worker.slots import read_yes_no

log = logging.getLogger("phoneagent.worker")

EVENT = "warm_transfer"
PROMPT = "Press 1 or say yes to take the call. Press 2 or say no to decline."
CONNECTING = "Thank you. Connecting you now."
ACCEPT_KEY, DECLINE_KEY = "1", "2"
FRAME_MS = 20
VAD_RATE = 16000
# what the caller is told when nobody takes the call, by the leg's result
WHY = {
    "no_answer": "Sorry, nobody answered.",
    "busy": "Sorry, that line is busy.",
    "declined": "Sorry, they cannot take your call right now.",
    "failed": "Sorry, I could not reach them.",
}
OFFER = "I can take a message for them, or you can end the call. Would you like to leave a message?"
# the leg's end reason -> what the transfer came to
_LEG_RESULT = {"busy": "busy", "no_answer": "no_answer", "rejected": "declined"}
SUMMARY_INSTRUCTIONS = (
    "Summarise this phone call for a colleague who is about to take the caller over, in at most two "
    "short spoken sentences: who is calling and what they want. Plain words, no lists."
)
SUMMARY_TIMEOUT_S = 8.0


@dataclass(frozen=True)
class TransferResult:
    result: str  # connected | no_answer | busy | declined | failed | caller_left
    detail: str = ""

    @property
    def connected(self) -> bool:
        return self.result == "connected"

    def told_caller(self) -> str:
        """What the caller hears when the transfer did not connect."""
        return f"{WHY.get(self.result, WHY['failed'])} {OFFER}"


class TransferRefused(Exception):
    """The control plane would not open the leg (the message says why)."""


# ---- what the caller hears and the person is told ---------------------------------------------------


def hold_pattern(kind: str, rate: int = PHONE_RATE) -> np.ndarray:
    """One period of the hold sound, 16-bit mono: ``chime`` (two soft notes every 3 s), ``beep`` (a
    short tone every 5 s) or ``none`` (silence). Made here, so nothing is bundled or licensed."""

    def tone(hz: float, seconds: float, level: float) -> np.ndarray:
        t = np.arange(int(rate * seconds)) / rate
        fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.02)  # no clicks
        return (np.sin(2 * np.pi * hz * t) * fade * level * 32767).astype(np.int16)

    def gap(seconds: float) -> np.ndarray:
        return np.zeros(int(rate * seconds), dtype=np.int16)

    if kind == "chime":
        return np.concatenate([tone(659.25, 0.3, 0.12), tone(523.25, 0.45, 0.12), gap(2.25)])
    if kind == "beep":
        return np.concatenate([tone(440.0, 0.2, 0.1), gap(4.8)])
    return gap(1.0)


def briefing_text(template: str, *, caller: str, outcome: dict[str, Any], last_words: str) -> str:
    """The profile's template filled: {caller}, {intent}, {last_words} and the collected slots; a
    field nothing filled reads "not given"."""
    fields = {
        "caller": caller or "an unknown number",
        "intent": str(outcome.get("intent") or "something we could not tell").replace("_", " "),
        "last_words": last_words.strip() or "nothing yet",
    }
    for name, slot in (outcome.get("slots") or {}).items():
        if isinstance(slot, dict) and slot.get("value") is not None:
            fields.setdefault(name, str(slot["value"]))
    return re.sub(BRIEFING_FIELD, lambda m: fields.get(m.group(1), "not given"), template)


def transcript_of(chat_ctx: llm.ChatContext) -> str:
    lines = []
    for item in chat_ctx.items:
        if isinstance(item, llm.ChatMessage) and item.role in ("user", "assistant") and item.text_content:
            lines.append(f"{'Caller' if item.role == 'user' else 'Agent'}: {item.text_content}")
    return "\n".join(lines)


async def summarise(brain: llm.LLM[Any], chat_ctx: llm.ChatContext) -> str:
    """The LLM brain's summary of the call so far, for the person taking it over."""
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="system", content=SUMMARY_INSTRUCTIONS)
    ctx.add_message(role="user", content=transcript_of(chat_ctx) or "(nothing was said yet)")
    parts: list[str] = []
    async with brain.chat(chat_ctx=ctx) as stream:
        async for chunk in stream:
            if chunk.delta is not None and chunk.delta.content:
                parts.append(chunk.delta.content)
    return "".join(parts).strip()


def reply_of(text: str) -> str | None:
    """``accept`` / ``decline`` from the person's words, or None."""
    answer = read_yes_no(text)
    return {"yes": "accept", "no": "decline"}.get(answer or "")


# ---- the control plane's side ---------------------------------------------------------------------


class ConsultClient:
    """The worker's requests about consultation legs (see ``phoneagent.calls.consultation``)."""

    def __init__(self, *, url: str, token: str) -> None:
        self._url = url.rstrip("/") + "/webhooks/worker/consultations"
        self._headers = {"Authorization": f"Bearer {token}"}

    async def open(self, *, room: str, scope: dict[str, str], to: str) -> dict[str, Any]:
        body = {"room": room, "to": to, **{k: v for k, v in scope.items() if k in ("tenant_id", "call_id")}}
        try:
            async with httpx.AsyncClient(timeout=10.0) as client:
                resp = await client.post(self._url, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise TransferRefused(f"control plane unreachable: {type(exc).__name__}") from None
        if resp.status_code != 201:
            try:
                detail = str(resp.json().get("detail", resp.text))
            except ValueError:
                detail = resp.text
            raise TransferRefused(f"{resp.status_code}: {detail[:200]}")
        return dict(resp.json())

    async def cancel(self, leg_id: str) -> None:
        """Give the leg up (nobody answered it): the control plane ends it and never dials it later."""
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                resp = await client.post(f"{self._url}/{leg_id}/cancel", headers=self._headers)
                resp.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("could not cancel the consultation leg", extra={"error": type(exc).__name__})

    async def state(self, leg_id: str) -> dict[str, Any] | None:
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                resp = await client.get(f"{self._url}/{leg_id}", headers=self._headers)
                resp.raise_for_status()
                return dict(resp.json())
        except (httpx.HTTPError, ValueError) as exc:
            log.debug("consultation leg state unavailable", extra={"error": type(exc).__name__})
            return None


# ---- audio ----------------------------------------------------------------------------------------


class Line:
    """A track the agent publishes in one room: hold sound, speech, or the other room's voice."""

    def __init__(self, room: rtc.Room, name: str) -> None:
        self.room = room
        self.name = name
        self.source = rtc.AudioSource(PHONE_RATE, 1)
        self._track = rtc.LocalAudioTrack.create_audio_track(name, self.source)
        self._pub: rtc.LocalTrackPublication | None = None
        self._task: asyncio.Task[None] | None = None

    async def publish(self) -> Line:
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE, dtx=False)
        self._pub = await self.room.local_participant.publish_track(self._track, options)
        return self

    def loop(self, pcm: np.ndarray) -> None:
        """Play ``pcm`` over and over until :meth:`stop`."""
        self._run(self._loop(pcm))

    async def _loop(self, pcm: np.ndarray) -> None:
        step = PHONE_RATE * FRAME_MS // 1000
        while True:
            for at in range(0, len(pcm) - step + 1, step):
                chunk = pcm[at : at + step]
                await self.source.capture_frame(rtc.AudioFrame(chunk.tobytes(), PHONE_RATE, 1, step))

    def pipe(self, stream: rtc.AudioStream) -> None:
        """Play what ``stream`` hears until :meth:`stop` (the other room's voice)."""
        self._run(self._pipe(stream))

    async def _pipe(self, stream: rtc.AudioStream) -> None:
        frames, peak = 0, 0
        try:
            async for ev in stream:
                frames += 1
                peak = max(peak, int(np.abs(np.frombuffer(ev.frame.data, dtype=np.int16)).max(initial=0)))
                await self.source.capture_frame(ev.frame)
        except Exception:
            log.exception("bridge pipe failed", extra={"line": self.name})
            raise
        finally:
            log.info("bridge pipe done", extra={"line": self.name, "frames": frames, "peak": peak})
            await stream.aclose()

    async def say(self, synthesizer: tts.TTS[Any], text: str) -> None:
        """Speak ``text`` on this track and return once it has played out."""
        await self.stop()
        resampler: rtc.AudioResampler | None = None
        async with synthesizer.synthesize(text) as stream:
            async for ev in stream:
                frame = ev.frame
                if frame.sample_rate != PHONE_RATE:
                    resampler = resampler or rtc.AudioResampler(frame.sample_rate, PHONE_RATE)
                    for out in resampler.push(frame):
                        await self.source.capture_frame(out)
                else:
                    await self.source.capture_frame(frame)
        if resampler is not None:
            for out in resampler.flush():
                await self.source.capture_frame(out)
        await self.source.wait_for_playout()

    def _run(self, coro: Any) -> None:
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.create_task(coro, name=f"phoneagent-line-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self.source.clear_queue()

    async def close(self) -> None:
        await self.stop()
        if self._pub is not None:
            with contextlib.suppress(Exception):
                await self.room.local_participant.unpublish_track(self._pub.sid)
            self._pub = None


def voice_of(room: rtc.Room, participant: rtc.RemoteParticipant, rate: int = PHONE_RATE) -> rtc.AudioStream:
    return rtc.AudioStream.from_participant(
        participant=participant,
        track_source=rtc.TrackSource.SOURCE_MICROPHONE,
        sample_rate=rate,
        num_channels=1,
    )


# ---- the transfer ---------------------------------------------------------------------------------


@dataclass
class Tools:
    """What the transfer uses of the call's agent: its session, speech and brain."""

    session: AgentSession[Any]
    tts: tts.TTS[Any]
    stt: stt.STT[Any]
    vad: vad.VAD
    # the briefing (an LLM's summary or the scripted template), made when the person answers
    brief: Callable[[], Awaitable[str]]


class WarmTransfer:
    def __init__(
        self,
        *,
        room: rtc.Room,
        lk: api.LiveKitAPI,
        settings_url: str,
        credentials: tuple[str, str],
        client: ConsultClient,
        scope: dict[str, str],
        spec: WarmTransferSpec,
        report: Callable[[dict[str, Any]], object],
        delete_caller_room: Callable[[], Awaitable[None]],
    ) -> None:
        self._room = room
        self._lk = lk
        self._url = settings_url
        self._key, self._secret = credentials
        self._client = client
        self._scope = scope
        self._spec = spec
        self._report = report
        self._end_call = delete_caller_room
        self._account: dict[str, Any] = {}
        self._person_answered = False

    def _tell(self, **fields: Any) -> None:
        self._account.update({k: v for k, v in fields.items() if v is not None})
        self._account["at"] = time.time()
        self._report(dict(self._account))

    async def run(self, to: str, tools: Tools) -> TransferResult:
        """Try the transfer; returns once it connected and the bridged call ended, or once it failed."""
        self._account = {"to": to}
        self._person_answered = False
        try:
            leg = await self._client.open(room=self._room.name, scope=self._scope, to=to)
        except TransferRefused as exc:
            log.warning("warm transfer refused", extra={"error": str(exc)})
            self._tell(result="failed", detail=str(exc)[:300])
            return TransferResult("failed", str(exc))
        self._tell(result="dialing", consultation_call_id=leg["id"])
        log.info("warm transfer dialing", extra={"consultation_call_id": leg["id"]})
        session = tools.session
        session.interrupt()
        session.input.set_audio_enabled(False)
        session.output.set_audio_enabled(False)
        hold = await Line(self._room, "hold").publish()
        hold.loop(hold_pattern(self._spec.hold))
        consult = rtc.Room()
        result = TransferResult("failed", "not started")
        try:
            result = await self._while_caller_holds(self._consult(consult, leg, to, hold, tools))
            return result
        except Exception as exc:  # noqa: BLE001 - LiveKit or the audio failed: the caller is told, not dropped
            log.exception("warm transfer failed")
            result = TransferResult("failed", f"{type(exc).__name__}: {exc}"[:300])
            return result
        finally:
            if not result.connected:
                self._tell(result=result.result, detail=result.detail[:300] or None)
            await hold.close()
            if not self._person_answered:
                await self._client.cancel(leg["id"])
            await self._close_leg(consult, leg["room_name"])
            if not result.connected:
                session.input.set_audio_enabled(True)
                session.output.set_audio_enabled(True)

    async def _consult(
        self, consult: rtc.Room, leg: dict[str, Any], to: str, hold: Line, tools: Tools
    ) -> TransferResult:
        await consult.connect(self._url, self._token(leg["room_name"], leg["id"]))
        agent_line = await Line(consult, "agent").publish()
        person = await self._answered(consult, leg)
        if isinstance(person, TransferResult):
            return person
        self._person_answered = True
        self._tell(result="briefing", answered_by=person.attributes.get("sip.phoneNumber") or to)
        result = await self._brief(consult, person, agent_line, tools)
        if result.connected:
            await self._bridge(consult, person, hold, agent_line)
        return result

    async def _while_caller_holds(self, work: Awaitable[TransferResult]) -> TransferResult:
        """``work``'s result; ``caller_left`` as soon as the caller hangs up before they are connected
        (once connected, the bridge itself ends the call when either side leaves)."""
        caller = sip_participant(self._room)
        gone = asyncio.Event()

        def left(p: rtc.RemoteParticipant) -> None:
            if (
                caller is not None
                and p.identity == caller.identity
                and self._account.get("result") != "connected"
            ):
                gone.set()

        self._room.on("participant_disconnected", left)
        task: asyncio.Task[TransferResult] = asyncio.ensure_future(work)
        waiting = asyncio.create_task(gone.wait())
        try:
            await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                return task.result()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            return TransferResult("caller_left", "the caller hung up while holding")
        finally:
            waiting.cancel()
            self._room.off("participant_disconnected", left)

    def _token(self, room: str, leg_id: str) -> str:
        return (
            api.AccessToken(self._key, self._secret)
            .with_identity(f"agent-{leg_id}")
            .with_kind("agent")
            .with_grants(api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True))
            .to_jwt()
        )

    async def _answered(
        self, consult: rtc.Room, leg: dict[str, Any]
    ) -> rtc.RemoteParticipant | TransferResult:
        """The person, once their phone is answered; else what the leg came to."""
        deadline = time.monotonic() + float(leg["ring_timeout_s"]) + 30.0
        next_poll = 0.0
        while time.monotonic() < deadline:
            phone = sip_participant(consult)
            if phone is not None and phone.attributes.get("sip.callStatus") == "active":
                return phone
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + 1.0
                state = await self._client.state(leg["id"])
                if state is not None and state.get("status") == "ended":
                    reason = str(state.get("end_reason") or "failed")
                    code = state.get("sip_status_code")
                    detail = f"{reason}" + (f" (SIP {code})" if code else "")
                    return TransferResult(_LEG_RESULT.get(reason, "failed"), detail)
            await asyncio.sleep(0.2)
        return TransferResult("no_answer", "the leg was neither answered nor ended in time")

    async def _brief(
        self, consult: rtc.Room, person: rtc.RemoteParticipant, line: Line, tools: Tools
    ) -> TransferResult:
        try:
            briefing = await asyncio.wait_for(tools.brief(), SUMMARY_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - the LLM failed: the person still hears who is waiting
            log.warning("briefing summary failed", extra={"error": type(exc).__name__})
            briefing = "A caller is holding for you."
        self._tell(briefing=briefing)
        replies: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

        def on_key(ev: rtc.SipDTMF) -> None:
            if ev.participant is not None and ev.participant.identity != person.identity:
                return
            if ev.digit in (ACCEPT_KEY, DECLINE_KEY):
                replies.put_nowait(("accept" if ev.digit == ACCEPT_KEY else "decline", f"key {ev.digit}"))

        def on_left(p: rtc.RemoteParticipant) -> None:
            if p.identity == person.identity:
                replies.put_nowait(("gone", "hung up during the briefing"))

        consult.on("sip_dtmf_received", on_key)
        consult.on("participant_disconnected", on_left)
        listening = asyncio.create_task(self._listen(consult, person, tools, replies))
        try:
            await line.say(tools.tts, f"{briefing} {PROMPT}")
            try:
                answer, how = await asyncio.wait_for(replies.get(), self._spec.answer_timeout_s)
            except TimeoutError:
                answer, how = "decline", "no reply in time"
        finally:
            consult.off("sip_dtmf_received", on_key)
            consult.off("participant_disconnected", on_left)
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listening
        log.info("warm transfer briefed", extra={"answer": answer, "how": how})
        if answer != "accept":
            return TransferResult("declined", how)
        self._tell(result="connected", reply=how)
        await line.say(tools.tts, CONNECTING)
        return TransferResult("connected", how)

    @staticmethod
    async def _listen(
        consult: rtc.Room,
        person: rtc.RemoteParticipant,
        tools: Tools,
        replies: asyncio.Queue[tuple[str, str]],
    ) -> None:
        """The person's spoken yes or no (their hello while the briefing starts means neither)."""
        stream = voice_of(consult, person, VAD_RATE)
        detector = tools.vad.stream()
        try:

            async def feed() -> None:
                async for ev in stream:
                    detector.push_frame(ev.frame)

            feeding = asyncio.create_task(feed())
            try:
                async for ev in detector:
                    if ev.type != vad.VADEventType.END_OF_SPEECH or not ev.frames:
                        continue
                    heard = await tools.stt.recognize(ev.frames)
                    text = heard.alternatives[0].text if heard.alternatives else ""
                    answer = reply_of(text)
                    log.info("person answered the briefing", extra={"text": text, "answer": answer})
                    if answer is not None:
                        replies.put_nowait((answer, f"said {text.strip()[:200]!r}"))
                        return
            finally:
                feeding.cancel()
        finally:
            await detector.aclose()
            await stream.aclose()

    async def _bridge(
        self, consult: rtc.Room, person: rtc.RemoteParticipant, hold: Line, agent_line: Line
    ) -> None:
        """The caller and the person hear each other until either hangs up; then the call ends."""
        caller = sip_participant(self._room)
        if caller is None:
            return
        ended_by: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def left(p: rtc.RemoteParticipant) -> None:
            who = {caller.identity: "caller", person.identity: "person"}.get(p.identity)
            if who is not None and not ended_by.done():
                ended_by.set_result(who)

        def closed(*_: Any) -> None:
            if not ended_by.done():
                ended_by.set_result("person")

        self._room.on("participant_disconnected", left)
        consult.on("participant_disconnected", left)
        consult.on("disconnected", closed)
        # the person's voice on a track of its own: a source whose hold loop was cancelled mid-frame
        # played nothing more to the caller (seen with livekit rtc 1.x)
        bridge = await Line(self._room, "bridge").publish()
        try:
            await hold.close()
            bridge.pipe(voice_of(consult, person))
            agent_line.pipe(voice_of(self._room, caller))
            log.info("warm transfer connected", extra={"room": self._room.name})
            if caller.identity not in self._room.remote_participants:
                left(caller)
            elif person.identity not in consult.remote_participants:
                left(person)
            who = await ended_by
        finally:
            self._room.off("participant_disconnected", left)
            consult.off("participant_disconnected", left)
            consult.off("disconnected", closed)
            await agent_line.close()
            await bridge.close()
        log.info("warm transfer call over", extra={"ended_by": who})
        self._tell(ended_by=who)
        await self._end_call()

    async def _close_leg(self, consult: rtc.Room, room_name: str) -> None:
        with contextlib.suppress(Exception):
            await self._lk.room.delete_room(api.DeleteRoomRequest(room=room_name))
        with contextlib.suppress(Exception):
            await consult.disconnect()
