"""How the control plane's background loops report a failed pass: they all retry on the next tick,
so a LiveKit or database that is down for a while is one warning line per pass, with the cause,
not a traceback every two seconds; anything else (a bug) keeps its traceback."""

from __future__ import annotations

import logging
import sys

import aiohttp
from sqlalchemy.exc import OperationalError

from phoneagent.errors import TelephonyError

TRANSIENT = (aiohttp.ClientError, TimeoutError, ConnectionError, OperationalError)


def pass_failed(log: logging.Logger, what: str) -> None:
    """Call from an ``except`` block: logs the exception being handled."""
    exc = sys.exc_info()[1]
    if isinstance(exc, TRANSIENT) or (isinstance(exc, TelephonyError) and exc.retryable):
        cause = f"{type(exc).__name__}: {exc}"
        log.warning(f"{what} failed; retrying", extra={"error": cause[:300]})
    else:
        log.exception(f"{what} failed; retrying")
