"""The one place LiveKit's errors are read: each Twirp, SIP and transport failure becomes the
phoneagent error its callers act on, with no LiveKit or aiohttp type left in it."""

from __future__ import annotations

import aiohttp
import pytest
from livekit import api

from phoneagent.errors import (
    CallRejected,
    Conflict,
    EgressUnavailable,
    LiveKitNotFound,
    LiveKitRefused,
    TelephonyError,
)
from phoneagent.telephony.calls import outcome_of_failed_dial
from phoneagent.telephony.client import livekit_errors, translate

pytestmark = pytest.mark.unit


def _sip(code: int, reason: str) -> api.SipCallError:
    return api.SipCallError(
        "unavailable",
        "call failed",
        status=503,
        metadata={"sip_status_code": str(code), "sip_status": reason},
    )


def test_a_final_sip_response_is_a_call_rejected_with_its_code() -> None:
    err = translate(_sip(486, "Busy Here"))
    assert isinstance(err, CallRejected)
    assert (err.sip_status_code, err.sip_status_reason, err.retryable) == (486, "Busy Here", False)


@pytest.mark.parametrize(
    ("exc", "kind", "code", "retryable"),
    [
        (api.TwirpError("not_found", "room not found", status=404), LiveKitNotFound, "not_found", False),
        (
            api.TwirpError("already_exists", "number taken", status=409),
            LiveKitRefused,
            "already_exists",
            False,
        ),
        (api.TwirpError("unavailable", "no node", status=503), TelephonyError, "unavailable", True),
        (
            api.TwirpError("permission_denied", "bad key", status=401),
            TelephonyError,
            "permission_denied",
            False,
        ),
        (TimeoutError(), TelephonyError, "timeout", True),
        (aiohttp.ClientConnectionError("Cannot connect"), TelephonyError, "unreachable", True),
    ],
)
def test_each_livekit_failure_becomes_one_phoneagent_error(
    exc: BaseException, kind: type[Exception], code: str, retryable: bool
) -> None:
    err = translate(exc)
    assert type(err) is kind
    assert (getattr(err, "code", None), err.retryable) == (code, retryable)


def test_refusals_are_conflicts_for_the_api_and_egress_nobody_is_unavailable() -> None:
    assert isinstance(translate(api.TwirpError("invalid_argument", "two trunks", status=400)), Conflict)
    nobody = api.TwirpError("unavailable", "no response from servers", status=503)
    assert not isinstance(translate(nobody), EgressUnavailable)
    assert isinstance(translate(nobody, egress=True), EgressUnavailable)


def test_anything_else_is_not_translated() -> None:
    assert translate(KeyError("x")) is None
    with pytest.raises(KeyError), livekit_errors():
        raise KeyError("a bug keeps its type and traceback")


def test_the_translated_error_drops_the_original() -> None:
    with pytest.raises(TelephonyError) as info, livekit_errors(url="ws://127.0.0.1:7880"):
        raise aiohttp.ClientConnectionError("secret-bearing text")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert "127.0.0.1:7880" in info.value.message and "secret" not in str(info.value)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("canceled", "no_answer"),
        ("deadline_exceeded", "no_answer"),
        ("timeout", "no_answer"),
        ("internal", "failed"),
    ],
)
def test_a_dial_that_got_no_sip_answer(code: str, kind: str) -> None:
    assert outcome_of_failed_dial(TelephonyError(f"LiveKit API: {code}: x", code=code), 30).kind == kind
