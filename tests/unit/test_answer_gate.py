"""An inbound agent starts once its call is up: it greets when told the call is answered, and says
nothing when the caller gave up first."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from livekit.agents import AgentSession, StopResponse, llm

from phoneagent.worker.agent import CallControl, PhoneAgent
from phoneagent.worker.scripted import DEFAULT_SCRIPT_DATA, Script, ScriptedFlow, ScriptedLLM

pytestmark = pytest.mark.unit

GREETING = "Hello, thank you for calling."


def _said(session: AgentSession[None]) -> list[str]:
    return [
        i.text_content or ""
        for i in session.history.items
        if isinstance(i, llm.ChatMessage) and i.role == "assistant"
    ]


@pytest.mark.parametrize("up", [True, False], ids=["answered", "caller-gave-up"])
async def test_the_agent_greets_only_once_the_call_is_up(up: bool) -> None:
    flow = ScriptedFlow(Script.from_dict(DEFAULT_SCRIPT_DATA, greeting=GREETING))
    events: list[tuple[str, dict[str, Any]]] = []
    answered: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    agent = PhoneAgent(
        flow=flow, control=CallControl(None, lambda t, d: events.append((t, d))), answered=answered
    )
    async with AgentSession(llm=ScriptedLLM(flow)) as session:
        spoke = asyncio.Event()
        session.on("conversation_item_added", lambda _ev: spoke.set())
        await session.start(agent)
        await asyncio.sleep(0.3)
        assert _said(session) == []  # ringing: not a word
        answered.set_result(up)
        if up:
            async with asyncio.timeout(5):
                await spoke.wait()
        await asyncio.sleep(0.3)
        assert _said(session) == ([GREETING] if up else [])


async def test_a_job_not_yet_on_the_call_leaves_the_callers_words_to_the_calls_own_agent() -> None:
    # a job sent to a call already going on waits for the call's own agent (worker/takeover.py): what
    # the caller says meanwhile is that agent's to answer and to put on the record, not this job's
    flow = ScriptedFlow(Script.from_dict(DEFAULT_SCRIPT_DATA, greeting=GREETING))
    events: list[tuple[str, dict[str, Any]]] = []
    waiting: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    agent = PhoneAgent(
        flow=flow, control=CallControl(None, lambda t, d: events.append((t, d))), answered=waiting
    )
    said = llm.ChatMessage(role="user", content=["I would like an appointment"])
    with pytest.raises(StopResponse):
        await agent.on_user_turn_completed(llm.ChatContext(), said)
    assert (flow.history, flow.pending_confirm, events) == ([], None, [])
    waiting.cancel()
