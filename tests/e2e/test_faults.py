"""The stack's own processes failing during a live call from a real SIP phone: livekit-server killed
and restarted, livekit-sip killed, Redis restarted. Each test checks the call record (status, end
reason, evidence), the signed webhooks, what LiveKit still holds, and that the next call is answered,
and prints how long the fault took to show in the record.

These tests break the stack, so they run their own: its own state dir and ports (the suite's test
ports moved by ``FAULT_PORT_SHIFT``), its own control plane and its own worker."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from livekit import api

from phoneagent.config import Settings
from phoneagent.stack.services import Stack
from tests.peers.livekit_rooms import call_rooms
from tests.peers.processes import assert_all_gone
from tests.peers.receiver import WebhookReceiver
from tests.peers.sip_phone import BaresipPhone, PhoneError, wait_until
from tests.peers.voices import caller_wav
from tests.peers.wav import speech_seconds, trailing_silence_seconds
from tests.stack_fixtures import (
    PORT_OFFSET,
    STACK_PORTS,
    ControlPlane,
    WorkerProcess,
    registered_receiver,
    running_control_plane,
    running_stack,
    running_worker,
    suite_stack_settings,
)

# clear of the suite's ports (and of every other checkout's, which sit 3000 or more apart), also the
# RTP and WebRTC ranges: 13500-13799 and 51500-51549 before PORT_OFFSET
FAULT_PORT_SHIFT = 500
FAULT_PORTS = {name: port + FAULT_PORT_SHIFT for name, port in STACK_PORTS.items()}
# the caller's RTP ports: two calls per test, each on its own range
PHONE_RTP = ((40500 + PORT_OFFSET, 40524 + PORT_OFFSET), (40525 + PORT_OFFSET, 40549 + PORT_OFFSET))
RTP_TIMEOUT_S = 10


@dataclass(frozen=True)
class FaultStack:
    stack: Stack
    cp: ControlPlane
    worker: WorkerProcess
    hooks: WebhookReceiver

    @property
    def settings(self) -> Settings:
        return self.stack.settings

    def get(self, path: str) -> Any:
        r = httpx.get(f"{self.cp.url}{path}", headers=self.cp.headers, timeout=30)
        r.raise_for_status()
        return r.json()

    def pid(self, service: str) -> int:
        pid = next(s.pid for s in self.stack.status() if s.name == service)
        assert pid is not None, f"{service} is not running"
        return pid

    def kill(self, service: str, sig: int = signal.SIGKILL) -> float:
        """Send ``sig`` to a service's process; returns the monotonic time it was gone."""
        proc = psutil.Process(self.pid(service))
        proc.send_signal(sig)
        proc.wait(30)
        return time.monotonic()

    def restart(self) -> None:
        """`stack up`: starts what is not running (a stale pid file is cleared first)."""
        self.stack.up(progress=lambda msg: print(f"[fault-stack] {msg}"))


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    settings = suite_stack_settings(tmp_path_factory.mktemp("fault-stack"), FAULT_PORTS)
    with (
        running_stack(settings, "fault-stack") as stack,
        running_control_plane(settings, tmp_path_factory.mktemp("fault-cp")) as cp,
        running_worker(settings, tmp_path_factory.mktemp("fault-worker")) as worker,
        registered_receiver(cp) as hooks,
    ):
        yield FaultStack(stack, cp, worker, hooks)


def _phone(tmp_path: Path, n: int) -> BaresipPhone:
    # baresip's RTP timeout: a phone whose far end vanished hangs up, as a carrier's would
    return BaresipPhone(tmp_path / f"phone-{n}", rtp_ports=PHONE_RTP[n], rtp_timeout_s=RTP_TIMEOUT_S).start()


def _answered_call(f: FaultStack, phone: BaresipPhone, known: set[str]) -> dict[str, Any]:
    """Dial the test number, hear the greeting; returns the new call's record, in progress."""
    s = f.settings
    phone.dial(f"sip:{s.dev_number}@{s.bind_host}:{s.sip_port}", timeout=60)
    phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.2, timeout=90)  # the greeting

    def new_live() -> dict[str, Any] | None:
        items = f.get("/calls")["items"]
        return next((c for c in items if c["id"] not in known and c["status"] == "in_progress"), None)

    wait_until(lambda: new_live() is not None, timeout=30, what="the new call's record in progress")
    call = new_live()
    assert call is not None
    known.add(call["id"])
    return call


def _wait_reply(phone: BaresipPhone, since: int, *, min_speech_s: float = 1.0, timeout: float = 90) -> None:
    """The caller heard speech after sample ``since``, then silence (a reply spoken in full)."""

    def replied() -> bool:
        tail = phone.received_audio()[since:]
        return speech_seconds(tail) >= min_speech_s and trailing_silence_seconds(tail) >= 1.2

    wait_until(replied, timeout=timeout, what="the agent's speech at the caller")


def _conversation_goes_on(f: FaultStack, phone: BaresipPhone, call_id: str, question: Path) -> None:
    """The caller asks, the agent hears it (a caller turn in the record) and answers (heard)."""
    mark = phone.received_audio().size
    phone.play(question)
    _wait_reply(phone, mark)

    def caller_turns() -> int:
        return sum(t["speaker"] == "caller" for t in f.get(f"/calls/{call_id}")["transcript"])

    wait_until(lambda: caller_turns() > 0, timeout=30, what="the caller's turn in the record")


def _in_room(f: FaultStack, room: str) -> tuple[int, int]:
    """(phones, agents) in the call's room now."""
    people = call_rooms(f.settings).get(room, [])
    sip = sum(p.kind == api.ParticipantInfo.Kind.SIP for p in people)
    return sip, sum(p.kind == api.ParticipantInfo.Kind.AGENT for p in people)


def _ended(f: FaultStack, call_id: str, *, timeout: float) -> dict[str, Any]:
    wait_until(
        lambda: f.get(f"/calls/{call_id}")["status"] == "ended", timeout=timeout, what="the record to end"
    )
    return dict(f.get(f"/calls/{call_id}"))


def _hang_up(f: FaultStack, phone: BaresipPhone, call_id: str) -> dict[str, Any]:
    """The caller hangs up: the record ends as customer_hangup, each webhook sent once."""
    mark = phone.hangup()
    assert phone.bye_confirmed(since=mark, timeout=15)
    record = _ended(f, call_id, timeout=60)
    assert (record["end_reason"], record["disconnect_reason"]) == ("customer_hangup", "CLIENT_INITIATED")
    assert _webhooks_of(f, call_id) == ["call.ringing", "call.answered", "call.ended"]
    return record


def _webhooks_of(f: FaultStack, call_id: str) -> list[str]:
    """The call's webhook types, in order, once call.ended arrived (each signed)."""
    f.hooks.of_call(call_id)
    return [r.event_type for r in f.hooks.accepted() if r.body["data"]["id"] == call_id]


def _stack_status(f: FaultStack) -> subprocess.CompletedProcess[str]:
    """`phoneagent stack status` on the fault stack, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "phoneagent.cli", "stack", "status"],
        env=f.cp.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _next_call_answered(f: FaultStack, tmp_path: Path, known: set[str], *, after: str) -> None:
    """A new caller is answered (greeting heard) and hangs up; prints how long the answer took."""
    t0 = time.monotonic()
    phone = _phone(tmp_path, 1)
    try:
        call = _answered_call(f, phone, known)
        took = time.monotonic() - t0
        _hang_up(f, phone, call["id"])
    finally:
        phone.close()
    assert_all_gone({phone.pid} if phone.pid else set())
    print(f"[fault] {after}, the next call was answered in {took:.1f} s")


def _nothing_left(f: FaultStack, phone: BaresipPhone) -> None:
    """No call live in the database, no call room in LiveKit, the phone's process gone."""
    wait_until(lambda: not call_rooms(f.settings), timeout=60, what="no call room left in LiveKit")
    live = [c for c in f.get("/calls")["items"] if c["status"] != "ended"]
    assert not live, live
    assert phone.close() == 0
    assert_all_gone({phone.pid} if phone.pid else set())


@contextlib.contextmanager
def _live_call(f: FaultStack, tmp_path: Path) -> Iterator[tuple[BaresipPhone, dict[str, Any], set[str]]]:
    """A caller who heard the greeting, its record in progress, and the calls known before it. After
    the test: the whole stack runs again (also when the test failed half-way: the next test needs
    it), and nothing of the call is left."""
    known = {c["id"] for c in f.get("/calls")["items"]}
    phone = _phone(tmp_path, 0)
    try:
        yield phone, _answered_call(f, phone, known), known
    finally:
        phone.close()
        f.restart()
    _nothing_left(f, phone)


# the worker's words for each way a job sent to a live call goes (phoneagent/worker/takeover.py)
LEFT = "this call has its agent already; this job leaves"
TOOK_OVER = "no agent came back to this call; this job takes it over"
GAVE_WAY = "another agent took this call over while this one was away; this job leaves"


def _said(f: FaultStack, room: str) -> list[dict[str, Any]]:
    """The worker's log records about this room (JSON lines), oldest first."""
    records = []
    for line in f.worker.text().splitlines():
        with contextlib.suppress(ValueError):
            rec = json.loads(line)
            if isinstance(rec, dict) and rec.get("room") == room:
                records.append(rec)
    return records


def _says(f: FaultStack, room: str, message: str) -> bool:
    return any(r.get("message") == message for r in _said(f, room))


def _wait_one_agent(f: FaultStack, room: str) -> None:
    """The phone and one agent in the call's room, after the new job left or took the call over (the
    call's own agent, back after that, leaves: GAVE_WAY). On a timeout: what the room and the worker
    said."""

    def settled() -> bool:
        return _in_room(f, room) == (1, 1) and (_says(f, room, LEFT) or _says(f, room, TOOK_OVER))

    try:
        wait_until(settled, timeout=90, what="the phone and one agent in the call's room")
    except PhoneError as exc:
        said = [f"{r.get('pid')} {r.get('job_id')} {str(r.get('message'))[:200]}" for r in _said(f, room)]
        raise AssertionError(
            f"{exc}; in the room (phones, agents): {_in_room(f, room)}; the worker said:\n"
            + "\n".join(said[-40:])
        ) from exc


def _events(record: dict[str, Any]) -> list[str]:
    return [f"{e['source']}:{e['type']}" for e in record["events"]]


def test_livekit_server_killed_and_restarted_mid_call(
    faults: FaultStack, voice: object, tmp_path: Path
) -> None:
    f = faults
    question = caller_wav(tmp_path / "q.wav", "What are your opening hours on Saturday?", voice)
    with _live_call(f, tmp_path) as (phone, call, known):
        heard = phone.received_audio().size
        killed = f.kill("livekit-server")
        f.restart()
        back = time.monotonic() - killed
        # livekit-server restores the room from Redis; livekit-sip rejoins it with the phone, which
        # dispatches the call to a new agent job. The call's own agent rejoins too (livekit's full
        # reconnect) and keeps the call: the new job leaves without a word. On a loaded machine the
        # reconnect may take longer than the new job waits: it takes the call over, and the call's own
        # agent leaves once it is back. Either way one agent talks to the caller.
        _wait_one_agent(f, call["room_name"])
        one_agent = time.monotonic() - killed
        took_over = _says(f, call["room_name"], TOOK_OVER)
        _conversation_goes_on(f, phone, call["id"], question)  # an agent answers on
        # heard since the kill: the answer to the question (about 4.5 s), no second greeting on top
        # (a greeting again when the new job took the call over: it says so to the caller)
        spoken = speech_seconds(phone.received_audio()[heard:])
        greeting = speech_seconds(phone.received_audio()[:heard]) if took_over else 0.0
        print(f"[fault] {spoken:.1f} s of agent speech heard after the kill (took over: {took_over})")
        assert spoken < 7.0 + greeting, (spoken, greeting)
        assert f.get(f"/calls/{call['id']}")["status"] == "in_progress"
        record = _hang_up(f, phone, call["id"])
        print(
            f"\n[fault] livekit-server killed -9: back {back:.1f} s later, the call went on with one "
            f"agent after {one_agent:.1f} s ({'a new job took it over' if took_over else 'its own'}); "
            f"events {_events(record)}"
        )
        assert _events(record).count("worker:answered") == 1, _events(record)
        assert _events(record).count("worker:taken_over") == int(took_over), _events(record)
        _next_call_answered(f, tmp_path, known, after="after livekit-server's restart")


def test_livekit_server_restarted_while_the_calls_agent_is_stalled(
    faults: FaultStack, voice: object, tmp_path: Path
) -> None:
    """The call's own agent cannot come back in time (its process stopped, as on an overloaded host):
    the new job takes the call over; the old agent, running again, finds it taken and leaves."""
    f = faults
    question = caller_wav(tmp_path / "q.wav", "What are your opening hours on Saturday?", voice)
    with _live_call(f, tmp_path) as (phone, call, known):
        room = call["room_name"]
        own = next(r["pid"] for r in _said(f, room) if r.get("message") == "agent joined the call")
        os.kill(own, signal.SIGSTOP)
        try:
            killed = f.kill("livekit-server")
            f.restart()
            wait_until(lambda: _says(f, room, TOOK_OVER), timeout=60, what="the new job taking the call over")
            took = time.monotonic() - killed
        finally:
            os.kill(own, signal.SIGCONT)
        wait_until(lambda: _says(f, room, GAVE_WAY), timeout=90, what="the call's own agent giving way")
        gave_way = time.monotonic() - killed
        wait_until(
            lambda: _in_room(f, room) == (1, 1), timeout=30, what="the phone and one agent in the room"
        )
        _conversation_goes_on(f, phone, call["id"], question)
        record = _hang_up(f, phone, call["id"])
        print(
            f"\n[fault] livekit-server killed -9 with the call's agent stopped: a new job took the call "
            f"over {took:.1f} s after the kill; the old agent, running again, left {gave_way:.1f} s after "
            f"the kill; events {_events(record)}"
        )
        assert _events(record).count("worker:answered") == 1, _events(record)
        assert _events(record).count("worker:taken_over") == 1, _events(record)
        assert {r["pid"] for r in _said(f, room) if r.get("message") == GAVE_WAY} == {own}
        # both agents' turns on the record, none written over: the new job numbers its turns after the
        # first agent's (a shared number once turned the caller's question into an agent turn)
        turns = [(t["seq"], t["speaker"]) for t in record["transcript"]]
        assert turns[0] == (0, "agent"), turns  # the first agent's greeting
        assert any(seq >= 10_000 and who == "caller" for seq, who in turns), turns
        _next_call_answered(f, tmp_path, known, after="after the takeover")


def test_livekit_sip_killed_mid_call(faults: FaultStack, tmp_path: Path) -> None:
    f = faults
    with _live_call(f, tmp_path) as (phone, call, known):
        mark = len(phone.output)
        killed = f.kill("livekit-sip")
        # nobody is left to send the phone a BYE: it hangs up itself once no RTP came for its timeout
        phone.wait_for(r"terminated", timeout=RTP_TIMEOUT_S + 30, start=mark)
        phone_gave_up = time.monotonic() - killed
        # livekit-server times the phone's participant out: CONNECTION_TIMEOUT, the bridge was lost
        record = _ended(f, call["id"], timeout=90)
        took = time.monotonic() - killed
        print(
            f"\n[fault] livekit-sip killed -9: the phone hung up on its RTP timeout after "
            f"{phone_gave_up:.1f} s; the record ended {took:.1f} s after the kill as {record['end_reason']} "
            f"({record['disconnect_reason']}); events {_events(record)}"
        )
        evidence = (record["end_reason"], record["disconnect_reason"])
        assert evidence == ("sip_bridge_lost", "CONNECTION_TIMEOUT"), record
        assert f.hooks.of_call(call["id"])["call.ended"]["end_reason"] == "sip_bridge_lost"
        assert _webhooks_of(f, call["id"]) == ["call.ringing", "call.answered", "call.ended"]
        f.restart()
        _next_call_answered(f, tmp_path, known, after="after livekit-sip was started again")


def test_redis_restarted_mid_call(faults: FaultStack, voice: object, tmp_path: Path) -> None:
    f = faults
    question = caller_wav(tmp_path / "q.wav", "What are your opening hours on Saturday?", voice)
    with _live_call(f, tmp_path) as (phone, call, known):
        stopped = f.kill("redis", signal.SIGTERM)
        down = _stack_status(f)
        reported = time.monotonic() - stopped
        print(f"\n[fault] stack status {reported:.1f} s after Redis stopped:\n{down.stdout}")
        assert down.returncode == 3 and re.search(r"^redis\s+stopped", down.stdout, re.M), down.stdout
        # the call's media never passes through Redis: the conversation goes on while it is down
        _conversation_goes_on(f, phone, call["id"], question)
        outage = time.monotonic() - stopped
        f.restart()
        assert _stack_status(f).returncode == 0
        healthy = time.monotonic() - stopped
        print(f"[fault] Redis was down {outage:.1f} s; the stack healthy {healthy:.1f} s after it stopped")
        assert f.get(f"/calls/{call['id']}")["status"] == "in_progress"
        _hang_up(f, phone, call["id"])
        _next_call_answered(f, tmp_path, known, after="after Redis came back")
