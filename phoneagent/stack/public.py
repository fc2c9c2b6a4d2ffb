"""What public mode puts into livekit-sip's and livekit-server's configs (deploy/public-mode.md).

Every value here renders the dev configs byte for byte when public mode is off: the addresses are the
stack's bind_host and the optional blocks are empty (a template line holding only an empty
placeholder is dropped by ``Stack._render``). The TLS files are checked here, where they are used:
the control plane and the workers share the settings but not the files.
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

from phoneagent.config import Settings
from phoneagent.errors import ConfigError


def _unspecified(ip: str) -> bool:
    return ipaddress.ip_address(ip).is_unspecified


def _livekit_bind_addresses(s: Settings) -> list[str]:
    """livekit-server's HTTP listeners: loopback (the stack's own clients and health check), plus
    the listen address; every interface includes loopback already."""
    listen = s.livekit_listen_ip
    if not listen or listen == s.bind_host:
        return [s.bind_host]
    return [listen] if _unspecified(listen) else [s.bind_host, listen]


def _livekit_ice_networks(s: Settings) -> list[str]:
    """The interfaces livekit-server gathers ICE candidates on (rtc.ips.includes)."""
    listen = s.livekit_listen_ip
    own = f"{s.bind_host}/32"
    if not listen or listen == s.bind_host:
        return [own]
    ip = ipaddress.ip_address(listen)
    if ip.is_unspecified:
        return ["0.0.0.0/0"] if ip.version == 4 else ["::/0"]
    return [own, f"{ip}/{ip.max_prefixlen}"]


def _sip_advertised(s: Settings) -> str:
    """livekit-sip's nat_1_to_1_ip: empty (YAML "") when it asks a STUN server instead."""
    if s.use_external_ip:
        return '""'
    if s.public_ip:
        return s.public_ip
    # a specific listen address is what carriers reach (check_public_mode refused 0.0.0.0 alone)
    return s.sip_listen_ip or s.bind_host


def _sip_tls_block(s: Settings) -> str:
    if not s.sip_tls:
        return ""
    lines = [
        "# SIP over TLS toward carriers (PHONEAGENT_SIP_TLS): the certificate is read once, at start",
        "tls:",
        f"  port: {s.sip_tls_port}",
        "  certs:",
        f"    - cert_file: {s.sip_tls_cert_file}",
        f"      key_file: {s.sip_tls_key_file}",
        "  min_version: tls1.2",
    ]
    if s.sip_hostname:
        lines.append(f"sip_hostname: {s.sip_hostname}")
    return "\n".join(lines)


def render_values(s: Settings) -> dict[str, str]:
    """The public-mode placeholders of the templates, for ``Stack._render``."""
    indent_bind, indent_ice = "\n  - ", "\n      - "
    return {
        "sip_listen_address": s.sip_listen_ip or s.bind_host,
        "sip_advertised_address": _sip_advertised(s),
        "sip_external_ip_line": "use_external_ip: true" if s.use_external_ip else "",
        "sip_tls_block": _sip_tls_block(s),
        "livekit_bind_addresses": indent_bind.join(_livekit_bind_addresses(s)),
        "livekit_node_address": s.livekit_node_ip or s.livekit_listen_ip or s.bind_host,
        "livekit_ice_networks": indent_ice.join(_livekit_ice_networks(s)),
    }


def sip_env(s: Settings) -> dict[str, str]:
    """livekit-sip's environment: the CA bundle it checks TLS carriers against (Go reads
    SSL_CERT_FILE in place of the system's bundle file)."""
    return {"SSL_CERT_FILE": str(s.sip_tls_ca_file)} if s.sip_tls and s.sip_tls_ca_file else {}


def sip_reach_host(s: Settings) -> str:
    """Where this host reaches livekit-sip (its health check, its ports' check)."""
    listen = s.sip_listen_ip
    return listen if listen and not _unspecified(listen) else s.bind_host


def check_tls_files(s: Settings) -> None:
    """ConfigError naming the setting when livekit-sip's certificate, key or CA bundle cannot be
    used: missing, unreadable, not PEM, or a key that is not the certificate's."""
    if not s.sip_tls or s.sip_tls_cert_file is None or s.sip_tls_key_file is None:
        return
    for setting, path in (
        ("PHONEAGENT_SIP_TLS_CERT_FILE", s.sip_tls_cert_file),
        ("PHONEAGENT_SIP_TLS_KEY_FILE", s.sip_tls_key_file),
        ("PHONEAGENT_SIP_TLS_CA_FILE", s.sip_tls_ca_file),
    ):
        if path is not None:
            _readable(setting, path)
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            s.sip_tls_cert_file, s.sip_tls_key_file
        )
    except ssl.SSLError as exc:
        raise ConfigError(
            f"livekit-sip's TLS certificate {s.sip_tls_cert_file} and key {s.sip_tls_key_file} do not "
            f"load together ({exc.reason or exc})",
            hint="PEM files: the certificate (chain) and the private key that belongs to it",
        ) from None
    if s.sip_tls_ca_file is not None:
        try:
            ssl.create_default_context(cafile=s.sip_tls_ca_file)
        except ssl.SSLError:
            raise ConfigError(
                f"PHONEAGENT_SIP_TLS_CA_FILE: {s.sip_tls_ca_file} holds no PEM certificate",
                hint="a bundle of CA certificates, PEM (-----BEGIN CERTIFICATE-----)",
            ) from None


def _readable(setting: str, path: Path) -> None:
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except FileNotFoundError:
        raise ConfigError(
            f"{setting}: {path} does not exist", hint="the path as livekit-sip sees it"
        ) from None
    except PermissionError:
        raise ConfigError(
            f"{setting}: {path} is not readable by this user (permission denied)",
            hint="livekit-sip runs as the user that runs `phoneagent stack up`",
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{setting}: {path} is a directory, not a file") from None
