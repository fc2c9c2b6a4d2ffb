"""Public mode's settings checked together: the combinations that cannot work are refused at start
with a message naming the settings, instead of a bridge that carriers cannot reach or that hands out
SRTP keys in clear text. The files (certificate, key) are checked where they are used: by `stack up`
(``phoneagent.stack.public``), since the control plane and workers share these settings without
having those files.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phoneagent.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# a DNS name (what a certificate names); livekit-sip itself refuses "$%{}[]:/| " in sip_hostname
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)


def _ip(value: str, setting: str, *, any_ok: bool) -> IPAddress:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{setting}={value!r} is not an IP address") from None
    if ip.is_unspecified and not any_ok:
        raise ValueError(f"{setting}={value} is not an address others can send to")
    if ip.is_multicast:
        raise ValueError(f"{setting}={value} is a multicast address")
    return ip


def listens_beyond_loopback(listen_ip: str) -> bool:
    """Whether a listen address (empty: the stack's bind_host, loopback) is reachable from outside."""
    return bool(listen_ip) and not ipaddress.ip_address(listen_ip).is_loopback


def check_public_mode(s: Settings) -> None:
    """ValueError for a combination of public-mode settings that cannot work."""
    sip_listen = _ip(s.sip_listen_ip, "PHONEAGENT_SIP_LISTEN_IP", any_ok=True) if s.sip_listen_ip else None
    public = _ip(s.public_ip, "PHONEAGENT_PUBLIC_IP", any_ok=False) if s.public_ip else None
    lk_listen = (
        _ip(s.livekit_listen_ip, "PHONEAGENT_LIVEKIT_LISTEN_IP", any_ok=True) if s.livekit_listen_ip else None
    )
    node = _ip(s.livekit_node_ip, "PHONEAGENT_LIVEKIT_NODE_IP", any_ok=False) if s.livekit_node_ip else None

    if public is not None and s.use_external_ip:
        raise ValueError(
            "PHONEAGENT_PUBLIC_IP and PHONEAGENT_USE_EXTERNAL_IP are both set: give the address, or let "
            "livekit-sip ask a public STUN server for it, not both"
        )
    sip_on_loopback = sip_listen is None or sip_listen.is_loopback
    if sip_on_loopback and (s.use_external_ip or (public is not None and not public.is_loopback)):
        what = "PHONEAGENT_USE_EXTERNAL_IP" if s.use_external_ip else f"PHONEAGENT_PUBLIC_IP={public}"
        raise ValueError(
            f"{what} announces livekit-sip to carriers, but it listens on loopback only: set "
            "PHONEAGENT_SIP_LISTEN_IP (this host's interface address, or 0.0.0.0)"
        )
    if sip_listen is not None and sip_listen.is_unspecified and public is None and not s.use_external_ip:
        raise ValueError(
            f"PHONEAGENT_SIP_LISTEN_IP={sip_listen} listens on every interface: say which address carriers "
            "reach with PHONEAGENT_PUBLIC_IP (or PHONEAGENT_USE_EXTERNAL_IP=true)"
        )
    lk_on_loopback = lk_listen is None or lk_listen.is_loopback
    if lk_on_loopback and node is not None and not node.is_loopback:
        raise ValueError(
            f"PHONEAGENT_LIVEKIT_NODE_IP={node} is handed to media clients, but livekit-server listens on "
            "loopback only: set PHONEAGENT_LIVEKIT_LISTEN_IP too"
        )
    if lk_listen is not None and lk_listen.is_unspecified and node is None:
        raise ValueError(
            f"PHONEAGENT_LIVEKIT_LISTEN_IP={lk_listen} listens on every interface: say which address "
            "workers, bridges and egress reach it on with PHONEAGENT_LIVEKIT_NODE_IP"
        )
    _check_tls(s)


def _check_tls(s: Settings) -> None:
    if s.sip_tls:
        if s.sip_tls_cert_file is None or s.sip_tls_key_file is None:
            raise ValueError(
                "PHONEAGENT_SIP_TLS=true needs PHONEAGENT_SIP_TLS_CERT_FILE and PHONEAGENT_SIP_TLS_KEY_FILE "
                "(the certificate chain and its private key, PEM)"
            )
        if s.sip_tls_port == s.sip_port:
            raise ValueError(
                f"PHONEAGENT_SIP_TLS_PORT={s.sip_tls_port} is also PHONEAGENT_SIP_PORT (SIP over TCP "
                "listens there): give TLS a port of its own (5061 by convention)"
            )
    else:
        given = [
            name
            for name, value in (
                ("PHONEAGENT_SIP_TLS_CERT_FILE", s.sip_tls_cert_file),
                ("PHONEAGENT_SIP_TLS_KEY_FILE", s.sip_tls_key_file),
                ("PHONEAGENT_SIP_HOSTNAME", s.sip_hostname),
                ("PHONEAGENT_SIP_TLS_CA_FILE", s.sip_tls_ca_file),
            )
            if value
        ]
        if given:
            raise ValueError(
                f"{', '.join(given)} set while PHONEAGENT_SIP_TLS is off: turn it on, or unset them"
            )
    if s.sip_hostname and not _HOSTNAME.match(s.sip_hostname):
        raise ValueError(
            f"PHONEAGENT_SIP_HOSTNAME={s.sip_hostname!r} is not a DNS name (the name the certificate is for)"
        )
    if s.sip_media_encryption == "require" and not s.sip_tls:
        raise ValueError(
            "PHONEAGENT_SIP_MEDIA_ENCRYPTION=require needs PHONEAGENT_SIP_TLS=true: SRTP's keys (SDES) "
            "travel in the SDP, which anyone on the path reads over plain SIP"
        )
