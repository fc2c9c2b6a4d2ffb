"""Call events from the worker to the control plane, spooled on disk until acknowledged.

``report`` hands the event to one writer thread, which writes it to the spool directory (temp file,
fsync, rename) off the event loop; a background task sends what is in the spool in batches. The
control plane answers per event: accepted ones are deleted, rejected ones (an event it can never
take) move to ``dead/`` with a log line, and the rest of the batch goes on. A 5xx, a refused token or
no answer keeps everything on disk and retries with backoff (across worker restarts too); the
control plane applies each event id once, so a resend is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from phoneagent.private import private_dir
from phoneagent.worker import metrics

log = logging.getLogger("phoneagent.worker")

BATCH = 100
RETRY_MIN_S, RETRY_MAX_S = 0.5, 10.0
SCOPE_KEYS = ("tenant_id", "call_id")
# the answers that say the events themselves can never be taken (the batch is then split to find
# the one); any other refusal (a wrong token, a proxy's 404, a 5xx) keeps every event for later
REFUSED_STATUSES = frozenset({400, 413, 422})


class _TryLater(Exception):
    pass


class EventReporter:
    def __init__(self, *, url: str, token: str, spool_dir: Path, scope: dict[str, Any] | None = None) -> None:
        # whose call this is (the tenant and, for an outbound call, the call id from the job's
        # dispatch): sent with every event so that the control plane never files it on another's call
        self._scope = {k: str(v) for k, v in (scope or {}).items() if k in SCOPE_KEYS and v}
        self._url = url.rstrip("/") + "/webhooks/worker"
        self._token = token
        self._spool = spool_dir
        private_dir(self._spool)  # callers' words wait here
        self._dead = self._spool / "dead"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # one thread writes, in report order: the event loop never waits on the disk
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-spool")
        self._batch = BATCH
        # sends that failed (control plane unreachable, 5xx) since start: for tests and logs
        self.failed_sends = 0

    def report(self, room: str, type_: str, data: dict[str, Any] | None = None) -> str:
        event_id = uuid.uuid4().hex
        metrics.observe(type_, data or {})
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
        try:
            self._writer.submit(self._write, tmp, self._spool / name, body)
        except RuntimeError:  # reported after the reporter closed (a late callback): write it here
            self._write(tmp, self._spool / name, body)
        return event_id

    def _write(self, tmp: Path, final: Path, body: dict[str, Any]) -> None:
        try:
            with os.fdopen(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600), "w") as fh:
                json.dump(body, fh)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.rename(final)
        except Exception as exc:  # noqa: BLE001 - a full disk, a value JSON cannot hold: lost, and said
            tmp.unlink(missing_ok=True)
            log.error("cannot spool a call event", extra={"event": body["type"], "error": repr(exc)[:300]})
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    def written(self) -> None:
        """Block until every event reported so far is on disk."""
        self._writer.submit(lambda: None).result()

    def pending(self) -> list[Path]:
        return sorted(p for p in self._spool.glob("*.json") if not p.name.startswith("."))

    def start(self) -> None:
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._client = httpx.AsyncClient(timeout=5.0)
            self._task = asyncio.create_task(self._run(), name="phoneagent-event-reporter")

    async def aclose(self, *, flush_timeout: float = 3.0) -> None:
        """Try to send what is pending for a moment; what is left stays in the spool for next time."""
        if self._task is None:
            return
        deadline = time.monotonic() + flush_timeout
        await asyncio.to_thread(self.written)
        while self.pending() and time.monotonic() < deadline:
            self._wake.set()
            await asyncio.sleep(0.05)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._client is not None:
            await self._client.aclose()
        self._task = None
        self._writer.shutdown(wait=False)  # its queue is empty (written, above); the thread ends

    async def _send_once(self) -> bool:
        """Send one batch; True when the spool is empty afterwards."""
        empty = await self._send_batch()
        metrics.set_spool_depth(len(self.pending()))
        return empty

    async def _send_batch(self) -> bool:
        files, events = [], []
        for f in self.pending()[: self._batch]:
            try:
                events.append(json.loads(f.read_text()))
                files.append(f)
            except FileNotFoundError:  # another process of this worker sent it already
                continue
            except (ValueError, UnicodeDecodeError) as exc:  # torn or garbled on disk: never sendable
                self._bury(f, f"unreadable: {exc}")
        if not events:
            return not self.pending()
        if self._client is None:
            raise RuntimeError("EventReporter.send before start")
        resp = await self._client.post(
            self._url, json={"events": events}, headers={"Authorization": f"Bearer {self._token}"}
        )
        if resp.status_code >= 400 and resp.status_code not in REFUSED_STATUSES:
            raise _TryLater(f"HTTP {resp.status_code}")
        if resp.status_code >= 400:  # the batch as a whole was refused: find the event, one at a time
            if len(files) > 1:
                self._batch = 1
                return False
            self._bury(files[0], f"HTTP {resp.status_code}: {resp.text[:300]}")
            return not self.pending()
        self._batch = BATCH
        rejected = {r.get("index"): str(r.get("error", "")) for r in _rejected(resp)}
        for i, f in enumerate(files):
            if i in rejected:
                self._bury(f, rejected[i])
            else:
                f.unlink(missing_ok=True)
        return not self.pending()

    def _bury(self, f: Path, why: str) -> None:
        """Move an event the control plane can never take out of the way, and say so."""
        private_dir(self._dead)
        with contextlib.suppress(FileNotFoundError):
            f.rename(self._dead / f.name)
        log.error(
            "call event refused by the control plane; moved aside", extra={"file": str(f.name), "reason": why}
        )

    async def _run(self) -> None:
        delay = RETRY_MIN_S
        while True:
            self._wake.clear()  # before sending: an event reported meanwhile wakes the next round
            try:
                empty = await self._send_once()
            except (httpx.HTTPError, OSError, _TryLater) as exc:
                self.failed_sends += 1
                metrics.set_spool_depth(len(self.pending()))
                log.warning(
                    "control plane unreachable or not taking events now; events kept in the spool",
                    extra={"pending": len(self.pending()), "error": str(exc) or type(exc).__name__},
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):  # wait_for may swallow a cancel (3.11)
                        await self._wake.wait()
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_MIN_S
            if empty:
                await self._wake.wait()


def _rejected(resp: httpx.Response) -> list[dict[str, Any]]:
    """The per-event refusals in the control plane's answer (none from an older control plane)."""
    try:
        body = resp.json()
    except ValueError:
        return []
    found = body.get("rejected") if isinstance(body, dict) else None
    return [r for r in found if isinstance(r, dict)] if isinstance(found, list) else []
