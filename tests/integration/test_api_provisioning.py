"""The control plane against the real livekit-server, on SQLite and on PostgreSQL: what the API
creates, changes and deletes is read back from LiveKit itself."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.testclient import TestClient
from livekit import api

from phoneagent.config import Settings
from phoneagent.stack.services import Stack
from phoneagent.telephony.client import livekit_api
from tests.db_fixtures import app_state, new_key


def _lk_inbound(settings: Settings) -> dict[str, api.SIPInboundTrunkInfo]:
    async def go() -> dict[str, api.SIPInboundTrunkInfo]:
        async with livekit_api(settings) as lk:
            return {
                t.sip_trunk_id: t
                for t in (await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())).items
            }

    return asyncio.run(go())


def _lk_outbound(settings: Settings) -> dict[str, api.SIPOutboundTrunkInfo]:
    async def go() -> dict[str, api.SIPOutboundTrunkInfo]:
        async with livekit_api(settings) as lk:
            res = await lk.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
            return {t.sip_trunk_id: t for t in res.items}

    return asyncio.run(go())


def _lk_rules(settings: Settings) -> dict[str, api.SIPDispatchRuleInfo]:
    async def go() -> dict[str, api.SIPDispatchRuleInfo]:
        async with livekit_api(settings) as lk:
            res = await lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
            return {r.sip_dispatch_rule_id: r for r in res.items}

    return asyncio.run(go())


def _agent(client: TestClient, h: dict[str, str], name: str = "support") -> dict[str, Any]:
    r = client.post("/agents", json={"name": name, "greeting": "Hello", "tools": ["end_call"]}, headers=h)
    assert r.status_code == 201, r.text
    agent: dict[str, Any] = r.json()
    return agent


def test_inbound_trunk_lifecycle_is_mirrored_on_livekit(client: TestClient, stack: Stack) -> None:
    h = new_key(client, "acme")
    r = client.post(
        "/trunks/inbound",
        headers=h,
        json={
            "name": "main-in",
            "numbers": ["+1 (415) 555-0100"],
            "allowed_addresses": ["203.0.113.7"],
            "auth_username": "acme",
            "auth_password": "s3cret-pass",
        },
    )
    assert r.status_code == 201, r.text
    trunk = r.json()
    assert trunk["numbers"] == ["+14155550100"]
    assert trunk["allowed_addresses"] == ["203.0.113.7/32"]
    assert "auth_password" not in trunk and trunk["has_password"] is True
    lk = _lk_inbound(stack.settings)[trunk["livekit_id"]]
    assert list(lk.numbers) == ["+14155550100"] and list(lk.allowed_addresses) == ["203.0.113.7/32"]
    assert lk.auth_username == "acme"

    r = client.patch(
        f"/trunks/inbound/{trunk['id']}", headers=h, json={"numbers": ["+14155550100", "+14155550101"]}
    )
    assert r.status_code == 200, r.text
    assert list(_lk_inbound(stack.settings)[trunk["livekit_id"]].numbers) == ["+14155550100", "+14155550101"]
    assert "s3cret-pass" not in client.get(f"/trunks/inbound/{trunk['id']}", headers=h).text

    assert client.delete(f"/trunks/inbound/{trunk['id']}", headers=h).status_code == 204
    assert trunk["livekit_id"] not in _lk_inbound(stack.settings)
    assert client.get(f"/trunks/inbound/{trunk['id']}", headers=h).status_code == 404


def test_open_inbound_trunk_is_refused(client: TestClient) -> None:
    h = new_key(client, "acme")
    r = client.post("/trunks/inbound", headers=h, json={"name": "open", "numbers": ["+14155550100"]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "allowed_addresses"


def test_twilio_and_telnyx_presets(client: TestClient, stack: Stack) -> None:
    h = new_key(client, "acme")
    r = client.post(
        "/trunks/outbound",
        headers=h,
        json={
            "name": "tw",
            "provider": "twilio",
            "address": "acme.pstn.twilio.com",
            "numbers": ["+14155550100"],
        },
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "auth_username"
    r = client.post(
        "/trunks/outbound",
        headers=h,
        json={
            "name": "tw",
            "provider": "twilio",
            "address": "sip.example.com",
            "numbers": ["+14155550100"],
            "auth_username": "u",
            "auth_password": "p",
        },
    )
    assert r.status_code == 422 and "pstn.twilio.com" in r.json()["detail"][0]["reason"]
    r = client.post(
        "/trunks/outbound",
        headers=h,
        json={
            "name": "tw",
            "provider": "twilio",
            "address": "acme.pstn.twilio.com",
            "transport": "tcp",
            "numbers": ["+14155550100"],
            "auth_username": "u",
            "auth_password": "p",
        },
    )
    assert r.status_code == 201, r.text
    lk = _lk_outbound(stack.settings)[r.json()["livekit_id"]]
    assert lk.address == "acme.pstn.twilio.com" and lk.transport == api.SIPTransport.SIP_TRANSPORT_TCP

    r = client.post(
        "/trunks/outbound",
        headers=h,
        json={
            "name": "tx",
            "provider": "telnyx",
            "numbers": ["+14155550100"],
            "auth_username": "u",
            "auth_password": "p",
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["address"] == "sip.telnyx.com"

    r = client.post(
        "/trunks/inbound",
        headers=h,
        json={"name": "tw-in", "provider": "twilio", "numbers": ["+14155550100"]},
    )
    assert r.status_code == 201, r.text
    assert "54.172.60.0/30" in r.json()["allowed_addresses"]


def test_dispatch_rule_sends_the_trunks_calls_to_the_agent(client: TestClient, stack: Stack) -> None:
    h = new_key(client, "acme")
    agent = _agent(client, h)
    trunk = client.post(
        "/trunks/inbound",
        headers=h,
        json={"name": "in", "numbers": ["+14155550100"], "allowed_addresses": ["127.0.0.1"]},
    ).json()
    r = client.post(
        "/dispatch-rules",
        headers=h,
        json={
            "name": "to-support",
            "inbound_trunk_id": trunk["id"],
            "agent_profile_id": agent["id"],
        },
    )
    assert r.status_code == 201, r.text
    rule = _lk_rules(stack.settings)[r.json()["livekit_id"]]
    assert list(rule.trunk_ids) == [trunk["livekit_id"]]
    # the server names the rooms: after the rule's own id, a room per call (LiveKit adds the rest)
    assert rule.rule.dispatch_rule_individual.room_prefix == r.json()["id"] == r.json()["room_prefix"]
    assert not rule.rule.dispatch_rule_individual.no_randomness
    assert rule.room_config.agents[0].agent_name == stack.settings.agent_name
    assert agent["id"] in rule.room_config.agents[0].metadata

    # the trunk and the agent are in use: deleting them is refused, not half-done
    assert client.delete(f"/trunks/inbound/{trunk['id']}", headers=h).status_code == 409
    assert client.delete(f"/agents/{agent['id']}", headers=h).status_code == 409
    assert trunk["livekit_id"] in _lk_inbound(stack.settings)

    assert client.delete(f"/dispatch-rules/{r.json()['id']}", headers=h).status_code == 204
    assert r.json()["livekit_id"] not in _lk_rules(stack.settings)


def test_phone_number_joins_its_trunk_on_livekit(client: TestClient, stack: Stack) -> None:
    h = new_key(client, "acme")
    trunk = client.post(
        "/trunks/inbound",
        headers=h,
        json={"name": "in", "numbers": ["+14155550100"], "allowed_addresses": ["127.0.0.1"]},
    ).json()
    r = client.post(
        "/numbers", headers=h, json={"number": "+1 415 555 0199", "inbound_trunk_id": trunk["id"]}
    )
    assert r.status_code == 201, r.text
    assert r.json()["e164"] == "+14155550199"
    assert "+14155550199" in _lk_inbound(stack.settings)[trunk["livekit_id"]].numbers
    assert client.delete(f"/numbers/{r.json()['id']}", headers=h).status_code == 204
    assert "+14155550199" not in _lk_inbound(stack.settings)[trunk["livekit_id"]].numbers


def test_livekit_failure_writes_nothing(stack: Stack, db_url: str) -> None:
    from phoneagent.api.app import create_app

    dead = stack.settings.model_copy(update={"database_url": db_url, "livekit_port": 1})
    with TestClient(create_app(dead)) as c:
        h = new_key(c, "acme")
        r = c.post(
            "/trunks/inbound",
            headers=h,
            json={"name": "in", "numbers": ["+14155550100"], "allowed_addresses": ["127.0.0.1"]},
        )
        assert r.status_code == 503, r.text
        assert "nothing was written" in r.json()["error"]
        assert c.get("/trunks/inbound", headers=h).json()["items"] == []


def test_duplicate_name_is_a_conflict(client: TestClient) -> None:
    h = new_key(client, "acme")
    _agent(client, h, "dup")
    r = client.post("/agents", json={"name": "dup"}, headers=h)
    assert r.status_code == 409 and "unique" in r.json()["error"]


def test_reconcile_reports_and_repairs_drift_both_ways(client: TestClient, stack: Stack) -> None:
    from phoneagent.db.models import InboundTrunk
    from phoneagent.provisioning.reconcile import reconcile
    from phoneagent.telephony.sip import InboundSpec, LiveKitSip, owner_tag

    h = new_key(client, "acme")
    trunk = client.post(
        "/trunks/inbound",
        headers=h,
        json={"name": "in", "numbers": ["+14155550100"], "allowed_addresses": ["127.0.0.1"]},
    ).json()
    assert client.get("/health/provisioning", headers=h).json()["in_sync"] is True
    lk = LiveKitSip(stack.settings)
    lk.delete_trunk(trunk["livekit_id"])  # drift 1: deleted behind our back
    with app_state(client).sessions() as s:
        row = s.get(InboundTrunk, trunk["id"])
        assert row is not None
        tenant = row.tenant_id
    orphan = lk.create_inbound(
        InboundSpec(name="orphan", numbers=["+14155550111"], allowed_addresses=["127.0.0.1/32"]),
        owner_tag(tenant, "itr_gone"),
    )  # drift 2: ours, but no row
    foreign = lk.create_inbound(
        InboundSpec(name="by-hand", numbers=["+14155550112"], allowed_addresses=["127.0.0.1/32"]), ""
    )  # not ours: never touched

    report = client.get("/health/provisioning", headers=h).json()
    assert report == {"in_sync": False, "missing_in_livekit": [trunk["id"]], "orphans_in_livekit": [orphan]}

    with app_state(client).sessions() as session:
        reconcile(session, lk, agent_name=stack.settings.agent_name, repair=True, tenant_id=tenant)
    assert client.get("/health/provisioning", headers=h).json()["in_sync"] is True
    live = _lk_inbound(stack.settings)
    new_id = client.get(f"/trunks/inbound/{trunk['id']}", headers=h).json()["livekit_id"]
    assert new_id in live and orphan not in live and foreign in live
    lk.delete_trunk(foreign)


def test_the_background_upkeep_recreates_what_livekit_lost_and_deletes_nothing(
    client: TestClient, stack: Stack
) -> None:
    from phoneagent.provisioning.upkeep import ProvisioningUpkeep
    from phoneagent.telephony.sip import InboundSpec, LiveKitSip, owner_tag

    h = new_key(client, "acme")
    agent = _agent(client, h)
    trunk = client.post(
        "/trunks/inbound",
        headers=h,
        json={"name": "in", "numbers": ["+14155550100"], "allowed_addresses": ["127.0.0.1"]},
    ).json()
    rule = client.post(
        "/dispatch-rules",
        headers=h,
        json={"name": "to-support", "inbound_trunk_id": trunk["id"], "agent_profile_id": agent["id"]},
    ).json()
    lk = LiveKitSip(stack.settings)
    upkeep = ProvisioningUpkeep(
        app_state(client).sessions, lk, agent_name=stack.settings.agent_name, interval_s=60
    )
    assert upkeep.check_once() == []  # in step: nothing to do

    # Redis emptied behind our back: the rule and its trunk are gone from LiveKit
    lk.delete_rule(rule["livekit_id"])
    lk.delete_trunk(trunk["livekit_id"])
    other_db = lk.create_inbound(
        InboundSpec(name="other", numbers=["+14155550113"], allowed_addresses=["127.0.0.1/32"]),
        owner_tag("tnt_of_another_database", "itr_x"),
    )
    assert upkeep.check_once() == []  # missing once: maybe the API is creating or deleting it right now
    assert upkeep.check_once() == [trunk["id"], rule["id"]] and upkeep.recreated == 2

    new_trunk = client.get(f"/trunks/inbound/{trunk['id']}", headers=h).json()["livekit_id"]
    new_rule = client.get(f"/dispatch-rules/{rule['id']}", headers=h).json()["livekit_id"]
    assert new_trunk in _lk_inbound(stack.settings) and new_trunk != trunk["livekit_id"]
    assert list(_lk_rules(stack.settings)[new_rule].trunk_ids) == [new_trunk]  # the rule names the new trunk
    assert client.get("/health/provisioning", headers=h).json()["in_sync"] is True
    assert other_db in _lk_inbound(stack.settings)  # tagged, but not this database's to delete
    lk.delete_trunk(other_db)
