"""A caller who gives up while it rings: sipp sends INVITE, then CANCEL after 180 Ringing (at once, or
after a second of ringing), and never sends audio; livekit-sip answers the CANCEL and the INVITE gets
487. When the CANCEL crosses livekit-sip's 200 OK instead (livekit-sip v1.8.0 can answer both with 200
OK), the caller never ACKs the answer and livekit-sip hangs up a few seconds later: sipp plays that
caller too. Either way the record says the caller abandoned the call before it was answered (no
answer time, no duration), and the agent greeted nobody."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from livekit import api

from phoneagent.config import Settings
from phoneagent.stack import ports
from phoneagent.stack.services import Stack
from phoneagent.telephony.client import livekit_api
from tests.peers.processes import assert_all_gone
from tests.peers.sip_phone import wait_until
from tests.peers.sipp import SippCaller
from tests.stack_fixtures import ControlPlane, WorkerProcess


def _free_udp(host: str, start: int) -> int:
    return next(p for p in range(start, start + 200, 2) if ports.is_free(host, p, "udp"))


def _latest_ended(control_plane: ControlPlane, after: set[str]) -> dict[str, Any] | None:
    with httpx.Client(base_url=control_plane.url, headers=control_plane.headers, timeout=10) as c:
        items = c.get("/calls", params={"limit": 5}).json()["items"]
        new = [i for i in items if i["id"] not in after]
        if not new or new[0]["status"] != "ended":
            return None
        return dict(c.get(f"/calls/{new[0]['id']}").json())


def _agents_in_call_rooms(settings: Settings) -> int:
    async def count() -> int:
        async with livekit_api(settings) as lk:
            rooms = (await lk.room.list_rooms(api.ListRoomsRequest())).rooms
            n = 0
            for room in rooms:
                if room.name.startswith("dsp_"):
                    res = await lk.room.list_participants(api.ListParticipantsRequest(room=room.name))
                    n += sum(1 for p in res.participants if p.kind == api.ParticipantInfo.Kind.AGENT)
            return n

    return asyncio.run(count())


def _call_ids(control_plane: ControlPlane) -> set[str]:
    items = httpx.get(
        f"{control_plane.url}/calls", params={"limit": 50}, headers=control_plane.headers, timeout=10
    ).json()["items"]
    return {i["id"] for i in items}


@pytest.mark.parametrize(
    ("scenario", "ring_ms"),
    [("uac_cancel_while_ringing", 0), ("uac_no_ack", 0)],
    ids=["cancel-after-180", "answer-never-acked"],
)
def test_a_caller_who_gives_up_while_it_rings_is_recorded_as_abandoned(
    stack: Stack,
    control_plane: ControlPlane,
    worker: WorkerProcess,
    tmp_path: Path,
    scenario: str,
    ring_ms: int,
) -> None:
    settings = stack.settings
    host = settings.bind_host
    before = _call_ids(control_plane)
    caller = SippCaller(
        scenario,
        workdir=tmp_path,
        target=f"{host}:{settings.sip_port}",
        number=settings.dev_number,
        port=_free_udp(host, 39060),
        host=host,
        pause_ms=ring_ms,
        media_port=_free_udp(host, 39400),
    ).start()
    try:
        code = caller.wait(timeout=60)
    finally:
        caller.stop()
    trace = caller.trace()
    assert code == 0, trace
    if scenario == "uac_no_ack":
        assert "SIP/2.0 200 OK" in trace and "BYE sip:" in trace and "ACK sip:" not in trace
    else:
        assert "CANCEL sip:" in trace and "180 Ringing" in trace

    wait_until(lambda: _latest_ended(control_plane, before) is not None, timeout=30, what="the call to end")
    record = _latest_ended(control_plane, before)
    assert record is not None
    assert (record["direction"], record["end_reason"]) == ("inbound", "abandoned"), record
    assert (record["answered_at"], record["duration_ms"]) == (None, None), record
    assert record["ringing_at"] is not None
    # the agent greeted nobody: it said nothing, and it never reported the call answered
    assert [t for t in record["transcript"] if t["speaker"] == "agent"] == [], record["transcript"]
    assert not any(e["source"] == "worker" and e["type"] == "answered" for e in record["events"]), record[
        "events"
    ]
    # and its job left at once, its place on the worker free for the next caller
    wait_until(lambda: _agents_in_call_rooms(settings) == 0, timeout=15, what="the agent to leave")
    assert_all_gone({caller.pid} if caller.pid else set())
