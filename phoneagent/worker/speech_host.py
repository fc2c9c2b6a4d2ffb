"""The worker's shared speech models (:mod:`phoneagent.speech.shared`) as a child process: started
before the worker takes calls, watched, started again if it dies, stopped with the worker."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from phoneagent.config import Settings
from phoneagent.errors import ConfigError

log = logging.getLogger("phoneagent.worker")

READY_TIMEOUT_S = 180.0  # loading Whisper and Piper on a busy 2-core machine
UNIX_PATH_MAX = 100  # sun_path holds 108 bytes


def socket_path(settings: Settings) -> Path:
    """``<state dir>/run/speech-<pid>.sock``, or a private directory under /tmp when that path is too
    long for a Unix socket."""
    path = settings.state_dir.expanduser() / "run" / f"speech-{os.getpid()}.sock"
    if len(str(path)) <= UNIX_PATH_MAX:
        return path
    return Path(tempfile.mkdtemp(prefix="phoneagent-")) / f"speech-{os.getpid()}.sock"


def _die_with_parent() -> None:
    """In the child: SIGTERM when the worker dies, even by SIGKILL (Linux ``PR_SET_PDEATHSIG``)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def start_for(settings: Settings) -> SpeechHost | None:
    """The shared models this worker's settings call for (None: no local model, or per process)."""
    from phoneagent.speech.providers import IN_PROCESS_WHISPER, needs_local_piper, needs_local_whisper

    whisper = [IN_PROCESS_WHISPER] if needs_local_whisper(settings) else []
    voices = [settings.piper_voice] if needs_local_piper(settings) else []
    if not settings.shared_models or not (whisper or voices):
        return None
    host = SpeechHost(settings, whisper=whisper, voices=voices).start()
    # the job processes, started after this, read it as their settings' speech_socket
    os.environ["PHONEAGENT_SPEECH_SOCKET"] = str(host.path)
    return host


class SpeechHost:
    def __init__(self, settings: Settings, *, whisper: list[str], voices: list[str]) -> None:
        self.path = socket_path(settings)
        self._argv = [
            sys.executable,
            "-m",
            "phoneagent.speech.shared",
            "--socket",
            str(self.path),
            "--whisper-workers",
            str(settings.whisper_workers),
            *(a for name in whisper for a in ("--whisper", name)),
            *(a for voice in voices for a in ("--voice", voice)),
        ]
        self._log_path = self.path.with_suffix(".log")
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self.restarts = 0

    def start(self) -> SpeechHost:
        """Start it and wait until it answers; ConfigError (with its log) when it does not."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        proc = self._spawn()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._answers():
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self._log_path.read_text(errors="replace").splitlines()[-15:]
                raise ConfigError(
                    "the shared speech models did not start",
                    hint="its log:\n"
                    + "\n".join(tail)
                    + "\n(PHONEAGENT_SHARED_MODELS=false loads them per call)",
                )
            time.sleep(0.2)
        threading.Thread(target=self._watch, name="speech-host-watch", daemon=True).start()
        log.info("shared speech models ready", extra={"socket": str(self.path), "pid": proc.pid})
        return self

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self._log_path.open("ab") as out:
            self._proc = subprocess.Popen(
                self._argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        return self._proc

    def _answers(self) -> bool:
        with contextlib.closing(socket.socket(socket.AF_UNIX)) as s:
            try:
                s.connect(str(self.path))
            except OSError:
                return False
        return True

    def _watch(self) -> None:
        while not self._stopping.is_set():
            proc = self._proc
            if proc is not None and proc.poll() is not None and not self._stopping.is_set():
                self.restarts += 1
                log.error(
                    "the shared speech models exited; starting them again",
                    extra={
                        "exit_code": proc.returncode,
                        "restarts": self.restarts,
                        "log": str(self._log_path),
                    },
                )
                self._spawn()
            self._stopping.wait(1.0)

    def stop(self) -> None:
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
