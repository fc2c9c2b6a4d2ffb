"""Access log and Server-Timing, as one plain ASGI middleware.

Uvicorn's own access log prints the query string, where the call log's filters put phone numbers and
searched transcript words; this one logs method, path, status and time only. Every response carries
``Server-Timing: app;dur=<ms>`` (time until the response starts: for a rendered page, the query and the
template), which browsers' developer tools show and the review benchmark reads.
"""

from __future__ import annotations

import logging
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("phoneagent.api.access")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                ms = (time.perf_counter() - t0) * 1000
                MutableHeaders(scope=message).append("Server-Timing", f"app;dur={ms:.1f}")
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        finally:
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round((time.perf_counter() - t0) * 1000, 1),
                },
            )
