"""The phone agent: greets, answers through its brain, and hangs up after the goodbye."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from livekit.agents import Agent, llm
from livekit.agents.llm import StopResponse

from phoneagent.worker.scripted import ScriptedFlow

log = logging.getLogger("phoneagent.worker")

# after the goodbye's last frame leaves the agent, the bridge still needs a moment to play it out
GOODBYE_DRAIN_S = 0.6


class PhoneAgent(Agent):
    def __init__(self, *, flow: ScriptedFlow, hang_up: Callable[[], Awaitable[object]]) -> None:
        super().__init__(instructions="You are a phone agent.")
        self._flow = flow
        self._hang_up = hang_up

    async def on_enter(self) -> None:
        # the caller must hear the whole greeting: nothing interrupts it
        self.session.say(self._flow.script.greeting, allow_interruptions=False)

    async def on_user_turn_completed(self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage) -> None:
        decision = self._flow.respond(new_message.text_content or "")
        log.info("caller turn", extra={"intent": decision.intent, "text": new_message.text_content or ""})
        if decision.hang_up:
            await self.session.say(decision.reply, allow_interruptions=False)
            await asyncio.sleep(GOODBYE_DRAIN_S)
            log.info("agent hangs up", extra={"reason": "goodbye"})
            await self._hang_up()
            raise StopResponse()
