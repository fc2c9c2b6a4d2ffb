"""A failed background pass: a down dependency is one warning line with its cause, a bug keeps its
traceback."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

import aiohttp
import pytest
from sqlalchemy.exc import OperationalError

from phoneagent.calls.passes import pass_failed, run_passes
from phoneagent.errors import TelephonyError
from phoneagent.telephony.client import translate

pytestmark = pytest.mark.unit
log = logging.getLogger("phoneagent.test-passes")


@pytest.mark.parametrize(
    "exc",
    [
        # LiveKit's transport errors reach a pass only as the telephony adapter translated them
        translate(aiohttp.ClientConnectionError("Cannot connect to host 127.0.0.1:7880")),
        OperationalError("SELECT 1", {}, Exception("database is locked")),
        TimeoutError(),
        ConnectionRefusedError(111, "refused"),
        TelephonyError("LiveKit API: unavailable", retryable=True),
    ],
)
def test_a_dependency_that_is_down_is_one_warning_with_its_cause(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=log.name):
        try:
            raise exc
        except Exception:  # noqa: BLE001
            pass_failed(log, "sweep")
    (rec,) = caplog.records
    assert (rec.levelno, rec.getMessage(), rec.exc_info) == (logging.WARNING, "sweep failed; retrying", None)
    assert type(exc).__name__ in rec.error  # type: ignore[attr-defined]


@pytest.mark.parametrize("exc", [KeyError("status"), TelephonyError("LiveKit refused", retryable=False)])
def test_anything_else_keeps_its_traceback(exc: Exception, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=log.name):
        try:
            raise exc
        except Exception:  # noqa: BLE001
            pass_failed(log, "dialer pass")
    (rec,) = caplog.records
    assert rec.levelno == logging.ERROR and rec.exc_info is not None and rec.exc_info[1] is exc


class _CountedWake(asyncio.Event):
    """A wake-up that comes at once, counting how often the loop waited for it."""

    waits = 0

    async def wait(self) -> Literal[True]:
        self.waits += 1
        return True


def test_a_loop_goes_on_after_a_failed_pass_and_at_once_while_a_pass_leaves_more() -> None:
    results: list[object] = [RuntimeError("database is locked"), 3, 0, asyncio.CancelledError()]
    passes = 0

    async def one_pass() -> object:
        nonlocal passes
        passes += 1
        r = results.pop(0)
        if isinstance(r, BaseException):
            raise r
        return r

    async def scenario() -> _CountedWake:
        wake = _CountedWake()
        with pytest.raises(asyncio.CancelledError):  # the fourth pass ends the loop
            await run_passes(log, "test pass", one_pass, wake, 60.0, more=bool)
        return wake

    wake = asyncio.run(scenario())
    # waited after the failure and after the pass that left nothing (0), not after the one that left 3
    assert (passes, wake.waits) == (4, 2)
