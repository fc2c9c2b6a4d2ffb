"""Credentials for the LiveKit server API, and ``translate``: the one place its errors (Twirp, SIP,
transport) become phoneagent errors."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass

import aiohttp
from livekit import api

from phoneagent.config import Settings
from phoneagent.errors import (
    CallRejected,
    ConfigError,
    EgressUnavailable,
    LiveKitNotFound,
    LiveKitRefused,
    PhoneagentError,
    TelephonyError,
)
from phoneagent.stack.secrets import load_or_create, load_or_create_token


@dataclass(frozen=True)
class LiveKitCredentials:
    url: str
    api_key: str
    api_secret: str = ""

    def __repr__(self) -> str:  # never print the secret
        return f"LiveKitCredentials(url={self.url!r}, api_key={self.api_key!r})"


def livekit_credentials(settings: Settings) -> LiveKitCredentials:
    """The key and secret from their files (PHONEAGENT_LIVEKIT_API_KEY_FILE/_SECRET_FILE, a secret
    store), else LIVEKIT_API_KEY/LIVEKIT_API_SECRET, else the local stack's own; LIVEKIT_URL when set."""
    key, secret = settings.file_secret("livekit_api_key"), settings.file_secret("livekit_api_secret")
    if key and (os.environ.get("LIVEKIT_API_KEY") or os.environ.get("LIVEKIT_API_SECRET")):
        raise ConfigError(
            "LIVEKIT_API_KEY/LIVEKIT_API_SECRET and PHONEAGENT_LIVEKIT_API_KEY_FILE/_SECRET_FILE are both "
            "set: keep one",
            hint="a secret store mounts files: unset the variables",
        )
    if not (key and secret):
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
    """One LiveKit API client, made on first use and kept, for a long-lived background service.
    Subclasses call it inside ``self._errors()``."""

    _egress = False

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lk: api.LiveKitAPI | None = None

    def _errors(self) -> AbstractContextManager[None]:
        return livekit_errors(egress=self._egress)

    def _api(self) -> api.LiveKitAPI:
        if self._lk is None:
            self._lk = new_livekit_api(self._settings)
        return self._lk

    async def aclose(self) -> None:
        if self._lk is not None:
            await self._lk.aclose()
            self._lk = None


# LiveKit's codes for a request it could not serve now, but may serve later
_RETRYABLE = frozenset({"unavailable", "deadline_exceeded", "resource_exhausted", "internal"})
# LiveKit's own consistency rules, e.g. two inbound trunks claiming one number
_REFUSED = frozenset({"invalid_argument", "already_exists", "failed_precondition"})
# what livekit-server answers when no server process (an egress) takes or answers a request
_NOBODY = ("no response from servers", "request timed out")


def translate(exc: BaseException, *, egress: bool = False, url: str = "") -> PhoneagentError | None:
    """The phoneagent error a LiveKit server API failure means; None for anything else (a bug).

    ``egress``: the request was for livekit-egress, where a request nobody takes means egress is not
    running (``EgressUnavailable``)."""
    if isinstance(exc, api.SipCallError) and exc.sip_status_code is not None:
        return CallRejected(
            f"the call was refused: SIP {exc.sip_status_code} {exc.sip_status or ''}".rstrip(),
            code=exc.code,
            sip_status_code=exc.sip_status_code,
            sip_status_reason=exc.sip_status or None,
        )
    if isinstance(exc, api.TwirpError):
        code, message = exc.code, exc.message
        nobody = any(n in message for n in _NOBODY) or code == "deadline_exceeded"
        if egress and (nobody or code == "unavailable"):
            return EgressUnavailable(
                f"no egress took the request ({message})",
                hint="is egress running? `phoneagent stack status`; `phoneagent stack up` starts it",
                code=code,
                no_response=nobody,
            )
        if code == "not_found":
            return LiveKitNotFound(f"LiveKit API: not_found: {message}", code=code)
        if code in _REFUSED:
            return LiveKitRefused(f"LiveKit refused: {message}", code=code)
        return TelephonyError(
            f"LiveKit API: {code}: {message}", code=code, retryable=code in _RETRYABLE, no_response=nobody
        )
    if isinstance(exc, TimeoutError):
        return TelephonyError("LiveKit did not answer in time", code="timeout", retryable=True)
    if isinstance(exc, aiohttp.ClientError):
        where = f" at {url}" if url else ""
        return TelephonyError(
            f"cannot reach LiveKit{where}: {type(exc).__name__}",
            hint="is the stack up? run `phoneagent stack status`",
            code="unreachable",
            retryable=True,
        )
    if isinstance(exc, ValueError):  # protobuf refused a value of the request
        return TelephonyError(f"LiveKit refused the request: {exc}", code="invalid_request")
    return None


@contextmanager
def livekit_errors(*, egress: bool = False, url: str = "") -> Iterator[None]:
    """Around every LiveKit server API call: its failures leave as phoneagent errors (``translate``).
    The original is dropped (``from None``): a transport error's text may carry the request."""
    try:
        yield
    except (api.TwirpError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
        err = translate(exc, egress=egress, url=url)
        if err is None:
            raise
        raise err from None


@asynccontextmanager
async def livekit_api(settings: Settings) -> AsyncIterator[api.LiveKitAPI]:
    """A short-lived client; failures inside the block leave as phoneagent errors."""
    creds = livekit_credentials(settings)
    client = new_livekit_api(settings)
    try:
        with livekit_errors(url=creds.url):
            yield client
    finally:
        await client.aclose()


def worker_token(settings: Settings) -> str:
    """The bearer token workers send with call events: ``PHONEAGENT_WORKER_SECRET``, or a random one
    made once in the state directory (0600) that the control plane and workers on this host share.
    Not derived from the LiveKit secret: egress v1.8.6 shows that one on its command line."""
    given = settings.worker_secret.get_secret_value()
    return given or load_or_create_token(settings.state_dir.expanduser() / "worker-secret")
