"""A tenant's webhook URL cannot reach this host, a private network or a metadata address: refused at
registration (422), refused again at connect time on the address actually connected to (a name
re-pointed after registration gets nothing through), raw connection errors never shown to the tenant,
and replays rate-limited. The receivers here are real HTTP servers on loopback: the attacks' targets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from phoneagent.calls.outbound import CallRequest, place_call
from phoneagent.calls.outbox import Deliverer, RetryPolicy
from phoneagent.db.engine import make_engine, session_factory
from phoneagent.db.models import AgentProfile, OutboundTrunk, Tenant, WebhookDelivery, WebhookEndpoint
from phoneagent.netguard import AddressPolicy, parse_networks
from phoneagent.stack.services import Stack
from tests.db_fixtures import client_with, new_key
from tests.peers.receiver import WebhookReceiver

ONE_TRY = RetryPolicy(max_attempts=1, base_s=0.05, ended_grace_s=0.0)

INSIDE = [
    "https://127.0.0.1:18000/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://localhost:6389/",
    "https://[::1]:7880/twirp",
    "https://[::ffff:127.0.0.1]:7880/",
    "https://[::ffff:a9fe:a9fe]/",
    "https://10.0.0.5/hook",
    "https://192.168.1.10/hook",
    "https://0.0.0.0:8000/",
    "https://100.64.0.1/",
    "https://224.0.0.251/",
]


@pytest.fixture
def strict(stack: Stack, db_url: str) -> Iterator[TestClient]:
    """The control plane with the defaults a deployment has: https, public addresses only."""
    with client_with(
        stack, db_url, webhook_allowed_networks=[], webhook_require_https=True, webhook_replays_per_minute=3
    ) as c:
        yield c


@pytest.mark.parametrize("url", INSIDE)
def test_a_url_inside_is_refused_at_registration_and_on_change(strict: TestClient, url: str) -> None:
    h = new_key(strict, "mallory")
    r = strict.post("/webhook-endpoints", headers=h, json={"url": url})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == "url" and "not a public one" in r.json()["detail"][0]["reason"]
    assert strict.get("/webhook-endpoints", headers=h).json()["items"] == []


def test_plain_http_and_credentials_in_the_url_are_refused(strict: TestClient) -> None:
    h = new_key(strict, "mallory")
    for url, says in [("http://8.8.8.8/hook", "https"), ("https://u:p@8.8.8.8/hook", "password")]:
        r = strict.post("/webhook-endpoints", headers=h, json={"url": url})
        assert r.status_code == 422 and says in r.json()["detail"][0]["reason"], r.text


def test_a_public_endpoint_cannot_be_patched_to_point_inside(strict: TestClient, db: Session) -> None:
    h = new_key(strict, "mallory")
    tenant = db.query(Tenant).filter_by(name="mallory").one()
    row = WebhookEndpoint(tenant_id=tenant.id, url="https://8.8.8.8/hook", secret="whsec_x")
    db.add(row)
    db.commit()
    for url in ("https://127.0.0.1:7880/", "https://localhost:6389/"):
        r = strict.patch(f"/webhook-endpoints/{row.id}", headers=h, json={"url": url})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "url", r.text
    db.expire_all()
    assert db.get(WebhookEndpoint, row.id).url == "https://8.8.8.8/hook"  # type: ignore[union-attr]


def _one_delivery(db: Session, url: str) -> str:
    tenant = Tenant(name=f"t-{time.monotonic_ns()}")
    db.add(tenant)
    db.flush()
    agent = AgentProfile(tenant_id=tenant.id, name="a")
    trunk = OutboundTrunk(tenant_id=tenant.id, name="o", address="203.0.113.9:5060", numbers=["+15550001111"])
    # stored as if registered when the name still led outside (or before registration was checked)
    db.add_all([agent, trunk, WebhookEndpoint(tenant_id=tenant.id, url=url, secret="whsec_t")])
    db.commit()
    place_call(
        db, tenant.id, CallRequest(to="+14155550123", agent_profile_id=agent.id, outbound_trunk_id=trunk.id)
    )
    db.commit()  # place_call flushes; the caller owns the transaction
    return tenant.id


async def _deliver(db_url: str, addresses: AddressPolicy) -> None:
    deliverer = Deliverer(session_factory(make_engine(db_url)), policy=ONE_TRY, addresses=addresses)
    try:
        assert await deliverer.deliver_due() == 1
    finally:
        await deliverer.aclose()


async def test_a_name_re_pointed_inside_after_registration_gets_nothing_through(
    db: Session, db_url: str
) -> None:
    """DNS rebinding: the name resolved to a public address when registered; at delivery it resolves
    to loopback, where a real receiver listens. The connection is refused before any byte is sent."""
    with WebhookReceiver(secret="whsec_t") as rx:
        port = rx.url.split(":")[2].split("/")[0]
        answers = iter([["93.184.216.34"], ["127.0.0.1"]])

        async def rebinding(host: str, _port: int) -> list[str]:
            return next(answers)

        policy = AddressPolicy(require_https=False, resolver=rebinding)
        url = f"http://hooks.example.test:{port}/hook"
        await asyncio.to_thread(policy.check_url, url)  # the public answer passes registration
        _one_delivery(db, url)
        await _deliver(db_url, policy)
        assert rx.received == []
    db.expire_all()
    row = db.query(WebhookDelivery).one()
    assert row.last_status_code is None
    assert row.last_error == "refused: the URL does not lead to a public address"


async def test_a_stored_inside_url_is_refused_at_connect_time(db: Session, db_url: str) -> None:
    with WebhookReceiver(secret="whsec_t") as rx:
        _one_delivery(db, rx.url)
        await _deliver(db_url, AddressPolicy(require_https=False))
        assert rx.received == []


async def test_the_tenant_sees_a_failure_class_not_the_raw_error(db: Session, db_url: str) -> None:
    # an operator-allowed network, a closed port: the tenant sees "could not connect", no errno or host
    _one_delivery(db, "http://127.0.0.1:9/hook")
    loopback = AddressPolicy(allowed_networks=parse_networks(["127.0.0.0/8"]), require_https=False)
    await _deliver(db_url, loopback)
    db.expire_all()
    row = db.query(WebhookDelivery).one()
    assert (row.last_status_code, row.last_error) == (None, "could not connect")


def test_replays_are_rate_limited_per_tenant(strict: TestClient, db: Session) -> None:
    ha, hb = new_key(strict, "mallory"), new_key(strict, "trent")
    ids = {}
    for name in ("mallory", "trent"):
        tenant = db.query(Tenant).filter_by(name=name).one()
        ep = WebhookEndpoint(tenant_id=tenant.id, url="https://8.8.8.8/hook", secret="whsec_x", enabled=False)
        db.add(ep)
        db.flush()
        row = WebhookDelivery(
            tenant_id=tenant.id,
            endpoint_id=ep.id,
            event_id=f"evt_{name}",
            event_type="call.queued",
            payload={},
            status="dead",
            next_attempt_at=datetime.now(UTC),
        )
        db.add(row)
        db.commit()
        ids[name] = row.id
    for _ in range(3):
        assert strict.post(f"/webhook-deliveries/{ids['mallory']}/replay", headers=ha).status_code == 200
    r = strict.post(f"/webhook-deliveries/{ids['mallory']}/replay", headers=ha)
    assert r.status_code == 429, r.text
    assert 1 <= int(r.headers["retry-after"]) <= 60 and "replay" in r.json()["error"]
    # another tenant is not held back by mallory's replays
    assert strict.post(f"/webhook-deliveries/{ids['trent']}/replay", headers=hb).status_code == 200
