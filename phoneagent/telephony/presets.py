"""Provider presets: what Twilio, Telnyx, Plivo and Wavix need on a LiveKit trunk, filled in and checked.

Sources: Twilio Elastic SIP Trunking (termination URI `<name>.pstn.twilio.com`, origination from
Twilio's signalling ranges), Telnyx SIP connections (credentials or IP authentication, outbound
proxy `sip.telnyx.com`), Plivo Zentrunk (termination domain `<trunk id>.zt.plivo.com`, credentials
or an IP access control list) and Wavix SIP trunks (regional gateway `<region>.wavix.net`, digest
login with the SIP trunk ID). Where a carrier publishes its addresses somewhere phoneagent cannot
keep up with (Plivo, Wavix), the inbound preset asks for them instead of guessing. See sip/*.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Twilio's published SIP signalling ranges (origination: Twilio -> your SIP endpoint).
TWILIO_SIGNALING_CIDRS = (
    "54.172.60.0/30",
    "54.244.51.0/30",
    "54.171.127.192/30",
    "35.156.191.128/30",
    "54.65.63.192/30",
    "54.169.127.128/30",
    "54.252.254.64/30",
    "177.71.206.192/30",
)
# Telnyx's published SIP signalling addresses (IP authentication): US, Canada, Europe, Australia, Asia.
TELNYX_SIGNALING_CIDRS = (
    "192.76.120.10/32",
    "64.16.250.10/32",
    "192.76.120.31/32",
    "64.16.250.13/32",
    "185.246.41.140/32",
    "185.246.41.141/32",
    "103.115.244.145/32",
    "103.115.244.146/32",
    "103.115.244.158/32",
    "103.115.244.159/32",
)

_TWILIO_TERMINATION = re.compile(r"^[a-z0-9][a-z0-9-]*\.pstn(\.[a-z0-9-]+)?\.twilio\.com$")
_PLIVO_TERMINATION = re.compile(r"^[a-z0-9]+\.zt\.plivo\.com(:\d{1,5})?$")
_WAVIX_GATEWAY = re.compile(r"^[a-z0-9][a-z0-9-]*\.wavix\.net(:\d{1,5})?$")

PROVIDERS = ("generic", "twilio", "telnyx", "plivo", "wavix")


class PresetError(ValueError):
    """A field the provider needs is missing or wrong; ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass
class TrunkFields:
    direction: str  # inbound | outbound
    address: str = ""
    transport: str = "udp"
    allowed_addresses: list[str] | None = None
    auth_username: str = ""
    auth_password: str = ""


def apply_preset(provider: str, f: TrunkFields) -> TrunkFields:
    """``f`` with what ``provider`` needs filled in; PresetError names the first field it cannot use."""
    preset = _PRESETS.get(provider)
    return preset(f) if preset else f


def _twilio(f: TrunkFields) -> TrunkFields:
    if f.direction == "outbound":
        if not f.address:
            raise PresetError(
                "address", "Twilio needs your trunk's termination URI, e.g. mytrunk.pstn.twilio.com"
            )
        if not _TWILIO_TERMINATION.match(f.address):
            raise PresetError("address", "a Twilio termination URI looks like <name>.pstn.twilio.com")
        if not (f.auth_username and f.auth_password):
            raise PresetError(
                "auth_username", "Twilio termination needs the credential list's username and password"
            )
        f.transport = f.transport or "udp"
    else:
        if f.auth_username or f.auth_password:
            raise PresetError(
                "auth_username",
                "Twilio Elastic SIP Trunking sends no credentials on inbound "
                "calls: leave them empty, the trunk admits Twilio's signalling addresses",
            )
        # origination: accept INVITEs only from Twilio's signalling ranges unless the user narrowed them
        f.allowed_addresses = f.allowed_addresses or list(TWILIO_SIGNALING_CIDRS)
    return f


def _telnyx(f: TrunkFields) -> TrunkFields:
    if f.direction == "outbound":
        f.address = f.address or "sip.telnyx.com"
        if not (f.auth_username and f.auth_password):
            raise PresetError(
                "auth_username", "Telnyx outbound calls need the SIP connection's username and password"
            )
    elif not (f.auth_username and f.auth_password):
        # IP authentication: only Telnyx's signalling addresses
        f.allowed_addresses = f.allowed_addresses or list(TELNYX_SIGNALING_CIDRS)
    return f


def _plivo(f: TrunkFields) -> TrunkFields:
    if f.direction == "outbound":
        if not f.address:
            raise PresetError(
                "address",
                "Plivo needs the outbound Zentrunk trunk's domain, e.g. 21784177241578.zt.plivo.com",
            )
        if not _PLIVO_TERMINATION.match(f.address):
            raise PresetError(
                "address",
                "a Plivo termination domain looks like <trunk id>.zt.plivo.com (Zentrunk -> Outbound Trunks)",
            )
        # credentials, or none when the trunk authenticates by IP access control list instead
        _both_or_neither(
            f, "Plivo outbound trunks authenticate by credentials list (both) or IP ACL (neither)"
        )
    elif not f.allowed_addresses:
        raise PresetError(
            "allowed_addresses",
            "Plivo sends inbound calls from its own signalling addresses: copy them from Plivo's Zentrunk "
            "documentation into allowed_addresses",
        )
    return f


def _wavix(f: TrunkFields) -> TrunkFields:
    if f.direction == "outbound":
        if not f.address:
            raise PresetError(
                "address",
                "Wavix needs the regional SIP gateway of your trunk, <region>.wavix.net (Wavix portal)",
            )
        if not _WAVIX_GATEWAY.match(f.address):
            raise PresetError("address", "a Wavix SIP gateway looks like <region>.wavix.net")
        if not (f.auth_username and f.auth_password):
            raise PresetError(
                "auth_username",
                "Wavix digest trunks need the SIP trunk ID (as the username) and its password",
            )
        if not f.auth_username.isdigit():
            raise PresetError(
                "auth_username",
                "the Wavix username is the SIP trunk ID, the number in the SIP trunk ID column",
            )
    elif not f.allowed_addresses:
        raise PresetError(
            "allowed_addresses",
            "Wavix sends inbound calls from its regional gateways: copy their addresses from the bottom of "
            "the Trunks page in the Wavix portal into allowed_addresses",
        )
    return f


def _both_or_neither(f: TrunkFields, reason: str) -> None:
    if bool(f.auth_username) != bool(f.auth_password):
        raise PresetError("auth_password" if f.auth_username else "auth_username", reason)


_PRESETS = {"twilio": _twilio, "telnyx": _telnyx, "plivo": _plivo, "wavix": _wavix}
