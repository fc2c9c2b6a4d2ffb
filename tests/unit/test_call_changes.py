"""A request waiting for a call wakes on a notice that the call changed, not on a timer; a notice
that comes between its read and its wait is not lost."""

from __future__ import annotations

import asyncio
import time

import pytest

from phoneagent.calls.changes import CallChanges, changed

pytestmark = pytest.mark.unit


def test_a_waiter_wakes_on_its_calls_notice_and_only_on_its_own() -> None:
    async def scenario() -> tuple[float, float]:
        changes = CallChanges()
        with changes.watch("call_1") as seen:
            asyncio.get_running_loop().call_later(0.05, changes.notify, "call_2")
            asyncio.get_running_loop().call_later(0.1, changes.notify, "call_1")
            t0 = time.monotonic()
            await changed(seen, 30.0)
            woke = time.monotonic() - t0
            changes.notify("call_1")  # between a read and the next wait
            t1 = time.monotonic()
            await changed(seen, 30.0)
            again = time.monotonic() - t1
        assert not changes._waiters  # a finished watch leaves nothing behind
        return woke, again

    woke, again = asyncio.run(scenario())
    assert 0.08 < woke < 1.0 and again < 0.05


def test_with_no_notice_the_fallback_read_comes_after_its_interval() -> None:
    async def scenario() -> float:
        with CallChanges().watch("call_1") as seen:
            t0 = time.monotonic()
            await changed(seen, 0.05)
            return time.monotonic() - t0

    assert 0.04 < asyncio.run(scenario()) < 1.0
