"""Outgoing webhooks end to end against a real HTTP receiver on loopback: signed, retried with
backoff until accepted, dead after the last attempt and replayable; call.ended held for the configured
grace after the end, for the worker's last turns; nothing lost or doubled when the control plane is
killed while deliveries are pending."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from phoneagent.calls.outbound import CallRequest, place_call
from phoneagent.calls.outbox import Deliverer, RetryPolicy
from phoneagent.calls.worker_events import ingest_worker_events
from phoneagent.db.engine import make_engine, session_factory
from phoneagent.db.models import (
    AgentProfile,
    Call,
    OutboundTrunk,
    Tenant,
    WebhookDelivery,
    WebhookEndpoint,
)
from phoneagent.netguard import AddressPolicy, parse_networks
from phoneagent.stack.services import Stack
from tests.integration.recording_helpers import end_call
from tests.peers.fake_telephony import FakeClock
from tests.peers.receiver import WebhookReceiver
from tests.peers.sip_phone import wait_until
from tests.stack_fixtures import ApiProcess

FAST = RetryPolicy(max_attempts=4, base_s=0.05, factor=2.0, ended_grace_s=0.0)
# the receiver listens on loopback: allowed as an operator allows an internal receiver
LOOPBACK = AddressPolicy(allowed_networks=parse_networks(["127.0.0.0/8"]), require_https=False)


def _world(db: Session, url: str, secret: str, name: str = "acme") -> tuple[str, str, str]:
    tenant = Tenant(name=name)
    db.add(tenant)
    db.flush()
    agent = AgentProfile(tenant_id=tenant.id, name="a")
    trunk = OutboundTrunk(tenant_id=tenant.id, name="o", address="127.0.0.1:5999", numbers=["+15550001111"])
    db.add_all([agent, trunk, WebhookEndpoint(tenant_id=tenant.id, url=url, secret=secret)])
    db.commit()
    return tenant.id, agent.id, trunk.id


def _delivery(db: Session) -> WebhookDelivery:
    """The one delivery row, as the database has it now."""
    db.expire_all()
    return db.query(WebhookDelivery).one()


async def _deliver_until(deliverer: Deliverer, done: object) -> None:
    deadline = time.monotonic() + 20.0
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, "deliveries did not settle in time"
        await deliverer.deliver_due()
        await asyncio.sleep(0.02)


async def test_a_failing_receiver_gets_retries_until_it_accepts(db: Session, db_url: str) -> None:
    with WebhookReceiver(secret="whsec_t") as rx:
        tenant, agent, trunk = _world(db, rx.url, "whsec_t")
        call, _ = place_call(
            db, tenant, CallRequest(to="+14155550123", agent_profile_id=agent, outbound_trunk_id=trunk)
        )
        db.commit()  # place_call flushes; the caller owns the transaction
        rx.status = 503
        deliverer = Deliverer(session_factory(make_engine(db_url)), policy=FAST, addresses=LOOPBACK)
        try:
            await _deliver_until(deliverer, lambda: len(rx.received) >= 2)
            rx.status = 200
            await _deliver_until(deliverer, lambda: len(rx.accepted()) == 1)
        finally:
            await deliverer.aclose()
    got = rx.accepted()[0]
    assert got.signature_ok and got.event_type == "call.queued" and got.body["data"]["id"] == call.id
    assert {r.event_id for r in rx.received} == {got.event_id}  # the retries carried the same event id
    db.expire_all()
    row = db.query(WebhookDelivery).one()
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", len(rx.received), 200)


async def test_after_the_last_attempt_a_delivery_is_dead_until_replayed(db: Session, db_url: str) -> None:
    with WebhookReceiver(secret="whsec_t") as rx:
        tenant, agent, trunk = _world(db, rx.url, "whsec_t")
        place_call(
            db, tenant, CallRequest(to="+14155550123", agent_profile_id=agent, outbound_trunk_id=trunk)
        )
        db.commit()  # place_call flushes; the caller owns the transaction
        rx.status = 500
        deliverer = Deliverer(session_factory(make_engine(db_url)), policy=FAST, addresses=LOOPBACK)
        try:
            await _deliver_until(deliverer, lambda: len(rx.received) == FAST.max_attempts)
            await _deliver_until(deliverer, lambda: _delivery(db).status != "pending")
            row = _delivery(db)
            assert (row.status, row.last_error) == ("dead", "HTTP 500")
            # no attempt after the last one, however long one waits: a dead row is never due again
            row.next_attempt_at = datetime.now(UTC) - timedelta(hours=1)
            db.commit()
            assert await deliverer.deliver_due() == 0
            assert len(rx.received) == FAST.max_attempts
            from phoneagent.calls.outbox import replay

            replay(db, row)
            db.commit()
            rx.status = 204
            await _deliver_until(deliverer, lambda: len(rx.accepted()) == 1)
        finally:
            await deliverer.aclose()
    assert rx.accepted()[0].signature_ok


async def test_a_tenants_hanging_endpoint_holds_up_no_one_else(db: Session, db_url: str) -> None:
    """Tenant A's endpoint accepts connections and never answers (each attempt hangs for the 10 s
    timeout); tenant B's webhook, queued after A's ten, is delivered while A's first attempts still
    hang: at most two of a tenant's deliveries are in flight, and tenants are served in turn."""
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(64)  # the kernel completes the handshakes; nobody ever reads or answers
    port = hanging.getsockname()[1]
    with WebhookReceiver(secret="whsec_b") as rx:
        tenant_a, agent_a, trunk_a = _world(db, f"http://127.0.0.1:{port}/hook", "whsec_a", name="slow")
        for i in range(10):
            place_call(
                db,
                tenant_a,
                CallRequest(to=f"+1415555010{i}", agent_profile_id=agent_a, outbound_trunk_id=trunk_a),
            )
            db.commit()  # place_call flushes; the caller owns the transaction
        tenant_b, agent_b, trunk_b = _world(db, rx.url, "whsec_b", name="quick")
        place_call(
            db, tenant_b, CallRequest(to="+14155550123", agent_profile_id=agent_b, outbound_trunk_id=trunk_b)
        )
        db.commit()  # place_call flushes; the caller owns the transaction
        deliverer = Deliverer(session_factory(make_engine(db_url)), policy=FAST, addresses=LOOPBACK)
        running = asyncio.create_task(deliverer.run(idle_s=0.05))
        # once, in a fresh-clone run, this test never ended (the event loop idle for 8 min): a bounded
        # wait makes that a failure that names its place, not a hung suite
        async with asyncio.timeout(60):
            try:
                deadline = time.monotonic() + 30
                while not rx.accepted():
                    assert time.monotonic() < deadline, "tenant B's webhook was not delivered"
                    await asyncio.sleep(0.02)
                db.expire_all()
                a_rows = db.query(WebhookDelivery).filter_by(tenant_id=tenant_a).all()
                # not one of A's attempts has ended yet (they hang until the timeout), yet B's went out
                assert len(a_rows) == 10 and all(r.attempts == 0 for r in a_rows)
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                await deliverer.aclose()
        hanging.close()
    assert rx.accepted()[0].signature_ok


async def test_a_pass_leases_no_more_rows_than_it_has_free_send_slots(db: Session, db_url: str) -> None:
    """Five tenants' endpoints hang (each attempt waits for the 10 s timeout). A row leased while every
    send slot is taken would wait for one behind those attempts and could outlive its lease, and
    another replica would lease and send it again: a pass leases only as many rows as it can send at
    once, and none while every slot is taken."""
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(64)  # the kernel completes the handshakes; nobody ever reads or answers
    url = f"http://127.0.0.1:{hanging.getsockname()[1]}/hook"
    for t in range(5):
        tenant, agent, trunk = _world(db, url, f"whsec_{t}", name=f"slow-{t}")
        for i in range(2):
            req = CallRequest(to=f"+141555501{t}{i}", agent_profile_id=agent, outbound_trunk_id=trunk)
            place_call(db, tenant, req)
            db.commit()  # place_call flushes; the caller owns the transaction
    deliverer = Deliverer(
        session_factory(make_engine(db_url)), policy=FAST, addresses=LOOPBACK, concurrency=4
    )
    try:
        first = await deliverer._start_due()
        second = await deliverer._start_due()
        db.expire_all()
        leased = db.query(WebhookDelivery).filter(WebhookDelivery.next_attempt_at > datetime.now(UTC)).count()
        assert (first, second, leased) == (4, 0, 4)
    finally:
        await deliverer.aclose()
        hanging.close()


def _ended(sessions: sessionmaker[Session], tenant: str) -> tuple[str, WebhookDelivery]:
    """An inbound call on the line ends (the caller's BYE): its id, and its call.ended as queued."""
    with sessions() as s:
        call = Call(tenant_id=tenant, direction="inbound", status="in_progress", room_name="call-grace")
        s.add(call)
        s.commit()
        call_id = call.id
    end_call(sessions, call_id)
    with sessions() as s:
        (row,) = s.query(WebhookDelivery).filter_by(call_id=call_id, event_type="call.ended").all()
        return call_id, row


def _of_type(db: Session, event_type: str) -> WebhookDelivery:
    db.expire_all()
    return db.query(WebhookDelivery).filter_by(event_type=event_type).one()


GOODBYE = "Thank you for calling Acme, goodbye."


@pytest.mark.parametrize("grace_s", [8.0, RetryPolicy().ended_grace_s])
async def test_call_ended_waits_out_the_configured_grace_for_the_last_turns(
    db: Session, db_url: str, grace_s: float
) -> None:
    """PHONEAGENT_WEBHOOK_ENDED_GRACE_S (here 8 s, and the default 3 s) after the end was recorded,
    not before, call.ended is rendered and sent, with the agent's goodbye that the worker reported a
    moment after the end. Held within its grace, it takes none of its tenant's room: with room for one
    delivery, the tenant's next webhook goes out meanwhile, and so does call.ended after."""
    with WebhookReceiver(secret="whsec_t") as rx:
        tenant, agent, trunk = _world(db, rx.url, "whsec_t")
        sessions = session_factory(make_engine(db_url))
        call_id, ended = _ended(sessions, tenant)
        place_call(
            db, tenant, CallRequest(to="+14155550123", agent_profile_id=agent, outbound_trunk_id=trunk)
        )
        db.commit()  # place_call flushes; the caller owns the transaction
        clock = FakeClock(ended.created_at)
        policy = replace(FAST, ended_grace_s=grace_s)
        deliverer = Deliverer(sessions, policy=policy, addresses=LOOPBACK, per_tenant=1, clock=clock)
        try:
            clock.advance(1.0)  # a pass soon after the end
            assert await deliverer.deliver_due() == 1
            assert [r.event_type for r in rx.accepted()] == ["call.queued"]
            row = _of_type(db, "call.ended")
            held = (row.status, row.attempts, row.payload, row.next_attempt_at)
            assert held == ("pending", 0, None, ended.created_at + timedelta(seconds=grace_s))
            assert await deliverer.deliver_due() == 0  # not due again before then: nothing to spin on
            turn = {"seq": 3, "speaker": "agent", "text": GOODBYE}
            ingest_worker_events(db, [{"event_id": "t3", "room": "call-grace", "type": "turn", "data": turn}])
            clock.advance(grace_s - 1.1)  # a tenth of a second short of the grace
            assert await deliverer.deliver_due() == 0
            clock.advance(0.2)
            assert await deliverer.deliver_due() == 1
        finally:
            await deliverer.aclose()
    (got,) = rx.of_type("call.ended")  # once: holding it back sent nothing early, nor twice
    assert got.signature_ok and got.body["data"]["id"] == call_id
    assert [t["text"] for t in got.body["data"]["transcript"]] == [GOODBYE]
    row = _of_type(db, "call.ended")
    assert (row.status, row.attempts) == ("delivered", 1)


async def test_with_no_grace_call_ended_goes_out_on_the_first_pass(db: Session, db_url: str) -> None:
    with WebhookReceiver(secret="whsec_t") as rx:
        tenant, _agent, _trunk = _world(db, rx.url, "whsec_t")
        sessions = session_factory(make_engine(db_url))
        call_id, _row = _ended(sessions, tenant)
        deliverer = Deliverer(sessions, policy=FAST, addresses=LOOPBACK)  # its ended_grace_s is 0
        try:
            assert await deliverer.deliver_due() == 1
        finally:
            await deliverer.aclose()
    (got,) = rx.accepted()
    assert got.event_type == "call.ended" and got.body["data"]["id"] == call_id


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_killing_the_control_plane_loses_and_doubles_nothing(
    stack: Stack, db_url: str, tmp_path: Path
) -> None:
    api = ApiProcess.create(
        stack.settings,
        db_url,
        tmp_path,
        PHONEAGENT_WEBHOOK_RETRY_BASE_S="0.2",
        PHONEAGENT_WEBHOOK_ENDED_GRACE_S="0",
    )
    with WebhookReceiver() as rx:
        api.start()
        try:
            with httpx.Client(base_url=api.url, headers=api.headers, timeout=30) as c:
                rx.secret = c.post("/webhook-endpoints", json={"url": rx.url}).json()["secret"]
                agent = c.post("/agents", json={"name": "a"}).json()["id"]
                # the trunk leads nowhere: each call fails fast, which makes more events
                nowhere = {"name": "o", "address": "127.0.0.1:9", "numbers": ["+15550001111"]}
                trunk = c.post("/trunks/outbound", json=nowhere).json()["id"]
                rx.status = 503
                for i in range(5):
                    body = {
                        "to": f"+1415555012{i}",
                        "agent_profile_id": agent,
                        "outbound_trunk_id": trunk,
                        "ring_timeout_s": 5,
                    }
                    r = c.post("/calls", json=body)
                    assert r.status_code == 201, r.text
            with httpx.Client(base_url=api.url, headers=api.headers, timeout=30) as c:

                def all_ended() -> bool:
                    return len(c.get("/calls", params={"status": "ended"}).json()["items"]) == 5

                wait_until(all_ended, timeout=60, what="the five calls to end (their trunk leads nowhere)")
            wait_until(lambda: len(rx.received) >= 10, timeout=30, what="first (refused) deliveries")
            api.kill()
            rx.status = 200
            api.start()
            with httpx.Client(base_url=api.url, headers=api.headers, timeout=30) as c:

                def settled() -> bool:
                    rows = c.get("/webhook-deliveries", params={"status": "pending"}).json()["items"]
                    return not rows and len(rx.accepted()) >= 10

                wait_until(settled, timeout=90, what="every pending delivery to be delivered", interval=0.5)
                delivered = c.get("/webhook-deliveries", params={"status": "delivered", "limit": 200}).json()
        finally:
            api.stop()
    counts = Counter(r.event_id for r in rx.accepted())
    assert counts and max(counts.values()) == 1, counts  # each event id accepted exactly once
    ours = {d["event_id"] for d in delivered["items"]}
    assert set(counts) == ours
    # every attempt of this control plane's was signed. The receiver listens on a port the kernel
    # chose, which an earlier test's receiver may have had: the suite's session control plane retries
    # its own deliveries to those (refused while this one answered 503), signed with its own secret
    assert all(r.signature_ok for r in rx.received if r.event_id in ours)
    strays = [r for r in rx.received if r.event_id not in ours]
    assert all(r.answered == 503 for r in strays), strays
    types = Counter(r.event_type for r in rx.accepted())
    assert (types["call.queued"], types["call.ended"]) == (5, 5), types


async def test_a_send_that_outlived_its_lease_records_only_a_success(db: Session, db_url: str) -> None:
    """Replica A's send hangs past its lease and replica B leases the row again. A's late failure
    changes nothing (B's lease and count stay), A's late success marks it delivered (the receiver has
    it), and B's failure after that does not undo it."""
    tenant, agent, trunk = _world(db, "http://127.0.0.1:9/hook", "whsec_t")
    place_call(db, tenant, CallRequest(to="+14155550123", agent_profile_id=agent, outbound_trunk_id=trunk))
    db.commit()  # place_call flushes; the caller owns the transaction
    sessions = session_factory(make_engine(db_url))
    clock = FakeClock(datetime.now(UTC))
    a = Deliverer(sessions, policy=FAST, addresses=LOOPBACK, clock=clock)
    b = Deliverer(sessions, policy=FAST, addresses=LOOPBACK, clock=clock)
    try:
        (first,) = a._lease_due({}, 1)
        clock.advance(Deliverer.LEASE.total_seconds() + 1)  # A's send still hangs
        (second,) = b._lease_due({}, 1)
        assert second.row_id == first.row_id and second.until > first.until

        a._record(first, None, "timeout")
        row = _delivery(db)
        assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 0, second.until)

        a._record(first, 200, None)
        row = _delivery(db)
        assert (row.status, row.last_status_code) == ("delivered", 200)
        b._record(second, 503, "HTTP 503")
        assert _delivery(db).status == "delivered"
        assert a._lease_due({}, 1) == []  # delivered: never due again
    finally:
        await a.aclose()
        await b.aclose()
