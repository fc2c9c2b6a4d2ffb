"""The provider plugins, made from a :class:`ProviderChoice`: the one place that knows their constructors.

Keys are passed explicitly (the plugins would otherwise read the environment themselves), and only
to the endpoint they were configured with. Every API speaks to the phone at its narrowest rate where
the provider allows it: Deepgram, AssemblyAI, ElevenLabs and Cartesia listen or speak at 8 kHz;
OpenAI's fixed 24 kHz is resampled once by the TTS FallbackAdapter (providers.build_tts); OpenAI and
Groq transcribe the session's 16 kHz utterance as it is (each comment below says why).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from livekit.agents import llm, stt, tts
from livekit.agents.types import NOT_GIVEN

from phoneagent.config import Settings
from phoneagent.errors import ConfigError
from phoneagent.speech.audio import PHONE_RATE
from phoneagent.speech.providers import ProviderChoice

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from piper import PiperVoice

    from phoneagent.speech.piper_tts import SpeechCache, Synthesizer
    from phoneagent.speech.whisper_stt import Transcriber, WhisperOptions

# local OpenAI-compatible servers take any key; the OpenAI SDK refuses to send none
NO_KEY = "no-key"
LANGUAGE = "en"


PROVIDER_PLUGINS = {
    "deepgram": "deepgram",
    "openai": "openai",
    "assemblyai": "assemblyai",
    "groq": "groq",
    "elevenlabs": "elevenlabs",
    "cartesia": "cartesia",
    "openai-compatible": "openai",
    "local-llm": "openai",
    "anthropic": "anthropic",
}


def _plugin(name: str) -> Any:
    """A provider's livekit plugin, imported when first needed (local mode never imports one; the
    worker's prewarm imports the ones its settings name, so no call pays the import)."""
    return importlib.import_module(f"livekit.plugins.{name}")


def preload(settings: Settings) -> list[str]:
    """Import the plugins the settings can use (the STT and TTS chains, the speech providers and LLM
    brains a profile may pick in this mode); returns their names."""
    from phoneagent.config import STT_PROVIDERS, TTS_PROVIDERS
    from phoneagent.speech.providers import stt_chain, tts_chain

    wanted = {
        PROVIDER_PLUGINS[c.provider]
        for c in [*stt_chain(settings), *tts_chain(settings)]
        if c.provider in PROVIDER_PLUGINS
    }
    for mode, providers in (
        (settings.stt_effective_mode, STT_PROVIDERS),
        (settings.tts_effective_mode, TTS_PROVIDERS),
    ):
        if mode != "local":  # a profile may pick any provider whose key is set
            wanted |= {PROVIDER_PLUGINS[p] for p in providers if settings.provider_key(p) is not None}
    if settings.agent_mode != "local" or settings.local_llm_url:
        wanted.add("openai")
    if settings.agent_mode != "local" and settings.anthropic_api_key:
        wanted.add("anthropic")
    for name in sorted(wanted):
        _plugin(name)
    return sorted(wanted)


def _key(settings: Settings, provider: str) -> str:
    secret = settings.provider_key(provider)
    if secret is None:  # providers.check refuses this at start; here it is a wiring error
        raise ValueError(f"no API key for {provider}")
    return secret.get_secret_value()


def make_stt(
    settings: Settings,
    choice: ProviderChoice,
    *,
    whisper_model: WhisperModel | None,
    whisper_options: WhisperOptions | None = None,
    transcriber: Transcriber | None = None,
    whisper_prompt: Callable[[], str | None] | None = None,
) -> stt.STT[Any]:
    made: stt.STT[Any]
    if choice.provider == "local":
        from phoneagent.speech.whisper_stt import WhisperSTT

        if whisper_model is None and transcriber is None:
            raise ValueError("the local STT needs the shared models or the Whisper model prewarm loads")
        made = WhisperSTT(
            model=whisper_model, options=whisper_options, transcriber=transcriber, prompt=whisper_prompt
        )
    elif choice.provider == "deepgram":
        made = _plugin("deepgram").STT(
            model=choice.model,
            language="en-US",
            api_key=_key(settings, "deepgram"),
            base_url=f"{choice.base_url}/listen",
            # the caller's audio carries nothing above 4 kHz: send it at the phone's own rate
            sample_rate=PHONE_RATE,
        )
    elif choice.provider == "assemblyai":
        made = _plugin("assemblyai").STT(
            model=choice.model,
            api_key=_key(settings, "assemblyai"),
            base_url=_websocket_url(choice.base_url),
            # its streaming API takes 8 kHz: the phone's own rate, half the room's 16 kHz bytes.
            # Linear PCM, not its pcm_mulaw: the plugin sends the frames' 16-bit samples as they are
            # (it encodes no μ-law), so the encoding it names must be theirs
            sample_rate=PHONE_RATE,
            encoding="pcm_s16le",
        )
    elif choice.provider == "groq":
        # the plugin uploads the utterance as WAV at the rate it comes in and has no rate to set: the
        # session's 16 kHz (worker.main.room_options), which is Whisper's own rate, so Groq's Whisper
        # resamples nothing (8 kHz would be smaller, and resampled back to 16 kHz there)
        made = _plugin("groq").STT(
            model=choice.model,
            language=LANGUAGE,
            base_url=choice.base_url,
            api_key=_key(settings, "groq"),
        )
    elif choice.provider in ("openai", "openai-compatible"):
        made = _plugin("openai").STT(
            model=choice.model,
            language=LANGUAGE,
            base_url=choice.base_url,
            api_key=_key(settings, "openai") if choice.provider == "openai" else NO_KEY,
        )
    else:
        raise ValueError(f"no STT provider {choice.provider!r}")
    return made


def make_tts(
    settings: Settings,
    choice: ProviderChoice,
    *,
    piper_voice: PiperVoice | None,
    speech_cache: SpeechCache | None = None,
    synthesizer: Synthesizer | None = None,
) -> tts.TTS[Any]:
    made: tts.TTS[Any]
    if choice.provider == "local":
        from phoneagent.speech.piper_tts import PiperTTS

        if piper_voice is None and synthesizer is None:
            raise ValueError("the local TTS needs the shared models or the Piper voice prewarm loads")
        made = PiperTTS(voice=piper_voice, cache=speech_cache, synthesizer=synthesizer)
    elif choice.provider == "deepgram":
        made = _plugin("deepgram").TTS(
            model=choice.model,
            sample_rate=PHONE_RATE,
            api_key=_key(settings, "deepgram"),
            base_url=f"{choice.base_url}/speak",
        )
    elif choice.provider == "elevenlabs":
        made = _plugin("elevenlabs").TTS(
            voice_id=choice.voice,
            model=choice.model,
            api_key=_key(settings, "elevenlabs"),
            base_url=choice.base_url,
            # 8 kHz linear PCM, the phone's rate: nothing is resampled anywhere. ElevenLabs also offers
            # ulaw_8000, but the plugin decodes only its mp3, opus and pcm formats
            encoding="pcm_8000",
            language=LANGUAGE,
        )
    elif choice.provider == "cartesia":
        made = _plugin("cartesia").TTS(
            model=choice.model,
            voice=choice.voice,
            api_key=_key(settings, "cartesia"),
            base_url=choice.base_url,
            language=LANGUAGE,
            # raw 16-bit PCM at 8 kHz, the narrowest rate Cartesia makes and the phone's own. Its
            # pcm_mulaw would be the phone's bytes, but the plugin reads every answer as 16-bit PCM
            sample_rate=PHONE_RATE,
        )
    elif choice.provider == "openai":
        # raw 24 kHz PCM: nothing to decode
        made = _plugin("openai").TTS(
            model=choice.model,
            voice=choice.voice,
            base_url=choice.base_url,
            api_key=_key(settings, "openai"),
            response_format="pcm",
        )
    elif choice.provider == "openai-compatible":
        # WAV, whose header says the server's own rate (a Piper voice is 22.05 kHz, not OpenAI's 24)
        made = _plugin("openai").TTS(
            model=choice.model,
            voice=choice.voice,
            base_url=choice.base_url,
            api_key=NO_KEY,
            response_format="wav",
        )
    else:
        raise ValueError(f"no TTS provider {choice.provider!r}")
    return made


def _websocket_url(url: str) -> str:
    """A provider's https:// base URL as its websocket (settings hold http(s) URLs only)."""
    return "ws" + url.removeprefix("http") if url.startswith("http") else url


def make_llm(choice: ProviderChoice, *, api_key: str | None, temperature: float | None) -> llm.LLM[Any]:
    """An LLM over the network; ``api_key`` None sends the placeholder (servers that need none)."""
    made: llm.LLM[Any]
    if choice.provider == "anthropic":
        if api_key is None:
            raise ConfigError("the anthropic LLM needs an API key", hint="set ANTHROPIC_API_KEY")
        made = _plugin("anthropic").LLM(
            model=choice.model,
            api_key=api_key,
            base_url=choice.base_url,
            temperature=NOT_GIVEN if temperature is None else temperature,
        )
    elif choice.provider in ("openai", "openai-compatible"):
        made = _plugin("openai").LLM(
            model=choice.model,
            api_key=api_key or NO_KEY,
            base_url=choice.base_url,
            temperature=NOT_GIVEN if temperature is None else temperature,
        )
    else:
        raise ValueError(f"no LLM provider {choice.provider!r}")
    return made
