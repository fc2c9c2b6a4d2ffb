"""The phone agent: greets, answers through its brain, and acts on the call: hangs up (with the
reason), transfers, sends and receives keys, reprompts a silent caller and ends the call after a
second silence, ends it at the profile's maximum duration, and on outbound calls tells a person
from an answering machine (and leaves the profile's message on the machine).

Every action that ends the call reports why (``hangup`` event with the reason) before it deletes
the room; tools and key presses are reported as ``tool`` and ``dtmf`` events, and the call's outcome
(what the scripted flow took and collected) as an ``outcome`` event, whole, each time it changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any

from livekit import rtc
from livekit.agents import Agent, JobContext, ModelSettings, StopResponse, llm, stt
from livekit.agents.voice.events import ConversationItemAddedEvent, UserStateChangedEvent

from phoneagent.speech.numbers import normalize_numbers
from phoneagent.telephony.destinations import TransferPolicy
from phoneagent.worker.outcome import Source
from phoneagent.worker.phone import phone_leaves, sip_participant
from phoneagent.worker.scripted import Decision, ScriptedFlow
from phoneagent.worker.timing import TurnClock
from phoneagent.worker.tools import phone_tools
from phoneagent.worker.warm_transfer import TransferResult

log = logging.getLogger("phoneagent.worker")

# after the last frame leaves the agent, the bridge still needs a moment to play it out
GOODBYE_DRAIN_S = 0.6
# livekit-sip's error when its REFER transaction ended without an answer it could read
LOST_REFER_ANSWER = "transaction failed to complete"
REFER_FOLLOW_S = 10.0  # baresip ends its leg 5 s after the transfer succeeds; allow twice that
# an outbound callee who has said nothing this long after answering is greeted anyway
SILENT_CALLEE_S = 3.0
# a first utterance this long, or with these words, is an answering machine's greeting
MACHINE_SPEECH_S = 3.5
MACHINE_WORDS = re.compile(
    r"leave (a|your) message|after the (tone|beep)|not available|voice ?mail|can(no|')t take your call|"
    r"unable to (take|answer)|you have reached|you've reached|record your message"
)
DTMF_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}


def is_machine(text: str, speech_s: float | None) -> bool:
    return bool(MACHINE_WORDS.search(text.lower())) or (speech_s or 0.0) >= MACHINE_SPEECH_S


class CallControl:
    """What the agent does to the call itself; every ending is reported with its reason."""

    def __init__(
        self,
        ctx: JobContext | None,
        report: Callable[[str, dict[str, Any]], object],
        transfers: TransferPolicy | None = None,
    ) -> None:
        self._ctx = ctx  # None: a session without a room (tests drive the agent with text)
        self._report = report
        # where transfers may go: the profile's destinations only (none when not given)
        self.transfers = transfers or TransferPolicy(frozenset())
        self.ended = False
        self._pending: set[asyncio.Task[Any]] = set()
        # a warm transfer (phoneagent.worker.warm_transfer), set once the call's session exists
        self.warm: Callable[[str], Coroutine[Any, Any, TransferResult]] | None = None
        # set while the agent has the call: cleared while the caller is holding for, or talking with,
        # the person of a warm transfer (the agent's silence reprompt and time limit leave it alone)
        self._with_agent = asyncio.Event()
        self._with_agent.set()

    @property
    def room(self) -> rtc.Room | None:
        return self._ctx.room if self._ctx is not None else None

    def event(self, type_: str, data: dict[str, Any]) -> None:
        self._report(type_, data)

    async def hang_up(self, reason: str) -> None:
        if self.ended:
            return
        self.ended = True
        log.info("agent ends the call", extra={"reason": reason})
        self._report("hangup", {"reason": reason})
        if self._ctx is not None:
            await self._ctx.delete_room()

    async def transfer(self, to: str) -> bool:
        """Send the phone a REFER to ``to``; reported and ended as ``transferred`` when it follows.

        The phone that follows hangs up this leg at once, which closes the agent's session and shuts
        the job down while the REFER's answer may still be on its way: the transfer runs as a task of
        its own that the job's shutdown waits for (:meth:`settle`), so its outcome is always reported."""
        task = asyncio.create_task(self._transfer(to), name="phoneagent-transfer")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return await asyncio.shield(task)

    @property
    def handed_over(self) -> bool:
        return not self._with_agent.is_set()

    @handed_over.setter
    def handed_over(self, value: bool) -> None:
        if value:
            self._with_agent.clear()
        else:
            self._with_agent.set()

    async def with_agent(self) -> None:
        """Return once the agent has the call (at once, unless a warm transfer holds it)."""
        await self._with_agent.wait()

    async def warm_transfer(self, to: str) -> TransferResult:
        """Brief a person and connect the caller to them (see ``phoneagent.worker.warm_transfer``):
        returns once the connected call is over, or once the transfer failed (the caller is back)."""
        try:
            to = self.transfers.check(to)
        except ValueError as exc:
            self._report("tool", {"name": "warm_transfer", "to": to, "ok": False, "error": "not_allowed"})
            log.warning("warm transfer refused", extra={"error": str(exc)[:200]})
            return TransferResult("failed", "not one of the profile's destinations")
        if self.warm is None:
            return TransferResult("failed", "no warm transfer on this call")
        self.handed_over = True
        task = asyncio.create_task(self.warm(to), name="phoneagent-warm-transfer")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        try:
            result: TransferResult = await asyncio.shield(task)
        finally:
            self.handed_over = (
                task.done() and not task.cancelled() and task.exception() is None and task.result().connected
            )
        self._report(
            "tool", {"name": "warm_transfer", "to": to, "ok": result.connected, "result": result.result}
        )
        return result

    async def settle(self, _reason: str = "") -> None:
        """Let a transfer in flight finish and report (a job shutdown callback); one still running
        then is cancelled, so that it cleans up (a warm transfer gives its leg up) before the job ends."""
        if self._pending:
            _, running = await asyncio.wait(set(self._pending), timeout=REFER_FOLLOW_S + 5)
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running, timeout=5.0)

    async def _transfer(self, to: str) -> bool:
        try:
            to = self.transfers.check(to)
        except ValueError as exc:
            self._report("tool", {"name": "transfer", "to": to, "ok": False, "error": "not_allowed"})
            log.warning("transfer refused", extra={"error": str(exc)[:200]})
            return False
        phone = sip_participant(self._ctx.room) if self._ctx is not None else None
        if self._ctx is None or phone is None:
            return False
        try:
            await self._ctx.transfer_sip_participant(phone, to)
        except Exception as exc:  # noqa: BLE001 - LiveKit, livekit-sip or the far end refused: say so
            # the phone must still be on this call when the error comes (one gone already hung up),
            # and leave it soon after
            if not (
                LOST_REFER_ANSWER in str(exc)
                and phone.identity in self._ctx.room.remote_participants
                and await phone_leaves(self._ctx.room, phone.identity, within_s=REFER_FOLLOW_S)
            ):
                self._report("tool", {"name": "transfer", "to": to, "ok": False, "error": type(exc).__name__})
                log.warning("transfer failed", extra={"error": str(exc)[:200]})
                return False
            # livekit-sip v1.8.0 can drop its REFER transaction when the phone's first NOTIFY (100
            # Trying) arrives with the answer, and report a failure while the phone goes on with the
            # transfer; the phone leaving this call at once is the phone's own word that it followed
            self._report(
                "tool",
                {
                    "name": "transfer",
                    "to": to,
                    "ok": True,
                    "evidence": "the phone left the call after the REFER",
                },
            )
            log.info("transfer reported failed by livekit-sip, but the phone followed it", extra={"to": to})
            await self.hang_up("transferred")
            return True
        self._report("tool", {"name": "transfer", "to": to, "ok": True})
        await self.hang_up("transferred")
        return True

    async def send_digits(self, digits: str) -> None:
        for key in digits:
            if key == "w":
                await asyncio.sleep(0.5)
                continue
            if self._ctx is not None:
                await self._ctx.room.local_participant.publish_dtmf(code=DTMF_CODES[key], digit=key)
            await asyncio.sleep(0.3)
        self._report("tool", {"name": "send_dtmf", "digits": digits, "ok": True})


async def final_words(
    events: AsyncIterable[stt.SpeechEvent], understood: Callable[[str], bool] | None
) -> AsyncIterator[stt.SpeechEvent]:
    """Final transcripts as the brain should read them: spoken numbers as numerals, and, when the
    most likely transcript means nothing to the brain (``understood``) but another of the
    recognizer's alternatives does, that one first (it is what the caller more likely said to this
    agent: a mishearing of a word the call expects)."""
    async for ev in events:
        if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT and ev.alternatives:
            for alt in ev.alternatives:
                alt.text = normalize_numbers(alt.text)
            if understood is not None and not understood(ev.alternatives[0].text):
                better = next((a for a in ev.alternatives[1:] if understood(a.text)), None)
                if better is not None:
                    ev.alternatives = [better, *(a for a in ev.alternatives if a is not better)]
        yield ev


class PhoneAgent(Agent):
    def __init__(
        self,
        *,
        flow: ScriptedFlow,
        control: CallControl,
        outbound: bool = False,
        detect_machine: bool = False,
        max_duration_s: float | None = None,
        silence_timeout_s: float = 20.0,
        instructions: str = "You are a phone agent.",
        llm_tools: Sequence[str] | None = None,
        clock: TurnClock | None = None,
        answered: Awaitable[bool] | None = None,
    ) -> None:
        """``llm_tools`` None: the scripted flow decides (and acts); else the brain is an LLM and gets
        these of the phone tools (see ``phoneagent.worker.tools``). ``clock`` times each turn.
        ``answered``: the agent starts (greets, times the call) once it gives True, never on False;
        None: the call is up already."""
        self._scripted = llm_tools is None
        tools = (
            phone_tools(control, self._after, llm_tools, self._llm_recorded) if llm_tools is not None else []
        )
        # the instructions reach an LLM brain; the scripted brain reads only the caller's words
        super().__init__(instructions=instructions, tools=tools)
        self._flow = flow
        self._control = control
        self._outbound = outbound
        self._awaiting_callee = outbound and detect_machine
        self._max_duration_s = max_duration_s
        self._silence_timeout_s = silence_timeout_s
        self._after_reply: Decision | None = None
        self._silences = 0
        self._callee_spoke = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._answered = answered
        self._started = False  # greeted (or, outbound, listening for the callee): the call is up
        self.clock = clock or TurnClock()
        self.last_heard: list[str] = []  # the recognizer's transcripts of the last utterance, best first
        self._reported_outcome: dict[str, Any] | None = None
        self._last_caller_turn: int | None = None

    # ---- the pipeline's nodes, timed -------------------------------------------------------------

    def stt_node(
        self, audio: AsyncIterable[rtc.AudioFrame], model_settings: ModelSettings
    ) -> AsyncIterable[stt.SpeechEvent]:
        events = Agent.default.stt_node(self, self.clock.tap(audio), model_settings)
        return self._heard(final_words(events, self.understood if self._scripted else None))

    async def _heard(self, events: AsyncIterable[stt.SpeechEvent]) -> AsyncIterator[stt.SpeechEvent]:
        async for ev in events:
            if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                self.last_heard = [a.text for a in ev.alternatives]
            yield ev

    def understood(self, text: str) -> bool:
        """Whether the scripted flow can act on the caller's ``text`` now."""
        return self._flow.decide(text).intent != "fallback"

    def llm_node(
        self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings
    ) -> AsyncIterable[llm.ChatChunk]:
        return self.clock.first_item("brain", Agent.default.llm_node(self, chat_ctx, tools, model_settings))

    def tts_node(
        self, text: AsyncIterable[str], model_settings: ModelSettings
    ) -> AsyncIterable[rtc.AudioFrame]:
        return self.clock.first_item("tts", Agent.default.tts_node(self, text, model_settings))

    # ---- lifecycle -------------------------------------------------------------------------------

    async def on_enter(self) -> None:
        self.session.on("conversation_item_added", self._on_item)
        self.session.on("user_state_changed", self._on_user_state)
        if self._control.room is not None:
            self._control.room.on("sip_dtmf_received", self._on_dtmf)
        if self._answered is not None:
            self._spawn(self._start_once_answered(self._answered))
        else:
            self._start()

    async def _start_once_answered(self, answered: Awaitable[bool]) -> None:
        if await answered:
            self._start()

    def _start(self) -> None:
        self._started = True
        if self._max_duration_s:
            self._spawn(self._end_at_max_duration(self._max_duration_s))
        if self._awaiting_callee:
            self._spawn(self._greet_a_silent_callee())
        else:
            self._greet()

    async def on_exit(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _greet(self) -> None:
        # the caller must hear the whole greeting: nothing interrupts it
        self.session.say(self._flow.script.greeting, allow_interruptions=False)

    # ---- the caller's turns ------------------------------------------------------------------------

    async def on_user_turn_completed(self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage) -> None:
        if self._answered is not None and not self._started:
            # not this job's call yet (a job sent to a call already going on waits for the call's own
            # agent): the caller's words are that agent's to answer, and to put on the record
            raise StopResponse
        self.clock.committed()
        text = new_message.text_content or ""
        if self._awaiting_callee:
            self._awaiting_callee = False
            m = new_message.metrics
            start, stop = m.get("started_speaking_at"), m.get("stopped_speaking_at")
            speech_s = stop - start if isinstance(start, float) and isinstance(stop, float) else None
            if is_machine(text, speech_s):
                self._spawn(self._leave_voicemail())
            else:
                self._greet()
            raise StopResponse  # the callee's hello is answered by the greeting, not by the script
        if not self._scripted:
            return  # the LLM answers, and acts through its tools
        decision = self._flow.respond(text, new_message.id)
        log.info("caller turn", extra={"intent": decision.intent, "text": text})
        self._report_outcome()
        if decision.acts:
            self._after(decision)

    def turn_numbered(self, seq: int, text: str) -> None:
        """The caller's turn with these words was reported as turn ``seq``: the outcome's entries
        from it get their number (see ``phoneagent.worker.outcome``)."""
        self._last_caller_turn = seq
        if self._flow.outcome.numbered(seq, text):
            self._report_outcome()

    def _llm_recorded(self, intent: str | None, slot: str | None, value: str | None) -> None:
        """The LLM brain's record_outcome: from the caller's latest turn (the one it answers)."""
        source = Source.turn(self._last_caller_turn)
        taken = self._flow.outcome.intents
        if intent is not None and (not taken or taken[-1]["name"] != intent):  # told twice: once
            self._flow.outcome.took(intent, source)
        if slot is not None and value is not None:
            self._flow.outcome.filled(slot, value, source)
        self._report_outcome()

    def _report_outcome(self) -> None:
        """The whole outcome to the control plane when it changed (the latest one reported wins)."""
        outcome = self._flow.outcome
        now = outcome.to_dict()
        if not outcome.empty() and now != self._reported_outcome:
            self._reported_outcome = now
            self._control.event("outcome", now)

    def _after(self, decision: Decision) -> None:
        """Act on ``decision`` once the reply being made now has been heard."""
        self._after_reply = decision

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        # an assistant message is committed once its speech has played out
        if isinstance(item, llm.ChatMessage) and item.role == "assistant" and self._after_reply is not None:
            decision, self._after_reply = self._after_reply, None
            self._spawn(self._act(decision))

    async def _act(self, decision: Decision) -> None:
        await asyncio.sleep(GOODBYE_DRAIN_S)
        if decision.send_digits:
            await self._control.send_digits(decision.send_digits)
        if decision.transfer_to and not await self._control.transfer(decision.transfer_to):
            self.session.say("Sorry, I could not transfer your call. How else can I help?")
        if decision.warm_transfer_to:
            self._silences = 0  # a reprompt pending from before is not answered by holding
            result = await self._control.warm_transfer(decision.warm_transfer_to)
            if not result.connected and result.result != "caller_left" and not self._control.ended:
                self._back_from_transfer(result)
        if decision.hang_up:
            await self._control.hang_up("agent_hangup")

    def _back_from_transfer(self, result: TransferResult) -> None:
        """Nobody took the caller: say why, and offer to take a message or to end the call."""
        if self._scripted:
            self._flow.offer_message()
            self.session.say(result.told_caller())
        else:
            self.session.generate_reply(
                instructions=f"The warm transfer did not go through ({result.result.replace('_', ' ')}). "
                "Tell the caller in one short sentence, and offer to take a message for the person "
                "(record it with record_outcome, slot message) or to end the call."
            )

    # ---- keys, silence, time ---------------------------------------------------------------------

    def _on_dtmf(self, ev: rtc.SipDTMF) -> None:
        if self._control.handed_over:
            return  # the caller's keys are the person's business now (livekit-sip passes them on)
        self._control.event("dtmf", {"digit": ev.digit})
        if not self._scripted:
            self.session.generate_reply(user_input=f"(the caller pressed the {ev.digit} key)")
            return
        decision = self._flow.respond_key(ev.digit)
        log.info("caller key", extra={"intent": decision.intent, "digit": ev.digit})
        self._report_outcome()
        if decision.reply or decision.acts:  # a key held for a digits slot says nothing yet
            self._spawn(self._say_then_act(decision))

    async def _say_then_act(self, decision: Decision) -> None:
        self.session.interrupt()
        handle = self.session.say(decision.reply)
        await handle
        if decision.acts:
            await self._act(decision)

    def _on_user_state(self, ev: UserStateChangedEvent) -> None:
        if ev.new_state == "speaking":
            self._silences = 0
            self._callee_spoke = True
        elif (
            ev.new_state == "away"
            and self._started
            and not self._awaiting_callee
            and not self._control.ended
            and not self._control.handed_over
        ):
            self._silences = 1
            self._control.event("silence", {"count": 1})
            self._spawn(self._reprompt())

    async def _reprompt(self) -> None:
        # the session reports "away" once; the second silence is timed here, from the reprompt's end
        await self.session.say(self._flow.script.reprompt)
        await asyncio.sleep(self._silence_timeout_s)
        if (
            self._silences == 1
            and self.session.user_state != "speaking"
            and not self._control.ended
            and not self._control.handed_over
        ):
            self._silences = 2
            self._control.event("silence", {"count": 2})
            await self._say_and_hang_up(self._flow.script.silence_goodbye, "silence_timeout")

    async def _say_and_hang_up(self, text: str, reason: str) -> None:
        with contextlib.suppress(RuntimeError):  # the session may be closing already
            handle = self.session.say(text, allow_interruptions=False)
            await handle
        await asyncio.sleep(GOODBYE_DRAIN_S)
        await self._control.hang_up(reason)

    async def _end_at_max_duration(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        # while the caller holds for (or talks with) a warm transfer's person, the agent's time limit
        # waits; a caller who comes back is held to it again
        await self._control.with_agent()
        if self._control.ended:
            return
        self.session.interrupt()
        await self._say_and_hang_up(self._flow.script.max_duration_goodbye, "max_duration")

    # ---- outbound: a person or a machine ------------------------------------------------------------

    async def _greet_a_silent_callee(self) -> None:
        await asyncio.sleep(SILENT_CALLEE_S)
        # a callee already speaking (a person's hello, or a machine's greeting) is answered when the
        # turn completes, by what they said
        if self._awaiting_callee and not self._callee_spoke:
            self._awaiting_callee = False
            self._greet()

    async def _leave_voicemail(self) -> None:
        log.info("answering machine detected")
        self._control.event("tool", {"name": "voicemail", "message_left": bool(self._flow.script.voicemail)})
        if self._flow.script.voicemail:
            await self._say_and_hang_up(self._flow.script.voicemail, "voicemail")
        else:
            await self._control.hang_up("voicemail")
