"""The brain an agent profile asks for: scripted by default; an LLM streamed from a local server that
speaks OpenAI's chat-completions SSE (or Anthropic's messages SSE), with a second LLM taking over
when the first answers 500. No real OpenAI or Anthropic is reached."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from livekit.agents import AgentSession, APIConnectionError, llm
from livekit.agents.voice.run_result import ChatMessageEvent

from phoneagent.config import Settings
from phoneagent.errors import ConfigError
from phoneagent.speech.fallbacks import report_fallbacks
from phoneagent.speech.providers import session_conn_options
from phoneagent.testing.anthropic_wire import FakeAnthropic
from phoneagent.testing.openai_wire import FakeOpenAI
from phoneagent.worker.agent import PhoneAgent
from phoneagent.worker.brain import (
    DEFAULT_INSTRUCTIONS,
    build_llm,
    describe_brain,
    instructions_for,
    parse_brain,
)
from phoneagent.worker.scripted import DEFAULT_SCRIPT_DATA, Script, ScriptedFlow, ScriptedLLM

MakeSettings = Callable[..., Settings]
REPLY = "We are open from nine to five, Monday to Friday."


def _flow() -> ScriptedFlow:
    return ScriptedFlow(Script.from_dict(DEFAULT_SCRIPT_DATA, greeting="Hello."))


async def _reply(brain: llm.LLM, caller: str, instructions: str = "") -> str:
    ctx = llm.ChatContext()
    if instructions:
        ctx.add_message(role="system", content=instructions)
    ctx.add_message(role="user", content=caller)
    async with asyncio.timeout(10), brain.chat(chat_ctx=ctx) as stream:
        return "".join([c.delta.content or "" async for c in stream if c.delta])


def _reports() -> tuple[list[tuple[str, dict[str, Any]]], Callable[[str, dict[str, Any]], None]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    return calls, lambda type_, data: calls.append((type_, data))


def test_the_scripted_flow_is_the_default_brain_and_needs_no_llm(make_settings: MakeSettings) -> None:
    for profile_llm in (None, {}, {"brain": "scripted", "script": {"intents": []}}):
        assert isinstance(build_llm(make_settings(AGENT_MODE="api"), profile_llm, _flow()), ScriptedLLM)
    assert describe_brain(make_settings(), None) == "scripted"


async def test_llm_brain_streams_a_reply_from_a_local_server_speaking_openais_chat_completions_sse(
    make_settings: MakeSettings,
) -> None:
    profile_llm = {"brain": "llm", "provider": "openai", "model": "gpt-4o-mini", "temperature": 0.3,
                   "instructions": "You answer the phone for a dental practice."}  # fmt: skip
    async with FakeOpenAI(key="sk-test", reply=REPLY) as oai:
        settings = make_settings(AGENT_MODE="api", OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=oai.base_url)
        brain = build_llm(settings, profile_llm, _flow())
        instructions = instructions_for(parse_brain(profile_llm))
        text = await _reply(brain, "When are you open?", instructions)
        await brain.aclose()

    assert text == REPLY
    req = oai.requests[0]
    assert (req.path, req.headers["Authorization"]) == ("/v1/chat/completions", "Bearer sk-test")
    assert (req.body["model"], req.body["temperature"], req.body["stream"]) == ("gpt-4o-mini", 0.3, True)
    sent = [(m["role"], m["content"]) for m in req.body["messages"]]
    assert sent == [("system", "You answer the phone for a dental practice."), ("user", "When are you open?")]


async def test_llm_brain_falls_back_to_a_second_llm_within_one_chat_when_the_first_answers_500(
    make_settings: MakeSettings,
) -> None:
    calls, report = _reports()
    profile_llm = {"brain": "llm", "provider": "openai", "model": "gpt-4o-mini",
                   "fallbacks": [{"provider": "local", "model": "llama3.2:3b"}]}  # fmt: skip
    async with (
        FakeOpenAI(key="sk-test", reply="never said") as api,
        FakeOpenAI(reply=REPLY) as ollama,
    ):
        api.fail = "http_500"
        settings = make_settings(
            AGENT_MODE="api", OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=api.base_url,
            LOCAL_LLM_URL=ollama.base_url,
        )  # fmt: skip
        brain = build_llm(settings, profile_llm, _flow())
        assert report_fallbacks(report, brain) == 1
        text = await _reply(brain, "When are you open?")
        await brain.aclose()

    assert text == REPLY
    assert len(api.requests) >= 1 and ollama.requests[0].body["model"] == "llama3.2:3b"
    assert ollama.requests[0].headers["Authorization"] == "Bearer no-key"  # the OpenAI key stays home
    assert calls[0] == (
        "fallback",
        {"component": "llm", "provider": "openai", "model": "gpt-4o-mini", "available": False},
    )


async def test_hybrid_mode_puts_the_local_llm_behind_the_api_one(make_settings: MakeSettings) -> None:
    async with FakeOpenAI(key="sk-test") as api, FakeOpenAI(reply=REPLY) as ollama:
        api.fail = "close"
        settings = make_settings(
            AGENT_MODE="hybrid", OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=api.base_url,
            LOCAL_LLM_URL=ollama.base_url, LOCAL_LLM_MODEL="qwen2.5:3b",
        )  # fmt: skip
        assert describe_brain(settings, {"brain": "llm"}) == (
            f"openai gpt-4o-mini then openai-compatible qwen2.5:3b at {ollama.base_url}"
        )
        brain = build_llm(settings, {"brain": "llm"}, _flow())
        text = await _reply(brain, "When are you open?")
        await brain.aclose()
    assert text == REPLY


async def test_anthropic_brain_against_a_local_server_speaking_anthropics_messages_sse(
    make_settings: MakeSettings,
) -> None:
    async with FakeAnthropic(key="ak-test", reply=REPLY) as ant:
        settings = make_settings(
            AGENT_MODE="api", ANTHROPIC_API_KEY="ak-test", ANTHROPIC_BASE_URL=ant.base_url
        )
        brain = build_llm(settings, {"brain": "llm", "provider": "anthropic"}, _flow())
        text = await _reply(brain, "When are you open?", "Answer briefly.")
        await brain.aclose()

    assert text == REPLY
    req = ant.requests[0]
    assert (req.path, req.headers["x-api-key"]) == ("/v1/messages", "ak-test")
    assert req.body["model"] == "claude-sonnet-4-6" and req.body["system"][0]["text"] == "Answer briefly."


async def test_a_profile_pointing_openai_elsewhere_never_receives_the_operators_key(
    make_settings: MakeSettings,
) -> None:
    async with FakeOpenAI(reply=REPLY) as elsewhere:
        settings = make_settings(AGENT_MODE="api", OPENAI_API_KEY="sk-operator")
        profile_llm = {"brain": "llm", "provider": "openai", "model": "m", "base_url": elsewhere.base_url}
        brain = build_llm(settings, profile_llm, _flow())
        assert await _reply(brain, "hello") == REPLY
        await brain.aclose()
    assert elsewhere.requests[0].headers["Authorization"] == "Bearer no-key"


@pytest.mark.parametrize(
    ("profile_llm", "env", "message"),
    [
        ({"brain": "llm", "provider": "gemini"}, {}, r"llm\.provider: Input should be 'openai', 'anthropic'"),
        ({"brain": "lmm"}, {}, r"llm\.brain: Input should be 'scripted' or 'llm'"),
        ({"provider": "openai"}, {}, "provider set but brain is 'scripted'; set brain to 'llm'"),
        ({"brain": "llm", "modle": "x"}, {}, r"llm\.modle: Extra inputs are not permitted"),
        ({"brain": "llm", "base_url": "ollama:11434"}, {}, r"llm\.base_url: Value error, must be an http"),
        ({"brain": "llm", "temperature": 5}, {}, r"llm\.temperature"),
        ({"brain": "llm"}, {"AGENT_MODE": "api"}, "uses OpenAI, and OPENAI_API_KEY is not set"),
        ({"brain": "llm", "provider": "anthropic"}, {"AGENT_MODE": "api"}, "ANTHROPIC_API_KEY is not set"),
        ({"brain": "llm", "provider": "local"}, {}, "provider 'local', and LOCAL_LLM_URL is not set"),
        ({"brain": "llm", "provider": "openai"}, {"AGENT_MODE": "local", "OPENAI_API_KEY": "k"},
         "AGENT_MODE=local keeps calls on this machine, and the agent profile's brain uses openai"),
    ],
)  # fmt: skip
def test_a_profile_brain_that_cannot_work_is_a_clear_error(
    make_settings: MakeSettings, profile_llm: dict[str, Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_llm(make_settings(**env), profile_llm, _flow())


async def _session_turn(settings: Settings, profile_llm: dict[str, Any], caller: str) -> str:
    """One caller turn through an AgentSession (text in, text out), as the worker assembles it."""
    flow = _flow()
    brain = build_llm(settings, profile_llm, flow)
    agent = PhoneAgent(
        flow=flow, hang_up=_no_hang_up, instructions=instructions_for(parse_brain(profile_llm))
    )
    try:
        async with AgentSession(llm=brain, conn_options=session_conn_options(settings)) as session:
            await session.start(agent)
            async with asyncio.timeout(10):
                result = await session.run(user_input=caller)
    finally:
        await brain.aclose()
    return "".join(e.item.text_content or "" for e in result.events if isinstance(e, ChatMessageEvent))


async def _no_hang_up() -> None:
    pass


async def test_a_session_turn_is_answered_by_the_local_llm_when_the_api_llm_answers_500(
    make_settings: MakeSettings,
) -> None:
    async with FakeOpenAI(key="sk-test") as api, FakeOpenAI(reply=REPLY) as ollama:
        api.fail = "http_500"
        settings = make_settings(
            AGENT_MODE="hybrid", OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=api.base_url,
            LOCAL_LLM_URL=ollama.base_url,
        )  # fmt: skip
        text = await _session_turn(settings, {"brain": "llm", "instructions": "Be brief."}, "When?")
    assert text == REPLY
    assert ollama.requests[0].body["messages"][0] == {"role": "system", "content": "Be brief."}


async def test_the_session_adds_no_retries_of_its_own_when_every_llm_fails(
    make_settings: MakeSettings,
) -> None:
    # livekit's default session options would walk both LLMs four times, 2 s apart
    async with FakeOpenAI(key="sk-test") as api, FakeOpenAI() as ollama:
        api.fail = ollama.fail = "http_500"
        settings = make_settings(
            AGENT_MODE="hybrid", OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=api.base_url,
            LOCAL_LLM_URL=ollama.base_url,
        )  # fmt: skip
        with pytest.raises(APIConnectionError, match="all LLMs failed"):
            await _session_turn(settings, {"brain": "llm"}, "When?")
    # each: the turn's one attempt, and at most one background probe for its recovery
    assert 1 <= len(api.requests) <= 2 and 1 <= len(ollama.requests) <= 2


def test_a_call_whose_profile_brain_is_unusable_is_answered_by_the_scripted_flow(
    make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    from phoneagent.worker.main import brain_for_call
    from phoneagent.worker.profiles import Profile

    profile = Profile(id="agt_1", greeting="Hi.", llm={"brain": "llm", "provider": "anthropic"})
    with caplog.at_level(logging.WARNING, logger="phoneagent.worker"):
        brain, instructions = brain_for_call(make_settings(AGENT_MODE="api"), profile, _flow())
    assert isinstance(brain, ScriptedLLM) and instructions == DEFAULT_INSTRUCTIONS
    assert "agent profile brain unusable; the scripted flow answers" in caplog.text
    assert caplog.records[-1].error.startswith("the agent profile's brain uses Anthropic")  # type: ignore[attr-defined]
