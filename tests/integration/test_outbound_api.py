"""POST /calls and the call-control API against the real LiveKit: validation, idempotency, hangup in
every state before dialing, campaigns and webhook endpoints (the dialer itself is in tests/e2e)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.db_fixtures import new_key


def _setup(client: TestClient, h: dict[str, str]) -> tuple[str, str]:
    agent = client.post("/agents", headers=h, json={"name": "caller"})
    trunk = client.post(
        "/trunks/outbound",
        headers=h,
        json={
            "name": "out",
            "address": "127.0.0.1:5999",
            "numbers": ["+15550001111"],
            "max_concurrent_calls": 2,
        },
    )
    assert agent.status_code == 201 and trunk.status_code == 201, (agent.text, trunk.text)
    assert trunk.json()["max_concurrent_calls"] == 2
    return agent.json()["id"], trunk.json()["id"]


def test_a_call_is_queued_with_its_record(client: TestClient) -> None:
    h = new_key(client, "acme")
    agent, trunk = _setup(client, h)
    body = {
        "to": "+1 415 555 0123",
        "agent_profile_id": agent,
        "outbound_trunk_id": trunk,
        "metadata": {"order": 7},
    }
    r = client.post("/calls", headers=h, json=body)
    assert r.status_code == 201, r.text
    call = r.json()
    assert (call["status"], call["direction"], call["to_number"], call["from_number"]) == (
        "queued",
        "outbound",
        "+14155550123",
        "+15550001111",
    )
    detail = client.get(f"/calls/{call['id']}", headers=h).json()
    assert detail["call_metadata"] == {"order": 7}
    assert [e["type"] for e in detail["events"]] == ["queued"]


def test_the_same_idempotency_key_gives_the_same_call_and_a_new_body_is_409(client: TestClient) -> None:
    h = new_key(client, "acme")
    agent, trunk = _setup(client, h)
    body = {"to": "+14155550123", "agent_profile_id": agent, "outbound_trunk_id": trunk}
    first = client.post("/calls", headers={**h, "Idempotency-Key": "k-1"}, json=body)
    again = client.post("/calls", headers={**h, "Idempotency-Key": "k-1"}, json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    changed = {**body, "to": "+14155550124"}
    other = client.post("/calls", headers={**h, "Idempotency-Key": "k-1"}, json=changed)
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["error"]
    # keys are per tenant: another tenant's same key is its own call
    h2 = new_key(client, "globex")
    agent2, trunk2 = _setup(client, h2)
    mine = client.post(
        "/calls",
        headers={**h2, "Idempotency-Key": "k-1"},
        json={**body, "agent_profile_id": agent2, "outbound_trunk_id": trunk2},
    )
    assert mine.status_code == 201 and mine.json()["id"] != first.json()["id"]


def test_bad_call_requests_are_4xx_naming_the_field(client: TestClient) -> None:
    h = new_key(client, "acme")
    agent, trunk = _setup(client, h)
    ok = {"to": "+14155550123", "agent_profile_id": agent, "outbound_trunk_id": trunk}
    cases = [
        ({**ok, "to": "12"}, 422, "to"),
        ({**ok, "ring_timeout_s": 2}, 422, "ring_timeout_s"),
        ({**ok, "ring_timeout_s": 500}, 422, "ring_timeout_s"),
        ({**ok, "agent_profile_id": "agt_nope"}, 404, None),
        ({**ok, "outbound_trunk_id": "otr_nope"}, 404, None),
        ({"to": "+14155550123", "agent_profile_id": agent}, 422, "outbound_trunk_id"),
        ({**ok, "from_number": "+15550009999"}, 422, "from_number"),
        ({"to": ok["to"], "agent_profile_id": agent, "from_number": "+15550009999"}, 422, "from_number"),
        ({**ok, "surprise": 1}, 422, "surprise"),
    ]
    for body, code, field in cases:
        r = client.post("/calls", headers=h, json=body)
        assert r.status_code == code, (body, r.text)
        if field:
            assert field in {d["field"] for d in r.json()["detail"]}, r.text
    bad_key = client.post("/calls", headers={**h, "Idempotency-Key": "has space"}, json=ok)
    assert bad_key.status_code == 422


def test_a_queued_call_hung_up_ends_at_once_and_a_second_hangup_changes_nothing(client: TestClient) -> None:
    h = new_key(client, "acme")
    agent, trunk = _setup(client, h)
    call = client.post(
        "/calls",
        headers=h,
        json={"to": "+14155550123", "agent_profile_id": agent, "outbound_trunk_id": trunk},
    ).json()
    r = client.post(f"/calls/{call['id']}/hangup", headers=h)
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["end_reason"]) == ("ended", "api_hangup")
    again = client.post(f"/calls/{call['id']}/hangup", headers=h)
    assert again.json()["ended_at"] == r.json()["ended_at"]
    other = new_key(client, "globex")
    assert client.post(f"/calls/{call['id']}/hangup", headers=other).status_code == 404


def test_webhook_endpoints_show_the_secret_once_and_are_tenant_scoped(client: TestClient) -> None:
    h = new_key(client, "acme")
    # a public address literal: registration resolves names, and this machine has no DNS
    r = client.post(
        "/webhook-endpoints", headers=h, json={"url": "https://93.184.216.34/hook", "events": ["call.ended"]}
    )
    assert r.status_code == 201 and r.json()["secret"].startswith("whsec_")
    ep = r.json()["id"]
    got = client.get(f"/webhook-endpoints/{ep}", headers=h).json()
    assert "secret" not in got and got["events"] == ["call.ended"]
    assert client.get(f"/webhook-endpoints/{ep}", headers=new_key(client, "globex")).status_code == 404
    for bad in ({"url": "ftp://x"}, {"url": "https://x", "events": ["call.exploded"]}):
        assert client.post("/webhook-endpoints", headers=h, json=bad).status_code == 422
    off = client.patch(f"/webhook-endpoints/{ep}", headers=h, json={"enabled": False})
    assert off.json()["enabled"] is False
    assert client.delete(f"/webhook-endpoints/{ep}", headers=h).status_code == 204


def test_a_campaign_is_validated_and_can_be_paused_resumed_and_cancelled(client: TestClient) -> None:
    h = new_key(client, "acme")
    agent, trunk = _setup(client, h)
    body = {
        "name": "remind",
        "agent_profile_id": agent,
        "outbound_trunk_id": trunk,
        "concurrency": 2,
        "contacts": [{"number": "+14155550123", "variables": {"name": "Ada"}}, {"number": "+4930123456"}],
    }
    r = client.post("/campaigns", headers=h, json=body)
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["status"] == "running" and c["progress"]["pending"] == 2 and c["progress"]["total"] == 2
    assert client.post("/campaigns", headers=h, json=body).status_code == 409  # the name is taken
    dup = {**body, "name": "x", "contacts": [{"number": "+14155550123"}, {"number": "+1 415 555 0123"}]}
    assert client.post("/campaigns", headers=h, json=dup).status_code == 422
    late = {**body, "name": "y", "window_start": "25:00"}
    assert client.post("/campaigns", headers=h, json=late).status_code == 422
    assert client.post(f"/campaigns/{c['id']}/pause", headers=h).json()["status"] == "paused"
    assert client.post(f"/campaigns/{c['id']}/resume", headers=h).json()["status"] == "running"
    cancelled = client.post(f"/campaigns/{c['id']}/cancel", headers=h).json()
    assert cancelled["status"] == "cancelled" and cancelled["progress"]["cancelled"] == 2
    assert client.post(f"/campaigns/{c['id']}/resume", headers=h).status_code == 409
    assert client.get(f"/campaigns/{c['id']}", headers=new_key(client, "globex")).status_code == 404


def test_deleting_what_calls_were_made_with_keeps_the_calls(client: TestClient) -> None:
    h = new_key(client, "acme")
    agent, trunk = _setup(client, h)
    body = {"to": "+14155550123", "agent_profile_id": agent, "outbound_trunk_id": trunk}
    call = client.post("/calls", headers=h, json=body).json()
    assert client.delete(f"/trunks/outbound/{trunk}", headers=h).status_code == 204
    assert client.delete(f"/agents/{agent}", headers=h).status_code == 204
    kept = client.get(f"/calls/{call['id']}", headers=h).json()
    assert (kept["agent_profile_id"], kept["outbound_trunk_id"], kept["to_number"]) == (
        None,
        None,
        body["to"],
    )


def test_an_agent_or_trunk_a_campaign_uses_cannot_be_deleted(client: TestClient) -> None:
    h = new_key(client, "acme")
    agent, trunk = _setup(client, h)
    body = {
        "name": "c",
        "agent_profile_id": agent,
        "outbound_trunk_id": trunk,
        "contacts": [{"number": "+14155550123"}],
    }
    campaign = client.post("/campaigns", headers=h, json=body).json()["id"]
    for path in (f"/agents/{agent}", f"/trunks/outbound/{trunk}"):
        r = client.delete(path, headers=h)
        assert r.status_code == 409 and campaign in r.json()["error"], r.text
