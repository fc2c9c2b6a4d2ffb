"""Speculative transcription: the guess made in the caller's silence is the final transcript when the
silence holds, and is dropped when the caller goes on (the final then covers the whole utterance)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import stt
from livekit.plugins import silero

from phoneagent.speech.speculative import SpeculativeStreamAdapter
from phoneagent.speech.whisper_stt import WhisperSTT
from phoneagent.testing.voices import caller_speech
from phoneagent.testing.wav import silence

RATE = 8000


def _frames(pcm: np.ndarray) -> list[rtc.AudioFrame]:
    step = RATE // 50
    return [
        rtc.AudioFrame(pcm[i : i + step].tobytes(), RATE, 1, step)
        for i in range(0, len(pcm) - step + 1, step)
    ]


async def _transcribe(adapter: SpeculativeStreamAdapter, pcm: np.ndarray) -> list[str]:
    stream = adapter.stream()
    finals: list[str] = []

    async def read() -> None:
        async for ev in stream:
            if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                finals.append(ev.alternatives[0].text)

    reader = asyncio.create_task(read())
    for frame in _frames(pcm):
        stream.push_frame(frame)
        await asyncio.sleep(0.02)  # the phone's pace: the VAD sees the silence as it happens
    stream.end_input()
    await asyncio.wait_for(reader, timeout=60)
    return finals


def _adapter(whisper_model: Any) -> SpeculativeStreamAdapter:
    vad = silero.VAD.load(min_silence_duration=0.6)
    return SpeculativeStreamAdapter(stt=WhisperSTT(model=whisper_model), vad=vad, speculate_after_s=0.15)


async def test_the_guess_made_in_the_silence_is_the_final_transcript(
    whisper_model: Any, piper_voice: Any
) -> None:
    adapter = _adapter(whisper_model)
    pcm = np.concatenate(
        [silence(0.3), caller_speech("What are your opening hours?", piper_voice), silence(1.5)]
    )
    finals = await _transcribe(adapter, pcm)
    assert len(finals) == 1 and "opening hours" in finals[0].lower(), finals
    assert (adapter.speculations_used, adapter.speculations_dropped) == (1, 0)


async def test_a_guess_the_caller_talks_over_is_dropped_and_the_final_has_every_word(
    whisper_model: Any, piper_voice: Any
) -> None:
    adapter = _adapter(whisper_model)
    first = caller_speech("I would like to book", piper_voice)
    second = caller_speech("an appointment for Tuesday.", piper_voice)
    # a pause longer than the guess's wait, shorter than the VAD's end of speech
    pcm = np.concatenate([silence(0.3), first, silence(0.4), second, silence(1.5)])
    finals = await _transcribe(adapter, pcm)
    assert len(finals) == 1, finals
    words = finals[0].lower()
    assert "book" in words and "appointment" in words and "tuesday" in words, finals
    assert adapter.speculations_dropped >= 1 and adapter.speculations_used == 1
