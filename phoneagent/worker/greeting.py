"""The walking-skeleton agent: it answers and speaks the greeting with local Piper TTS."""

from __future__ import annotations

from livekit.agents import Agent


class GreetingAgent(Agent):
    def __init__(self, *, greeting: str) -> None:
        super().__init__(instructions="You are a phone agent. Greet the caller.")
        self._greeting = greeting

    async def on_enter(self) -> None:
        # the caller must hear the whole greeting: nothing interrupts it
        self.session.say(self._greeting, allow_interruptions=False)
