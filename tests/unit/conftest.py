"""Fixtures for the provider tests: settings from given values only, and the local models loaded once."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from phoneagent.config import Settings

# every variable that chooses or configures a provider: a developer's shell must not leak into tests
PROVIDER_ENV = (
    "AGENT_MODE",
    "DEEPGRAM_API_KEY",
    "DEEPGRAM_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ELEVENLABS_API_KEY",
    "ELEVENLABS_BASE_URL",
    "CARTESIA_API_KEY",
    "CARTESIA_BASE_URL",
    "ASSEMBLYAI_API_KEY",
    "ASSEMBLYAI_BASE_URL",
    "GROQ_API_KEY",
    "GROQ_BASE_URL",
    "WHISPER_LOCAL_URL",
    "WHISPER_LOCAL_MODEL",
    "PIPER_URL",
    "PIPER_VOICE",
    "LOCAL_LLM_URL",
    "LOCAL_LLM_MODEL",
)


@pytest.fixture
def make_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Settings from the values given (by their environment names) and defaults; nothing else."""
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("PHONEAGENT_"):
            monkeypatch.delenv(name)

    def make(**values: Any) -> Settings:
        # PHONEAGENT_X is the field x; the seed scheme's names are the fields' aliases
        fields = {
            k.removeprefix("PHONEAGENT_").lower() if k.startswith("PHONEAGENT_") else k: v
            for k, v in values.items()
        }
        return Settings(_env_file=None, **fields)

    return make


@pytest.fixture(scope="session")
def whisper_model() -> Any:
    from phoneagent.speech.whisper_stt import load_whisper

    return load_whisper("tiny.en")


@pytest.fixture(scope="session")
def piper_voice() -> Any:
    from phoneagent.speech.piper_tts import load_piper_voice

    return load_piper_voice()


@pytest.fixture(scope="session")
def silero_vad() -> Any:
    from livekit.plugins import silero

    return silero.VAD.load()
