"""A failed background pass: a down dependency is one warning line with its cause, a bug keeps its
traceback."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from phoneagent.calls.passes import pass_failed
from phoneagent.errors import TelephonyError

pytestmark = pytest.mark.unit
log = logging.getLogger("phoneagent.test-passes")


@pytest.mark.parametrize(
    "exc",
    [
        aiohttp.ClientConnectionError("Cannot connect to host 127.0.0.1:7880"),
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
