"""Call log routes: list with filters, search and keyset pagination; detail with transcript and events."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from phoneagent.api import schemas as s
from phoneagent.api.deps import SessionDep, TenantDep
from phoneagent.api.routes.resources import ERRORS
from phoneagent.calls.query import CallFilter, call_detail, list_calls
from phoneagent.db.models import Call
from phoneagent.errors import InvalidField
from phoneagent.provisioning.resources import get_owned
from phoneagent.telephony.numbers import to_e164

router = APIRouter(prefix="/calls", tags=["calls"], responses=ERRORS)


@router.get("", response_model=s.Page[s.CallOut], summary="List calls, newest first")
def list_(
    session: SessionDep,
    tenant: TenantDep,
    status: Annotated[s.CallStatus | None, Query()] = None,
    end_reason: Annotated[s.EndReason | None, Query()] = None,
    direction: Annotated[s.Direction | None, Query()] = None,
    number: Annotated[str | None, Query(max_length=32, description="caller or callee, any format")] = None,
    agent_id: Annotated[str | None, Query(max_length=40)] = None,
    since: Annotated[datetime | None, Query(description="created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="created before (ISO 8601)")] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=200, description="words or phrase in the transcript")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Any:
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
    )
    rows, next_cursor = list_calls(session, tenant, f, limit=limit, cursor=cursor)
    return {"items": rows, "next_cursor": next_cursor}


@router.get("/{call_id}", response_model=s.CallDetail, summary="A call with its transcript and events")
def get(call_id: str, session: SessionDep, tenant: TenantDep) -> Any:
    call = get_owned(session, Call, tenant, call_id)
    turns, events = call_detail(session, call)
    fields = {
        name: getattr(call, name)
        for name in s.CallDetail.model_fields
        if name not in ("transcript", "events")
    }
    return s.CallDetail(
        **fields,
        transcript=[s.TurnOut.model_validate(t) for t in turns],
        events=[s.EventOut.model_validate(e) for e in events],
    )
