"""LiveKit's webhooks, verified: the signature (a JWT with the body's hash, made with our API secret)
is checked by livekit-api's ``WebhookReceiver``."""

from __future__ import annotations

from livekit import api

from phoneagent.config import Settings
from phoneagent.telephony.client import livekit_credentials


def verified_event(settings: Settings, body: str, authorization: str) -> api.WebhookEvent | None:
    """The event, when LiveKit signed this body; None for anything unsigned, forged or unparseable."""
    creds = livekit_credentials(settings)
    receiver = api.WebhookReceiver(api.TokenVerifier(creds.api_key, creds.api_secret))
    try:
        return receiver.receive(body, authorization)
    except Exception:  # noqa: BLE001 - any failure to verify (bad JWT, hash mismatch, bad JSON) is the same
        return None
