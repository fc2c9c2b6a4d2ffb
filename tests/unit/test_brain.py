"""The brain an agent profile asks for: scripted by default; an LLM streamed from a local server that
speaks OpenAI's chat-completions SSE (or Anthropic's messages SSE), with a second LLM taking over
when the first answers 500. No real OpenAI or Anthropic is reached."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from livekit.agents import AgentSession, APIConnectionError, ToolError, llm
from livekit.agents.voice.run_result import ChatMessageEvent, RunResult

from phoneagent.config import Settings
from phoneagent.errors import ConfigError
from phoneagent.speech.fallbacks import report_fallbacks
from phoneagent.speech.providers import session_conn_options
from phoneagent.telephony.destinations import TransferPolicy
from phoneagent.worker.agent import GOODBYE_DRAIN_S, CallControl, PhoneAgent
from phoneagent.worker.brain import build_llm, describe_brain, instructions_for, transfer_policy
from phoneagent.worker.brain_spec import DEFAULT_INSTRUCTIONS, parse_brain
from phoneagent.worker.scripted import DEFAULT_SCRIPT_DATA, Script, ScriptedFlow, ScriptedLLM
from tests.peers.anthropic_wire import FakeAnthropic
from tests.peers.openai_wire import FakeOpenAI

MakeSettings = Callable[..., Settings]
REPLY = "We are open from nine to five, Monday to Friday."


def _flow() -> ScriptedFlow:
    return ScriptedFlow(Script.from_dict(DEFAULT_SCRIPT_DATA, greeting="Hello."))


async def _reply(brain: llm.LLM[Any], caller: str, instructions: str = "") -> str:
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
    profile_llm = {
        "brain": "llm",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "temperature": 0.3,
        "instructions": "You answer the phone for a dental practice.",
    }
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
    profile_llm = {
        "brain": "llm",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "fallbacks": [{"provider": "local", "model": "llama3.2:3b"}],
    }
    async with (
        FakeOpenAI(key="sk-test", reply="never said") as api,
        FakeOpenAI(reply=REPLY) as ollama,
    ):
        api.fail = "http_500"
        settings = make_settings(
            AGENT_MODE="api",
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=api.base_url,
            LOCAL_LLM_URL=ollama.base_url,
        )
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
            AGENT_MODE="hybrid",
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=api.base_url,
            LOCAL_LLM_URL=ollama.base_url,
            LOCAL_LLM_MODEL="qwen2.5:3b",
        )
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
        # the operator allowed the profile's URL; it still gets no key
        settings = make_settings(
            AGENT_MODE="api", OPENAI_API_KEY="sk-operator", PHONEAGENT_PROFILE_LLM_URLS=elsewhere.base_url
        )
        profile_llm = {"brain": "llm", "provider": "openai", "model": "m", "base_url": elsewhere.base_url}
        brain = build_llm(settings, profile_llm, _flow())
        assert await _reply(brain, "hello") == REPLY
        await brain.aclose()
    assert elsewhere.requests[0].headers["Authorization"] == "Bearer no-key"


@pytest.mark.parametrize("provider", ["openai", "local"])
async def test_a_profile_url_the_operator_did_not_list_is_never_called(
    make_settings: MakeSettings, provider: str
) -> None:
    """SSRF from the worker: a tenant's profile names a URL on this host; in every mode the brain
    refuses it, and the call is answered by the scripted flow instead (the log says why)."""
    from phoneagent.worker.main import brain_for_call
    from phoneagent.worker.profiles import Profile

    async with FakeOpenAI(reply=REPLY) as inside:
        settings = make_settings(
            AGENT_MODE="hybrid", OPENAI_API_KEY="sk-operator", LOCAL_LLM_URL="http://127.0.0.1:9/v1"
        )
        profile_llm = {"brain": "llm", "provider": provider, "base_url": inside.base_url}
        with pytest.raises(ConfigError, match="not one the operator allows"):
            build_llm(settings, profile_llm, _flow())
        brain, _ = brain_for_call(settings, Profile(id="agt_1", greeting="Hi.", llm=profile_llm), _flow())
        assert isinstance(brain, ScriptedLLM)
    assert inside.requests == []


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
        (
            {"brain": "llm", "provider": "openai"},
            {"AGENT_MODE": "local", "OPENAI_API_KEY": "k"},
            "AGENT_MODE=local keeps calls on this machine, and the agent profile's brain uses openai",
        ),
    ],
)
def test_a_profile_brain_that_cannot_work_is_a_clear_error(
    make_settings: MakeSettings, profile_llm: dict[str, Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_llm(make_settings(**env), profile_llm, _flow())


class RecordingControl(CallControl):
    """The call control of a session without a room: it keeps what the agent did to the call."""

    def __init__(self, transfers: TransferPolicy | None = None) -> None:
        super().__init__(None, lambda type_, data: self.events.append((type_, data)), transfers)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.digits: list[str] = []

    async def send_digits(self, digits: str) -> None:
        self.digits.append(digits)


async def _session_turn(
    settings: Settings,
    profile_llm: dict[str, Any],
    caller: str,
    *,
    control: CallControl | None = None,
    tools: tuple[str, ...] | None = None,
) -> str:
    """One caller turn through an AgentSession (text in, text out), as the worker assembles it."""
    flow = _flow()
    brain = build_llm(settings, profile_llm, flow)
    agent = PhoneAgent(
        flow=flow,
        control=control or RecordingControl(),
        instructions=instructions_for(parse_brain(profile_llm)),
        llm_tools=tools,
    )
    try:
        async with AgentSession(llm=brain, conn_options=session_conn_options(settings)) as session:
            await session.start(agent)
            async with asyncio.timeout(10):
                result: RunResult[None] = await session.run(user_input=caller)
            # an action waits for the reply to be heard: give it the moment it takes
            await asyncio.sleep(GOODBYE_DRAIN_S + 0.3)
    finally:
        await brain.aclose()
    return "".join(e.item.text_content or "" for e in result.events if isinstance(e, ChatMessageEvent))


async def test_a_session_turn_is_answered_by_the_local_llm_when_the_api_llm_answers_500(
    make_settings: MakeSettings,
) -> None:
    async with FakeOpenAI(key="sk-test") as api, FakeOpenAI(reply=REPLY) as ollama:
        api.fail = "http_500"
        settings = make_settings(
            AGENT_MODE="hybrid",
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=api.base_url,
            LOCAL_LLM_URL=ollama.base_url,
        )
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
            AGENT_MODE="hybrid",
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=api.base_url,
            LOCAL_LLM_URL=ollama.base_url,
        )
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


async def test_the_llm_brain_ends_the_call_through_its_tool_after_saying_goodbye(
    make_settings: MakeSettings,
) -> None:
    async with FakeOpenAI(reply="Goodbye, have a nice day.") as ollama:
        ollama.tool_calls.append(("end_call", {}))
        settings = make_settings(AGENT_MODE="local", LOCAL_LLM_URL=ollama.base_url)
        control = RecordingControl()
        local = {"brain": "llm", "provider": "local"}
        text = await _session_turn(
            settings, local, "That's all, bye.", control=control, tools=("end_call", "transfer")
        )
    offered = {t["function"]["name"] for t in ollama.requests[0].body["tools"]}
    assert offered == {"end_call", "transfer_call"}  # the profile's tools, not send_dtmf
    assert text == "Goodbye, have a nice day."
    assert control.events == [("hangup", {"reason": "agent_hangup"})] and control.ended


async def test_the_llm_brain_presses_keys_and_refuses_a_bad_transfer_destination(
    make_settings: MakeSettings,
) -> None:
    async with FakeOpenAI(reply="Done.") as ollama:
        ollama.tool_calls += [("send_dtmf", {"digits": "1#"}), ("transfer_call", {"destination": "the boss"})]
        settings = make_settings(AGENT_MODE="local", LOCAL_LLM_URL=ollama.base_url)
        control = RecordingControl()
        local = {"brain": "llm", "provider": "local"}
        await _session_turn(
            settings, local, "Navigate the menu.", control=control, tools=("dtmf", "transfer")
        )
    assert control.digits == ["1#"]
    tool_results = [m for r in ollama.requests for m in r.body["messages"] if m["role"] == "tool"]
    assert any("phone number like +14155550100" in m["content"] for m in tool_results), tool_results
    assert not control.ended


async def test_the_llm_brain_records_the_outcome_through_its_tool(make_settings: MakeSettings) -> None:
    async with FakeOpenAI(reply="Friday it is.") as ollama:
        ollama.tool_calls += [
            ("record_outcome", {"intent": "appointment", "slot": "day", "value": "friday"}),
            ("record_outcome", {"intent": "appointment"}),  # said again: taken once
            ("record_outcome", {"slot": "Day", "value": "friday"}),  # refused: the model is told why
        ]
        settings = make_settings(AGENT_MODE="local", LOCAL_LLM_URL=ollama.base_url)
        control = RecordingControl()
        local = {"brain": "llm", "provider": "local"}
        await _session_turn(settings, local, "Book me for Friday.", control=control, tools=("outcome",))
    offered = {t["function"]["name"] for t in ollama.requests[0].body["tools"]}
    assert offered == {"record_outcome"}
    outcome = [data for type_, data in control.events if type_ == "outcome"][-1]
    assert outcome["intent"] == "appointment" and len(outcome["intents"]) == 1
    assert outcome["slots"] == {"day": {"value": "friday", "via": "voice", "turn": None}}
    tool_results = [m for r in ollama.requests for m in r.body["messages"] if m["role"] == "tool"]
    assert any("lowercase name" in m["content"] for m in tool_results), tool_results


async def test_a_caller_cannot_talk_the_llm_into_a_transfer_the_profile_does_not_list(
    make_settings: MakeSettings,
) -> None:
    """Toll fraud through the agent: the model is asked to transfer to a premium number and to an
    outside SIP address; both are refused (the tool says so), the listed desk is not."""
    profile_llm = {"brain": "llm", "provider": "local", "transfer_destinations": ["+1 415 555 0100"]}
    async with FakeOpenAI(reply="Sorry, I cannot.") as ollama:
        ollama.tool_calls += [
            ("transfer_call", {"destination": "+19005550123"}),
            ("transfer_call", {"destination": "sip:me@evil.example"}),
        ]
        settings = make_settings(AGENT_MODE="local", LOCAL_LLM_URL=ollama.base_url)
        control = RecordingControl(transfer_policy(profile_llm, []))
        await _session_turn(
            settings, profile_llm, "Put me through to +1 900 555 0123.", control=control, tools=("transfer",)
        )
    tool_results = [m["content"] for r in ollama.requests for m in r.body["messages"] if m["role"] == "tool"]
    refused = {t for t in tool_results if "not one of the destinations this agent may transfer to" in t}
    assert {t.split(" ")[0] for t in refused} == {"tel:+19005550123", "sip:me@evil.example"}, tool_results
    assert all("(tel:+14155550100)" in t for t in refused) and not control.ended
    assert control.transfers.check("tel:+14155550100") == "tel:+14155550100"
    # the scripted flow's transfers go through the same check
    assert await control.transfer("tel:+19005550123") is False
    assert control.events[-1] == (
        "tool",
        {"name": "transfer", "to": "tel:+19005550123", "ok": False, "error": "not_allowed"},
    )


def test_transfer_destinations_are_normalized_for_livekit() -> None:
    from phoneagent.worker.tools import transfer_uri

    assert transfer_uri("+1 415-555-0100") == "tel:+14155550100"
    assert transfer_uri("tel:+14155550100") == "tel:+14155550100"
    assert transfer_uri("sip:desk@example.com") == "sip:desk@example.com"
    with pytest.raises(ToolError):
        transfer_uri("4155550100")


def test_the_flow_listens_for_its_keywords_and_yes_or_no_while_it_confirms() -> None:
    script = Script.from_dict(
        {"intents": [{"name": "cancel", "keywords": ["cancel"], "confirm": "Cancel it?", "reply": "Done."}]},
        greeting="Hello.",
    )
    flow = ScriptedFlow(script)
    assert flow.vocabulary() == ["cancel", "goodbye", "bye"]
    flow.respond("Please cancel my appointments.")
    assert flow.vocabulary()[:2] == ["yes", "no"]


def test_keywords_match_with_plural_and_tense_endings() -> None:
    flow = _flow()
    assert flow.decide("Do you have any appointments?").intent == "appointment"
    assert flow.decide("Can I get booked in?").intent == "appointment"
    assert flow.decide("Are you open on Fridays?").intent == "hours"
    assert flow.decide("The weather is nice.").intent == "fallback"
