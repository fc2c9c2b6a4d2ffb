"""Spoken numbers become numerals before the brain reads them; other words stay as they are."""

from __future__ import annotations

import pytest

from phoneagent.speech.numbers import normalize_numbers

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("said", "read"),
    [
        ("My number is four one five five five five one two three four.", "My number is 4155551234."),
        ("It's double five oh seven.", "It's 5507."),
        ("Triple two, then nine.", "222, then nine."),
        ("There are twenty one of us.", "There are 21 of us."),
        ("It came to three hundred and forty dollars.", "It came to 340 dollars."),
        ("Fifteen percent off.", "15 percent off."),
        ("Can I come on March third?", "Can I come on March 3rd?"),
        ("The twenty first of May works.", "The 21st of May works."),
        ("My number is 415.", "My number is 415."),
        ("One moment please.", "One moment please."),
        ("The first time I called.", "The first time I called."),
        ("Oh, I see.", "Oh, I see."),
        ("At two o'clock.", "At two o'clock."),
        ("", ""),
    ],
)
def test_spoken_numbers_become_numerals(said: str, read: str) -> None:
    assert normalize_numbers(said) == read
