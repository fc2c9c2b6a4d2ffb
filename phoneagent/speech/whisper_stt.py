"""Local faster-whisper STT as a livekit-agents STT, tuned for narrowband phone audio.

Not streaming: the session's Silero VAD cuts utterances and each is transcribed whole (livekit-agents
wraps it in a StreamAdapter). The utterance is resampled once to the 16 kHz Whisper wants; decoding is
greedy (beam 1) at temperature 0 with the agent profile's vocabulary as the initial prompt. The model
is loaded once per process (prewarm) and inference runs in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from livekit import rtc
from livekit.agents import stt
from livekit.agents.types import NOT_GIVEN, APIConnectOptions, NotGivenOr
from livekit.agents.utils import AudioBuffer

from phoneagent.errors import ConfigError
from phoneagent.speech.models import whisper_model_dir

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger("phoneagent.speech")

WHISPER_RATE = 16000


def load_whisper(name: str = "tiny.en", *, threads: int = 2) -> WhisperModel:
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise ConfigError("faster-whisper is not installed", hint="uv sync --extra local") from None
    found = whisper_model_dir(name)
    model = WhisperModel(
        str(found.path), device="cpu", compute_type="int8", cpu_threads=threads, local_files_only=True
    )
    log.info("whisper model loaded", extra={"model": found.name, "path": str(found.path)})
    return model


@dataclass(frozen=True)
class WhisperOptions:
    language: str = "en"
    beam_size: int = 1
    initial_prompt: str | None = None
    no_speech_threshold: float = 0.6


def to_whisper_input(frame: rtc.AudioFrame) -> np.ndarray:
    """One resampling step from whatever the room delivers to 16 kHz mono float32."""
    pcm = np.frombuffer(frame.data, dtype=np.int16)
    if frame.num_channels > 1:
        pcm = pcm.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
    if frame.sample_rate != WHISPER_RATE:
        r = rtc.AudioResampler(
            frame.sample_rate, WHISPER_RATE, num_channels=1, quality=rtc.AudioResamplerQuality.HIGH
        )
        out = r.push(bytearray(pcm.tobytes())) + r.flush()
        pcm = np.frombuffer(b"".join(bytes(f.data) for f in out), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


class WhisperSTT(stt.STT):
    def __init__(self, *, model: WhisperModel, options: WhisperOptions | None = None) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._model = model
        self._opts = options or WhisperOptions()

    @property
    def model(self) -> str:
        return "faster-whisper"

    @property
    def provider(self) -> str:
        return "local"

    def _transcribe(self, audio: np.ndarray, language: str) -> str:
        segments, _info = self._model.transcribe(
            audio,
            language=language,
            beam_size=self._opts.beam_size,
            temperature=0.0,
            initial_prompt=self._opts.initial_prompt,
            no_speech_threshold=self._opts.no_speech_threshold,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,  # the session's VAD already cut the utterance
        )
        return " ".join(s.text.strip() for s in segments).strip()

    async def _recognize_impl(
        self, buffer: AudioBuffer, *, language: NotGivenOr[str] = NOT_GIVEN, conn_options: APIConnectOptions
    ) -> stt.SpeechEvent:
        frame = rtc.combine_audio_frames(buffer)
        lang = language if isinstance(language, str) else self._opts.language
        audio = to_whisper_input(frame)
        text = await asyncio.to_thread(self._transcribe, audio, lang) if audio.size else ""
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=uuid.uuid4().hex[:12],
            alternatives=[stt.SpeechData(language=lang, text=text)],
        )
