"""Warm transfers' consultation legs in the control plane, on SQLite and PostgreSQL: the worker asks for
a leg and gets one only for a live call of its tenant, to a phone number the call's profile lists and
the number policy allows, through a trunk that is the tenant's; the leg is an outbound call record
linked to the caller's; the worker's account of the transfer becomes the caller's ``transfer``
(the latest by the worker's clock); the dialer dials a leg without sending an agent into its room."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from phoneagent.api.app import create_app
from phoneagent.calls.outbound import Dialer
from phoneagent.config import Settings
from phoneagent.db.models import Call, OutboundTrunk
from phoneagent.provisioning.keys import create_key
from phoneagent.provisioning.tenants import set_countries
from phoneagent.telephony.client import worker_token
from tests.peers.fake_telephony import FakeCalls, FakeClock, inline_threads

DESK = "+14155550100"
ROOM = "dsp_caller_room"


@dataclass
class Api:
    client: TestClient
    sessions: sessionmaker[Session]
    settings: Settings
    h: dict[str, str]
    w: dict[str, str]
    tenant: str
    other_tenant: str

    def trunk(self, tenant: str, name: str, numbers: list[str]) -> str:
        with self.sessions() as s:
            trunk = OutboundTrunk(tenant_id=tenant, name=name, address="sip.example.com", numbers=numbers)
            trunk.livekit_id = f"ST_{name}"
            s.add(trunk)
            s.commit()
            return trunk.id

    def profile(self, **llm: Any) -> str:
        body = {
            "name": f"p{time.monotonic_ns()}",
            "llm": {"transfer_destinations": [DESK, "sip:desk@example.com"], **llm},
        }
        r = self.client.post("/agents", headers=self.h, json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def call(self, *, profile: str | None, room: str = ROOM, status: str = "in_progress", **kw: Any) -> str:
        with self.sessions() as s:
            call = Call(
                tenant_id=kw.pop("tenant", self.tenant),
                direction="inbound",
                status=status,
                room_name=room,
                agent_profile_id=profile,
                from_number="+15550111",
                to_number="+15550100",
                **kw,
            )
            s.add(call)
            s.commit()
            return call.id

    def consult(self, **body: Any) -> Any:
        return self.client.post("/webhooks/worker/consultations", json={"room": ROOM, **body}, headers=self.w)


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    settings = Settings(
        state_dir=tmp_path / "state",
        database_url=db_url,
        background=False,
        call_number_types_denied=["premium_rate", "shared_cost"],
    )
    app = create_app(settings)
    with app.state.sessions() as s:
        token, key = create_key(s, tenant_name="acme")
        _, other = create_key(s, tenant_name="other")
    with TestClient(app) as c:
        yield Api(
            c,
            app.state.sessions,
            settings,
            {"Authorization": f"Bearer {token}"},
            {"Authorization": f"Bearer {worker_token(settings)}"},
            key.tenant_id,
            other.tenant_id,
        )
    app.state.engine.dispose()


def test_a_leg_is_an_outbound_call_linked_to_the_callers(api: Api) -> None:
    trunk = api.trunk(api.tenant, "only", ["+15550100"])
    parent = api.call(profile=api.profile(warm_transfer={"ring_timeout_s": 12}))
    r = api.consult(to=DESK, tenant_id=api.tenant)
    assert r.status_code == 201, r.text
    leg = r.json()
    assert leg["parent_call_id"] == parent and leg["room_name"] == f"consult-{leg['id']}"
    assert (leg["status"], leg["to_number"], leg["ring_timeout_s"], leg["answer_timeout_s"]) == (
        "queued",
        DESK,
        12,
        15,
    )
    record = api.client.get(f"/calls/{leg['id']}", headers=api.h).json()
    assert (record["direction"], record["parent_call_id"], record["outbound_trunk_id"]) == (
        "outbound",
        parent,
        trunk,
    )
    # the caller dialed +15550100, one of the trunk's numbers: the person sees the business's number
    assert record["from_number"] == "+15550100" and record["agent_profile_id"] is None
    assert api.client.get(f"/calls/{parent}", headers=api.h).json()["legs"] == [leg["id"]]
    state = api.client.get(f"/webhooks/worker/consultations/{leg['id']}", headers=api.w)
    assert state.status_code == 200 and state.json()["status"] == "queued"


@pytest.mark.parametrize(
    ("to", "why"),
    [
        ("+14155550199", "not one of the destinations"),
        ("sip:desk@example.com", "give a phone number"),
        ("ring the boss", "not a phone number"),
    ],
)
def test_a_destination_the_profile_does_not_list_is_refused_by_name(api: Api, to: str, why: str) -> None:
    api.trunk(api.tenant, "only", [])
    api.call(profile=api.profile())
    r = api.consult(to=to)
    assert r.status_code == 422 and why in r.text and "to" in r.text, r.text


def test_the_number_policy_holds_for_warm_transfers(api: Api) -> None:
    api.trunk(api.tenant, "only", [])
    saved = api.client.post(
        "/agents", headers=api.h, json={"name": "premium", "llm": {"transfer_destinations": ["+19005550100"]}}
    )
    assert saved.status_code == 422 and "premium-rate" in saved.text  # refused when saved already
    api.call(profile=api.profile())
    with api.sessions() as s:  # the operator narrows the tenant's countries after the profile was saved
        set_countries(s, "acme", ["GB"])
    refused = api.consult(to=DESK)
    assert refused.status_code == 422 and "GB only" in refused.text, refused.text


def test_only_a_live_call_of_the_tenant_gets_a_leg(api: Api) -> None:
    api.trunk(api.tenant, "only", [])
    profile = api.profile()
    assert api.consult(to=DESK).status_code == 404  # no call in the room
    api.call(profile=profile)
    assert api.consult(to=DESK, tenant_id=api.other_tenant).status_code == 404
    assert api.consult(to=DESK, call_id="call_other").status_code == 404
    api.call(profile=profile, room="ended_room", status="ended")
    ended = api.client.post(
        "/webhooks/worker/consultations", json={"room": "ended_room", "to": DESK}, headers=api.w
    )
    assert ended.status_code == 409 and "ended" in ended.text
    stranger = api.client.post(
        "/webhooks/worker/consultations", json={"room": ROOM, "to": DESK}, headers=api.h
    )
    assert stranger.status_code == 401
    assert api.client.get("/webhooks/worker/consultations/call_nope", headers=api.w).status_code == 404


def test_the_trunk_is_the_profiles_or_the_only_one(api: Api) -> None:
    api.trunk(api.tenant, "a", [])
    b = api.trunk(api.tenant, "b", [])
    theirs = api.trunk(api.other_tenant, "theirs", [])
    api.call(profile=api.profile())
    several = api.consult(to=DESK)
    assert several.status_code == 409 and "outbound_trunk_id" in several.text
    api.call(profile=api.profile(warm_transfer={"outbound_trunk_id": theirs}), room="r2")
    r = api.client.post("/webhooks/worker/consultations", json={"room": "r2", "to": DESK}, headers=api.w)
    assert r.status_code == 409 and "not a trunk of yours" in r.text
    api.call(profile=api.profile(warm_transfer={"outbound_trunk_id": b}), room="r3")
    r = api.client.post("/webhooks/worker/consultations", json={"room": "r3", "to": DESK}, headers=api.w)
    assert r.status_code == 201, r.text
    assert api.client.get(f"/calls/{r.json()['id']}", headers=api.h).json()["outbound_trunk_id"] == b


def _account(event_id: str, at: float, **data: Any) -> dict[str, Any]:
    return {"event_id": event_id, "room": ROOM, "type": "warm_transfer", "at": at, "data": {"at": at, **data}}


def test_the_callers_record_keeps_the_latest_account_of_its_transfer(api: Api) -> None:
    parent = api.call(profile=None)
    now = time.time()
    later = _account(
        "e2", now, to=f"tel:{DESK}", result="connected", reply="key 1", briefing="About billing."
    )
    earlier = _account("e1", now - 5, to=f"tel:{DESK}", result="dialing", consultation_call_id="call_leg")
    bad = _account("e3", now, to=f"tel:{DESK}", result="teleported")
    r = api.client.post("/webhooks/worker", json={"events": [later, earlier, bad]}, headers=api.w)
    assert r.status_code == 200 and r.json()["accepted"] == ["e2", "e1"], r.text
    assert "result" in r.json()["rejected"][0]["error"]
    transfer = api.client.get(f"/calls/{parent}", headers=api.h).json()["transfer"]
    assert (transfer["result"], transfer["reply"], transfer["briefing"]) == (
        "connected",
        "key 1",
        "About billing.",
    )


def test_the_dialer_dials_a_leg_without_sending_an_agent(api: Api) -> None:
    api.trunk(api.tenant, "only", ["+15550100"])
    api.call(profile=api.profile())
    leg = api.consult(to=DESK).json()
    clock = FakeClock()
    lk = FakeCalls(clock)
    dialer = Dialer(api.sessions, lk, agent_name="agent", max_calls_per_tenant=10, clock=clock)

    async def dial() -> None:
        with inline_threads(asyncio.get_running_loop()):
            await dialer.step()
            await clock.run_until(lambda: not dialer.dialing)

    asyncio.run(dial())
    assert leg["room_name"] in lk.rooms and leg["room_name"] not in lk.dispatched
    record = api.client.get(f"/calls/{leg['id']}", headers=api.h).json()
    assert record["status"] == "in_progress" and record["answered_at"] is not None, record


def test_a_leg_the_agent_gives_up_ends_and_is_never_dialed(api: Api) -> None:
    api.trunk(api.tenant, "only", [])
    api.call(profile=api.profile())
    leg = api.consult(to=DESK).json()
    r = api.client.post(f"/webhooks/worker/consultations/{leg['id']}/cancel", headers=api.w)
    assert r.status_code == 200 and (r.json()["status"], r.json()["end_reason"]) == ("ended", "agent_hangup")
    again = api.client.post(f"/webhooks/worker/consultations/{leg['id']}/cancel", headers=api.w)
    assert again.json()["end_reason"] == "agent_hangup"
    clock = FakeClock()
    lk = FakeCalls(clock)
    dialer = Dialer(api.sessions, lk, agent_name="agent", max_calls_per_tenant=10, clock=clock)

    async def dial() -> None:
        with inline_threads(asyncio.get_running_loop()):
            await dialer.step()

    asyncio.run(dial())
    assert not lk.rooms and not dialer.dialing
    assert (
        api.client.post("/webhooks/worker/consultations/call_nope/cancel", headers=api.w).status_code == 404
    )
    assert (
        api.client.post(f"/webhooks/worker/consultations/{leg['id']}/cancel", headers=api.h).status_code
        == 401
    )
