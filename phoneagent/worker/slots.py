"""What a caller's words (or keys) give a slot of the call's outcome, by the slot's kind.

Each reader takes the caller's turn as the recognizer wrote it and returns the slot's value as a
string, or None when the turn does not hold one:

- ``day``: a weekday name (``"friday"``), or ``"today"`` / ``"tomorrow"`` as said (no date is
  computed: the caller's "tomorrow" depends on when the call was, which the record keeps);
- ``time``: ``"ten thirty"``, ``"10:30"``, ``"3 pm"``, ``"half past two"``, ``"noon"`` -> ``HH:MM``
  (24-hour; without am or pm the hour is kept as said);
- ``digits``: the digits said one by one or as numerals (``"four one five"``, ``"415"``) -> ``"415"``;
  keys come through the flow, which collects them (``phoneagent.worker.scripted``);
- ``yes_no``: ``"yes"`` or ``"no"`` (a turn with both is neither);
- ``keyword``: the first of the slot's keywords the caller said, as declared.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from phoneagent.speech.numbers import DIGITS, TEENS, TENS, normalize_numbers

KINDS = ("day", "time", "digits", "yes_no", "keyword")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
RELATIVE_DAYS = ("today", "tomorrow")
YES = frozenset({"yes", "yeah", "yep", "correct", "right", "sure", "okay", "ok", "please"})
NO = frozenset({"no", "nope", "wrong", "not"})
# a caller's word counts as a keyword with these endings too: "appointments", "booked", "Fridays"
_ENDINGS = ("s", "es", "'s", "ed", "d", "ing")


def caller_words(text: str) -> set[str]:
    """The caller's words, lowercased, each also without a plural, possessive or tense ending."""
    words = set(re.findall(r"[a-z']+", text.lower()))
    stems = {w[: -len(e)] for w in words for e in _ENDINGS if w.endswith(e) and len(w) - len(e) >= 3}
    return words | stems


def read_day(text: str) -> str | None:
    words = caller_words(text)
    return next((d for d in (*WEEKDAYS, *RELATIVE_DAYS) if d in words), None)


_MERIDIEM = r"(?:\s*(?P<m>a\.?\s?m\.?|p\.?\s?m\.?|o'?clock)(?![a-z]))?"
_CLOCK = re.compile(r"(?<![\d:])(?P<h>\d{1,2})(?:\s*[:.h]\s*|\s+)(?P<min>\d{2})(?!\d)" + _MERIDIEM)
_HOUR = re.compile(r"(?<![\d:])(?P<h>\d{1,2})(?!\d)" + _MERIDIEM)
_PAST = re.compile(r"\b(?P<q>half|quarter)\s+(?P<way>past|to)\s+(?P<h>\d{1,2})\b")


def _hhmm(hour: int, minute: int, meridiem: str | None) -> str | None:
    m = (meridiem or "").replace(".", "").replace(" ", "").lower()
    if m in ("am", "pm"):
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if m == "pm" else 0)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return None
    return f"{hour:02d}:{minute:02d}"


_NUMBER_WORDS = {**{w: d for w, d in DIGITS.items() if w != "oh"}, **TEENS, **TENS}


def _numerals(text: str) -> str:
    """``text`` with every number as numerals, also those said alone ("at four", "half past two")."""
    said = normalize_numbers(text).lower()
    return re.sub(r"[a-z]+", lambda m: str(_NUMBER_WORDS.get(m[0], m[0])), said)


def read_time(text: str) -> str | None:
    said = _numerals(text)
    if re.search(r"\bnoon\b|\bmidday\b", said):
        return "12:00"
    if re.search(r"\bmidnight\b", said):
        return "00:00"
    if found := _PAST.search(said):
        hour, minute = int(found["h"]), 30 if found["q"] == "half" else 15
        if found["way"] == "to":
            hour, minute = (hour - 1) % 24, 60 - minute
        return _hhmm(hour, minute, None)
    if found := _CLOCK.search(said):
        return _hhmm(int(found["h"]), int(found["min"]), found["m"])
    # an hour alone needs its am, pm or o'clock, or to be the only number of the turn ("at 3")
    hours = list(_HOUR.finditer(said))
    marked = [h for h in hours if h["m"]]
    if marked:
        return _hhmm(int(marked[0]["h"]), 0, marked[0]["m"])
    if len(hours) == 1 and len(re.findall(r"\d+", said)) == 1:
        return _hhmm(int(hours[0]["h"]), 0, None)
    return None


def read_digits(text: str, count: int | None = None) -> str | None:
    said = normalize_numbers(text)
    digits = "".join(re.findall(r"\d", said))
    if not digits:  # one digit said alone stays a word ("one moment"): for a digits slot it is one
        words = re.findall(r"[a-z]+", said.lower())
        digits = "".join(str(DIGITS[w]) for w in words if w in DIGITS and w != "oh")
    if not digits or (count is not None and len(digits) != count):
        return None
    return digits


def read_yes_no(text: str) -> str | None:
    words = caller_words(text)
    yes, no = bool(words & YES), bool(words & NO)
    return "yes" if yes and not no else "no" if no and not yes else None


def read_keyword(text: str, keywords: Sequence[str]) -> str | None:
    words = caller_words(text)
    return next((k for k in keywords if k in words), None)


def reader(
    kind: str, *, count: int | None = None, keywords: Sequence[str] = ()
) -> Callable[[str], str | None]:
    """The reader of a slot of ``kind``."""
    if kind == "day":
        return read_day
    if kind == "time":
        return read_time
    if kind == "digits":
        return lambda text: read_digits(text, count)
    if kind == "yes_no":
        return read_yes_no
    if kind == "keyword":
        return lambda text: read_keyword(text, keywords)
    raise ValueError(f"unknown slot kind {kind!r}")


def vocabulary(kind: str, keywords: Sequence[str] = ()) -> list[str]:
    """Words a recognizer should lean toward while a slot of ``kind`` waits for the caller."""
    return {
        "day": [*WEEKDAYS, *RELATIVE_DAYS],
        "time": ["am", "pm", "noon", "half past", "quarter past"],
        "digits": [w for w in DIGITS if w != "oh"],
        "yes_no": ["yes", "no"],
        "keyword": list(keywords),
    }.get(kind, [])
