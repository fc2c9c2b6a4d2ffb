"""The scripted brain: a deterministic call flow that needs no LLM (the embedded default).

It plugs into livekit-agents as an ``llm.LLM``, so the whole voice pipeline (turn taking, metrics,
per-turn latency, transcripts) works exactly as with a real model. The flow is declared as data in
the agent profile (``llm.script``):

- ``intents``: each with ``keywords`` (any word of the caller's turn) and/or a ``dtmf`` key, a
  ``reply``, and optionally ``confirm`` (asked first; the caller's yes gives the reply, a no the
  fallback) and an ``action``: ``hangup``, ``transfer`` (to ``transfer_to``, a ``tel:`` or ``sip:``
  URI) or ``dtmf`` (send ``digits`` down the line, e.g. to get through a phone menu);
- ``fallback``, ``goodbye_keywords``, ``goodbye``; ``reprompt`` and ``silence_goodbye`` (the silence
  timeout), ``max_duration_goodbye``, ``voicemail`` (the message left on an answering machine).

``decide`` is pure (preemptive generation may call it before the turn is final); ``respond`` decides
and moves the flow on, once per completed caller turn or key press.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import llm
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr

ACTIONS = ("hangup", "transfer", "dtmf")
YES = frozenset({"yes", "yeah", "yep", "correct", "right", "sure", "okay", "ok", "please"})
NO = frozenset({"no", "nope", "wrong", "not"})


class ScriptError(ValueError):
    """The agent profile's script cannot work; the message names the field."""


@dataclass(frozen=True)
class Intent:
    name: str
    keywords: tuple[str, ...]
    reply: str
    dtmf: str | None = None
    confirm: str | None = None
    action: str | None = None
    transfer_to: str | None = None
    digits: str | None = None

    @classmethod
    def from_dict(cls, i: dict[str, Any], n: int) -> Intent:
        where = f"script.intents[{n}]"
        if not isinstance(i, dict) or not i.get("name") or not i.get("reply"):
            raise ScriptError(f"{where}: needs a name and a reply")
        intent = cls(
            name=str(i["name"]),
            keywords=tuple(str(k).lower() for k in i.get("keywords", [])),
            reply=str(i["reply"]),
            dtmf=str(i["dtmf"]) if i.get("dtmf") is not None else None,
            confirm=str(i["confirm"]) if i.get("confirm") else None,
            action=i.get("action"),
            transfer_to=i.get("transfer_to"),
            digits=str(i["digits"]) if i.get("digits") is not None else None,
        )
        if not intent.keywords and intent.dtmf is None:
            raise ScriptError(f"{where}: needs keywords or a dtmf key")
        if intent.dtmf is not None and not re.fullmatch(r"[0-9*#A-D]", intent.dtmf):
            raise ScriptError(f"{where}.dtmf: one key, 0-9, *, # or A-D")
        if intent.action is not None and intent.action not in ACTIONS:
            raise ScriptError(f"{where}.action: one of {', '.join(ACTIONS)}")
        if intent.action == "transfer" and not re.match(
            r"^(tel:\+?[0-9]+|sips?:\S+@\S+)$", intent.transfer_to or ""
        ):
            raise ScriptError(f"{where}.transfer_to: a tel:+<number> or sip:user@host URI")
        if intent.action == "dtmf" and not re.fullmatch(r"[0-9*#A-Dw]+", intent.digits or ""):
            raise ScriptError(f"{where}.digits: keys 0-9, *, #, A-D (w: a pause)")
        return intent


@dataclass(frozen=True)
class Script:
    greeting: str
    intents: tuple[Intent, ...] = ()
    fallback: str = "Sorry, I did not catch that. Could you say it again?"
    goodbye_keywords: tuple[str, ...] = ("goodbye", "bye")
    goodbye: str = "Thank you for calling. Goodbye."
    reprompt: str = "Are you still there?"
    silence_goodbye: str = "I have not heard anything, so I will end the call now. Goodbye."
    max_duration_goodbye: str = "We have reached the time limit for this call. Thank you, goodbye."
    voicemail: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, greeting: str) -> Script:
        if not isinstance(data, dict):
            raise ScriptError("script: must be an object")
        intents = tuple(Intent.from_dict(i, n) for n, i in enumerate(data.get("intents", [])))
        keys = [i.dtmf for i in intents if i.dtmf is not None]
        if len(keys) != len(set(keys)):
            raise ScriptError("script.intents: each dtmf key may select one intent")
        names = ("fallback", "goodbye", "reprompt", "silence_goodbye", "max_duration_goodbye", "voicemail")
        texts = {name: str(data.get(name, getattr(cls, name))) for name in names}
        return cls(
            greeting=str(data.get("greeting") or greeting),
            intents=intents,
            goodbye_keywords=tuple(
                str(k).lower() for k in data.get("goodbye_keywords", cls.goodbye_keywords)
            ),
            **texts,
        )


DEFAULT_SCRIPT_DATA: dict[str, Any] = {
    "intents": [
        {
            "name": "hours",
            "keywords": ["hours", "open", "opening", "close", "closing"],
            "dtmf": "1",
            "reply": "We are open Monday to Friday from nine to five, and Saturday from ten to two.",
        },
        {
            "name": "appointment",
            "keywords": ["appointment", "book", "booking", "schedule"],
            "dtmf": "2",
            "reply": "I can book that for you. Which day works best?",
        },
        {
            "name": "day",
            "keywords": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "reply": "Great, you are booked. Anything else?",
        },
    ],
}


# a caller's word counts as a keyword with these endings too: "appointments", "booked", "Fridays"
_ENDINGS = ("s", "es", "'s", "ed", "d", "ing")


def caller_words(text: str) -> set[str]:
    """The caller's words, lowercased, each also without a plural, possessive or tense ending."""
    words = set(re.findall(r"[a-z']+", text.lower()))
    stems = {w[: -len(e)] for w in words for e in _ENDINGS if w.endswith(e) and len(w) - len(e) >= 3}
    return words | stems


@dataclass
class Decision:
    intent: str
    reply: str
    hang_up: bool = False
    transfer_to: str | None = None
    send_digits: str | None = None


@dataclass
class ScriptedFlow:
    script: Script
    history: list[str] = field(default_factory=list)
    pending_confirm: Intent | None = None
    _by_message: dict[str, Decision] = field(default_factory=dict)

    def decide(self, caller_text: str) -> Decision:
        """What the flow answers to ``caller_text`` now (pure)."""
        words = caller_words(caller_text)
        if words & set(self.script.goodbye_keywords):
            return Decision("goodbye", self.script.goodbye, hang_up=True)
        if self.pending_confirm is not None:
            if words & NO:
                return Decision("fallback", self.script.fallback)
            if words & YES:
                return self._act(self.pending_confirm)
        for intent in self.script.intents:
            if words & set(intent.keywords):
                return self._ask_or_act(intent)
        return Decision("fallback", self.script.fallback)

    def vocabulary(self) -> list[str]:
        """The words the flow listens for now, to bias recognition toward them: every intent's
        keywords and the goodbye words, and yes and no while it waits for a confirmation."""
        words = [k for i in self.script.intents for k in i.keywords] + list(self.script.goodbye_keywords)
        if self.pending_confirm is not None:
            words = ["yes", "no", *words]
        return list(dict.fromkeys(words))

    def decide_key(self, digit: str) -> Decision:
        for intent in self.script.intents:
            if intent.dtmf == digit:
                return self._act(intent)  # a key press is unambiguous: no confirmation
        return Decision("fallback", self.script.fallback)

    def _ask_or_act(self, intent: Intent) -> Decision:
        return Decision(f"confirm:{intent.name}", intent.confirm) if intent.confirm else self._act(intent)

    @staticmethod
    def _act(intent: Intent) -> Decision:
        return Decision(
            intent.name,
            intent.reply,
            hang_up=intent.action == "hangup",
            transfer_to=intent.transfer_to if intent.action == "transfer" else None,
            send_digits=intent.digits if intent.action == "dtmf" else None,
        )

    def respond(self, caller_text: str, message_id: str | None = None) -> Decision:
        """Decide and move on (once per completed caller turn); the LLM node replays the decision."""
        return self._advance(self.decide(caller_text), message_id)

    def respond_key(self, digit: str) -> Decision:
        return self._advance(self.decide_key(digit), None)

    def _advance(self, decision: Decision, message_id: str | None) -> Decision:
        if decision.intent.startswith("confirm:"):
            name = decision.intent.split(":", 1)[1]
            self.pending_confirm = next(i for i in self.script.intents if i.name == name)
        else:
            self.pending_confirm = None
            if decision.intent not in ("fallback", "goodbye"):
                self.history.append(decision.intent)
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
