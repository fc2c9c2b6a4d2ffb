"""Two tenants, two real SIP callers at once through one stack: each call lands on its own tenant's
record only, in a room of its own named by the server after the tenant's rule, with its own agent's
words, and neither tenant can read the other's call (the cross-tenant hole of shared room names)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from phoneagent.stack.services import Stack
from tests.peers.sip_phone import BaresipPhone, wait_until
from tests.peers.wav import speech_seconds, trailing_silence_seconds
from tests.stack_fixtures import ControlPlane, WorkerProcess

GREETINGS = {
    "acme": "Hello, this is Acme Plumbing. How can I help?",
    "globex": "Good day, Globex Travel here. What can I do for you?",
}
NUMBERS = {"acme": "+15550151", "globex": "+15550152"}


@pytest.fixture(scope="module")
def tenants(stack: Stack, control_plane: ControlPlane, worker: WorkerProcess) -> dict[str, dict[str, Any]]:
    host = stack.settings.bind_host
    keys = {name: control_plane.new_tenant_key(f"e2e-{name}") for name in GREETINGS}
    out: dict[str, dict[str, Any]] = {}
    for name, h in keys.items():
        with httpx.Client(base_url=control_plane.url, headers=h, timeout=30) as c:
            agent = c.post("/agents", json={"name": name, "greeting": GREETINGS[name]})
            trunk = c.post(
                "/trunks/inbound",
                json={"name": name, "numbers": [NUMBERS[name]], "allowed_addresses": [host]},
            )
            rule = c.post(
                "/dispatch-rules",
                json={
                    "name": name,
                    "inbound_trunk_id": trunk.json()["id"],
                    "agent_profile_id": agent.json()["id"],
                },
            )
            for r in (agent, trunk, rule):
                assert r.status_code == 201, r.text
            out[name] = {"headers": h, "rule": rule.json()}
    return out


def _greeted_then_hang_up(phone: BaresipPhone, uri: str) -> None:
    phone.start()
    phone.dial(uri, timeout=60)

    def greeted() -> bool:
        heard = phone.received_audio()
        return speech_seconds(heard) >= 1.5 and trailing_silence_seconds(heard) >= 1.0

    wait_until(greeted, timeout=90, what="the greeting at the caller")
    phone.bye_confirmed(since=phone.hangup())


def test_two_tenants_calls_at_once_land_each_on_its_own_record(
    stack: Stack, control_plane: ControlPlane, tenants: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    settings = stack.settings
    errors: list[str] = []

    def call(i: int, name: str) -> None:
        phone = BaresipPhone(tmp_path / name, rtp_ports=(44200 + 50 * i, 44249 + 50 * i), user=f"tenant{i}")
        try:
            _greeted_then_hang_up(phone, f"sip:{NUMBERS[name]}@{settings.bind_host}:{settings.sip_port}")
        except Exception as exc:  # noqa: BLE001 - both callers' failures are reported together
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
        finally:
            phone.close()

    threads = [threading.Thread(target=call, args=(i, name)) for i, name in enumerate(tenants)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors

    records: dict[str, dict[str, Any]] = {}
    for name, t in tenants.items():
        with httpx.Client(base_url=control_plane.url, headers=t["headers"], timeout=30) as c:

            def ended(c: httpx.Client = c, name: str = name) -> bool:
                done = [i for i in c.get("/calls").json()["items"] if i["status"] == "ended"]
                if len(done) != 1:
                    return False
                rec = c.get(f"/calls/{done[0]['id']}").json()
                if not any(turn["speaker"] == "agent" for turn in rec["transcript"]):
                    return False
                records[name] = rec
                return True

            wait_until(ended, timeout=60, what=f"{name}'s one call record, with its agent's words")
            assert len(c.get("/calls").json()["items"]) == 1  # the other tenant's call is not here
    for name, rec in records.items():
        other = "globex" if name == "acme" else "acme"
        assert rec["to_number"] == NUMBERS[name], rec
        assert rec["room_name"].startswith(tenants[name]["rule"]["room_prefix"]), rec["room_name"]
        agent_words = " ".join(t["text"] for t in rec["transcript"] if t["speaker"] == "agent")
        assert GREETINGS[name] in agent_words and GREETINGS[other] not in agent_words, agent_words
        with httpx.Client(base_url=control_plane.url, headers=tenants[other]["headers"], timeout=30) as c:
            assert c.get(f"/calls/{rec['id']}").status_code == 404
    assert records["acme"]["room_name"] != records["globex"]["room_name"]
