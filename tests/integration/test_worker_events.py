"""Worker call events: authenticated, stored once, applied even when they beat the call record, and
never lost while the control plane is down (the worker's spool)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from pydantic import SecretStr

from phoneagent.db.models import Call, CallEvent
from phoneagent.stack.processes import LoggedProcess
from phoneagent.stack.services import Stack
from phoneagent.telephony.client import worker_token
from phoneagent.worker.reporter import EventReporter
from tests.db_fixtures import app_state, new_key
from tests.integration.test_livekit_webhooks import _rule
from tests.peers.livekit_events import signed_headers, sip_participant_event
from tests.stack_fixtures import SPARE_API_PORT, settings_env


def _turn(event_id: str, room: str, seq: int, speaker: str, text: str, **lat: float) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "room": room,
        "type": "turn",
        "at": time.time(),
        "data": {"seq": seq, "speaker": speaker, "text": text, **lat},
    }


def test_turns_before_the_call_record_are_applied_when_it_appears(client: TestClient, stack: Stack) -> None:
    from phoneagent.telephony.client import livekit_credentials

    h = new_key(client, "acme")
    rule_id = _rule(client, h)
    w = {"Authorization": f"Bearer {worker_token(stack.settings)}"}
    batch = [
        _turn("t0", "call-r1", 0, "agent", "Hello, how can I help?"),
        _turn("t1", "call-r1", 1, "caller", "what are your opening hours", stt_s=0.21),
        _turn(
            "t2",
            "call-r1",
            2,
            "agent",
            "We are open Monday to Friday.",
            stt_s=0.21,
            brain_s=0.001,
            tts_s=0.08,
            total_s=0.71,
        ),
    ]
    r = client.post("/webhooks/worker", json={"events": batch}, headers=w)
    assert r.json() == {"accepted": ["t0", "t1", "t2"], "new": 3, "rejected": []}
    assert client.post("/webhooks/worker", json={"events": batch}, headers=w).json()["new"] == 0  # resent

    creds = livekit_credentials(stack.settings)
    body = sip_participant_event("EV_j", "participant_joined", "call-r1", rule_id)
    assert (
        client.post(
            "/webhooks/livekit", content=body, headers=signed_headers(body, creds.api_key, creds.api_secret)
        ).status_code
        == 200
    )
    call = client.get("/calls", headers=h).json()["items"][0]
    detail = client.get(f"/calls/{call['id']}", headers=h).json()
    assert [t["speaker"] for t in detail["transcript"]] == ["agent", "caller", "agent"]
    last = detail["transcript"][2]
    assert (last["stt_ms"], last["brain_ms"], last["tts_ms"], last["total_ms"]) == (210, 1, 80, 710)
    found = client.get("/calls", headers=h, params={"q": "opening hours"}).json()["items"]
    assert [c["id"] for c in found] == [call["id"]]


def test_a_worker_event_for_another_tenant_or_call_stays_off_the_record(
    client: TestClient, stack: Stack
) -> None:
    """The worker says whose call it was dispatched for; an event naming another tenant or call is
    kept but never applied to the call that has the room's name."""
    from phoneagent.telephony.client import livekit_credentials

    ha = new_key(client, "acme")
    rule_a = _rule(client, ha)
    creds = livekit_credentials(stack.settings)
    body = sip_participant_event("EV_t", "participant_joined", "room-t", rule_a)
    signed = signed_headers(body, creds.api_key, creds.api_secret)
    assert client.post("/webhooks/livekit", content=body, headers=signed).status_code == 200
    [call] = client.get("/calls", headers=ha).json()["items"]
    with app_state(client).sessions() as session:
        tenant_a = session.get(Call, call["id"]).tenant_id
    w = {"Authorization": f"Bearer {worker_token(stack.settings)}"}
    foreign = [
        {**_turn("x0", "room-t", 0, "caller", "a stranger's words"), "tenant_id": "ten_other"},
        {**_turn("x1", "room-t", 1, "caller", "another call's words"), "call_id": "call_other"},
    ]
    assert client.post("/webhooks/worker", json={"events": foreign}, headers=w).json()["new"] == 2
    own = [{**_turn("o0", "room-t", 0, "agent", "Hello, how can I help?"), "tenant_id": tenant_a}]
    assert client.post("/webhooks/worker", json={"events": own}, headers=w).json()["new"] == 1
    detail = client.get(f"/calls/{call['id']}", headers=ha).json()
    assert [t["text"] for t in detail["transcript"]] == ["Hello, how can I help?"]
    assert client.get("/calls", headers=ha, params={"q": "stranger"}).json()["items"] == []


def test_wrong_worker_token_is_401(client: TestClient) -> None:
    r = client.post(
        "/webhooks/worker",
        json={"events": [_turn("x", "call-x", 0, "agent", "hi")]},
        headers={"Authorization": "Bearer nope"},
    )
    assert r.status_code == 401
    # the token is checked before the body is validated: an oversized batch from a stranger is a 401
    many = {"events": [_turn(f"x{i}", "call-x", i, "agent", "hi") for i in range(501)]}
    stranger = {"Authorization": "Bearer nope"}
    assert client.post("/webhooks/worker", json=many, headers=stranger).status_code == 401
    assert client.get("/webhooks/worker/agents/agt_x", headers=stranger).status_code == 401


def test_the_worker_token_is_a_secret_of_its_own(stack: Stack, tmp_path: Path) -> None:
    """Not derived from the LiveKit secret (egress shows that one on its command line): a random
    token kept 0600 in the state directory, or the operator's PHONEAGENT_WORKER_SECRET."""
    from phoneagent.telephony.client import livekit_credentials

    settings = stack.settings.model_copy(update={"state_dir": tmp_path})
    token = worker_token(settings)
    assert len(token) >= 32 and token == worker_token(settings)
    assert livekit_credentials(stack.settings).api_secret not in token
    assert oct((tmp_path / "worker-secret").stat().st_mode & 0o777) == "0o600"
    assert worker_token(settings.model_copy(update={"state_dir": tmp_path / "other"})) != token
    given = "s" * 40
    assert worker_token(settings.model_copy(update={"worker_secret": SecretStr(given)})) == given


def test_events_wait_in_the_spool_while_the_control_plane_is_down(stack: Stack, tmp_path: Path) -> None:
    """Events reported with no control plane stay on disk, survive a worker restart, and are delivered
    exactly once when `phoneagent api` comes up."""
    settings = stack.settings.model_copy(update={"api_port": SPARE_API_PORT})
    env = settings_env(settings)
    env["PHONEAGENT_API_PORT"] = str(SPARE_API_PORT)
    db = tmp_path / "cp.db"
    env["PHONEAGENT_DATABASE_URL"] = f"sqlite:///{db}"
    spool = tmp_path / "spool"
    url = f"http://127.0.0.1:{settings.api_port}"

    async def first_worker() -> list[str]:
        rep = EventReporter(url=url, token=worker_token(settings), spool_dir=spool)
        rep.start()
        ids = [
            rep.report("call-spool", "turn", {"seq": i, "speaker": "caller", "text": f"t{i}"})
            for i in range(5)
        ]
        async with asyncio.timeout(30):  # the sender tries, and fails: nothing listens on that port
            while rep.failed_sends == 0:  # noqa: ASYNC110 - the reporter's own loop counts it
                await asyncio.sleep(0.02)
        await rep.aclose(flush_timeout=1.0)  # the worker stops with the control plane still down
        assert len(rep.pending()) == 5
        return ids

    ids = asyncio.run(first_worker())
    assert len(list(spool.glob("*.json"))) == 5

    subprocess.run(
        [sys.executable, "-m", "phoneagent.cli", "db", "upgrade"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    api = LoggedProcess.phoneagent("api", log_path=tmp_path / "api.log", env=env)
    try:
        api.wait_for(r"Uvicorn running", timeout=60)

        async def second_worker() -> None:
            rep = EventReporter(url=url, token=worker_token(settings), spool_dir=spool)
            rep.start()
            deadline = time.monotonic() + 30
            while rep.pending() and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the disk
                await asyncio.sleep(0.1)
            await rep.aclose()
            assert rep.pending() == []

        asyncio.run(second_worker())
    finally:
        api.stop()

    from sqlalchemy import select

    from phoneagent.db.engine import make_engine, session_factory

    engine = make_engine(f"sqlite:///{db}")
    with session_factory(engine)() as session:
        stored = list(session.scalars(select(CallEvent.event_id).where(CallEvent.source == "worker")))
    engine.dispose()
    assert sorted(stored) == sorted(ids)
    assert os.listdir(spool) == []


def test_a_bad_event_is_refused_by_name_and_the_rest_of_its_batch_is_stored(client: TestClient) -> None:
    w = {"Authorization": f"Bearer {worker_token(app_state(client).settings)}"}
    no_seq = {"event_id": "b1", "room": "call-bad", "type": "turn", "data": {"speaker": "caller"}}
    bad_speaker = _turn("b2", "call-bad", 1, "robot", "hi")
    not_an_event = {"room": "call-bad"}
    good = _turn("g1", "call-bad", 0, "agent", "Hello")
    far_future = {**_turn("b3", "call-bad", 2, "agent", "x"), "at": 1e300}  # no date: was a 500
    not_a_number = _turn("b4", "call-bad", 3, "agent", "x", stt_s=float("nan"))
    batch = [no_seq, good, bad_speaker, not_an_event, far_future, not_a_number]
    body = json.dumps({"events": batch})  # NaN as Python writes it: JSON has no such number, a worker might
    r = client.post("/webhooks/worker", content=body, headers={**w, "content-type": "application/json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == ["g1"] and body["new"] == 1
    refused = {x["index"]: x for x in body["rejected"]}
    assert sorted(refused) == [0, 2, 3, 4, 5]
    assert "at" in refused[4]["error"] and "stt_s" in refused[5]["error"]
    assert refused[0]["event_id"] == "b1" and "seq" in refused[0]["error"]
    assert refused[2]["event_id"] == "b2" and "speaker" in refused[2]["error"]
    assert refused[3]["event_id"] is None and "event_id" in refused[3]["error"]
    # a batch that is not a list of objects is refused whole, with a 422 naming the field
    r = client.post("/webhooks/worker", json={"events": "nope"}, headers=w)
    assert r.status_code == 422 and r.json()["detail"][0]["field"].startswith("events")
