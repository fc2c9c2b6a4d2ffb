"""Where a turn's time goes, as the worker reports it: the instants of one turn, cut into consecutive
slices that add up to the worker's whole part."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
from livekit import rtc
from livekit.agents.voice.events import UserInputTranscribedEvent, UserStateChangedEvent

from phoneagent.worker.timing import SLICES, TurnClock, TurnSeq, after_rejoin, last_loud_end, split_ms

pytestmark = pytest.mark.unit


def _frame(loud_ms: int, quiet_ms: int, rate: int = 16000) -> rtc.AudioFrame:
    t = np.arange(int(rate * loud_ms / 1000)) / rate
    loud = (np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16)
    pcm = np.concatenate([loud, np.zeros(int(rate * quiet_ms / 1000), dtype=np.int16)])
    return rtc.AudioFrame(pcm.tobytes(), rate, 1, pcm.size)


def test_the_last_loud_sound_of_a_frame_is_placed_within_5_ms() -> None:
    assert last_loud_end(_frame(20, 0)) == pytest.approx(0.0, abs=0.005)
    assert last_loud_end(_frame(5, 15)) == pytest.approx(0.015, abs=0.005)
    assert last_loud_end(_frame(0, 20)) is None


def test_slices_add_up_and_an_early_transcript_is_a_zero_slice() -> None:
    marks = {
        "heard": 10.0,
        "eos": 10.3,
        "transcript": 10.25,
        "committed": 10.31,
        "brain": 10.312,
        "tts": 10.33,
        "out": 10.335,
    }
    split = split_ms(marks)
    assert split is not None and list(split) == list(SLICES)
    assert split["transcript"] == 0  # ready before the VAD was sure
    assert split["vad"] == 300 and split["end_of_turn"] == 10
    assert sum(split.values()) == pytest.approx(335, abs=1)
    assert split_ms({"heard": 1.0}) is None


async def test_the_clock_collects_one_turn_and_hands_it_to_the_reply() -> None:
    now = [100.0]
    clock = TurnClock(clock=lambda: now[0])

    async def audio() -> AsyncIterator[rtc.AudioFrame]:
        yield _frame(20, 0)

    async for _ in clock.tap(audio()):
        pass
    assert clock.take(None) is None  # no turn yet
    now[0] = 100.4
    clock.on_user_state(UserStateChangedEvent(old_state="speaking", new_state="listening"))
    now[0] = 100.45
    clock.on_transcript(UserInputTranscribedEvent(transcript="hi", is_final=True))
    now[0] = 100.5
    clock.committed()
    now[0] = 100.51
    clock.mark("brain")
    now[0] = 100.52
    clock.mark("tts")
    clock.mark("tts")  # the first one counts
    marks = clock.take(100.55)
    assert marks == pytest.approx(
        {
            "heard": 100.0,
            "eos": 100.4,
            "transcript": 100.45,
            "committed": 100.5,
            "brain": 100.51,
            "tts": 100.52,
            "out": 100.55,
        }
    )
    assert clock.take(101.0) is None  # handed over once


def test_a_job_sent_to_a_call_already_going_on_numbers_its_turns_after_the_first_agents() -> None:
    first = TurnSeq()
    assert [first.take() for _ in range(3)] == [0, 1, 2]
    rejoined = TurnSeq()
    rejoined.start_at(after_rejoin(42.37))  # 42 s into the call
    assert [rejoined.take() for _ in range(2)] == [10_423, 10_424]
    rejoined.start_at(5)  # never backwards
    assert rejoined.take() == 10_425
    later = after_rejoin(42.5)  # a second job sent to the call a moment later: after the first one's
    assert later > 10_423 and after_rejoin(10**9) <= 99_000  # within what the control plane takes
