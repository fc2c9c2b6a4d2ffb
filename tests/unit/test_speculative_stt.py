"""Speculative transcription: the guess made in the caller's silence is the final transcript when the
silence holds, and is dropped when the caller goes on (the final then covers the whole utterance)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import stt
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, APIConnectOptions, NotGivenOr
from livekit.agents.utils import AudioBuffer
from livekit.plugins import silero

from phoneagent.speech.speculative import SpeculativeStreamAdapter
from phoneagent.speech.whisper_stt import WhisperSTT
from tests.peers.voices import caller_speech
from tests.peers.wav import silence

RATE = 8000


class EarSTT(stt.STT[Any]):
    """An STT that says how much audio it was given, in 10 ms steps (what the adapter handed it)."""

    def __init__(self) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))

    async def _recognize_impl(
        self, buffer: AudioBuffer, *, language: NotGivenOr[str] = NOT_GIVEN, conn_options: APIConnectOptions
    ) -> stt.SpeechEvent:
        frame = rtc.combine_audio_frames(buffer)
        await asyncio.sleep(0.05)
        centis = round(frame.samples_per_channel / frame.sample_rate * 100)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=uuid.uuid4().hex[:8],
            alternatives=[stt.SpeechData(language=LanguageCode("en"), text=str(centis))],
        )


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


def _adapter(inner: stt.STT[Any]) -> SpeculativeStreamAdapter:
    return SpeculativeStreamAdapter(
        stt=inner, vad=silero.VAD.load(min_silence_duration=0.6), speculate_after_s=0.15
    )


async def test_a_guess_in_the_silence_is_the_final_and_holds_less_trailing_silence(piper_voice: Any) -> None:
    adapter = _adapter(EarSTT())
    speech = caller_speech("What are your opening hours?", piper_voice)
    finals = await _transcribe(adapter, np.concatenate([silence(0.3), speech, silence(1.5)]))
    assert len(finals) == 1 and (adapter.speculations_used, adapter.speculations_dropped) == (1, 0)
    heard_s = int(finals[0]) / 100
    # the whole utterance, and not the 0.6 s of silence the VAD waits for before it is sure
    assert len(speech) / RATE - 0.1 <= heard_s <= len(speech) / RATE + 0.55, (heard_s, len(speech) / RATE)


async def test_a_guess_the_caller_talks_over_is_dropped_and_the_final_hears_both_parts(
    piper_voice: Any,
) -> None:
    adapter = _adapter(EarSTT())
    first = caller_speech("I would like to book", piper_voice)
    second = caller_speech("an appointment for Tuesday.", piper_voice)
    # a pause longer than the guess's wait, shorter than the VAD's end of speech
    finals = await _transcribe(
        adapter, np.concatenate([silence(0.3), first, silence(0.4), second, silence(1.5)])
    )
    assert len(finals) == 1 and adapter.speculations_dropped >= 1, finals
    assert int(finals[0]) / 100 >= (len(first) + len(second)) / RATE + 0.3, finals


async def test_sound_after_the_guess_that_the_vad_took_for_silence_makes_the_adapter_hear_it(
    piper_voice: Any,
) -> None:
    adapter = _adapter(EarSTT())
    speech = caller_speech("Thursday please.", piper_voice)
    # after a short pause, a sound the VAD does not call speech but that is not silence either
    hum = (np.sin(2 * np.pi * 440 * np.arange(int(0.3 * RATE)) / RATE) * 2000).astype(np.int16)
    finals = await _transcribe(
        adapter, np.concatenate([silence(0.3), speech, silence(0.2), hum, silence(1.5)])
    )
    assert len(finals) == 1 and adapter.speculations_used == 0, (finals, adapter.speculations_used)
    assert int(finals[0]) / 100 >= (len(speech) + len(hum)) / RATE, finals


async def test_with_whisper_the_final_transcript_is_the_utterance(
    whisper_model: Any, piper_voice: Any
) -> None:
    adapter = _adapter(WhisperSTT(model=whisper_model))
    pcm = np.concatenate(
        [silence(0.3), caller_speech("I would like to book an appointment.", piper_voice), silence(1.5)]
    )
    finals = await _transcribe(adapter, pcm)
    assert len(finals) == 1 and "appointment" in finals[0].lower(), finals
    assert adapter.speculations_used == 1
