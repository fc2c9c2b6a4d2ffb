"""Request and response bodies (pydantic), separate from the tables. Secrets are write-only."""

from __future__ import annotations

import ipaddress
import json
import re
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from phoneagent.calls.outcome import SuccessCondition
from phoneagent.calls.outcome_schema import SchemaError, check_schema
from phoneagent.db.states import CallStatus, Direction, EndReason, RecordingStatus
from phoneagent.telephony.numbers import to_e164

T = TypeVar("T")

Name = Annotated[
    str,
    Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$", examples=["support-line"]),
]
Provider = Literal["generic", "twilio", "telnyx", "plivo", "wavix"]
Transport = Literal["udp", "tcp", "tls"]
# SRTP toward the carrier (SDES keys in the SDP): LiveKit's SIPMediaEncryption
MediaEncryption = Literal["disable", "allow", "require"]
_MEDIA_ENCRYPTION_DOC = (
    "SRTP toward the carrier: disable (plain RTP), allow (SRTP when the far end offers or accepts "
    "it), require (SRTP or no call; needs SIP over TLS, since the keys travel in the SDP). Unset on "
    "create: the operator's default (PHONEAGENT_SIP_MEDIA_ENCRYPTION)"
)
# outcome: an LLM brain records the call's outcome through its record_outcome tool
Tool = Literal["end_call", "transfer", "warm_transfer", "dtmf", "voicemail", "outcome"]
Secret = Annotated[str, Field(max_length=200, pattern=r"^[\x21-\x7e]*$")]
SipUser = Annotated[str, Field(max_length=200, pattern=r"^[A-Za-z0-9._~+-]*$")]


def _recordable(v: str) -> str:
    if v != "ogg":
        # never sent to egress: a missing GStreamer element makes the whole egress service exit
        raise ValueError(
            f"{v} cannot be recorded: it needs an AAC encoder (GStreamer's faac element), which this "
            "egress build (v1.8.6, Debian GStreamer) lacks; use ogg (Opus)"
        )
    return v


def _e164(v: str) -> str:
    return to_e164(v)


def _cidr(v: str) -> str:
    try:
        net = ipaddress.ip_network(v.strip(), strict=False)
    except ValueError:
        raise ValueError("not an IP address or CIDR, e.g. 203.0.113.0/24") from None
    if net.prefixlen < (8 if net.version == 4 else 32):
        # 0.0.0.0/0 and the like: anyone on the internet could call in on the tenant's numbers
        raise ValueError(f"{net} is too wide: list the carrier's own ranges (at most a /8, IPv6 a /32)")
    return str(net)


_HOST = re.compile(
    r"^(?=.{1,253}(:\d{1,5})?$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(:\d{1,5})?$"
)


def _host(v: str) -> str:
    if not _HOST.match(v):
        raise ValueError("not a SIP host, e.g. mytrunk.pstn.twilio.com or 203.0.113.5:5060")
    if ":" in v and not 0 < int(v.rsplit(":", 1)[1]) < 65536:
        raise ValueError("port must be 1-65535")
    return v.lower()


E164 = Annotated[str, Field(max_length=32, examples=["+14155550100"]), AfterValidator(_e164)]
Cidr = Annotated[str, Field(max_length=64, examples=["203.0.113.0/24"]), AfterValidator(_cidr)]
Host = Annotated[str, Field(max_length=260), AfterValidator(_host)]
Numbers = Annotated[list[E164], Field(min_length=1, max_length=100)]
RecordingFormat = Annotated[
    Literal["ogg", "mp4", "m4a"],
    Field(description="ogg (Opus; the only one this egress build writes): mp4/m4a are refused (422)"),
    AfterValidator(_recordable),
]
RecordingLayout = Annotated[
    Literal["dual", "mixed"],
    Field(description="dual: caller on the left channel, agent on the right; mixed: one mono channel"),
]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        None, description="pass as `cursor` to get the next page; null at the end"
    )


class Problem(BaseModel):
    error: str
    detail: list[dict[str, Any]] = []


# ---- agent profiles --------------------------------------------------------------------------------


# the most each JSON section of an agent profile may hold (a scripted flow lives in llm)
PROFILE_SECTION_BYTES = {"stt": 16 * 1024, "tts": 16 * 1024, "llm": 256 * 1024}


class AgentProfileUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    greeting: str | None = Field(None, max_length=2000)
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")
    voice: str | None = Field(None, max_length=100)
    stt: dict[str, Any] | None = None
    tts: dict[str, Any] | None = None
    llm: dict[str, Any] | None = None
    max_duration_s: int | None = Field(None, ge=10, le=14400)
    silence_timeout_s: int | None = Field(None, ge=3, le=600)
    tools: list[Tool] | None = Field(None, max_length=8)
    recording: bool | None = None
    recording_format: RecordingFormat | None = None
    recording_layout: RecordingLayout | None = None
    success: SuccessCondition | None = Field(
        None,
        description="when a call of this profile is a success, by its outcome: the intent was taken, "
        "the slots are filled, the values are held (each part given must hold); {} removes it",
    )
    outcome_schema: dict[str, Any] | None = Field(
        None,
        description="a JSON Schema the post-call extraction fills from each ended call's transcript "
        "(into outcome.extracted), when the operator turned extraction on: an object with properties "
        "of type string, number, integer or boolean, or arrays of those, with enum, required and "
        "description; other keywords are refused; {} removes it",
        examples=[
            {
                "type": "object",
                "properties": {
                    "callback_number": {"type": "string", "description": "the number to call back"},
                    "topic": {"type": "string", "enum": ["billing", "booking", "other"]},
                },
                "required": ["topic"],
            }
        ],
    )

    @field_validator("outcome_schema")
    @classmethod
    def _outcome_schema(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v:
            try:
                check_schema(v)
            except SchemaError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("stt", "tts", "llm")
    @classmethod
    def _bounded(cls, v: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        limit = PROFILE_SECTION_BYTES[info.field_name or ""]
        if v is not None and len(json.dumps(v)) > limit:
            raise ValueError(f"is over {limit // 1024} kB")
        return v


class AgentProfileCreate(AgentProfileUpdate):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "support",
                    "greeting": "Hello, how can I help?",
                    "tools": ["end_call", "transfer"],
                    "recording": True,
                }
            ]
        },
    )
    name: Name


class AgentProfileOut(_Out):
    id: str
    name: str
    greeting: str
    language: str
    voice: str
    stt: dict[str, Any]
    tts: dict[str, Any]
    llm: dict[str, Any]
    max_duration_s: int
    silence_timeout_s: int
    tools: list[str]
    recording: bool
    recording_format: str
    recording_layout: str
    success: dict[str, Any] | None
    outcome_schema: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


# ---- trunks ----------------------------------------------------------------------------------------


class InboundTrunkUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    numbers: Numbers | None = None
    allowed_addresses: list[Cidr] | None = Field(None, max_length=100)
    auth_username: SipUser | None = None
    auth_password: Secret | None = None
    media_encryption: MediaEncryption | None = Field(None, description=_MEDIA_ENCRYPTION_DOC)


class InboundTrunkCreate(InboundTrunkUpdate):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "twilio-in", "provider": "twilio", "numbers": ["+14155550100"]}]
        },
    )
    name: Name
    provider: Provider = "generic"
    numbers: Numbers = Field(min_length=1)


class InboundTrunkOut(_Out):
    id: str
    name: str
    provider: str
    numbers: list[str]
    allowed_addresses: list[str]
    auth_username: str
    has_password: bool
    media_encryption: str
    livekit_id: str | None
    created_at: datetime
    updated_at: datetime


class OutboundTrunkUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: Host | None = None
    transport: Transport | None = None
    numbers: Numbers | None = None
    auth_username: SipUser | None = None
    auth_password: Secret | None = None
    media_encryption: MediaEncryption | None = Field(None, description=_MEDIA_ENCRYPTION_DOC)
    max_concurrent_calls: int | None = Field(None, ge=1, le=1000, description="more wait in the queue")


class OutboundTrunkCreate(OutboundTrunkUpdate):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "twilio-out",
                    "provider": "twilio",
                    "address": "mytrunk.pstn.twilio.com",
                    "numbers": ["+14155550100"],
                    "auth_username": "phoneagent",
                    "auth_password": "a-long-secret",
                }
            ]
        },
    )
    name: Name
    provider: Provider = "generic"
    numbers: Numbers = Field(min_length=1)


class OutboundTrunkOut(_Out):
    id: str
    name: str
    provider: str
    address: str
    transport: str
    numbers: list[str]
    auth_username: str
    has_password: bool
    media_encryption: str
    max_concurrent_calls: int
    livekit_id: str | None
    created_at: datetime
    updated_at: datetime


# ---- dispatch rules ---------------------------------------------------------------------------------


class DispatchRuleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_profile_id: str | None = Field(None, max_length=40)

    @model_validator(mode="before")
    @classmethod
    def _rooms_are_the_servers(cls, data: Any) -> Any:
        if isinstance(data, dict) and {"room_prefix", "room_name"} & data.keys():
            raise ValueError(
                "room names are made by the server (every call gets a room of its own, named after its "
                "rule); leave out room_prefix and room_name"
            )
        return data


class DispatchRuleCreate(DispatchRuleUpdate):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "support",
                    "kind": "individual",
                    "inbound_trunk_id": "itr_...",
                    "agent_profile_id": "agt_...",
                }
            ]
        },
    )
    name: Name
    kind: Literal["individual", "callee"] = Field(
        "individual",
        description="how the call's room is named: after the caller's number (individual) or the number "
        "called (callee), each call in a room of its own. LiveKit's 'direct' rule, one room for every "
        "caller, is refused: its callers would share one call record",
    )
    inbound_trunk_id: str = Field(max_length=40)
    agent_profile_id: str = Field(max_length=40)


class DispatchRuleOut(_Out):
    id: str
    name: str
    kind: str
    room_prefix: str = Field(description="the start of its calls' room names, made by the server")
    inbound_trunk_id: str | None
    agent_profile_id: str
    livekit_id: str | None
    created_at: datetime
    updated_at: datetime


# ---- phone numbers ----------------------------------------------------------------------------------


class PhoneNumberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str | None = Field(None, max_length=100)
    agent_profile_id: str | None = Field(None, max_length=40)


class PhoneNumberCreate(PhoneNumberUpdate):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"number": "+1 415 555 0100", "label": "support"}]}
    )
    number: E164
    inbound_trunk_id: str | None = Field(None, max_length=40)


class PhoneNumberOut(_Out):
    id: str
    e164: str
    label: str
    inbound_trunk_id: str | None
    agent_profile_id: str | None
    created_at: datetime
    updated_at: datetime


# ---- calls ------------------------------------------------------------------------------------------


class CallOut(_Out):
    id: str
    direction: Direction
    status: CallStatus
    end_reason: EndReason | None
    from_number: str
    to_number: str
    agent_profile_id: str | None
    room_name: str | None
    sip_status_code: int | None
    sip_status_reason: str | None
    disconnect_reason: str | None
    created_at: datetime
    ringing_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None
    recording_status: RecordingStatus | None
    outbound_trunk_id: str | None
    campaign_id: str | None
    outcome: dict[str, Any] | None = Field(
        description="what the call came to, as its agent reported it: intent (the first taken), intents, "
        "confirmations, slots (each with the caller turn or keys it came from) and success (by the "
        "agent profile's condition; absent without one); with an agent profile's outcome_schema, "
        "extracted (the schema filled from the transcript after the call) and extraction (status done, "
        "failed or skipped, model, error, at); null when there is none"
    )
    parent_call_id: str | None = Field(
        description="a warm transfer's consultation leg (the call to the person who takes the caller "
        "over): the caller's call it was dialed for; null for every other call"
    )
    transfer: dict[str, Any] | None = Field(
        description="the call's warm transfer, as its agent last reported it: to, result (dialing, "
        "briefing, connected, no_answer, busy, declined, failed, caller_left), consultation_call_id (the "
        "leg's own record), answered_by, briefing (what the person was told), reply (how they answered), "
        "ended_by (caller or person, once a connected call is over), detail, at; null when none was tried"
    )


class OutcomeRate(_Out):
    id: str | None = Field(description="the agent profile or campaign (null: calls of no agent profile)")
    name: str | None
    ended: int = Field(description="calls that ended")
    with_outcome: int = Field(
        description="of those, calls whose agent reported an outcome, or whose outcome was extracted"
    )
    succeeded: int = Field(description="of those, calls whose outcome met the agent profile's success")
    success_rate: float | None = Field(
        description="succeeded / ended; null when the agent profile declares no success"
    )


class OutcomeRates(BaseModel):
    agent_profiles: list[OutcomeRate]
    campaigns: list[OutcomeRate]


class TurnOut(_Out):
    seq: int
    speaker: str
    text: str
    started_at: datetime | None
    ended_at: datetime | None
    stt_ms: int | None
    brain_ms: int | None
    tts_ms: int | None
    total_ms: int | None
    interrupted: bool = Field(description="the caller cut the agent's reply short; its text is what was said")
    latency_split: dict[str, int] | None = Field(
        description="agent turns: where the reply's time went in the worker, in ms, in order: vad (the "
        "silence the VAD waited for), transcript, end_of_turn (the wait for more words), brain, tts, "
        "playout (to the room)"
    )


class EventOut(_Out):
    source: str
    event_id: str
    type: str
    payload: dict[str, Any]
    occurred_at: datetime


class CallEventOut(EventOut):
    call_id: str
    cursor: str = Field(description="pass as `after` to get the events after this one")
    summary: str = Field(description="one line about the event, for people")


class EventsPage(BaseModel):
    items: list[CallEventOut]
    cursor: str = Field(description="pass as `after` to get the events that arrive after these")


class RecordingTrackOut(_Out):
    role: str = Field(description="caller | agent")
    egress_id: str
    track_id: str
    status: str = Field(description="starting | active | ending | complete | failed | aborted | lost")
    error: str | None


class CallDetail(CallOut):
    recording_egress_id: str | None = Field(description="the track egresses' ids, comma-separated")
    recording_location: str | None = Field(
        description="path inside the recordings directory, or s3://bucket/key"
    )
    recording_size_bytes: int | None
    recording_format: str | None
    recording_layout: str | None
    recording_error: str | None = Field(description="why the recording failed")
    recording_started_at: datetime | None = Field(description="the wall-clock time of its first sample")
    recording_ended_at: datetime | None
    recording_duration_ms: int | None
    recording_deleted_at: datetime | None
    recording_tracks: list[RecordingTrackOut] = Field(description="the track egresses behind it")
    legs: list[str] = Field(
        default_factory=list,
        description="the ids of the call's warm-transfer consultation legs, oldest first",
    )
    cost_telephony_microusd: int
    cost_speech_microusd: int
    cost_llm_microusd: int
    call_metadata: dict[str, Any]
    transcript: list[TurnOut]
    events: list[EventOut]
