"""Generated attacks on the real control plane (real LiveKit, SQLite and PostgreSQL), from its own
OpenAPI spec, so that a new route is attacked the day it is added:

- every operation that names a resource is called with another tenant's key and this tenant's ids:
  never a 2xx, never a 5xx, and afterwards everything this tenant sees is exactly as before;
- every operation with a JSON body gets, field by field, control characters, NUL bytes, oversized
  strings, wrong types, deep nesting and huge numbers: a 4xx with a message, never a 5xx;
- every path parameter gets traversal, NUL and oversized values: never a 5xx.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from phoneagent.db.models import Call, Campaign, CampaignContact, WebhookDelivery, WebhookEndpoint
from phoneagent.stack.services import Stack
from tests.db_fixtures import app_state, client_with, new_key

NASTY_STRINGS = [
    "\x00",
    "a\x00b",
    "\x1b[2J\x1b]0;owned\x07",
    "x" * 100_000,
    "../../../../etc/passwd",
    "' OR 1=1; --",
    "\ud7ff\ue000\uffff",
    "http://127.0.0.1:6389/",
]
NASTY_VALUES: list[Any] = [
    *NASTY_STRINGS,
    -1,
    10**30,
    1e308,
    None,
    True,
    [],
    {},
    [[[[[[[[]]]]]]]],
    {"a": {"b": {"c": {}}}},
]
NASTY_PATHS = ["..%2F..%2Fetc", "%00", "x" * 2000, "' OR 1=1", "%1b%5b2J", "-1"]


def _seed(client: TestClient, h: dict[str, str]) -> dict[str, str]:
    """One of everything for the tenant of key ``h``; the ids by path parameter name."""
    agent = client.post("/agents", headers=h, json={"name": "a"}).json()["id"]
    inbound = {"name": "in", "numbers": ["+14155550100"], "allowed_addresses": ["127.0.0.1"]}
    trunk_in = client.post("/trunks/inbound", headers=h, json=inbound).json()["id"]
    outbound = {"name": "out", "address": "8.8.8.8:5060", "numbers": ["+14155550100"]}  # never dialed
    trunk_out = client.post("/trunks/outbound", headers=h, json=outbound).json()["id"]
    rule = client.post(
        "/dispatch-rules",
        headers=h,
        json={"name": "r", "inbound_trunk_id": trunk_in, "agent_profile_id": agent},
    ).json()["id"]
    number = client.post("/numbers", headers=h, json={"number": "+14155550177"}).json()["id"]
    prefix = client.get("/keys", headers=h).json()[0]["prefix"]
    with app_state(client).sessions() as s:
        from phoneagent.provisioning.keys import tenant_for_key

        tenant = tenant_for_key(s, h["Authorization"][7:]) or ""
        call = Call(tenant_id=tenant, direction="inbound", status="ended", created_at=datetime.now(UTC))
        endpoint = WebhookEndpoint(tenant_id=tenant, url="https://93.184.216.34/hook", secret="whsec_x")
        campaign = Campaign(tenant_id=tenant, name="c", agent_profile_id=agent, outbound_trunk_id=trunk_out)
        s.add_all([call, endpoint, campaign])
        s.flush()
        s.add(CampaignContact(campaign_id=campaign.id, number="+14155550123", timezone="America/New_York"))
        delivery = WebhookDelivery(
            tenant_id=tenant,
            endpoint_id=endpoint.id,
            event_id="evt_1",
            event_type="call.ended",
            call_id=call.id,
            payload={},
            status="dead",
            next_attempt_at=datetime.now(UTC),
        )
        s.add(delivery)
        s.commit()
        ids = {
            "call_id": call.id,
            "endpoint_id": endpoint.id,
            "campaign_id": campaign.id,
            "delivery_id": delivery.id,
            "leg_id": call.id,  # the worker's consultation routes: a tenant's key never reaches them
        }
    by_prefix = {
        "/agents": agent,
        "/trunks/inbound": trunk_in,
        "/trunks/outbound": trunk_out,
        "/dispatch-rules": rule,
        "/numbers": number,
    }
    return {**ids, "prefix": prefix, "agent_id": agent, **{f"item_id:{k}": v for k, v in by_prefix.items()}}


def _operations(client: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    spec = client.app.openapi()  # type: ignore[attr-defined]
    return [(method.upper(), path, op) for path, item in spec["paths"].items() for method, op in item.items()]


def _fill(path: str, ids: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "item_id":
            return next(v for k, v in ids.items() if k.startswith("item_id:") and path.startswith(k[8:]))
        return ids[name]

    return re.sub(r"\{(\w+)\}", one, path)


Operation = tuple[str, str, dict[str, Any]]


def _snapshot(client: TestClient, h: dict[str, str], ops: list[Operation]) -> dict[str, Any]:
    """Everything the tenant can read without naming a resource, and each resource it owns."""
    seen = {}
    for method, path, _op in ops:
        if method == "GET" and "{" not in path and not path.startswith(("/review", "/health", "/webhooks")):
            r = client.get(path, headers=h)
            seen[path] = (r.status_code, r.text)
    return seen


def test_another_tenants_key_never_reads_or_changes_anything(client: TestClient) -> None:
    victim, attacker = new_key(client, "victim"), new_key(client, "attacker")
    ids = _seed(client, victim)
    ops = _operations(client)
    before = _snapshot(client, victim, ops)
    tried = 0
    for method, path, op in ops:
        if "{" not in path or path.startswith("/review"):
            continue
        url = _fill(path, ids)
        for body in ({}, {"name": "taken", "enabled": False, "url": "https://93.184.216.34/x"}):
            r = client.request(method, url, headers=attacker, json=body if "requestBody" in op else None)
            tried += 1
            assert r.status_code < 500, (method, url, r.status_code, r.text[:300])
            assert not 200 <= r.status_code < 300, (method, url, r.status_code, r.text[:300])
    assert tried >= 20, tried  # every resource route of the spec was attacked
    assert _snapshot(client, victim, ops) == before
    for method, path, _op in ops:  # and each resource still reads the same for its owner
        if method == "GET" and "{" in path and not path.startswith(("/review", "/webhooks")):
            assert client.get(_fill(path, ids), headers=victim).status_code < 500


def _fields(op: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    schema = op["requestBody"]["content"].get("application/json", {}).get("schema", {})
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return list(schema.get("properties", {}))


def test_malformed_and_oversized_input_is_never_a_500(client: TestClient) -> None:
    h = new_key(client, "fuzzed")
    ids = _seed(client, h)
    spec = client.app.openapi()  # type: ignore[attr-defined]
    sent = 0
    for method, path, op in _operations(client):
        if path.startswith(("/review", "/webhooks")):
            continue
        url = _fill(path, ids)
        if "requestBody" in op and "application/json" in op["requestBody"].get("content", {}):
            for field in _fields(op, spec):
                for value in NASTY_VALUES:
                    r = client.request(method, url, headers=h, json={field: value})
                    sent += 1
                    assert r.status_code < 500, (method, url, field, repr(value)[:60], r.text[:300])
                    if r.status_code >= 400:
                        assert r.json().get("error"), (method, url, r.text[:200])
        for bad in NASTY_PATHS:
            if "{" in path:
                r = client.request(method, re.sub(r"\{\w+\}", bad, path), headers=h)
                sent += 1
                assert r.status_code < 500, (method, path, bad[:40], r.text[:300])
    assert sent > 500, sent


INSIDE = ["127.0.0.1:6389", "localhost:7880", "169.254.169.254", "10.0.0.5:5060", "0.0.0.0", "100.64.0.1"]


def test_every_url_field_refuses_internal_addresses(stack: Stack, db_url: str) -> None:
    """Every field of the spec that takes an address (webhook URLs, trunk addresses, a profile's LLM
    URL), created and changed, with the host's own and private addresses: never accepted. With the
    strict defaults (the suite's own settings allow loopback for its receivers and test phones)."""
    url_fields = {"url", "address", "base_url"}
    tried = 0
    with client_with(stack, db_url, webhook_allowed_networks=[], trunk_allowed_networks=[]) as c:
        spec = c.app.openapi()  # type: ignore[attr-defined]
        h = new_key(c, "prober")
        ids = _seed(c, h)
        for method, path, op in _operations(c):
            if method not in ("POST", "PATCH") or path.startswith(("/review", "/webhooks")):
                continue
            if "application/json" not in op.get("requestBody", {}).get("content", {}):
                continue
            fields = set(_fields(op, spec))
            url = _fill(path, ids)
            for field in fields & url_fields:
                for host in INSIDE:
                    value = f"https://{host}/x" if field in ("url", "base_url") else host
                    r = c.request(method, url, headers=h, json={field: value})
                    tried += 1
                    assert not 200 <= r.status_code < 300, (method, path, field, value, r.text[:200])
            if "llm" in fields:
                for host in INSIDE:
                    llm = {"brain": "llm", "provider": "local", "base_url": f"http://{host}/v1"}
                    r = c.request(method, url, headers=h, json={"name": f"p{tried}", "llm": llm})
                    tried += 1
                    assert not 200 <= r.status_code < 300, (method, path, llm, r.text[:200])
    assert tried >= 30, tried
