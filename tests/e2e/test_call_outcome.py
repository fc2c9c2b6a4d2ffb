"""A scripted booking by a real SIP caller, by key and by voice, ends with the call's outcome: the
caller presses 2 (appointment), says "Friday" when asked for a day, and hangs up. The record's outcome
holds the intent (from the key) and the day (from the caller's turn, by its number), with success by
the profile's condition: in the API (and its filters), in the signed call.ended webhook, and on the
review page in a real browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from phoneagent.stack.services import Stack
from tests.integration.test_review_browser import CHROMIUM_ARGS
from tests.peers.sip_phone import BaresipPhone, wait_until
from tests.peers.voices import caller_wav
from tests.peers.wav import speech_seconds, trailing_silence_seconds
from tests.stack_fixtures import ControlPlane, WorkerProcess, registered_receiver

NUMBER = "+15550161"
SUCCESS = {"intent": "appointment", "slots": ["day"]}


@dataclass
class BookingLine:
    c: httpx.Client
    agent_id: str
    uri: str


@pytest.fixture(scope="module")
def booking_line(stack: Stack, control_plane: ControlPlane) -> Iterator[BookingLine]:
    """``NUMBER`` answered by the built-in booking flow (no script of its own) with a success condition."""
    host = stack.settings.bind_host
    c = httpx.Client(base_url=control_plane.url, headers=control_plane.headers, timeout=30)
    agent = c.post("/agents", json={"name": "booking-outcome", "success": SUCCESS, "silence_timeout_s": 60})
    trunk = c.post(
        "/trunks/inbound", json={"name": "booking", "numbers": [NUMBER], "allowed_addresses": [host]}
    )
    rule = c.post(
        "/dispatch-rules",
        json={
            "name": "booking",
            "inbound_trunk_id": trunk.json()["id"],
            "agent_profile_id": agent.json()["id"],
        },
    )
    for r in (agent, trunk, rule):
        assert r.status_code == 201, r.text
    try:
        yield BookingLine(c, agent.json()["id"], f"sip:{NUMBER}@{host}:{stack.settings.sip_port}")
    finally:
        c.delete(f"/dispatch-rules/{rule.json()['id']}")
        c.delete(f"/trunks/inbound/{trunk.json()['id']}")
        c.close()


def _wait_reply(phone: BaresipPhone, since: int) -> None:
    """Until the agent's reply (after sample ``since`` of what the phone heard) ends in 1.2 s of silence."""

    def replied() -> bool:
        tail = phone.received_audio()[since:]
        return speech_seconds(tail) >= 1.0 and trailing_silence_seconds(tail) >= 1.2

    wait_until(replied, timeout=60, what="the agent's reply at the caller")


def _booked_record(line: BookingLine) -> dict[str, Any]:
    """The line's latest call, once ended with the day in its outcome (the worker's outcome event may
    come after LiveKit's word that the phone left)."""
    found: dict[str, Any] = {}

    def ready() -> bool:
        items = line.c.get("/calls", params={"agent_id": line.agent_id, "limit": 1}).json()["items"]
        if (
            items
            and items[0]["status"] == "ended"
            and (items[0]["outcome"] or {}).get("slots", {}).get("day")
        ):
            found.update(line.c.get(f"/calls/{items[0]['id']}").json())
            return True
        return False

    wait_until(ready, timeout=60, what="the ended call record with the day in its outcome")
    return found


def test_a_booking_by_key_and_voice_ends_with_its_outcome_everywhere(
    stack: Stack,
    control_plane: ControlPlane,
    worker: WorkerProcess,
    booking_line: BookingLine,
    voice: object,
    tmp_path: Path,
) -> None:
    friday = caller_wav(tmp_path / "friday.wav", "Friday, please.", voice)
    with registered_receiver(control_plane, events=["call.ended"]) as rx:
        phone = BaresipPhone(tmp_path / "phone", rtp_ports=(46000, 46049), user="booker").start()
        try:
            phone.dial(booking_line.uri, timeout=30)
            phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.2, timeout=90)  # the greeting
            mark = phone.received_audio().size
            phone.send_dtmf("2")
            _wait_reply(phone, mark)  # "I can book that for you. Which day works best?"
            mark = phone.received_audio().size
            phone.play(friday)
            _wait_reply(phone, mark)  # "Great, you are booked. Anything else?"
            phone.bye_confirmed(since=phone.hangup())
        finally:
            phone.close()

        record = _booked_record(booking_line)
        print("outcome:", record["outcome"])
        print("turns:", [(t["seq"], t["speaker"], t["text"]) for t in record["transcript"]])
        outcome = record["outcome"]
        assert outcome["intent"] == "appointment"
        assert outcome["intents"][0] == {"name": "appointment", "via": "dtmf", "turn": None, "keys": "2"}
        day = outcome["slots"]["day"]
        assert (day["value"], day["via"]) == ("friday", "voice")
        # the day's turn is the caller's turn that said it, as the transcript numbers it
        said = {t["seq"]: t for t in record["transcript"]}
        assert said[day["turn"]]["speaker"] == "caller" and "friday" in said[day["turn"]]["text"].lower()
        assert outcome["success"] is True
        keys = [e["payload"]["data"]["digit"] for e in record["events"] if e["type"] == "dtmf"]
        assert keys == ["2"]

        listed = booking_line.c.get(
            "/calls", params={"outcome.intent": "appointment", "outcome.slot": "day:friday", "limit": 200}
        ).json()["items"]
        assert record["id"] in {c["id"] for c in listed}

        # the signed call.ended webhook, rendered after the ended grace, carries the same outcome
        wait_until(
            lambda: any(r.body["data"]["id"] == record["id"] for r in rx.accepted()),
            timeout=60,
            what="the call.ended webhook of the call",
        )
        (ended,) = [r for r in rx.accepted() if r.body["data"]["id"] == record["id"]]
    assert ended.signature_ok and ended.event_type == "call.ended"
    assert ended.body["data"]["outcome"]["intent"] == "appointment"
    assert ended.body["data"]["outcome"]["slots"]["day"]["value"] == "friday"

    key = control_plane.headers["Authorization"].removeprefix("Bearer ")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{control_plane.url}/review/calls/{record['id']}")
            page.get_by_label("API key").fill(key)
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(re.compile(rf"/review/calls/{record['id']}$"))
            region = page.get_by_role("region", name="Outcome")
            expect(region.locator(".outcome-intent")).to_have_text("appointment")
            expect(region.locator(".outcome-success")).to_contain_text("reached")
            row = region.get_by_role("row", name=re.compile(r"^day friday"))
            expect(row).to_contain_text(f"turn {day['turn']}")
            expect(region.get_by_role("row", name=re.compile(r"^appointment"))).to_contain_text("keys 2")
        finally:
            browser.close()
