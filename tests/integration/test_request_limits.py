"""Bounded input: a request body over PHONEAGENT_MAX_REQUEST_BYTES is a 413 before anything reads it
(declared or streamed), an agent profile's sections and a campaign's variables have sizes, and a
tenant has quotas of resources, webhook endpoints and running campaigns (403 beyond)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from phoneagent.stack.services import Stack
from tests.db_fixtures import client_with, new_key


@pytest.fixture
def small(stack: Stack, db_url: str) -> Iterator[TestClient]:
    with client_with(
        stack,
        db_url,
        max_request_bytes=64 * 1024,
        max_resources_per_tenant=2,
        max_webhook_endpoints_per_tenant=1,
        webhook_allowed_networks=[],
        webhook_require_https=True,
    ) as c:
        yield c


def test_a_body_over_the_limit_is_a_413_declared_or_streamed(small: TestClient) -> None:
    h = new_key(small, "mallory")
    huge = {"name": "a", "greeting": "x" * 100_000}
    r = small.post("/agents", headers=h, json=huge)
    assert r.status_code == 413 and "over 65536 bytes" in r.json()["error"], r.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        raw = json.dumps(huge).encode()
        for i in range(0, len(raw), 8192):
            yield raw[i : i + 8192]

    r = small.post("/agents", headers={**h, "content-type": "application/json"}, content=chunks())
    assert r.status_code == 413, r.text
    assert small.get("/agents", headers=h).json()["items"] == []
    # the webhook receivers too: a stranger's oversized batch is refused unread
    assert small.post("/webhooks/worker", content=b"{" + b" " * 70_000 + b"}").status_code == 413


def test_profile_sections_have_sizes(stack: Stack, client: TestClient) -> None:
    h = new_key(client, "mallory")
    big_script = {"script": {"intents": [{"name": f"i{i}", "reply": "x" * 1000} for i in range(300)]}}
    for section, value in (("stt", {"vocabulary": ["w" * 100] * 200}), ("llm", big_script)):
        r = client.post("/agents", headers=h, json={"name": "a", section: value})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == section, r.text


def test_campaign_variables_are_bounded(client: TestClient) -> None:
    h = new_key(client, "mallory")
    contact = {"number": "+14155550123", "variables": {"note": "x" * 501}}
    body = {"name": "c", "agent_profile_id": "agt_x", "outbound_trunk_id": "otr_x", "contacts": [contact]}
    r = client.post("/campaigns", headers=h, json=body)
    assert r.status_code == 422 and "contacts" in r.json()["detail"][0]["field"], r.text


def test_a_tenant_has_quotas(small: TestClient) -> None:
    h = new_key(small, "mallory")
    assert [small.post("/agents", headers=h, json={"name": n}).status_code for n in "abc"] == [201, 201, 403]
    r = small.post("/agents", headers=h, json={"name": "d"})
    assert "the most it may have" in r.json()["error"]
    hooks = [
        small.post("/webhook-endpoints", headers=h, json={"url": f"https://8.8.8.8/{n}"}).status_code
        for n in "ab"
    ]
    assert hooks == [201, 403]
    # another tenant has its own quota
    other = new_key(small, "globex")
    assert small.post("/agents", headers=other, json={"name": "a"}).status_code == 201
