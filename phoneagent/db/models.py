"""ORM models. Every resource row belongs to a tenant; LiveKit-backed rows keep the LiveKit object id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy import false as sql_false
from sqlalchemy.orm import Mapped, mapped_column

from phoneagent.db.base import Base, new_id, utcnow
from phoneagent.db.states import (
    CallStatus,
    CampaignStatus,
    ContactStatus,
    DeliveryStatus,
    Direction,
    EgressStatus,
    EndReason,
    ExtractionStatus,
    RecordingStatus,
)


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ten"))
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the countries this tenant's calls may go to (ISO codes), set by the operator
    # (`phoneagent tenants countries`); empty: the operator's PHONEAGENT_CALL_COUNTRIES
    allowed_countries: Mapped[list[str]] = mapped_column(default=list, server_default="[]")


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("key"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(24), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    # review sessions signed in with this key before this instant are over (sign-out ends them here,
    # on the server, not only in the browser)
    sessions_after: Mapped[datetime | None] = mapped_column(default=None)


class Resource:
    """Columns every tenant-owned, updatable resource has."""

    id: Mapped[str]
    tenant_id: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LinkedResource(Resource):
    """A resource that is also an object on LiveKit (a SIP trunk or a dispatch rule)."""

    livekit_id: Mapped[str | None]


class AgentProfile(Resource, Base):
    __tablename__ = "agent_profiles"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("agt"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    greeting: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(16), default="en")
    voice: Mapped[str] = mapped_column(String(100), default="en_US-joe-medium")
    stt: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    llm: Mapped[dict[str, Any]] = mapped_column(default=dict)
    max_duration_s: Mapped[int] = mapped_column(Integer, default=1800)
    silence_timeout_s: Mapped[int] = mapped_column(Integer, default=20)
    tools: Mapped[list[str]] = mapped_column(default=list)
    recording: Mapped[bool] = mapped_column(Boolean, default=False)
    recording_format: Mapped[str] = mapped_column(String(8), default="ogg", server_default="ogg")
    recording_layout: Mapped[str] = mapped_column(String(8), default="dual", server_default="dual")
    # the condition on a call's outcome that makes it a success (phoneagent.calls.outcome); None or {}:
    # none, and the profile's calls have no success
    success: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
    # the JSON Schema (phoneagent.calls.outcome_schema's subset) the post-call extraction fills from
    # the transcript into the call's outcome.extracted; None: no extraction
    outcome_schema: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)


class InboundTrunk(LinkedResource, Base):
    __tablename__ = "inbound_trunks"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("itr"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    provider: Mapped[str] = mapped_column(String(20), default="generic")
    numbers: Mapped[list[str]] = mapped_column(default=list)
    allowed_addresses: Mapped[list[str]] = mapped_column(default=list)
    auth_username: Mapped[str] = mapped_column(String(200), default="")
    auth_password: Mapped[str] = mapped_column(String(200), default="")  # never returned, never logged
    # SRTP (SDES) toward the carrier: disable | allow | require (LiveKit's SIPMediaEncryption)
    media_encryption: Mapped[str] = mapped_column(String(8), default="disable")
    livekit_id: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)

    @property
    def has_password(self) -> bool:
        return bool(self.auth_password)


class OutboundTrunk(LinkedResource, Base):
    __tablename__ = "outbound_trunks"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("otr"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    provider: Mapped[str] = mapped_column(String(20), default="generic")
    address: Mapped[str] = mapped_column(String(255))
    transport: Mapped[str] = mapped_column(String(8), default="udp")
    numbers: Mapped[list[str]] = mapped_column(default=list)
    auth_username: Mapped[str] = mapped_column(String(200), default="")
    auth_password: Mapped[str] = mapped_column(String(200), default="")
    media_encryption: Mapped[str] = mapped_column(String(8), default="disable")  # as the inbound trunk's
    livekit_id: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    # calls this trunk carries at once; more wait in the queue
    max_concurrent_calls: Mapped[int] = mapped_column(Integer, default=10)

    @property
    def has_password(self) -> bool:
        return bool(self.auth_password)


class DispatchRule(LinkedResource, Base):
    __tablename__ = "dispatch_rules"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("dsp"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(12), default="individual")  # individual | callee
    # made by the server (provisioning.resources.room_prefix_for); a rule from before 0007 was migrated
    room_prefix: Mapped[str] = mapped_column(String(64), default="call-")
    room_name: Mapped[str] = mapped_column(String(128), default="")
    inbound_trunk_id: Mapped[str | None] = mapped_column(ForeignKey("inbound_trunks.id"), default=None)
    agent_profile_id: Mapped[str] = mapped_column(ForeignKey("agent_profiles.id"))
    livekit_id: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)


class PhoneNumber(Resource, Base):
    __tablename__ = "phone_numbers"
    __table_args__ = (UniqueConstraint("tenant_id", "e164"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("num"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    e164: Mapped[str] = mapped_column(String(20))
    label: Mapped[str] = mapped_column(String(100), default="")
    inbound_trunk_id: Mapped[str | None] = mapped_column(ForeignKey("inbound_trunks.id"), default=None)
    agent_profile_id: Mapped[str | None] = mapped_column(ForeignKey("agent_profiles.id"), default=None)


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (
        # keyset pagination: newest first within a tenant, and the same under each filter
        Index("ix_calls_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_calls_tenant_status", "tenant_id", "status", "created_at", "id"),
        Index("ix_calls_tenant_end_reason", "tenant_id", "end_reason", "created_at", "id"),
        Index("ix_calls_tenant_direction", "tenant_id", "direction", "created_at", "id"),
        Index("ix_calls_tenant_agent", "tenant_id", "agent_profile_id", "created_at", "id"),
        Index("ix_calls_tenant_from", "tenant_id", "from_number", "created_at", "id"),
        Index("ix_calls_tenant_to", "tenant_id", "to_number", "created_at", "id"),
        Index("ix_calls_room", "room_name"),
        Index("ix_calls_status_created", "status", "created_at"),  # the dialer's queue and the sweeper
        Index("ix_calls_recording", "recording_status", "recording_ended_at"),  # recorder and retention
        UniqueConstraint("tenant_id", "idempotency_key"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("call"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    direction: Mapped[Direction] = mapped_column(String(8))
    status: Mapped[CallStatus] = mapped_column(String(12), default="queued")
    end_reason: Mapped[EndReason | None] = mapped_column(String(20), default=None)
    from_number: Mapped[str] = mapped_column(String(64), default="")
    to_number: Mapped[str] = mapped_column(String(64), default="")
    agent_profile_id: Mapped[str | None] = mapped_column(ForeignKey("agent_profiles.id"), default=None)
    room_name: Mapped[str | None] = mapped_column(String(128), default=None)
    sip_call_id: Mapped[str | None] = mapped_column(String(128), default=None)
    # evidence the end reason was reconciled from
    sip_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    sip_status_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    disconnect_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ringing_at: Mapped[datetime | None] = mapped_column(default=None)
    answered_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    # the recording (see phoneagent.calls.recorder): egress ids of its tracks (comma-separated);
    # status pending | recording | processing | ready | failed | deleted; where the file is
    # (relative to the recordings directory, or s3://bucket/key); why it failed
    recording_egress_id: Mapped[str | None] = mapped_column(String(64), default=None)
    recording_status: Mapped[RecordingStatus | None] = mapped_column(String(16), default=None)
    recording_location: Mapped[str | None] = mapped_column(String(500), default=None)
    recording_size_bytes: Mapped[int | None] = mapped_column(Integer, default=None)
    recording_format: Mapped[str | None] = mapped_column(String(8), default=None)
    recording_layout: Mapped[str | None] = mapped_column(String(8), default=None)
    recording_error: Mapped[str | None] = mapped_column(String(500), default=None)
    recording_started_at: Mapped[datetime | None] = mapped_column(default=None)  # file time 0
    recording_ended_at: Mapped[datetime | None] = mapped_column(default=None)
    recording_duration_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    recording_deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    cost_telephony_microusd: Mapped[int] = mapped_column(Integer, default=0)
    cost_speech_microusd: Mapped[int] = mapped_column(Integer, default=0)
    cost_llm_microusd: Mapped[int] = mapped_column(Integer, default=0)
    call_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # outbound calls
    outbound_trunk_id: Mapped[str | None] = mapped_column(ForeignKey("outbound_trunks.id"), default=None)
    ring_timeout_s: Mapped[int] = mapped_column(Integer, default=30)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    idempotency_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    campaign_id: Mapped[str | None] = mapped_column(ForeignKey("campaigns.id"), default=None, index=True)
    # what the call came to, as its worker last reported it, with ``success`` by its profile's
    # condition (phoneagent.calls.outcome); None: the worker reported none
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
    # a warm transfer's consultation leg: the call it was dialed for (phoneagent.calls.consultation)
    parent_call_id: Mapped[str | None] = mapped_column(
        ForeignKey("calls.id", ondelete="SET NULL"), default=None, index=True
    )
    # what the call's warm transfer came to, as its worker last reported it; None: none was tried
    transfer: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)


class OutcomeExtraction(Base):
    """The post-call extraction's queue (phoneagent.calls.extraction): one row per ended call whose
    agent profile declared an outcome schema, with that schema as it was when the call ended."""

    __tablename__ = "outcome_extractions"
    __table_args__ = (Index("ix_outcome_extractions_due", "status", "next_attempt_at"),)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[ExtractionStatus] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # due from then; while an attempt runs, the end of its lease
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the attempt that holds the row: only it may record its result
    lease: Mapped[str | None] = mapped_column(String(40), default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class RecordingEgress(Base):
    """One TrackEgress of a call's recording: the caller's or the agent's audio track into its own file.

    Times in ``file_*_ns`` are egress's ``FileInfo`` (Unix nanoseconds): ``file_started_ns`` is the
    wall-clock time of the file's first sample, which aligns the two tracks when they are merged."""

    __tablename__ = "recording_egresses"
    __table_args__ = (UniqueConstraint("call_id", "role"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(8))  # caller | agent
    egress_id: Mapped[str] = mapped_column(String(64), unique=True)
    track_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[EgressStatus] = mapped_column(String(12), default="starting")
    error: Mapped[str | None] = mapped_column(String(500), default=None)
    filepath: Mapped[str] = mapped_column(String(1000))  # absolute: where egress writes the track
    file_started_ns: Mapped[int | None] = mapped_column(BigInteger, default=None)
    file_ended_ns: Mapped[int | None] = mapped_column(BigInteger, default=None)
    file_duration_ns: Mapped[int | None] = mapped_column(BigInteger, default=None)
    file_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    stop_requested_at: Mapped[datetime | None] = mapped_column(default=None)
    unanswered_probes: Mapped[int] = mapped_column(Integer, default=0)  # in a row
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CallTurn(Base):
    __tablename__ = "call_turns"
    __table_args__ = (UniqueConstraint("call_id", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(8))  # caller | agent
    text: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    # per-turn latency split (agent turns): end of speech -> final transcript -> brain -> first audio
    stt_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    brain_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    tts_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    total_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    # the agent's reply was cut short by the caller (its text is what was said before that)
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sql_false())
    # where the reply's time went, as the worker saw it (phoneagent.worker.timing.SLICES, ms)
    latency_split: Mapped[dict[str, int] | None] = mapped_column(JSON, default=None)


class CallEvent(Base):
    __tablename__ = "call_events"
    __table_args__ = (
        UniqueConstraint("source", "event_id"),
        Index("ix_call_events_call", "call_id", "occurred_at"),
        Index("ix_call_events_room", "room_name"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), default=None)
    # worker events may arrive before the call record exists: they wait here, keyed by room
    room_name: Mapped[str | None] = mapped_column(String(128), default=None)
    source: Mapped[str] = mapped_column(String(16))  # livekit | worker | sip | api
    event_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookEndpoint(Resource, Base):
    """A tenant's receiver of call webhooks; ``secret`` signs every delivery (shown once)."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("whe"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(100))
    events: Mapped[list[str]] = mapped_column(default=list)  # empty: every event type
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class WebhookDelivery(Base):
    """The outbox: one row per (endpoint, event), written in the transaction that made the event."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_tenant", "tenant_id", "status", "id"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("whd"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(100))
    event_type: Mapped[str] = mapped_column(String(40))
    call_id: Mapped[str | None] = mapped_column(String(40), default=None)
    # None until the first attempt renders it (call.ended waits for the last transcript turns)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    status: Mapped[DeliveryStatus] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Campaign(Resource, Base):
    __tablename__ = "campaigns"
    __table_args__ = (UniqueConstraint("tenant_id", "name"), Index("ix_campaigns_status", "status"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("cmp"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    agent_profile_id: Mapped[str] = mapped_column(ForeignKey("agent_profiles.id"))
    outbound_trunk_id: Mapped[str] = mapped_column(ForeignKey("outbound_trunks.id"))
    from_number: Mapped[str] = mapped_column(String(20), default="")
    concurrency: Mapped[int] = mapped_column(Integer, default=1)
    # calling window in the callee's local time, "HH:MM"
    window_start: Mapped[str] = mapped_column(String(5), default="09:00")
    window_end: Mapped[str] = mapped_column(String(5), default="20:00")
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    retry_delay_s: Mapped[int] = mapped_column(Integer, default=3600)
    retry_on: Mapped[list[str]] = mapped_column(default=lambda: ["busy", "no_answer"])
    ring_timeout_s: Mapped[int] = mapped_column(Integer, default=30)
    status: Mapped[CampaignStatus] = mapped_column(String(12), default="running")


class CampaignContact(Base):
    __tablename__ = "campaign_contacts"
    __table_args__ = (
        UniqueConstraint("campaign_id", "number"),
        Index("ix_campaign_contacts_due", "campaign_id", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(20))
    variables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    status: Mapped[ContactStatus] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_call_id: Mapped[str | None] = mapped_column(String(40), default=None)
    last_end_reason: Mapped[EndReason | None] = mapped_column(String(20), default=None)
