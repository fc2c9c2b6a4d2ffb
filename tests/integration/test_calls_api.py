"""The call log: every filter, keyset pagination that never repeats or skips, transcript search."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from phoneagent.calls.query import index_transcript
from phoneagent.db.models import AgentProfile, Call, CallEvent, CallTurn, Tenant
from phoneagent.provisioning.keys import tenant_for_key
from tests.db_fixtures import app_state, new_key

PHRASES = ["I want to book an appointment", "what are your opening hours", "cancel my order please"]


def _seed(client: TestClient, h: dict[str, str], n: int) -> list[Call]:
    rnd = random.Random(7)
    base = datetime(2026, 11, 1, tzinfo=UTC)
    with app_state(client).sessions() as session:
        tenant = tenant_for_key(session, h["Authorization"][7:])
        assert tenant
        agent = AgentProfile(tenant_id=tenant, name="a")
        session.add(agent)
        session.flush()
        calls = []
        for i in range(n):
            c = Call(
                tenant_id=tenant,
                direction=rnd.choice(["inbound", "outbound"]),
                status=rnd.choice(["ended", "in_progress"]),
                from_number=f"+1415555{i % 7:04d}",
                to_number="+14155550100",
                agent_profile_id=agent.id if i % 3 == 0 else None,
                end_reason=rnd.choice(["customer_hangup", "busy", None]),
                created_at=base + timedelta(minutes=i // 2),
            )  # pairs share a timestamp: ties
            session.add(c)
            session.flush()
            text = PHRASES[i % 3]
            session.add(CallTurn(call_id=c.id, seq=0, speaker="caller", text=text))
            session.add(CallEvent(call_id=c.id, source="worker", event_id=f"e{i}", type="answered"))
            index_transcript(session, c, text)
            calls.append(c)
        session.commit()
        return calls


def _all_pages(client: TestClient, h: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        q = {**params, "limit": 7, **({"cursor": cursor} if cursor else {})}
        r = client.get("/calls", headers=h, params=q)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items


def test_keyset_pagination_returns_every_call_once_newest_first(client: TestClient) -> None:
    h = new_key(client, "acme")
    calls = _seed(client, h, 45)
    items = _all_pages(client, h)
    assert sorted(i["id"] for i in items) == sorted(c.id for c in calls)
    keys = [(i["created_at"], i["id"]) for i in items]
    assert keys == sorted(keys, reverse=True)


def test_each_filter_matches_exactly(client: TestClient) -> None:
    h = new_key(client, "acme")
    calls = _seed(client, h, 40)
    agent_id = next(c.agent_profile_id for c in calls if c.agent_profile_id)
    cases: dict[str, tuple[object, Callable[[Call], bool]]] = {
        "status": ("ended", lambda c: c.status == "ended"),
        "direction": ("outbound", lambda c: c.direction == "outbound"),
        "end_reason": ("busy", lambda c: c.end_reason == "busy"),
        "number": ("+1 415 555 0003", lambda c: "+14155550003" in (c.from_number, c.to_number)),
        "agent_id": (agent_id, lambda c: c.agent_profile_id == agent_id),
        "since": ("2026-11-01T00:10:00Z", lambda c: c.created_at >= datetime(2026, 11, 1, 0, 10, tzinfo=UTC)),
        "until": ("2026-11-01T00:05:00Z", lambda c: c.created_at < datetime(2026, 11, 1, 0, 5, tzinfo=UTC)),
        "q": ("opening hours", lambda c: PHRASES.index("what are your opening hours") == calls.index(c) % 3),
    }
    for param, (value, pred) in cases.items():
        items = _all_pages(client, h, **{param: value})
        got = [i["id"] for i in items]
        want = {c.id for c in calls if pred(c)}
        assert len(got) == len(set(got)) and set(got) == want and want, param
        stamps = [i["created_at"] for i in items]
        assert stamps == sorted(stamps, reverse=True), param
    both = {i["id"] for i in _all_pages(client, h, status="ended", q="appointment")}
    assert both == {c.id for i, c in enumerate(calls) if c.status == "ended" and i % 3 == 0}


def test_search_is_a_phrase_and_bad_queries_are_4xx(client: TestClient) -> None:
    h = new_key(client, "acme")
    _seed(client, h, 6)
    assert client.get("/calls", headers=h, params={"q": "hours opening"}).json()["items"] == []
    for bad in (
        {"q": '"'},
        {"cursor": "not-a-cursor"},
        {"number": "12"},
        {"status": "exploded"},
        {"since": "yesterday"},
        {"limit": 0},
        {"limit": 10_000},
    ):
        r = client.get("/calls", headers=h, params=bad)
        assert r.status_code == 422, (bad, r.text)


def test_detail_has_transcript_and_events(client: TestClient) -> None:
    h = new_key(client, "acme")
    call = _seed(client, h, 1)[0]
    d = client.get(f"/calls/{call.id}", headers=h).json()
    assert d["transcript"][0]["text"] == PHRASES[0] and d["events"][0]["type"] == "answered"


def test_tenants_never_share_search_results(client: TestClient) -> None:
    a, b = new_key(client, "a"), new_key(client, "b")
    _seed(client, a, 3)
    assert client.get("/calls", headers=b, params={"q": "appointment"}).json()["items"] == []
    with app_state(client).sessions() as session:
        assert session.query(Tenant).count() == 2


def test_a_transcript_indexed_again_replaces_its_search_row(client: TestClient) -> None:
    h = new_key(client, "acme")
    call = _seed(client, h, 1)[0]
    with app_state(client).sessions() as session:
        c = session.get(Call, call.id)
        assert c is not None
        index_transcript(session, c, "my parcel never arrived")
        session.commit()
        rows = session.execute(text("SELECT count(*) FROM call_search")).scalar_one()
    assert rows == 1
    found = client.get("/calls", headers=h, params={"q": "parcel"}).json()["items"]
    assert [i["id"] for i in found] == [call.id]
    assert client.get("/calls", headers=h, params={"q": PHRASES[0]}).json()["items"] == []


def test_calls_created_in_the_same_microsecond_are_all_searchable(client: TestClient) -> None:
    h = new_key(client, "acme")
    at = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    with app_state(client).sessions() as session:
        tenant = tenant_for_key(session, h["Authorization"][7:])
        assert tenant
        ids = []
        for _ in range(5):
            c = Call(tenant_id=tenant, direction="inbound", created_at=at)
            session.add(c)
            session.flush()
            index_transcript(session, c, "same moment")
            ids.append(c.id)
        session.commit()
    assert sorted(i["id"] for i in _all_pages(client, h, q="same moment")) == sorted(ids)
