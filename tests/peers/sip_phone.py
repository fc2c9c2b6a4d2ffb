"""A real SIP phone for tests, benchmarks and `phoneagent dev`: Debian's baresip over UDP on loopback.

It plays a WAV file as its microphone (G.711 PCMU, 8 kHz) and records what it hears to
``<workdir>/rec/dump-*-dec.wav``. It is driven through its stdin menu (``/dial``, ``/hangup``,
``/quit``) and runs with ``-s`` so the SIP trace (INVITE, BYE, 200 OK) can be checked.

Two baresip behaviours shape this class: it hangs up when the WAV source ends (so the source is
padded with silence for as long as a call may last), and by default it advertises the machine's
non-loopback address for media (so ``net_interface`` pins it to loopback).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from phoneagent.stack.dev_phone import write_phone_config
from tests.peers.wav import (
    read_growing_wav,
    speech_seconds,
    trailing_silence_seconds,
)


class PhoneError(AssertionError):
    pass


class BaresipPhone:
    def __init__(self, workdir: Path, **config: object) -> None:
        if shutil.which("baresip") is None:
            raise PhoneError("baresip is not installed (Debian package baresip-core)")
        self.workdir = write_phone_config(workdir, **config)  # type: ignore[arg-type]
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._proc: subprocess.Popen[bytes] | None = None

    # ---- process -------------------------------------------------------------------------------

    def start(self) -> BaresipPhone:
        self._proc = subprocess.Popen(
            ["baresip", "-s", "-f", str(self.workdir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True, name="baresip-reader").start()
        self.wait_for(r"baresip is ready", timeout=20)
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in iter(self._proc.stdout.readline, b""):
            # the status line redraws itself with carriage returns: keep only real lines
            for line in raw.decode(errors="replace").replace("\r", "\n").splitlines():
                if line.strip() and not line.lstrip().startswith("[0:"):
                    with self._cond:
                        self._lines.append(line)
                        self._cond.notify_all()

    def _send(self, command: str) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(command.encode() + b"\n")
        self._proc.stdin.flush()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def close(self, timeout: float = 10.0) -> int:
        """Quit baresip; returns its exit code (kills it if it does not quit in time)."""
        if self._proc is None:
            return 0
        if self._proc.poll() is None:
            try:
                self._send("/quit")
                return self._proc.wait(timeout)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait(5)
                return -9
        return int(self._proc.returncode)

    # ---- output --------------------------------------------------------------------------------

    @property
    def output(self) -> list[str]:
        with self._cond:
            return list(self._lines)

    def wait_for(self, pattern: str, *, timeout: float, start: int = 0) -> int:
        """Index of the first output line from ``start`` matching ``pattern``; raises after ``timeout``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(start, len(self._lines)):
                    if rx.search(self._lines[i]):
                        return i
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(self._lines[-25:])
                    raise PhoneError(
                        f"baresip did not print /{pattern}/ within {timeout} s; last lines:\n{tail}"
                    )
                self._cond.wait(min(left, 0.5))

    # ---- calls ---------------------------------------------------------------------------------

    def dial(self, uri: str, *, timeout: float = 30.0) -> None:
        self.wait_for(r"Call established", timeout=timeout, start=self.start_dial(uri))

    def start_dial(self, uri: str) -> int:
        """Send the INVITE and return at once (the output mark to wait for its outcome from)."""
        mark = len(self.output)
        self._send(f"/dial {uri}")
        return mark

    def play(self, wav: Path) -> int:
        """Switch the microphone to ``wav`` (8 kHz mono, padded with silence: its end hangs up)."""
        mark = len(self.output)
        self._send(f"/ausrc aufile,{wav}")
        return mark

    def send_dtmf(self, digits: str) -> int:
        """Press keys during the call (baresip sends them as RTP telephone-events)."""
        mark = len(self.output)
        for key in digits:
            assert self._proc is not None and self._proc.stdin is not None
            self._proc.stdin.write(key.encode())
            self._proc.stdin.flush()
            time.sleep(0.3)
        return mark

    def wait_for_remote_bye(self, *, since: int, timeout: float) -> None:
        """The far end hung up: a BYE request arrived and the call ended."""
        self.wait_for(r"^BYE sip:", timeout=timeout, start=since)
        self.wait_for(r"terminated", timeout=timeout, start=since)

    def hangup(self) -> int:
        """Hang up the call; returns the output index where the hangup began."""
        mark = len(self.output)
        self._send("/hangup")
        return mark

    def bye_confirmed(self, *, since: int, timeout: float = 10.0) -> bool:
        """True once the trace shows a BYE request sent and a 200 OK answering that BYE's CSeq."""
        bye = self.wait_for(r"^BYE sip:", timeout=timeout, start=since)
        cseq_line = self.wait_for(r"^CSeq: \d+ BYE", timeout=timeout, start=bye)
        cseq = self.output[cseq_line].split()[1]
        ok = self.wait_for(r"^SIP/2\.0 200 OK", timeout=timeout, start=cseq_line)
        self.wait_for(rf"^CSeq: {cseq} BYE", timeout=timeout, start=ok)
        return True

    def received_wav(self) -> Path | None:
        found = sorted(self.workdir.glob("rec/dump-*-dec.wav"))
        return found[-1] if found else None

    def received_audio(self) -> np.ndarray:
        path = self.received_wav()
        return read_growing_wav(path) if path else np.zeros(0, dtype=np.int16)

    def wait_for_utterance(self, *, min_speech_s: float, then_silence_s: float, timeout: float) -> None:
        """Wait until the phone has heard at least ``min_speech_s`` of speech followed by silence."""

        def heard() -> bool:
            audio = self.received_audio()
            return speech_seconds(audio) >= min_speech_s and trailing_silence_seconds(audio) >= then_silence_s

        wait_until(
            heard,
            timeout=timeout,
            what=f"{min_speech_s} s of speech then {then_silence_s} s of silence at the caller",
        )


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise PhoneError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
