"""The closed sets of values that status-like columns hold, typed once for the whole stack.

The ORM maps these columns as ``Mapped[CallStatus]`` and so on, the API's schemas and the webhook
payloads use the same types, and mypy checks every assignment. The database stores them as short
strings, so adding a value needs no migration; removing one does.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from typing_extensions import TypeIs

Direction = Literal["inbound", "outbound"]

CallStatus = Literal["queued", "dialing", "ringing", "in_progress", "ended"]

EndReason = Literal[
    "customer_hangup",  # the person on the phone hung up (whichever direction the call took)
    "abandoned",  # an inbound caller hung up (CANCEL, or no ACK for the answer) before the call was up
    "agent_hangup",  # the agent ended the call (its flow or its end_call tool)
    "api_hangup",  # ended through POST /calls/{id}/hangup
    "no_answer",  # rang until the ring timeout, or 480/408/487
    "busy",  # 486/600
    "rejected",  # 403/404/603 and other refusals
    "failed",  # 5xx, trunk or media failure, or no evidence at all
    "voicemail",  # an answering machine picked up
    "transferred",  # handed to another number or SIP URI
    "max_duration",  # the profile's maximum call length was reached
    "silence_timeout",  # the caller stayed silent after the reprompt
    "worker_lost",  # the agent's worker vanished mid-call
    "over_capacity",  # no worker could take the inbound call (all lines busy): refused with 486
    "sip_bridge_lost",  # livekit-sip, which carried the phone's call, vanished mid-call
    "media_node_lost",  # the livekit-server node hosting the call's room died and the room never came back
]

# a call's recording as a whole; where its file is lives beside it
RecordingStatus = Literal["pending", "recording", "processing", "ready", "failed", "deleted"]

# one egress (one track of one call); lost: it stopped answering LiveKit's status probes
EgressStatus = Literal[
    "starting", "active", "ending", "complete", "failed", "aborted", "limit_reached", "lost"
]

DeliveryStatus = Literal["pending", "delivered", "dead"]

# a call's post-call extraction: done (the schema filled), failed (the LLM failed or answered wrong,
# attempts used up), skipped (no transcript, or extraction off)
ExtractionStatus = Literal["pending", "done", "failed", "skipped"]

CampaignStatus = Literal["running", "paused", "cancelled", "completed"]

# done: answered; failed: attempts used up
ContactStatus = Literal["pending", "calling", "done", "failed", "cancelled"]

CALL_STATUSES: Final[tuple[CallStatus, ...]] = get_args(CallStatus)
END_REASONS: Final[tuple[EndReason, ...]] = get_args(EndReason)
DIRECTIONS: Final[tuple[Direction, ...]] = get_args(Direction)


def is_call_status(value: object) -> TypeIs[CallStatus]:
    return value in CALL_STATUSES


def is_end_reason(value: object) -> TypeIs[EndReason]:
    return value in END_REASONS


def is_egress_status(value: object) -> TypeIs[EgressStatus]:
    return value in get_args(EgressStatus)


def is_campaign_status(value: object) -> TypeIs[CampaignStatus]:
    return value in get_args(CampaignStatus)
