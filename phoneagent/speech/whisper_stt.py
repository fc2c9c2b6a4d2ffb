"""Local faster-whisper STT as a livekit-agents STT, tuned for narrowband phone audio.

Not streaming: the session's Silero VAD cuts utterances and each is transcribed whole (livekit-agents
wraps it in a StreamAdapter). The utterance is resampled once to the 16 kHz Whisper wants, with no
band-pass (a 300-3400 Hz band-pass was measured and made WER worse); decoding is beam search (5) at
temperature 0 with the agent profile's vocabulary as the initial prompt. The model is loaded once per
process (prewarm) and inference runs in a thread, never on the event loop.

Whisper pads every input to its 30 s window, so a 2 s utterance costs the encoder as much as 30 s.
:class:`ShortWindowWhisper` hands an utterance that fits in 9.5 s to the encoder in a 10 s window
instead: 6-7x less encoder time (CTranslate2 takes any length up to 3000 frames), and on the speech
benchmark's phone utterances no worse words (BENCHMARKS.md, "Speech"); windows under 10 s were
measured too and make Whisper repeat itself. Longer utterances keep the 30 s window.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from livekit import rtc
from livekit.agents import APIConnectionError, stt
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, APIConnectOptions, NotGivenOr
from livekit.agents.utils import AudioBuffer

from phoneagent.errors import ConfigError, SharedModelsError
from phoneagent.speech.models import WHISPER_MODELS, whisper_model_dir

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger("phoneagent.speech")

WHISPER_RATE = 16000
MAX_LENGTH = 448  # Whisper's tokens per window, prompt included


# the encoder's window for an utterance that fits (frames of 10 ms), and the margin it must leave
SHORT_WINDOW_FRAMES = 1000
SHORT_WINDOW_MARGIN = 50


def short_window(features: np.ndarray) -> np.ndarray:
    """``features`` (mel bins x 3000 frames, zero past the audio, as faster-whisper pads them) cut to
    the short window when the audio ends early enough, else unchanged."""
    frames = features.shape[-1]
    if frames <= SHORT_WINDOW_FRAMES:
        return features
    used = np.flatnonzero(features.reshape(-1, frames).any(axis=0))
    if used.size and used[-1] + 1 > SHORT_WINDOW_FRAMES - SHORT_WINDOW_MARGIN:
        return features
    return features[..., :SHORT_WINDOW_FRAMES]


def load_whisper(
    name: str = "tiny.en",
    *,
    threads: int = 2,
    workers: int = 1,
    cache_dir: Path | None = None,
    short: bool = True,
) -> WhisperModel:
    """The model, ready for :class:`WhisperSTT`; ``workers`` decodes may run at once (CTranslate2
    replicas of ``threads`` threads each, sharing one copy of the weights). ``short``: utterances that
    fit are encoded in the short window (False: always Whisper's 30 s, for comparisons)."""
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise ConfigError("faster-whisper is not installed", hint="uv sync --extra local") from None

    class ShortWindowWhisper(WhisperModel):
        def encode(self, features: np.ndarray) -> Any:
            return super().encode(short_window(features) if short else features)

    found = whisper_model_dir(name, cache_dir=cache_dir)
    model = ShortWindowWhisper(
        str(found.path),
        device="cpu",
        compute_type="int8",
        cpu_threads=threads,
        num_workers=workers,
        local_files_only=True,
    )
    log.info("whisper model loaded", extra={"model": found.name, "path": str(found.path)})
    return model


# what an agent profile's ``stt`` may say, and nothing else (its API ``provider`` is read by
# phoneagent.speech.profile_speech; the rest are the local Whisper's)
PROFILE_KEYS = ("provider", "model", "language", "beam_size", "no_speech_threshold", "vocabulary")
MAX_VOCABULARY = 40
MAX_PROMPT_CHARS = 400  # Whisper keeps about 220 prompt tokens; longer prompts are cut from the front


@dataclass(frozen=True)
class WhisperOptions:
    # Defaults chosen by benchmarks/results/speech-20261125T130256Z.json (8 kHz G.711 sweep, 60 utterances
    # x 4 voices) and speech-paired-20261125T141119Z.json (settings back to back per utterance):
    # - tiny.en: at 8 kHz 27 % WER over all voices vs base's 33 %, at half base's time (p50 0.5 vs 1.0 s);
    #   base is a little better on the neural caller voice only (7.0 vs 8.8 %).
    # - beam 5: WER 27.3 -> 24.8 % (tiny.en), 33.3 -> 28.0 % (base) for +39 ms / +22 ms p50.
    # - no-speech threshold 0.5 (0.6 with the 30 s window: 0.3 gained nothing; 0.9 let base make up
    #   words on 5/5 non-speech clips): in the 10 s window a breath scores 0.52-0.58 where it scored
    #   0.64, speech at most 0.35.
    # - a vocabulary prompt lowered WER (tiny.en 27.3 -> 24.2 %, base 33.3 -> 27.5 %) for +41 / +7 ms:
    #   it comes from the agent profile's vocabulary (from_profile); there is none by default.
    model: str = "tiny.en"
    language: str = "en"
    beam_size: int = 5
    initial_prompt: str | None = None
    no_speech_threshold: float = 0.5

    @classmethod
    def from_profile(cls, stt_settings: Mapping[str, Any] | None) -> WhisperOptions:
        """Options from an agent profile's ``stt`` settings, e.g.
        ``{"model": "base", "beam_size": 1, "vocabulary": ["Acme", "Tuesday"]}``.

        Unknown keys and bad values raise ConfigError naming the key. The vocabulary (names, products,
        streets the callers will say) becomes the initial prompt.
        """
        given = dict(stt_settings or {})
        unknown = sorted(set(given) - set(PROFILE_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown stt setting(s) {', '.join(map(repr, unknown))}",
                hint="allowed: " + ", ".join(PROFILE_KEYS),
            )
        base = cls()
        model = given.get("model", base.model)
        if model not in WHISPER_MODELS:
            raise ConfigError(
                f"stt model {model!r} is not available", hint="one of: " + ", ".join(WHISPER_MODELS)
            )
        language = given.get("language", base.language)
        if not (isinstance(language, str) and language.isalpha() and 2 <= len(language) <= 3):
            raise ConfigError(f"stt language {language!r} is not a language code", hint="e.g. 'en'")
        language = language.lower()
        if model.endswith(".en") and language != "en":
            raise ConfigError(f"stt model {model} understands English only", hint="use model 'base'")
        beam_size = given.get("beam_size", base.beam_size)
        if isinstance(beam_size, bool) or not isinstance(beam_size, int) or not 1 <= beam_size <= 10:
            raise ConfigError(f"stt beam_size {beam_size!r} must be an integer from 1 to 10")
        threshold = given.get("no_speech_threshold", base.no_speech_threshold)
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not 0.0 <= threshold <= 1.0
        ):
            raise ConfigError(f"stt no_speech_threshold {threshold!r} must be a number from 0 to 1")
        return cls(
            model=model,
            language=language,
            beam_size=beam_size,
            initial_prompt=vocabulary_prompt(given.get("vocabulary", [])),
            no_speech_threshold=float(threshold),
        )


def vocabulary_prompt(vocabulary: object) -> str | None:
    """The initial prompt for a list of domain words: ``"Acme, Tuesday."`` (None for no words)."""
    if not isinstance(vocabulary, list) or not all(isinstance(w, str) for w in vocabulary):
        raise ConfigError("stt vocabulary must be a list of words or short phrases")
    words = [" ".join(w.split()) for w in vocabulary]
    if any(not w or len(w) > 60 for w in words):
        raise ConfigError("stt vocabulary entries must be 1 to 60 characters long")
    if len(words) > MAX_VOCABULARY:
        raise ConfigError(f"stt vocabulary has {len(words)} entries; at most {MAX_VOCABULARY}")
    prompt = ", ".join(dict.fromkeys(words)) + "." if words else None
    if prompt and len(prompt) > MAX_PROMPT_CHARS:
        raise ConfigError(f"stt vocabulary is {len(prompt)} characters long; at most {MAX_PROMPT_CHARS}")
    return prompt


def turn_prompt(vocabulary_prompt: str | None, listening_for: list[str]) -> str | None:
    """Whisper's initial prompt for the next utterance: the words the brain listens for now (its
    intents' keywords, yes and no while it asks for a confirmation), after the profile's vocabulary
    prompt, within Whisper's prompt budget (the profile's words are kept first)."""
    words = [w for w in dict.fromkeys(listening_for) if w]
    prompt = vocabulary_prompt or ""
    for w in words:
        added = f"{prompt[:-1]}, {w}." if prompt else f"{w.capitalize()}."
        if len(added) > MAX_PROMPT_CHARS:
            break
        prompt = added
    return prompt or None


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


# a transcript Whisper thinks holds no speech (and is not confident of) is dropped, as faster-whisper does
LOG_PROB_THRESHOLD = -1.0
_CLAUSE = re.compile(r"[^.?!,]+[.?!,]*")


def drop_repeats(text: str) -> str:
    """``text`` without a clause said again right after itself: Whisper's decoder sometimes loops
    ("When do you close? When do you close?"), more so with a prompt in the short window."""
    out: list[str] = []
    for clause in _CLAUSE.findall(text):
        key = re.sub(r"[^a-z0-9 ]", "", clause.lower()).split()
        # a short word said twice is speech ("no, no"); a clause of three words and more, a loop
        if out and len(key) >= 3 and key == re.sub(r"[^a-z0-9 ]", "", out[-1].lower()).split():
            continue
        out.append(clause)
    return "".join(out).strip()


def hypotheses_blocking(model: WhisperModel, audio: np.ndarray, options: WhisperOptions) -> list[str]:
    """What 16 kHz mono float32 ``audio`` says: the beam's finished transcripts, most likely first, each
    said once (blocking: run it in a thread). Empty when Whisper hears no speech.

    One window, as faster-whisper decodes an utterance (its prompt layout, suppressed tokens and
    no-speech rule), at temperature 0, keeping the beam's other hypotheses: the call's brain may
    understand the second best where the best is a mishearing."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    tokenizer = Tokenizer(
        model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=options.language
    )
    features = model.feature_extractor(audio)[:, :-1]  # faster-whisper drops the last frame too
    encoded = model.encode(pad_or_trim(features))
    prompt: list[int] = []
    if options.initial_prompt:
        prompt = [
            tokenizer.sot_prev,
            *tokenizer.encode(" " + options.initial_prompt.strip())[-(MAX_LENGTH // 2 - 1) :],
        ]
    prompt += [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    # a stuck decoder stops near what the audio can hold (about 3 tokens a second of speech)
    new_tokens = min(int(8 * audio.size / WHISPER_RATE) + 8, MAX_LENGTH - len(prompt))
    result = model.model.generate(
        encoded,
        [prompt],
        beam_size=options.beam_size,
        num_hypotheses=options.beam_size,
        max_length=len(prompt) + new_tokens,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
    )[0]
    out: list[str] = []
    for tokens, score in zip(result.sequences_ids, result.scores, strict=True):
        avg_logprob = score * len(tokens) / (len(tokens) + 1)
        if result.no_speech_prob > options.no_speech_threshold and avg_logprob < LOG_PROB_THRESHOLD:
            continue  # no speech
        text = drop_repeats(tokenizer.decode([t for t in tokens if t < tokenizer.eot]).strip())
        if text and text not in out:
            out.append(text)
    return out


def transcribe_blocking(model: WhisperModel, audio: np.ndarray, options: WhisperOptions) -> str:
    """The most likely words in ``audio`` (see :func:`hypotheses_blocking`)."""
    found = hypotheses_blocking(model, audio, options)
    return found[0] if found else ""


class Transcriber(Protocol):
    """Where the words are made: a model in this process, or the worker's shared models."""

    async def transcribe(self, audio: np.ndarray, options: WhisperOptions) -> list[str]:
        """The likely transcripts of ``audio``, most likely first (none: no speech)."""
        ...


class InProcessWhisper:
    def __init__(self, model: WhisperModel) -> None:
        self.model = model

    async def transcribe(self, audio: np.ndarray, options: WhisperOptions) -> list[str]:
        return await asyncio.to_thread(hypotheses_blocking, self.model, audio, options)


class WhisperSTT(stt.STT[Any]):
    """``model`` (loaded in this process) or ``transcriber`` (e.g. the worker's shared models)."""

    def __init__(
        self,
        *,
        model: WhisperModel | None = None,
        options: WhisperOptions | None = None,
        transcriber: Transcriber | None = None,
        prompt: Callable[[], str | None] | None = None,
    ) -> None:
        """``prompt``, asked before each utterance, replaces the options' initial prompt (e.g. the
        words the call's brain listens for at that moment, see :func:`turn_prompt`)."""
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._prompt = prompt
        if transcriber is None:
            if model is None:
                raise ValueError("WhisperSTT needs a model or a transcriber")
            transcriber = InProcessWhisper(model)
        self._transcriber = transcriber
        self._opts = options or WhisperOptions()

    @property
    def model(self) -> str:
        return "faster-whisper"

    @property
    def provider(self) -> str:
        return "local"

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> str:
        """Blocking, with the model in this process: the words in 16 kHz mono float32 ``audio``."""
        if not isinstance(self._transcriber, InProcessWhisper):
            raise TypeError("blocking transcription needs the model in this process")
        opts = dataclasses.replace(self._opts, language=language or self._opts.language)
        return transcribe_blocking(self._transcriber.model, audio, opts)

    async def _recognize_impl(
        self, buffer: AudioBuffer, *, language: NotGivenOr[str] = NOT_GIVEN, conn_options: APIConnectOptions
    ) -> stt.SpeechEvent:
        frame = rtc.combine_audio_frames(buffer)
        lang = language if isinstance(language, str) else self._opts.language
        audio = to_whisper_input(frame)
        opts = dataclasses.replace(self._opts, language=lang)
        if self._prompt is not None:
            opts = dataclasses.replace(opts, initial_prompt=self._prompt())
        try:
            texts = await self._transcriber.transcribe(audio, opts) if audio.size else []
        except SharedModelsError as exc:
            raise APIConnectionError(f"local Whisper: {exc.message}") from None
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=uuid.uuid4().hex[:12],
            # the beam's other transcripts after the best: the agent may understand one of them
            alternatives=[stt.SpeechData(language=LanguageCode(lang), text=t) for t in texts or [""]],
        )
