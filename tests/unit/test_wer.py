"""The WER normalizer: writing choices that do not change what was said compare equal."""

from __future__ import annotations

import pytest

from tests.peers.wer import Score, corpus_wer, edit_distance, normalize, score


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("I need 5 tickets.", "i need five tickets"),
        ("Call 555-0142.", "call five five five oh one four two"),
        ("It costs $1,500.", "it costs fifteen hundred dollars"),
        ("At 2:30 p.m. on March 3rd.", "at two thirty PM on march third"),
        ("Three o'clock.", "3:00"),
        ("In 2025", "in twenty twenty-five"),
        ("105", "one hundred and five"),
        ("OK, Mr. Smith!", "Okay mister smith"),
        ("The 21st of May", "the twenty-first of may"),
        ("Zip code 02139", "zip code zero two one three nine"),
        ("2,500", "two thousand five hundred"),
        ("15% off", "fifteen percent off"),
    ],
)
def test_same_words_written_two_ways_match(written: str, spoken: str) -> None:
    assert normalize(written) == normalize(spoken)
    assert score(spoken, written).errors == 0


@pytest.mark.parametrize(
    ("a", "b"),
    [("yes", "yeah"), ("fifteen", "fifty"), ("555-0142", "555-0124"), ("Tuesday", "Thursday")],
)
def test_different_words_do_not_match(a: str, b: str) -> None:
    assert score(a, b).errors > 0


def test_numbers_are_compared_digit_by_digit() -> None:
    assert normalize("twenty five") == ["2", "5"]
    assert score("call 555 0142", "call 555 0143") == Score(errors=1, ref_words=8)


def test_edit_distance_counts_substitutions_insertions_and_deletions() -> None:
    assert edit_distance(["a", "b", "c"], ["a", "x", "c", "d"]) == 2
    assert edit_distance([], ["a"]) == 1
    assert edit_distance(["a", "b"], []) == 2


def test_corpus_wer_weights_by_reference_words() -> None:
    assert corpus_wer([Score(1, 10), Score(1, 2)]) == pytest.approx(2 / 12)
    assert corpus_wer([]) == 0.0
    assert Score(2, 0).wer == 1.0 and Score(0, 0).wer == 0.0
