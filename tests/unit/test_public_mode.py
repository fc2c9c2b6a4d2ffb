"""Public mode's settings: what they render into livekit-sip's and livekit-server's configs, the dev
render they leave alone, and the combinations refused at start with a message naming the settings."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from phoneagent.config import Settings
from phoneagent.errors import ConfigError
from phoneagent.stack.services import Stack

pytestmark = pytest.mark.unit


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", **values)


def _render(tmp_path: Path, **values: Any) -> tuple[dict[str, Any], dict[str, Any], Stack]:
    stack = Stack(_settings(tmp_path, **values))
    stack.services()
    conf = stack.paths.conf
    sip = yaml.safe_load((conf / "livekit-sip.yaml").read_text())
    lk = yaml.safe_load((conf / "livekit.yaml").read_text())
    return sip, lk, stack


def _cert(tmp_path: Path, name: str = "sip") -> tuple[Path, Path]:
    cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-days", "2", "-subj", f"/CN={name}.example.com", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


# ---- the dev render ---------------------------------------------------------------------------------


def test_without_public_mode_the_configs_name_loopback_only(tmp_path: Path) -> None:
    sip, lk, stack = _render(tmp_path)
    assert (sip["listen_ip"], sip["nat_1_to_1_ip"]) == ("127.0.0.1", "127.0.0.1")
    assert "use_external_ip" not in sip and "tls" not in sip and "sip_hostname" not in sip
    assert lk["bind_addresses"] == ["127.0.0.1"] and lk["rtc"]["node_ip"] == "127.0.0.1"
    assert lk["rtc"]["ips"]["includes"] == ["127.0.0.1/32"] and lk["rtc"]["use_external_ip"] is False
    # an optional block left out leaves no blank line behind
    text = (stack.paths.conf / "livekit-sip.yaml").read_text()
    assert "\n\n" not in text and "${" not in text


# ---- carriers reach livekit-sip ---------------------------------------------------------------------


def test_public_ip_is_what_livekit_sip_announces_and_it_listens_where_told(tmp_path: Path) -> None:
    sip, lk, stack = _render(tmp_path, sip_listen_ip="0.0.0.0", public_ip="203.0.113.10")
    assert (sip["listen_ip"], sip["nat_1_to_1_ip"]) == ("0.0.0.0", "203.0.113.10")
    assert "use_external_ip" not in sip
    # livekit-server is none of the carriers' business: it stays on loopback
    assert lk["bind_addresses"] == ["127.0.0.1"] and lk["rtc"]["node_ip"] == "127.0.0.1"
    sip_service = {svc.name: svc for svc in stack.services()}["livekit-sip"]
    assert sip_service.host == "127.0.0.1"  # every interface includes loopback: checked and asked there


def test_a_specific_listen_address_is_announced_when_no_public_ip_is_given(tmp_path: Path) -> None:
    sip, _, stack = _render(tmp_path, sip_listen_ip="198.51.100.7")
    assert (sip["listen_ip"], sip["nat_1_to_1_ip"]) == ("198.51.100.7", "198.51.100.7")
    assert {svc.name: svc for svc in stack.services()}["livekit-sip"].host == "198.51.100.7"


def test_use_external_ip_is_rendered_only_when_asked_and_without_a_fixed_address(tmp_path: Path) -> None:
    sip, _, _ = _render(tmp_path, sip_listen_ip="0.0.0.0", use_external_ip=True)
    assert sip["use_external_ip"] is True
    assert sip["nat_1_to_1_ip"] == ""  # livekit-sip refuses both at once


def test_livekit_server_for_workers_on_other_hosts(tmp_path: Path) -> None:
    _, lk, _ = _render(tmp_path, livekit_listen_ip="10.0.0.5")
    assert lk["bind_addresses"] == ["127.0.0.1", "10.0.0.5"]  # loopback stays for the stack's own clients
    assert lk["rtc"]["node_ip"] == "10.0.0.5"
    assert lk["rtc"]["ips"]["includes"] == ["127.0.0.1/32", "10.0.0.5/32"]
    _, lk, _ = _render(tmp_path, livekit_listen_ip="0.0.0.0", livekit_node_ip="10.0.0.5")
    assert lk["bind_addresses"] == ["0.0.0.0"] and lk["rtc"]["node_ip"] == "10.0.0.5"
    assert lk["rtc"]["ips"]["includes"] == ["0.0.0.0/0"]
    assert lk["rtc"]["use_external_ip"] is False  # never a STUN lookup by livekit-server


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"public_ip": "203.0.113.10"}, "listens on loopback only: set PHONEAGENT_SIP_LISTEN_IP"),
        ({"use_external_ip": True}, "PHONEAGENT_USE_EXTERNAL_IP announces livekit-sip"),
        (
            {"sip_listen_ip": "0.0.0.0", "public_ip": "203.0.113.10", "use_external_ip": True},
            "both set",
        ),
        ({"sip_listen_ip": "0.0.0.0"}, "say which address carriers reach"),
        ({"sip_listen_ip": "carrier.example.com"}, "is not an IP address"),
        ({"sip_listen_ip": "0.0.0.0", "public_ip": "0.0.0.0"}, "not an address others can send to"),
        ({"livekit_node_ip": "10.0.0.5"}, "set PHONEAGENT_LIVEKIT_LISTEN_IP too"),
        ({"livekit_listen_ip": "0.0.0.0"}, "PHONEAGENT_LIVEKIT_NODE_IP"),
    ],
)
def test_addresses_that_cannot_work_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, **values)


# ---- TLS and SRTP -----------------------------------------------------------------------------------


def test_tls_renders_the_listener_certificate_and_hostname(tmp_path: Path) -> None:
    cert, key = _cert(tmp_path)
    sip, _, stack = _render(
        tmp_path, sip_tls=True, sip_tls_cert_file=cert, sip_tls_key_file=key, sip_hostname="sip.example.com"
    )
    assert sip["tls"]["port"] == 5061
    assert sip["tls"]["certs"] == [{"cert_file": str(cert), "key_file": str(key)}]
    assert sip["sip_hostname"] == "sip.example.com"
    assert sip["listen_ip"] == "127.0.0.1"  # TLS alone does not leave loopback
    sip_service = {svc.name: svc for svc in stack.services()}["livekit-sip"]
    assert sip_service.tcp_ports == [5060, 5061]  # its TLS port is checked free before the start


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sip_tls": True}, "needs PHONEAGENT_SIP_TLS_CERT_FILE and PHONEAGENT_SIP_TLS_KEY_FILE"),
        ({"sip_tls_cert_file": "/etc/x.pem"}, "set while PHONEAGENT_SIP_TLS is off"),
        ({"sip_hostname": "sip.example.com"}, "set while PHONEAGENT_SIP_TLS is off"),
        (
            {"sip_tls": True, "sip_tls_cert_file": "/c", "sip_tls_key_file": "/k", "sip_tls_port": 5060},
            "give TLS a port of its own",
        ),
        (
            {"sip_tls": True, "sip_tls_cert_file": "/c", "sip_tls_key_file": "/k", "sip_hostname": "a b"},
            "is not a DNS name",
        ),
        ({"sip_media_encryption": "require"}, "SRTP's keys .SDES. travel in the SDP"),
        ({"sip_media_encryption": "sometimes"}, "sip_media_encryption"),
    ],
)
def test_tls_and_srtp_combinations_that_cannot_work_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, **values)


def test_srtp_required_with_tls_is_accepted(tmp_path: Path) -> None:
    s = _settings(
        tmp_path, sip_tls=True, sip_tls_cert_file="/c", sip_tls_key_file="/k", sip_media_encryption="require"
    )
    assert s.sip_media_encryption == "require"


def test_a_missing_certificate_stops_the_render_naming_the_setting(tmp_path: Path) -> None:
    cert, key = _cert(tmp_path)
    stack = Stack(
        _settings(tmp_path, sip_tls=True, sip_tls_cert_file=tmp_path / "gone.crt", sip_tls_key_file=key)
    )
    with pytest.raises(ConfigError, match=r"PHONEAGENT_SIP_TLS_CERT_FILE: .*gone.crt does not exist"):
        stack.services()
    stack = Stack(_settings(tmp_path, sip_tls=True, sip_tls_cert_file=cert, sip_tls_key_file=tmp_path))
    with pytest.raises(ConfigError, match="PHONEAGENT_SIP_TLS_KEY_FILE: .* is a directory"):
        stack.services()
    assert not (stack.paths.conf / "livekit-sip.yaml").exists()  # nothing rendered for a start to use


def test_a_key_that_is_not_the_certificates_is_refused_before_livekit_sip_starts(tmp_path: Path) -> None:
    cert, _ = _cert(tmp_path, "one")
    _, other_key = _cert(tmp_path, "two")
    stack = Stack(_settings(tmp_path, sip_tls=True, sip_tls_cert_file=cert, sip_tls_key_file=other_key))
    with pytest.raises(ConfigError, match="do not load together"):
        stack.services()


def test_the_tls_port_and_public_addresses_are_the_stacks_own_for_trunks(tmp_path: Path) -> None:
    s = _settings(
        tmp_path,
        sip_listen_ip="0.0.0.0",
        public_ip="203.0.113.10",
        sip_tls=True,
        sip_tls_cert_file="/c",
        sip_tls_key_file="/k",
    )
    for address in ("203.0.113.10:5060", "203.0.113.10:5061", "127.0.0.1:5061"):
        with pytest.raises(ValueError, match="this stack's own service"):
            s.check_trunk_address(address)


def test_livekit_sip_trusts_the_ca_bundle_given_for_tls_carriers(tmp_path: Path) -> None:
    cert, key = _cert(tmp_path)
    _, _, stack = _render(
        tmp_path, sip_tls=True, sip_tls_cert_file=cert, sip_tls_key_file=key, sip_tls_ca_file=cert
    )
    services = {svc.name: svc for svc in stack.services()}
    assert services["livekit-sip"].env == {"SSL_CERT_FILE": str(cert)}  # Go reads it for its roots
    assert "SSL_CERT_FILE" not in services["livekit-server"].env
    _, _, plain = _render(tmp_path, sip_tls=True, sip_tls_cert_file=cert, sip_tls_key_file=key)
    assert {svc.name: svc for svc in plain.services()}["livekit-sip"].env == {}  # the system's CAs


def test_a_ca_bundle_without_a_certificate_is_refused(tmp_path: Path) -> None:
    cert, key = _cert(tmp_path)
    (tmp_path / "not-a-bundle.pem").write_text("nothing here\n")
    stack = Stack(
        _settings(
            tmp_path,
            sip_tls=True,
            sip_tls_cert_file=cert,
            sip_tls_key_file=key,
            sip_tls_ca_file=tmp_path / "not-a-bundle.pem",
        )
    )
    with pytest.raises(ConfigError, match="PHONEAGENT_SIP_TLS_CA_FILE: .* holds no PEM certificate"):
        stack.services()
