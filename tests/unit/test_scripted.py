from __future__ import annotations

from typing import Any

import pytest
from livekit.agents import llm

from phoneagent.worker.scripted import DEFAULT_SCRIPT_DATA, Script, ScriptedFlow, ScriptedLLM, ScriptError


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


SCRIPT = {
    "intents": [
        {"name": "hours", "keywords": ["hours"], "dtmf": "1", "reply": "Nine to five."},
        {
            "name": "human",
            "keywords": ["person", "human"],
            "dtmf": "0",
            "reply": "Transferring you now.",
            "action": "transfer",
            "transfer_to": "sip:+15550199@127.0.0.1:5090",
        },
        {
            "name": "cancel",
            "keywords": ["cancel"],
            "confirm": "You want to cancel, is that right?",
            "reply": "It is cancelled.",
        },
        {"name": "menu", "keywords": ["menu"], "reply": "Dialing.", "action": "dtmf", "digits": "12w#"},
    ],
    "reprompt": "Hello? Still there?",
}


def test_keys_select_intents_and_unknown_keys_fall_back() -> None:
    flow = ScriptedFlow(Script.from_dict(SCRIPT, greeting="Hi."))
    assert flow.respond_key("1").reply == "Nine to five."
    d = flow.respond_key("0")
    assert d.transfer_to == "sip:+15550199@127.0.0.1:5090" and not d.hang_up
    assert flow.respond_key("9").intent == "fallback"


def test_a_confirmed_intent_waits_for_yes_and_a_no_falls_back() -> None:
    flow = ScriptedFlow(Script.from_dict(SCRIPT, greeting="Hi."))
    assert flow.respond("I want to cancel").reply == "You want to cancel, is that right?"
    assert flow.respond("yes please").reply == "It is cancelled."
    flow.respond("cancel it")
    assert flow.respond("no").intent == "fallback"
    assert flow.pending_confirm is None and flow.history == ["cancel"]


def test_the_reply_to_a_turn_is_the_decision_made_when_it_completed() -> None:
    flow = ScriptedFlow(Script.from_dict(SCRIPT, greeting="Hi."))
    flow.respond("cancel my booking", message_id="m1")  # asks for confirmation, and waits
    # the pipeline asks for the reply after the flow moved on: it must still get the question
    assert flow.reply_for("cancel my booking", "m1") == "You want to cancel, is that right?"
    assert flow.reply_for("yes", None) == "It is cancelled."  # preemptive: decided from the state now


def test_send_digits_action_and_script_texts() -> None:
    flow = ScriptedFlow(Script.from_dict(SCRIPT, greeting="Hi."))
    assert flow.respond("main menu please").send_digits == "12w#"
    assert flow.script.reprompt == "Hello? Still there?"
    assert flow.script.silence_goodbye.startswith("I have not heard anything")


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"intents": [{"name": "x", "reply": "y"}]}, "keywords or a dtmf key"),
        ({"intents": [{"name": "x", "reply": "y", "dtmf": "12"}]}, "dtmf"),
        ({"intents": [{"name": "x", "reply": "y", "keywords": ["a"], "action": "explode"}]}, "action"),
        (
            {
                "intents": [
                    {
                        "name": "x",
                        "reply": "y",
                        "keywords": ["a"],
                        "action": "transfer",
                        "transfer_to": "+1555",
                    }
                ]
            },
            "transfer_to",
        ),
        (
            {"intents": [{"name": "x", "reply": "y", "keywords": ["a"], "action": "dtmf", "digits": "9x"}]},
            "digits",
        ),
        (
            {"intents": [{"name": "a", "reply": "y", "dtmf": "1"}, {"name": "b", "reply": "z", "dtmf": "1"}]},
            "one intent",
        ),
        ({"intents": [{"reply": "y", "keywords": ["a"]}]}, "name"),
    ],
)
def test_scripts_that_cannot_work_are_refused_naming_the_field(bad: dict[str, Any], field: str) -> None:
    with pytest.raises(ScriptError, match=field):
        Script.from_dict(bad, greeting="Hi.")


def test_answering_machine_greetings_are_told_from_a_person() -> None:
    from phoneagent.worker.agent import is_machine

    assert is_machine("Hi, you've reached Ada. Please leave a message after the tone.", 4.0)
    assert is_machine("The person you are calling is not available", 2.0)
    assert is_machine("mmm", 5.0)  # a long first utterance is a recorded greeting
    assert not is_machine("Hello?", 0.6)
    assert not is_machine("Yes, this is Ada speaking.", 1.8)
