"""An agent profile's own speech providers: which API STT it wants, which API TTS and voice.

A profile may say ``"stt": {"provider": "assemblyai", ...}`` and ``"tts": {"provider": "elevenlabs",
"voice": "<voice id>"}``. Its provider goes first on the API side of the component's chain, ahead of
the operator's (``PHONEAGENT_*_PROVIDER`` and ``PHONEAGENT_*_FALLBACK_PROVIDERS``), which stay behind
it as fallbacks (see :mod:`phoneagent.speech.providers`). A voice without a provider is the voice
of the operator's first API TTS provider.

A profile may choose only what the operator's settings enable: a provider phoneagent has, in a
component whose mode is ``api`` or ``hybrid``, whose key the operator set. Anything else is a
ConfigError naming what is wrong: the control plane answers it with a 422 when the profile is
saved; a worker whose own settings differ uses the operator's providers and says why in its log.

This module imports nothing heavy: the control plane reads profiles with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from phoneagent.config import KEY_VARS, STT_PROVIDERS, TTS_PROVIDERS, Settings
from phoneagent.errors import ConfigError

# what an agent profile's ``tts`` may say, and nothing else
TTS_PROFILE_KEYS = ("provider", "voice")
# voice ids and names as the providers write them (ElevenLabs' ids, Cartesia's UUIDs, Deepgram's
# aura-2-thalia-en, OpenAI's ash)
_VOICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
OPENAI_VOICES = (
    "alloy",
    "ash",
    "ballad",
    "cedar",
    "coral",
    "echo",
    "fable",
    "marin",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
)


@dataclass(frozen=True)
class SpeechChoice:
    """A profile's speech providers; empty strings leave the operator's choice."""

    stt_provider: str = ""
    tts_provider: str = ""
    tts_voice: str = ""


def _enabled(settings: Settings, component: Literal["stt", "tts"], provider: object) -> str:
    known = STT_PROVIDERS if component == "stt" else TTS_PROVIDERS
    if not isinstance(provider, str) or provider not in known:
        raise ConfigError(
            f"{component} provider {provider!r} is not one phoneagent has", hint="one of: " + ", ".join(known)
        )
    mode = settings.stt_effective_mode if component == "stt" else settings.tts_effective_mode
    if mode == "local":
        raise ConfigError(
            f"{component} provider {provider!r}: this server's {component.upper()} mode is local "
            "(it uses no API provider)",
            hint="leave the provider out, or ask the operator for AGENT_MODE=api or hybrid",
        )
    if settings.provider_key(provider) is None:
        raise ConfigError(
            f"{component} provider {provider!r} is not enabled on this server",
            hint=f"the operator has not set {KEY_VARS[provider]}",
        )
    return provider


def stt_provider_of(settings: Settings, stt: Mapping[str, Any] | None) -> str:
    """The API STT a profile's ``stt`` section asks for ('' for the operator's); ConfigError when it
    may not have it. The section's other keys are Whisper's (``WhisperOptions.from_profile``)."""
    provider = (stt or {}).get("provider")
    return "" if provider is None else _enabled(settings, "stt", provider)


def tts_choice_of(settings: Settings, tts: Mapping[str, Any] | None) -> tuple[str, str]:
    """The API TTS provider and voice a profile's ``tts`` section asks for ('' for the operator's);
    ConfigError naming the key when it may not have them."""
    given = dict(tts or {})
    unknown = sorted(set(given) - set(TTS_PROFILE_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown tts setting(s) {', '.join(map(repr, unknown))}",
            hint="allowed: " + ", ".join(TTS_PROFILE_KEYS),
        )
    provider = "" if given.get("provider") is None else _enabled(settings, "tts", given["provider"])
    voice = given.get("voice")
    if voice is None:
        return provider, ""
    if not isinstance(voice, str) or not _VOICE.fullmatch(voice):
        raise ConfigError(
            "tts voice must be a provider's voice id or name",
            hint="1 to 100 letters, digits and . _ : -, e.g. aura-2-thalia-en",
        )
    speaks = provider or (settings.tts_provider if settings.tts_effective_mode != "local" else "")
    if not speaks:
        raise ConfigError(
            "tts voice: this server's TTS mode is local (its voice is the operator's PIPER_VOICE)",
            hint="leave the voice out",
        )
    if speaks == "openai" and voice not in OPENAI_VOICES:
        raise ConfigError(
            f"tts voice {voice!r} is not an OpenAI voice", hint="one of: " + ", ".join(OPENAI_VOICES)
        )
    if speaks == "deepgram" and not voice.startswith("aura"):
        raise ConfigError(
            f"tts voice {voice!r} is not a Deepgram voice",
            hint="Deepgram's voices are its models, e.g. aura-2-thalia-en",
        )
    return provider, voice


def speech_choice(
    settings: Settings, stt: Mapping[str, Any] | None, tts: Mapping[str, Any] | None
) -> SpeechChoice:
    """Both sections' choices at once (ConfigError from the first that cannot be had)."""
    tts_provider, tts_voice = tts_choice_of(settings, tts)
    return SpeechChoice(stt_provider_of(settings, stt), tts_provider, tts_voice)
