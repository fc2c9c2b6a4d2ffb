"""Call routes: place an outbound call (idempotent), hang up in any state; the call log with filters,
search and keyset pagination; detail with transcript and events; the recording (with byte ranges);
the tenant's call events after a cursor (for a live tail)."""

import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy import select

from phoneagent.api import schemas as s
from phoneagent.api.deps import SessionDep, SettingsDep, TenantDep
from phoneagent.api.ratelimit import RATE_LIMITED
from phoneagent.api.routes.resources import ERRORS
from phoneagent.api.schemas_outbound import CallCreate
from phoneagent.calls import recording_state
from phoneagent.calls.changes import CallChanges, changed
from phoneagent.calls.outbound import CallRequest, place_call, request_hangup
from phoneagent.calls.outcome import OutcomeFilter, check_filter_names, success_rates
from phoneagent.calls.query import CallFilter, call_detail, events_after, list_calls
from phoneagent.calls.recordings import CONTENT_TYPES, delete_recording, recording_response
from phoneagent.calls.timeline import summarize_event
from phoneagent.db.models import Call
from phoneagent.db.states import CallStatus, Direction, EndReason
from phoneagent.errors import InvalidField
from phoneagent.provisioning.resources import get_owned
from phoneagent.provisioning.tenants import number_policy_for
from phoneagent.telephony.numbers import to_e164

router = APIRouter(prefix="/calls", tags=["calls"], responses=ERRORS)


@router.get("", response_model=s.Page[s.CallOut], summary="List calls, newest first")
def list_(
    request: Request,
    session: SessionDep,
    tenant: TenantDep,
    status: Annotated[CallStatus | None, Query()] = None,
    end_reason: Annotated[EndReason | None, Query()] = None,
    direction: Annotated[Direction | None, Query()] = None,
    number: Annotated[str | None, Query(max_length=32, description="caller or callee, any format")] = None,
    agent_id: Annotated[str | None, Query(max_length=40)] = None,
    since: Annotated[datetime | None, Query(description="created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="created before (ISO 8601)")] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=200, description="words or phrase in the transcript")
    ] = None,
    outcome_intent: Annotated[
        str | None,
        Query(
            alias="outcome.intent",
            min_length=1,
            max_length=200,
            description="the caller's reason: the first intent taken, e.g. appointment",
        ),
    ] = None,
    outcome_success: Annotated[
        bool | None,
        Query(alias="outcome.success", description="reached the agent profile's goal (true) or not (false)"),
    ] = None,
    outcome_slot: Annotated[
        list[str] | None,
        Query(
            alias="outcome.slot",
            max_length=10,
            description="<slot>:<value> (e.g. day:friday, case ignored) or <slot> (filled); repeat for more",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Any:
    check_filter_names(list(request.query_params.keys()))
    outcome = (
        OutcomeFilter.parse(outcome_intent, outcome_success, outcome_slot)
        if outcome_intent is not None or outcome_success is not None or outcome_slot
        else None
    )
    if number is not None:
        try:
            number = to_e164(number)
        except ValueError as exc:
            raise InvalidField("number", str(exc)) from None
    f = CallFilter(
        status=status,
        end_reason=end_reason,
        direction=direction,
        number=number,
        agent_profile_id=agent_id,
        since=since,
        until=until,
        q=q,
        outcome=outcome,
    )
    rows, next_cursor = list_calls(session, tenant, f, limit=limit, cursor=cursor)
    return {"items": rows, "next_cursor": next_cursor}


@router.get(
    "/events",
    response_model=s.EventsPage,
    summary="The tenant's call events in arrival order, after a cursor (poll it to follow calls live)",
)
def events(
    session: SessionDep,
    tenant: TenantDep,
    after: Annotated[
        str | None,
        Query(max_length=18, description="`cursor` of a previous answer; absent: the latest events"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    if after is not None and not (after.isascii() and after.isdigit()):
        raise InvalidField("after", "not a cursor returned by this API")
    after_id = int(after) if after is not None else None
    rows = events_after(session, tenant, after_id, limit=limit)
    items = [
        s.CallEventOut(
            call_id=str(e.call_id),
            cursor=str(e.id),
            summary=summarize_event(e.source, e.type, e.payload),
            **s.EventOut.model_validate(e).model_dump(),
        )
        for e in rows
    ]
    return s.EventsPage(items=items, cursor=items[-1].cursor if items else str(after_id or 0))


@router.get(
    "/outcomes",
    response_model=s.OutcomeRates,
    summary="Success rates: ended calls, those with an outcome and those that succeeded, per agent profile "
    "and per campaign",
)
def outcomes(
    session: SessionDep,
    tenant: TenantDep,
    since: Annotated[datetime | None, Query(description="calls created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="calls created before (ISO 8601)")] = None,
) -> Any:
    per_profile, per_campaign = success_rates(session, tenant, since=since, until=until)
    return s.OutcomeRates(
        agent_profiles=[s.OutcomeRate.model_validate(r) for r in per_profile],
        campaigns=[s.OutcomeRate.model_validate(r) for r in per_campaign],
    )


@router.get(
    "/{call_id}/recording",
    response_class=FileResponse,
    summary="The call's recording; send `Range: bytes=...` to get part of it (206), as players do to seek",
    responses={
        200: {"content": {t: {} for t in sorted(set(CONTENT_TYPES.values()))}, "description": "the file"},
        206: {"description": "the requested byte range (`Content-Range` says which)"},
        404: {"model": s.Problem, "description": "no such call for this tenant, no recording, or file gone"},
        416: {"description": "the range starts beyond the end of the file"},
    },
)
def recording(
    call_id: str,
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    download: Annotated[bool, Query(description="as an attachment rather than inline")] = False,
    range_: Annotated[str | None, Header(alias="range", include_in_schema=False)] = None,
) -> Any:
    call = get_owned(session, Call, tenant, call_id)
    return recording_response(settings, call, download=download, range_header=range_)


@router.delete(
    "/{call_id}/recording",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete the call's recording (its file or object); deleting it again changes nothing",
    responses={409: {"model": s.Problem, "description": "the recording is still being made"}},
)
def delete_recording_(
    call_id: str, session: SessionDep, tenant: TenantDep, settings: SettingsDep
) -> Response:
    call = get_owned(session, Call, tenant, call_id)
    delete_recording(session, settings, call)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{call_id}", response_model=s.CallDetail, summary="A call with its transcript and events")
def get(call_id: str, session: SessionDep, tenant: TenantDep) -> Any:
    call = get_owned(session, Call, tenant, call_id)
    turns, events = call_detail(session, call)
    fields = {
        name: getattr(call, name)
        for name in s.CallDetail.model_fields
        if name not in ("transcript", "events", "recording_tracks", "legs")
    }
    tracks = recording_state.egresses(session, call)
    legs = session.scalars(
        select(Call.id).where(Call.parent_call_id == call.id).order_by(Call.created_at, Call.id)
    ).all()
    return s.CallDetail(
        **fields,
        legs=list(legs),
        recording_tracks=[
            s.RecordingTrackOut.model_validate(tracks[r]) for r in recording_state.ROLES if r in tracks
        ],
        transcript=[s.TurnOut.model_validate(t) for t in turns],
        events=[s.EventOut.model_validate(e) for e in events],
    )


IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="the same key returns the same call (also for concurrent retries); "
        "reusing it for a different request is 409",
    ),
]


# how often a waiting request reads its call with no notice: changes made by another control-plane
# process (``PHONEAGENT_BACKGROUND=false`` here) or by worker events send none to this one
WAIT_FALLBACK_S = 1.0


def _poke(request: Request) -> None:
    bg = getattr(request.app.state, "background", None)
    if bg is not None:
        bg.poke()


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=s.CallOut,
    summary="Place an outbound call",
    description="Queues the call (status `queued`) and returns it; the dialer calls as soon as the "
    "tenant and the trunk are under their concurrency caps. Follow it with `GET /calls/{id}` or "
    "webhooks. 200 instead of 201: the Idempotency-Key matched an earlier call.",
    responses={
        200: {"model": s.CallOut, "description": "the call made earlier with this Idempotency-Key"},
        **RATE_LIMITED,
    },
)
async def place(
    body: CallCreate,
    request: Request,
    response: Response,
    tenant: TenantDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    request.app.state.limits["call"].check(tenant, "call")
    settings = request.app.state.settings
    max_queued = settings.max_queued_calls_per_tenant
    req = CallRequest(
        to=body.to,
        agent_profile_id=body.agent_profile_id,
        outbound_trunk_id=body.outbound_trunk_id,
        from_number=body.from_number,
        ring_timeout_s=body.ring_timeout_s,
        metadata=body.metadata,
    )
    sessions = request.app.state.sessions

    def _place() -> tuple[s.CallOut, bool]:
        with sessions() as session:
            numbers = number_policy_for(session, settings, tenant)
            call, created = place_call(
                session, tenant, req, idempotency_key=idempotency_key, max_queued=max_queued, numbers=numbers
            )
            session.commit()
            return s.CallOut.model_validate(call), created

    call, created = await run_in_threadpool(_place)
    if not created:
        response.status_code = status.HTTP_200_OK
    changes: CallChanges = request.app.state.call_changes
    background = getattr(request.app.state, "background", None)

    def settled(c: s.CallOut) -> bool:
        """Answered, or ended with the dialer's word on it: LiveKit's webhook that the phone left can
        come a moment before the dialer records the SIP answer (486 busy), which says why."""
        if c.status == "in_progress":
            return True
        return c.status == "ended" and (background is None or c.id not in background.dialer.dialing)

    with changes.watch(call.id) as seen:  # before the dialer is woken: no change is missed
        _poke(request)
        # no session is held while waiting: a notice of a change (or the fallback) means one short read
        deadline = time.monotonic() + body.ring_timeout_s + 20
        while body.wait_until_answered and not settled(call):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await changed(seen, min(left, WAIT_FALLBACK_S))
            call = await run_in_threadpool(_read, sessions, tenant, call.id)
    return call


def _read(sessions: Any, tenant: str, call_id: str) -> s.CallOut:
    with sessions() as session:
        return s.CallOut.model_validate(get_owned(session, Call, tenant, call_id))


@router.post(
    "/{call_id}/hangup",
    response_model=s.CallOut,
    summary="Hang up a call, whatever its state",
    description="A queued call ends at once; a dialing or ringing one is cancelled; an answered one "
    "gets a BYE. The end reason is `api_hangup`. Hanging up an ended call changes nothing.",
)
async def hangup(call_id: str, request: Request, tenant: TenantDep) -> Any:
    sessions = request.app.state.sessions

    def _request() -> tuple[bool, str | None]:
        with sessions() as session:
            call = get_owned(session, Call, tenant, call_id)
            live = request_hangup(session, call)
            session.commit()
            return live, call.room_name

    live, room = await run_in_threadpool(_request)
    request.app.state.call_changes.notify(call_id)
    bg = getattr(request.app.state, "background", None)
    if live and bg is not None:
        await bg.dialer.hang_up(call_id, room)
    elif live and room:
        from phoneagent.telephony.calls import LiveKitCalls

        lk = LiveKitCalls(request.app.state.settings)
        try:
            await lk.end_room(room)
        finally:
            await lk.aclose()
    return await run_in_threadpool(_read, sessions, tenant, call_id)
