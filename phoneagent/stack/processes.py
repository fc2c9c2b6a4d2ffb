"""Child processes whose output goes to a log file that can be waited on with a deadline
(``phoneagent dev`` runs the API and the worker this way; tests and benchmarks too)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from phoneagent.errors import StackError


class ProcessError(StackError):
    """A child exited, or did not print what was awaited, before its deadline."""


class LoggedProcess:
    """A child process whose combined output goes to a log file that can be waited on."""

    def __init__(
        self, argv: list[str], *, log_path: Path, env: dict[str, str], cwd: Path | None = None
    ) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self.seen_pids: set[int] = {self.proc.pid}

    @classmethod
    def phoneagent(
        cls, *args: str, log_path: Path, env: dict[str, str], cwd: Path | None = None
    ) -> LoggedProcess:
        """``phoneagent ARGS``; with ``cwd``, the package found there (another checkout) runs."""
        return cls([sys.executable, "-m", "phoneagent.cli", *args], log_path=log_path, env=env, cwd=cwd)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def note_descendants(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            self.seen_pids.update(p.pid for p in psutil.Process(self.proc.pid).children(recursive=True))

    def wait_for(self, pattern: str, *, timeout: float) -> None:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while not rx.search(self.text()):
            if self.proc.poll() is not None:
                raise ProcessError(
                    f"process exited ({self.proc.returncode}) before /{pattern}/:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise ProcessError(f"no /{pattern}/ within {timeout} s:\n{self.tail()}")
            self.note_descendants()
            time.sleep(0.2)
        self.note_descendants()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the whole process group at once: a crash, nothing gets to clean up."""
        self.note_descendants()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, wait, then SIGKILL the process group; reap the child."""
        self.note_descendants()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
