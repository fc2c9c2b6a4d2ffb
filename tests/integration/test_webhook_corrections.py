"""``call.updated``: an ended call's end reason changed by later, better evidence (in a warm transfer
the caller's BYE ends the record as customer_hangup, the worker's declared transferred comes a moment
later) reaches each endpoint that was already sent ``call.ended`` with the old one, once; an endpoint
whose ``call.ended`` is not rendered yet gets the new reason in it and nothing more. On SQLite and
PostgreSQL, against a real receiver on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from phoneagent.calls import outbox
from phoneagent.calls.outbox import Deliverer, correct_end_reason
from phoneagent.calls.records import record_event
from phoneagent.db.engine import make_engine, session_factory
from phoneagent.db.models import Call, WebhookDelivery, WebhookEndpoint
from tests.integration.recording_helpers import end_call, webhooks
from tests.integration.test_webhook_delivery import FAST, LOOPBACK, _world
from tests.peers.receiver import WebhookReceiver

SECRET = "whsec_t"


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield session_factory(engine)
    engine.dispose()


@asynccontextmanager
async def _deliverer(sessions: sessionmaker[Session]) -> AsyncIterator[Deliverer]:
    # one pass sends all that is due: these tests' one tenant has no other to be fair to
    deliverer = Deliverer(sessions, policy=FAST, addresses=LOOPBACK, per_tenant=8)
    try:
        yield deliverer
    finally:
        await deliverer.aclose()


def _tenant(sessions: sessionmaker[Session], url: str, **events: list[str]) -> tuple[str, dict[str, str]]:
    """A tenant whose endpoint ``all`` takes every event, and one more endpoint per keyword (taking
    those events), all at ``url``; the tenant's id and the endpoints' ids by name."""
    with sessions() as s:
        tenant, _agent, _trunk = _world(s, url, SECRET)
        endpoints = {
            name: WebhookEndpoint(tenant_id=tenant, url=url, secret=SECRET, events=ev)
            for name, ev in events.items()
        }
        s.add_all(endpoints.values())
        s.commit()
        ids = {name: ep.id for name, ep in endpoints.items()}
        (everything,) = set(
            s.scalars(select(WebhookEndpoint.id).where(WebhookEndpoint.tenant_id == tenant))
        ) - set(ids.values())
        return tenant, {"all": everything, **ids}


def _call_on_the_line(sessions: sessionmaker[Session], tenant: str) -> str:
    with sessions() as s:
        call = Call(tenant_id=tenant, direction="inbound", status="in_progress", room_name="call-transfer")
        s.add(call)
        s.commit()
        return call.id


def _transferred(session: Session, call_id: str) -> None:
    """The worker's hangup event: it handed the caller over (declared, beats the caller's BYE)."""
    call = session.get(Call, call_id)
    assert call is not None
    data = {"data": {"reason": "transferred"}}
    record_event(session, call, source="worker", event_id=f"{call_id}:hangup", type_="hangup", payload=data)


def _worker_transferred(sessions: sessionmaker[Session], call_id: str) -> None:
    with sessions() as s:
        _transferred(s, call_id)
        s.commit()


def _not_attempted_yet(sessions: sessionmaker[Session], endpoint: str) -> None:
    """The endpoint's call.ended is not attempted in the next passes (its tenant has no room in them,
    say): due in an hour. These tests' deliverer (``FAST``) has no ended grace to wait out."""
    with sessions() as s:
        s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.event_type == "call.ended", WebhookDelivery.endpoint_id == endpoint)
            .values(next_attempt_at=datetime.now(UTC) + timedelta(hours=1))
        )
        s.commit()


def _corrections(sessions: sessionmaker[Session], call_id: str) -> list[WebhookDelivery]:
    with sessions() as s:
        query = select(WebhookDelivery).where(
            WebhookDelivery.call_id == call_id, WebhookDelivery.event_type == "call.updated"
        )
        return list(s.scalars(query.order_by(WebhookDelivery.endpoint_id)))


def _last_word(rx: WebhookReceiver) -> dict[str, Any]:
    """What the endpoint was last told about the call (its call.ended, or the latest correction)."""
    told = [r for r in rx.accepted() if r.event_type in ("call.ended", "call.updated")]
    return dict(told[-1].body["data"])


async def test_an_end_reason_changed_after_call_ended_went_out_is_corrected_once(
    sessions: sessionmaker[Session],
) -> None:
    with WebhookReceiver(secret=SECRET) as rx:
        tenant, _ = _tenant(sessions, rx.url)
        call_id = _call_on_the_line(sessions, tenant)
        end_call(sessions, call_id)  # the caller's BYE, as observed: customer_hangup
        async with _deliverer(sessions) as deliverer:
            assert await deliverer.deliver_due() == 1
            _worker_transferred(sessions, call_id)
            # a second replica that folded the same change queues the same event id: nothing more
            with sessions() as s:
                call = s.get(Call, call_id)
                assert call is not None and call.end_reason == "transferred"
                assert correct_end_reason(s, call, "customer_hangup") == 0
                s.commit()
            assert await deliverer.deliver_due() == 1
    (ended,) = rx.of_type("call.ended")
    (updated,) = rx.of_type("call.updated")
    assert ended.body["data"]["end_reason"] == "customer_hangup"
    assert updated.signature_ok
    assert updated.event_id == f"evt_{call_id}_call_updated_end_reason_customer_hangup_to_transferred"
    data = updated.body["data"]
    assert data["changed"] == {"end_reason": {"from": "customer_hangup", "to": "transferred"}}
    # the call as now, rendered as call.ended renders it (with the transcript)
    assert (data["id"], data["status"], data["end_reason"]) == (call_id, "ended", "transferred")
    assert set(data) == set(ended.body["data"]) | {"changed"}
    assert len(_corrections(sessions, call_id)) == 1


async def test_a_change_before_call_ended_is_rendered_is_in_call_ended_alone(
    sessions: sessionmaker[Session],
) -> None:
    with WebhookReceiver(secret=SECRET) as rx:
        tenant, _ = _tenant(sessions, rx.url)
        call_id = _call_on_the_line(sessions, tenant)
        end_call(sessions, call_id)
        _worker_transferred(sessions, call_id)  # within the grace: call.ended is not rendered yet
        assert webhooks(sessions, call_id) == ["call.ended"]
        async with _deliverer(sessions) as deliverer:
            assert await deliverer.deliver_due() == 1
    assert [r.event_type for r in rx.accepted()] == ["call.ended"]
    assert rx.accepted()[0].body["data"]["end_reason"] == "transferred"


async def test_a_correction_goes_to_the_endpoints_that_were_sent_call_ended_and_still_take_it(
    sessions: sessionmaker[Session],
) -> None:
    """``all`` and ``ended`` were sent call.ended and get the correction; ``ended_later``'s call.ended
    is not rendered yet (it will carry the new reason); ``updated`` and ``answered`` were sent no
    call.ended; ``moved`` was, then took other events; ``disabled`` was, then was turned off."""
    with WebhookReceiver(secret=SECRET) as rx:
        tenant, ep = _tenant(
            sessions,
            rx.url,
            ended=["call.ended"],
            ended_later=["call.ended"],
            updated=["call.updated"],
            answered=["call.answered"],
            moved=["call.ended"],
            disabled=["call.ended", "call.updated"],
        )
        call_id = _call_on_the_line(sessions, tenant)
        end_call(sessions, call_id)
        _not_attempted_yet(sessions, ep["ended_later"])
        async with _deliverer(sessions) as deliverer:
            assert await deliverer.deliver_due() == 4
        with sessions() as s:
            s.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == ep["moved"])
                .values(events=["recording.ready"])
            )
            s.execute(
                update(WebhookEndpoint).where(WebhookEndpoint.id == ep["disabled"]).values(enabled=False)
            )
            s.commit()
        _worker_transferred(sessions, call_id)
    corrected = {row.endpoint_id for row in _corrections(sessions, call_id)}
    assert corrected == {ep["all"], ep["ended"]}


async def test_a_fold_while_call_ended_is_rendered_reaches_the_endpoint(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's transferred is folded while call.ended is being rendered: the fold reads that
    call.ended is not rendered (no correction), and a rendering that had read the call before the
    fold committed would send the old reason, corrected by nobody. The rendering holds the call until
    it commits (its row locked; on SQLite a write first), so one of the two sees the other."""
    started, folded = threading.Event(), threading.Event()
    render = outbox.call_payload

    def render_during_a_fold(
        session: Session, call: Call, *, with_transcript: bool = False
    ) -> dict[str, Any]:
        # the one way to put the fold at this instant: the rendering has read its call and not yet
        # committed. Where the rendering holds the call the fold waits, and this goes on after 1 s
        if not started.is_set():
            started.set()
            folded.wait(1.0)
        return render(session, call, with_transcript=with_transcript)

    def fold() -> None:
        started.wait(10)
        with sessions() as s:
            _transferred(s, call_id)
            folded.set()
            time.sleep(0.2)  # committed a moment after the rendering went on
            s.commit()

    monkeypatch.setattr(outbox, "call_payload", render_during_a_fold)
    with WebhookReceiver(secret=SECRET) as rx:
        tenant, _ = _tenant(sessions, rx.url)
        call_id = _call_on_the_line(sessions, tenant)
        end_call(sessions, call_id)
        folding = threading.Thread(target=fold)
        folding.start()
        async with _deliverer(sessions) as deliverer:
            await deliverer.deliver_due()
            folding.join(15)
            await deliverer.deliver_due()  # the correction, if the fold came second
    assert rx.accepted() and all(r.signature_ok for r in rx.accepted())
    assert _last_word(rx)["end_reason"] == "transferred"
