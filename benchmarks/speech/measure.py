"""Timed transcription (faster-whisper, the worker's decoding settings) and timed Piper synthesis
(the worker's streaming TTS, sentence by sentence, at 8 kHz)."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.speech.voices import telephone_band
from phoneagent.speech.whisper_stt import WhisperOptions, WhisperSTT


@dataclass(frozen=True)
class Variant:
    """One decoding setting of the sweep; ``baseline`` is WhisperOptions' values before the sweep."""

    name: str
    beam_size: int = 1
    no_speech_threshold: float = 0.6
    prompt: bool = False
    band_limit: bool = False


BASELINE = Variant("baseline")
SWEEP = [
    Variant("beam5", beam_size=5),
    Variant("no_speech_0.3", no_speech_threshold=0.3),
    Variant("no_speech_0.9", no_speech_threshold=0.9),
    Variant("vocabulary_prompt", prompt=True),
    Variant("band_300_3400", band_limit=True),
]


def stt_for(model: Any, variant: Variant, prompt: str | None) -> WhisperSTT:
    opts = WhisperOptions(
        beam_size=variant.beam_size,
        no_speech_threshold=variant.no_speech_threshold,
        initial_prompt=prompt if variant.prompt else None,
    )
    return WhisperSTT(model=model, options=opts)


def transcribe(stt: WhisperSTT, audio: np.ndarray, variant: Variant) -> tuple[str, float]:
    """(text, seconds): the worker's own decoding call, timed from 16 kHz input to the last segment."""
    t0 = time.perf_counter()
    if variant.band_limit:
        audio = telephone_band(audio)
    text = stt.transcribe(audio, "en")
    return text, time.perf_counter() - t0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def latency_summary(seconds: list[float], audio_s: list[float]) -> dict[str, float]:
    return {
        "n": len(seconds),
        "p50_s": round(percentile(seconds, 0.5), 4),
        "p95_s": round(percentile(seconds, 0.95), 4),
        "mean_s": round(statistics.fmean(seconds), 4) if seconds else float("nan"),
        "rtf": round(sum(seconds) / sum(audio_s), 4) if audio_s else float("nan"),
        "audio_p50_s": round(percentile(audio_s, 0.5), 3),
    }


# ---- TTS -------------------------------------------------------------------------------------------


async def _time_tts(tts: Any, text: str) -> dict[str, float]:
    t0 = time.perf_counter()
    first: float | None = None
    samples = 0
    rate = 0
    async for ev in tts.synthesize(text):
        if first is None:
            first = time.perf_counter() - t0
        samples += ev.frame.samples_per_channel
        rate = ev.frame.sample_rate
    total = time.perf_counter() - t0
    audio_s = samples / rate if rate else 0.0
    return {
        "ttfa_s": round(first or total, 4),
        "total_s": round(total, 4),
        "audio_s": round(audio_s, 3),
        "rtf": round(total / audio_s, 4) if audio_s else float("nan"),
        "sample_rate": rate,
    }


def time_tts(voice: Any, sentences: list[str], reps: int) -> list[dict[str, Any]]:
    """Each sentence ``reps`` times through PiperTTS (8 kHz frames), after one untimed warm-up."""
    from phoneagent.speech.piper_tts import PiperTTS

    async def run() -> list[dict[str, Any]]:
        tts = PiperTTS(voice=voice)
        await _time_tts(tts, "Warming up.")
        rows = []
        for rep in range(reps):
            for i, text in enumerate(sentences):
                row = await _time_tts(tts, text)
                rows.append({"index": i, "rep": rep, "chars": len(text), **row})
        return rows

    return asyncio.run(run())
