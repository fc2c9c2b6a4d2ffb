"""sipp as a phone, for tests: the far end of an outbound call (a callee that is busy, never answers,
answers and hangs up, refuses with a given SIP status, or answers until hung up, echoing its media or
sending none), or a caller (one that gives up while it rings), from the scenarios in
``sip/scenarios/``. It runs on loopback and logs every SIP message it sends and receives to a file
the test can read."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

from phoneagent.stack import ports
from tests import REPO_ROOT

SCENARIO_DIR = REPO_ROOT / "sip" / "scenarios"
SCENARIOS = ("uas_busy", "uas_no_answer", "uas_answer_then_hangup", "uas_reject", "uas_answer_until_bye")
CALLER_SCENARIOS = ("uac_cancel_while_ringing", "uac_no_ack")


class SippError(AssertionError):
    pass


def _scenario_file(scenario: str, workdir: Path, status: str) -> Path:
    path = SCENARIO_DIR / f"{scenario}.xml"
    if not status:
        return path
    if scenario != "uas_reject" or not re.fullmatch(r"[3-6]\d\d [A-Za-z ]+", status):
        raise SippError(f"a status such as '503 Service Unavailable' is for uas_reject, not {scenario}")
    copy = workdir / f"uas_reject_{status[:3]}.xml"
    copy.write_text(path.read_text().replace("SIP/2.0 403 Forbidden", f"SIP/2.0 {status}"))
    return copy


class SippCallee:
    def __init__(
        self,
        scenario: str,
        *,
        workdir: Path,
        port: int,
        host: str = "127.0.0.1",
        hold_ms: int = 2000,
        media_port: int = 0,
        status: str = "",
        rtp_echo: bool = False,
    ) -> None:
        """``status``: uas_reject's final response instead of "403 Forbidden", e.g. "503 Service
        Unavailable"; ``rtp_echo``: send every RTP packet that reaches ``media_port`` back to where it
        came from."""
        if scenario not in SCENARIOS:
            raise SippError(f"no scenario {scenario!r}; there are {', '.join(SCENARIOS)}")
        if shutil.which("sipp") is None:
            raise SippError("sipp is not installed (Debian package sip-tester)")
        workdir.mkdir(parents=True, exist_ok=True)
        self.host, self.port = host, port
        self.messages = workdir / f"sipp-{scenario}-messages.log"
        self._argv = [
            "sipp",
            "-sf",
            str(_scenario_file(scenario, workdir, status)),
            "-i",
            host,
            "-p",
            str(port),
            "-mi",
            host,
            "-d",
            str(hold_ms),
            "-trace_msg",
            "-message_file",
            str(self.messages),
            "-trace_err",
            "-error_file",
            str(workdir / f"sipp-{scenario}-errors.log"),
            "-nostdin",
        ]
        if media_port:
            self._argv += ["-mp", str(media_port)]
        if rtp_echo:
            if not media_port:
                raise SippError("rtp_echo needs a media_port")
            self._argv.append("-rtp_echo")
        self._log = (workdir / f"sipp-{scenario}.out").open("wb")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, *, timeout: float = 10.0) -> SippCallee:
        self._proc = subprocess.Popen(
            self._argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while ports.is_free(self.host, self.port, "udp"):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise SippError(f"sipp did not start listening on udp {self.address}: {self._argv}")
            time.sleep(0.05)
        return self

    def trace(self) -> str:
        return self.messages.read_text(errors="replace") if self.messages.exists() else ""

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._log.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def __enter__(self) -> SippCallee:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SippCaller:
    """One call from sipp to ``target`` (``host:port``) with ``scenario``; ``pause_ms`` is what the
    scenario's pause waits (for ``uac_cancel_while_ringing``, the ring time before its CANCEL)."""

    def __init__(
        self,
        scenario: str,
        *,
        workdir: Path,
        target: str,
        number: str,
        port: int,
        host: str = "127.0.0.1",
        pause_ms: int = 0,
        media_port: int = 0,
    ) -> None:
        if scenario not in CALLER_SCENARIOS:
            raise SippError(f"no caller scenario {scenario!r}; there are {', '.join(CALLER_SCENARIOS)}")
        if shutil.which("sipp") is None:
            raise SippError("sipp is not installed (Debian package sip-tester)")
        workdir.mkdir(parents=True, exist_ok=True)
        self.messages = workdir / f"sipp-{scenario}-messages.log"
        self._argv = [
            "sipp",
            target,
            "-sf",
            str(SCENARIO_DIR / f"{scenario}.xml"),
            "-s",
            number,
            "-i",
            host,
            "-p",
            str(port),
            "-mi",
            host,
            "-m",
            "1",
            "-d",
            str(pause_ms),
            "-timeout",
            "60s",
            "-trace_msg",
            "-message_file",
            str(self.messages),
            "-trace_err",
            "-error_file",
            str(workdir / f"sipp-{scenario}-errors.log"),
            "-nostdin",
        ]
        if media_port:
            self._argv += ["-mp", str(media_port)]
        self._out = workdir / f"sipp-{scenario}.out"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SippCaller:
        with self._out.open("wb") as out:
            self._proc = subprocess.Popen(
                self._argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def wait(self, timeout: float) -> int:
        """sipp's exit code once its call is over: 0 when the scenario ran to its end."""
        assert self._proc is not None
        return self._proc.wait(timeout)

    def trace(self) -> str:
        return self.messages.read_text(errors="replace") if self.messages.exists() else ""

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None
