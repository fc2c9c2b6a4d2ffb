from __future__ import annotations

import pytest
from pydantic import ValidationError

from phoneagent.config import Settings, get_settings
from phoneagent.errors import ConfigError


def test_defaults_are_loopback_and_narrow_port_ranges() -> None:
    s = Settings()
    assert s.bind_host == "127.0.0.1"
    assert s.livekit_url == "ws://127.0.0.1:7880"
    # narrow, but wide enough for a call's port plus its 30 s of draining at a few calls a second
    assert 300 <= s.sip_rtp_end - s.sip_rtp_start < 1000
    assert s.livekit_rtc_udp_end - s.livekit_rtc_udp_start < 200


def test_public_bind_address_is_refused() -> None:
    with pytest.raises(ValidationError, match="loopback only"):
        Settings(bind_host="0.0.0.0")


def test_reversed_port_range_is_refused() -> None:
    with pytest.raises(ValidationError, match="sip_rtp"):
        Settings(sip_rtp_start=12000, sip_rtp_end=11000)


def test_settings_come_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHONEAGENT_SIP_PORT", "5070")
    monkeypatch.setenv("AGENT_MODE", "hybrid")
    s = Settings()
    assert (s.sip_port, s.agent_mode) == (5070, "hybrid")


def test_bad_environment_gives_config_error_not_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHONEAGENT_REDIS_PORT", "not-a-port")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match="redis_port"):
            get_settings()
    finally:
        get_settings.cache_clear()
