"""Call log review pages, rendered on the server: sign-in with an API key (exchanged for a session
cookie), the call list (filters, transcript search, keyset pages, live rows), one call (recording,
transcript, latency, timeline) and its downloads.

Thin routes: the queries are phoneagent.calls', the shaping phoneagent.review's. Not in the OpenAPI
spec: these are pages, not API.
"""

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneagent.api.deps import CsrfCheckedDep, ReviewSessionDep, SessionDep, SettingsDep
from phoneagent.calls.query import call_detail, list_calls
from phoneagent.calls.recordings import recording_note, recording_response
from phoneagent.db.base import utcnow
from phoneagent.db.models import AgentProfile, Call
from phoneagent.db.states import CALL_STATUSES, DIRECTIONS, END_REASONS
from phoneagent.errors import Forbidden, InvalidField
from phoneagent.provisioning.keys import end_sessions, key_for_token
from phoneagent.provisioning.resources import get_owned, list_owned
from phoneagent.review import charts, views
from phoneagent.review.pages import render
from phoneagent.review.session import (
    COOKIE,
    COOKIE_PATH,
    MAX_AGE_S,
    SIGN_IN_COOKIE,
    SIGN_IN_MAX_AGE_S,
    ReviewSession,
    encode_session,
    new_session,
    new_sign_in_token,
    safe_next,
    same_origin,
    sign_in_token_matches,
)

log = logging.getLogger("phoneagent.review")
router = APIRouter(prefix="/review", include_in_schema=False)

PAGE_SIZE = 50
STATUSES = CALL_STATUSES


def _secure(request: Request) -> bool:
    # the scheme is the client's: uvicorn takes it from a trusted proxy's X-Forwarded-Proto
    return request.app.state.settings.cookie_secure or request.url.scheme == "https"


@router.get("")
def root() -> RedirectResponse:
    return RedirectResponse(f"{COOKIE_PATH}/calls", status_code=303)


# ---- sign-in / sign-out ------------------------------------------------------------------------------


def _sign_in_page(request: Request, *, next_: str, status: int = 200, **notes: str) -> HTMLResponse:
    token, cookie = new_sign_in_token(request.app.state.review_signer)
    response = render(request, "sign_in.html", {"csrf_token": token, "next": next_, **notes}, status)
    response.set_cookie(
        SIGN_IN_COOKIE,
        cookie,
        max_age=SIGN_IN_MAX_AGE_S,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.get("/sign-in")
def sign_in_form(
    request: Request,
    next: Annotated[str, Query(max_length=500)] = "",  # noqa: A002 - the query parameter's name
    signed_out: bool = False,
) -> HTMLResponse:
    notice = "You are signed out." if signed_out else ""
    return _sign_in_page(request, next_=safe_next(next), notice=notice)


@router.post("/sign-in")
def sign_in(
    request: Request,
    session: SessionDep,
    api_key: Annotated[str, Form(max_length=300)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "",  # noqa: A002 - the form field's name
) -> Response:
    signer = request.app.state.review_signer
    if not sign_in_token_matches(signer, request.cookies.get(SIGN_IN_COOKIE), csrf_token):
        raise Forbidden("the sign-in form's CSRF token is missing or wrong", hint="reload the sign-in page")
    if not same_origin(request.headers.get("origin"), request.headers.get("host")):
        raise Forbidden("the sign-in form was sent from another site")
    key = key_for_token(session, api_key.strip()) if api_key.strip() else None
    if key is None:
        log.info("review sign-in refused")
        return _sign_in_page(
            request,
            next_=safe_next(next),
            status=401,
            error="That API key is not valid. Create one with `phoneagent keys create --tenant NAME`.",
        )
    rs = new_session(key.tenant_id, key.id)
    log.info("review sign-in", extra={"tenant_id": key.tenant_id, "key": key.prefix})
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        encode_session(signer, rs),
        max_age=MAX_AGE_S,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    response.delete_cookie(SIGN_IN_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/sign-out")
def sign_out(rs: CsrfCheckedDep, session: SessionDep) -> RedirectResponse:
    # on the server too: a copy of the cookie (another browser, a stolen one) stops working now
    end_sessions(session, rs.key_id)
    response = RedirectResponse(f"{COOKIE_PATH}/sign-in?signed_out=1", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


# ---- the call list -----------------------------------------------------------------------------------


def _list_context(request: Request, session: Session, rs: ReviewSession) -> tuple[dict[str, Any], int]:
    agents = list_owned(session, AgentProfile, rs.tenant_id, limit=1000, after=None)
    lq = views.parse_list_query(
        request.query_params,
        statuses=STATUSES,
        end_reasons=END_REASONS,
        directions=DIRECTIONS,
        agent_ids=[a.id for a in agents],
    )
    rows: list[Call] = []
    next_cursor = None
    if not lq.errors:
        try:
            rows, next_cursor = list_calls(
                session, rs.tenant_id, lq.filter, limit=PAGE_SIZE, cursor=lq.cursor
            )
        except InvalidField as exc:  # a phrase with no word, a cursor not made here
            lq.errors[exc.field if exc.field in lq.form else "cursor"] = exc.reason
    live = not lq.errors and (lq.cursor is None or any(c.status != "ended" for c in rows))
    ctx = {
        "rs": rs,
        "lq": lq,
        "calls": rows,
        "now": utcnow(),
        "agents": {a.id: a.name for a in agents},
        "statuses": STATUSES,
        "end_reasons": END_REASONS,
        "directions": DIRECTIONS,
        "next_link": lq.link(cursor=next_cursor) if next_cursor else None,
        "first_link": lq.link() if lq.cursor else None,
        "live_src": f"{COOKIE_PATH}/calls/rows?{lq.link(cursor=lq.cursor)}" if live else None,
    }
    return ctx, 422 if lq.errors else 200


@router.get("/calls")
def calls_page(request: Request, session: SessionDep, rs: ReviewSessionDep) -> HTMLResponse:
    ctx, status = _list_context(request, session, rs)
    return render(request, "calls.html", ctx, status)


@router.get("/calls/rows")
def calls_rows(request: Request, session: SessionDep, rs: ReviewSessionDep) -> HTMLResponse:
    """The list's rows alone, polled by the page while calls are in progress."""
    ctx, status = _list_context(request, session, rs)
    return render(request, "_rows.html", ctx, status)


# ---- one call ----------------------------------------------------------------------------------------


@router.get("/calls/{call_id}")
def call_page(
    call_id: str, request: Request, session: SessionDep, settings: SettingsDep, rs: ReviewSessionDep
) -> HTMLResponse:
    call = get_owned(session, Call, rs.tenant_id, call_id)
    turns, events = call_detail(session, call)
    agent = session.get(AgentProfile, call.agent_profile_id) if call.agent_profile_id else None
    note = recording_note(settings, call)
    rows = charts.latency_rows(turns)
    who, what = views.end_reason_text(call)
    turn_views = views.turn_views(call, turns)
    ctx = {
        "rs": rs,
        "call": call,
        "agent_name": agent.name if agent and agent.tenant_id == rs.tenant_id else None,
        "turns": turn_views,
        "outcome": views.outcome_view(call, turn_views),
        "events": views.event_views(call, events),
        "ended_by": who,
        "end_text": what,
        "recording_note": note,
        "latency_rows": rows,
        "latency_svg": charts.latency_svg(rows) if rows else None,
        "segments": charts.SEGMENTS,
        # a warm transfer: the caller's call links its legs, a leg links the caller's call
        "legs": session.scalars(
            select(Call)
            .where(Call.parent_call_id == call.id, Call.tenant_id == rs.tenant_id)
            .order_by(Call.created_at)
        ).all(),
    }
    return render(request, "call.html", ctx)


@router.get("/calls/{call_id}/recording")
def call_recording(
    call_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    rs: ReviewSessionDep,
    download: bool = False,
) -> Response:
    call = get_owned(session, Call, rs.tenant_id, call_id)
    return recording_response(settings, call, download=download, range_header=request.headers.get("range"))


def _transcript(session: Session, rs: ReviewSession, call_id: str) -> tuple[Call, list[views.TurnView]]:
    call = get_owned(session, Call, rs.tenant_id, call_id)
    turns, _ = call_detail(session, call)
    return call, views.turn_views(call, turns)


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}


@router.get("/calls/{call_id}/transcript.json")
def transcript_json(call_id: str, session: SessionDep, rs: ReviewSessionDep) -> JSONResponse:
    call, turns = _transcript(session, rs, call_id)
    return JSONResponse(views.transcript_json(call, turns), headers=_attachment(f"{call.id}-transcript.json"))


@router.get("/calls/{call_id}/transcript.txt")
def transcript_txt(call_id: str, session: SessionDep, rs: ReviewSessionDep) -> PlainTextResponse:
    call, turns = _transcript(session, rs, call_id)
    return PlainTextResponse(
        views.transcript_text(call, turns), headers=_attachment(f"{call.id}-transcript.txt")
    )
