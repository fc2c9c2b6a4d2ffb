"""The benchmark's real stack, and its arms: each arm is a control plane and a worker of its own (a
number, an agent name, a database), on one shared stack, so that two settings, or this checkout and
an earlier commit, answer calls side by side in one run.

An arm is written ``label[@gitref][:KEY=VALUE;KEY=VALUE...]``: ``new``, ``old@fc435de``,
``vad:PHONEAGENT_TURN_DETECTION=vad`` (arms are separated by commas on the command line). With a git
ref, the arm's processes run that commit's code (a ``git worktree`` in the run's temporary
directory, the same Python environment).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks import REPO_ROOT
from benchmarks.ports import StackPorts
from phoneagent.config import Settings
from phoneagent.stack.processes import LoggedProcess
from phoneagent.stack.services import Stack

PORTS: StackPorts = {
    "redis_port": 46389,
    "livekit_port": 47880,
    "livekit_rtc_tcp_port": 47881,
    "livekit_rtc_udp_start": 54000,
    "livekit_rtc_udp_end": 54099,
    "sip_port": 45060,
    "sip_rtp_start": 14000,
    "sip_rtp_end": 14499,
    "worker_http_port": 48081,
    "worker_metrics_port": 48082,
    "livekit_prometheus_port": 46789,
    "api_port": 48010,
}
# arm i: control plane on API_PORT + i, worker health on WORKER_PORT + i, worker metrics on
# METRICS_PORT + i, number NUMBER + i
API_PORT, WORKER_PORT, METRICS_PORT, NUMBER = PORTS["api_port"], 48090, 48100, 15550170
MAX_ARMS = 8


@dataclass
class ArmSpec:
    label: str
    ref: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> ArmSpec:
        head, _, knobs = text.partition(":")
        label, _, ref = head.partition("@")
        env = dict(kv.split("=", 1) for kv in knobs.split(";") if kv)
        if not label or not all(k.startswith("PHONEAGENT_") or k == "AGENT_MODE" for k in env):
            raise ValueError(f"arm {text!r}: label[@gitref][:PHONEAGENT_KEY=VALUE;...]")
        return cls(label, ref or None, env)

    def __str__(self) -> str:
        knobs = ";".join(f"{k}={v}" for k, v in self.env.items())
        return self.label + (f"@{self.ref}" if self.ref else "") + (f":{knobs}" if knobs else "")


class Arm:
    """One control plane and one worker, answering ``number``."""

    def __init__(self, spec: ArmSpec, index: int, base_env: dict[str, str], tmp: Path) -> None:
        self.spec = spec
        self.index = index
        self.number = f"+{NUMBER + index}"
        self.tmp = tmp / f"arm-{spec.label}"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.code: Path | None = None
        self.env = {
            **base_env,
            "PHONEAGENT_API_PORT": str(API_PORT + index),
            "PHONEAGENT_WORKER_HTTP_PORT": str(WORKER_PORT + index),
            "PHONEAGENT_WORKER_METRICS_PORT": str(METRICS_PORT + index),
            "PHONEAGENT_AGENT_NAME": f"bench-{spec.label}",
            "PHONEAGENT_DATABASE_URL": f"sqlite:///{self.tmp}/cp.db",
            **spec.env,
        }
        self.api: LoggedProcess | None = None
        self.worker: LoggedProcess | None = None
        self.cp: httpx.Client | None = None
        self.revision = ""

    def checkout(self) -> None:
        """The arm's code: this checkout, or a worktree of its ref."""
        if self.spec.ref is None:
            self.revision = git(REPO_ROOT, "rev-parse", "--short", "HEAD")
            return
        self.code = self.tmp / "code"
        git(REPO_ROOT, "worktree", "add", "--detach", str(self.code), self.spec.ref)
        self.revision = git(self.code, "rev-parse", "--short", "HEAD")

    def run(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "phoneagent.cli", *args],
            env=self.env,
            cwd=self.code,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.strip()

    def up(self, profile: dict[str, Any]) -> None:
        self.checkout()
        self.run("db", "upgrade")
        token = self.run("keys", "create", "--tenant", "bench")
        self.api = LoggedProcess.phoneagent("api", log_path=self.tmp / "api.log", env=self.env, cwd=self.code)
        self.api.wait_for(r"Uvicorn running", timeout=60)
        self.cp = httpx.Client(
            base_url=f"http://127.0.0.1:{API_PORT + self.index}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        agent = self.cp.post("/agents", json={"name": f"bench-{self.spec.label}", **profile})
        agent.raise_for_status()
        trunk = self.cp.post(
            "/trunks/inbound",
            json={"name": self.spec.label, "numbers": [self.number], "allowed_addresses": ["127.0.0.1"]},
        )
        trunk.raise_for_status()
        self.cp.post(
            "/dispatch-rules",
            json={
                "name": self.spec.label,
                "inbound_trunk_id": trunk.json()["id"],
                "agent_profile_id": agent.json()["id"],
            },
        ).raise_for_status()
        self.start_worker()

    def start_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        n = len(list(self.tmp.glob("worker-*.log")))
        self.worker = LoggedProcess.phoneagent(
            "worker", log_path=self.tmp / f"worker-{n}.log", env=self.env, cwd=self.code
        )
        self.worker.wait_for(r"registered worker", timeout=240)

    def idle_pss_mb(self) -> float:
        assert self.worker is not None
        return round(Usage(self.worker.proc.pid).sample_pss_mb(), 1)

    def usage(self) -> Usage:
        """Start sampling the worker's resources (stop with ``finish()``)."""
        assert self.worker is not None
        u = Usage(self.worker.proc.pid)
        u.start()
        return u

    def calls_since(self, since: str) -> list[dict[str, Any]]:
        """The arm's call records created since ``since``, oldest first, with transcripts and events."""
        assert self.cp is not None
        calls = self.cp.get("/calls", params={"limit": 200, "since": since}).json()["items"]
        return [self.cp.get(f"/calls/{c['id']}").json() for c in reversed(calls)]

    def down(self) -> None:
        for proc in (self.worker, self.api):
            if proc is not None:
                proc.stop()
        if self.code is not None:
            git(REPO_ROOT, "worktree", "remove", "--force", str(self.code))


class Usage(threading.Thread):
    """The resident memory (PSS: shared pages split between the processes that share them) and CPU
    time of one worker's whole process tree (its job processes, its shared speech models), sampled
    every half second until :meth:`finish`."""

    def __init__(self, root_pid: int) -> None:
        super().__init__(daemon=True, name="usage")
        self._root = root_pid
        self._done = threading.Event()
        self.pss_mb: list[float] = []
        self.cpu_s_start = self._cpu()
        self.cpu_s = 0.0
        self.started = time.monotonic()
        self.seconds = 0.0

    def _tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self._root)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def _cpu(self) -> float:
        total = 0.0
        for p in self._tree():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        return total

    def sample_pss_mb(self) -> float:
        total = 0
        for p in self._tree():
            with contextlib.suppress(psutil.Error):
                total += p.memory_full_info().pss
        return total / 1e6

    def run(self) -> None:
        while not self._done.wait(0.5):
            self.pss_mb.append(self.sample_pss_mb())

    def finish(self) -> dict[str, float]:
        self._done.set()
        self.join()
        self.seconds = time.monotonic() - self.started
        self.cpu_s = self._cpu() - self.cpu_s_start
        return {
            "pss_mb_max": round(max(self.pss_mb, default=0.0), 1),
            "pss_mb_median": round(statistics.median(self.pss_mb), 1) if self.pss_mb else 0.0,
            "cpu_s": round(self.cpu_s, 2),
            "seconds": round(self.seconds, 2),
        }


def git(where: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(where), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


class Rig:
    """The stack and the arms."""

    def __init__(self, tmp: Path, specs: list[ArmSpec]) -> None:
        if not 1 <= len(specs) <= MAX_ARMS or len({s.label for s in specs}) != len(specs):
            raise ValueError(f"1 to {MAX_ARMS} arms, each with its own label")
        self.tmp = tmp
        # LiveKit's webhooks reach every arm's control plane (each keeps the calls of its own trunk)
        urls = [f"http://127.0.0.1:{API_PORT + i}/webhooks/livekit" for i in range(1, len(specs))]
        self.settings = Settings(
            state_dir=tmp / "state",
            agent_name="phoneagent-bench",
            extra_webhook_urls=urls,
            **PORTS,
        )
        self.stack = Stack(self.settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PHONEAGENT_", "LIVEKIT_"))}
        env.update({f"PHONEAGENT_{k.upper()}": str(v) for k, v in PORTS.items()})
        env.update(PHONEAGENT_STATE_DIR=str(self.settings.state_dir), PHONEAGENT_MAX_CONCURRENT_CALLS="8")
        self.arms = [Arm(spec, i, env, tmp) for i, spec in enumerate(specs)]

    def up(self, profile: dict[str, Any]) -> None:
        self.stack.up(progress=lambda m: print(f"[stack] {m}", flush=True))
        for arm in self.arms:
            arm.up(profile)
            print(f"[arm {arm.spec}] code {arm.revision}, number {arm.number}", flush=True)

    def down(self) -> None:
        for arm in self.arms:
            arm.down()
        self.stack.down(progress=lambda m: print(f"[stack] {m}", flush=True))
