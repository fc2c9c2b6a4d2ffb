"""Word error rate for phone-style English: jiwer's word alignment after a small text normalizer.

The normalizer (written here, a small subset of what Whisper's English normalizer does) makes
writing choices that do not change what was said compare equal:

- lowercase; ``a.m.``/``p.m.`` as ``am``/``pm``; punctuation removed; hyphens, slashes and colons
  split words (``555-0142``, ``2:30``);
- ``$40`` becomes ``40 dollars``, ``15%`` ``15 percent``, ``1,500`` ``1500``; ``:00`` and
  ``o'clock`` are dropped (``3:00``, ``three o'clock`` and ``3`` are one time);
- number words become digits (``twenty five`` and ``25``, ``third`` and ``3rd``, ``fifteen hundred``
  and ``1500``), and ``oh``/``o`` next to a digit is ``0``;
- finally every number is spelled digit by digit (``555`` and ``five five five`` match; ``25`` is
  ``2 5``), so a number read as digits and one read as a quantity compare the same. A wrong number
  therefore costs one error per wrong digit;
- a few spellings are unified: ``ok``/``okay``, ``mr``/``mister``, ``mrs``/``missus``, ``dr``/``doctor``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import jiwer

from phoneagent.speech.numbers import DIGITS, ORDINALS, TEENS, TENS

# the number words are the product's own (phoneagent.speech.numbers): "oh" is a zero only next to a digit here
_UNITS = {**{word: n for word, n in DIGITS.items() if word != "oh"}, **TEENS}
_TENS = TENS
_ORDINALS = ORDINALS
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_SPELLING = {"ok": "okay", "mr": "mister", "mrs": "missus", "dr": "doctor", "oclock": ""}


def normalize(text: str) -> list[str]:
    """The words of ``text`` in the canonical form described in the module docstring."""
    t = text.lower()
    t = re.sub(r"\b([ap])\.\s?m\b\.?", r"\1m", t)
    t = re.sub(r"\$(\d[\d,]*)", r"\1 dollars", t)
    t = re.sub(r"(\d)%", r"\1 percent", t)
    t = re.sub(r"(\d),(?=\d{3})", r"\1", t)
    t = re.sub(r"(\d):00\b", r"\1", t)
    t = re.sub(r"(\d+)(st|nd|rd|th)\b", r"\1", t)
    t = re.sub(r"[-/:]", " ", t)
    t = t.replace("'", "").replace("\u2019", "")
    t = re.sub(r"(\d)\.(?=\d)", r"\1 point ", t)
    t = re.sub(r"[^a-z0-9 ]", " ", t)
    words = [_SPELLING.get(w, w) for w in t.split()]
    words = _numbers_to_digits([w for w in words if w])
    out: list[str] = []
    for w in words:
        out.extend(list(w) if w.isdigit() else [w])
    return out


def _numbers_to_digits(words: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(words):
        value, used = _parse_number(words, i)
        if used:
            out.append(words[i] if words[i].isdigit() else str(value))  # keeps leading zeros
            i += used
            continue
        w = words[i]
        near_digit = (out and out[-1].isdigit()) or (i + 1 < len(words) and _starts_number(words, i + 1))
        out.append("0" if w in ("oh", "o") and near_digit else w)
        i += 1
    return out


def _starts_number(words: list[str], i: int) -> bool:
    return _parse_number(words, i)[1] > 0


def _parse_number(words: list[str], i: int) -> tuple[int, int]:
    """(value, words used) of the number words starting at ``i``; (0, 0) when none starts there."""
    w = words[i]
    if w.isdigit():
        return int(w), 1
    if w in _ORDINALS:
        return _ORDINALS[w], 1
    total, current, used = 0, 0, 0
    last: str | None = None  # "unit", "teen", "tens", "scale"
    j = i
    while j < len(words):
        w = words[j]
        if w in _TENS and last in (None, "scale"):
            current += _TENS[w]
            last = "tens"
        elif w in _UNITS and _UNITS[w] < 10 and last in (None, "scale", "tens"):
            current += _UNITS[w]
            last = "unit"
        elif w in _UNITS and last in (None, "scale"):
            current += _UNITS[w]
            last = "teen"
        elif w in _ORDINALS and _ORDINALS[w] < 10 and last == "tens":
            current += _ORDINALS[w]
            j += 1
            break
        elif w in _SCALES and last in ("unit", "teen", "tens") and (w == "hundred" or current):
            if w == "hundred":
                current *= 100
            else:
                total += current * _SCALES[w]
                current = 0
            last = "scale"
        elif w == "and" and last == "scale" and j + 1 < len(words) and words[j + 1] in {**_UNITS, **_TENS}:
            pass
        else:
            break
        j += 1
    used = j - i
    if used == 0 or last is None:
        return 0, 0
    return total + current, used


@dataclass(frozen=True)
class Score:
    """Word edits (substitutions + deletions + insertions) against the reference's word count."""

    errors: int
    ref_words: int

    @property
    def wer(self) -> float:
        return self.errors / self.ref_words if self.ref_words else float(self.errors > 0)


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word edits from ``ref`` to ``hyp`` (jiwer's alignment; it refuses an empty reference)."""
    if not ref or not hyp:
        return len(ref) + len(hyp)
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    return int(out.substitutions + out.deletions + out.insertions)


def score(reference: str, hypothesis: str) -> Score:
    ref = normalize(reference)
    return Score(errors=edit_distance(ref, normalize(hypothesis)), ref_words=len(ref))


def corpus_wer(scores: Iterable[Score]) -> float:
    """Total errors over total reference words (not the mean of per-utterance rates)."""
    errors = words = 0
    for s in scores:
        errors += s.errors
        words += s.ref_words
    return errors / words if words else 0.0
