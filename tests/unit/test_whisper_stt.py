"""Local STT through the livekit-agents interface, on a caller utterance that went through G.711."""

from __future__ import annotations

import numpy as np
import pytest
from livekit import rtc

from phoneagent.speech.piper_tts import load_piper_voice
from phoneagent.speech.whisper_stt import WhisperOptions, WhisperSTT, load_whisper, to_whisper_input
from tests.peers.voices import caller_speech
from tests.peers.wer import score


@pytest.fixture(scope="module")
def stt() -> WhisperSTT:
    return WhisperSTT(model=load_whisper("tiny.en"))


@pytest.fixture(scope="module")
def base_stt(tmp_path_factory: pytest.TempPathFactory) -> WhisperSTT:
    model = load_whisper("base", cache_dir=tmp_path_factory.mktemp("cache"))
    return WhisperSTT(model=model, options=WhisperOptions.from_profile({"model": "base"}))


def _frames(pcm: np.ndarray, rate: int = 8000) -> list[rtc.AudioFrame]:
    step = rate // 50
    return [
        rtc.AudioFrame(pcm[i : i + step].tobytes(), rate, 1, len(pcm[i : i + step]))
        for i in range(0, len(pcm) - step + 1, step)
    ]


async def test_transcribes_narrowband_caller_speech(stt: WhisperSTT) -> None:
    pcm = caller_speech("I would like to book an appointment for Tuesday.", load_piper_voice())
    event = await stt.recognize(_frames(pcm))
    words = event.alternatives[0].text.lower()
    assert "appointment" in words and "tuesday" in words


async def test_base_model_transcribes_a_g711_utterance_with_numbers(base_stt: WhisperSTT) -> None:
    said = "My number is 555 0142 and my zip code is 94110."
    pcm = caller_speech(said, load_piper_voice())
    event = await base_stt.recognize(_frames(pcm))
    heard = event.alternatives[0].text
    # base drops or swaps a digit now and then at 8 kHz: at most 2 of the 20 normalized words
    assert score(said, heard).errors <= 2, heard
    assert "zip code" in heard.lower() and "94110" in "".join(c for c in heard if c.isdigit()), heard


async def test_silence_gives_no_words(stt: WhisperSTT) -> None:
    event = await stt.recognize(_frames(np.zeros(8000, dtype=np.int16)))
    assert event.alternatives[0].text.strip(" .") == ""


def test_one_resampling_step_to_16khz() -> None:
    frame = rtc.AudioFrame(np.zeros(2400, dtype=np.int16).tobytes(), 24000, 1, 2400)
    out = to_whisper_input(frame)
    assert out.dtype == np.float32 and abs(out.size - 1600) <= 16


def test_a_clause_said_twice_in_a_row_is_kept_once() -> None:
    from phoneagent.speech.whisper_stt import drop_repeats

    assert drop_repeats("When do you close? When do you close?") == "When do you close?"
    assert drop_repeats("I want to go check up. I want to go check up.") == "I want to go check up."
    assert drop_repeats("No, no, I said Tuesday.") == "No, no, I said Tuesday."
    assert drop_repeats("Yes. Yes, please.") == "Yes. Yes, please."


def test_the_turn_prompt_keeps_the_profile_s_words_first_and_fits_whisper_s_budget() -> None:
    from phoneagent.speech.whisper_stt import MAX_PROMPT_CHARS, turn_prompt

    assert turn_prompt(None, []) is None
    assert turn_prompt(None, ["yes", "no", "yes"]) == "Yes, no."
    assert turn_prompt("Acme, Maple Avenue.", ["monday"]) == "Acme, Maple Avenue, monday."
    long = turn_prompt("Acme.", [f"word{i}" for i in range(200)])
    assert long is not None and long.startswith("Acme, word0") and len(long) <= MAX_PROMPT_CHARS


def test_an_utterance_that_fits_is_encoded_in_the_short_window() -> None:
    import numpy as np

    from phoneagent.speech.whisper_stt import SHORT_WINDOW_FRAMES, short_window

    short = np.zeros((80, 3000), dtype=np.float32)
    short[:, :300] = 1.0  # 3 s of audio
    assert short_window(short).shape == (80, SHORT_WINDOW_FRAMES)
    long = np.zeros((80, 3000), dtype=np.float32)
    long[:, :990] = 1.0  # 9.9 s: too close to the short window's end
    assert short_window(long).shape == (80, 3000)
