"""The call lifecycle fold: every order of every scenario's events, with duplicates, gives one answer."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from phoneagent.calls.lifecycle import (
    DECLARED,
    OBSERVED,
    Fact,
    end_reason_for_sip,
    fold,
    inbound_phone_left,
    sip_final,
    sip_participant_left,
    worker_hangup,
)

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def t(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def worker_lost(at: datetime) -> Fact:
    return Fact(at, "ended", "worker_lost", OBSERVED)


# scenario -> (facts, expected status, end reason, answered, duration ms)
SCENARIOS: dict[str, tuple[list[Fact | None], str, str | None, bool, int | None]] = {
    "inbound answered, caller hangs up": (
        [Fact(t(0), "in_progress"), sip_participant_left(t(30), "CLIENT_INITIATED")],
        "ended",
        "customer_hangup",
        True,
        30_000,
    ),
    "inbound, agent says goodbye and deletes the room": (
        [
            Fact(t(0), "in_progress"),
            worker_hangup(t(20), "agent_hangup"),
            sip_participant_left(t(21), "ROOM_DELETED"),
        ],
        "ended",
        "agent_hangup",
        True,
        20_000,
    ),
    "silence timeout declared by the worker beats the room deletion it causes": (
        [
            Fact(t(0), "in_progress"),
            worker_hangup(t(40), "silence_timeout"),
            sip_participant_left(t(40), "ROOM_DELETED"),
        ],
        "ended",
        "silence_timeout",
        True,
        40_000,
    ),
    "outbound answered, callee hangs up": (
        [
            Fact(t(0), "queued"),
            Fact(t(1), "dialing"),
            Fact(t(2), "ringing"),
            Fact(t(5), "in_progress"),
            sip_participant_left(t(65), "CLIENT_INITIATED"),
        ],
        "ended",
        "customer_hangup",
        True,
        60_000,
    ),
    "outbound busy: the SIP code beats LiveKit's disconnect reason": (
        [
            Fact(t(0), "queued"),
            Fact(t(1), "dialing"),
            sip_final(t(2), 486, "Busy Here"),
            sip_participant_left(t(2), "USER_REJECTED"),
        ],
        "ended",
        "busy",
        False,
        None,
    ),
    "outbound never answered": (
        [
            Fact(t(0), "queued"),
            Fact(t(1), "dialing"),
            Fact(t(1.5), "ringing"),
            sip_final(t(31), 480, "Temporarily Unavailable"),
            sip_participant_left(t(31), "USER_UNAVAILABLE"),
        ],
        "ended",
        "no_answer",
        False,
        None,
    ),
    "outbound rejected": (
        [Fact(t(0), "queued"), Fact(t(1), "dialing"), sip_final(t(2), 603, "Decline")],
        "ended",
        "rejected",
        False,
        None,
    ),
    "outbound trunk failure": (
        [Fact(t(0), "queued"), Fact(t(1), "dialing"), sip_final(t(2), 503, "Service Unavailable")],
        "ended",
        "failed",
        False,
        None,
    ),
    "worker vanished: observed before the room was deleted for it": (
        [Fact(t(0), "in_progress"), worker_lost(t(12)), sip_participant_left(t(13), "ROOM_DELETED")],
        "ended",
        "worker_lost",
        True,
        12_000,
    ),
    "worker vanished, and the caller gave up a moment later": (
        [Fact(t(0), "in_progress"), worker_lost(t(12)), sip_participant_left(t(14), "CLIENT_INITIATED")],
        "ended",
        "worker_lost",
        True,
        12_000,
    ),
    "the SIP bridge vanished: LiveKit timed the phone's participant out": (
        [Fact(t(0), "in_progress"), sip_participant_left(t(20), "CONNECTION_TIMEOUT")],
        "ended",
        "sip_bridge_lost",
        True,
        20_000,
    ),
    "the room's media node died and no node took the room back: observed, then the room deleted": (
        [
            Fact(t(0), "in_progress"),
            Fact(t(35), "ended", "media_node_lost", OBSERVED),
            sip_participant_left(t(36), "ROOM_DELETED"),
        ],
        "ended",
        "media_node_lost",
        True,
        35_000,
    ),
    "hung up through the API while in progress": (
        [
            Fact(t(0), "queued"),
            Fact(t(1), "dialing"),
            Fact(t(3), "in_progress"),
            Fact(t(9), "ended", "api_hangup", DECLARED),
            sip_participant_left(t(9), "ROOM_DELETED"),
        ],
        "ended",
        "api_hangup",
        True,
        6_000,
    ),
    "a late 'busy' cannot rewrite an answered call": (
        [
            Fact(t(0), "in_progress"),
            sip_final(t(1), 486, "Busy Here"),
            sip_participant_left(t(30), "CLIENT_INITIATED"),
        ],
        "ended",
        "customer_hangup",
        True,
        30_000,
    ),
    "the worker may not claim a customer hangup": (
        [
            Fact(t(0), "in_progress"),
            worker_hangup(t(5), "customer_hangup"),
            sip_participant_left(t(6), "CLIENT_INITIATED"),
        ],
        "ended",
        "customer_hangup",
        True,
        6_000,
    ),
    "the room is gone and nothing says why": (
        [Fact(t(0), "in_progress"), Fact(t(50), "ended", None, 10)],
        "ended",
        "failed",
        True,
        50_000,
    ),
    "inbound: the caller cancels while it rings": (
        [
            Fact(t(0), "ringing"),
            sip_participant_left(t(2), "CLIENT_INITIATED"),
            inbound_phone_left(t(2), "hangup"),
        ],
        "ended",
        "abandoned",
        False,
        None,
    ),
    "inbound: the answer is never ACKed, the phone leaves still active and nothing proves the call up": (
        [
            Fact(t(0), "ringing"),
            sip_participant_left(t(8), "CLIENT_INITIATED"),
            inbound_phone_left(t(8), "active"),
        ],
        "ended",
        "abandoned",
        False,
        None,
    ),
    "inbound answered (the worker heard the caller), then the caller hangs up": (
        [
            Fact(t(0), "ringing"),
            Fact(t(2), "in_progress"),
            sip_participant_left(t(30), "CLIENT_INITIATED"),
            inbound_phone_left(t(30), "hangup"),
        ],
        "ended",
        "customer_hangup",
        True,
        28_000,
    ),
    "inbound answered, the agent says goodbye and the phone leaves still active": (
        [
            Fact(t(0), "ringing"),
            Fact(t(2), "in_progress"),
            worker_hangup(t(20), "agent_hangup"),
            sip_participant_left(t(21), "CLIENT_INITIATED"),
            inbound_phone_left(t(21), "active"),
        ],
        "ended",
        "agent_hangup",
        True,
        18_000,
    ),
    "inbound rings out: nobody picked up within livekit-sip's ring timeout": (
        [
            Fact(t(0), "ringing"),
            sip_participant_left(t(180), "CLIENT_INITIATED"),
            inbound_phone_left(t(180), "ringing"),
        ],
        "ended",
        "no_answer",
        False,
        None,
    ),
    "inbound hung up through the API while it rings": (
        [
            Fact(t(0), "ringing"),
            Fact(t(3), "ended", "api_hangup", DECLARED),
            sip_participant_left(t(3), "CLIENT_INITIATED"),
            inbound_phone_left(t(3), "hangup"),
        ],
        "ended",
        "api_hangup",
        False,
        None,
    ),
    "still ringing": (
        [Fact(t(0), "queued"), Fact(t(1), "dialing"), Fact(t(2), "ringing")],
        "ringing",
        None,
        False,
        None,
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_order_and_duplicate_gives_the_same_record(name: str) -> None:
    facts, status, reason, answered, duration = SCENARIOS[name]
    present = [f for f in facts if f is not None]
    results = set()
    for order in itertools.permutations(present):
        for dup in range(len(order)):  # each fact once more, anywhere
            state = fold([*order, order[dup]])
            results.add(
                (state.status, state.end_reason, state.answered_at, state.ended_at, state.duration_ms)
            )
    assert len(results) == 1, results
    got_status, got_reason, answered_at, _, got_duration = results.pop()
    assert (got_status, got_reason, answered_at is not None, got_duration) == (
        status,
        reason,
        answered,
        duration,
    )


def test_evidence_keeps_the_sip_code_and_the_disconnect_reason() -> None:
    busy = sip_final(t(1), 486, "Busy Here")
    state = fold([Fact(t(0), "dialing"), busy, sip_participant_left(t(1), "USER_REJECTED")])
    assert (state.sip_status_code, state.sip_status_reason, state.disconnect_reason) == (
        486,
        "Busy Here",
        "USER_REJECTED",
    )
    assert len(state.evidence) == 3


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (486, "busy"),
        (600, "busy"),
        (480, "no_answer"),
        (408, "no_answer"),
        (487, "no_answer"),
        (403, "rejected"),
        (404, "rejected"),
        (603, "rejected"),
        (500, "failed"),
        (503, "failed"),
        (488, "failed"),
    ],
)
def test_sip_codes_map_to_end_reasons(code: int, reason: str) -> None:
    assert end_reason_for_sip(code) == reason


def test_unknown_values_are_refused() -> None:
    with pytest.raises(ValueError, match="status"):
        Fact(t(0), "exploded")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="end reason"):
        Fact(t(0), "ended", "bored")  # type: ignore[arg-type]


def test_an_inbound_phone_without_a_call_status_says_nothing_more() -> None:
    assert inbound_phone_left(t(0), "") is None
    assert inbound_phone_left(t(0), "automation") is None
