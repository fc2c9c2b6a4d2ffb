"""Credentials for the LiveKit server API and the one place its errors become phoneagent errors."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from livekit import api

from phoneagent.config import Settings
from phoneagent.errors import Conflict, TelephonyError
from phoneagent.stack.secrets import load_or_create, load_or_create_token


@dataclass(frozen=True)
class LiveKitCredentials:
    url: str
    api_key: str
    api_secret: str = ""

    def __repr__(self) -> str:  # never print the secret
        return f"LiveKitCredentials(url={self.url!r}, api_key={self.api_key!r})"


def livekit_credentials(settings: Settings) -> LiveKitCredentials:
    """LIVEKIT_URL/LIVEKIT_API_KEY/LIVEKIT_API_SECRET when set, else the local stack's own keys."""
    key, secret = os.environ.get("LIVEKIT_API_KEY"), os.environ.get("LIVEKIT_API_SECRET")
    if not (key and secret):
        stored = load_or_create(settings.state_dir.expanduser() / "secrets.json")
        key, secret = stored.livekit_api_key, stored.livekit_api_secret
    return LiveKitCredentials(
        url=os.environ.get("LIVEKIT_URL", settings.livekit_url), api_key=key, api_secret=secret
    )


def new_livekit_api(settings: Settings) -> api.LiveKitAPI:
    creds = livekit_credentials(settings)
    return api.LiveKitAPI(
        url=creds.url.replace("ws", "http", 1), api_key=creds.api_key, api_secret=creds.api_secret
    )


class LiveKitClient:
    """One LiveKit API client, made on first use and kept, for a long-lived background service."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lk: api.LiveKitAPI | None = None

    def _api(self) -> api.LiveKitAPI:
        if self._lk is None:
            self._lk = new_livekit_api(self._settings)
        return self._lk

    async def aclose(self) -> None:
        if self._lk is not None:
            await self._lk.aclose()
            self._lk = None


@asynccontextmanager
async def livekit_api(settings: Settings) -> AsyncIterator[api.LiveKitAPI]:
    creds = livekit_credentials(settings)
    client = new_livekit_api(settings)
    try:
        yield client
    except api.TwirpError as exc:
        if exc.code in ("invalid_argument", "already_exists", "failed_precondition"):
            # LiveKit's own consistency rules, e.g. two inbound trunks claiming one number
            raise Conflict(f"LiveKit refused: {exc.message}") from None
        retryable = exc.code in ("unavailable", "deadline_exceeded", "resource_exhausted", "internal")
        raise TelephonyError(f"LiveKit API: {exc.code}: {exc.message}", retryable=retryable) from None
    except aiohttp.ClientError as exc:
        raise TelephonyError(
            f"cannot reach LiveKit at {creds.url}: {type(exc).__name__}",
            hint="is the stack up? run `phoneagent stack status`",
            retryable=True,
        ) from None
    finally:
        await client.aclose()


def worker_token(settings: Settings) -> str:
    """The bearer token workers send with call events: ``PHONEAGENT_WORKER_SECRET``, or a random one
    made once in the state directory (0600) that the control plane and workers on this host share.
    Not derived from the LiveKit secret: egress v1.8.6 shows that one on its command line."""
    given = settings.worker_secret.get_secret_value()
    return given or load_or_create_token(settings.state_dir.expanduser() / "worker-secret")
