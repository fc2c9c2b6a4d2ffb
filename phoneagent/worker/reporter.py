"""Call events from the worker to the control plane, spooled on disk until acknowledged.

``report`` writes the event to the spool directory first (atomically: temp file then rename), then a
background task sends what is in the spool in batches and deletes only what the control plane has
acknowledged. If the control plane is down, events wait on disk (across worker restarts too) and go
out, in order, when it is back; the control plane applies each event id once, so a resend is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from phoneagent.private import private_dir

log = logging.getLogger("phoneagent.worker")

BATCH = 100
RETRY_MIN_S, RETRY_MAX_S = 0.5, 10.0
SCOPE_KEYS = ("tenant_id", "call_id")


class EventReporter:
    def __init__(self, *, url: str, token: str, spool_dir: Path, scope: dict[str, Any] | None = None) -> None:
        # whose call this is (the tenant and, for an outbound call, the call id from the job's
        # dispatch): sent with every event so that the control plane never files it on another's call
        self._scope = {k: str(v) for k, v in (scope or {}).items() if k in SCOPE_KEYS and v}
        self._url = url.rstrip("/") + "/webhooks/worker"
        self._token = token
        self._spool = spool_dir
        private_dir(self._spool)  # callers' words wait here
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def report(self, room: str, type_: str, data: dict[str, Any] | None = None) -> str:
        event_id = uuid.uuid4().hex
        # time-ordered file names keep the send order; the event id makes them unique
        name = f"{time.time_ns():020d}-{event_id}.json"
        tmp = self._spool / f".{name}.tmp"
        body = {
            "event_id": event_id,
            "room": room,
            **self._scope,
            "type": type_,
            "at": time.time(),
            "data": data or {},
        }
        with os.fdopen(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600), "w") as fh:
            json.dump(body, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.rename(self._spool / name)
        self._wake.set()
        return event_id

    def pending(self) -> list[Path]:
        return sorted(p for p in self._spool.glob("*.json") if not p.name.startswith("."))

    def start(self) -> None:
        if self._task is None:
            self._client = httpx.AsyncClient(timeout=5.0)
            self._task = asyncio.create_task(self._run(), name="phoneagent-event-reporter")

    async def aclose(self, *, flush_timeout: float = 3.0) -> None:
        """Try to send what is pending for a moment; what is left stays in the spool for next time."""
        if self._task is None:
            return
        deadline = time.monotonic() + flush_timeout
        while self.pending() and time.monotonic() < deadline:
            self._wake.set()
            await asyncio.sleep(0.05)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._client is not None:
            await self._client.aclose()
        self._task = None

    async def _send_once(self) -> bool:
        """Send one batch; True when the spool is empty afterwards."""
        files = self.pending()[:BATCH]
        if not files:
            return True
        events = []
        for f in files:
            try:
                events.append(json.loads(f.read_text()))
            except FileNotFoundError:  # another process of this worker sent it already
                continue
        if self._client is None:
            raise RuntimeError("EventReporter.send before start")
        resp = await self._client.post(
            self._url, json={"events": events}, headers={"Authorization": f"Bearer {self._token}"}
        )
        resp.raise_for_status()
        for f in files:
            f.unlink(missing_ok=True)
        return len(self.pending()) == 0

    async def _run(self) -> None:
        delay = RETRY_MIN_S
        while True:
            self._wake.clear()  # before sending: an event reported meanwhile wakes the next round
            try:
                empty = await self._send_once()
            except (httpx.HTTPError, OSError) as exc:
                log.warning(
                    "control plane unreachable; events kept in the spool",
                    extra={"pending": len(self.pending()), "error": type(exc).__name__},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_MIN_S
            if empty:
                await self._wake.wait()
