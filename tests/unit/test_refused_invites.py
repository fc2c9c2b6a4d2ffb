"""Reading the INVITEs livekit-sip refused out of its log (lines in its own v1.8.0 format)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from phoneagent.stack.refused import DROPPED, refused_invites

pytestmark = pytest.mark.unit

NO_RULE = "Rejecting inbound call, doesn't match any Dispatch Rules"
CHALLENGE = "No Proxy header found. Sending 407 Unauthorized response with Proxy-Authenticate header"


def _line(at: str, message: str, call_id: str, **fields: str) -> str:
    body = json.dumps({"nodeID": "NE_x", "callID": call_id, **fields})
    return f"{at}\tINFO\tsip\tsip/inbound.go:397\t{message}\t{body}\n"


def test_refusals_and_drops_are_listed_and_calls_that_went_on_are_not(tmp_path: Path) -> None:
    who = {"fromUser": "+14155550100", "fromIP": "203.0.113.7", "toUser": "+15550100"}
    log = tmp_path / "livekit-sip.log"
    log.write_text(
        "some line livekit-sip prints at start\n"
        + _line("2026-11-30T05:00:00.000Z", "processing invite", "SCL_answered", **who)
        + _line("2026-11-30T05:00:00.100Z", "Joining room", "SCL_answered")
        + _line("2026-11-30T05:00:01.000Z", "processing invite", "SCL_nomatch", **who)
        + _line("2026-11-30T05:00:01.010Z", "Rejecting inbound, doesn't match any Trunks", "SCL_nomatch")
        + _line("2026-11-30T05:00:02.000Z", "processing invite", "SCL_norule", **who)
        + _line(
            "2026-11-30T05:00:02.050Z",
            "Rejecting inbound call, doesn't match any Dispatch Rules",
            "SCL_norule",
        )
        + _line("2026-11-30T05:00:03.000Z", "processing invite", "SCL_flood", **who)
        + _line("2026-11-30T05:00:03.500Z", "processing invite", "SCL_challenged", **who)
        + _line("2026-11-30T05:00:03.510Z", CHALLENGE, "SCL_challenged")
        + _line("2026-11-30T05:00:03.600Z", "processing invite", "SCL_authed", **who)
        + _line("2026-11-30T05:00:03.610Z", CHALLENGE, "SCL_authed")
        + _line("2026-11-30T05:00:03.700Z", "Joining room", "SCL_authed")  # it answered the challenge
        + _line("2026-11-30T05:00:09.000Z", "processing invite", "SCL_just_now", **who)
    )
    found = refused_invites(log, settled_before=datetime(2026, 11, 30, 5, 0, 5, tzinfo=UTC))
    assert [(r.call_id, r.why.split(":")[0]) for r in found] == [
        ("SCL_nomatch", "404"),
        ("SCL_norule", "404"),
        ("SCL_flood", DROPPED.split(":")[0]),
        ("SCL_challenged", "407"),
    ]
    assert (found[0].from_user, found[0].from_ip, found[0].to_user) == (
        "+14155550100",
        "203.0.113.7",
        "+15550100",
    )
    assert "no dispatch rule" in found[1].why
    # without a settling time nothing counts as dropped: it may still be setting up
    assert [r.call_id for r in refused_invites(log)] == ["SCL_nomatch", "SCL_norule", "SCL_challenged"]
    assert refused_invites(tmp_path / "absent.log") == []
