"""The phone agent: greets, answers through its brain, and hangs up once its goodbye has been heard."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from livekit.agents import Agent, llm
from livekit.agents.voice.events import ConversationItemAddedEvent

from phoneagent.worker.scripted import ScriptedFlow

log = logging.getLogger("phoneagent.worker")

# after the goodbye's last frame leaves the agent, the bridge still needs a moment to play it out
GOODBYE_DRAIN_S = 0.6


class PhoneAgent(Agent):
    def __init__(
        self,
        *,
        flow: ScriptedFlow,
        hang_up: Callable[[], Awaitable[object]],
        instructions: str = "You are a phone agent.",
    ) -> None:
        # the instructions reach an LLM brain; the scripted brain reads only the caller's words
        super().__init__(instructions=instructions)
        self._flow = flow
        self._hang_up = hang_up
        self._hang_up_after_reply = False
        self._goodbye: asyncio.Task[None] | None = None

    async def on_enter(self) -> None:
        self.session.on("conversation_item_added", self._on_item)
        # the caller must hear the whole greeting: nothing interrupts it
        self.session.say(self._flow.script.greeting, allow_interruptions=False)

    async def on_user_turn_completed(self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage) -> None:
        # the turn goes on normally (the brain speaks the goodbye); only the hang-up is added after it
        decision = self._flow.respond(new_message.text_content or "")
        log.info("caller turn", extra={"intent": decision.intent, "text": new_message.text_content or ""})
        self._hang_up_after_reply = self._hang_up_after_reply or decision.hang_up

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        # an assistant message is committed once its speech has played out
        if (
            self._hang_up_after_reply
            and self._goodbye is None
            and isinstance(item, llm.ChatMessage)
            and item.role == "assistant"
        ):
            self._goodbye = asyncio.create_task(self._finish())

    async def _finish(self) -> None:
        await asyncio.sleep(GOODBYE_DRAIN_S)
        log.info("agent hangs up", extra={"reason": "goodbye"})
        await self._hang_up()
