"""The worker's event reporter against a local HTTP server that speaks the control plane's
``POST /webhooks/worker`` answer: per event accepted or rejected, a 5xx, a whole-batch 422."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from phoneagent.worker.reporter import EventReporter
from tests.peers.local_server import LocalServer

pytestmark = pytest.mark.unit


class FakeControlPlane(LocalServer):
    """Stores events by id; refuses the ones named in ``refuse``; answers ``status`` when set."""

    def __init__(self) -> None:
        super().__init__()
        self.stored: list[str] = []
        self.refuse: set[str] = set()
        self.status: int | None = None
        self.refuse_whole_batch_with: set[str] = set()  # a 422 for any batch holding one of these
        self.app.router.add_post("/webhooks/worker", self._events)

    async def _events(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.record(request, body=body)
        if self.status is not None:
            return web.json_response({"error": "down (fake)"}, status=self.status)
        events: list[dict[str, Any]] = body["events"]
        if any(e["event_id"] in self.refuse_whole_batch_with for e in events):
            return web.json_response({"error": "invalid", "detail": []}, status=422)
        accepted, rejected = [], []
        for i, e in enumerate(events):
            if e["event_id"] in self.refuse:
                rejected.append({"index": i, "event_id": e["event_id"], "error": "data.seq: Field required"})
            else:
                accepted.append(e["event_id"])
                if e["event_id"] not in self.stored:
                    self.stored.append(e["event_id"])
        return web.json_response({"accepted": accepted, "new": len(accepted), "rejected": rejected})


async def _until(predicate: Any, what: str) -> None:
    try:
        async with asyncio.timeout(10):
            while not predicate():  # noqa: ASYNC110 - polls the disk and the fake's record
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"no {what} within 10 s") from None


def _dead(spool: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((spool / "dead").glob("*.json"))]


async def test_a_rejected_event_moves_aside_and_the_rest_of_its_batch_is_delivered_in_order(
    tmp_path: Path,
) -> None:
    async with FakeControlPlane() as cp:
        rep = EventReporter(url=cp.url, token="t", spool_dir=tmp_path)
        ids = [rep.report("call-x", "turn", {"seq": i}) for i in range(5)]
        cp.refuse = {ids[2]}
        rep.start()
        await _until(lambda: not rep.pending(), "the spool to empty")
        await rep.aclose()
    assert cp.stored == [ids[0], ids[1], ids[3], ids[4]]
    assert [e["event_id"] for e in _dead(tmp_path)] == [ids[2]]


@pytest.mark.parametrize("status", [503, 500, 401, 404])  # down, broken, wrong token, a proxy's 404
async def test_a_refusal_that_is_not_the_events_keeps_everything_until_it_clears(
    tmp_path: Path, status: int
) -> None:
    async with FakeControlPlane() as cp:
        cp.status = status
        rep = EventReporter(url=cp.url, token="t", spool_dir=tmp_path)
        rep.start()
        ids = [rep.report("call-x", "answered") for _ in range(3)]
        await _until(lambda: len(cp.requests) >= 2, "two refused sends")
        await asyncio.to_thread(rep.written)
        assert len(rep.pending()) == 3 and not _dead(tmp_path)
        cp.status = None
        await _until(lambda: not rep.pending(), "the spool to empty")
        await rep.aclose()
    assert cp.stored == ids


async def test_a_batch_refused_whole_is_split_until_the_bad_event_is_found(tmp_path: Path) -> None:
    async with FakeControlPlane() as cp:
        rep = EventReporter(url=cp.url, token="t", spool_dir=tmp_path)
        ids = [rep.report("call-x", "turn", {"seq": i}) for i in range(4)]
        cp.refuse_whole_batch_with = {ids[1]}
        rep.start()
        await _until(lambda: not rep.pending(), "the spool to empty")
        await rep.aclose()
    assert cp.stored == [ids[0], ids[2], ids[3]]
    assert [e["event_id"] for e in _dead(tmp_path)] == [ids[1]]


async def test_a_garbled_spool_file_is_moved_aside_not_sent_forever(tmp_path: Path) -> None:
    (tmp_path / "00000000000000000001-garbled.json").write_text('{"event_id": "half')
    async with FakeControlPlane() as cp:
        rep = EventReporter(url=cp.url, token="t", spool_dir=tmp_path)
        ok = rep.report("call-x", "answered")
        rep.start()
        await _until(lambda: not rep.pending(), "the spool to empty")
        await rep.aclose()
    assert cp.stored == [ok]
    assert (tmp_path / "dead" / "00000000000000000001-garbled.json").exists()


def test_report_returns_before_the_disk_is_written_and_written_waits_for_it(tmp_path: Path) -> None:
    rep = EventReporter(url="http://127.0.0.1:9", token="t", spool_dir=tmp_path)
    ids = [rep.report("call-x", "turn", {"seq": i}) for i in range(50)]
    rep.written()
    assert [json.loads(p.read_text())["event_id"] for p in rep.pending()] == ids
