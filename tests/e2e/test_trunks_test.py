"""`phoneagent trunks test` through the real stack (livekit-server, livekit-sip, the control plane) to
sipp callees on loopback: one that answers and echoes audio and DTMF, one that answers and sends
nothing, and ones that refuse with 403, 404, 486 and 503. Each run is the real command; what it
prints, its exit code, what sipp saw (the hang-up) and the room left behind (none) are checked."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from livekit import api

from phoneagent.cli_trunks import LABELS, MARKS
from phoneagent.config import Settings
from phoneagent.stack import ports
from phoneagent.stack.services import Stack
from phoneagent.telephony.client import livekit_api
from tests.peers.sip_phone import wait_until
from tests.peers.sipp import SippCallee
from tests.stack_fixtures import PORT_OFFSET, ControlPlane

STEPS, RESULTS = set(LABELS.values()), set(MARKS.values())

CALLEE = "+15550142"
CALLER = "+15550100"


def _free_udp(host: str, start: int) -> int:
    for port in range(start, start + 200, 2):
        if ports.is_free(host, port, "udp") and ports.is_free(host, port + 1, "udp"):
            return port
    raise AssertionError("no free UDP port for the callee")


@dataclass(frozen=True)
class Callee:
    scenario: str
    status: str = ""
    echo: bool = False
    media: bool = False


@dataclass(frozen=True)
class Expect:
    code: int
    steps: dict[str, tuple[str, str]]  # step -> (its result, words in what happened)
    said: tuple[str, ...] = ()  # more words in the output
    see: str = ""  # the troubleshooting section named on failure


def _refused(status: str, cause: str, see: str) -> Expect:
    return Expect(
        3,
        {"INVITE": ("ok", "sent to 127.0.0.1:"), "answer": ("FAILED", f"SIP {status}")},
        (f"failed: SIP {status}", f"likely cause: {cause}"),
        see,
    )


CASES = {
    "no-response": (
        Callee(""),
        Expect(
            3,
            {"ringing": ("not seen", "no 180 Ringing"), "answer": ("FAILED", "no response within 5 s")},
            ("likely cause: nothing answered the INVITE",),
            "no-response-to-the-invite",
        ),
    ),
    "answers-and-echoes": (
        Callee("uas_answer_until_bye", echo=True, media=True),
        Expect(
            0,
            {
                "INVITE": ("ok", "over udp"),
                "ringing": ("ok", "180/183"),
                "answer": ("ok", "200 OK"),
                "audio from phone": ("ok", "dBFS"),
                "audio to phone": ("ok", "media flows both ways"),
                "DTMF": ("ok", "sent 159, got 159 back"),
                "hang up": ("ok", "hung up (BYE)"),
            },
            ("passed in",),
        ),
    ),
    "answers-without-media": (
        Callee("uas_answer_until_bye", media=True),
        Expect(
            3,
            {
                "answer": ("ok", "200 OK"),
                "audio from phone": ("FAILED", "nothing heard"),
                "audio to phone": ("not echoed", "did not come back"),
                "DTMF": ("not echoed", "none came back"),
                "hang up": ("ok", "hung up (BYE)"),
            },
            ("likely cause: the far end answered but no audio came from it",),
            "one-way-or-no-audio",
        ),
    ),
    "403": (
        Callee("uas_reject"),
        _refused("403 Forbidden", "the carrier refused the call", "403-forbidden-on-outbound-calls"),
    ),
    "404": (
        Callee("uas_reject", status="404 Not Found"),
        _refused("404 Not Found", "the carrier does not know", "404-not-found-on-outbound-calls"),
    ),
    "486": (
        Callee("uas_busy"),
        _refused(
            "486 Busy Here", "the callee is busy (486): the trunk works", "busy-declined-or-unavailable"
        ),
    ),
    "503": (
        Callee("uas_reject", status="503 Service Unavailable"),
        _refused("503 Service Unavailable", "the carrier, or a proxy on the way", "503-service-unavailable"),
    ),
}


def _steps(out: str) -> dict[str, tuple[str, str]]:
    """The command's table of steps: step -> (result, what happened)."""
    rows = {}
    for line in out.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells and re.fullmatch(r"\d+\.\d s", cells[0]):
            cells = cells[1:]
        if len(cells) == 3 and cells[0] in STEPS and cells[1] in RESULTS:
            rows[cells[0]] = (cells[1], cells[2])
    return rows


@pytest.fixture(scope="module")
def api_client(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=control_plane.url, headers=control_plane.headers, timeout=90) as c:
        yield c


def _trunk(c: httpx.Client, name: str, address: str) -> str:
    r = c.post("/trunks/outbound", json={"name": name, "address": address, "numbers": [CALLER]})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _command(cp: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    key = cp.headers["Authorization"].removeprefix("Bearer ")
    argv = [sys.executable, "-m", "phoneagent.cli", "trunks", "test", *args, "--url", cp.url, "--key", key]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180)


async def _test_rooms(settings: Settings) -> list[str]:
    async with livekit_api(settings) as lk:
        rooms = (await lk.room.list_rooms(api.ListRoomsRequest())).rooms
    return [r.name for r in rooms if r.name.startswith("trunk-test-")]


@pytest.mark.parametrize("case", list(CASES))
def test_the_command_reports_what_the_callee_answered(
    case: str, stack: Stack, control_plane: ControlPlane, api_client: httpx.Client, tmp_path: Path
) -> None:
    callee, expect = CASES[case]
    host = stack.settings.bind_host
    port = _free_udp(host, 36060 + PORT_OFFSET % 1000)
    media = _free_udp(host, 36400 + PORT_OFFSET % 1000) if callee.media else 0
    if not callee.scenario:  # nothing listens there: the INVITE goes unanswered
        trunk = _trunk(api_client, f"test-{case}", f"{host}:{port}")
        try:
            run = _command(control_plane, f"test-{case}", "--to", CALLEE, "--ring-timeout", "5")
        finally:
            api_client.delete(f"/trunks/outbound/{trunk}")
    else:
        sipp = SippCallee(
            callee.scenario,
            workdir=tmp_path,
            port=port,
            host=host,
            status=callee.status,
            media_port=media,
            rtp_echo=callee.echo,
        )
        with sipp:
            trunk = _trunk(api_client, f"test-{case}", sipp.address)
            try:
                run = _command(control_plane, f"test-{case}", "--to", "+1 555 0142", "--ring-timeout", "10")
            finally:
                api_client.delete(f"/trunks/outbound/{trunk}")
            assert "INVITE sip:+15550142@" in sipp.trace()
            if "answer" in expect.steps and expect.steps["answer"][0] == "ok":
                # the test hung up: its BYE reached the callee, which answered it
                wait_until(lambda: "BYE sip:" in sipp.trace(), timeout=15, what="the BYE at the callee")
    out = run.stdout
    print(out, run.stderr)
    assert run.returncode == expect.code, out + run.stderr
    assert "Traceback" not in run.stderr
    assert f"call {CALLER} -> {CALLEE}" in out
    steps = _steps(out)
    for step, (result, words) in expect.steps.items():
        assert step in steps and steps[step][0] == result and words in steps[step][1], (step, out)
    for words in expect.said:
        assert words in out, (words, out)
    if expect.see:
        assert f"see: sip/troubleshooting.md#{expect.see}" in out
        heading = expect.see.replace("-", " ")
        guide = (Path(__file__).parents[2] / "sip" / "troubleshooting.md").read_text().lower()
        assert any(line.startswith("## ") and _anchor(line) == expect.see for line in guide.splitlines()), (
            f"no section {heading!r} in sip/troubleshooting.md"
        )
    wait_until(
        lambda: not asyncio.run(_test_rooms(stack.settings)), timeout=15, what="the test call's room gone"
    )


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = heading.lstrip("#").strip().lower()
    return "".join(ch for ch in text if ch.isalnum() or ch in " -").replace(" ", "-")


def test_bad_requests_are_refused_with_a_reason(
    stack: Stack, control_plane: ControlPlane, api_client: httpx.Client
) -> None:
    trunk = _trunk(api_client, "test-bad-input", f"{stack.settings.bind_host}:5")
    try:
        r = api_client.post(f"/trunks/outbound/{trunk}/test", json={"to": "hello"})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "to", r.text
        r = api_client.post(f"/trunks/outbound/{trunk}/test", json={"to": CALLEE, "from_number": "+15550199"})
        assert r.status_code == 422 and "trunk's numbers" in r.text, r.text
        r = api_client.post(f"/trunks/outbound/{trunk}/test", json={"to": CALLEE, "ring_timeout_s": 600})
        assert r.status_code == 422, r.text
        r = api_client.post("/trunks/outbound/otr_nope/test", json={"to": CALLEE})
        assert r.status_code == 404, r.text
        bad = _command(control_plane, "no-such-trunk", "--to", CALLEE)
        assert bad.returncode == 2 and "no outbound trunk named 'no-such-trunk'" in bad.stderr, bad.stderr
        assert "test-bad-input" in bad.stderr and "Traceback" not in bad.stderr
        bad = _command(control_plane, "test-bad-input", "--to", "hello")
        assert bad.returncode == 2 and "[HTTP 422]" in bad.stderr and "Traceback" not in bad.stderr, (
            bad.stderr
        )
    finally:
        api_client.delete(f"/trunks/outbound/{trunk}")
