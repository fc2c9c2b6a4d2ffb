"""POST /webhooks/livekit: only events signed with the stack's key count; each counts once."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from phoneagent.stack.services import Stack
from phoneagent.telephony.client import livekit_credentials
from tests.db_fixtures import new_key
from tests.peers.livekit_events import signed_headers, sip_participant_event


def _rule(client: TestClient, h: dict[str, str], number: str = "+14155550100") -> str:
    agent = client.post("/agents", headers=h, json={"name": "a"}).json()
    trunk = client.post(
        "/trunks/inbound",
        headers=h,
        json={"name": "in", "numbers": [number], "allowed_addresses": ["127.0.0.1"]},
    ).json()
    rule = client.post(
        "/dispatch-rules",
        headers=h,
        json={"name": "r", "inbound_trunk_id": trunk["id"], "agent_profile_id": agent["id"]},
    ).json()
    return str(rule["livekit_id"])


def test_signed_events_open_and_end_the_call_once(client: TestClient, stack: Stack) -> None:
    creds = livekit_credentials(stack.settings)
    h = new_key(client, "acme")
    rule_id = _rule(client, h)
    joined = sip_participant_event("EV_join", "participant_joined", "call-abc", rule_id)
    left = sip_participant_event("EV_left", "participant_left", "call-abc", rule_id)
    for body in (joined, joined, left, left):  # each delivered twice
        r = client.post(
            "/webhooks/livekit", content=body, headers=signed_headers(body, creds.api_key, creds.api_secret)
        )
        assert r.status_code == 200, r.text
    calls = client.get("/calls", headers=h).json()["items"]
    assert len(calls) == 1
    call = calls[0]
    assert (call["status"], call["end_reason"], call["direction"]) == ("ended", "customer_hangup", "inbound")
    assert call["from_number"] == "+14155550123" and call["disconnect_reason"] == "CLIENT_INITIATED"
    events = client.get(f"/calls/{call['id']}", headers=h).json()["events"]
    assert [e["event_id"] for e in events] == ["EV_join", "EV_left"]


def test_unsigned_forged_and_stale_events_are_401_and_write_nothing(client: TestClient, stack: Stack) -> None:
    creds = livekit_credentials(stack.settings)
    h = new_key(client, "acme")
    rule_id = _rule(client, h)
    body = sip_participant_event("EV_1", "participant_joined", "call-x", rule_id)
    stale = sip_participant_event("EV_2", "participant_joined", "call-y", rule_id, at=time.time() - 3600)
    other = sip_participant_event("EV_3", "participant_joined", "call-z", rule_id)
    attempts = [
        (body, {}),
        (body, signed_headers(body, creds.api_key, "not-the-secret")),
        (body, signed_headers(body, "APIunknown", creds.api_secret)),
        (body, signed_headers(other, creds.api_key, creds.api_secret)),  # signature of another body
        (stale, signed_headers(stale, creds.api_key, creds.api_secret)),
        ("{not json", signed_headers("{not json", creds.api_key, creds.api_secret)),
    ]
    for content, headers in attempts:
        r = client.post("/webhooks/livekit", content=content, headers=headers)
        assert r.status_code == 401, r.text
    assert client.get("/calls", headers=h).json()["items"] == []


def test_a_sip_event_of_another_call_in_a_calls_room_is_not_applied(client: TestClient, stack: Stack) -> None:
    """Room names are the server's, but were one ever reused or forged, another tenant's (or another
    SIP dialog's) events in the room must not end, or land on, this call's record."""
    creds = livekit_credentials(stack.settings)
    ha, hb = new_key(client, "acme"), new_key(client, "globex")
    rule_a, rule_b = _rule(client, ha), _rule(client, hb, "+14155550101")

    def post(body: str) -> None:
        r = client.post(
            "/webhooks/livekit", content=body, headers=signed_headers(body, creds.api_key, creds.api_secret)
        )
        assert r.status_code == 200, r.text

    post(sip_participant_event("EV_a", "participant_joined", "room-1", rule_a, sip_call_id="SCL_a"))
    # another tenant's caller, and then another dialog of the same tenant, "in" the same room
    post(sip_participant_event("EV_b", "participant_left", "room-1", rule_b, sip_call_id="SCL_b"))
    post(sip_participant_event("EV_c", "participant_left", "room-1", rule_a, sip_call_id="SCL_c"))
    [call] = client.get("/calls", headers=ha).json()["items"]
    assert call["status"] != "ended", call
    events = client.get(f"/calls/{call['id']}", headers=ha).json()["events"]
    assert [e["event_id"] for e in events] == ["EV_a"]
    assert client.get("/calls", headers=hb).json()["items"] == []
    post(sip_participant_event("EV_a2", "participant_left", "room-1", rule_a, sip_call_id="SCL_a"))
    assert client.get(f"/calls/{call['id']}", headers=ha).json()["end_reason"] == "customer_hangup"
