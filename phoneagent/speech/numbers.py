"""Spoken numbers as numerals, before the brain reads the caller's words.

Whisper writes most numbers as digits already, but not all: digits said one by one ("four one five"),
"double five", "oh" for zero, or numbers in words ("twenty one"), and dates ("March third"). The
brain (and a person reading the transcript) gets one spelling:

- a run of two or more digits said one by one: ``four one five`` -> ``415``, ``double five oh`` ->
  ``550`` (a lone "one" stays a word: "one moment");
- a number in words: ``twenty one`` -> ``21``, ``three hundred and forty`` -> ``340``,
  ``fifteen`` -> ``15``;
- an ordinal after a month: ``March third`` -> ``March 3rd``, ``the twenty first of May`` keeps its
  words but for ``21st``.
"""

from __future__ import annotations

import re

DIGITS = {
    "zero": 0,
    "oh": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
}
TEENS = {
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
ORDINALS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "eleventh": 11,
    "twelfth": 12,
    "thirteenth": 13,
    "fourteenth": 14,
    "fifteenth": 15,
    "sixteenth": 16,
    "seventeenth": 17,
    "eighteenth": 18,
    "nineteenth": 19,
    "twentieth": 20,
    "thirtieth": 30,
}
_MONTHS = frozenset(
    {
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    }
)
_TOKEN = re.compile(r"[A-Za-z]+|\d+|[^A-Za-z\d]+")


def _suffix(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _ordinal(words: list[str], i: int) -> tuple[int, int] | None:
    """(value, words used) of an ordinal at ``i``: "third", "twenty first"."""
    w = words[i]
    if w in ORDINALS:
        return ORDINALS[w], 1
    if w in TENS and i + 1 < len(words) and words[i + 1] in ORDINALS and ORDINALS[words[i + 1]] < 10:
        return TENS[w] + ORDINALS[words[i + 1]], 2
    return None


def _cardinal(words: list[str], i: int) -> tuple[int, int] | None:
    """(value, words used) of a number in words at ``i`` ("twenty one", "three hundred and forty")."""
    total, used, j = 0, 0, i
    if _nonzero_digit(words, j) and j + 1 < len(words) and words[j + 1] == "hundred":
        total, j = DIGITS[words[j]] * 100, j + 2
        used = j - i
        if j < len(words) and words[j] == "and" and j + 1 < len(words) and _is_number_word(words[j + 1]):
            j += 1
    rest = 0
    if j < len(words) and words[j] in TENS:
        rest, j = TENS[words[j]], j + 1
        if _nonzero_digit(words, j):
            rest, j = rest + DIGITS[words[j]], j + 1
    elif j < len(words) and words[j] in TEENS:
        rest, j = TEENS[words[j]], j + 1
    elif used and _nonzero_digit(words, j):
        rest, j = DIGITS[words[j]], j + 1
    if rest:
        total, used = total + rest, j - i
    return (total, used) if used else None


def _nonzero_digit(words: list[str], j: int) -> bool:
    return j < len(words) and words[j] in DIGITS and words[j] not in ("oh", "zero")


def _is_number_word(w: str) -> bool:
    return w in DIGITS or w in TEENS or w in TENS


def _digit_run(words: list[str], i: int) -> tuple[str, int] | None:
    """(digits, words used) of digits said one by one from ``i`` ("four one five", "double five")."""
    out, j = "", i
    while j < len(words):
        w = words[j]
        if w in ("double", "triple") and j + 1 < len(words) and words[j + 1] in DIGITS:
            out += str(DIGITS[words[j + 1]]) * (2 if w == "double" else 3)
            j += 2
        elif w in DIGITS:
            out += str(DIGITS[w])
            j += 1
        else:
            break
    return (out, j - i) if len(out) >= 2 and j - i >= 2 else None


def normalize_numbers(text: str) -> str:
    """``text`` with its spoken numbers as numerals (see the module's rules)."""
    tokens = _TOKEN.findall(text)
    # positions of the word tokens, and the words lowercased
    at = [k for k, t in enumerate(tokens) if t[0].isalpha()]
    words = [tokens[k].lower() for k in at]
    replace: dict[int, tuple[int, str]] = {}  # first word index -> (words used, text)
    i = 0
    while i < len(words):
        found: tuple[int, str] | None = None
        if i > 0 and words[i - 1] in _MONTHS or (i > 0 and words[i - 1] == "the"):
            ordinal = _ordinal(words, i)
            if ordinal is not None and (words[i - 1] in _MONTHS or _followed_by_month(words, i + ordinal[1])):
                found = (ordinal[1], f"{ordinal[0]}{_suffix(ordinal[0])}")
        if found is None:
            run = _digit_run(words, i)
            if run is not None:
                found = (run[1], run[0])
        if found is None:
            number = _cardinal(words, i)
            if number is not None:
                found = (number[1], str(number[0]))
        if found is not None:
            replace[i] = found
            i += found[0]
        else:
            i += 1
    if not replace:
        return text
    out: list[str] = []
    k = 0
    skip_until = -1
    for wi, ti in enumerate(at):
        if wi < skip_until:
            continue
        if wi in replace:
            used, new = replace[wi]
            out.append("".join(tokens[k:ti]))
            out.append(new)
            k = at[wi + used - 1] + 1
            skip_until = wi + used
    out.append("".join(tokens[k:]))
    return "".join(out)


def _followed_by_month(words: list[str], j: int) -> bool:
    if j < len(words) and words[j] == "of":
        j += 1
    return j < len(words) and words[j] in _MONTHS
