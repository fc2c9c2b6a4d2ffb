"""Local Piper TTS as a livekit-agents TTS: sentence by sentence, off the event loop, at 8 kHz."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

from livekit.agents import tts
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

from phoneagent.speech.audio import PHONE_RATE, PhoneLineResampler
from phoneagent.speech.models import piper_voice_files

if TYPE_CHECKING:
    from piper import AudioChunk, PiperVoice

log = logging.getLogger("phoneagent.speech")


def load_piper_voice(voice: str = "en_US-joe-medium") -> PiperVoice:
    """Load the voice once per process (prewarm), from its PyPI package."""
    try:
        from piper import PiperVoice
    except ImportError:
        from phoneagent.errors import ConfigError

        raise ConfigError("piper-tts is not installed", hint="uv sync --extra local") from None
    files = piper_voice_files(voice)
    loaded = PiperVoice.load(files.model, config_path=files.config)
    log.info("piper voice loaded", extra={"voice": files.name, "sample_rate": loaded.config.sample_rate})
    return loaded


class PiperTTS(tts.TTS):
    def __init__(self, *, voice: PiperVoice) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=PHONE_RATE,
            num_channels=1,
        )
        self._voice = voice

    @property
    def model(self) -> str:
        return "piper"

    @property
    def provider(self) -> str:
        return "local"

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _PiperStream(tts=self, input_text=text, conn_options=conn_options)


class _PiperStream(tts.ChunkedStream):
    def __init__(self, *, tts: PiperTTS, input_text: str, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._voice = tts._voice

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(
            request_id=uuid.uuid4().hex[:12],
            sample_rate=PHONE_RATE,
            num_channels=1,
            mime_type="audio/pcm",
            frame_size_ms=20,
        )
        resampler = PhoneLineResampler(self._voice.config.sample_rate)
        sentences: Iterator[AudioChunk] = iter(self._voice.synthesize(self.input_text))
        done = object()
        while True:
            # one sentence per thread hop: the first sentence goes out while the next is made
            chunk = await asyncio.to_thread(next, sentences, done)
            if chunk is done:
                break
            output_emitter.push(resampler.push(chunk.audio_int16_array))  # type: ignore[union-attr]
        output_emitter.push(resampler.flush())
        output_emitter.flush()
