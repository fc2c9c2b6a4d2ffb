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
from livekit.agents import AgentSession, llm, stt, tts

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
# once the leg is answered, how long the agent may take to see the person in the leg's room
JOIN_AFTER_ANSWER_S = 15.0
# how long a join still under way when the leg is over may take to finish before it is cancelled
JOIN_FINISH_S = 10.0


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

    async def cancel(self, leg_id: str, *, attempts: int = 3) -> None:
        """Give the leg up (nobody answered it): the control plane ends it and never dials it later."""
        for attempt in range(attempts):
            try:
                async with httpx.AsyncClient(timeout=5.0) as client:
                    resp = await client.post(f"{self._url}/{leg_id}/cancel", headers=self._headers)
                    resp.raise_for_status()
                return
            except httpx.HTTPError as exc:
                log.warning(
                    "could not cancel the consultation leg",
                    extra={"error": type(exc).__name__, "attempt": attempt + 1},
                )
            await asyncio.sleep(0.5 * (attempt + 1))

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
        self._closed = False

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

    def pipe(self, participant: rtc.RemoteParticipant) -> None:
        """Play what ``participant`` says (in another room) until :meth:`stop`."""
        self._run(self._pipe(participant))

    async def _pipe(self, participant: rtc.RemoteParticipant) -> None:
        stream = voice_of(participant)  # made in the task: a task cancelled early leaves none open
        frames, peak = 0, 0
        try:
            async for ev in stream:
                frames += 1
                peak = max(peak, int(np.abs(np.frombuffer(ev.frame.data, dtype=np.int16)).max(initial=0)))
                await self.source.capture_frame(ev.frame)
        finally:
            log.info("bridge line done", extra={"line": self.name, "frames": frames, "peak": peak})
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
        if not self._closed:
            self.source.clear_queue()

    async def close(self, *, unpublish: bool = True) -> None:
        """Stop, unpublish and free the source; closing twice is harmless. Each step is bounded: a
        room that lost its connection must not hold the transfer's cleanup. ``unpublish=False``: the
        room is about to be deleted (unpublishing there was seen to hang until a timeout)."""
        if self._closed:
            return
        await self.stop()
        self._closed = True
        if self._pub is not None and unpublish:
            await _bounded(
                f"unpublishing {self.name}", self.room.local_participant.unpublish_track(self._pub.sid)
            )
            self._pub = None
        await _bounded(f"closing {self.name}", self.source.aclose())


async def _bounded(what: str, step: Awaitable[Any], timeout_s: float = 2.0) -> None:
    try:
        await asyncio.wait_for(step, timeout_s)
    except TimeoutError:
        log.warning("audio line step timed out", extra={"step": what, "timeout_s": timeout_s})
    except Exception as exc:  # noqa: BLE001 - the room is going away anyway
        log.debug("audio line step failed", extra={"step": what, "error": type(exc).__name__})


def voice_of(participant: rtc.RemoteParticipant, rate: int = PHONE_RATE) -> rtc.AudioStream:
    return rtc.AudioStream.from_participant(
        participant=participant,
        track_source=rtc.TrackSource.SOURCE_MICROPHONE,
        sample_rate=rate,
        num_channels=1,
    )


# ---- the transfer ---------------------------------------------------------------------------------


async def _logged(what: str, step: Awaitable[Any]) -> None:
    try:
        await step
    except Exception:  # noqa: BLE001 - a cleanup step failed: said, and the next one still runs
        log.exception("warm transfer cleanup failed", extra={"step": what})


@dataclass
class Tools:
    """What the transfer uses of the call's agent: its session, speech and brain."""

    session: AgentSession[Any]
    tts: tts.TTS[Any]
    stt: stt.STT[Any]
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
        self._bridged = False

    def _tell(self, **fields: Any) -> None:
        limits = {"briefing": 4000, "reply": 500, "detail": 300}
        for name, value in fields.items():
            if value is not None:
                self._account[name] = value[: limits[name]] if name in limits else value
        self._account["at"] = time.time()
        self._report(dict(self._account))

    async def run(self, to: str, tools: Tools) -> TransferResult:
        """Try the transfer; returns once it connected and the bridged call ended, or once it failed."""
        self._account = {"to": to}
        self._person_answered = self._bridged = False
        caller = sip_participant(self._room)
        if caller is None:
            return TransferResult("caller_left", "the caller left before the transfer began")
        try:
            leg = await self._client.open(room=self._room.name, scope=self._scope, to=to)
        except TransferRefused as exc:
            log.warning("warm transfer refused", extra={"error": str(exc)})
            self._tell(result="failed", detail=str(exc))
            return TransferResult("failed", str(exc))
        self._tell(result="dialing", consultation_call_id=leg["id"])
        log.info("warm transfer dialing", extra={"consultation_call_id": leg["id"]})
        session = tools.session
        consult = rtc.Room()
        hold: Line | None = None
        result = TransferResult("failed", "not started")
        try:
            session.interrupt(force=True)
            session.input.set_audio_enabled(False)
            session.output.set_audio_enabled(False)
            hold = await Line(self._room, "hold").publish()
            hold.loop(hold_pattern(self._spec.hold))
            result = await self._while_caller_holds(caller, self._consult(consult, leg, to, hold, tools))
            return result
        except asyncio.CancelledError:  # the job is shutting down: the leg and its room still go
            result = TransferResult("failed", "the agent's job shut down")
            raise
        except Exception as exc:  # noqa: BLE001 - LiveKit or the audio failed: the caller is told, not dropped
            log.exception("warm transfer failed")
            result = TransferResult("failed", f"{type(exc).__name__}: {exc}")
            return result
        finally:
            if not result.connected:
                self._tell(result=result.result, detail=result.detail or None)
            # each step on its own: one that fails leaves the others to run
            if hold is not None:
                await _logged("closing the hold line", hold.close())
            if not self._person_answered:
                await _logged("giving the leg up", self._client.cancel(leg["id"]))
            await _logged("closing the leg", self._close_leg(consult, leg["room_name"]))
            if not result.connected:
                session.input.set_audio_enabled(True)
                session.output.set_audio_enabled(True)

    async def _consult(
        self, consult: rtc.Room, leg: dict[str, Any], to: str, hold: Line, tools: Tools
    ) -> TransferResult:
        # joining the leg's room goes on while the phone rings: a slow WebRTC connection (it retries
        # for many seconds on a loaded machine) never hides a busy or unanswered leg from the caller
        joining = asyncio.create_task(consult.connect(self._url, self._token(leg["room_name"], leg["id"])))
        agent_line: Line | None = None
        try:
            person = await self._answered(consult, leg, joining)
            if isinstance(person, TransferResult):
                return person
            self._person_answered = True
            agent_line = await Line(consult, "agent").publish()
            self._tell(result="briefing", answered_by=person.attributes.get("sip.phoneNumber") or to)
            accepted, how = await self._brief(consult, person, agent_line, tools)
            self._account["reply"] = how[:500]  # reported with the result, whichever it is
            if not accepted:
                return TransferResult("declined", how)
            await agent_line.say(tools.tts, CONNECTING)
            return await self._bridge(consult, person, hold, agent_line, how)
        finally:
            # a connect cancelled half-way left the job's WebRTC engine broken (its data channels
            # closed, the job process ended seconds later): it is let finish, then the room is left
            if not joining.done():
                await asyncio.wait({joining}, timeout=JOIN_FINISH_S)
            if not joining.done():
                joining.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await joining
            if agent_line is not None:
                await agent_line.close(unpublish=False)  # the leg's room is deleted next

    async def _while_caller_holds(
        self, caller: rtc.RemoteParticipant, work: Awaitable[TransferResult]
    ) -> TransferResult:
        """``work``'s result; ``caller_left`` as soon as the caller hangs up (or the agent loses the
        caller's room) before the bridge is up; from then on the bridge ends the call itself."""
        gone = asyncio.Event()

        def left(p: rtc.RemoteParticipant) -> None:
            if p.identity == caller.identity and not self._bridged:
                gone.set()

        def lost(*_: Any) -> None:
            if not self._bridged:
                gone.set()

        self._room.on("participant_disconnected", left)
        self._room.on("disconnected", lost)
        task: asyncio.Task[TransferResult] = asyncio.ensure_future(work)
        waiting = asyncio.create_task(gone.wait())
        try:
            if caller.identity not in self._room.remote_participants:
                gone.set()
            await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                return task.result()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            return TransferResult("caller_left", "the caller hung up while holding")
        finally:
            if not task.done():
                task.cancel()
            waiting.cancel()
            self._room.off("participant_disconnected", left)
            self._room.off("disconnected", lost)

    def _token(self, room: str, leg_id: str) -> str:
        return (
            api.AccessToken(self._key, self._secret)
            .with_identity(f"agent-{leg_id}")
            .with_kind("agent")
            .with_grants(api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True))
            .to_jwt()
        )

    async def _answered(
        self, consult: rtc.Room, leg: dict[str, Any], joining: asyncio.Task[None]
    ) -> rtc.RemoteParticipant | TransferResult:
        """The person, once their phone is answered and the agent is in the leg's room; else what the
        leg came to (the control plane's record of it, polled), or a failure to join the room."""
        deadline = time.monotonic() + float(leg["ring_timeout_s"]) + 30.0
        next_poll = 0.0
        answered = False
        while time.monotonic() < deadline:
            if joining.done():
                if joining.cancelled() or joining.exception() is not None:
                    why = "cancelled" if joining.cancelled() else type(joining.exception()).__name__
                    return TransferResult("failed", f"could not join the consultation room: {why}")
                phone = sip_participant(consult)
                if phone is not None and phone.attributes.get("sip.callStatus") == "active":
                    return phone
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + 1.0
                state = await self._client.state(leg["id"])
                status = state.get("status") if state is not None else None
                if state is not None and status == "ended":
                    reason = str(state.get("end_reason") or "failed")
                    code = state.get("sip_status_code")
                    detail = f"{reason}" + (f" (SIP {code})" if code else "")
                    return TransferResult(_LEG_RESULT.get(reason, "failed"), detail)
                if status == "in_progress" and not answered:
                    answered = True  # the person picked up: the room has this long to show them
                    deadline = min(deadline, time.monotonic() + JOIN_AFTER_ANSWER_S)
            await asyncio.sleep(0.2)
        if answered:
            return TransferResult(
                "failed", "answered, but the agent could not reach the person's room in time"
            )
        return TransferResult("no_answer", "the leg was neither answered nor ended in time")

    async def _brief(
        self, consult: rtc.Room, person: rtc.RemoteParticipant, line: Line, tools: Tools
    ) -> tuple[bool, str]:
        """(accepted, how the person answered) once briefed."""
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
        consult.on("participant_disconnected", on_left)  # from now: a hang-up while the briefing is made
        listening: asyncio.Task[None] | None = None
        try:
            if person.identity not in consult.remote_participants:
                return False, "hung up before the briefing"
            try:
                briefing = await asyncio.wait_for(tools.brief(), SUMMARY_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - the LLM failed: the person still hears who is waiting
                log.warning("briefing summary failed", extra={"error": type(exc).__name__})
                briefing = "A caller is holding for you."
            self._tell(briefing=briefing)
            if not replies.empty():
                answer, how = replies.get_nowait()
                return answer == "accept", how
            listening = asyncio.create_task(self._listen(person, tools, replies))
            speaking = asyncio.create_task(line.say(tools.tts, f"{briefing} {PROMPT}"))
            replied = asyncio.create_task(replies.get())
            # a reply (a key, a hang-up) may come while the briefing plays: it counts at once
            done, _ = await asyncio.wait({speaking, replied}, return_when=asyncio.FIRST_COMPLETED)
            if replied not in done:
                try:
                    await asyncio.wait_for(asyncio.shield(replied), self._spec.answer_timeout_s)
                except TimeoutError:
                    replied.cancel()
            speaking.cancel()
            answer, how = (
                replied.result()
                if replied.done() and not replied.cancelled()
                else ("decline", "no reply in time")
            )
        finally:
            consult.off("sip_dtmf_received", on_key)
            consult.off("participant_disconnected", on_left)
            if listening is not None:
                listening.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await listening
        log.info("warm transfer briefed", extra={"answer": answer, "how": how})
        return answer == "accept", how

    @staticmethod
    async def _listen(
        person: rtc.RemoteParticipant, tools: Tools, replies: asyncio.Queue[tuple[str, str]]
    ) -> None:
        """The person's spoken yes or no (their hello as the briefing starts means neither), through the
        call's own STT as a stream: a streaming-only provider (AssemblyAI) has no one-shot recognize."""
        audio = voice_of(person, VAD_RATE)
        recognizer = tools.stt.stream()

        async def feed() -> None:
            async for ev in audio:
                recognizer.push_frame(ev.frame)

        feeding = asyncio.create_task(feed())
        try:
            async for ev in recognizer:
                if ev.type != stt.SpeechEventType.FINAL_TRANSCRIPT or not ev.alternatives:
                    continue
                text = ev.alternatives[0].text
                answer = reply_of(text)
                log.info("person answered the briefing", extra={"text": text, "answer": answer})
                if answer is not None:
                    replies.put_nowait((answer, f"said {text.strip()[:200]!r}"))
                    return
        finally:
            feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feeding
            await recognizer.aclose()
            await audio.aclose()

    async def _bridge(
        self, consult: rtc.Room, person: rtc.RemoteParticipant, hold: Line, agent_line: Line, how: str
    ) -> TransferResult:
        """The caller and the person hear each other until either hangs up (or the agent loses a
        room); then the call ends as ``transferred``."""
        caller = sip_participant(self._room)
        if caller is None:
            return TransferResult("caller_left", "the caller hung up as the person accepted")
        ended_by: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def end(who: str) -> None:
            if not ended_by.done():
                ended_by.set_result(who)

        def left(p: rtc.RemoteParticipant) -> None:
            who = {caller.identity: "caller", person.identity: "person"}.get(p.identity)
            if who is not None:
                end(who)

        def caller_room_lost(*_: Any) -> None:
            end("caller")

        def person_room_lost(*_: Any) -> None:
            end("person")

        self._room.on("participant_disconnected", left)
        self._room.on("disconnected", caller_room_lost)
        consult.on("participant_disconnected", left)
        consult.on("disconnected", person_room_lost)
        # the person's voice on a track of its own: a source whose hold loop was cancelled mid-frame
        # played nothing more to the caller (seen with livekit rtc 1.x)
        bridge = await Line(self._room, "bridge").publish()
        try:
            await hold.close()
            bridge.pipe(person)
            agent_line.pipe(caller)
            self._bridged = True
            self._tell(result="connected", reply=how)
            log.info("warm transfer connected", extra={"room": self._room.name})
            if caller.identity not in self._room.remote_participants:
                end("caller")
            elif person.identity not in consult.remote_participants:
                end("person")
            who = await ended_by
        finally:
            self._room.off("participant_disconnected", left)
            self._room.off("disconnected", caller_room_lost)
            consult.off("participant_disconnected", left)
            consult.off("disconnected", person_room_lost)
            await bridge.close()
        log.info("warm transfer call over", extra={"ended_by": who})
        self._tell(ended_by=who)
        await self._end_call()
        return TransferResult("connected", how)

    async def _close_leg(self, consult: rtc.Room, room_name: str) -> None:
        await _bounded(
            "deleting the leg's room", self._lk.room.delete_room(api.DeleteRoomRequest(room=room_name)), 5.0
        )
        await _bounded("leaving the leg's room", consult.disconnect(), 5.0)
