"""The scripted brain: a deterministic call flow that needs no LLM (the embedded default).

It plugs into livekit-agents as an ``llm.LLM``, so the whole voice pipeline (turn taking, metrics,
per-turn latency, transcripts) works exactly as with a real model. The flow is declared as data in
the agent profile (``llm.script``, read by :mod:`phoneagent.worker.script_spec`), and it fills the
call's outcome as it goes (:mod:`phoneagent.worker.outcome`): every intent taken, every confirmation
answered, every slot its intents collect.

``decide`` is pure (preemptive generation may call it before the turn is final); ``respond`` decides
and moves the flow on, once per completed caller turn or key press.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import llm
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr

from phoneagent.worker import slots
from phoneagent.worker.outcome import Outcome, Source
from phoneagent.worker.script_spec import (
    DEFAULT_SCRIPT_DATA,
    SLOT_FILLED_REPLY,
    Collect,
    Intent,
    Script,
    ScriptError,
)
from phoneagent.worker.slots import NO, YES, caller_words

__all__ = [
    "DEFAULT_SCRIPT_DATA",
    "NO",
    "YES",
    "Decision",
    "Script",
    "ScriptError",
    "ScriptedFlow",
    "ScriptedLLM",
    "caller_words",
]

DIGIT_KEYS = frozenset("0123456789")


@dataclass
class Decision:
    intent: str  # an intent's name, or fallback, goodbye, confirm:<intent>, slot:<slot>
    reply: str  # empty: nothing to say (a key held for a digits slot)
    hang_up: bool = False
    transfer_to: str | None = None
    warm_transfer_to: str | None = None
    send_digits: str | None = None
    # what the turn gives the outcome; applied when the flow moves on, never by ``decide``
    fills: tuple[tuple[Collect, str], ...] = ()
    answer: str | None = None  # the caller's yes or no to the confirmation asked
    keys: str | None = None  # the keys a digits slot holds after this press (None: unchanged)

    @property
    def acts(self) -> bool:
        return (
            self.hang_up
            or self.transfer_to is not None
            or self.warm_transfer_to is not None
            or self.send_digits is not None
        )


def _taken(intent: str) -> bool:
    return intent not in ("fallback", "goodbye") and not intent.startswith(("confirm:", "slot:", "message"))


# after a warm transfer nobody took: the caller may leave a message, kept as the outcome's ``message``
MESSAGE_SLOT = "message"
MESSAGE_ASK = "Please go ahead, I am listening."
MESSAGE_TAKEN = "Thank you, I will pass your message on. Goodbye."


@dataclass
class ScriptedFlow:
    script: Script
    history: list[str] = field(default_factory=list)
    pending_confirm: Intent | None = None
    # the slots of the last intent taken that the caller has not given yet, in order
    pending_slots: tuple[Collect, ...] = ()
    keys: str = ""  # keys pressed so far for a pending digits slot
    outcome: Outcome = field(default_factory=Outcome)
    # a message offered (after a warm transfer nobody took): "offered", then "listening" after a yes
    message: str | None = None
    _by_message: dict[str, Decision] = field(default_factory=dict)

    @property
    def pending_slot(self) -> Collect | None:
        return self.pending_slots[0] if self.pending_slots else None

    def decide(self, caller_text: str) -> Decision:
        """What the flow answers to ``caller_text`` now (pure)."""
        words = caller_words(caller_text)
        if words & set(self.script.goodbye_keywords):
            return Decision("goodbye", self.script.goodbye, hang_up=True)
        if self.message is not None:
            return self._message(words, caller_text)
        if self.pending_confirm is not None:
            if words & NO:
                return Decision("fallback", self.script.fallback, answer="no")
            if words & YES:
                return dataclasses.replace(self._act(self.pending_confirm), answer="yes")
        slot = self.pending_slot
        if slot is not None and (value := slot.read(caller_text)) is not None:
            return self._filled(slot, value, caller_text)
        intent = self._match(words)
        if intent is not None:
            return self._ask_or_act(intent, caller_text)
        return Decision("fallback", self.script.fallback)

    def offer_message(self) -> None:
        """The caller was offered to leave a message: the next turn answers the offer (or is the
        message itself)."""
        self.message = "offered"

    def _message(self, words: set[str], caller_text: str) -> Decision:
        if self.message == "offered" and words & NO and not words & YES:
            return Decision("goodbye", self.script.goodbye, hang_up=True)
        if self.message == "offered" and words & YES and len(words) <= 3:  # "yes please": not a message
            return Decision("message:ask", MESSAGE_ASK)
        return Decision("message", MESSAGE_TAKEN, hang_up=True)

    def _match(self, words: set[str]) -> Intent | None:
        return next((i for i in self.script.intents if words & set(i.keywords)), None)

    def _filled(self, slot: Collect, value: str, caller_text: str | None) -> Decision:
        """The answer to a turn (or keys) that gave the pending ``slot`` its ``value``: the next
        slot's question, else what an intent the words match answers, else the slot's reply."""
        fills = ((slot, value),)
        rest = [c for c in self.pending_slots if c is not slot]
        if rest and rest[0].ask:
            return Decision(f"slot:{slot.slot}", rest[0].ask, fills=fills)
        intent = self._match(caller_words(caller_text)) if caller_text is not None else None
        if intent is not None:
            then = self._ask_or_act(intent, caller_text)
            return dataclasses.replace(then, fills=fills + then.fills)
        return Decision(f"slot:{slot.slot}", slot.reply or SLOT_FILLED_REPLY, fills=fills)

    def vocabulary(self) -> list[str]:
        """The words the flow listens for now, to bias recognition toward them: every intent's
        keywords and the goodbye words, yes and no while it waits for a confirmation, and the words
        of the slot it waits for."""
        words = [k for i in self.script.intents for k in i.keywords] + list(self.script.goodbye_keywords)
        if self.pending_confirm is not None:
            words = ["yes", "no", *words]
        if (slot := self.pending_slot) is not None:
            words = [*slots.vocabulary(slot.kind, slot.keywords), *words]
        return list(dict.fromkeys(words))

    def decide_key(self, digit: str) -> Decision:
        slot = self.pending_slot
        if slot is not None and slot.kind == "digits" and (digit in DIGIT_KEYS or digit in "*#"):
            return self._key_for(slot, digit)
        for intent in self.script.intents:
            if intent.dtmf == digit:
                return self._act(intent)  # a key press is unambiguous: no confirmation
        return Decision("fallback", self.script.fallback)

    def _key_for(self, slot: Collect, digit: str) -> Decision:
        """A key pressed while a digits slot waits: held until the slot's count (or ``#``); ``*``
        starts over."""
        if digit == "*":
            return Decision(f"slot:{slot.slot}", "", keys="")
        if digit == "#":
            if self.keys and (slot.count is None or len(self.keys) == slot.count):
                return dataclasses.replace(self._filled(slot, self.keys, None), keys="")
            return Decision("fallback", self.script.fallback, keys="")
        held = self.keys + digit
        if slot.count is not None and len(held) >= slot.count:
            return dataclasses.replace(self._filled(slot, held, None), keys="")
        return Decision(f"slot:{slot.slot}", "", keys=held)

    def _ask_or_act(self, intent: Intent, caller_text: str | None = None) -> Decision:
        return (
            Decision(f"confirm:{intent.name}", intent.confirm)
            if intent.confirm
            else self._act(intent, caller_text)
        )

    @staticmethod
    def _act(intent: Intent, caller_text: str | None = None) -> Decision:
        """Take ``intent``; the words that took it fill its slots when they hold their values (not a
        yes or no, which answers a question asked after)."""
        fills: tuple[tuple[Collect, str], ...] = ()
        if caller_text is not None:
            read = ((c, c.read(caller_text)) for c in intent.collect if c.kind != "yes_no")
            fills = tuple((c, v) for c, v in read if v is not None)
        reply = intent.reply
        if intent.collect and len(fills) == len(intent.collect) and intent.collect[-1].reply:
            reply = intent.collect[-1].reply  # all given at once: nothing left to ask
        return Decision(
            intent.name,
            reply,
            hang_up=intent.action == "hangup",
            transfer_to=intent.transfer_to if intent.action == "transfer" else None,
            warm_transfer_to=intent.transfer_to if intent.action == "warm_transfer" else None,
            send_digits=intent.digits if intent.action == "dtmf" else None,
            fills=fills,
        )

    def respond(self, caller_text: str, message_id: str | None = None) -> Decision:
        """Decide and move on (once per completed caller turn); the LLM node replays the decision."""
        return self._advance(self.decide(caller_text), Source.voice(caller_text), message_id)

    def respond_key(self, digit: str) -> Decision:
        slot = self.pending_slot
        held = self.keys + digit if slot is not None and slot.kind == "digits" else digit
        return self._advance(self.decide_key(digit), Source.dtmf(held), None)

    def _advance(self, decision: Decision, source: Source, message_id: str | None) -> Decision:
        asked = self.pending_confirm
        if decision.answer is not None and asked is not None:
            self.outcome.confirmed(asked.name, asked.confirm or "", decision.answer, source)
        if decision.intent.startswith("confirm:"):
            name = decision.intent.split(":", 1)[1]
            self.pending_confirm = next(i for i in self.script.intents if i.name == name)
        else:
            self.pending_confirm = None
        if _taken(decision.intent):
            self.history.append(decision.intent)
            self.outcome.took(decision.intent, source)
            intent = next(i for i in self.script.intents if i.name == decision.intent)
            if intent.collect:
                self.pending_slots, self.keys = intent.collect, ""
        for collect, value in decision.fills:
            self.outcome.filled(collect.slot, value, source)
            self.pending_slots = tuple(c for c in self.pending_slots if c.slot != collect.slot)
        if decision.keys is not None:
            self.keys = decision.keys
        self.message = "listening" if decision.intent == "message:ask" else None
        if decision.intent == "message" and source.text.strip():
            self.outcome.took("message", source)
            self.outcome.filled(MESSAGE_SLOT, source.text.strip()[:200], source)
        if message_id is not None:
            self._by_message[message_id] = decision
        return decision

    def reply_for(self, caller_text: str, message_id: str | None = None) -> str:
        """The reply to a caller message: the decision made when its turn completed, else (a
        preemptive call before that) what the flow would decide now."""
        made = self._by_message.get(message_id or "")
        return (made or self.decide(caller_text)).reply


class ScriptedLLM(llm.LLM[Any]):
    """Answers the last caller message from the script."""

    def __init__(self, flow: ScriptedFlow) -> None:
        super().__init__()
        self.flow = flow

    @property
    def model(self) -> str:
        return "scripted"

    @property
    def provider(self) -> str:
        return "local"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        caller, message_id = "", None
        for item in reversed(chat_ctx.items):
            if isinstance(item, llm.ChatMessage) and item.role == "user":
                caller, message_id = item.text_content or "", item.id
                break
        reply = self.flow.reply_for(caller, message_id)
        return _ScriptedStream(
            self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options, reply=reply
        )


class _ScriptedStream(llm.LLMStream):
    def __init__(
        self,
        owner: ScriptedLLM,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        conn_options: APIConnectOptions,
        reply: str,
    ) -> None:
        super().__init__(owner, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._reply = reply

    async def _run(self) -> None:
        self._event_ch.send_nowait(
            llm.ChatChunk(
                id=uuid.uuid4().hex[:12], delta=llm.ChoiceDelta(role="assistant", content=self._reply)
            )
        )
