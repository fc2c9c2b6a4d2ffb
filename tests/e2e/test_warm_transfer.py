"""Warm transfer through the real SIP path. A baresip caller presses 0 for a person; the agent puts it
on hold, dials the person through the tenant's outbound trunk, briefs them and connects the caller
once they press 1. The person is a second baresip that answers and speaks (answered), or a sipp
callee that rings until the ring timeout (no answer) or answers 486 (busy); then the agent comes back
to the caller, says why and takes a message. Each case is checked in both call records: the caller's
(its ``transfer``, its leg) and the consultation leg's own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from phoneagent.stack import ports
from phoneagent.stack.services import Stack
from tests.e2e.conftest import transcribe
from tests.peers.sip_phone import BaresipPhone, wait_until
from tests.peers.sipp import SippCallee
from tests.peers.voices import caller_speech
from tests.peers.wav import silence, speech_seconds, trailing_silence_seconds, write_wav
from tests.stack_fixtures import ControlPlane, WorkerProcess

PERSON = "+15550177"
BRIEFING = "A caller is holding about {intent} on {day}."
SCRIPT: dict[str, Any] = {
    "intents": [
        {
            "name": "billing",
            "keywords": ["bill", "billing", "invoice"],
            "dtmf": "3",
            "reply": "I can help with billing. Which day was the invoice from?",
            "collect": [{"slot": "day", "kind": "day"}],
        },
        {
            "name": "person",
            "keywords": ["person", "human"],
            "dtmf": "0",
            "reply": "Please hold while I reach someone.",
            "action": "warm_transfer",
            "transfer_to": f"tel:{PERSON}",
        },
    ],
}


def _free_udp(host: str, start: int) -> int:
    return next(p for p in range(start, start + 200, 2) if ports.is_free(host, p, "udp"))


@dataclass
class Line:
    number: str
    agent_id: str
    trunk_id: str


@dataclass
class Transfers:
    c: httpx.Client
    host: str
    sip_port: int
    made: list[str]

    def line(self, name: str, number: str, person_address: str) -> Line:
        """An inbound number that warm-transfers to ``PERSON`` through a trunk to ``person_address``."""
        trunk = self.c.post(
            "/trunks/outbound",
            json={"name": f"{name}-out", "address": person_address, "numbers": ["+15550100"]},
        )
        assert trunk.status_code == 201, trunk.text
        self.made.append(f"/trunks/outbound/{trunk.json()['id']}")
        agent = self.c.post(
            "/agents",
            json={
                "name": name,
                "greeting": "Hello, thank you for calling Acme Dental. How can I help you today?",
                "llm": {
                    "script": SCRIPT,
                    "warm_transfer": {
                        "outbound_trunk_id": trunk.json()["id"],
                        "ring_timeout_s": 8,
                        "answer_timeout_s": 20,
                        "briefing": BRIEFING,
                    },
                },
                "tools": ["end_call", "warm_transfer"],
            },
        )
        assert agent.status_code == 201, agent.text
        inbound = self.c.post(
            "/trunks/inbound", json={"name": name, "numbers": [number], "allowed_addresses": [self.host]}
        )
        assert inbound.status_code == 201, inbound.text
        rule = self.c.post(
            "/dispatch-rules",
            json={
                "name": name,
                "inbound_trunk_id": inbound.json()["id"],
                "agent_profile_id": agent.json()["id"],
            },
        )
        assert rule.status_code == 201, rule.text
        self.made += [f"/dispatch-rules/{rule.json()['id']}", f"/trunks/inbound/{inbound.json()['id']}"]
        return Line(number, agent.json()["id"], trunk.json()["id"])

    def record(self, agent_id: str, *, until: str, ended_by: str = "") -> dict[str, Any]:
        """The agent's latest call, once it has ended and its transfer reached ``until`` (and, with
        ``ended_by``, once the worker told who ended the bridged call: the caller's BYE can end the
        record before the worker's own account of the transfer's end has come in)."""

        def find() -> dict[str, Any] | None:
            items = self.c.get("/calls", params={"agent_id": agent_id, "limit": 1}).json()["items"]
            if not items or items[0]["status"] != "ended":
                return None
            record = dict(self.c.get(f"/calls/{items[0]['id']}").json())
            transfer = record.get("transfer") or {}
            if ended_by and transfer.get("ended_by") != ended_by:
                return None
            return record if re.fullmatch(until, transfer.get("result", "")) else None

        wait_until(lambda: find() is not None, timeout=60, what=f"the call ended, its transfer {until}")
        record = find()
        assert record is not None
        return record

    def leg(self, leg_id: str) -> dict[str, Any]:
        def ended() -> bool:
            return bool(self.c.get(f"/calls/{leg_id}").json()["status"] == "ended")

        wait_until(ended, timeout=60, what="the consultation leg's record to end")
        return dict(self.c.get(f"/calls/{leg_id}").json())


@pytest.fixture(scope="module")
def transfers(stack: Stack, control_plane: ControlPlane) -> Iterator[Transfers]:
    c = httpx.Client(base_url=control_plane.url, headers=control_plane.headers, timeout=30)
    t = Transfers(c, stack.settings.bind_host, stack.settings.sip_port, [])
    try:
        yield t
    finally:
        for path in reversed(t.made):
            c.delete(path)
        c.close()


def _heard(whisper: object, audio: np.ndarray, path: Path) -> set[str]:
    return set(re.findall(r"[a-z']+", transcribe(whisper, str(write_wav(path, audio, 8000))).lower()))


def _said(path: Path, text: str, voice: object, lead_s: float = 0.3) -> Path:
    return write_wav(path, np.concatenate([silence(lead_s), caller_speech(text, voice), silence(90)]), 8000)


def _person(
    t: Transfers, work: Path, voice: object, *, rtp_ports: tuple[int, int], from_port: int
) -> tuple[BaresipPhone, int]:
    """The person a warm transfer dials: a baresip that answers at once and says hello; its port."""
    port = _free_udp(t.host, from_port)
    person = BaresipPhone(
        work / "person",
        rtp_ports=rtp_ports,
        listen_port=port,
        auto_answer=True,
        user=PERSON,
        source=_said(work / "hello.wav", "Hello, front desk.", voice),
    ).start()
    return person, port


def _call_and_ask_for_a_person(
    t: Transfers, phone: BaresipPhone, number: str, voice: object, work: Path
) -> None:
    """Dial; after the greeting press 3 (billing), say the invoice's day when asked, then press 0."""
    phone.dial(f"sip:{number}@{t.host}:{t.sip_port}", timeout=30)
    phone.wait_for_utterance(min_speech_s=1.0, then_silence_s=1.0, timeout=90)
    heard = len(phone.received_audio())
    phone.send_dtmf("3")
    wait_until(
        lambda: len(phone.received_audio()) - heard > 8000, timeout=30, what="the billing reply to start"
    )
    phone.wait_for_utterance(min_speech_s=1.0, then_silence_s=1.0, timeout=60)
    heard = len(phone.received_audio())
    phone.play(_said(work / "day.wav", "Friday.", voice))
    # "Thank you." for the day: a short reply after the caller's turn
    wait_until(
        lambda: (
            speech_seconds(phone.received_audio()[heard:]) >= 0.2
            and trailing_silence_seconds(phone.received_audio()) >= 1.0
        ),
        timeout=60,
        what="the agent's thanks for the day",
    )


def test_warm_transfer_answered_briefs_the_person_then_connects_the_caller(
    transfers: Transfers, worker: WorkerProcess, voice: object, whisper_tiny: object, tmp_path: Path
) -> None:
    t = transfers
    person, port = _person(t, tmp_path, voice, rtp_ports=(46300, 46349), from_port=35400)
    line = t.line("warm-answered", "+15550161", f"{t.host}:{port}")
    caller = BaresipPhone(tmp_path / "caller", rtp_ports=(46200, 46249)).start()
    try:
        _call_and_ask_for_a_person(t, caller, line.number, voice, tmp_path)
        caller.send_dtmf("0")
        # the person answers, says hello, and hears the briefing and the question
        person.wait_for(r"[Cc]all established", timeout=60)
        person.wait_for_utterance(min_speech_s=4.0, then_silence_s=1.5, timeout=60)
        briefing_heard = _heard(whisper_tiny, person.received_audio(), tmp_path / "briefing.wav")
        before_connect = len(caller.received_audio())
        person.send_dtmf("1")
        # connected: the person's words reach the caller through the agent's bridge
        person_before = len(person.received_audio())
        person.play(_said(tmp_path / "person.wav", "I can help you with that invoice.", voice, lead_s=4.0))
        caller.play(_said(tmp_path / "caller.wav", "My invoice from Friday is wrong.", voice, lead_s=4.0))
        wait_until(
            lambda: (
                len(caller.received_audio()) - before_connect > 8000 * 9
                and len(person.received_audio()) - person_before > 8000 * 9
            ),
            timeout=60,
            what="9 s of the bridged call at both ends",
        )
        heard_by_caller = _heard(
            whisper_tiny, caller.received_audio()[before_connect:], tmp_path / "bridged.wav"
        )
        heard_by_person = _heard(
            whisper_tiny, person.received_audio()[person_before:], tmp_path / "to-person.wav"
        )
        mark = caller.hangup()
        caller.bye_confirmed(since=mark)
        record = t.record(line.agent_id, until="connected", ended_by="caller")
    finally:
        caller.close()
        person.close()

    # the caller's BYE ends the record first (customer_hangup, observed); the worker's hang-up, declared
    # right after it told who ended the bridged call, makes it transferred once it comes in
    def settled() -> bool:
        nonlocal record
        record = dict(t.c.get(f"/calls/{record['id']}").json())
        return bool(record["end_reason"] == "transferred")

    wait_until(settled, timeout=30, what="the record to end transferred, as the worker declared")
    assert {"press", "take", "call"} <= briefing_heard, briefing_heard
    assert {"invoice"} <= heard_by_caller or {"help", "that"} <= heard_by_caller, heard_by_caller
    assert {"invoice"} <= heard_by_person or {"friday", "wrong"} <= heard_by_person, heard_by_person
    transfer = record["transfer"]
    assert record["end_reason"] == "transferred", record
    assert transfer["to"] == f"tel:{PERSON}" and transfer["answered_by"] == PERSON, transfer
    assert transfer["briefing"] == "A caller is holding about billing on friday.", transfer
    assert transfer["reply"] == "key 1" and transfer["ended_by"] == "caller", transfer
    assert record["legs"] == [transfer["consultation_call_id"]], record
    leg = t.leg(transfer["consultation_call_id"])
    assert leg["parent_call_id"] == record["id"] and leg["direction"] == "outbound", leg
    assert leg["to_number"] == PERSON and leg["answered_at"] is not None, leg
    # the caller hung up first and the agent closed the person's leg: LiveKit says the room was deleted
    assert leg["end_reason"] == "agent_hangup", leg


@pytest.mark.parametrize(
    ("scenario", "result", "leg_reason", "told"),
    [
        # word stems: tiny.en at 8 kHz hears "nobody answered" as "nobody answer" at times
        ("uas_no_answer", "no_answer", "no_answer", {"nobody", "answer"}),
        ("uas_busy", "busy", "busy", {"busy"}),
    ],
)
def test_warm_transfer_not_taken_comes_back_to_the_caller_and_takes_a_message(
    transfers: Transfers,
    worker: WorkerProcess,
    voice: object,
    whisper_tiny: object,
    tmp_path: Path,
    scenario: str,
    result: str,
    leg_reason: str,
    told: set[str],
) -> None:
    t = transfers
    callee = SippCallee(
        scenario, workdir=tmp_path / "sipp", port=_free_udp(t.host, 37460), host=t.host
    ).start()
    number = "+15550162" if scenario == "uas_no_answer" else "+15550163"
    line = t.line(f"warm-{result}", number, callee.address)
    caller = BaresipPhone(tmp_path / "caller", rtp_ports=(46400, 46449)).start()
    try:
        _call_and_ask_for_a_person(t, caller, line.number, voice, tmp_path)
        before = len(caller.received_audio())
        caller.send_dtmf("0")
        wait_until(
            lambda: "INVITE sip:" + PERSON in callee.trace(), timeout=60, what="the person's phone to ring"
        )
        # "please hold", the hold chime, then why and the offer: the offer's end is the first long quiet
        # after the dial ends (the chime leaves 2 s gaps; the agent waits for the caller after the offer)
        wait_until(
            lambda: (
                speech_seconds(caller.received_audio()[before:]) >= 5.0
                and trailing_silence_seconds(caller.received_audio()) >= 3.0
            ),
            timeout=90,
            what="the agent back on the line, then quiet",
        )
        heard = _heard(whisper_tiny, caller.received_audio()[before:], tmp_path / "back.wav")
        caller.play(_said(tmp_path / "message.wav", "Please ask them to call me back.", voice))
        record = t.record(line.agent_id, until=result)
    finally:
        caller.close()
        callee.stop()
    assert all(any(w.startswith(stem) for w in heard) for stem in told), heard
    assert {"message"} <= heard, heard
    assert record["end_reason"] == "agent_hangup", record  # the agent took the message and said goodbye
    message = record["outcome"]["slots"]["message"]["value"].lower()
    assert "call" in message and "back" in message, record["outcome"]
    leg = t.leg(record["transfer"]["consultation_call_id"])
    assert leg["parent_call_id"] == record["id"] and leg["end_reason"] == leg_reason, leg
    assert leg["answered_at"] is None, leg
    if scenario == "uas_busy":
        assert leg["sip_status_code"] == 486, leg


def test_warm_transfer_declined_by_voice_brings_the_caller_back(
    transfers: Transfers, worker: WorkerProcess, voice: object, whisper_tiny: object, tmp_path: Path
) -> None:
    t = transfers
    person, port = _person(t, tmp_path, voice, rtp_ports=(46500, 46549), from_port=35600)
    line = t.line("warm-declined", "+15550164", f"{t.host}:{port}")
    caller = BaresipPhone(tmp_path / "caller", rtp_ports=(46550, 46599)).start()
    try:
        _call_and_ask_for_a_person(t, caller, line.number, voice, tmp_path)
        caller.send_dtmf("0")
        person.wait_for(r"[Cc]all established", timeout=60)
        person.wait_for_utterance(min_speech_s=4.0, then_silence_s=1.5, timeout=60)
        before = len(caller.received_audio())
        person.play(_said(tmp_path / "no.wav", "No, not now.", voice))
        wait_until(
            lambda: (
                speech_seconds(caller.received_audio()[before:]) >= 4.0
                and trailing_silence_seconds(caller.received_audio()) >= 3.0
            ),
            timeout=90,
            what="the agent back on the line, then quiet",
        )
        heard = _heard(whisper_tiny, caller.received_audio()[before:], tmp_path / "back.wav")
        caller.play(_said(tmp_path / "bye.wav", "No thanks, goodbye.", voice))
        record = t.record(line.agent_id, until="declined")
    finally:
        caller.close()
        person.close()
    assert {"cannot", "message"} <= heard, heard
    transfer = record["transfer"]
    assert transfer["reply"].startswith("said ") and "no" in transfer["reply"].lower(), transfer
    assert record["end_reason"] == "agent_hangup", record  # the agent said goodbye
    leg = t.leg(transfer["consultation_call_id"])
    # the person answered and was briefed; the agent closed their leg when they declined
    assert leg["answered_at"] is not None and leg["end_reason"] == "agent_hangup", leg
