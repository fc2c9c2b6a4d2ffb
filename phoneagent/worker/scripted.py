"""The scripted brain: a deterministic call flow that needs no LLM (the embedded default).

It plugs into livekit-agents as an ``llm.LLM``, so the whole voice pipeline (turn taking, metrics,
per-turn latency, transcripts) works exactly as with a real model. The flow is declared as data:
intents with keywords and replies, a fallback, and goodbye words after which the agent hangs up.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import llm
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr


@dataclass(frozen=True)
class Intent:
    name: str
    keywords: tuple[str, ...]
    reply: str


@dataclass(frozen=True)
class Script:
    greeting: str
    intents: tuple[Intent, ...] = ()
    fallback: str = "Sorry, I did not catch that. Could you say it again?"
    goodbye_keywords: tuple[str, ...] = ("goodbye", "bye")
    goodbye: str = "Thank you for calling. Goodbye."

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, greeting: str) -> Script:
        intents = tuple(
            Intent(
                name=str(i["name"]),
                keywords=tuple(str(k).lower() for k in i["keywords"]),
                reply=str(i["reply"]),
            )
            for i in data.get("intents", [])
        )
        return cls(
            greeting=data.get("greeting", greeting),
            intents=intents,
            fallback=data.get("fallback", cls.fallback),
            goodbye_keywords=tuple(data.get("goodbye_keywords", cls.goodbye_keywords)),
            goodbye=data.get("goodbye", cls.goodbye),
        )


DEFAULT_SCRIPT_DATA: dict[str, Any] = {
    "intents": [
        {
            "name": "hours",
            "keywords": ["hours", "open", "opening", "close", "closing"],
            "reply": "We are open Monday to Friday from nine to five, and Saturday from ten to two.",
        },
        {
            "name": "appointment",
            "keywords": ["appointment", "book", "booking", "schedule"],
            "reply": "I can book that for you. Which day works best?",
        },
        {
            "name": "day",
            "keywords": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "reply": "Great, you are booked. Anything else?",
        },
    ],
}


@dataclass
class Decision:
    intent: str
    reply: str
    hang_up: bool = False


@dataclass
class ScriptedFlow:
    script: Script
    history: list[str] = field(default_factory=list)

    def reply_for(self, caller_text: str) -> str:
        return self.decide(caller_text).reply

    def respond(self, caller_text: str) -> Decision:
        """Decide and remember the intent (called once per completed caller turn)."""
        decision = self.decide(caller_text)
        if decision.intent not in ("fallback", "goodbye"):
            self.history.append(decision.intent)
        return decision

    def decide(self, caller_text: str) -> Decision:
        words = set(re.findall(r"[a-z']+", caller_text.lower()))
        if words & set(self.script.goodbye_keywords):
            return Decision("goodbye", self.script.goodbye, hang_up=True)
        for intent in self.script.intents:
            if words & set(intent.keywords):
                return Decision(intent.name, intent.reply)
        return Decision("fallback", self.script.fallback)


class ScriptedLLM(llm.LLM):
    """Answers the last caller message from the script (pure: preemptive calls change nothing)."""

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
        caller = ""
        for item in reversed(chat_ctx.items):
            if isinstance(item, llm.ChatMessage) and item.role == "user":
                caller = item.text_content or ""
                break
        reply = self.flow.reply_for(caller)
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
