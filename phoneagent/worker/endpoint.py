"""End of the caller's turn, fast and patient: how long the agent waits after the caller stops depends
on what the caller has said so far.

Each time the caller pauses long enough for the VAD (``PHONEAGENT_VAD_MIN_SILENCE_S``) and the words
so far are transcribed, :func:`verdict` reads them:

- ``unfinished``: the words plainly go on: they end on a word that needs more ("... book an",
  "... appointment for", "... because"), they are a question's opening alone ("and do you", "can
  I"), or a number is half said ("my number is four one five"). The agent waits up to
  ``PHONEAGENT_ENDPOINTING_MAX_DELAY_S`` for more; the caller speaking again resets it.
- ``complete``: the brain knows what to do with them (the scripted flow matched an intent, a yes or
  a no, a goodbye), or, for an LLM brain, they end a sentence (Whisper's final punctuation). The
  agent answers at once.
- ``unsure``: anything else. A scripted flow waits as for unfinished words (what it would answer is
  "could you say that again?": better late than over the caller's next words); an LLM brain waits a
  little (:data:`UNSURE_WAIT_S`).

Whisper may drop the word a fragment ends on ("I would like to book an" heard as "... book"), so
the recognizer's next-best transcripts of the last utterance are read too: the words are unfinished
when any of the best three is.

Audio-only end-of-turn models were measured on the benchmark's phone voices and left out of the
default (see BENCHMARKS.md, "End of turn"); LiveKit's own (``PHONEAGENT_TURN_DETECTION=turn-detector``)
and plain VAD endpointing (``vad``) remain selectable.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Literal

from livekit.agents import llm

Verdict = Literal["complete", "unsure", "unfinished"]

# how many of the recognizer's transcripts of the last utterance are read for unfinished words
ALTERNATIVES_READ = 3
# after words the brain cannot place, the agent waits this much more before it answers: a caller
# thinking in mid-sentence gets the time, and the answer to such words is mostly "could you say that
# again?" anyway
UNSURE_WAIT_S = 0.5


def _wordset(*groups: str) -> frozenset[str]:
    return frozenset(w for group in groups for w in group.split())


# words a request does not end on: conjunctions, prepositions, articles and possessives, a subject
# that has not said its verb yet, hesitations ("so", "this", "her", "no" end whole answers: "I think
# so", "what is this", "I called her", "no")
_GOES_ON = _wordset(
    "and or but because cause if when while than whether unless although though",
    "to for of in on at with from about by into onto after before until till between through without",
    "under over near via per",
    "the a an my your our their his its some any every each another",
    "i'm i'd i'll i've we're we'd we'll they're you're",
    "um uh er erm hmm mm like",
)
# "to be" at the end waits for what follows ("my number is ..."), unless it closes a short answer
# ("yes it is", "we are")
_TO_BE = frozenset({"is", "are", "was", "were", "am", "be"})
_PRONOUNS = frozenset({"i", "you", "we", "they", "he", "she", "it", "that", "there", "who", "what"})
_AUX = r"(do|does|did|can|could|would|will|should|shall|may|might|are|is|was|were|have|has|had)"
_OPENING_ONLY = re.compile(
    rf"^((and|so|but|also|then|well|okay|ok|um|uh)\s+)*{_AUX}\s+(i|you|we|they|he|she|it)$"
)
_NUMBER_TALK = re.compile(
    r"\b(number|phone|cell|mobile|call me|callback|account|zip|postcode|code|extension)\b"
)
_DIGIT_WORDS = _wordset("zero oh o one two three four five six seven eight nine")
# a phone number has 10 digits in North America and at least 7 anywhere (an area code may be left out)
MIN_NUMBER_DIGITS = 10


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def count_digits(words: list[str]) -> int:
    """How many digits the words say ("four one five", "415", "double five" alike)."""
    count = 0
    for w in words:
        if w.isdigit():
            count += len(w)
        elif w in _DIGIT_WORDS:
            count += 1
        elif w in ("double", "triple"):  # "double five": the five counts once already
            count += 1 if w == "double" else 2
    return count


def unfinished(text: str) -> bool:
    """Whether ``text`` plainly goes on."""
    words = _words(text)
    if not words:
        return False
    if words[-1] in _GOES_ON:
        return True
    if words[-1] in _TO_BE and (len(words) < 2 or words[-2] not in _PRONOUNS):
        return True
    if _OPENING_ONLY.match(" ".join(words)):
        return True
    # a number being given: fewer digits than a phone number, wherever they came (Whisper may mishear
    # the digit that came last: "my number is 415. Fight.")
    talk = _NUMBER_TALK.search(" ".join(words))
    if talk is None:
        return False
    digits = sum(
        len(w) if w.isdigit() else 1
        for w in _words(" ".join(words)[talk.end() :])
        if w.isdigit() or w in _DIGIT_WORDS
    )
    return 0 < digits < MIN_NUMBER_DIGITS


def verdict(text: str, *, understood: Callable[[str], bool] | None = None) -> Verdict:
    """How finished the caller's words are; ``understood`` tells whether the brain can act on them
    (None: an LLM brain, which can answer anything)."""
    if not text.strip() or unfinished(text):
        return "unfinished"
    if understood is not None:
        return "complete" if understood(text) else "unsure"
    return "complete" if text.rstrip().endswith((".", "?", "!")) else "unsure"


class PhoneTurnDetector:
    """:func:`verdict` as a livekit-agents turn detector: ``complete`` is a likely end of turn (the
    session waits ``min_delay``), ``unfinished`` an unlikely one (``max_delay``); ``unsure`` is
    unlikely for a scripted flow, and for an LLM brain waits :data:`UNSURE_WAIT_S` here first.

    ``heard`` gives the recognizer's transcripts of the caller's last utterance, best first."""

    def __init__(
        self,
        *,
        understood: Callable[[str], bool] | None = None,
        heard: Callable[[], list[str]] | None = None,
        unsure_wait_s: float = UNSURE_WAIT_S,
    ) -> None:
        self._understood = understood
        self._heard = heard
        self._unsure_wait_s = unsure_wait_s
        self.verdicts: list[tuple[str, Verdict]] = []  # what it decided, in order (for the log and tests)

    @property
    def model(self) -> str:
        return "phoneagent-endpoint"

    @property
    def provider(self) -> str:
        return "local"

    async def unlikely_threshold(self, language: str | None) -> float | None:
        return 0.5

    async def supports_language(self, language: str | None) -> bool:
        return True  # the rules are English; other languages get "unsure" or "complete" from the brain

    def readings(self, text: str) -> list[str]:
        """``text`` as heard, and with its last utterance replaced by the recognizer's next best."""
        heard = self._heard() if self._heard is not None else []
        if not heard or not heard[0] or not text.endswith(heard[0]):
            return [text]
        before = text[: len(text) - len(heard[0])]
        return [before + alt for alt in heard[:ALTERNATIVES_READ]]

    def decide(self, text: str) -> Verdict:
        readings = self.readings(text)
        if any(unfinished(r) for r in readings):
            return "unfinished"
        return verdict(text, understood=self._understood)

    async def predict_end_of_turn(
        self,
        chat_ctx: llm.ChatContext,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - livekit-agents' detector protocol names it
    ) -> float:
        text = next(
            (
                item.text_content or ""
                for item in reversed(chat_ctx.items)
                if isinstance(item, llm.ChatMessage) and item.role == "user"
            ),
            "",
        )
        found = self.decide(text)
        self.verdicts.append((text, found))
        if found == "unfinished" or (found == "unsure" and self._understood is not None):
            return 0.0
        if found == "unsure":
            await asyncio.sleep(self._unsure_wait_s)
        return 1.0
