"""Which addresses a tenant's URL may lead to: every way of writing an inside address is refused."""

from __future__ import annotations

import ipaddress

import pytest

from phoneagent.netguard import AddressPolicy, RefusedAddress, failure_class, parse_networks, why_refused
from phoneagent.urls import check_http_url

INSIDE = {
    "127.0.0.1": "loopback",
    "127.9.9.9": "loopback",
    "::1": "loopback",
    "::ffff:127.0.0.1": "loopback",  # IPv4-mapped
    "2002:7f00:1::": "loopback",  # 6to4 around 127.0.0.1
    "169.254.169.254": "metadata",
    "::ffff:169.254.169.254": "metadata",
    "fd00:ec2::254": "metadata",
    "169.254.10.1": "link-local",
    "fe80::1": "link-local",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.0.1": "private",
    "fc00::1": "private",
    "100.64.0.1": "carrier-grade NAT",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "224.0.0.1": "multicast",
    "ff02::1": "multicast",
    "240.0.0.1": "reserved",
    "192.0.2.1": "private",  # documentation range: never a receiver
}


@pytest.mark.parametrize(("address", "kind"), INSIDE.items())
def test_inside_addresses_are_refused_with_their_kind(address: str, kind: str) -> None:
    reason = why_refused(ipaddress.ip_address(address))
    assert reason is not None and kind in reason


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert why_refused(ipaddress.ip_address(address)) is None


def test_an_operator_may_allow_a_network_and_only_that() -> None:
    allowed = parse_networks(["10.20.0.0/16"])
    assert why_refused(ipaddress.ip_address("10.20.3.4"), allowed) is None
    assert why_refused(ipaddress.ip_address("::ffff:10.20.3.4"), allowed) is None
    assert why_refused(ipaddress.ip_address("10.21.0.1"), allowed) is not None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://8.8.8.8/", "http"),
        ("http://8.8.8.8/", "https"),
        ("https://u:p@8.8.8.8/", "password"),
        ("https://8.8.8.8:99999/", "port"),
        ("https:///path", "host"),
        ("https://[::ffff:7f00:1]:7880/", "loopback"),
    ],
)
def test_check_url_says_why(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        AddressPolicy().check_url(url)


def test_a_name_is_checked_on_every_address_it_resolves_to() -> None:
    async def split_horizon(host: str, port: int) -> list[str]:
        return ["8.8.8.8", "10.0.0.1"]  # one public answer does not launder a private one

    with pytest.raises(ValueError, match="private"):
        AddressPolicy(resolver=split_horizon).check_url("https://hooks.example.test/")


def test_failure_classes_hide_the_raw_error() -> None:
    assert failure_class(RefusedAddress("10.0.0.1 is a private address")) == (
        "refused: the URL does not lead to a public address"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "http://127.0.0.1:11434/v1",
        "https://[2001:db8::1]:8443/x?y=1",
        "https://bücher.example/",
    ],
)
def test_http_urls_pass_unchanged(url: str) -> None:
    assert check_http_url(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ollama:11434", "must be an http:// or https:// URL"),
        ("ftp://example.com/", "must be an http:// or https:// URL"),
        ("example.com/hook", "must be an http:// or https:// URL"),
        ("http://", "with a host"),
        ("http:///path", "with a host"),
        ("https://exa mple.com/", "without spaces"),
        ("https://example.com/a b", "without spaces"),
        ("https://example.com:99999/", "invalid port"),
    ],
)
def test_other_urls_are_refused_with_the_reason(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_http_url(url)
