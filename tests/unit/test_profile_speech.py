"""An agent profile's own STT provider, TTS provider and voice: first in the chains, the operator's
providers behind them as fallbacks; a choice the operator's settings do not enable is a 422 naming
the section when the profile is saved (the control plane on SQLite, no LiveKit needed to save one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from phoneagent.api.app import create_app
from phoneagent.config import Settings
from phoneagent.db.base import Base
from phoneagent.db.engine import make_engine
from phoneagent.errors import ConfigError
from phoneagent.provisioning.keys import create_key
from phoneagent.speech.profile_speech import SpeechChoice, speech_choice
from phoneagent.speech.providers import DEFAULT_VOICES, check, stt_chain, tts_chain
from phoneagent.worker.main import speech_for
from phoneagent.worker.profiles import Profile

MakeSettings = Callable[..., Settings]
KEYS = {
    "DEEPGRAM_API_KEY": "dg",
    "ELEVENLABS_API_KEY": "el",
    "CARTESIA_API_KEY": "ca",
    "ASSEMBLYAI_API_KEY": "aai",
}


def _api(make_settings: MakeSettings, **more: str) -> Settings:
    return make_settings(AGENT_MODE="api", **KEYS, **more)


def test_the_operators_fallback_providers_follow_the_first_in_order(make_settings: MakeSettings) -> None:
    s = _api(
        make_settings,
        PHONEAGENT_STT_PROVIDER="assemblyai",
        PHONEAGENT_STT_FALLBACK_PROVIDERS="deepgram",
        PHONEAGENT_TTS_FALLBACK_PROVIDERS="elevenlabs, cartesia",
    )
    check(s)
    assert [str(c) for c in stt_chain(s)] == ["assemblyai universal-3-6-pro", "deepgram nova-3"]
    assert [c.provider for c in tts_chain(s)] == ["deepgram", "elevenlabs", "cartesia"]
    assert tts_chain(s)[1].voice == DEFAULT_VOICES["elevenlabs"]
    hybrid = make_settings(AGENT_MODE="hybrid", DEEPGRAM_API_KEY="dg", GROQ_API_KEY="g")
    hybrid = hybrid.model_copy(update={"stt_fallback_providers": ["groq"]})
    assert [c.provider for c in stt_chain(hybrid)] == ["deepgram", "groq", "local"]


def test_a_fallback_provider_without_its_key_is_refused_at_worker_start(make_settings: MakeSettings) -> None:
    s = make_settings(AGENT_MODE="api", DEEPGRAM_API_KEY="dg", PHONEAGENT_TTS_FALLBACK_PROVIDERS="cartesia")
    with pytest.raises(ConfigError, match="AGENT_MODE=api uses cartesia for TTS and needs CARTESIA_API_KEY"):
        check(s)


def test_a_profiles_providers_go_first_and_the_operators_stay_behind_them(
    make_settings: MakeSettings,
) -> None:
    s = _api(make_settings, PHONEAGENT_TTS_FALLBACK_PROVIDERS="cartesia")
    choice = speech_choice(
        s, {"provider": "assemblyai"}, {"provider": "elevenlabs", "voice": "Xb7hH8MSUJpSbSDYk0k2"}
    )
    assert choice == SpeechChoice("assemblyai", "elevenlabs", "Xb7hH8MSUJpSbSDYk0k2")
    assert [c.provider for c in stt_chain(s, choice)] == ["assemblyai", "deepgram"]
    chain = tts_chain(s, choice)
    assert [(c.provider, c.voice) for c in chain] == [
        ("elevenlabs", "Xb7hH8MSUJpSbSDYk0k2"),
        ("deepgram", ""),
        ("cartesia", DEFAULT_VOICES["cartesia"]),
    ]
    # a voice alone is the operator's first provider's: a Deepgram voice is its model
    alone = speech_choice(s, None, {"voice": "aura-2-thalia-en"})
    assert (tts_chain(s, alone)[0].provider, tts_chain(s, alone)[0].model) == ("deepgram", "aura-2-thalia-en")
    assert speech_choice(s, {"vocabulary": ["Acme"]}, {}) == SpeechChoice()


@pytest.mark.parametrize(
    ("stt", "tts", "says"),
    [
        ({"provider": "whisperx"}, None, "stt provider 'whisperx' is not one phoneagent has"),
        ({"provider": "groq"}, None, "stt provider 'groq' is not enabled on this server"),
        (None, {"provider": "elevenlabs", "speed": 1.2}, "unknown tts setting(s) 'speed'"),
        (None, {"provider": "assemblyai"}, "tts provider 'assemblyai' is not one phoneagent has"),
        (None, {"provider": "cartesia", "voice": "../../etc"}, "tts voice must be a provider's voice id"),
        (None, {"voice": "thalia"}, "tts voice 'thalia' is not a Deepgram voice"),
    ],
)
def test_a_choice_the_operator_does_not_enable_is_refused_naming_it(
    make_settings: MakeSettings, stt: dict[str, Any] | None, tts: dict[str, Any] | None, says: str
) -> None:
    with pytest.raises(ConfigError) as err:
        speech_choice(_api(make_settings), stt, tts)
    assert says in err.value.message


def test_a_local_mode_takes_no_provider_from_a_profile(make_settings: MakeSettings) -> None:
    s = make_settings(AGENT_MODE="local", **KEYS)
    with pytest.raises(ConfigError, match="this server's TTS mode is local"):
        speech_choice(s, None, {"provider": "elevenlabs"})
    with pytest.raises(ConfigError, match="its voice is the operator's PIPER_VOICE"):
        speech_choice(s, None, {"voice": "whatever"})


def test_a_worker_whose_settings_cannot_honour_a_profile_uses_the_operators_providers(
    make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    # saved against the control plane's settings; this worker has no ElevenLabs key
    s = make_settings(AGENT_MODE="api", DEEPGRAM_API_KEY="dg", ASSEMBLYAI_API_KEY="aai")
    profile = Profile(
        id="agt_1", greeting="hi", stt={"provider": "assemblyai"}, tts={"provider": "elevenlabs"}
    )
    assert speech_for(s, profile) == SpeechChoice(stt_provider="assemblyai")
    assert "tts provider unusable here" in caplog.text


@pytest.fixture
def control_plane(tmp_path: Path, make_settings: MakeSettings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    db = f"sqlite:///{tmp_path / 'phoneagent.db'}"
    settings = make_settings(
        AGENT_MODE="hybrid",
        DEEPGRAM_API_KEY="dg",
        CARTESIA_API_KEY="ca",
        PHONEAGENT_STATE_DIR=str(tmp_path),
        PHONEAGENT_DATABASE_URL=db,
        PHONEAGENT_BACKGROUND="false",
    )
    engine = make_engine(db)
    Base.metadata.create_all(engine)
    engine.dispose()
    app = create_app(settings)
    with TestClient(app) as client:
        with app.state.sessions() as session:
            token, _ = create_key(session, tenant_name="acme")
        yield client, {"Authorization": f"Bearer {token}"}
    app.state.engine.dispose()


@pytest.mark.parametrize(
    ("section", "value", "says"),
    [
        ("tts", {"provider": "elevenlabs"}, "the operator has not set ELEVENLABS_API_KEY"),
        ("tts", {"provider": "cartesia", "voice": 7}, "tts voice must be"),
        ("tts", {"voice": "x", "model": "sonic-3"}, "unknown tts setting(s) 'model'"),
        ("stt", {"provider": "assemblyai"}, "the operator has not set ASSEMBLYAI_API_KEY"),
        ("stt", {"provider": ["deepgram"]}, "is not one phoneagent has"),
    ],
)
def test_a_profile_asking_for_a_provider_it_may_not_have_is_a_422_when_saved(
    control_plane: tuple[TestClient, dict[str, str]], section: str, value: dict[str, Any], says: str
) -> None:
    client, h = control_plane
    r = client.post("/agents", headers=h, json={"name": "a", section: value})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == section and says in r.text
    made = client.post("/agents", headers=h, json={"name": "b"})
    assert made.status_code == 201, made.text
    r = client.patch(f"/agents/{made.json()['id']}", headers=h, json={section: value})
    assert r.status_code == 422 and says in r.text, r.text


def test_a_profile_with_an_enabled_provider_and_voice_is_saved(
    control_plane: tuple[TestClient, dict[str, str]],
) -> None:
    client, h = control_plane
    body = {
        "name": "a",
        "stt": {"provider": "deepgram"},
        "tts": {"provider": "cartesia", "voice": "a0e99841-438c"},
    }
    r = client.post("/agents", headers=h, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["tts"] == {"provider": "cartesia", "voice": "a0e99841-438c"}
