"""SRTP on trunks (media_encryption): what the API stores is what livekit-server holds, read back from
it; the operator's default fills a trunk created without one; values that cannot work are a 422
naming the field. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.testclient import TestClient
from livekit import api

from phoneagent.config import Settings
from phoneagent.stack.services import Stack
from phoneagent.telephony.client import livekit_api
from tests.db_fixtures import client_with, new_key

ENC = api.SIPMediaEncryption
INBOUND = {"name": "in", "numbers": ["+14155550100"], "allowed_addresses": ["203.0.113.7"]}
OUTBOUND = {"name": "out", "address": "sip.example.com", "numbers": ["+14155550100"]}


def _livekit_trunk(settings: Settings, livekit_id: str) -> Any:
    async def go() -> Any:
        async with livekit_api(settings) as lk:
            ins = (await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())).items
            outs = (await lk.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())).items
            found: list[Any] = [t for t in ins if t.sip_trunk_id == livekit_id]
            found += [t for t in outs if t.sip_trunk_id == livekit_id]
            return found[0]

    return asyncio.run(go())


def _encryption(settings: Settings, livekit_id: str) -> int:
    """What livekit-server applies to the trunk's calls: its media config, made from media_encryption
    when it stored the trunk (livekit-server upgrades the field into it)."""
    trunk = _livekit_trunk(settings, livekit_id)
    return int(trunk.media.encryption) if trunk.media.HasField("encryption") else int(trunk.media_encryption)


def test_a_trunk_without_media_encryption_gets_the_operators_default(stack: Stack, db_url: str) -> None:
    with client_with(stack, db_url, sip_media_encryption="allow") as client:
        h = new_key(client, "acme")
        inbound = client.post("/trunks/inbound", headers=h, json=INBOUND)
        outbound = client.post("/trunks/outbound", headers=h, json=OUTBOUND)
        assert inbound.status_code == outbound.status_code == 201, (inbound.text, outbound.text)
        for trunk in (inbound.json(), outbound.json()):
            assert trunk["media_encryption"] == "allow"
            assert _encryption(stack.settings, trunk["livekit_id"]) == ENC.SIP_MEDIA_ENCRYPT_ALLOW
        # a change of the operator's default does not reach trunks made before it: they keep theirs
        assert client.get(f"/trunks/outbound/{outbound.json()['id']}", headers=h).json()[
            "media_encryption"
        ] == ("allow")


def test_the_suites_default_is_plain_rtp(client: TestClient, stack: Stack) -> None:
    h = new_key(client, "acme")
    trunk = client.post("/trunks/outbound", headers=h, json=OUTBOUND).json()
    assert trunk["media_encryption"] == "disable"
    assert _encryption(stack.settings, trunk["livekit_id"]) == ENC.SIP_MEDIA_ENCRYPT_DISABLE


def test_srtp_required_over_tls_reaches_livekit_and_changes_follow(client: TestClient, stack: Stack) -> None:
    h = new_key(client, "acme")
    r = client.post(
        "/trunks/outbound", headers=h, json={**OUTBOUND, "transport": "tls", "media_encryption": "require"}
    )
    assert r.status_code == 201, r.text
    trunk = r.json()
    assert (trunk["transport"], trunk["media_encryption"]) == ("tls", "require")
    lk = _livekit_trunk(stack.settings, trunk["livekit_id"])
    assert lk.transport == api.SIPTransport.SIP_TRANSPORT_TLS
    assert _encryption(stack.settings, trunk["livekit_id"]) == ENC.SIP_MEDIA_ENCRYPT_REQUIRE

    r = client.patch(f"/trunks/outbound/{trunk['id']}", headers=h, json={"media_encryption": "allow"})
    assert r.status_code == 200, r.text
    assert _encryption(stack.settings, trunk["livekit_id"]) == ENC.SIP_MEDIA_ENCRYPT_ALLOW


def test_an_unknown_mode_is_a_422_naming_the_field(client: TestClient) -> None:
    h = new_key(client, "acme")
    for path, body in (("/trunks/inbound", INBOUND), ("/trunks/outbound", OUTBOUND)):
        r = client.post(path, headers=h, json={**body, "media_encryption": "sometimes"})
        assert r.status_code == 422, r.text
        detail = r.json()["detail"][0]
        assert detail["field"] == "media_encryption" and "'disable', 'allow' or 'require'" in detail["reason"]
    assert client.get("/trunks/outbound", headers=h).json()["items"] == []


def test_srtp_required_where_its_keys_would_travel_in_clear_text_is_refused(client: TestClient) -> None:
    h = new_key(client, "acme")
    r = client.post("/trunks/outbound", headers=h, json={**OUTBOUND, "media_encryption": "require"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["field"] == "media_encryption" and "clear text over udp" in detail["reason"]

    # a TLS trunk that requires SRTP cannot be moved to plain TCP
    tls = client.post(
        "/trunks/outbound", headers=h, json={**OUTBOUND, "transport": "tls", "media_encryption": "require"}
    ).json()
    r = client.patch(f"/trunks/outbound/{tls['id']}", headers=h, json={"transport": "tcp"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "media_encryption", r.text
    assert client.get(f"/trunks/outbound/{tls['id']}", headers=h).json()["transport"] == "tls"

    # inbound: this stack takes no SIP over TLS (the suite's settings)
    r = client.post("/trunks/inbound", headers=h, json={**INBOUND, "media_encryption": "require"})
    assert r.status_code == 422, r.text
    assert "PHONEAGENT_SIP_TLS is off" in r.json()["detail"][0]["reason"]


def test_an_inbound_trunk_requires_srtp_when_the_stack_takes_tls(stack: Stack, db_url: str) -> None:
    with client_with(stack, db_url, sip_tls=True) as client:
        h = new_key(client, "acme")
        r = client.post("/trunks/inbound", headers=h, json={**INBOUND, "media_encryption": "require"})
        assert r.status_code == 201, r.text
        assert _encryption(stack.settings, r.json()["livekit_id"]) == ENC.SIP_MEDIA_ENCRYPT_REQUIRE
