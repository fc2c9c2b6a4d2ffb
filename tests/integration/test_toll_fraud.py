"""Toll fraud: no call goes to a premium-rate, shared-cost or unknown number, or outside the allowed
countries (POST /calls, campaign contacts), and an agent profile cannot list such a transfer
destination, nor point the worker's LLM at a URL the operator did not list."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from phoneagent.stack.services import Stack
from tests.db_fixtures import agent_and_trunk, client_with, new_key


@pytest.fixture
def strict(stack: Stack, db_url: str) -> Iterator[TestClient]:
    """The defaults a deployment has (premium-rate, shared-cost, unknown refused), calls to the US
    and Canada only."""
    denied = ["premium_rate", "shared_cost", "unknown"]
    with client_with(stack, db_url, call_number_types_denied=denied, call_countries=["US", "CA"]) as c:
        yield c


@pytest.mark.parametrize(
    ("to", "says"),
    [
        ("+19005550123", "premium-rate"),  # US 900
        ("+448712345678", "premium-rate"),  # UK 087x
        ("+15550001111", "not a number of any known type"),
        ("+12125550123", None),  # an ordinary New York number: queued
        ("+442079460000", "calls go to US, CA only"),  # London: outside the allowed countries
    ],
)
def test_outbound_calls_go_only_to_ordinary_numbers_in_allowed_countries(
    strict: TestClient, to: str, says: str | None
) -> None:
    h = new_key(strict, "mallory")
    agent, trunk = agent_and_trunk(strict, h)
    body = {"to": to, "agent_profile_id": agent, "outbound_trunk_id": trunk}
    r = strict.post("/calls", headers=h, json=body)
    if says is None:
        assert r.status_code == 201, r.text
        return
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == "to" and says in r.json()["detail"][0]["reason"]
    assert strict.get("/calls", headers=h).json()["items"] == []


def test_a_campaign_with_a_premium_contact_is_refused(strict: TestClient) -> None:
    h = new_key(strict, "mallory")
    agent, trunk = agent_and_trunk(strict, h)
    contacts = [{"number": "+12125550123"}, {"number": "+19005550123"}]
    body = {"name": "c", "agent_profile_id": agent, "outbound_trunk_id": trunk, "contacts": contacts}
    r = strict.post("/campaigns", headers=h, json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "contacts[1].number", r.text
    assert strict.get("/campaigns", headers=h).json()["items"] == []


LLM = {"brain": "llm", "provider": "openai"}
PREMIUM_INTENT = {
    "name": "x",
    "keywords": ["human"],
    "reply": "ok",
    "action": "transfer",
    "transfer_to": "tel:+19005550123",
}


@pytest.mark.parametrize(
    ("llm", "says"),
    [
        ({**LLM, "transfer_destinations": ["+19005550123"]}, "premium-rate"),
        ({"brain": "scripted", "script": {"intents": [PREMIUM_INTENT]}}, "premium-rate"),
        ({**LLM, "transfer_destinations": ["the boss"]}, "destination"),
        ({"brain": "llm", "provider": "local", "base_url": "http://127.0.0.1:6389/v1"}, "not one the"),
        ({**LLM, "fallbacks": [{"provider": "local", "base_url": "http://169.254.169.254"}]}, "not one the"),
        ({"brain": "lmm"}, "llm.brain"),
    ],
)
def test_a_profile_cannot_list_a_premium_transfer_or_an_unlisted_url(
    strict: TestClient, llm: dict[str, object], says: str
) -> None:
    h = new_key(strict, "mallory")
    r = strict.post("/agents", headers=h, json={"name": "a", "llm": llm})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == "llm" and says in r.json()["detail"][0]["reason"], r.text
    ok = strict.post("/agents", headers=h, json={"name": "b"}).json()["id"]
    r = strict.patch(f"/agents/{ok}", headers=h, json={"llm": llm})
    assert r.status_code == 422, r.text


def test_a_listed_destination_is_accepted(strict: TestClient) -> None:
    h = new_key(strict, "acme")
    llm = {**LLM, "transfer_destinations": ["+1 415 555 0100", "sip:desk@example.com"]}
    r = strict.post("/agents", headers=h, json={"name": "a", "llm": llm})
    assert r.status_code == 201, r.text


def test_the_operator_sets_a_tenants_countries(client: TestClient, db_url: str) -> None:
    """`phoneagent tenants countries acme --allow US`: acme's calls go to the US only, another
    tenant's are not affected, and `--allow ''` gives acme the operator's default back."""
    acme, globex = new_key(client, "acme"), new_key(client, "globex")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHONEAGENT_")}
    env["PHONEAGENT_DATABASE_URL"] = db_url

    def countries(allow: str) -> str:
        cmd = [sys.executable, "-m", "phoneagent.cli", "tenants", "countries", "acme", "--allow", allow]
        r = subprocess.run(cmd, env=env, text=True, capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert "calls go to US" in countries("us")
    london = "+442079460000"
    made = {}
    for name, h, allowed in (("acme", acme, False), ("globex", globex, True)):
        made[name] = agent_and_trunk(client, h)
        body = {"to": london, "agent_profile_id": made[name][0], "outbound_trunk_id": made[name][1]}
        r = client.post("/calls", headers=h, json=body)
        assert (r.status_code == 201) is allowed, r.text
    assert "the default (any)" in countries("")
    body = {"to": london, "agent_profile_id": made["acme"][0], "outbound_trunk_id": made["acme"][1]}
    r = client.post("/calls", headers=acme, json=body)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("stt", "says"),
    [
        ({"modle": "base"}, "unknown stt setting"),
        ({"model": "large-v3"}, "not available"),
        ({"model": "tiny.en", "language": "de"}, "English only"),
    ],
)
def test_a_profiles_stt_section_is_read_as_the_worker_reads_it(
    client: TestClient, stt: dict[str, object], says: str
) -> None:
    """A section the worker could not use is refused when saved, not silently replaced on a call."""
    h = new_key(client, "acme")
    r = client.post("/agents", headers=h, json={"name": "a", "stt": stt})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "stt" and says in r.text, r.text
    good = {"name": "b", "stt": {"vocabulary": ["Acme", "Maple Avenue"]}}
    ok = client.post("/agents", headers=h, json=good)
    assert ok.status_code == 201, ok.text
