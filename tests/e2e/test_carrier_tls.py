"""Toward carriers: SIP over TLS and SRTP through the real stack, with a throwaway CA.

livekit-sip listens for TLS on loopback with a certificate the test CA signed and trusts that CA for
the carriers it calls (PHONEAGENT_SIP_TLS_CA_FILE); baresip (libre links OpenSSL) is the carrier's
side: a caller over TLS, with SRTP (SDES keys in the SDP) when a trunk requires it, and a callee that
listens for TLS. Each test checks the SIP trace (the transport, the SDP's profile and crypto lines),
what was heard, and the call record.

These tests reconfigure the stack (TLS on), so they run their own: its own state dir and ports (the
suite's test ports moved by ``TLS_PORT_SHIFT``), its own control plane and its own worker."""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from phoneagent.config import Settings
from phoneagent.stack import ports
from phoneagent.stack.services import Stack
from tests.e2e.conftest import assert_greeting_heard, transcribe, words
from tests.peers.processes import assert_all_gone
from tests.peers.sip_phone import BaresipPhone, PhoneError, wait_until
from tests.peers.tls_certs import Leaf, TestCA
from tests.peers.voices import caller_wav
from tests.peers.wav import speech_seconds, trailing_silence_seconds, write_wav
from tests.stack_fixtures import (
    PORT_OFFSET,
    STACK_PORTS,
    ControlPlane,
    WorkerProcess,
    running_control_plane,
    running_stack,
    running_worker,
    suite_stack_settings,
)

# clear of the suite's ports, of the fault tests' (shift 500) and of every other checkout's (3000 or
# more apart), also the RTP and WebRTC ranges: 15200-15499 and 53200-53249 before PORT_OFFSET
TLS_PORT_SHIFT = 2200
TLS_PORTS = {name: port + TLS_PORT_SHIFT for name, port in STACK_PORTS.items()}
# the phones' RTP ports, one range per test
PHONE_RTP = {n: (47100 + 50 * n + PORT_OFFSET, 47149 + 50 * n + PORT_OFFSET) for n in range(5)}
CALLEE = "+15550142"


@dataclass(frozen=True)
class TlsStack:
    stack: Stack
    cp: ControlPlane
    worker: WorkerProcess
    ca: TestCA
    callee_leaf: Leaf

    @property
    def settings(self) -> Settings:
        return self.stack.settings

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.cp.url, headers=self.cp.headers, timeout=30)

    def inbound_srtp(self, mode: str) -> None:
        """The suite's inbound trunk (the dev number's) set to SRTP ``mode``."""
        with self.api() as c:
            r = c.patch(f"/trunks/inbound/{self.cp.trunk_id}", json={"media_encryption": mode})
            assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsStack]:
    ca = TestCA(tmp_path_factory.mktemp("tls-ca"))
    sip_leaf, callee_leaf = ca.leaf("livekit-sip"), ca.leaf("callee")
    settings = suite_stack_settings(
        tmp_path_factory.mktemp("tls-stack"),
        TLS_PORTS,
        sip_tls=True,
        sip_tls_port=TLS_PORTS["sip_port"] + 1,
        sip_tls_cert_file=sip_leaf.cert,
        sip_tls_key_file=sip_leaf.key,
        sip_tls_ca_file=ca.ca,
    )
    with (
        running_stack(settings, "tls-stack") as stack,
        running_control_plane(settings, tmp_path_factory.mktemp("tls-cp")) as cp,
        running_worker(settings, tmp_path_factory.mktemp("tls-worker")) as worker,
    ):
        yield TlsStack(stack, cp, worker, ca, callee_leaf)


def _caller(t: TlsStack, tmp_path: Path, n: int, *, mediaenc: str = "") -> BaresipPhone:
    return BaresipPhone(
        tmp_path / f"caller-{n}", rtp_ports=PHONE_RTP[n], tls=True, cafile=t.ca.ca, mediaenc=mediaenc
    ).start()


def _tls_uri(t: TlsStack) -> str:
    # the account's transport=tls goes onto the request URI: the port is livekit-sip's TLS port
    return f"sip:{t.settings.dev_number}@{t.settings.bind_host}:{t.settings.sip_tls_port}"


def _trace(phone: BaresipPhone, since: int = 0) -> str:
    return "\n".join(phone.output[since:])


def _media(lines: list[str], start: int) -> str:
    """The audio m= line and the crypto lines of the first SDP from ``lines[start]`` on."""
    at = next(i for i in range(start, len(lines)) if lines[i].startswith("m=audio"))
    found = [lines[at]]
    for line in lines[at + 1 :]:
        if not line.startswith("a="):
            break
        if line.startswith("a=crypto"):
            found.append(line)
    return "\n".join(found)


def _sdp_offer_and_answer(phone: BaresipPhone) -> tuple[str, str]:
    """The INVITE's and its 200 OK's audio and crypto lines, from a phone's SIP trace."""
    lines = phone.output
    invite = next(i for i, line in enumerate(lines) if line.startswith("INVITE sip:"))
    # the INVITE's 200 (baresip says "200 Answering")
    ok = next(i for i in range(invite, len(lines)) if lines[i].startswith("SIP/2.0 200 "))
    return _media(lines, invite), _media(lines, ok)


def _calls(t: TlsStack) -> list[dict[str, Any]]:
    with t.api() as c:
        return list(c.get("/calls").json()["items"])


def _new_call(t: TlsStack, known: set[str]) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next((c for c in _calls(t) if c["id"] not in known), None)

    wait_until(lambda: found() is not None, timeout=30, what="the call's record")
    call = found()
    assert call is not None
    return call


def _ended(t: TlsStack, call_id: str, *, timeout: float = 60) -> dict[str, Any]:
    def record() -> dict[str, Any]:
        with t.api() as c:
            return dict(c.get(f"/calls/{call_id}").json())

    wait_until(lambda: record()["status"] == "ended", timeout=timeout, what="the call record to end")
    return record()


def _wait_reply(phone: BaresipPhone, since: int, *, timeout: float = 90) -> None:
    def replied() -> bool:
        tail = phone.received_audio()[since:]
        return speech_seconds(tail) >= 1.0 and trailing_silence_seconds(tail) >= 1.2

    wait_until(replied, timeout=timeout, what="the agent's reply at the caller")


# ---- inbound: a carrier calls in over TLS -----------------------------------------------------------


def test_the_tls_listener_is_livekit_sips_and_on_loopback_only(tls: TlsStack) -> None:
    s = tls.settings
    sip = next(state for state in tls.stack.status() if state.name == "livekit-sip")
    assert sip.pid is not None
    listening = {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(sip.pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }
    assert (s.bind_host, s.sip_tls_port) in listening and (s.bind_host, s.sip_port) in listening, listening
    assert all(ipaddress.ip_address(ip).is_loopback for ip, _ in listening), listening
    assert "livekit-sip" in ports.owner(s.sip_tls_port)
    # a plain TCP client gets no SIP from the TLS port: it speaks TLS only
    with socket.create_connection((s.bind_host, s.sip_tls_port), timeout=5) as raw:
        raw.sendall(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n\r\n")
        raw.settimeout(5)
        try:
            answer = raw.recv(100)
        except (TimeoutError, ConnectionResetError):
            answer = b""
    assert not answer.startswith(b"SIP/2.0")


def test_a_caller_over_tls_is_answered_by_the_agent(
    tls: TlsStack, whisper_tiny: object, tmp_path: Path
) -> None:
    known = {c["id"] for c in _calls(tls)}
    phone = _caller(tls, tmp_path, 0)
    t0 = time.monotonic()
    try:
        phone.dial(_tls_uri(tls), timeout=60)
        answered_s = time.monotonic() - t0
        phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.2, timeout=90)  # the greeting
        call = _new_call(tls, known)
        mark = phone.hangup()
        assert phone.bye_confirmed(since=mark, timeout=15)
        record = _ended(tls, call["id"])
    finally:
        phone.close()
    assert_all_gone({phone.pid} if phone.pid else set())
    trace = _trace(phone)
    # signalling went over TLS to livekit-sip's TLS port, both ways; the media is plain RTP (the trunk
    # does not ask for SRTP)
    s = tls.settings
    assert re.search(rf"TLS 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:{s.sip_tls_port}\nINVITE sip:", trace), trace[
        :2000
    ]
    assert re.search(rf"TLS 127\.0\.0\.1:{s.sip_tls_port} -> 127\.0\.0\.1:\d+\nSIP/2\.0 200 OK", trace)
    assert "Via: SIP/2.0/TLS" in trace
    offer, answer = _sdp_offer_and_answer(phone)
    assert " RTP/AVP " in offer and " RTP/AVP " in answer and "a=crypto" not in answer, (offer, answer)
    received = phone.received_wav()
    assert received is not None
    assert_greeting_heard(transcribe(whisper_tiny, str(received)))
    assert (record["direction"], record["end_reason"], record["to_number"]) == (
        "inbound",
        "customer_hangup",
        s.dev_number,
    )
    print(f"[tls] a caller over TLS was answered {answered_s:.1f} s after dialling")


def test_a_plain_rtp_offer_to_a_trunk_that_requires_srtp_is_refused(tls: TlsStack, tmp_path: Path) -> None:
    known = {c["id"] for c in _calls(tls)}
    tls.inbound_srtp("require")
    phone = _caller(tls, tmp_path, 1)  # TLS, but no SRTP offered
    try:
        mark = phone.start_dial(_tls_uri(tls))
        final = phone.wait_for(r"^SIP/2\.0 [3-6]\d\d ", timeout=30, start=mark)
        status = phone.output[final]
        with pytest.raises(PhoneError):
            phone.wait_for(r"Call established", timeout=3, start=mark)
    finally:
        phone.close()
        tls.inbound_srtp("disable")
    print(f"[tls] a plain RTP offer to an SRTP-requiring trunk was answered {status!r}")
    # livekit-sip v1.8.0 answers a failed media negotiation with a bare 400 (its call record says
    # no-common-crypto), not the 488 Not Acceptable Here RFC 3261 suggests
    assert status.startswith("SIP/2.0 400"), status
    sip_log = tls.stack.paths.logfile("livekit-sip").read_text(errors="replace")
    assert '"error": "no common encryption profiles"' in sip_log
    # nothing was answered, so no call was recorded as answered
    assert all(c["answered_at"] is None for c in _calls(tls) if c["id"] not in known)


def test_srtp_required_carries_the_conversation_both_ways(
    tls: TlsStack, whisper_tiny: object, voice: object, tmp_path: Path
) -> None:
    known = {c["id"] for c in _calls(tls)}
    question = caller_wav(tmp_path / "q.wav", "What are your opening hours on Saturday?", voice)
    tls.inbound_srtp("require")
    phone = _caller(tls, tmp_path, 2, mediaenc="srtp-mand")
    try:
        phone.dial(_tls_uri(tls), timeout=60)
        phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.2, timeout=90)  # agent -> caller
        call = _new_call(tls, known)
        mark = phone.received_audio().size
        phone.play(question)  # caller -> agent: the agent must hear and understand it to answer
        _wait_reply(phone, mark)
        reply = phone.received_audio()[mark:]
        hangup = phone.hangup()
        assert phone.bye_confirmed(since=hangup, timeout=15)
        record = _ended(tls, call["id"])
    finally:
        phone.close()
        tls.inbound_srtp("disable")
    offer, answer = _sdp_offer_and_answer(phone)
    print(f"[tls] SRTP offer:\n{offer}\n[tls] SRTP answer:\n{answer}")
    assert " RTP/SAVP " in offer and " RTP/SAVP " in answer, (offer, answer)
    suite = re.search(r"a=crypto:\d+ (\S+) inline:", answer)
    assert suite is not None and suite[1] in offer, (offer, answer)  # one of the caller's suites
    heard = words(transcribe(whisper_tiny, str(write_wav(tmp_path / "reply.wav", reply, 8000))))
    assert {"monday", "friday", "saturday"} <= heard, heard  # the script's answer to "hours"
    assert record["end_reason"] == "customer_hangup"

    def caller_said() -> str:
        with tls.api() as c:
            turns = c.get(f"/calls/{call['id']}").json()["transcript"]
        return " ".join(t["text"] for t in turns if t["speaker"] == "caller").lower()

    wait_until(lambda: "hours" in caller_said(), timeout=30, what="the caller's question in the record")


# ---- outbound: livekit-sip calls a carrier over TLS -------------------------------------------------


def _free_tcp_pair(host: str) -> int:
    """A port whose next one is free too, for UDP and TCP (baresip listens for TLS on port + 1)."""
    for port in range(37500 + PORT_OFFSET % 2000, 37800 + PORT_OFFSET % 2000, 2):
        if all(ports.is_free(host, p, proto) for p in (port, port + 1) for proto in ("tcp", "udp")):
            return port
    raise AssertionError("no free port pair for the callee")


def _callee(t: TlsStack, tmp_path: Path, n: int, leaf: Leaf) -> tuple[BaresipPhone, int]:
    port = _free_tcp_pair(t.settings.bind_host)
    phone = BaresipPhone(
        tmp_path / f"callee-{n}",
        rtp_ports=PHONE_RTP[n],
        listen_port=port,
        auto_answer=True,
        user=CALLEE,
        tls=True,
        certificate=leaf.bundle,
        cafile=t.ca.ca,
        mediaenc="srtp-mand",
    ).start()
    return phone, port + 1


def _outbound_call(t: TlsStack, c: httpx.Client, tls_port: int, name: str) -> tuple[str, str]:
    trunk = {
        "name": name,
        "address": f"{t.settings.bind_host}:{tls_port}",
        "transport": "tls",
        "media_encryption": "require",
        "numbers": ["+15550100"],
    }
    r = c.post("/trunks/outbound", json=trunk)
    assert r.status_code == 201, r.text
    body = {"to": CALLEE, "agent_profile_id": t.cp.agent_id, "outbound_trunk_id": r.json()["id"]}
    call = c.post("/calls", json={**body, "ring_timeout_s": 20})
    assert call.status_code == 201, call.text
    return r.json()["id"], call.json()["id"]


def test_an_outbound_call_over_tls_with_srtp_reaches_a_callee_the_ca_vouches_for(
    tls: TlsStack, whisper_tiny: object, tmp_path: Path
) -> None:
    phone, tls_port = _callee(tls, tmp_path, 3, tls.callee_leaf)
    with tls.api() as c:
        trunk_id, call_id = _outbound_call(tls, c, tls_port, "to-tls-callee")
        try:
            phone.wait_for(r"Call established", timeout=60)
            phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.2, timeout=90)  # the greeting
            mark = phone.hangup()
            assert phone.bye_confirmed(since=mark, timeout=15)
            record = _ended(tls, call_id)
        finally:
            phone.close()
            c.delete(f"/trunks/outbound/{trunk_id}")
    trace = _trace(phone)
    # livekit-sip dialled the callee's TLS port, and offered SRTP only (require)
    assert re.search(
        rf"TLS 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:{tls_port}\nINVITE sip:{re.escape(CALLEE)}", trace
    )
    offer, answer = _sdp_offer_and_answer(phone)
    print(f"[tls] livekit-sip's SRTP offer:\n{offer}\n[tls] the callee's answer:\n{answer}")
    assert " RTP/SAVP " in offer and "a=crypto:" in offer and " RTP/SAVP " in answer, (offer, answer)
    received = phone.received_wav()
    assert received is not None
    assert_greeting_heard(transcribe(whisper_tiny, str(received)))
    assert (record["direction"], record["end_reason"]) == ("outbound", "customer_hangup"), record


def test_an_outbound_call_to_a_callee_no_trusted_ca_vouches_for_fails(tls: TlsStack, tmp_path: Path) -> None:
    stranger = TestCA(tmp_path / "stranger-ca").leaf("impostor")
    phone, tls_port = _callee(tls, tmp_path, 4, stranger)
    sip_log = tls.stack.paths.logfile("livekit-sip")
    refused_before = sip_log.read_text(errors="replace").count("certificate signed by unknown authority")
    with tls.api() as c:
        trunk_id, call_id = _outbound_call(tls, c, tls_port, "to-impostor")
        try:
            record = _ended(tls, call_id, timeout=60)
        finally:
            c.delete(f"/trunks/outbound/{trunk_id}")
    try:
        # the handshake failed: no INVITE ever reached the callee
        assert not any(line.startswith("INVITE sip:") for line in phone.output), _trace(phone)[-2000:]
    finally:
        phone.close()
    print(f"[tls] an untrusted callee: the call ended {record['end_reason']} ({record['sip_status_code']})")
    assert record["end_reason"] == "failed" and record["answered_at"] is None, record
    # and it failed for the reason under test: livekit-sip refused the callee's certificate chain
    refused = sip_log.read_text(errors="replace").count("certificate signed by unknown authority")
    assert refused > refused_before
