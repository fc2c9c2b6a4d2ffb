"""Signatures of phoneagent's outgoing webhooks, and the check a receiver runs.

Every delivery carries ``Phoneagent-Signature: t=<unix seconds>,v1=<hex>`` where ``hex`` is
HMAC-SHA256 with the endpoint's secret over ``"<t>." + raw body``. A receiver recomputes it over the
raw body it got (before any JSON parsing), compares in constant time, and refuses a ``t`` older or
newer than ``TOLERANCE_S`` (300 s) so that a captured request cannot be replayed later. Retries are
signed anew, so their ``t`` is always fresh; the event id (``Phoneagent-Event-Id``, also ``id`` in the
body) stays the same across retries: keep the ids you have processed to drop duplicates.

Receiver example (any framework; this module and :mod:`phoneagent.signing` need nothing beyond the
standard library)::

    from phoneagent.webhooks import verify, BadSignature

    def handle(headers, raw_body: bytes):
        try:
            verify(SECRET, headers["Phoneagent-Signature"], raw_body)
        except BadSignature:
            return 401
        event = json.loads(raw_body)
        if already_seen(event["id"]):
            return 200
        ...
"""

from __future__ import annotations

import time

from phoneagent.signing import hmac_sha256_hex, same_secret

TOLERANCE_S = 300


class BadSignature(Exception):
    pass


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac_sha256_hex(secret, f"{timestamp}.".encode() + body)


def sign(secret: str, body: bytes, *, now: float | None = None) -> str:
    t = int(time.time() if now is None else now)
    return f"t={t},v1={_mac(secret, t, body)}"


def verify(
    secret: str, header: str, body: bytes, *, tolerance_s: int = TOLERANCE_S, now: float | None = None
) -> int:
    """Check ``header`` against ``body``; returns the signed timestamp, raises :class:`BadSignature`."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        raise BadSignature("malformed signature header") from None
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        raise BadSignature("signature timestamp outside the tolerance (replayed or clock skew)")
    if not same_secret(_mac(secret, t, body), given):
        raise BadSignature("signature does not match the body")
    return t
