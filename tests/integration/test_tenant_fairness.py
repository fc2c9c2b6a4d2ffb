"""One tenant cannot hold up the others: the dialer takes queued calls from every tenant in turn (a
tenant at its cap with hundreds of older queued calls no longer starves the rest), a tenant's queue
has a cap, and POST /calls and POST /campaigns are rate-limited per tenant (429 with Retry-After)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from phoneagent.calls.outbound import Dialer
from phoneagent.db.engine import make_engine, session_factory
from phoneagent.db.models import AgentProfile, Call, OutboundTrunk, Tenant
from phoneagent.stack.services import Stack
from phoneagent.telephony.calls import LiveKitCalls
from tests.db_fixtures import agent_and_trunk, client_with, new_key


def _tenant(db: Session, name: str) -> tuple[str, str, str]:
    tenant = Tenant(name=name)
    db.add(tenant)
    db.flush()
    agent = AgentProfile(tenant_id=tenant.id, name="a")
    trunk = OutboundTrunk(
        tenant_id=tenant.id,
        name="o",
        address="127.0.0.1:9",
        numbers=["+15550001111"],
        livekit_id=f"ST_{name}",
        max_concurrent_calls=1000,
    )
    db.add_all([agent, trunk])
    db.flush()
    return tenant.id, agent.id, trunk.id


def _queued(db: Session, tenant: str, agent: str, trunk: str, at: datetime, status: str = "queued") -> None:
    db.add(
        Call(
            tenant_id=tenant,
            direction="outbound",
            status=status,
            from_number="+15550001111",
            to_number="+14155550123",
            agent_profile_id=agent,
            outbound_trunk_id=trunk,
            created_at=at,
        )
    )


def test_a_tenant_at_its_cap_with_a_long_queue_does_not_starve_another(
    db: Session, db_url: str, stack: Stack
) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    a, agent_a, trunk_a = _tenant(db, "busy")
    b, agent_b, trunk_b = _tenant(db, "quiet")
    _queued(db, a, agent_a, trunk_a, start, status="in_progress")  # A is at its cap of 1
    for i in range(250):  # and has 250 older calls waiting
        _queued(db, a, agent_a, trunk_a, start + timedelta(seconds=i))
    _queued(db, b, agent_b, trunk_b, start + timedelta(minutes=30))
    db.commit()
    dialer = Dialer(
        session_factory(make_engine(db_url)),
        LiveKitCalls(stack.settings),
        agent_name="phoneagent-test",
        max_calls_per_tenant=1,
    )
    jobs = dialer._claim()  # the dialer's pass, without dialing
    assert [j.tenant_id for j in jobs] == [b]
    db.expire_all()
    assert db.query(Call).filter_by(tenant_id=a, status="queued").count() == 250


def test_tenants_under_their_caps_are_served_in_turn(db: Session, db_url: str, stack: Stack) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    a, agent_a, trunk_a = _tenant(db, "early")
    b, agent_b, trunk_b = _tenant(db, "late")
    for i in range(5):
        _queued(db, a, agent_a, trunk_a, start + timedelta(seconds=i))
    for i in range(2):
        _queued(db, b, agent_b, trunk_b, start + timedelta(minutes=5, seconds=i))
    db.commit()
    dialer = Dialer(
        session_factory(make_engine(db_url)),
        LiveKitCalls(stack.settings),
        agent_name="phoneagent-test",
        max_calls_per_tenant=3,
    )
    jobs = dialer._claim()
    # three each at most; B's two are not behind A's five
    assert sorted(j.tenant_id for j in jobs) == sorted([a, a, a, b, b])


@pytest.fixture
def limited(stack: Stack, db_url: str) -> Iterator[TestClient]:
    with client_with(
        stack, db_url, calls_per_minute=5, campaigns_per_minute=2, max_queued_calls_per_tenant=3
    ) as c:
        yield c


def test_a_tenants_queue_has_a_cap(limited: TestClient) -> None:
    h = new_key(limited, "acme")
    agent, trunk = agent_and_trunk(limited, h)
    body = {"to": "+14155550123", "agent_profile_id": agent, "outbound_trunk_id": trunk}
    for _ in range(3):
        assert limited.post("/calls", headers=h, json=body).status_code == 201
    r = limited.post("/calls", headers=h, json=body)
    assert r.status_code == 429 and r.headers["retry-after"] == "30", r.text
    assert "waiting" in r.json()["error"]
    other = new_key(limited, "globex")
    agent_o, trunk_o = agent_and_trunk(limited, other)
    body_o = {"to": "+14155550123", "agent_profile_id": agent_o, "outbound_trunk_id": trunk_o}
    assert limited.post("/calls", headers=other, json=body_o).status_code == 201


def test_posting_calls_and_campaigns_is_rate_limited_per_tenant(limited: TestClient) -> None:
    h = new_key(limited, "acme")
    agent, trunk = agent_and_trunk(limited, h)
    codes = []
    for i in range(6):  # the queue cap is 3: cancel each call so that only the rate counts
        r = limited.post(
            "/calls",
            headers=h,
            json={"to": f"+1415555012{i}", "agent_profile_id": agent, "outbound_trunk_id": trunk},
        )
        codes.append(r.status_code)
        if r.status_code == 201:
            assert limited.post(f"/calls/{r.json()['id']}/hangup", headers=h).status_code == 200
    assert codes == [201] * 5 + [429], codes
    assert 1 <= int(r.headers["retry-after"]) <= 60
    contacts = [{"number": "+14155550123"}]
    campaign = {"agent_profile_id": agent, "outbound_trunk_id": trunk, "contacts": contacts}
    made = [limited.post("/campaigns", headers=h, json={**campaign, "name": n}).status_code for n in "abc"]
    assert made == [201, 201, 429], made
