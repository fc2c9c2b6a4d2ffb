from __future__ import annotations

from livekit.agents import llm

from phoneagent.worker.scripted import DEFAULT_SCRIPT_DATA, Script, ScriptedFlow, ScriptedLLM


def _flow() -> ScriptedFlow:
    return ScriptedFlow(Script.from_dict(DEFAULT_SCRIPT_DATA, greeting="Hello."))


def test_keywords_pick_the_intent_and_unknown_falls_back() -> None:
    flow = _flow()
    assert flow.respond("What are your opening hours?").intent == "hours"
    assert flow.respond("I'd like to book an appointment").intent == "appointment"
    assert flow.respond("Tuesday please").intent == "day"
    assert flow.respond("the weather is nice").intent == "fallback"
    assert flow.history == ["hours", "appointment", "day"]


def test_goodbye_hangs_up_even_beside_other_keywords() -> None:
    d = _flow().respond("No that's all for today, goodbye")
    assert d.hang_up and d.reply == "Thank you for calling. Goodbye."


def test_decide_is_pure_so_preemptive_calls_change_nothing() -> None:
    flow = _flow()
    flow.decide("opening hours")
    flow.reply_for("opening hours")
    assert flow.history == []


async def test_scripted_llm_streams_the_scripts_reply() -> None:
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="when do you open")
    chunks = [c async for c in ScriptedLLM(_flow()).chat(chat_ctx=ctx)]
    text = "".join(c.delta.content or "" for c in chunks if c.delta)
    assert text.startswith("We are open Monday to Friday")
