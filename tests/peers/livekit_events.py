"""LiveKit webhook events as livekit-server sends them (protobuf JSON, signed with the API key and
secret, the body's SHA-256 in the JWT), for tests and benchmarks of POST /webhooks/livekit."""

from __future__ import annotations

import base64
import hashlib
import time

from google.protobuf.json_format import MessageToJson
from livekit import api


def signed_headers(body: str, key: str, secret: str) -> dict[str, str]:
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    token = api.AccessToken(key, secret).with_sha256(digest).to_jwt()
    return {"Authorization": token, "content-type": "application/webhook+json"}


def sip_participant_event(
    event_id: str,
    kind: str,
    room: str,
    rule_id: str,
    *,
    at: float | None = None,
    caller: str = "+14155550123",
    callee: str = "+14155550100",
    sip_call_id: str = "SCL_x",
) -> str:
    """``participant_joined`` or ``participant_left`` (the caller hung up) of a SIP caller."""
    ev = api.WebhookEvent(
        id=event_id,
        event=kind,
        created_at=int(at or time.time()),
        room=api.Room(name=room),
        participant=api.ParticipantInfo(
            identity="sip_caller",
            kind=api.ParticipantInfo.Kind.SIP,
            attributes={
                "sip.ruleID": rule_id,
                "sip.phoneNumber": caller,
                "sip.trunkPhoneNumber": callee,
                "sip.callID": sip_call_id,
            },
            disconnect_reason=(
                api.DisconnectReason.CLIENT_INITIATED
                if kind == "participant_left"
                else api.DisconnectReason.UNKNOWN_REASON
            ),
        ),
    )
    return MessageToJson(ev)
