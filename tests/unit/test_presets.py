from __future__ import annotations

from dataclasses import dataclass, replace
from typing import get_args

import pytest

from phoneagent.api.schemas import Provider
from phoneagent.telephony.numbers import to_e164
from phoneagent.telephony.presets import PROVIDERS, PresetError, TrunkFields, apply_preset


@dataclass(frozen=True)
class Carrier:
    """One carrier's outbound trunk that its preset accepts, and an address it refuses (None: any)."""

    outbound: TrunkFields
    wrong_address: str | None


CARRIERS = {
    "twilio": Carrier(
        TrunkFields("outbound", "acme.pstn.twilio.com", "udp", None, "u", "p"), "sip.example.com"
    ),
    "telnyx": Carrier(TrunkFields("outbound", "", "udp", None, "u", "p"), None),
    "plivo": Carrier(
        TrunkFields("outbound", "21784177241578.zt.plivo.com", "udp", None, "u", "p"), "acme.plivo.com"
    ),
    "wavix": Carrier(TrunkFields("outbound", "us.wavix.net", "udp", None, "12345", "p"), "sip.wavix.com"),
}
carriers = pytest.mark.parametrize("provider", sorted(CARRIERS))


def test_every_provider_the_api_accepts_has_a_preset() -> None:
    assert set(get_args(Provider)) == set(PROVIDERS) == {"generic", *CARRIERS}


@carriers
def test_an_inbound_trunk_is_never_left_open_to_everyone(provider: str) -> None:
    """No credentials and no addresses: the preset fills in the carrier's own, or asks for them."""
    try:
        f = apply_preset(provider, TrunkFields(direction="inbound"))
    except PresetError as err:
        assert err.field == "allowed_addresses" and "copy" in err.reason
    else:
        assert f.allowed_addresses


@carriers
def test_addresses_the_user_gives_are_kept(provider: str) -> None:
    given = TrunkFields(direction="inbound", allowed_addresses=["198.51.100.7/32"])
    assert apply_preset(provider, given).allowed_addresses == ["198.51.100.7/32"]


@carriers
def test_the_carriers_own_outbound_trunk_is_accepted_with_its_transport(provider: str) -> None:
    for transport in ("udp", "tcp"):
        f = apply_preset(provider, replace(CARRIERS[provider].outbound, transport=transport))
        assert f.address and f.transport == transport and (f.auth_username, f.auth_password) != ("", "")


@carriers
def test_an_outbound_trunk_without_a_usable_address_is_refused_by_name(provider: str) -> None:
    good = CARRIERS[provider].outbound
    wrong = CARRIERS[provider].wrong_address
    for address in ("", wrong):
        if address is None:
            continue
        try:
            f = apply_preset(provider, replace(good, address=address))
        except PresetError as err:
            assert err.field == "address"
        else:
            assert f.address, "a preset may fill in the address, never leave it empty"
    if wrong is None:  # this carrier has regional addresses phoneagent does not list
        assert apply_preset(provider, replace(good, address="sip.telnyx.eu")).address == "sip.telnyx.eu"


@carriers
def test_half_a_login_is_refused_by_name(provider: str) -> None:
    good = CARRIERS[provider].outbound
    for half in (replace(good, auth_password=""), replace(good, auth_username="")):
        with pytest.raises(PresetError) as err:
            apply_preset(provider, half)
        assert err.value.field in ("auth_username", "auth_password")


def test_generic_trunks_pass_through_untouched() -> None:
    f = TrunkFields(direction="outbound", address="pbx.example.com", transport="tls")
    assert apply_preset("generic", replace(f)) == f


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


def test_plivo_outbound_takes_credentials_or_an_ip_acl() -> None:
    acl = apply_preset("plivo", TrunkFields(direction="outbound", address="21784177241578.zt.plivo.com"))
    assert (acl.auth_username, acl.auth_password) == ("", "")
    with pytest.raises(PresetError, match="zt.plivo.com"):
        apply_preset("plivo", TrunkFields(direction="outbound", address="acme.pstn.twilio.com"))
    with pytest.raises(PresetError, match="Zentrunk"):
        apply_preset("plivo", TrunkFields(direction="inbound", auth_username="u", auth_password="p"))


def test_wavix_outbound_logs_in_with_the_sip_trunk_id() -> None:
    with pytest.raises(PresetError, match="SIP trunk ID") as err:
        apply_preset(
            "wavix",
            TrunkFields(direction="outbound", address="us.wavix.net", auth_username="me", auth_password="p"),
        )
    assert err.value.field == "auth_username"
    regional = apply_preset("wavix", TrunkFields("outbound", "gb.wavix.net:5060", "tcp", None, "12345", "p"))
    assert regional.address == "gb.wavix.net:5060"
    with pytest.raises(PresetError, match="Trunks page"):
        apply_preset("wavix", TrunkFields(direction="inbound"))


@pytest.mark.parametrize(
    ("raw", "e164"), [("+1 (415) 555-0100", "+14155550100"), ("+44 20 7946 0958", "+442079460958")]
)
def test_numbers_normalize_to_e164(raw: str, e164: str) -> None:
    assert to_e164(raw) == e164


@pytest.mark.parametrize("raw", ["", "12", "+1 999", "hello", "+999 123"])
def test_bad_numbers_are_refused_with_a_reason(raw: str) -> None:
    with pytest.raises(ValueError, match="phone number"):
        to_e164(raw)
