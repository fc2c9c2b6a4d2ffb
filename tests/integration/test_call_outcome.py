"""A call's outcome in the control plane, on SQLite and PostgreSQL: the worker's outcome events applied
(the latest by the worker's clock wins, each once, whatever order they arrive in), success by the agent
profile's condition, the call log's outcome filters, success rates per profile and campaign (one
tenant's calls only), the ``call.ended`` webhook carrying the outcome, and the migration both ways."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session, sessionmaker

from phoneagent.api.app import create_app
from phoneagent.calls.outbox import Deliverer, RetryPolicy
from phoneagent.calls.worker_events import ingest_worker_events
from phoneagent.config import Settings
from phoneagent.db.engine import make_engine, session_factory
from phoneagent.db.migrate import alembic_config, upgrade
from phoneagent.db.models import AgentProfile, Call, Campaign, OutboundTrunk, Tenant, WebhookEndpoint
from phoneagent.netguard import AddressPolicy, parse_networks
from phoneagent.provisioning.keys import create_key
from phoneagent.telephony.client import worker_token
from tests.peers.postgres import TempPostgres
from tests.peers.receiver import WebhookReceiver

T0 = time.time() - 60
BOOKED: dict[str, Any] = {
    "intent": "appointment",
    "intents": [{"name": "appointment", "via": "dtmf", "turn": None, "keys": "2"}],
    "confirmations": [],
    "slots": {"day": {"value": "friday", "via": "voice", "turn": 3}},
}
ASKED: dict[str, Any] = {**BOOKED, "slots": {}}
SUCCESS = {"intent": "appointment", "slots": ["day"]}


@dataclass
class Api:
    client: TestClient
    sessions: sessionmaker[Session]
    settings: Settings
    h: dict[str, str]  # tenant acme
    other: dict[str, str]  # tenant other
    tenant: str
    other_tenant: str

    def worker(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        w = {"Authorization": f"Bearer {worker_token(self.settings)}"}
        r = self.client.post("/webhooks/worker", json={"events": events}, headers=w)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def call(self, tenant: str, **kw: Any) -> str:
        with self.sessions() as s:
            call = Call(tenant_id=tenant, direction=kw.pop("direction", "inbound"), **kw)
            s.add(call)
            s.commit()
            return call.id


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    settings = Settings(state_dir=tmp_path / "state", database_url=db_url, background=False)
    app = create_app(settings)
    with app.state.sessions() as s:
        token, key = create_key(s, tenant_name="acme")
        other_token, other_key = create_key(s, tenant_name="other")
    with TestClient(app) as c:
        yield Api(
            c,
            app.state.sessions,
            settings,
            {"Authorization": f"Bearer {token}"},
            {"Authorization": f"Bearer {other_token}"},
            key.tenant_id,
            other_key.tenant_id,
        )
    app.state.engine.dispose()


def _outcome_event(event_id: str, room: str, at: float, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "room": room, "type": "outcome", "at": at, "data": data}


def _profile(api: Api, name: str, **body: Any) -> str:
    r = api.client.post("/agents", headers=api.h, json={"name": name, **body})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_the_latest_outcome_by_the_workers_clock_wins_each_applied_once(api: Api) -> None:
    agent = _profile(api, "booking", success=SUCCESS)
    call_id = api.call(api.tenant, status="in_progress", room_name="call-o1", agent_profile_id=agent)
    later = _outcome_event("o2", "call-o1", T0 + 2, BOOKED)
    earlier = _outcome_event("o1", "call-o1", T0 + 1, ASKED)
    # the later one arrives first, the earlier one after it (a resend from the spool): the later wins
    assert api.worker([later])["new"] == 1
    assert api.worker([earlier, later])["new"] == 1  # o2 again: stored once
    got = api.client.get(f"/calls/{call_id}", headers=api.h).json()["outcome"]
    assert got == {**BOOKED, "success": True}
    listed = api.client.get("/calls", headers=api.h).json()["items"][0]
    assert listed["outcome"] == got
    # a newer one replaces it; success follows the new outcome
    newer = {
        **BOOKED,
        "slots": {},
        "intents": [*BOOKED["intents"], {"name": "hours", "via": "voice", "turn": 5}],
    }
    api.worker([_outcome_event("o3", "call-o1", T0 + 3, newer)])
    got = api.client.get(f"/calls/{call_id}", headers=api.h).json()["outcome"]
    assert got["success"] is False and [i["name"] for i in got["intents"]] == ["appointment", "hours"]
    assert "keys" not in got["intents"][1]


def test_outcome_events_before_the_call_record_wait_for_it(api: Api) -> None:
    api.worker(
        [_outcome_event("w2", "call-o2", T0 + 2, BOOKED), _outcome_event("w1", "call-o2", T0 + 1, ASKED)]
    )
    call_id = api.call(api.tenant, status="ringing", room_name="call-o2")
    from phoneagent.calls.worker_events import attach_waiting

    with api.sessions() as s:
        call = s.get(Call, call_id)
        assert call is not None
        attach_waiting(s, call)
        s.commit()
    got = api.client.get(f"/calls/{call_id}", headers=api.h).json()["outcome"]
    assert got == BOOKED  # no agent profile: no success


def test_a_malformed_outcome_is_refused_by_name_and_the_rest_of_the_batch_is_kept(api: Api) -> None:
    bad_slot = {**BOOKED, "slots": {"Day": {"value": "friday", "via": "voice", "turn": 1}}}
    bad_via = {**BOOKED, "intents": [{"name": "x", "via": "fax"}]}
    r = api.worker(
        [
            _outcome_event("b1", "call-o3", T0, bad_slot),
            _outcome_event("b2", "call-o3", T0, bad_via),
            _outcome_event("b3", "call-o3", T0, BOOKED),
        ]
    )
    assert r["accepted"] == ["b3"]
    reasons = [x["error"] for x in r["rejected"]]
    assert "slots.Day" in reasons[0] and "intents.0.via" in reasons[1], reasons


def _seed_outcomes(api: Api) -> dict[str, str]:
    """Ended calls of acme with outcomes, and one of the other tenant with the same outcome."""
    booked_agent = _profile(api, "booking", success=SUCCESS)
    plain_agent = _profile(api, "plain")
    at = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    friday = {**BOOKED, "success": True}
    monday = {**BOOKED, "slots": {"day": {**BOOKED["slots"]["day"], "value": "Monday"}}, "success": True}
    hours = {
        **ASKED,
        "intent": "hours",
        "intents": [{"name": "hours", "via": "voice", "turn": 1}],
        "success": False,
    }
    with api.sessions() as s:
        trunk = OutboundTrunk(
            tenant_id=api.tenant, name="o", address="127.0.0.1:5999", numbers=["+15550001111"]
        )
        s.add(trunk)
        s.flush()
        campaign = Campaign(
            tenant_id=api.tenant, name="spring", agent_profile_id=booked_agent, outbound_trunk_id=trunk.id
        )
        s.add(campaign)
        s.commit()
        campaign_id = campaign.id
    ids = {
        "friday": api.call(
            api.tenant,
            status="ended",
            agent_profile_id=booked_agent,
            outcome=friday,
            created_at=at,
            campaign_id=campaign_id,
        ),
        "monday": api.call(
            api.tenant,
            status="ended",
            agent_profile_id=booked_agent,
            outcome=monday,
            created_at=at + timedelta(minutes=1),
        ),
        "hours": api.call(
            api.tenant,
            status="ended",
            agent_profile_id=booked_agent,
            outcome=hours,
            created_at=at + timedelta(minutes=2),
            campaign_id=campaign_id,
        ),
        "silent": api.call(
            api.tenant,
            status="ended",
            agent_profile_id=booked_agent,
            created_at=at + timedelta(minutes=3),
            campaign_id=campaign_id,
        ),
        "plain": api.call(
            api.tenant,
            status="ended",
            agent_profile_id=plain_agent,
            outcome=BOOKED,
            created_at=at + timedelta(minutes=4),
        ),
        "live": api.call(
            api.tenant,
            status="in_progress",
            agent_profile_id=booked_agent,
            outcome=friday,
            created_at=at + timedelta(minutes=5),
        ),
        "other": api.call(
            api.other_tenant, status="ended", outcome=friday, created_at=at + timedelta(minutes=6)
        ),
    }
    ids.update(booked_agent=booked_agent, plain_agent=plain_agent, campaign=campaign_id)
    return ids


def _ids(api: Api, params: dict[str, str], headers: dict[str, str] | None = None) -> set[str]:
    r = api.client.get("/calls", headers=headers or api.h, params=params)
    assert r.status_code == 200, r.text
    return {c["id"] for c in r.json()["items"]}


def test_the_call_log_filters_on_the_outcome(api: Api) -> None:
    ids = _seed_outcomes(api)
    assert _ids(api, {"outcome.intent": "appointment"}) == {
        ids[k] for k in ("friday", "monday", "plain", "live")
    }
    assert _ids(api, {"outcome.intent": "hours"}) == {ids["hours"]}
    assert _ids(api, {"outcome.success": "true"}) == {ids[k] for k in ("friday", "monday", "live")}
    assert _ids(api, {"outcome.success": "false"}) == {ids["hours"]}
    assert _ids(api, {"outcome.slot": "day:friday"}) == {ids[k] for k in ("friday", "plain", "live")}
    assert _ids(api, {"outcome.slot": "day:MONDAY"}) == {ids["monday"]}  # case ignored
    assert _ids(api, {"outcome.slot": "day"}) == {ids[k] for k in ("friday", "monday", "plain", "live")}
    both = {"outcome.slot": "day:friday", "outcome.success": "true", "status": "ended"}
    assert _ids(api, both) == {ids["friday"]}
    assert _ids(api, {"outcome.intent": "appointment", "agent_id": ids["plain_agent"]}) == {ids["plain"]}
    # the other tenant's call has the same outcome: it is never listed here, and it lists only its own
    assert _ids(api, {"outcome.intent": "appointment"}, api.other) == {ids["other"]}


@pytest.mark.parametrize(
    ("params", "field", "says"),
    [
        ({"outcome.intnt": "x"}, "outcome.intnt", "not a filter"),
        ({"outcome.slot": "Day:friday"}, "outcome.slot", "give <slot> or <slot>:<value>"),
        ({"outcome.slot": "day:"}, "outcome.slot", "give <slot>"),
        ({"outcome.success": "maybe"}, "outcome.success", "bool"),
        ({"outcome.intent": "book\x00"}, "outcome.intent", "control characters"),
    ],
)
def test_unknown_or_malformed_outcome_filters_are_a_422_that_says_why(
    api: Api, params: dict[str, str], field: str, says: str
) -> None:
    r = api.client.get("/calls", headers=api.h, params=params)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert field in str(detail.get("field")) and says in str(detail), r.text


def test_success_rates_per_agent_profile_and_campaign_count_this_tenants_ended_calls(api: Api) -> None:
    ids = _seed_outcomes(api)
    r = api.client.get("/calls/outcomes", headers=api.h)
    assert r.status_code == 200, r.text
    body = r.json()
    profiles = {p["id"]: p for p in body["agent_profiles"]}
    assert set(profiles) == {ids["booked_agent"], ids["plain_agent"]}  # nothing of the other tenant
    booked = profiles[ids["booked_agent"]]
    assert (booked["name"], booked["ended"], booked["with_outcome"], booked["succeeded"]) == (
        "booking",
        4,
        3,
        2,
    )
    assert booked["success_rate"] == 0.5
    plain = profiles[ids["plain_agent"]]
    assert (plain["ended"], plain["with_outcome"], plain["succeeded"], plain["success_rate"]) == (
        1,
        1,
        0,
        None,
    )
    (campaign,) = body["campaigns"]
    assert (
        campaign["id"],
        campaign["name"],
        campaign["ended"],
        campaign["with_outcome"],
        campaign["succeeded"],
    ) == (
        ids["campaign"],
        "spring",
        3,
        2,
        1,
    )
    assert campaign["success_rate"] == round(1 / 3, 4)
    later = api.client.get("/calls/outcomes", headers=api.h, params={"since": "2026-11-20T09:01:30Z"}).json()
    assert {p["id"]: p["ended"] for p in later["agent_profiles"]} == {
        ids["booked_agent"]: 2,
        ids["plain_agent"]: 1,
    }
    theirs = api.client.get("/calls/outcomes", headers=api.other).json()
    assert theirs["campaigns"] == [] and [
        (p["id"], p["ended"], p["succeeded"]) for p in theirs["agent_profiles"]
    ] == [(None, 1, 1)]


@pytest.mark.parametrize(
    ("success", "says"),
    [
        ({"intent": ""}, "success.intent"),
        ({"slots": ["Day"]}, "success.slots.0"),
        ({"slots": "day"}, "success.slots"),
        ({"intnt": "appointment"}, "success.intnt"),
        ({"intent": "refund"}, "intent 'refund' is not an intent of the profile's script"),
        ({"slots": ["time"]}, "slot time is collected by no intent"),
        ({"values": {"colour": "red"}}, "slot colour is collected by no intent"),
    ],
)
def test_a_success_condition_that_cannot_work_is_a_422(api: Api, success: Any, says: str) -> None:
    r = api.client.post("/agents", headers=api.h, json={"name": "a", "success": success})
    assert r.status_code == 422, r.text
    assert says in r.text


def test_a_script_whose_slots_cannot_work_is_a_422_naming_the_field(api: Api) -> None:
    script = {
        "intents": [{"name": "x", "keywords": ["x"], "reply": "y", "collect": {"slot": "d", "kind": "date"}}]
    }
    r = api.client.post("/agents", headers=api.h, json={"name": "a", "llm": {"script": script}})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["field"] == "llm" and "script.intents[0].collect[0].kind: one of day" in detail["reason"]


def test_a_profile_keeps_its_success_and_an_empty_one_removes_it(api: Api) -> None:
    agent = _profile(api, "booking", success=SUCCESS)
    got = api.client.get(f"/agents/{agent}", headers=api.h).json()["success"]
    assert got["intent"] == "appointment" and got["slots"] == ["day"]
    r = api.client.patch(f"/agents/{agent}", headers=api.h, json={"success": {}})
    assert r.status_code == 200, r.text
    call_id = api.call(api.tenant, status="in_progress", room_name="call-o4", agent_profile_id=agent)
    api.worker([_outcome_event("n1", "call-o4", T0, BOOKED)])
    assert "success" not in api.client.get(f"/calls/{call_id}", headers=api.h).json()["outcome"]


# ---- the call.ended webhook -------------------------------------------------------------------------

LOOPBACK = AddressPolicy(allowed_networks=parse_networks(["127.0.0.0/8"]), require_https=False)


def _worker_event(event_id: str, room: str, type_: str, at: float, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "room": room, "type": type_, "at": at, "data": data}


async def test_call_ended_carries_the_outcome_that_arrived_after_the_call_ended(
    db: Session, db_url: str
) -> None:
    """The worker's outcome can reach the control plane after the call has ended (LiveKit's word, or
    the hangup, came first): ``call.ended`` is rendered at its first attempt, after the ended grace,
    so it carries the outcome that arrived within it."""
    with WebhookReceiver(secret="whsec_t") as rx:
        tenant = Tenant(name="acme")
        db.add(tenant)
        db.flush()
        agent = AgentProfile(tenant_id=tenant.id, name="a", success=SUCCESS)
        db.add_all(
            [agent, WebhookEndpoint(tenant_id=tenant.id, url=rx.url, secret="whsec_t", events=["call.ended"])]
        )
        db.flush()
        call = Call(
            tenant_id=tenant.id,
            direction="inbound",
            status="in_progress",
            room_name="call-w1",
            agent_profile_id=agent.id,
        )
        db.add(call)
        db.commit()
        ingest_worker_events(
            db, [_worker_event("h1", "call-w1", "hangup", T0 + 5, {"reason": "agent_hangup"})]
        )
        db.refresh(call)
        assert call.status == "ended"
        ingest_worker_events(
            db, [_worker_event("o1", "call-w1", "outcome", T0 + 4, BOOKED)]
        )  # sent before, came after
        deliverer = Deliverer(
            session_factory(make_engine(db_url)), policy=RetryPolicy(ended_grace_s=0.0), addresses=LOOPBACK
        )
        try:
            deadline = time.monotonic() + 20
            while not rx.accepted():
                assert time.monotonic() < deadline, "call.ended was not delivered"
                await deliverer.deliver_due()
                await asyncio.sleep(0.02)
        finally:
            await deliverer.aclose()
    (got,) = rx.accepted()
    assert got.signature_ok and got.event_type == "call.ended"
    assert got.body["data"]["outcome"] == {**BOOKED, "success": True}


# ---- the migration ------------------------------------------------------------------------------------


def _migrate_both_ways(url: str) -> None:
    upgrade(url, "0008")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tenants (id, name, created_at, allowed_countries)"
                " VALUES ('ten_a', 'a', '2026-10-01', '[]')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO calls (id, tenant_id, direction, status, from_number, to_number, created_at,"
                " cost_telephony_microusd, cost_speech_microusd, cost_llm_microusd, metadata, ring_timeout_s)"
                " VALUES ('call_1', 'ten_a', 'inbound', 'ended', '', '', '2026-11-01 10:00:00',"
                " 0, 0, 0, '{}', 30)"
            )
        )
    upgrade(url)
    with session_factory(engine)() as s:
        call = s.get(Call, "call_1")
        assert call is not None and call.outcome is None  # an older call: no outcome, not JSON null
        assert s.scalar(text("SELECT count(*) FROM calls WHERE outcome IS NULL")) == 1
        call.outcome = BOOKED
        s.commit()
    command.downgrade(alembic_config(url), "0008")
    engine.dispose()
    engine = make_engine(url)
    assert "outcome" not in {c["name"] for c in inspect(engine).get_columns("calls")}
    assert "success" not in {c["name"] for c in inspect(engine).get_columns("agent_profiles")}
    engine.dispose()
    upgrade(url)
    engine = make_engine(url)
    assert {"outcome"} <= {c["name"] for c in inspect(engine).get_columns("calls")}
    engine.dispose()


def test_the_outcome_migration_upgrades_and_downgrades_on_sqlite(tmp_path: Path) -> None:
    _migrate_both_ways(f"sqlite:///{tmp_path / 'old.db'}")


def test_the_outcome_migration_upgrades_and_downgrades_on_postgresql(postgres: TempPostgres) -> None:
    _migrate_both_ways(postgres.create_database("outcome_migration"))
