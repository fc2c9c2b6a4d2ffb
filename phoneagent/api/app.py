"""The control plane application factory. Nothing is created at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from phoneagent import __version__
from phoneagent.api.access_log import AccessLog
from phoneagent.api.body_limit import BodyLimit
from phoneagent.api.deps import SignInRequired
from phoneagent.api.metrics import ControlPlaneMetrics
from phoneagent.api.ratelimit import RateLimiter
from phoneagent.api.routes import (
    calls,
    campaigns,
    health,
    keys,
    resources,
    review,
    trunk_tests,
    webhook_endpoints,
    webhooks,
)
from phoneagent.calls.changes import CallChanges
from phoneagent.config import Settings, get_settings
from phoneagent.db.engine import database_url, make_engine, session_factory
from phoneagent.errors import InvalidField, PhoneagentError, RequestError, StorageError, TelephonyError
from phoneagent.review.pages import STATIC_DIR, error_page, is_review_page, make_templates
from phoneagent.review.session import COOKIE_PATH, signer_for
from phoneagent.telephony.sip import LiveKitSip

log = logging.getLogger("phoneagent.api")


def _field(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _problem(
    request: Request,
    status_code: int,
    error: str,
    detail: list[dict[str, Any]] | None = None,
    *,
    hint: str = "",
    headers: dict[str, str] | None = None,
) -> Response:
    """The API's error shape, or an error page for the review pages."""
    if is_review_page(request):
        reasons = "; ".join(f"{d['field']}: {d['reason']}" for d in detail or [])
        page = error_page(request, status_code, f"{error} ({reasons})" if reasons else error, hint)
        page.headers.update(headers or {})
        return page
    return JSONResponse({"error": error, "detail": detail or []}, status_code=status_code, headers=headers)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The background work (outbox, sweeper, recorder) runs while the app serves, when configured."""
    settings: Settings = app.state.settings
    background = None
    if settings.background:
        from phoneagent.calls.background import Background

        background = Background(settings, app.state.sessions, changes=app.state.call_changes)
        background.start()
    app.state.background = background
    try:
        yield
    finally:
        if background is not None:
            await background.stop()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        lifespan=_lifespan,
        title="phoneagent",
        version=__version__,
        description="Control plane of phoneagent: SIP trunks, dispatch rules, numbers, agent profiles and "
        "call records. Authenticate with `Authorization: Bearer <API key>` (`phoneagent keys create`).",
    )
    _add_state(app, settings)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(AccessLog)
    _add_error_handlers(app)
    _add_routes(app)
    return app


def _add_state(app: FastAPI, settings: Settings) -> None:
    """What the routes share, owned by the app for its lifetime: settings, database, limits, clients."""
    engine = make_engine(database_url(settings))
    app.state.settings = settings
    app.state.limits = {
        "replay": RateLimiter(settings.webhook_replays_per_minute),
        "call": RateLimiter(settings.calls_per_minute),
        "campaign": RateLimiter(settings.campaigns_per_minute),
    }
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.call_changes = CallChanges()
    app.state.livekit_sip = LiveKitSip(settings)
    app.state.templates = make_templates()
    app.state.review_signer = signer_for(settings)

    def recreated() -> int | None:  # the provisioning upkeep runs with the background work, if here
        bg = getattr(app.state, "background", None)
        return bg.provisioning.recreated if bg is not None else None

    app.state.metrics = ControlPlaneMetrics(app.state.sessions, recreated)


def _add_routes(app: FastAPI) -> None:
    app.include_router(health.router)
    app.include_router(health.metrics_router)
    for r in resources.routers:
        app.include_router(r)
    app.include_router(trunk_tests.router)
    app.include_router(calls.router)
    app.include_router(campaigns.router)
    app.include_router(keys.router)
    app.include_router(webhook_endpoints.endpoints)
    app.include_router(webhook_endpoints.deliveries)
    app.include_router(webhooks.router)
    app.mount(f"{COOKIE_PATH}/static", StaticFiles(directory=STATIC_DIR), name="review-static")
    app.include_router(review.router)


def _add_error_handlers(app: FastAPI) -> None:
    """Every error in one of two shapes: the API's JSON problem, or an error page for the review pages."""
    app.exception_handler(RequestValidationError)(_invalid)
    app.exception_handler(StarletteHTTPException)(_http)
    app.exception_handler(SignInRequired)(_sign_in)
    app.exception_handler(RequestError)(_request_error)
    app.exception_handler(DataError)(_unstorable)
    app.exception_handler(OperationalError)(_database_error)
    app.exception_handler(InterfaceError)(_database_error)
    app.exception_handler(TelephonyError)(_telephony)
    app.exception_handler(StorageError)(_storage)
    app.exception_handler(PhoneagentError)(_other)


async def _invalid(request: Request, exc: RequestValidationError) -> Response:
    detail = [
        {"field": _field(tuple(e.get("loc", ()))), "reason": e.get("msg", "invalid")} for e in exc.errors()
    ]
    return _problem(request, 422, "invalid request", detail)


async def _http(request: Request, exc: StarletteHTTPException) -> Response:
    # framework errors (unparseable body, unknown path, wrong method) in the same shape as ours
    return _problem(request, exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))


async def _sign_in(request: Request, exc: SignInRequired) -> Response:
    # a page asked for without a session goes to the sign-in form and back; the live rows get a 401
    if request.method == "GET" and not request.url.path.endswith("/rows"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{COOKIE_PATH}/sign-in?{urlencode({'next': target})}", status_code=303)
    return _problem(request, 401, exc.message, hint=exc.hint)


async def _request_error(request: Request, exc: RequestError) -> Response:
    detail = [{"field": exc.field, "reason": exc.reason}] if isinstance(exc, InvalidField) else []
    headers = getattr(exc, "headers", None)
    return _problem(request, exc.status_code, exc.message, detail, hint=exc.hint, headers=headers)


async def _unstorable(request: Request, exc: DataError) -> Response:
    # input the database cannot hold (PostgreSQL refuses NUL bytes in text, numbers out of range):
    # the client's fault, said without the statement or its values
    log.info("request refused by the database as data", extra={"error": type(exc.orig).__name__})
    return _problem(
        request, 422, "the request holds characters or numbers the database cannot store (e.g. a NUL byte)"
    )


# SQLite's words for a database that is there but busy or not reachable right now
_SQLITE_UNAVAILABLE = ("database is locked", "unable to open database file")


def database_unavailable(exc: DBAPIError) -> bool:
    """Whether a database error means "not reachable now, try again" (the server is down or
    restarting, the connection was cut, SQLite is locked), not a broken database (a missing table, a
    full disk): those stay 500s, an operator's problem, not a client's reason to retry."""
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return True
    orig = exc.orig
    if type(orig).__module__.startswith("psycopg"):
        return isinstance(orig, psycopg.OperationalError)  # connecting failed or the server went away
    return any(words in str(orig).lower() for words in _SQLITE_UNAVAILABLE)


async def _database_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, DBAPIError) or not database_unavailable(exc):
        log.error("database error", extra={"error": type(getattr(exc, "orig", exc)).__name__}, exc_info=exc)
        return _problem(
            request, 500, "the database failed; the operator should look at the control plane log"
        )
    log.warning("database unavailable", extra={"error": type(exc.orig).__name__})
    # what the request did before the database went away may or may not have been written (a route
    # that writes twice); the client may try again, as the background loops do
    return _problem(
        request,
        503,
        "the database is unavailable; the request may not have completed, try again shortly",
        headers={"Retry-After": "5"},
    )


async def _telephony(_: Request, exc: TelephonyError) -> JSONResponse:
    log.warning("livekit call failed", extra={"error": exc.message})
    return JSONResponse(
        {"error": f"LiveKit: {exc.message}; nothing was written", "detail": []},
        status_code=503 if exc.retryable else 502,
    )


async def _storage(_: Request, exc: StorageError) -> JSONResponse:
    log.warning("recording storage failed", extra={"error": exc.message})
    return JSONResponse({"error": f"recording storage: {exc.message}", "detail": []}, status_code=503)


async def _other(_: Request, exc: PhoneagentError) -> JSONResponse:
    return JSONResponse({"error": exc.message, "detail": []}, status_code=500)
