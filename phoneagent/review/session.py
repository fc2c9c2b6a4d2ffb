"""Sessions of the review pages: an API key is exchanged once for a signed, HttpOnly cookie.

The cookie holds only the tenant id, the id of the key that signed in (so revoking the key ends the
session), a CSRF token and an expiry, signed by ``itsdangerous`` (HMAC); never the API key. Forms
carry the CSRF token and POSTs are refused without it, or from another origin. The sign-in form,
before any session, gets its token from a short-lived signed cookie of its own (double submit).

The signing secret is ``PHONEAGENT_SESSION_SECRET`` or, when empty, one generated into
``<state_dir>/review-secret`` (0600) on first use.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from itsdangerous import BadData, URLSafeSerializer

from phoneagent.config import Settings
from phoneagent.signing import same_secret
from phoneagent.stack.secrets import load_or_create_token

COOKIE = "pa_review"
SIGN_IN_COOKIE = "pa_review_signin"
COOKIE_PATH = "/review"
MAX_AGE_S = 12 * 3600
SIGN_IN_MAX_AGE_S = 3600


@dataclass(frozen=True)
class ReviewSession:
    tenant_id: str
    key_id: str
    csrf: str
    expires: int
    issued: float = 0.0  # when it was signed in (sign-out ends the sessions of its key issued before)


class Signer:
    """Signed, URL-safe JSON (``itsdangerous``) with an expiry of its own, ``exp``; the purpose is the
    signature's salt, so a sign-in cookie cannot pass for a session cookie."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _serializer(self, purpose: str) -> URLSafeSerializer:
        return URLSafeSerializer(self._secret, salt=purpose)

    def dumps(self, purpose: str, data: dict[str, Any]) -> str:
        return self._serializer(purpose).dumps(data)

    def loads(self, purpose: str, value: str, *, now: float | None = None) -> dict[str, Any] | None:
        """The payload when the signature is right and ``exp`` has not passed, else None (whatever
        the value holds: a forged cookie may carry anything, non-ASCII included)."""
        if not value.isascii():  # base64 decoding would skip such characters rather than refuse them
            return None
        try:
            data = self._serializer(purpose).loads(value)
        except BadData:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("exp"), int):
            return None
        if self.dumps(purpose, data) != value:  # another spelling of the same bytes (base64's spare bits)
            return None
        return data if data["exp"] > (time.time() if now is None else now) else None


def signer_for(settings: Settings) -> Signer:
    secret = settings.session_secret.get_secret_value() or load_or_create_token(
        settings.state_dir.expanduser() / "review-secret"
    )
    return Signer(secret.encode())


def new_session(tenant_id: str, key_id: str) -> ReviewSession:
    now = time.time()
    return ReviewSession(tenant_id, key_id, secrets.token_urlsafe(24), int(now) + MAX_AGE_S, now)


def encode_session(signer: Signer, s: ReviewSession) -> str:
    return signer.dumps(
        "session", {"t": s.tenant_id, "k": s.key_id, "c": s.csrf, "exp": s.expires, "i": s.issued}
    )


def decode_session(signer: Signer, value: str) -> ReviewSession | None:
    data = signer.loads("session", value)
    if data is None or not all(isinstance(data.get(k), str) for k in ("t", "k", "c")):
        return None
    issued = data.get("i")
    issued = float(issued) if isinstance(issued, int | float) else float(data["exp"] - MAX_AGE_S)
    return ReviewSession(data["t"], data["k"], data["c"], data["exp"], issued)


def new_sign_in_token(signer: Signer) -> tuple[str, str]:
    """(token for the form, value for the sign-in cookie)."""
    token = secrets.token_urlsafe(24)
    return token, signer.dumps("sign-in", {"c": token, "exp": int(time.time()) + SIGN_IN_MAX_AGE_S})


def sign_in_token_matches(signer: Signer, cookie: str | None, given: str | None) -> bool:
    data = signer.loads("sign-in", cookie) if cookie else None
    return data is not None and tokens_match(str(data.get("c", "")), given)


def tokens_match(expected: str, given: str | None) -> bool:
    return same_secret(expected, given)


def same_origin(origin: str | None, host: str | None) -> bool:
    """A POST without Origin (old browsers, curl) relies on its CSRF token alone; with one, the origin's
    host must be the host the request was sent to."""
    if not origin:
        return True
    if origin == "null" or not host:
        return False
    return urlsplit(origin).netloc.lower() == host.lower()


def safe_next(path: str | None) -> str:
    """Where to go after signing in: a path of the review pages only (no open redirect)."""
    if path and path.startswith(f"{COOKIE_PATH}/") and not path.startswith("//") and "\\" not in path:
        return path
    return f"{COOKIE_PATH}/calls"
