"""Outbound calls through the real stack to a real callee on loopback, each outcome checked in the
call record and in the signed webhooks a receiver got: answered and heard, busy, never answered,
the callee hangs up, the agent hangs up, the worker dies mid-call."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from phoneagent.speech.piper_tts import load_piper_voice
from phoneagent.stack import ports
from phoneagent.stack.services import Stack
from tests.e2e.conftest import assert_greeting_heard, transcribe
from tests.peers.receiver import WebhookReceiver
from tests.peers.sip_phone import BaresipPhone, wait_until
from tests.peers.sipp import SippCallee
from tests.peers.voices import caller_wav
from tests.stack_fixtures import PROFILE_GREETING, ControlPlane, WorkerProcess, registered_receiver

CALLEE = "+15550142"


def _free_udp(host: str) -> int:
    for port in range(35060, 35200, 2):
        if ports.is_free(host, port, "udp"):
            return port
    raise AssertionError("no free UDP port for the callee")


@pytest.fixture(scope="module")
def hooks(control_plane: ControlPlane) -> Iterator[WebhookReceiver]:
    with registered_receiver(control_plane) as rx:
        yield rx


class Outbound:
    def __init__(self, cp: ControlPlane, callee_address: str, name: str) -> None:
        self.c = httpx.Client(base_url=cp.url, headers=cp.headers, timeout=30)
        trunk = {"name": name, "address": callee_address, "numbers": ["+15550100"]}
        r = self.c.post("/trunks/outbound", json=trunk)
        assert r.status_code == 201, r.text
        self.trunk, self.agent = r.json()["id"], cp.agent_id

    def place(self, **extra: Any) -> dict[str, Any]:
        body = {"to": CALLEE, "agent_profile_id": self.agent, "outbound_trunk_id": self.trunk, **extra}
        r = self.c.post("/calls", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def get(self, call_id: str) -> dict[str, Any]:
        return dict(self.c.get(f"/calls/{call_id}").json())

    def wait_status(self, call_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
        def reached() -> bool:
            record = self.get(call_id)
            if record["status"] == "ended" and "ended" not in statuses:
                raise AssertionError(f"the call ended before reaching {statuses}: {record}")
            return record["status"] in statuses

        wait_until(reached, timeout=timeout, what=f"status {statuses}")
        return self.get(call_id)

    def close(self) -> None:
        self.c.delete(f"/trunks/outbound/{self.trunk}")
        self.c.close()


def _callee_phone(tmp_path: Path, host: str, rtp: tuple[int, int], **kw: Any) -> BaresipPhone:
    # baresip answers 404 to an INVITE for a user that is not its account's: the callee is CALLEE
    return BaresipPhone(
        tmp_path / "callee", rtp_ports=rtp, listen_port=_free_udp(host), auto_answer=True, user=CALLEE, **kw
    )


def _listen_port(phone: BaresipPhone) -> int:
    return int(re.search(r"sip_listen\s+\S+:(\d+)", (phone.workdir / "config").read_text()).group(1))  # type: ignore[union-attr]


def test_answered_the_callee_hears_the_agent_then_hangs_up(
    stack: Stack,
    control_plane: ControlPlane,
    worker: WorkerProcess,
    hooks: WebhookReceiver,
    whisper_tiny: object,
    tmp_path: Path,
) -> None:
    host = stack.settings.bind_host
    phone = _callee_phone(tmp_path, host, (44000, 44049)).start()
    out = Outbound(control_plane, f"{host}:{_listen_port(phone)}", "to-baresip")
    try:
        call = out.place(ring_timeout_s=20)
        out.wait_status(call["id"], "in_progress")
        phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.2, timeout=90)  # the greeting
        mark = phone.hangup()
        assert phone.bye_confirmed(since=mark, timeout=15)
        record = out.wait_status(call["id"], "ended", timeout=30)
    finally:
        phone.close()
        out.close()
    assert_greeting_heard(transcribe(whisper_tiny, str(phone.received_wav())))
    assert (record["direction"], record["end_reason"], record["to_number"]) == (
        "outbound",
        "customer_hangup",
        CALLEE,
    )
    assert record["answered_at"] and record["duration_ms"] > 2000
    sent = hooks.of_call(call["id"])
    assert {"call.queued", "call.answered", "call.ended"} <= set(sent)
    assert sent["call.ended"]["end_reason"] == "customer_hangup"
    assert PROFILE_GREETING.split(",")[0] in " ".join(t["text"] for t in sent["call.ended"]["transcript"])


def test_a_busy_callee_ends_the_call_as_busy_with_its_sip_code(
    stack: Stack, control_plane: ControlPlane, hooks: WebhookReceiver, tmp_path: Path
) -> None:
    host = stack.settings.bind_host
    with SippCallee("uas_busy", workdir=tmp_path, port=_free_udp(host), host=host) as sipp:
        out = Outbound(control_plane, sipp.address, "to-busy")
        try:
            call = out.place(wait_until_answered=True)  # the answer to the POST waits for the 486
            assert (call["status"], call["end_reason"]) == ("ended", "busy"), call
            record = out.wait_status(call["id"], "ended", timeout=30)
        finally:
            out.close()
        assert "INVITE sip:" in sipp.trace() and "486 Busy Here" in sipp.trace()
    assert (record["end_reason"], record["sip_status_code"], record["answered_at"]) == ("busy", 486, None)
    assert hooks.of_call(call["id"])["call.ended"]["end_reason"] == "busy"


def test_a_callee_that_never_answers_ends_as_no_answer_after_the_ring_timeout(
    stack: Stack, control_plane: ControlPlane, hooks: WebhookReceiver, tmp_path: Path
) -> None:
    host = stack.settings.bind_host
    with SippCallee("uas_no_answer", workdir=tmp_path, port=_free_udp(host), host=host) as sipp:
        out = Outbound(control_plane, sipp.address, "to-nobody")
        try:
            call = out.place(ring_timeout_s=6)
            out.wait_status(call["id"], "ringing", timeout=20)
            record = out.wait_status(call["id"], "ended", timeout=40)
        finally:
            out.close()
        assert "180 Ringing" in sipp.trace() and "CANCEL sip:" in sipp.trace()
    assert (record["end_reason"], record["answered_at"]) == ("no_answer", None)
    rang = (record["ended_at"], record["ringing_at"])
    assert all(rang)
    sent = hooks.of_call(call["id"])
    assert {"call.ringing", "call.ended"} <= set(sent) and sent["call.ended"]["end_reason"] == "no_answer"


def test_the_agent_says_goodbye_and_hangs_up(
    stack: Stack, control_plane: ControlPlane, worker: WorkerProcess, hooks: WebhookReceiver, tmp_path: Path
) -> None:
    host = stack.settings.bind_host
    phone = _callee_phone(tmp_path, host, (44050, 44099)).start()
    out = Outbound(control_plane, f"{host}:{_listen_port(phone)}", "to-goodbye")
    goodbye = caller_wav(tmp_path / "bye.wav", "No thanks, goodbye.", load_piper_voice())
    try:
        call = out.place(ring_timeout_s=20)
        out.wait_status(call["id"], "in_progress")
        phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.2, timeout=90)
        since = phone.play(goodbye)
        phone.wait_for_remote_bye(since=since, timeout=60)
        out.wait_status(call["id"], "ended", timeout=30)
        # the worker's own report ends the record; LiveKit's webhook adds its evidence a moment later
        wait_until(
            lambda: out.get(call["id"])["disconnect_reason"] is not None,
            timeout=30,
            what="LiveKit's disconnect reason",
        )
        record = out.get(call["id"])
    finally:
        phone.close()
        out.close()
    assert (record["end_reason"], record["disconnect_reason"]) == ("agent_hangup", "ROOM_DELETED")
    assert hooks.of_call(call["id"])["call.ended"]["end_reason"] == "agent_hangup"


def test_a_worker_killed_mid_call_ends_the_call_as_worker_lost(
    stack: Stack, control_plane: ControlPlane, worker: WorkerProcess, hooks: WebhookReceiver, tmp_path: Path
) -> None:
    host = stack.settings.bind_host
    phone = _callee_phone(tmp_path, host, (44100, 44149)).start()
    out = Outbound(control_plane, f"{host}:{_listen_port(phone)}", "to-crash")
    try:
        call = out.place(ring_timeout_s=20)
        out.wait_status(call["id"], "in_progress")
        phone.wait_for_utterance(min_speech_s=1.0, then_silence_s=0.5, timeout=90)
        mark = len(phone.output)
        worker.kill()  # SIGKILL to the worker and its job processes: nothing reports anything
        phone.wait_for_remote_bye(since=mark, timeout=60)  # the control plane hung up for it
        record = out.wait_status(call["id"], "ended", timeout=30)
    finally:
        phone.close()
        out.close()
        worker.start()  # the other tests of this session need a worker
    assert record["end_reason"] == "worker_lost", record
    assert hooks.of_call(call["id"])["call.ended"]["end_reason"] == "worker_lost"


def test_the_call_command_follows_a_call_live_to_its_end(
    stack: Stack, control_plane: ControlPlane, tmp_path: Path
) -> None:
    import subprocess
    import sys

    host = stack.settings.bind_host
    with SippCallee("uas_busy", workdir=tmp_path, port=_free_udp(host), host=host) as sipp:
        out = Outbound(control_plane, sipp.address, "cli-busy")
        try:
            key = control_plane.headers["Authorization"].removeprefix("Bearer ")
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "phoneagent.cli",
                    "call",
                    "+1 555 0142",
                    "--agent",
                    "e2e",
                    "--trunk",
                    "cli-busy",
                    "--url",
                    control_plane.url,
                    "--key",
                    key,
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            out.close()
    assert run.returncode == 3, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("call call_") and "+15550142" in lines[0]
    assert any(line.strip().endswith("queued") for line in lines) and lines[-1].startswith(
        "ended: busy, SIP 486"
    )
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "phoneagent.cli",
            "call",
            "+15550142",
            "--agent",
            "nobody",
            "--url",
            control_plane.url,
            "--key",
            "pa_wrong",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "401" in bad.stderr and "Traceback" not in bad.stderr
