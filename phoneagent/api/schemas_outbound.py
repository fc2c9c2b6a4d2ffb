"""Request and response bodies of outbound calls, webhook endpoints and campaigns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from phoneagent.api.schemas import E164, Name, _Out
from phoneagent.calls.outbox import EventType
from phoneagent.db.states import CampaignStatus, DeliveryStatus
from phoneagent.urls import check_http_url


class CallCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "to": "+14155550123",
                    "agent_profile_id": "agt_...",
                    "outbound_trunk_id": "otr_...",
                    "metadata": {"order": "A-1001"},
                    "wait_until_answered": False,
                }
            ]
        },
    )
    to: E164
    agent_profile_id: str = Field(max_length=40)
    outbound_trunk_id: str | None = Field(None, max_length=40)
    from_number: E164 | None = Field(None, description="caller id; one of the trunk's numbers")
    ring_timeout_s: int = Field(30, ge=5, le=75, description="give up (no_answer) after ringing this long")
    metadata: dict[str, Any] = Field(default_factory=dict, description="kept on the call, sent to the agent")
    wait_until_answered: bool = Field(
        False, description="respond once the call is answered or has ended (at most the ring timeout)"
    )

    @field_validator("metadata")
    @classmethod
    def _small(cls, v: dict[str, Any]) -> dict[str, Any]:
        if len(repr(v)) > 8000:
            raise ValueError("metadata is limited to 8 kB")
        return v


class WebhookEndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[
        str,
        Field(max_length=2000, examples=["https://example.com/phoneagent"]),
        AfterValidator(check_http_url),
    ]
    events: list[EventType] = Field(default_factory=list, description="empty: every event type")
    enabled: bool = True


class WebhookEndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[str, Field(max_length=2000), AfterValidator(check_http_url)] | None = None
    events: list[EventType] | None = None
    enabled: bool | None = None


class WebhookEndpointOut(_Out):
    id: str
    url: str
    events: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime


class WebhookEndpointCreated(WebhookEndpointOut):
    secret: str = Field(description="signs every delivery (see the webhooks guide); shown only once")


class DeliveryOut(_Out):
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    call_id: str | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"
RetryOutcome = Literal["busy", "no_answer", "failed", "rejected"]
DEFAULT_RETRY_ON: tuple[RetryOutcome, ...] = ("busy", "no_answer")


# a contact's variables (the agent reads them): bounded, so a campaign stays a reasonable size
VarName = Annotated[str, Field(max_length=64)]
VarValue = Annotated[str, Field(max_length=500)] | int | float | bool


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. America/New_York)") from None
    return name


TimeZone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_zone)]


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: E164
    variables: dict[VarName, VarValue] = Field(default_factory=dict, max_length=50)
    timezone: TimeZone | None = Field(
        None, description="the callee's time zone; default: the number's, when it has only one"
    )


class CampaignCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "reminders",
                    "agent_profile_id": "agt_...",
                    "outbound_trunk_id": "otr_...",
                    "concurrency": 5,
                    "window_start": "09:00",
                    "window_end": "19:30",
                    "contacts": [{"number": "+14155550123", "variables": {"name": "Ada"}}],
                }
            ]
        },
    )
    name: Name
    agent_profile_id: str = Field(max_length=40)
    outbound_trunk_id: str = Field(max_length=40)
    from_number: E164 | None = None
    concurrency: int = Field(1, ge=1, le=500)
    window_start: str = Field("09:00", pattern=_HHMM, description="callee's local time, HH:MM")
    window_end: str = Field(
        "20:00",
        pattern=_HHMM,
        description="callee's local time, HH:MM, exclusive; before window_start: the window runs over "
        "midnight; equal to window_start: around the clock",
    )
    max_attempts: int = Field(3, ge=1, le=10)
    retry_delay_s: int = Field(3600, ge=1, le=7 * 86400)
    retry_on: list[RetryOutcome] = Field(default_factory=lambda: list(DEFAULT_RETRY_ON))
    ring_timeout_s: int = Field(30, ge=5, le=75)
    default_timezone: TimeZone = Field(
        "UTC",
        description="for contacts without a timezone whose number does not name one zone (+1 toll-free, "
        "prefixes across zones): set it to where most callees live",
    )
    contacts: list[ContactIn] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _unique(self) -> CampaignCreate:
        numbers = [c.number for c in self.contacts]
        if len(set(numbers)) != len(numbers):
            raise ValueError("contacts: each number may appear once")
        return self


class CampaignOut(_Out):
    id: str
    name: str
    agent_profile_id: str
    outbound_trunk_id: str
    from_number: str
    concurrency: int
    window_start: str
    window_end: str
    max_attempts: int
    retry_delay_s: int
    retry_on: list[str]
    ring_timeout_s: int
    status: CampaignStatus
    created_at: datetime
    updated_at: datetime
    progress: dict[str, int] = Field(
        default_factory=dict, description="contacts per state, and calls queued or live right now"
    )


class TrunkTestCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"to": "+14155550123", "ring_timeout_s": 20}]}
    )
    to: E164 = Field(description="a number that answers; one that echoes audio and DTMF tests both ways")
    from_number: E164 | None = Field(
        None, description="caller id; one of the trunk's numbers (default: its first)"
    )
    ring_timeout_s: int = Field(20, ge=5, le=60, description="give up after ringing this long")


class TrunkTestStep(BaseModel):
    name: Literal["invite", "ringing", "answer", "audio_from_phone", "audio_to_phone", "dtmf", "hangup"]
    result: Literal["ok", "failed", "not_seen", "not_echoed"]
    detail: str
    at_s: float | None = Field(None, description="seconds after the dial request")


class TrunkTestOut(BaseModel):
    trunk_id: str
    to: str
    from_number: str
    passed: bool = Field(description="answered, and audio came from the far end")
    steps: list[TrunkTestStep]
    sip_status_code: int | None = None
    sip_status_reason: str | None = None
    cause: str | None = Field(None, description="the likely cause of a failure")
    see: str | None = Field(None, description="where the cause and its fix are explained")
    duration_s: float
