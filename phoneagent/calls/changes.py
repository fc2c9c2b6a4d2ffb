"""In-process notice that a call's record changed, so that a request waiting for a call (``POST
/calls`` with ``wait_until_answered``) wakes when the dialer records the answer, or a LiveKit
webhook or the sweeper ends the call, instead of reading the database every fraction of a second.

A notice only says "read the record again": the record stays the truth. Changes made by another
control-plane process send no notice here, so a waiter also reads the record every ``fallback_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class CallChanges:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def notify(self, call_id: str) -> None:
        """The record of ``call_id`` changed (call on the event loop)."""
        for event in self._waiters.get(call_id, ()):
            event.set()

    @contextlib.contextmanager
    def watch(self, call_id: str) -> Iterator[asyncio.Event]:
        """An event set by every notice for ``call_id`` while the block runs: enter it *before* the
        first read, clear it before each read, so no change between a read and the wait is missed."""
        event = asyncio.Event()
        self._waiters.setdefault(call_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(call_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[call_id]


async def changed(event: asyncio.Event, timeout_s: float) -> None:
    """Until ``event`` is set or ``timeout_s`` passes; then the event is clear for the next wait."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):  # wait_for may swallow a cancel (3.11)
            await event.wait()
    event.clear()
