from __future__ import annotations

import pytest

from phoneagent.telephony.numbers import to_e164
from phoneagent.telephony.presets import PresetError, TrunkFields, apply_preset


def test_twilio_inbound_admits_only_twilio_signalling_and_refuses_credentials() -> None:
    f = apply_preset("twilio", TrunkFields(direction="inbound"))
    assert f.allowed_addresses and "54.172.60.0/30" in f.allowed_addresses
    with pytest.raises(PresetError) as err:
        apply_preset("twilio", TrunkFields(direction="inbound", auth_username="u", auth_password="p"))
    assert err.value.field == "auth_username"


def test_twilio_outbound_needs_termination_uri_and_credentials() -> None:
    with pytest.raises(PresetError, match="termination URI"):
        apply_preset("twilio", TrunkFields(direction="outbound", auth_username="u", auth_password="p"))
    with pytest.raises(PresetError, match="credential list"):
        apply_preset("twilio", TrunkFields(direction="outbound", address="acme.pstn.twilio.com"))
    ok = apply_preset(
        "twilio",
        TrunkFields(
            direction="outbound", address="acme.pstn.ie1.twilio.com", auth_username="u", auth_password="p"
        ),
    )
    assert ok.transport == "udp"


def test_telnyx_ip_auth_or_credentials() -> None:
    assert "64.16.250.10/32" in (
        apply_preset("telnyx", TrunkFields(direction="inbound")).allowed_addresses or []
    )
    creds = apply_preset("telnyx", TrunkFields(direction="inbound", auth_username="u", auth_password="p"))
    assert not creds.allowed_addresses
    out = apply_preset("telnyx", TrunkFields(direction="outbound", auth_username="u", auth_password="p"))
    assert out.address == "sip.telnyx.com"


@pytest.mark.parametrize(
    ("raw", "e164"), [("+1 (415) 555-0100", "+14155550100"), ("+44 20 7946 0958", "+442079460958")]
)
def test_numbers_normalize_to_e164(raw: str, e164: str) -> None:
    assert to_e164(raw) == e164


@pytest.mark.parametrize("raw", ["", "12", "+1 999", "hello", "+999 123"])
def test_bad_numbers_are_refused_with_a_reason(raw: str) -> None:
    with pytest.raises(ValueError, match="phone number"):
        to_e164(raw)
