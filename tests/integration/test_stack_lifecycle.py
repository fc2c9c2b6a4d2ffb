"""`phoneagent stack` against the real processes: up, idempotent up, status, faults, down.

Runs on its own ports so that it does not disturb the session stack of the e2e tier.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from phoneagent.config import Settings
from phoneagent.errors import PortInUseError, ServiceStartError, TelephonyError
from phoneagent.stack.services import Service, Stack
from phoneagent.telephony.sip import InboundSpec, LiveKitSip, RuleSpec, owner_tag
from tests.peers.processes import alive, assert_all_gone
from tests.peers.sip_phone import wait_until
from tests.stack_fixtures import PORT_OFFSET

PORTS = {  # moved by PHONEAGENT_TEST_PORT_OFFSET like every test port
    "redis_port": 26389,
    "livekit_port": 27880,
    "livekit_rtc_tcp_port": 27881,
    "livekit_rtc_udp_start": 52000,
    "livekit_rtc_udp_end": 52019,
    "sip_port": 25060,
    "sip_rtp_start": 12000,
    "sip_rtp_end": 12019,
    "livekit_prometheus_port": 26789,
}
PORTS = {name: port + PORT_OFFSET for name, port in PORTS.items()}


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(state_dir=tmp_path / "state", **{**PORTS, **extra})  # type: ignore[arg-type]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    st = Stack(_settings(tmp_path))
    yield st
    st.down(progress=lambda _m: None)


def test_up_status_down(stack: Stack) -> None:
    messages: list[str] = []
    stack.up(progress=messages.append)
    states = stack.status()
    assert [s.name for s in states] == ["redis", "livekit-server", "livekit-sip", "egress"]
    assert all(s.healthy for s in states), states
    pids = {s.pid for s in states if s.pid}
    assert len(pids) == 4
    assert stat.S_IMODE(stack.paths.secrets.stat().st_mode) == 0o600

    again: list[str] = []
    stack.up(progress=again.append)
    assert all("already running" in m for m in again), again
    assert {s.pid for s in stack.status()} == pids

    stack.down(progress=messages.append)
    assert_all_gone(pids)
    assert not any(stack.paths.run.glob("*.pid"))
    assert not any(s.running for s in stack.status())


def test_a_dead_egress_is_started_again_by_up(stack: Stack) -> None:
    stack.up(progress=lambda _m: None)
    egress = {s.name: s for s in stack.status()}["egress"]
    assert egress.healthy and egress.pid
    os.kill(egress.pid, 9)  # egress died (its pid file stays behind)
    wait_gone = [s for s in stack.status() if s.name == "egress"][0]
    assert not wait_gone.running and not wait_gone.healthy
    messages: list[str] = []
    stack.up(progress=messages.append)
    assert "egress: removed a stale pid file (its process is gone)" in messages
    assert [m for m in messages if m.startswith("egress: up")], messages
    again = {s.name: s for s in stack.status()}["egress"]
    assert again.healthy and again.pid != egress.pid


def test_port_in_use_names_the_port_and_the_process_and_starts_nothing(stack: Stack) -> None:
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT of earlier tests
        blocker.bind(("127.0.0.1", PORTS["livekit_port"]))
        blocker.listen()
        with pytest.raises(PortInUseError) as err:
            stack.up(progress=lambda _m: None)
    assert f"TCP port {PORTS['livekit_port']}" in err.value.message
    assert f"pid {os.getpid()} (" in err.value.message
    # redis had started before the conflict: it was stopped again
    assert not any(s.running for s in stack.status())


def test_cli_reports_port_in_use_in_one_line_without_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHONEAGENT_")}
    env.update({f"PHONEAGENT_{k.upper()}": str(v) for k, v in PORTS.items()})
    env["PHONEAGENT_STATE_DIR"] = str(tmp_path / "state")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocker:
        blocker.bind(("127.0.0.1", PORTS["sip_port"]))
        try:
            done = subprocess.run(
                [sys.executable, "-m", "phoneagent.cli", "stack", "up"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            subprocess.run(
                [sys.executable, "-m", "phoneagent.cli", "stack", "down"],
                env=env,
                capture_output=True,
                timeout=60,
            )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"livekit-sip needs UDP port {PORTS['sip_port']}, held by pid {os.getpid()}" in done.stderr
    assert "hint:" in done.stderr


def test_stale_pid_file_is_removed_and_the_service_started(stack: Stack) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stack.paths.run.mkdir(parents=True, exist_ok=True)
    stack.paths.pidfile("redis").write_text(json.dumps({"pid": dead.pid, "exe": "/usr/bin/redis-server"}))
    messages: list[str] = []
    stack.up(progress=messages.append)
    assert any("redis: removed a stale pid file" in m for m in messages)
    assert all(s.healthy for s in stack.status())


def test_down_never_kills_a_process_that_is_not_ours(stack: Stack) -> None:
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        stack.paths.run.mkdir(parents=True, exist_ok=True)
        # a pid file that points at a live process of another program (pid reuse)
        stack.paths.pidfile("livekit-server").write_text(
            json.dumps({"pid": stranger.pid, "exe": str(stack.paths.cache / "bin" / "livekit-server")})
        )
        stack.down(progress=lambda _m: None)
        assert alive({stranger.pid})
    finally:
        stranger.kill()
        stranger.wait()


class _OneServiceStack(Stack):
    """The real start/stop machinery with a single given service: the seam for start faults."""

    def __init__(self, settings: Settings, service: Service) -> None:
        super().__init__(settings)
        self._service = service

    def services(self, *, install_missing: bool = False) -> list[Service]:
        return [self._service]


def test_service_that_dies_during_start_reports_its_own_last_log_lines(tmp_path: Path) -> None:
    svc = Service(
        name="flaky",
        argv=["/bin/sh", "-c", "echo 'fatal: cannot open database'; exit 3"],
        health=lambda: False,
    )
    st = _OneServiceStack(_settings(tmp_path), svc)
    with pytest.raises(ServiceStartError) as err:
        st.up(progress=lambda _m: None)
    assert "flaky exited with code 3" in err.value.message
    assert "fatal: cannot open database" in err.value.message
    assert not st.paths.pidfile("flaky").exists()


def test_service_that_never_gets_healthy_is_stopped_after_the_deadline(tmp_path: Path) -> None:
    svc = Service(name="stuck", argv=["/bin/sleep", "300"], health=lambda: False)
    st = _OneServiceStack(_settings(tmp_path, health_timeout_s=1.5), svc)
    with pytest.raises(ServiceStartError, match="did not become healthy within 2 s"):
        st.up(progress=lambda _m: None)
    assert not st.paths.pidfile("stuck").exists()
    out = subprocess.run(["pgrep", "-f", "^/bin/sleep 300$"], capture_output=True, text=True)
    assert out.stdout.strip() == ""


def _sip_ids(lk: LiveKitSip) -> set[str]:
    try:
        return {o.id for o in lk.list_all()}
    except TelephonyError:  # LiveKit still reconnecting to a Redis that just came back
        return set()


def test_sip_trunks_and_rules_survive_a_stack_restart_and_a_redis_killed_9(stack: Stack) -> None:
    stack.up(progress=lambda _m: None)
    lk = LiveKitSip(stack.settings)
    spec = InboundSpec(name="keep", numbers=["+14155550177"], allowed_addresses=["127.0.0.1/32"])
    trunk = lk.create_inbound(spec, owner_tag("t1", "itr_keep"))
    rule = lk.create_rule(
        RuleSpec(name="keep", kind="individual", room_prefix="dsp_keep", trunk_ids=[trunk], agent_name="a"),
        owner_tag("t1", "dsp_keep"),
    )
    stack.down(progress=lambda _m: None)
    stack.up(progress=lambda _m: None)
    assert {trunk, rule} <= _sip_ids(lk), "a restart lost LiveKit's SIP trunks and dispatch rules"

    later = lk.create_inbound(
        InboundSpec(name="later", numbers=["+14155550178"], allowed_addresses=["127.0.0.1/32"]),
        owner_tag("t1", "itr_later"),
    )
    aof = stack.settings.state_dir / "appendonlydir"
    wait_until(
        lambda: any(later.encode() in f.read_bytes() for f in aof.glob("*.aof")),
        timeout=10,
        what="the new trunk in Redis's append-only file",
    )
    redis = next(s for s in stack.status() if s.name == "redis")
    assert redis.pid is not None
    os.kill(redis.pid, signal.SIGKILL)
    wait_until(
        lambda: not next(s for s in stack.status() if s.name == "redis").running,
        timeout=10,
        what="redis gone",
    )
    stack.up(progress=lambda _m: None)  # starts what is not running: Redis
    wait_until(
        lambda: {trunk, rule, later} <= _sip_ids(lk), timeout=30, what="every SIP object back on LiveKit"
    )


def test_every_port_the_stack_listens_on_is_on_loopback(stack: Stack) -> None:
    """The local stack is loopback-only: no process of it listens on another address (livekit-sip's
    HTTP health server, which binds every interface, stays off; its health is a SIP OPTIONS)."""
    stack.up(progress=lambda _m: None)
    listening = []
    for state in stack.status():
        assert state.pid is not None, state
        for proc in [psutil.Process(state.pid), *psutil.Process(state.pid).children(recursive=True)]:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN or (conn.type == socket.SOCK_DGRAM and not conn.raddr):
                    listening.append((state.name, conn.laddr.ip, conn.laddr.port))
    assert listening, "no listening sockets found: the check would prove nothing"
    assert {name for name, _, _ in listening} >= {"redis", "livekit-server", "livekit-sip"}, listening
    outside = [(n, ip, port) for n, ip, port in listening if not ipaddress.ip_address(ip).is_loopback]
    assert not outside, outside
