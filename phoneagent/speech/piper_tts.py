"""Local Piper TTS as a livekit-agents TTS: sentence by sentence, off the event loop, at 8 kHz."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from livekit.agents import APIConnectionError, tts
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

from phoneagent.errors import SharedModelsError
from phoneagent.speech.audio import PHONE_RATE, LeadTrimmer, PhoneLineResampler
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


class SpeechCache:
    """8 kHz speech already made, by exact text, for one voice: a scripted agent says the same
    sentences on every call, and a repeated sentence then costs nothing to say (least recently used
    texts leave first beyond ``max_bytes``)."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, text: str) -> bytes | None:
        with self._lock:
            pcm = self._items.get(text)
            if pcm is not None:
                self._items.move_to_end(text)
                self.hits += 1
            return pcm

    def put(self, text: str, pcm: bytes) -> None:
        with self._lock:
            if text in self._items or len(pcm) > self._max:
                return
            self._items[text] = pcm
            self._bytes += len(pcm)
            while self._bytes > self._max:
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old)


def synthesize_phone_audio(voice: PiperVoice, text: str) -> bytes:
    """All of ``text`` as 8 kHz int16 PCM, in one blocking call (for filling the cache)."""
    resampler, trim = PhoneLineResampler(voice.config.sample_rate), LeadTrimmer()
    out = [trim.push(resampler.push(chunk.audio_int16_array)) for chunk in voice.synthesize(text)]
    return b"".join([*out, trim.push(resampler.flush()), trim.flush()])


class Synthesizer(Protocol):
    """Where speech is made: a voice in this process, or the worker's shared models."""

    def stream(self, text: str) -> AsyncIterator[bytes]:
        """``text`` as 8 kHz int16 PCM, sentence by sentence."""
        ...

    async def prepare(self, texts: list[str]) -> None:
        """Make ``texts`` ahead of need (a cache), one at a time."""
        ...


class InProcessPiper:
    """A voice in this process, with its cache of what it has said (Piper's sentences one thread hop
    each: the first goes out while the next is made)."""

    def __init__(self, voice: PiperVoice, cache: SpeechCache | None = None) -> None:
        self.voice = voice
        self.cache = cache if cache is not None else SpeechCache()

    async def prepare(self, texts: list[str]) -> None:
        for text in texts:
            if text and self.cache.get(text) is None:
                self.cache.put(text, await asyncio.to_thread(synthesize_phone_audio, self.voice, text))

    async def stream(self, text: str) -> AsyncIterator[bytes]:
        made = self.cache.get(text)
        if made is not None:
            yield made
            return
        resampler, trim = PhoneLineResampler(self.voice.config.sample_rate), LeadTrimmer()
        sentences: Iterator[AudioChunk] = iter(self.voice.synthesize(text))
        pieces: list[bytes] = []
        while True:
            chunk: AudioChunk | None = await asyncio.to_thread(next, sentences, None)
            if chunk is None:
                break
            pieces.append(trim.push(resampler.push(chunk.audio_int16_array)))
            yield pieces[-1]
        pieces.append(trim.push(resampler.flush()) + trim.flush())
        yield pieces[-1]
        self.cache.put(text, b"".join(pieces))


class PiperTTS(tts.TTS[Any]):
    """``voice`` (loaded in this process; ``cache`` shared by the calls that pass it) or
    ``synthesizer`` (e.g. the worker's shared models)."""

    def __init__(
        self,
        *,
        voice: PiperVoice | None = None,
        cache: SpeechCache | None = None,
        synthesizer: Synthesizer | None = None,
    ) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=PHONE_RATE,
            num_channels=1,
        )
        if synthesizer is None:
            if voice is None:
                raise ValueError("PiperTTS needs a voice or a synthesizer")
            synthesizer = InProcessPiper(voice, cache)
        self.synthesizer = synthesizer

    async def prepare(self, texts: list[str]) -> None:
        """Make what the agent is likely to say before it is needed."""
        await self.synthesizer.prepare(texts)

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
        self._synthesizer = tts.synthesizer

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(
            request_id=uuid.uuid4().hex[:12],
            sample_rate=PHONE_RATE,
            num_channels=1,
            mime_type="audio/pcm",
            frame_size_ms=20,
        )
        try:
            async for pcm in self._synthesizer.stream(self.input_text):
                output_emitter.push(pcm)
        except SharedModelsError as exc:
            raise APIConnectionError(f"local Piper: {exc.message}") from None
        output_emitter.flush()
