"""The real local stack for the integration and e2e tiers: Redis, livekit-server, livekit-sip and a
phoneagent worker, started on loopback on test ports (so a running dev stack is not disturbed)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from phoneagent.config import Settings
from phoneagent.stack.services import Stack
from phoneagent.telephony.dev_routing import DevRouting, ensure_dev_routing
from phoneagent.testing.processes import LoggedProcess, assert_all_gone

TEST_PORTS = {
    "redis_port": 16389,
    "livekit_port": 17880,
    "livekit_rtc_tcp_port": 17881,
    "livekit_rtc_udp_start": 51000,
    "livekit_rtc_udp_end": 51049,
    "sip_port": 15060,
    "sip_rtp_start": 11000,
    "sip_rtp_end": 11049,
    "sip_health_port": 18089,
    "worker_http_port": 18081,
    "api_port": 18000,
}


def settings_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHONEAGENT_", "LIVEKIT_"))}
    for key in ("state_dir", "cache_dir", "agent_name", "dev_number", "greeting", *TEST_PORTS):
        env[f"PHONEAGENT_{key.upper()}"] = str(getattr(settings, key))
    return env


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        state_dir=tmp_path_factory.mktemp("stack-state"),
        agent_name="phoneagent-test",
        **TEST_PORTS,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def stack(stack_settings: Settings) -> Iterator[Stack]:
    st = Stack(stack_settings)
    st.up(progress=lambda msg: print(f"[stack] {msg}"))
    pids = {s.pid for s in st.status() if s.pid}
    yield st
    st.down(progress=lambda msg: print(f"[stack] {msg}"))
    assert_all_gone(pids)


@pytest.fixture(scope="session")
def dev_routing(stack: Stack) -> DevRouting:
    return asyncio.run(ensure_dev_routing(stack.settings))


@pytest.fixture(scope="session")
def worker(
    stack: Stack, dev_routing: DevRouting, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoggedProcess]:
    log_path: Path = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = LoggedProcess.phoneagent("worker", log_path=log_path, env=settings_env(stack.settings))
    try:
        proc.wait_for(r"registered worker", timeout=120)
        yield proc
    finally:
        proc.stop()
        print(f"[worker] log: {log_path}")
        assert_all_gone(proc.seen_pids)
