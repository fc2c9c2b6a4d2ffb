"""The scripted flow fills the call's outcome: intents (by voice and by key), confirmations, and the
slots its intents collect, each with the turn or keys it came from; and the agent reports it."""

from __future__ import annotations

from typing import Any

import pytest
from livekit import rtc
from livekit.agents import llm

from phoneagent.worker.agent import CallControl, PhoneAgent
from phoneagent.worker.script_spec import DEFAULT_SCRIPT_DATA, Script, ScriptError
from phoneagent.worker.scripted import ScriptedFlow
from phoneagent.worker.slots import read_day, read_digits, read_keyword, read_time, read_yes_no

SCRIPT: dict[str, Any] = {
    "intents": [
        {"name": "hours", "keywords": ["hours"], "dtmf": "1", "reply": "Nine to five."},
        {
            "name": "appointment",
            "keywords": ["appointment", "book"],
            "dtmf": "2",
            "reply": "Which day?",
            "collect": [
                {"slot": "day", "kind": "day"},
                {"slot": "time", "kind": "time", "ask": "At what time?", "reply": "Booked."},
            ],
        },
        {
            "name": "bill",
            "keywords": ["bill", "invoice"],
            "dtmf": "3",
            "reply": "Your account number, please.",
            "collect": {"slot": "account", "kind": "digits", "count": 4, "reply": "Thanks, found it."},
        },
        {
            "name": "cancel",
            "keywords": ["cancel"],
            "confirm": "You want to cancel, is that right?",
            "reply": "Cancelled. Shall we send you a confirmation?",
            "collect": {"slot": "send_confirmation", "kind": "yes_no", "reply": "Noted."},
        },
        {
            "name": "service",
            "keywords": ["cleaning", "whitening", "checkup"],
            "reply": "Sure.",
            "collect": {"slot": "service", "kind": "keyword"},
        },
    ],
}


def _flow(data: dict[str, Any] = SCRIPT) -> ScriptedFlow:
    return ScriptedFlow(Script.from_dict(data, greeting="Hi."))


def test_the_default_booking_by_key_then_voice_gives_the_intent_and_the_day() -> None:
    flow = _flow(DEFAULT_SCRIPT_DATA)
    assert flow.respond_key("2").reply == "I can book that for you. Which day works best?"
    assert flow.respond("Friday, please.").reply == "Great, you are booked. Anything else?"
    flow.outcome.numbered(3, "Friday, please.")
    out = flow.outcome.to_dict()
    assert out["intent"] == "appointment"
    assert out["intents"][0] == {"name": "appointment", "via": "dtmf", "turn": None, "keys": "2"}
    assert out["slots"] == {"day": {"value": "friday", "via": "voice", "turn": 3}}


def test_a_booking_said_in_one_breath_fills_the_day_at_once() -> None:
    flow = _flow(DEFAULT_SCRIPT_DATA)
    assert flow.respond("Can I book an appointment on Tuesday?").reply.startswith("Great, you are booked")
    assert flow.outcome.to_dict()["slots"]["day"]["value"] == "tuesday"
    assert flow.pending_slots == ()


def test_slots_are_asked_in_order_and_each_keeps_its_own_turn() -> None:
    flow = _flow()
    flow.respond("I'd like to book")
    flow.outcome.numbered(1, "I'd like to book")
    assert flow.pending_slot is not None and flow.pending_slot.slot == "day"
    assert flow.respond("tomorrow").reply == "At what time?"
    flow.outcome.numbered(3, "tomorrow")
    assert flow.respond("ten thirty").reply == "Booked."
    flow.outcome.numbered(5, "ten thirty")
    out = flow.outcome.to_dict()
    assert out["intents"] == [{"name": "appointment", "via": "voice", "turn": 1}]
    assert out["slots"] == {
        "day": {"value": "tomorrow", "via": "voice", "turn": 3},
        "time": {"value": "10:30", "via": "voice", "turn": 5},
    }


def test_a_turn_that_fills_no_slot_is_answered_as_usual_and_the_slot_keeps_waiting() -> None:
    flow = _flow()
    flow.respond("book please")
    assert flow.respond("what are your hours").reply == "Nine to five."
    assert flow.pending_slot is not None and flow.pending_slot.slot == "day"
    assert flow.respond("the weather").intent == "fallback"
    flow.respond("Monday")
    assert flow.outcome.to_dict()["slots"]["day"]["value"] == "monday"
    assert [i["name"] for i in flow.outcome.to_dict()["intents"]] == ["appointment", "hours"]


def test_digits_by_several_key_presses_fill_the_slot_at_its_count() -> None:
    flow = _flow()
    assert flow.respond_key("3").reply == "Your account number, please."
    said = [flow.respond_key(k).reply for k in "4015"]
    assert said == ["", "", "", "Thanks, found it."]  # the keys before the last say nothing
    slot = flow.outcome.to_dict()["slots"]["account"]
    assert slot == {"value": "4015", "via": "dtmf", "turn": None, "keys": "4015"}
    # the slot is filled: the next key selects an intent again
    assert flow.respond_key("1").reply == "Nine to five."


def test_star_starts_the_digits_over_and_a_short_entry_ended_by_hash_is_not_taken() -> None:
    flow = _flow()
    flow.respond_key("3")
    for k in "12*":
        flow.respond_key(k)
    assert flow.keys == ""
    for k in "98":
        flow.respond_key(k)
    assert flow.respond_key("#").intent == "fallback"  # 2 of 4 digits
    assert "account" not in flow.outcome.slots and flow.keys == ""
    for k in "9876":
        flow.respond_key(k)
    assert flow.outcome.slots["account"]["value"] == "9876"


def test_digits_said_by_voice_fill_the_slot_only_with_the_right_count() -> None:
    flow = _flow()
    flow.respond("about my bill")
    assert flow.respond("it is four one five").intent == "fallback"  # three digits, four wanted
    assert flow.respond("4 1 5 9").reply == "Thanks, found it."
    assert flow.outcome.slots["account"]["value"] == "4159"


def test_confirmations_keep_the_question_the_answer_and_the_turn() -> None:
    flow = _flow()
    flow.respond("cancel it")
    flow.respond("no")
    flow.outcome.numbered(3, "no")
    assert flow.outcome.intents == []  # not taken: the caller said no
    flow.respond("cancel")
    assert flow.respond("yes").reply == "Cancelled. Shall we send you a confirmation?"
    flow.outcome.numbered(7, "yes")
    # a yes_no slot is not filled by the yes that took its intent: it waits for its own question
    assert "send_confirmation" not in flow.outcome.slots
    assert flow.respond("no thanks").reply == "Noted."
    out = flow.outcome.to_dict()
    assert out["confirmations"] == [
        {
            "intent": "cancel",
            "question": "You want to cancel, is that right?",
            "answer": "no",
            "via": "voice",
            "turn": 3,
        },
        {
            "intent": "cancel",
            "question": "You want to cancel, is that right?",
            "answer": "yes",
            "via": "voice",
            "turn": 7,
        },
    ]
    assert out["intent"] == "cancel" and out["intents"][0]["turn"] == 7
    assert out["slots"]["send_confirmation"]["value"] == "no"


def test_a_keyword_slot_keeps_the_keyword_said() -> None:
    flow = _flow()
    flow.respond("I need a whitening")
    assert flow.outcome.to_dict()["slots"]["service"]["value"] == "whitening"


def test_decide_changes_no_outcome() -> None:
    flow = _flow()
    flow.decide("book on Friday")
    flow.decide_key("3")
    assert flow.outcome.empty() and flow.pending_slots == ()


def test_the_flow_listens_for_the_words_of_the_slot_it_waits_for() -> None:
    flow = _flow()
    flow.respond_key("2")
    assert flow.vocabulary()[:3] == ["monday", "tuesday", "wednesday"]


@pytest.mark.parametrize(
    ("said", "value"),
    [
        ("ten thirty", "10:30"),
        ("10:30", "10:30"),
        ("3 pm", "15:00"),
        ("at 3 p.m. please", "15:00"),
        ("half past two", "02:30"),
        ("quarter to ten", "09:45"),
        ("noon", "12:00"),
        ("12 am", "00:00"),
        ("at eleven", "11:00"),
        ("whenever", None),
        ("25:10", None),
    ],
)
def test_times_are_read_as_hh_mm(said: str, value: str | None) -> None:
    assert read_time(said) == value


def test_each_slot_kind_reads_its_values() -> None:
    assert read_day("Fridays are best") == "friday"
    assert read_day("how about tomorrow") == "tomorrow"
    assert read_day("no idea") is None
    assert read_digits("four one five") == "415"
    assert read_digits("415") == "415"
    assert read_digits("one") == "1"
    assert read_digits("415", count=4) is None
    assert read_yes_no("yes please") == "yes"
    assert read_yes_no("nope") == "no"
    assert read_yes_no("yes, no, I don't know") is None
    assert read_keyword("a checkup and a cleaning", ["cleaning", "checkup"]) == "cleaning"


def _intent(**extra: Any) -> dict[str, Any]:
    return {"intents": [{"name": "x", "keywords": ["x"], "reply": "y", **extra}]}


@pytest.mark.parametrize(
    ("collect", "message"),
    [
        ("day", r"script.intents\[0\].collect: a slot object, or a list of them"),
        ([1], r"collect\[0\]: must be an object"),
        ([{"slot": "Day", "kind": "day"}], r"collect\[0\].slot: a name of lowercase letters"),
        ([{"slot": "d", "kind": "date"}], r"collect\[0\].kind: one of day, time, digits, yes_no, keyword"),
        ([{"slot": "d", "kind": "day", "count": 3}], r"collect\[0\].count: .* for a digits slot"),
        ([{"slot": "d", "kind": "digits", "count": 0}], r"collect\[0\].count: a number of digits from 1"),
        ([{"slot": "d", "kind": "digits", "count": True}], r"collect\[0\].count"),
        ([{"slot": "d", "kind": "day", "keywords": ["a"]}], r"collect\[0\].keywords: only a keyword slot"),
        ([{"slot": "d", "kind": "keyword", "keywords": []}], r"collect\[0\].keywords: a keyword slot needs"),
        ([{"slot": "d", "kind": "day", "ask": ""}], r"collect\[0\].ask: a sentence"),
        ([{"slot": "d", "kind": "day", "when": "now"}], r"collect\[0\]: unknown field when"),
        ([{"slot": "d", "kind": "day"}, {"slot": "d", "kind": "time"}], r"collect: each slot once"),
        ([{"slot": f"s{i}", "kind": "day"} for i in range(11)], r"collect: at most 10 slots"),
    ],
)
def test_slot_declarations_that_cannot_work_are_refused_naming_the_field(collect: Any, message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        Script.from_dict(_intent(collect=collect), greeting="Hi.")


def test_an_intent_that_ends_the_call_cannot_collect() -> None:
    with pytest.raises(ScriptError, match=r"intents\[0\].collect: an intent that ends the call"):
        Script.from_dict(_intent(action="hangup", collect={"slot": "d", "kind": "day"}), greeting="Hi.")


class _Control(CallControl):
    def __init__(self) -> None:
        super().__init__(None, lambda type_, data: self.events.append((type_, data)))
        self.events: list[tuple[str, dict[str, Any]]] = []

    def outcomes(self) -> list[dict[str, Any]]:
        return [data for type_, data in self.events if type_ == "outcome"]


async def test_the_agent_reports_the_outcome_each_time_it_changes_and_the_turn_once_numbered() -> None:
    control = _Control()
    agent = PhoneAgent(flow=_flow(), control=control)
    await agent.on_user_turn_completed(
        llm.ChatContext(), llm.ChatMessage(role="user", content=["about my bill"])
    )
    assert control.outcomes()[-1]["intents"] == [{"name": "bill", "via": "voice", "turn": None}]
    agent.turn_numbered(1, "about my bill")
    assert control.outcomes()[-1]["intents"][0]["turn"] == 1
    agent.turn_numbered(3, "something else")  # no entry from those words: nothing new to report
    await agent.on_user_turn_completed(
        llm.ChatContext(), llm.ChatMessage(role="user", content=["the weather"])
    )
    assert len(control.outcomes()) == 2
    for key in "401":  # keys held for the account number: no reply, no outcome change
        agent._on_dtmf(rtc.SipDTMF(code=int(key), digit=key, participant=None))
    assert len(control.outcomes()) == 2
    assert [data["digit"] for type_, data in control.events if type_ == "dtmf"] == ["4", "0", "1"]


def test_what_the_llm_records_comes_from_the_callers_latest_numbered_turn() -> None:
    control = _Control()
    agent = PhoneAgent(flow=_flow(), control=control, llm_tools=("outcome",))
    agent.turn_numbered(4, "I'd like to come in on Friday")
    agent._llm_recorded("appointment", "day", "friday")
    out = control.outcomes()[-1]
    assert out["intents"] == [{"name": "appointment", "via": "voice", "turn": 4}]
    assert out["slots"]["day"] == {"value": "friday", "via": "voice", "turn": 4}
