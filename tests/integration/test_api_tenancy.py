"""A key never sees another tenant's rows, on every endpoint; bad input is a 4xx that names the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from phoneagent.db.models import Call
from tests.db_fixtures import app_state, new_key


def _seed(client: TestClient, h: dict[str, str]) -> dict[str, str]:
    agent = client.post("/agents", headers=h, json={"name": "a"}).json()
    trunk = client.post(
        "/trunks/inbound",
        headers=h,
        json={"name": "in", "numbers": ["+14155550100"], "allowed_addresses": ["127.0.0.1"]},
    ).json()
    out = client.post(
        "/trunks/outbound",
        headers=h,
        json={"name": "out", "address": "sip.example.com", "numbers": ["+14155550100"]},
    ).json()
    rule = client.post(
        "/dispatch-rules",
        headers=h,
        json={"name": "r", "inbound_trunk_id": trunk["id"], "agent_profile_id": agent["id"]},
    ).json()
    num = client.post("/numbers", headers=h, json={"number": "+14155550177", "label": "x"}).json()
    with app_state(client).sessions() as session:
        from phoneagent.provisioning.keys import tenant_for_key

        call = Call(
            tenant_id=tenant_for_key(session, h["Authorization"][7:]) or "",
            direction="inbound",
            status="ended",
            created_at=datetime.now(UTC),
        )
        session.add(call)
        session.commit()
        call_id = call.id
    return {
        "/agents": agent["id"],
        "/trunks/inbound": trunk["id"],
        "/trunks/outbound": out["id"],
        "/dispatch-rules": rule["id"],
        "/numbers": num["id"],
        "/calls": call_id,
    }


PATCHES = {
    "/agents": {"greeting": "hijacked"},
    "/trunks/inbound": {"numbers": ["+14155550199"]},
    "/trunks/outbound": {"transport": "tcp"},
    "/dispatch-rules": {"agent_profile_id": "agt_hijacked"},
    "/numbers": {"label": "hijacked"},
}


def test_other_tenant_sees_nothing_and_changes_nothing(client: TestClient) -> None:
    a, b = new_key(client, "tenant-a"), new_key(client, "tenant-b")
    ids = _seed(client, a)
    for path, item_id in ids.items():
        assert client.get(path, headers=b).json()["items"] == [], path
        assert client.get(f"{path}/{item_id}", headers=b).status_code == 404, path
        if path in PATCHES:
            assert client.patch(f"{path}/{item_id}", headers=b, json=PATCHES[path]).status_code == 404, path
            assert client.delete(f"{path}/{item_id}", headers=b).status_code == 404, path
        assert client.get(f"{path}/{item_id}", headers=a).status_code == 200, path  # still there for A
    assert client.get("/health/provisioning", headers=b).json()["missing_in_livekit"] == []
    # B cannot point its rule at A's agent or trunk either
    r = client.post(
        "/dispatch-rules",
        headers=b,
        json={
            "name": "steal",
            "inbound_trunk_id": ids["/trunks/inbound"],
            "agent_profile_id": ids["/agents"],
        },
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] in ("agent_profile_id", "inbound_trunk_id")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer pa_nope_nope"}, {"Authorization": "Basic x"}, {"X-API-Key": "garbage"}],
)
def test_missing_or_wrong_key_is_401_on_every_endpoint(client: TestClient, headers: dict[str, str]) -> None:
    for path in (
        "/agents",
        "/trunks/inbound",
        "/trunks/outbound",
        "/dispatch-rules",
        "/numbers",
        "/calls",
        "/health/provisioning",
    ):
        r = client.get(path, headers=headers)
        assert r.status_code == 401, path
        assert r.json()["error"] == "missing or invalid API key"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/trunks/inbound",
            {"name": "x", "numbers": ["12"], "allowed_addresses": ["127.0.0.1"]},
            "numbers.0",
        ),
        (
            "/trunks/inbound",
            {"name": "x", "numbers": ["+14155550100"], "allowed_addresses": ["300.1.1.1"]},
            "allowed_addresses.0",
        ),
        ("/trunks/inbound", {"name": "x", "numbers": []}, "numbers"),
        ("/trunks/outbound", {"name": "x", "address": "not a host!", "numbers": ["+14155550100"]}, "address"),
        (
            "/trunks/outbound",
            {"name": "x", "address": "h.example", "transport": "sctp", "numbers": ["+14155550100"]},
            "transport",
        ),
        ("/agents", {"name": ""}, "name"),
        ("/agents", {"name": "a", "max_duration_s": 0}, "max_duration_s"),
        ("/agents", {"name": "a", "tools": ["rm -rf"]}, "tools.0"),
        ("/agents", {"name": "a", "surprise": 1}, "surprise"),
        (
            "/dispatch-rules",
            {"name": "r", "kind": "direct", "inbound_trunk_id": "i", "agent_profile_id": "a"},
            "kind",
        ),
        (
            "/dispatch-rules",
            {"name": "r", "room_name": "call-of-another", "inbound_trunk_id": "i", "agent_profile_id": "a"},
            "body",
        ),
        ("/numbers", {"number": "+1 999"}, "number"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    client: TestClient, path: str, body: dict[str, Any], field: str
) -> None:
    h = new_key(client, "acme")
    r = client.post(path, headers=h, json=body)
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["detail"]], r.json()


def test_non_json_body_is_a_4xx(client: TestClient) -> None:
    h = new_key(client, "acme")
    r = client.post("/agents", headers={**h, "content-type": "application/json"}, content=b"{not json")
    assert r.status_code == 422
