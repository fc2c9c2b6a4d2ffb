"""LiveKit's webhooks, verified and read into phoneagent's words.

The signature (a JWT with the body's hash, made with our API secret) is checked by livekit-api's
``WebhookReceiver``; what the control plane needs from the event is copied into a ``LiveKitEvent``,
so no code outside ``telephony/`` reads LiveKit's protobuf messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from google.protobuf.json_format import MessageToDict
from livekit import api

from phoneagent.config import Settings
from phoneagent.telephony.client import livekit_credentials
from phoneagent.telephony.egress import EgressState

ParticipantKind = Literal["sip", "agent", "other"]

_KINDS: dict[int, ParticipantKind] = {
    api.ParticipantInfo.Kind.SIP: "sip",
    api.ParticipantInfo.Kind.AGENT: "agent",
}


@dataclass(frozen=True)
class LiveKitEvent:
    """One webhook event: its id and type, the room it is about, the participant (kind and
    attributes) when it is about one, the egress when it is about one, and the whole event as JSON
    (kept on the call record as evidence)."""

    id: str
    type: str  # participant_joined, participant_left, egress_updated, ...
    created_at: int  # seconds since the epoch; 0 when LiveKit did not say
    room: str
    payload: dict[str, Any]
    participant_kind: ParticipantKind | None = None
    participant_attributes: dict[str, str] = field(default_factory=dict)
    egress: EgressState | None = None

    @classmethod
    def from_webhook(cls, event: api.WebhookEvent) -> LiveKitEvent:
        room = event.room.name if event.HasField("room") else ""
        egress = EgressState.from_info(event.egress_info) if event.HasField("egress_info") else None
        if not room and egress is not None:
            room = egress.room
        participant = event.participant if event.HasField("participant") else None
        return cls(
            id=event.id,
            type=event.event,
            created_at=int(event.created_at),
            room=room,
            payload=MessageToDict(event),
            participant_kind=_KINDS.get(participant.kind, "other") if participant is not None else None,
            participant_attributes=dict(participant.attributes) if participant is not None else {},
            egress=egress,
        )


def verified_event(settings: Settings, body: str, authorization: str) -> LiveKitEvent | None:
    """The event, when LiveKit signed this body; None for anything unsigned, forged or unparseable."""
    creds = livekit_credentials(settings)
    receiver = api.WebhookReceiver(api.TokenVerifier(creds.api_key, creds.api_secret))
    try:
        return LiveKitEvent.from_webhook(receiver.receive(body, authorization))
    except Exception:  # noqa: BLE001 - any failure to verify (bad JWT, hash mismatch, bad JSON) is the same
        return None
