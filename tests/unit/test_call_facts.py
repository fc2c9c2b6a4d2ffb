"""What each stored event proves about an inbound call: livekit-sip's participant joins while the
phone rings, and its last call status when it leaves tells a caller who gave up from one who hung up."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from phoneagent.calls import lifecycle as lc
from phoneagent.calls.records import facts_of
from phoneagent.db.models import Call, CallEvent
from phoneagent.db.states import Direction

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _phone(type_: str, call_status: str | None, *, direction: Direction = "inbound") -> list[lc.Fact]:
    attributes = {"sip.callStatus": call_status} if call_status is not None else {}
    participant: dict[str, Any] = {"kind": "SIP", "attributes": attributes}
    if type_ == "participant_left":
        participant["disconnectReason"] = "CLIENT_INITIATED"
    ev = CallEvent(source="livekit", type=type_, payload={"participant": participant}, occurred_at=AT)
    return facts_of(Call(direction=direction), ev)


def _worker(type_: str, data: dict[str, Any] | None = None) -> list[lc.Fact]:
    ev = CallEvent(source="worker", type=type_, payload={"data": data or {}}, occurred_at=AT)
    return facts_of(Call(direction="inbound"), ev)


def test_an_inbound_phone_joining_is_ringing_not_answered() -> None:
    assert [f.status for f in _phone("participant_joined", "ringing")] == ["ringing"]
    assert [f.status for f in _phone("participant_joined", None)] == ["ringing"]
    # a call livekit-sip answered before it joined (a PIN prompt) is up
    assert [f.status for f in _phone("participant_joined", "active")] == ["in_progress"]


def test_an_outbound_phone_joining_is_dialing_until_it_rings() -> None:
    assert [f.status for f in _phone("participant_joined", "dialing", direction="outbound")] == ["dialing"]
    assert [f.status for f in _phone("participant_joined", "ringing", direction="outbound")] == ["ringing"]


@pytest.mark.parametrize(
    ("call_status", "reasons"),
    [
        ("hangup", {"customer_hangup", "abandoned"}),
        ("active", {"customer_hangup", "abandoned"}),
        ("ringing", {"customer_hangup", "no_answer"}),
        (None, {"customer_hangup"}),
    ],
)
def test_an_inbound_phone_leaving_says_how_far_the_call_got(
    call_status: str | None, reasons: set[str]
) -> None:
    assert {f.end_reason for f in _phone("participant_left", call_status)} == reasons


def test_an_outbound_phone_leaving_is_never_an_abandoned_call() -> None:
    facts = _phone("participant_left", "hangup", direction="outbound")
    assert [f.end_reason for f in facts] == ["customer_hangup"]


def test_the_worker_answers_an_inbound_call_and_a_caller_turn_proves_it_up() -> None:
    assert [f.status for f in _worker("answered")] == ["in_progress"]
    assert [f.status for f in _worker("turn", {"speaker": "caller"})] == ["in_progress"]
    assert _worker("turn", {"speaker": "agent"}) == []


def test_a_caller_who_cancelled_is_abandoned_and_one_who_was_answered_hung_up() -> None:
    joined = _phone("participant_joined", "ringing")
    left = _phone("participant_left", "hangup")
    gave_up = lc.fold([*joined, *left])
    assert (gave_up.end_reason, gave_up.answered_at, gave_up.duration_ms) == ("abandoned", None, None)
    answered = lc.fold([*joined, *_worker("answered"), *left])
    assert (answered.end_reason, answered.answered_at) == ("customer_hangup", AT)
