"""Check that a process tree is gone after a stop (tests and benchmarks)."""

from __future__ import annotations

import time

import psutil

from phoneagent.stack.processes import LoggedProcess, ProcessError

__all__ = ["LoggedProcess", "ProcessError", "alive", "assert_all_gone"]


def alive(pids: set[int]) -> list[str]:
    """The processes among ``pids`` that still run (zombies count as gone), described."""
    left = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if p.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{pid} {p.name()}")
        except psutil.NoSuchProcess:
            continue
    return left


def assert_all_gone(pids: set[int], *, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (left := alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        raise ProcessError(f"processes still running after stop: {', '.join(left)}")
