"""STT options from an agent profile's `stt` settings: validated, unknown keys refused."""

from __future__ import annotations

from typing import Any

import pytest

from phoneagent.errors import ConfigError
from phoneagent.speech.whisper_stt import WhisperOptions


def test_profile_settings_become_options() -> None:
    opts = WhisperOptions.from_profile({"model": "base", "beam_size": 1, "vocabulary": ["Acme", "Tuesday"]})
    assert opts.model == "base" and opts.beam_size == 1
    assert opts.initial_prompt == "Acme, Tuesday."


def test_no_settings_give_the_measured_defaults() -> None:
    assert WhisperOptions.from_profile(None) == WhisperOptions()
    assert WhisperOptions.from_profile({}) == WhisperOptions()


def test_vocabulary_is_tidied_and_deduplicated() -> None:
    opts = WhisperOptions.from_profile({"vocabulary": ["  Main   Street ", "Acme", "Acme"]})
    assert opts.initial_prompt == "Main Street, Acme."
    assert WhisperOptions.from_profile({"vocabulary": []}).initial_prompt is None
    # the section's API provider is the profile's choice of STT (phoneagent.speech.profile_speech)
    assert WhisperOptions.from_profile({"provider": "deepgram", "model": "base"}).model == "base"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"modle": "base"}, "unknown stt setting"),
        ({"model": "large-v3"}, "not available"),
        ({"model": "tiny.en", "language": "de"}, "English only"),
        ({"model": "base", "language": "german"}, "not a language code"),
        ({"beam_size": 0}, "beam_size"),
        ({"beam_size": 11}, "beam_size"),
        ({"beam_size": 2.5}, "beam_size"),
        ({"beam_size": True}, "beam_size"),
        ({"no_speech_threshold": 1.5}, "no_speech_threshold"),
        ({"no_speech_threshold": "high"}, "no_speech_threshold"),
        ({"vocabulary": "Acme"}, "list"),
        ({"vocabulary": ["Acme", 7]}, "list"),
        ({"vocabulary": [""]}, "1 to 60"),
        ({"vocabulary": ["x" * 61]}, "1 to 60"),
        ({"vocabulary": [f"w{i}" for i in range(41)]}, "at most 40"),
        ({"vocabulary": ["y" * 55] * 1 + [f"{'z' * 50}{i}" for i in range(8)]}, "characters long"),
    ],
)
def test_bad_settings_are_refused_with_the_key_named(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WhisperOptions.from_profile(settings)


def test_multilingual_model_takes_another_language() -> None:
    opts = WhisperOptions.from_profile({"model": "base", "language": "DE", "no_speech_threshold": 0.5})
    assert opts.language == "de" and opts.no_speech_threshold == 0.5
