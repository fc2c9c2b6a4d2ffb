"""A tenant's trunks cannot point inside: an outbound trunk's INVITEs go to a carrier, never to this
host's services or private network (unless the operator allows a private PBX's network, and never to
the stack's own listeners); an inbound trunk cannot trust the whole internet; a trunk keeps a number."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from phoneagent.stack.services import Stack
from tests.db_fixtures import client_with, new_key


@pytest.fixture
def strict(stack: Stack, db_url: str) -> Iterator[TestClient]:
    """The defaults a deployment has: carrier trunks at public addresses only."""
    with client_with(stack, db_url, trunk_allowed_networks=[]) as c:
        yield c


@pytest.fixture
def pbx(stack: Stack, db_url: str) -> Iterator[TestClient]:
    """An operator who allowed loopback (a PBX on this machine)."""
    with client_with(stack, db_url, trunk_allowed_networks=["127.0.0.0/8"]) as c:
        yield c


def _out(address: str) -> dict[str, object]:
    return {"name": "out", "address": address, "numbers": ["+14155550100"]}


@pytest.mark.parametrize(
    "address", ["127.0.0.1:5060", "localhost:6389", "10.0.0.5:7880", "169.254.169.254", "192.168.1.20:5080"]
)
def test_an_outbound_trunk_inside_is_refused(strict: TestClient, address: str) -> None:
    h = new_key(strict, "mallory")
    r = strict.post("/trunks/outbound", headers=h, json=_out(address))
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == "address" and "not a carrier" in r.json()["detail"][0]["reason"]
    assert strict.get("/trunks/outbound", headers=h).json()["items"] == []


def test_an_outbound_trunk_cannot_be_patched_inside(strict: TestClient) -> None:
    h = new_key(strict, "mallory")
    made = strict.post("/trunks/outbound", headers=h, json=_out("203.0.113.0"))
    # a documentation address is not public either: the trunk is made with a public one instead
    assert made.status_code == 422
    made = strict.post("/trunks/outbound", headers=h, json=_out("8.8.8.8:5060"))
    assert made.status_code == 201, made.text
    r = strict.patch(f"/trunks/outbound/{made.json()['id']}", headers=h, json={"address": "127.0.0.1:5060"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "address", r.text
    assert strict.get(f"/trunks/outbound/{made.json()['id']}", headers=h).json()["address"] == "8.8.8.8:5060"


def test_an_allowed_pbx_network_still_excludes_the_stacks_own_listeners(
    pbx: TestClient, stack: Stack
) -> None:
    h = new_key(pbx, "acme")
    assert pbx.post("/trunks/outbound", headers=h, json=_out("127.0.0.1:5999")).status_code == 201
    s = stack.settings
    for port in (s.sip_port, s.livekit_port, s.redis_port, s.api_port):
        r = pbx.post("/trunks/outbound", headers=h, json={**_out(f"127.0.0.1:{port}"), "name": f"o{port}"})
        assert r.status_code == 422 and "own service" in r.json()["detail"][0]["reason"], r.text


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "0.0.0.0/1", "::/0", "10.0.0.0/7"])
def test_an_inbound_trunk_cannot_trust_the_whole_internet(strict: TestClient, cidr: str) -> None:
    h = new_key(strict, "mallory")
    body = {"name": "in", "numbers": ["+14155550100"], "allowed_addresses": [cidr]}
    r = strict.post("/trunks/inbound", headers=h, json=body)
    assert r.status_code == 422 and "too wide" in r.text, r.text


def test_a_trunk_keeps_at_least_one_number(strict: TestClient) -> None:
    h = new_key(strict, "acme")
    body = {"name": "in", "numbers": ["+14155550100"], "allowed_addresses": ["203.0.113.0/24"]}
    made = strict.post("/trunks/inbound", headers=h, json=body)
    assert made.status_code == 201, made.text
    r = strict.patch(f"/trunks/inbound/{made.json()['id']}", headers=h, json={"numbers": []})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "numbers", r.text
    assert strict.get(f"/trunks/inbound/{made.json()['id']}", headers=h).json()["numbers"] == ["+14155550100"]
