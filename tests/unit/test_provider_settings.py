"""AGENT_MODE and the provider settings: what each mode plans, and the combinations refused at
worker start with the variable to set."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from phoneagent.config import Settings, get_settings
from phoneagent.errors import ConfigError
from phoneagent.speech.providers import (
    check,
    describe,
    needs_local_piper,
    needs_local_whisper,
    retries,
    session_conn_options,
    stt_chain,
    tts_chain,
)

MakeSettings = Callable[..., Settings]


def _names(chain: list) -> list[str]:  # type: ignore[type-arg]
    return [c.provider for c in chain]


def test_local_is_the_default_and_needs_no_key(make_settings: MakeSettings) -> None:
    s = make_settings()
    check(s)
    assert (_names(stt_chain(s)), _names(tts_chain(s))) == (["local"], ["local"])
    assert needs_local_whisper(s) and needs_local_piper(s)


def test_hybrid_is_api_first_by_default_and_local_first_on_request(make_settings: MakeSettings) -> None:
    s = make_settings(AGENT_MODE="hybrid", DEEPGRAM_API_KEY="k")
    assert _names(stt_chain(s)) == ["deepgram", "local"] and _names(tts_chain(s)) == ["deepgram", "local"]
    s = make_settings(AGENT_MODE="hybrid", DEEPGRAM_API_KEY="k", PHONEAGENT_FALLBACK_ORDER="local_first")
    assert _names(stt_chain(s)) == ["local", "deepgram"]
    check(s)


def test_a_components_own_mode_overrides_agent_mode(make_settings: MakeSettings) -> None:
    # API speech recognition, local voice: no Piper key needed, no Whisper loaded
    s = make_settings(AGENT_MODE="local", PHONEAGENT_STT_MODE="api", DEEPGRAM_API_KEY="k")
    assert (_names(stt_chain(s)), _names(tts_chain(s))) == (["deepgram"], ["local"])
    assert not needs_local_whisper(s) and needs_local_piper(s)


def test_local_servers_by_url_replace_the_in_process_models(make_settings: MakeSettings) -> None:
    s = make_settings(WHISPER_LOCAL_URL="http://127.0.0.1:8000/v1/", PIPER_URL="http://127.0.0.1:5000/v1")
    stt, tts = stt_chain(s)[0], tts_chain(s)[0]
    assert (stt.provider, stt.model, stt.base_url) == (
        "openai-compatible",
        "whisper-1",
        "http://127.0.0.1:8000/v1",
    )
    assert (tts.provider, tts.voice) == ("openai-compatible", "en_US-joe-medium")
    assert not needs_local_whisper(s) and not needs_local_piper(s)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"AGENT_MODE": "api"}, "AGENT_MODE=api uses deepgram for STT and needs DEEPGRAM_API_KEY"),
        (
            {"AGENT_MODE": "hybrid", "PHONEAGENT_STT_PROVIDER": "openai", "DEEPGRAM_API_KEY": "k"},
            "AGENT_MODE=hybrid uses openai for STT and needs OPENAI_API_KEY",
        ),
        (
            {"PHONEAGENT_TTS_MODE": "api", "PHONEAGENT_TTS_PROVIDER": "openai"},
            "PHONEAGENT_TTS_MODE=api uses openai for TTS and needs OPENAI_API_KEY",
        ),
        ({"AGENT_MODE": "api", "DEEPGRAM_API_KEY": "  "}, "needs DEEPGRAM_API_KEY"),
    ],
)
def test_a_mode_without_the_key_it_needs_names_the_variable(
    make_settings: MakeSettings, env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        check(make_settings(**env))


def test_an_in_process_whisper_model_that_is_not_packaged_points_to_the_server(
    make_settings: MakeSettings,
) -> None:
    with pytest.raises(ConfigError, match="WHISPER_LOCAL_MODEL=large-v3 is not packaged") as err:
        check(make_settings(WHISPER_LOCAL_MODEL="large-v3"))
    assert "WHISPER_LOCAL_URL" in err.value.hint
    check(make_settings(WHISPER_LOCAL_MODEL="large-v3", WHISPER_LOCAL_URL="http://127.0.0.1:8000/v1"))


def test_an_unpackaged_piper_voice_is_refused(make_settings: MakeSettings) -> None:
    with pytest.raises(ConfigError, match="no packaged Piper voice named 'en_US-lessac-medium'"):
        check(make_settings(PIPER_VOICE="en_US-lessac-medium"))


def test_an_openai_voice_with_deepgram_tts_is_refused(make_settings: MakeSettings) -> None:
    with pytest.raises(ConfigError, match="PHONEAGENT_TTS_VOICE applies to OpenAI TTS"):
        check(make_settings(AGENT_MODE="api", DEEPGRAM_API_KEY="k", PHONEAGENT_TTS_VOICE="ash"))


def test_unknown_modes_providers_and_urls_are_refused_when_settings_load(
    monkeypatch: pytest.MonkeyPatch, make_settings: MakeSettings
) -> None:
    for name, value, named in (
        ("AGENT_MODE", "cloud", "AGENT_MODE"),
        ("PHONEAGENT_STT_PROVIDER", "whisper", "stt_provider"),
        ("PHONEAGENT_FALLBACK_ORDER", "random", "fallback_order"),
        ("WHISPER_LOCAL_URL", "localhost:8000", "WHISPER_LOCAL_URL"),
        ("PHONEAGENT_PROVIDER_MAX_RETRY", "9", "provider_max_retry"),
    ):
        monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        try:
            with pytest.raises(ConfigError, match=named):
                get_settings()
        finally:
            monkeypatch.delenv(name)
            get_settings.cache_clear()


def test_keys_never_show_in_settings_or_the_start_line(make_settings: MakeSettings) -> None:
    s = make_settings(AGENT_MODE="hybrid", DEEPGRAM_API_KEY="dg-secret-1", OPENAI_API_KEY="sk-secret-2")
    for value in ("dg-secret-1", "sk-secret-2"):  # the keys' values (a field may be *named* secret)
        assert value not in repr(s)
    line = describe(s)
    assert "secret" not in str(line)
    assert line["stt"] == "deepgram nova-3 then local tiny.en"
    assert line["tts"] == "deepgram aura-2-andromeda-en then local piper voice en_US-joe-medium"
    assert line["fallback_order"] == "api_first"


def test_the_session_adds_no_retries_and_a_lone_provider_retries_once(make_settings: MakeSettings) -> None:
    s = make_settings(PHONEAGENT_PROVIDER_TIMEOUT_S="3", PHONEAGENT_LLM_ATTEMPT_TIMEOUT_S="20")
    opts = session_conn_options(s)
    assert opts.stt_conn_options.max_retry == opts.tts_conn_options.max_retry == 0
    assert opts.llm_conn_options.max_retry == 0
    assert (opts.tts_conn_options.timeout, opts.llm_conn_options.timeout) == (3.0, 20.0)
    assert (retries(s, 2), retries(s, 1)) == (0, 1)
    assert retries(make_settings(PHONEAGENT_PROVIDER_MAX_RETRY="2"), 2) == 2
