"""End of turn by what the caller said: plainly unfinished words wait, words the brain understands do
not, anything else waits a little."""

from __future__ import annotations

import time

import pytest
from livekit.agents import llm

from phoneagent.worker.endpoint import PhoneTurnDetector, count_digits, unfinished, verdict
from phoneagent.worker.scripted import DEFAULT_SCRIPT_DATA, Script, ScriptedFlow

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text",
    [
        "I would like to book an",
        "Could I make an appointment for?",  # Whisper puts a question mark on the fragment
        "And do you",
        "Can I",
        "So could you",
        "My number is",
        "My number is 415.",
        "my number is four one five",
        "My phone number is 415-555",
        "My number is 415. Fight.",  # the last digit misheard: still a number half given
        "I want to cancel because",
        "I'd like",
        "We're",
        "um",
        "I was charged twice for the",
    ],
)
def test_plainly_unfinished_words_wait(text: str) -> None:
    assert unfinished(text)
    assert verdict(text, understood=lambda _t: True) == "unfinished"


@pytest.mark.parametrize(
    "text",
    [
        "What are your opening hours?",
        "Tuesday works for me.",
        "Yes.",
        "No.",
        "No, thank you.",
        "Yes it is.",
        "We are.",
        "I think so.",
        "What is this?",
        "Thank you.",
        "How are you?",
        "My number is 415 555 1234.",
        "It's four five six seven.",  # no number talk: a short code said whole
        "Hold it.",
    ],
)
def test_whole_requests_are_not_unfinished(text: str) -> None:
    assert not unfinished(text)


def test_digits_are_counted_in_words_and_numerals() -> None:
    assert count_digits(["four", "one", "five"]) == 3
    assert count_digits(["415", "555", "1234"]) == 10
    assert count_digits(["double", "five", "oh", "7"]) == 4
    assert count_digits(["hello"]) == 0


def test_the_scripted_brain_decides_what_is_complete() -> None:
    flow = ScriptedFlow(Script.from_dict(DEFAULT_SCRIPT_DATA, greeting="Hello."))

    def understood(text: str) -> bool:
        return flow.decide(text).intent != "fallback"

    assert verdict("What are your opening hours?", understood=understood) == "complete"
    assert verdict("Tuesday works for me.", understood=understood) == "complete"
    assert verdict("The weather is nice today.", understood=understood) == "unsure"
    assert verdict("Can I book an", understood=understood) == "unfinished"


def test_an_llm_brain_takes_a_finished_sentence_as_complete() -> None:
    assert verdict("I need help with my bill.") == "complete"
    assert verdict("I need help with my bill") == "unsure"


def _ctx(*texts: str) -> llm.ChatContext:
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="assistant", content="Hello, how can I help?")
    for t in texts:
        ctx.add_message(role="user", content=t)
    return ctx


async def test_the_detector_answers_livekit_with_a_probability() -> None:
    det = PhoneTurnDetector(understood=lambda t: "hours" in t)
    assert await det.unlikely_threshold("en") == 0.5
    assert await det.supports_language("en")
    assert await det.predict_end_of_turn(_ctx("What are your hours?")) == 1.0
    assert await det.predict_end_of_turn(_ctx("And do you")) == 0.0
    # words a scripted flow does not understand wait as long as unfinished ones
    assert await det.predict_end_of_turn(_ctx("Something else entirely.")) == 0.0
    assert [v for _t, v in det.verdicts] == ["complete", "unfinished", "unsure"]


async def test_an_llm_brain_waits_a_little_after_words_it_cannot_place() -> None:
    det = PhoneTurnDetector(unsure_wait_s=0.2)
    started = time.monotonic()
    assert await det.predict_end_of_turn(_ctx("I was wondering whether")) == 0.0
    assert await det.predict_end_of_turn(_ctx("I have a question about my bill")) == 1.0
    assert time.monotonic() - started >= 0.2


async def test_a_fragment_whose_last_word_whisper_dropped_still_waits() -> None:
    heard = ["I would like to book.", "I would like to book an", "I'd like to book."]
    det = PhoneTurnDetector(understood=lambda t: "book" in t, heard=lambda: heard)
    assert det.readings("Hello. I would like to book.") == [f"Hello. {h}" for h in heard]
    assert await det.predict_end_of_turn(_ctx("Hello.", "I would like to book.")) == 0.0
    heard[:] = ["I would like to book.", "I'd like to book."]
    assert await det.predict_end_of_turn(_ctx("I would like to book.")) == 1.0
