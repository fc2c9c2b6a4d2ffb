"""A campaign of 100 numbers against a real SIP callee (sipp answers, then hangs up after a second),
with concurrency 5: every number is called and answered once, and no moment ever has more than 5
calls live, by the control plane's own count and by the call records' timings."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import httpx

from phoneagent.stack import ports
from phoneagent.stack.services import Stack
from tests.peers.sipp import SippCallee
from tests.stack_fixtures import ApiProcess

N, CONCURRENCY = 100, 5


def _free_udp(host: str) -> int:
    return next(p for p in range(36060, 36200, 2) if ports.is_free(host, p, "udp"))


def _max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    live = peak = 0
    for _, step in edges:  # at equal times an end (-1) sorts before a start (+1)
        live += step
        peak = max(peak, live)
    return peak


def test_a_campaign_never_exceeds_its_concurrency(stack: Stack, tmp_path: Path) -> None:
    host = stack.settings.bind_host
    # no worker serves this agent name: the callee alone decides how long each call lasts
    api = ApiProcess.create(
        stack.settings,
        "sqlite:///" + str(tmp_path / "cp.db"),
        tmp_path,
        PHONEAGENT_AGENT_NAME="campaign-load-nobody",
    ).start()
    peak_seen = 0
    try:
        with (
            # livekit-sip v1.8.0 sometimes leaves a participant in the room after the callee's BYE (1-2
            # of 100 calls); its sip.callStatus says hangup, and the sweeper ends that call as
            # customer_hangup from it (it used to be worker_lost, and this test failed now and then)
            SippCallee(
                "uas_answer_then_hangup", workdir=tmp_path, port=_free_udp(host), host=host, hold_ms=1000
            ) as sipp,
            httpx.Client(base_url=api.url, headers=api.headers, timeout=30) as c,
        ):
            agent = c.post("/agents", json={"name": "a"}).json()["id"]
            out = {"name": "o", "address": sipp.address, "numbers": ["+15550100"], "max_concurrent_calls": 50}
            trunk = c.post("/trunks/outbound", json=out).json()["id"]
            contacts = [{"number": f"+1415555{i:04d}", "variables": {"n": i}} for i in range(N)]
            body = {
                "name": "load",
                "agent_profile_id": agent,
                "outbound_trunk_id": trunk,
                "concurrency": CONCURRENCY,
                "window_start": "00:00",
                "window_end": "00:00",
                "contacts": contacts,
            }
            r = c.post("/campaigns", json=body)
            assert r.status_code == 201, r.text
            campaign = r.json()["id"]
            deadline = time.monotonic() + 300
            while True:
                progress = c.get(f"/campaigns/{campaign}").json()
                peak_seen = max(peak_seen, progress["progress"]["live_calls"])
                if progress["status"] == "completed":
                    break
                assert time.monotonic() < deadline, progress
                time.sleep(0.1)
            calls, cursor = [], None
            while True:
                page = c.get("/calls", params={"limit": 200, **({"cursor": cursor} if cursor else {})}).json()
                calls += page["items"]
                if not (cursor := page["next_cursor"]):
                    break
            dialed = {
                call["id"]: next(
                    e["occurred_at"]
                    for e in c.get(f"/calls/{call['id']}").json()["events"]
                    if e["type"] == "dialing"
                )
                for call in calls
            }
    finally:
        api.stop()
    assert progress["progress"]["done"] == N, progress
    assert len(calls) == N and {x["to_number"] for x in calls} == {c["number"] for c in contacts}
    assert {(x["status"], x["end_reason"]) for x in calls} == {("ended", "customer_hangup")}
    intervals = [
        (datetime.fromisoformat(dialed[x["id"]]), datetime.fromisoformat(x["ended_at"])) for x in calls
    ]
    assert 1 < _max_overlap(intervals) <= CONCURRENCY, _max_overlap(intervals)
    assert 0 < peak_seen <= CONCURRENCY
