"""Where the control plane may send a tenant's requests: public addresses only, checked when a URL is
registered and again at every connection, on the address actually connected to.

A tenant's webhook URL is the tenant's to choose, so it must not reach the host's own services
(LiveKit, Redis, the API on loopback), the private network, or a cloud metadata address. The check
at registration gives a clear 422; the check at connect time resolves the name once, refuses any
non-public answer, and connects to that checked address (the TLS name stays the URL's), so that a name
re-pointed after registration (DNS rebinding) cannot switch the target. An operator may allow
networks explicitly (``PHONEAGENT_WEBHOOK_ALLOWED_NETWORKS``, e.g. an internal receiver, or loopback
on a developer's machine).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from phoneagent.urls import check_http_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# not "global" by every reading, named so that the refusal says why
_NAMED: tuple[tuple[str, IPNetwork], ...] = (
    ("a cloud metadata address", ipaddress.ip_network("169.254.169.254/32")),
    ("a cloud metadata address", ipaddress.ip_network("fd00:ec2::254/128")),
    ("a carrier-grade NAT address", ipaddress.ip_network("100.64.0.0/10")),
)


class RefusedAddress(httpx.ConnectError):
    """The URL's host is (or resolves to) an address the control plane does not send to."""


def _unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped, 6to4 or Teredo IPv6 address (they reach it)."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None:
            return inner
    return ip


def why_refused(ip: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """None when ``ip`` may be sent to; else what kind of address it is."""
    ip = _unwrap(ip)
    if any(ip.version == net.version and ip in net for net in allowed):
        return None
    for name, net in _NAMED:
        if ip.version == net.version and ip in net:
            return name
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a reserved address"
    return None


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses and schemes outgoing requests to tenants' URLs may use."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    require_https: bool = True
    resolve_timeout_s: float = 5.0
    # tests swap in a resolver; production asks the system's
    resolver: Any = field(default=None, compare=False)

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            pass
        if self.resolver is not None:
            return [ipaddress.ip_address(a) for a in await self.resolver(host, port)]
        loop = asyncio.get_running_loop()
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=self.resolve_timeout_s
        )
        # an IPv6 answer may carry a scope ("fe80::1%eth0"): the address is the part before it
        return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]

    async def checked_addresses(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` resolves to, all of them allowed; else RefusedAddress."""
        try:
            addresses = await self.resolve(host, port)
        except (OSError, TimeoutError) as exc:
            raise RefusedAddress(f"{host} does not resolve") from exc
        if not addresses:
            raise RefusedAddress(f"{host} does not resolve")
        for ip in addresses:
            reason = why_refused(ip, self.allowed_networks)
            if reason is not None:
                raise RefusedAddress(f"{host} is {reason} ({ip}), not a public one")
        return addresses

    def check_url(self, url: str) -> None:
        """Refuse (ValueError, with the reason) a URL that requests must not go to. Resolves the name
        (blocking: call it from a thread)."""
        parts = urlsplit(check_http_url(url))
        if parts.scheme == "http" and self.require_https:
            raise ValueError("must be an https:// URL (plain http is allowed in development only)")
        if parts.username or parts.password:
            raise ValueError("must not carry a user name or password; verify the signature instead")
        if not parts.hostname:
            raise ValueError("has no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise ValueError("has an invalid port") from exc
        try:
            asyncio.run(self.checked_addresses(parts.hostname, port))
        except RefusedAddress as exc:
            raise ValueError(str(exc)) from exc


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to checked addresses: the name is resolved here, once, and the connection made
    to the address that passed (httpcore still verifies TLS against the URL's host name)."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._policy.checked_addresses(host, port)
        error: Exception | None = None
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error or httpcore.ConnectError(f"no address to connect to for {host}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress("unix sockets are not a tenant's destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(policy: AddressPolicy, *, timeout: float) -> httpx.AsyncClient:
    """An HTTP client that sends only to addresses ``policy`` allows, follows no redirect, and ignores
    proxy settings from the environment (a proxy would hide the real destination)."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx has no public way to pass a network backend in; its pool makes every connection with this
    transport._pool._network_backend = _GuardedBackend(policy)
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)


def check_sip_host(address: str, policy: AddressPolicy, own: Iterable[tuple[IPAddress, int]] = ()) -> None:
    """Refuse (ValueError) a carrier trunk address (``host[:port]``, port 5060 unless said) inside the
    host's network, unless the operator allowed its network, and always the stack's own listeners
    (``own``: address, port), where an INVITE from the bridge would loop back into the stack. A name
    that does not resolve here is accepted: livekit-sip resolves it when it dials."""
    host, _, port_s = address.rpartition(":") if ":" in address else (address, "", "5060")
    port = int(port_s)
    try:
        addresses = asyncio.run(policy.resolve(host, port))
    except (OSError, TimeoutError):
        return
    listeners = set(own)
    for ip in addresses:
        if (_unwrap(ip), port) in listeners or (ip, port) in listeners:
            raise ValueError(f"{address} is this stack's own service, not a carrier")
        reason = why_refused(ip, policy.allowed_networks)
        if reason is not None:
            raise ValueError(
                f"{address} is {reason} ({ip}), not a carrier's; an operator may allow a private PBX's "
                "network with PHONEAGENT_TRUNK_ALLOWED_NETWORKS"
            )


def failure_class(exc: BaseException) -> str:
    """What a tenant is shown when a delivery could not be made: the kind of failure, never the raw
    error (which would describe the network behind the control plane)."""
    if isinstance(exc, RefusedAddress):
        return "refused: the URL does not lead to a public address"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the receiver broke the HTTP exchange"
    return "request failed"
