"""The control plane's background loops (dialer, webhooks, sweeper, campaigns, recorder): one pass,
then a wait until something wakes the loop or its interval passes. A failed pass is retried on the
next tick, so a LiveKit or database that is down for a while is one warning line per pass, with the
cause, not a traceback every two seconds; anything else (a bug) keeps its traceback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable

from phoneagent.db.errors import transient as database_transient
from phoneagent.errors import PhoneagentError


def _transient(exc: BaseException | None) -> bool:
    """A dependency that is down for now. LiveKit's and the storage's failures arrive translated by
    their adapters (a ``retryable`` phoneagent error); the database's are read by ``db.errors``."""
    if isinstance(exc, PhoneagentError):
        return exc.retryable
    return isinstance(exc, (TimeoutError, ConnectionError)) or (exc is not None and database_transient(exc))


def pass_failed(log: logging.Logger, what: str) -> None:
    """Call from an ``except`` block: logs the exception being handled."""
    exc = sys.exc_info()[1]
    if _transient(exc):
        cause = f"{type(exc).__name__}: {exc}"
        log.warning(f"{what} failed; retrying", extra={"error": cause[:300]})
    else:
        log.exception(f"{what} failed; retrying")


async def run_passes(
    log: logging.Logger,
    what: str,
    one_pass: Callable[[], Awaitable[object]],
    wake: asyncio.Event,
    interval_s: float,
    *,
    more: Callable[[object], bool] = lambda _result: False,
) -> None:
    """Forever: ``one_pass()``, then wait for ``wake`` or ``interval_s``; no wait when ``more`` says
    the pass's result leaves work to do at once. A wake that comes during a pass counts (the pass may
    have missed what it was for), except after a failed pass, which always waits."""
    while True:
        wake.clear()
        try:
            result = await one_pass()
        except Exception:  # noqa: BLE001 - LiveKit, the disk or the database hiccuped: try again
            pass_failed(log, what)
            wake.clear()
            result = None
        if result is not None and more(result):
            continue
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval_s):  # wait_for may swallow a cancel (3.11)
                await wake.wait()
