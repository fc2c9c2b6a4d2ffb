"""phoneagent's one HMAC helper: signing with a shared secret and comparing secrets in constant time.

The outgoing webhooks' signatures (:mod:`phoneagent.webhooks`) are made here; the review pages' cookies
are signed by ``itsdangerous`` (:mod:`phoneagent.review.session`); bearer tokens, API keys and CSRF
tokens are compared with :func:`same_secret`. Standard library only: receivers of phoneagent's webhooks
import this module through :mod:`phoneagent.webhooks`.
"""

from __future__ import annotations

import hashlib
import hmac


def hmac_sha256_hex(secret: str | bytes, message: bytes) -> str:
    """HMAC-SHA256 of ``message`` under ``secret`` (a str is taken as UTF-8), as lowercase hex."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def same_secret(expected: str | bytes, given: str | bytes | None) -> bool:
    """Whether ``given`` equals ``expected``, in constant time; False for None and for an empty
    ``expected``. Compared as UTF-8 bytes: ``hmac.compare_digest`` raises on a str with non-ASCII
    characters, and a forged header or cookie may carry any."""
    if given is None or not expected:
        return False
    return hmac.compare_digest(_bytes(expected), _bytes(given))


def _bytes(text: str | bytes) -> bytes:
    # surrogatepass: even a lone surrogate (which strict UTF-8 refuses) becomes bytes, never an error
    return text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
