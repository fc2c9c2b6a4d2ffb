"""Warm transfer's pieces without a call: the briefing, the hold sound, the person's reply, the
profile's settings and the flow's action, taking a message when nobody took the call, and what the
call's control reports."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from phoneagent.errors import ConfigError
from phoneagent.telephony.destinations import TransferPolicy
from phoneagent.worker.agent import CallControl
from phoneagent.worker.brain_spec import parse_brain
from phoneagent.worker.script_spec import Script, ScriptError
from phoneagent.worker.scripted import MESSAGE_ASK, MESSAGE_TAKEN, ScriptedFlow
from phoneagent.worker.warm_transfer import (
    OFFER,
    TransferResult,
    briefing_text,
    hold_pattern,
    reply_of,
)
from tests.peers.wav import dominant_hz

pytestmark = pytest.mark.unit

DESK = "tel:+14155550100"
OUTCOME: dict[str, Any] = {
    "intent": "billing_question",
    "slots": {"day": {"value": "friday", "via": "voice", "turn": 3}},
}


def test_the_briefing_fills_the_template_with_what_the_flow_collected() -> None:
    text = briefing_text(
        "{caller} holds about {intent} on {day}; said {last_words}. Room: {room}.",
        caller="+15550111",
        outcome=OUTCOME,
        last_words=" Friday please ",
    )
    assert text == "+15550111 holds about billing question on friday; said Friday please. Room: not given."


def test_a_briefing_with_nothing_collected_still_reads_as_a_sentence() -> None:
    text = briefing_text(
        "A caller on {caller} is holding about {intent}. They said: {last_words}.",
        caller="",
        outcome={},
        last_words="",
    )
    assert text == (
        "A caller on an unknown number is holding about something we could not tell. They said: nothing yet."
    )


def test_a_briefing_template_cannot_reach_python_attributes() -> None:
    # fields are plain names filled by substitution, never str.format: "{intent.__class__}" stays text
    assert (
        briefing_text("{intent.__class__}", caller="", outcome=OUTCOME, last_words="") == "{intent.__class__}"
    )


@pytest.mark.parametrize(("kind", "seconds", "hz"), [("chime", 3.0, 600.0), ("beep", 5.0, 440.0)])
def test_the_hold_sound_is_a_soft_repeating_tone(kind: str, seconds: float, hz: float) -> None:
    pcm = hold_pattern(kind, 8000)
    assert len(pcm) == pytest.approx(seconds * 8000, abs=2)
    assert 0.08 * 32767 < np.abs(pcm).max() < 0.15 * 32767  # quiet: under the agent's voice
    assert dominant_hz(pcm[np.abs(pcm) > 0], 8000) == pytest.approx(hz, abs=80)
    assert (pcm[-8000:] == 0).all()  # a pause in every period


def test_hold_none_is_silence() -> None:
    assert not hold_pattern("none").any()


@pytest.mark.parametrize(
    ("said", "reply"),
    [
        ("Yes, put them through.", "accept"),
        ("Sure.", "accept"),
        ("No, not now.", "decline"),
        ("Hello, front desk.", None),
        ("Yes. No.", None),
    ],
)
def test_the_persons_words_accept_or_decline(said: str, reply: str | None) -> None:
    assert reply_of(said) == reply


@pytest.mark.parametrize(
    ("result", "words"),
    [
        ("no_answer", "nobody answered"),
        ("busy", "busy"),
        ("declined", "cannot take"),
        ("failed", "could not"),
    ],
)
def test_the_caller_is_told_why_and_offered_a_message(result: str, words: str) -> None:
    told = TransferResult(result).told_caller()
    assert words in told and told.endswith(OFFER)


def test_the_profiles_warm_transfer_settings_have_defaults_and_are_checked() -> None:
    spec = parse_brain({}).warm_transfer
    assert (spec.ring_timeout_s, spec.answer_timeout_s, spec.hold) == (20, 15, "chime")
    assert "{intent}" in spec.briefing
    given = parse_brain({"warm_transfer": {"hold": "beep", "ring_timeout_s": 30, "briefing": "About {day}."}})
    assert given.warm_transfer.hold == "beep" and given.warm_transfer.ring_timeout_s == 30
    for bad, named in (
        ({"hold": "music"}, "llm.warm_transfer.hold"),
        ({"ring_timeout_s": 600}, "llm.warm_transfer.ring_timeout_s"),
        ({"briefing": "a\x07b"}, "llm.warm_transfer.briefing"),
        ({"trunk": "otr_1"}, "llm.warm_transfer.trunk"),
    ):
        with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
            parse_brain({"warm_transfer": bad})


def _script(**intent: Any) -> Script:
    base = {"name": "person", "keywords": ["person"], "dtmf": "0", "reply": "Please hold."}
    return Script.from_dict({"intents": [{**base, **intent}]}, greeting="Hello.")


def test_the_flows_warm_transfer_goes_to_a_phone_number_only() -> None:
    script = _script(action="warm_transfer", transfer_to=DESK)
    decision = ScriptedFlow(script).respond_key("0")
    assert decision.warm_transfer_to == DESK and decision.transfer_to is None and decision.acts
    with pytest.raises(ScriptError, match="tel:"):
        _script(action="warm_transfer", transfer_to="sip:desk@example.com")
    with pytest.raises(ScriptError, match="cannot collect"):
        _script(action="warm_transfer", transfer_to=DESK, collect=[{"slot": "day", "kind": "day"}])


def test_after_a_transfer_nobody_took_the_caller_leaves_a_message() -> None:
    flow = ScriptedFlow(_script())
    flow.offer_message()
    asked = flow.respond("Yes please.")
    assert (asked.intent, asked.reply, asked.hang_up) == ("message:ask", MESSAGE_ASK, False)
    taken = flow.respond("Please ask them to call me back about the invoice.")
    assert (taken.intent, taken.reply, taken.hang_up) == ("message", MESSAGE_TAKEN, True)
    outcome = flow.outcome.to_dict()
    assert outcome["slots"]["message"]["value"] == "Please ask them to call me back about the invoice."
    assert [i["name"] for i in outcome["intents"]] == ["message"]
    assert flow.message is None


def test_the_message_may_come_at_once_and_a_no_ends_the_call() -> None:
    flow = ScriptedFlow(_script())
    flow.offer_message()
    assert flow.respond("Tell them my order never arrived.").intent == "message"
    flow = ScriptedFlow(_script())
    flow.offer_message()
    declined = flow.respond("No thanks.")
    assert declined.intent == "goodbye" and declined.hang_up
    assert "message" not in flow.outcome.to_dict()["slots"]


def _control(warm: Any = None) -> tuple[CallControl, list[tuple[str, dict[str, Any]]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    control = CallControl(None, lambda t, d: events.append((t, d)), TransferPolicy.from_profile([DESK]))
    control.warm = warm
    return control, events


async def test_a_warm_transfer_to_an_unlisted_number_is_refused_and_reported() -> None:
    tried: list[str] = []

    async def warm(to: str) -> TransferResult:
        tried.append(to)
        return TransferResult("connected")

    control, events = _control(warm)
    result = await control.warm_transfer("+19005550100")
    assert result.result == "failed" and not tried and not control.handed_over
    assert events == [
        ("tool", {"name": "warm_transfer", "to": "+19005550100", "ok": False, "error": "not_allowed"})
    ]


@pytest.mark.parametrize(("outcome", "handed_over"), [("connected", True), ("busy", False)])
async def test_the_agent_leaves_the_call_alone_only_while_it_is_handed_over(
    outcome: str, handed_over: bool
) -> None:
    seen_during: list[bool] = []
    control, events = _control()

    async def warm(to: str) -> TransferResult:
        seen_during.append(control.handed_over)
        return TransferResult(outcome)

    control.warm = warm
    result = await control.warm_transfer("+1 415 555 0100")
    assert result.result == outcome and seen_during == [True]
    assert control.handed_over is handed_over
    assert events == [
        ("tool", {"name": "warm_transfer", "to": DESK, "ok": outcome == "connected", "result": outcome})
    ]


def test_calls_show_prints_the_transfer_and_its_legs(capsys: pytest.CaptureFixture[str]) -> None:
    from phoneagent.cli_calls import _print_transfer

    _print_transfer(
        {
            "transfer": {
                "to": DESK,
                "result": "busy",
                "detail": "busy (SIP 486)",
                "briefing": "About billing.",
            },
            "legs": ["call_leg1"],
        }
    )
    _print_transfer({"parent_call_id": "call_parent", "transfer": None, "legs": []})
    out = capsys.readouterr().out
    assert f"warm transfer to {DESK}: busy (busy (SIP 486))" in out
    assert "  briefing: About billing.\n" in out and "  leg: call call_leg1\n" in out
    assert "consultation leg of call call_parent" in out
