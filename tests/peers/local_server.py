"""A provider's API, faked on 127.0.0.1: the base of the wire-format servers beside this module.

Each fake speaks one provider's wire format (paths, headers, JSON shapes, websocket messages, SSE)
as the livekit plugins use it, records what it was sent, and can be told to fail the way a real API
does: an HTTP 500, a connection closed without an answer, or, once stopped, nothing listening.
"""

from __future__ import annotations

import asyncio
import math
import socket
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import numpy as np
from aiohttp import web
from multidict import CIMultiDict

Failure = Literal["http_500", "close"] | None


@dataclass
class Recorded:
    """One request as the fake saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]  # looked up case-insensitively, as HTTP has it
    body: dict[str, Any] = field(default_factory=dict)
    audio_bytes: int = 0


class LocalServer:
    """An aiohttp app on 127.0.0.1 at a free port, for the length of an ``async with``."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.requests: list[Recorded] = []
        # what the next requests get; tests flip it to make a provider fail or recover
        self.fail: Failure = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop listening: from now on a connection is refused (the provider is down)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def record(self, request: web.Request, **extra: Any) -> Recorded:
        rec = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=CIMultiDict(request.headers),
            **extra,
        )
        self.requests.append(rec)
        return rec

    async def failure(self, request: web.Request) -> web.StreamResponse | None:
        """The failure the test asked for, or None to answer normally."""
        if self.fail == "http_500":
            return web.json_response(
                {"error": {"message": "internal error (fake)", "type": "server_error"}}, status=500
            )
        if self.fail == "close":
            # the connection ends without a response, as when a proxy or the provider drops it
            assert request.transport is not None
            request.transport.close()
            await asyncio.sleep(0)
            raise ConnectionResetError("closed by the fake provider")
        return None


def closed_port_url() -> str:
    """A URL nothing listens on (a provider that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    return f"http://127.0.0.1:{port}"


def tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    """A sine at -12 dBFS: the "speech" the fake TTS servers answer with."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    return (np.sin(2 * math.pi * freq * t) * 0.25 * 32767).astype(np.int16)


def seconds_for(text: str) -> float:
    """How long the fake TTS speaks ``text``: about a normal speaking rate."""
    return max(0.3, 0.06 * len(text))
