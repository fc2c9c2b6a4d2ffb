"""LiveKit webhooks: signature checked by ``telephony.webhooks``, freshness here; stored once."""

import logging
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from phoneagent.api.deps import SessionDep, Unauthorized
from phoneagent.api.schemas import AgentProfileOut, Problem
from phoneagent.calls.consultation import TRANSFER_EVENT, TransferData, cancel_leg, open_leg
from phoneagent.calls.ingest import ingest_livekit_event
from phoneagent.calls.outcome import OutcomeData
from phoneagent.calls.worker_events import ingest_worker_events
from phoneagent.db.models import AgentProfile, Call
from phoneagent.errors import NotFound
from phoneagent.recording import lead_in
from phoneagent.signing import same_secret
from phoneagent.telephony.client import worker_token
from phoneagent.telephony.webhooks import verified_event

router = APIRouter(
    prefix="/webhooks",
    tags=["webhooks"],
    responses={
        400: {"model": Problem, "description": "the body is not parseable"},
        401: {"model": Problem, "description": "not signed by who it claims: nothing written"},
        422: {"model": Problem, "description": "invalid field (named in detail)"},
    },
)

log = logging.getLogger("phoneagent.api")

MAX_AGE_S = 300  # older events are refused as replays


@router.post(
    "/livekit",
    summary="Receive a signed LiveKit webhook",
    responses={401: {"description": "unsigned, forged or stale: nothing written"}},
)
async def livekit_webhook(request: Request, session: SessionDep) -> Any:
    body = (await request.body()).decode(errors="replace")
    auth = request.headers.get("authorization", "")
    event = await run_in_threadpool(verified_event, request.app.state.settings, body, auth)
    if event is None:
        raise Unauthorized("webhook signature is missing or invalid")
    if event.created_at and abs(time.time() - event.created_at) > MAX_AGE_S:
        raise Unauthorized("webhook is too old (replay?)")
    new, call = await run_in_threadpool(ingest_livekit_event, session, event)
    if new and event.created_at:
        request.app.state.metrics.ingest_lag.observe(max(0.0, time.time() - event.created_at))
    if new and call is not None:
        request.app.state.call_changes.notify(call.id)  # e.g. a request waiting for its answer
    bg = getattr(request.app.state, "background", None)
    if new and bg is not None:
        bg.poke()  # e.g. a track was published: the recorder starts recording it now
        if call is not None and call.direction == "inbound" and event.type == "participant_joined":
            bg.sweeper.call_arrived(call.id)  # refused at once if no worker takes it
    return {"received": event.id, "duplicate": not new}


# seconds since the epoch: from 2020 to 2100 (a timing a float cannot turn into a date is refused)
Epoch = Annotated[float, Field(ge=1_577_836_800, le=4_102_444_800)]
Seconds = Annotated[float, Field(ge=0, le=86_400)]


class WorkerEvent(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)
    event_id: str = Field(min_length=1, max_length=128)
    room: str = Field(min_length=1, max_length=128)
    # whose call it is, from the job's dispatch: an event lands on a call of this tenant (and this
    # call, when known) in this room, never on another's that happens to use the room's name
    tenant_id: str | None = Field(None, max_length=40)
    call_id: str | None = Field(None, max_length=40)
    type: str = Field(min_length=1, max_length=64)
    at: Epoch | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class TurnData(BaseModel):
    """What a ``turn`` event must carry for the record (more keys are kept as they are)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    seq: int = Field(ge=0, le=100_000)
    speaker: Literal["caller", "agent"] = "agent"
    text: str = Field("", max_length=20_000)
    started_at: Epoch | None = None
    ended_at: Epoch | None = None
    stt_s: Seconds | None = None
    brain_s: Seconds | None = None
    tts_s: Seconds | None = None
    total_s: Seconds | None = None
    interrupted: bool = False
    split_ms: dict[str, Annotated[float, Field(ge=-86_400_000, le=86_400_000)]] | None = None


class LeadInData(BaseModel):
    """The agent's first utterance as the worker sent it, for the recording (``recording/lead_in.py``)."""

    model_config = ConfigDict(allow_inf_nan=False, extra="forbid")
    started_at: Epoch
    sample_rate: Literal[8000, 16000, 24000, 48000]
    # 16-bit mono, base64: at most 5 s at 48 kHz
    pcm16: str = Field(min_length=4, max_length=640_000, pattern=r"^[A-Za-z0-9+/]+={0,2}$")


DATA_SCHEMAS: dict[str, type[BaseModel]] = {
    "turn": TurnData,
    TRANSFER_EVENT: TransferData,
    "outcome": OutcomeData,
    lead_in.EVENT: LeadInData,
}


class WorkerBatch(BaseModel):
    # each event is checked on its own: one bad event is refused by name, the others are stored
    events: list[dict[str, Any]] = Field(max_length=500)


def _checked(raw: dict[str, Any]) -> WorkerEvent:
    ev = WorkerEvent.model_validate(raw)
    schema = DATA_SCHEMAS.get(ev.type)
    if schema is not None:
        schema.model_validate(ev.data)
    return ev


def _kept(recordings: Path, ev: WorkerEvent) -> dict[str, Any]:
    """The event as stored: a lead-in's audio goes to a file beside the call's track recordings, the
    record keeps what it was (a disk that cannot take it costs the recording its first words only)."""
    raw = ev.model_dump()
    if ev.type == lead_in.EVENT:
        try:
            raw["data"] = lead_in.keep(recordings, ev.event_id, ev.data)
        except (OSError, ValueError) as exc:
            log.warning("cannot keep the agent's first words for the recording", extra={"error": str(exc)})
            raw["data"] = {k: ev.data[k] for k in ("started_at", "sample_rate")} | {"error": str(exc)[:300]}
    return raw


def _reason(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in exc.errors())[:500]


def _check_worker(request: Request) -> None:
    expected = worker_token(request.app.state.settings)
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not same_secret(expected, given):
        raise Unauthorized("wrong worker token")


# a dependency: checked before the body is validated (a stranger's batch costs no validation)
WorkerAuth = Depends(_check_worker)


@router.post(
    "/worker",
    summary="Call events from phoneagent workers (idempotent by event_id)",
    responses={401: {"description": "wrong worker token"}},
    dependencies=[WorkerAuth],
)
def worker_events(batch: WorkerBatch, session: SessionDep, request: Request) -> Any:
    """Per event: accepted (stored now, or a resend of one stored before) or rejected with the reason;
    a worker moves the rejected ones aside rather than sending them again."""
    good: list[WorkerEvent] = []
    rejected: list[dict[str, Any]] = []
    for i, raw in enumerate(batch.events):
        try:
            good.append(_checked(raw))
        except ValidationError as exc:
            event_id = raw.get("event_id")
            rejected.append(
                {
                    "index": i,
                    "event_id": event_id if isinstance(event_id, str) else None,
                    "error": _reason(exc),
                }
            )
    root = request.app.state.settings.recordings_path
    new = set(ingest_worker_events(session, [_kept(root, e) for e in good]))
    now = time.time()
    for e in good:
        if e.event_id in new and e.at is not None:
            request.app.state.metrics.worker_event_lag.observe(max(0.0, now - e.at))
    return {"accepted": [e.event_id for e in good], "new": len(new), "rejected": rejected}


@router.get(
    "/worker/agents/{agent_id}",
    summary="An agent profile, for the worker answering its call",
    dependencies=[WorkerAuth],
)
def worker_agent_profile(agent_id: str, session: SessionDep) -> Any:
    profile = session.get(AgentProfile, agent_id)
    if profile is None:
        raise NotFound(f"no agent profile with id {agent_id!r}")
    return AgentProfileOut.model_validate(profile)


class ConsultationRequest(BaseModel):
    """A warm transfer's consultation leg, asked for by the agent of the call in ``room``."""

    model_config = ConfigDict(extra="forbid")
    room: str = Field(min_length=1, max_length=128)
    tenant_id: str | None = Field(None, max_length=40)
    call_id: str | None = Field(None, max_length=40)
    to: str = Field(min_length=1, max_length=200)


class ConsultationOut(BaseModel):
    id: str
    parent_call_id: str
    room_name: str
    status: str
    end_reason: str | None = None
    sip_status_code: int | None = None
    sip_status_reason: str | None = None
    to_number: str
    ring_timeout_s: int
    answer_timeout_s: int | None = None


def _leg_out(leg: Call, answer_timeout_s: int | None = None) -> ConsultationOut:
    return ConsultationOut(
        id=leg.id,
        parent_call_id=leg.parent_call_id or "",
        room_name=leg.room_name or "",
        status=leg.status,
        end_reason=leg.end_reason,
        sip_status_code=leg.sip_status_code,
        sip_status_reason=leg.sip_status_reason,
        to_number=leg.to_number,
        ring_timeout_s=leg.ring_timeout_s,
        answer_timeout_s=answer_timeout_s,
    )


@router.post(
    "/worker/consultations",
    status_code=201,
    response_model=ConsultationOut,
    summary="Dial a warm transfer's consultation leg for the call in a room",
    responses={
        401: {"description": "wrong worker token"},
        404: {"model": Problem, "description": "no live call of this tenant in that room"},
        409: {"model": Problem, "description": "the profile or the tenant's trunks do not allow it"},
    },
    dependencies=[WorkerAuth],
)
def worker_consultation(body: ConsultationRequest, session: SessionDep, request: Request) -> Any:
    """The leg is queued and dialed like any outbound call (the tenant's and trunk's caps hold); its
    room has no agent of its own: the caller's agent joins it. 422 names a destination the call's
    agent profile does not list, or one the number policy refuses."""
    leg, spec = open_leg(
        session,
        request.app.state.settings,
        room=body.room,
        tenant_id=body.tenant_id,
        call_id=body.call_id,
        to=body.to,
    )
    session.commit()
    bg = getattr(request.app.state, "background", None)
    if bg is not None:
        bg.poke()  # the dialer dials it now
    return _leg_out(leg, spec.answer_timeout_s)


@router.get(
    "/worker/consultations/{leg_id}",
    response_model=ConsultationOut,
    summary="A consultation leg's state, for the agent waiting on it",
    dependencies=[WorkerAuth],
)
def worker_consultation_state(leg_id: str, session: SessionDep) -> Any:
    leg = session.get(Call, leg_id)
    if leg is None or leg.parent_call_id is None:
        raise NotFound(f"no consultation leg with id {leg_id!r}")
    return _leg_out(leg)


@router.post(
    "/worker/consultations/{leg_id}/cancel",
    response_model=ConsultationOut,
    summary="Give up a consultation leg nobody answered (it is never dialed afterwards)",
    dependencies=[WorkerAuth],
)
async def worker_consultation_cancel(leg_id: str, request: Request) -> Any:
    sessions = request.app.state.sessions

    def _cancel() -> tuple[bool, ConsultationOut]:
        with sessions() as session:
            leg = session.get(Call, leg_id)
            if leg is None or leg.parent_call_id is None:
                raise NotFound(f"no consultation leg with id {leg_id!r}")
            live = cancel_leg(session, leg)
            session.commit()
            return live, _leg_out(leg)

    live, leg = await run_in_threadpool(_cancel)
    request.app.state.call_changes.notify(leg_id)
    bg = getattr(request.app.state, "background", None)
    if live and bg is not None:
        await bg.dialer.hang_up(leg_id, leg.room_name)
    return leg
