"""Speculative transcription for a non-streaming STT (local Whisper): start transcribing when the
caller *seems* to have stopped, instead of when the VAD is sure.

livekit-agents' StreamAdapter transcribes an utterance at the VAD's END_OF_SPEECH, which comes only
after ``min_silence_duration`` of silence; Whisper then takes its few hundred milliseconds on top.
Here the utterance so far is handed to the STT as soon as ``speculate_after_s`` of silence has
passed (Silero reports the raw silence with each inference; the worker guesses a quarter into the
silence the VAD waits for). If the caller goes on speaking, that guess is dropped; if the silence
holds until END_OF_SPEECH, its transcript is the final one, and most of the STT time has been spent
inside the silence the VAD was waiting for anyway. The text is the same as without speculation,
because the audio is the same utterance (minus some trailing
silence); only the waiting changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterable
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import APIError, stt, utils
from livekit.agents.stt.stream_adapter import DEFAULT_STREAM_ADAPTER_API_CONNECT_OPTIONS, StreamAdapter
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr
from livekit.agents.vad import VAD, VADEventType

log = logging.getLogger("phoneagent.speech")

SPECULATE_AFTER_S = 0.15


# the tail the guess did not hear must be this quiet for the guess to stand (the VAD may take soft
# speech, a trailing "s" or "hours", for silence)
QUIET_TAIL_DBFS = -42.0


def _quiet_after(frames: list[rtc.AudioFrame], samples: int) -> bool:
    """Whether the audio of ``frames`` after the first ``samples`` is silence, 20 ms at a time."""
    pcm = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames]) if frames else np.zeros(0)
    tail = pcm[samples:].astype(np.float64)
    if tail.size == 0:
        return True
    rate = frames[0].sample_rate
    step = max(1, rate // 50)
    windows = tail[: tail.size // step * step].reshape(-1, step) if tail.size >= step else tail.reshape(1, -1)
    rms = np.sqrt(np.mean(windows**2, axis=1))
    return bool(20 * np.log10(max(float(rms.max()), 1e-9) / 32768.0) < QUIET_TAIL_DBFS)


class SpeculativeStreamAdapter(StreamAdapter):
    """A :class:`StreamAdapter` whose streams transcribe speculatively. Its streams are plain
    ``stt.RecognizeStream`` subclasses (the interface every streaming plugin implements), so nothing
    here depends on the internals of livekit-agents' own ``StreamAdapterWrapper``."""

    def __init__(self, *, stt: stt.STT[Any], vad: VAD, speculate_after_s: float = SPECULATE_AFTER_S) -> None:
        super().__init__(stt=stt, vad=vad)
        self.vad = vad
        self.speculate_after_s = speculate_after_s
        self.speculations_used = 0  # how many utterances took their speculative transcript
        self.speculations_dropped = 0  # how many guesses the caller's next words made void

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.RecognizeStream:
        return _SpeculativeStream(self, language=language, conn_options=conn_options)


class _SpeculativeStream(stt.RecognizeStream):
    def __init__(
        self, adapter: SpeculativeStreamAdapter, *, language: NotGivenOr[str], conn_options: APIConnectOptions
    ) -> None:
        # no retries of the stream itself: STT.recognize already retries each utterance
        super().__init__(stt=adapter, conn_options=DEFAULT_STREAM_ADAPTER_API_CONNECT_OPTIONS)
        self._adapter = adapter
        self._vad = adapter.vad
        self._wrapped_stt = adapter.wrapped_stt
        self._wrapped_stt_conn_options = conn_options
        self._language = language

    async def _metrics_monitor_task(self, event_aiter: AsyncIterable[stt.SpeechEvent]) -> None:
        # the wrapped STT reports each recognize call's metrics itself; the stream's would count twice
        async for _ in event_aiter:
            pass

    def _start(self, frames: list[rtc.AudioFrame]) -> asyncio.Task[stt.SpeechEvent]:
        task = asyncio.create_task(
            self._wrapped_stt.recognize(
                buffer=utils.merge_frames(frames),
                language=self._language,
                conn_options=self._wrapped_stt_conn_options,
            )
        )
        # a dropped guess is never awaited: its outcome is read here so that an error is not lost
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    async def _run(self) -> None:
        vad_stream = self._vad.stream()

        async def forward_input() -> None:
            async for frame in self._input_ch:
                if isinstance(frame, self._FlushSentinel):
                    vad_stream.flush()
                    continue
                vad_stream.push_frame(frame)
            vad_stream.end_input()

        async def recognize() -> None:
            speech: list[rtc.AudioFrame] | None = None  # the utterance so far (None: not in speech)
            guess: asyncio.Task[stt.SpeechEvent] | None = None
            # guesses the caller's next words made void: their transcription runs on in its thread, so
            # no new guess starts before they finish (two Whisper runs would fight for the CPU)
            stale: set[asyncio.Task[stt.SpeechEvent]] = set()
            after = self._adapter.speculate_after_s
            guessed_samples = 0
            async for ev in vad_stream:
                if ev.type == VADEventType.START_OF_SPEECH:
                    speech = list(ev.frames)
                    self._event_ch.send_nowait(stt.SpeechEvent(stt.SpeechEventType.START_OF_SPEECH))
                elif ev.type == VADEventType.INFERENCE_DONE and speech is not None:
                    speech.extend(ev.frames)
                    silent = ev.raw_accumulated_silence
                    stale = {t for t in stale if not t.done()}
                    if guess is None and silent >= after and not stale:
                        guess = self._start(speech)
                        guessed_samples = sum(f.samples_per_channel for f in speech)
                    elif guess is not None and silent < after:
                        stale.add(guess)  # the caller went on: the guess missed the rest
                        guess = None
                        self._adapter.speculations_dropped += 1
                elif ev.type == VADEventType.END_OF_SPEECH:
                    speech_end = time.time() - ev.silence_duration - ev.inference_duration
                    self._event_ch.send_nowait(
                        stt.SpeechEvent(stt.SpeechEventType.END_OF_SPEECH, speech_end_time=speech_end)
                    )
                    if guess is not None and _quiet_after(ev.frames, guessed_samples):
                        self._adapter.speculations_used += 1
                        pending = guess
                    else:
                        if guess is not None:  # soft speech the VAD took for silence came after it
                            stale.add(guess)
                            self._adapter.speculations_dropped += 1
                        pending = self._start(list(ev.frames))
                    speech, guess = None, None
                    try:
                        result = await pending
                    except APIError as exc:
                        # one utterance lost, loudly; the call goes on (a dead STT stream would leave
                        # the caller talking to an agent that never answers again)
                        log.error("an utterance could not be transcribed", extra={"error": str(exc)[:300]})
                        continue
                    if result.alternatives and result.alternatives[0].text:
                        self._event_ch.send_nowait(
                            stt.SpeechEvent(
                                type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                                alternatives=result.alternatives,
                                speech_end_time=result.speech_end_time or speech_end,
                            )
                        )
            for task in [t for t in (guess, *stale) if t is not None]:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        tasks = [asyncio.create_task(forward_input()), asyncio.create_task(recognize())]
        try:
            await asyncio.gather(*tasks)
        finally:
            await utils.aio.cancel_and_wait(*tasks)
            await vad_stream.aclose()
