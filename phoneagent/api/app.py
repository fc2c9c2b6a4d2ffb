"""The control plane application factory. Nothing is created at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from phoneagent import __version__
from phoneagent.api.routes import calls, campaigns, health, resources, webhook_endpoints, webhooks
from phoneagent.config import Settings, get_settings
from phoneagent.db.engine import database_url, make_engine, session_factory
from phoneagent.errors import InvalidField, PhoneagentError, RequestError, TelephonyError
from phoneagent.telephony.sip import LiveKitSip

log = logging.getLogger("phoneagent.api")


def _field(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        background = None
        if settings.background:
            from phoneagent.calls.background import Background

            background = Background(settings, app.state.sessions)
            background.start()
        app.state.background = background
        try:
            yield
        finally:
            if background is not None:
                await background.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="phoneagent",
        version=__version__,
        description="Control plane of phoneagent: SIP trunks, dispatch rules, numbers, agent profiles and "
        "call records. Authenticate with `Authorization: Bearer <API key>` (`phoneagent keys create`).",
    )
    engine = make_engine(database_url(settings))
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.livekit_sip = LiveKitSip(settings)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"field": _field(tuple(e.get("loc", ()))), "reason": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        return JSONResponse({"error": "invalid request", "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # framework errors (unparseable body, unknown path, wrong method) in the same shape as ours
        return JSONResponse(
            {"error": str(exc.detail), "detail": []},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
        detail = [{"field": exc.field, "reason": exc.reason}] if isinstance(exc, InvalidField) else []
        return JSONResponse({"error": exc.message, "detail": detail}, status_code=exc.status_code)

    @app.exception_handler(TelephonyError)
    async def _telephony(_: Request, exc: TelephonyError) -> JSONResponse:
        log.warning("livekit call failed", extra={"error": exc.message})
        return JSONResponse(
            {"error": f"LiveKit: {exc.message}; nothing was written", "detail": []},
            status_code=503 if exc.retryable else 502,
        )

    @app.exception_handler(PhoneagentError)
    async def _other(_: Request, exc: PhoneagentError) -> JSONResponse:
        return JSONResponse({"error": exc.message, "detail": []}, status_code=500)

    app.include_router(health.router)
    for r in resources.routers:
        app.include_router(r)
    app.include_router(calls.router)
    app.include_router(campaigns.router)
    app.include_router(webhook_endpoints.endpoints)
    app.include_router(webhook_endpoints.deliveries)
    app.include_router(webhooks.router)
    return app
