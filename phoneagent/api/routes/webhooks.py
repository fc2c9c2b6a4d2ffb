"""LiveKit webhooks: signature checked by ``telephony.webhooks``, freshness here; stored once."""

import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from phoneagent.api.deps import SessionDep, Unauthorized
from phoneagent.api.schemas import AgentProfileOut, Problem
from phoneagent.calls.ingest import ingest_livekit_event
from phoneagent.calls.worker_events import ingest_worker_events
from phoneagent.db.models import AgentProfile
from phoneagent.errors import NotFound
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
    if new and call is not None:
        request.app.state.call_changes.notify(call.id)  # e.g. a request waiting for its answer
    bg = getattr(request.app.state, "background", None)
    if new and bg is not None:
        bg.poke()  # e.g. a track was published: the recorder starts recording it now
    return {"received": event.id, "duplicate": not new}


class WorkerEvent(BaseModel):
    event_id: str = Field(min_length=1, max_length=128)
    room: str = Field(min_length=1, max_length=128)
    # whose call it is, from the job's dispatch: an event lands on a call of this tenant (and this
    # call, when known) in this room, never on another's that happens to use the room's name
    tenant_id: str | None = Field(None, max_length=40)
    call_id: str | None = Field(None, max_length=40)
    type: str = Field(min_length=1, max_length=64)
    at: float | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class WorkerBatch(BaseModel):
    events: list[WorkerEvent] = Field(max_length=500)


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
def worker_events(batch: WorkerBatch, session: SessionDep) -> Any:
    new = ingest_worker_events(session, [e.model_dump() for e in batch.events])
    return {"accepted": len(batch.events), "new": new}


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
