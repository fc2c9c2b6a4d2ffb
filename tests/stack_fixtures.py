"""The real local stack for the integration and e2e tiers: Redis, livekit-server, livekit-sip and a
phoneagent worker, started on loopback on test ports (so a running dev stack is not disturbed)."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

import httpx
import pytest

from phoneagent.config import Settings
from phoneagent.stack.services import Stack
from tests.peers.processes import LoggedProcess, assert_all_gone
from tests.peers.receiver import WebhookReceiver

# PHONEAGENT_TEST_PORT_OFFSET moves every test port, so that two checkouts can run their suites at once
# (with offset 4000 no port, nor the RTP range, lands on one of the unmoved suite's)
PORT_OFFSET = int(os.environ.get("PHONEAGENT_TEST_PORT_OFFSET", "0"))
TEST_PORTS = {
    name: port + PORT_OFFSET
    for name, port in {
        "redis_port": 16389,
        "livekit_port": 17880,
        "livekit_rtc_tcp_port": 17881,
        "livekit_rtc_udp_start": 51000,
        "livekit_rtc_udp_end": 51049,
        "sip_port": 15060,
        "sip_rtp_start": 13000,
        "sip_rtp_end": 13299,
        "worker_http_port": 18081,
        "worker_metrics_port": 18082,
        "livekit_prometheus_port": 16789,
        "api_port": 18000,
        # not the stack's: the S3-compatible server (MinIO) of the recording storage tests
        "minio_port": 19000,
        # nor this: the Prometheus server of the scrape test (tests/e2e/test_metrics_scrape.py)
        "prometheus_port": 19090,
    }.items()
}
STACK_PORTS = {name: port for name, port in TEST_PORTS.items() if name in Settings.model_fields}


def settings_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHONEAGENT_", "LIVEKIT_"))}
    for key in ("state_dir", "cache_dir", "agent_name", "dev_number", "greeting", *STACK_PORTS):
        env[f"PHONEAGENT_{key.upper()}"] = str(getattr(settings, key))
    env["PHONEAGENT_WEBHOOK_ALLOWED_NETWORKS"] = ",".join(settings.webhook_allowed_networks)
    env["PHONEAGENT_WEBHOOK_REQUIRE_HTTPS"] = str(settings.webhook_require_https).lower()
    env["PHONEAGENT_TRUNK_ALLOWED_NETWORKS"] = ",".join(settings.trunk_allowed_networks)
    env["PHONEAGENT_CALL_NUMBER_TYPES_DENIED"] = ",".join(settings.call_number_types_denied)
    if settings.sip_tls:  # the control plane takes inbound trunks that require SRTP only with TLS on
        env["PHONEAGENT_SIP_TLS"] = "true"
        for key in ("sip_tls_port", "sip_tls_cert_file", "sip_tls_key_file", "sip_tls_ca_file"):
            if getattr(settings, key) is not None:
                env[f"PHONEAGENT_{key.upper()}"] = str(getattr(settings, key))
    return env


# a second control plane (ApiProcess, one at a time) listens here and gets LiveKit's webhooks too
SPARE_API_PORT = 18100 + PORT_OFFSET


def suite_stack_settings(state_dir: Path, ports: dict[str, int], **extra: Any) -> Settings:
    """Settings for a stack of the suite on ``ports`` (names as in ``STACK_PORTS``)."""
    return Settings(
        state_dir=state_dir,
        agent_name="phoneagent-test",
        # the suite's webhook receivers listen on loopback over plain http: the operator settings that
        # allow them (the address guard's own tests run with the defaults, which refuse them)
        webhook_allowed_networks=["127.0.0.0/8"],
        webhook_require_https=False,
        # the suite's SIP callees (sipp, baresip) listen on loopback: allowed as a private PBX would be
        trunk_allowed_networks=["127.0.0.0/8"],
        # the suite's callees have made-up numbers (+1555...), of no known type: allowed as an operator
        # may; premium-rate and shared-cost numbers stay refused
        call_number_types_denied=["premium_rate", "shared_cost"],
        **ports,  # type: ignore[arg-type]
        **extra,
    )


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return suite_stack_settings(
        tmp_path_factory.mktemp("stack-state"),
        STACK_PORTS,
        extra_webhook_urls=[f"http://127.0.0.1:{SPARE_API_PORT}/webhooks/livekit"],
    )


@contextlib.contextmanager
def running_stack(settings: Settings, label: str = "stack") -> Iterator[Stack]:
    """``stack up`` on ``settings``, then ``stack down``: every service process is gone afterwards,
    also one a test restarted."""
    st = Stack(settings)
    st.up(progress=lambda msg: print(f"[{label}] {msg}"))
    pids = {s.pid for s in st.status() if s.pid}
    try:
        yield st
    finally:
        pids |= {s.pid for s in st.status() if s.pid}
        st.down(progress=lambda msg: print(f"[{label}] {msg}"))
        assert_all_gone(pids)


@pytest.fixture(scope="session")
def stack(stack_settings: Settings) -> Iterator[Stack]:
    with running_stack(stack_settings) as st:
        yield st


# the e2e control plane: a lost worker is noticed within seconds, and webhooks retry quickly
E2E_CONTROL_PLANE_ENV = {
    "PHONEAGENT_WORKER_LOST_AFTER_S": "6",
    "PHONEAGENT_SWEEP_INTERVAL_S": "1",
    "PHONEAGENT_WEBHOOK_RETRY_BASE_S": "0.5",
    # call.ended keeps the default grace (3 s) for the worker's last turns: the value 1 here had no
    # effect until the setting was wired to the deliverer, so the e2e tests were written against 3 s
    # a dead egress is noticed within seconds, and a track egress outliving its call is stopped soon
    "PHONEAGENT_RECORDING_PROBE_INTERVAL_S": "2",
    "PHONEAGENT_RECORDING_STOP_AFTER_S": "2",
    "PHONEAGENT_RECORDING_LOST_AFTER_S": "10",
}

# differs from the worker's built-in greeting: hearing it proves the profile came from the control plane
PROFILE_GREETING = "Hello, thank you for calling Acme Dental. How can I help you today?"


@dataclass(frozen=True)
class ControlPlane:
    url: str
    headers: dict[str, str]
    agent_id: str
    trunk_id: str
    rule_id: str
    env: dict[str, str] = field(default_factory=dict)  # its settings, for `phoneagent` commands on its DB

    def new_tenant_key(self, tenant: str) -> dict[str, str]:
        """Headers with a key of another tenant (made by `phoneagent keys create`, as an operator would)."""
        return {"Authorization": f"Bearer {new_api_key(self.env, tenant)}"}


def provision_test_number(url: str, headers: dict[str, str], settings: Settings) -> tuple[str, str, str]:
    """The test number through a control plane's API: agent profile, inbound trunk (calls from
    ``bind_host``), dispatch rule; returns their ids."""
    with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
        agent = c.post("/agents", json={"name": "e2e", "greeting": PROFILE_GREETING})
        trunk = c.post(
            "/trunks/inbound",
            json={
                "name": "e2e-in",
                "numbers": [settings.dev_number],
                "allowed_addresses": [settings.bind_host],
            },
        )
        rule = c.post(
            "/dispatch-rules",
            json={
                "name": "e2e",
                "inbound_trunk_id": trunk.json()["id"],
                "agent_profile_id": agent.json()["id"],
            },
        )
        for r in (agent, trunk, rule):
            assert r.status_code == 201, r.text
    return agent.json()["id"], trunk.json()["id"], rule.json()["id"]


def new_api_key(env: dict[str, str], tenant: str) -> str:
    """`phoneagent keys create` on the database of ``env``, as an operator would."""
    cmd = [sys.executable, "-m", "phoneagent.cli", "keys", "create", "--tenant", tenant]
    return subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout.strip()


@contextlib.contextmanager
def running_control_plane(settings: Settings, work_dir: Path) -> Iterator[ControlPlane]:
    """`phoneagent api` as a real process on its own SQLite file in ``work_dir``, receiving the stack's
    signed webhooks, with the test number provisioned through its API (trunk -> dispatch rule -> agent
    profile)."""
    env = settings_env(settings)
    env["PHONEAGENT_DATABASE_URL"] = f"sqlite:///{work_dir}/phoneagent.db"
    env.update(E2E_CONTROL_PLANE_ENV)
    cmd = [sys.executable, "-m", "phoneagent.cli", "db", "upgrade"]
    subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=True)
    token = new_api_key(env, "e2e")
    proc = LoggedProcess.phoneagent("api", log_path=work_dir / "api.log", env=env)
    try:
        proc.wait_for(r"Uvicorn running", timeout=60)
        url = f"http://{settings.bind_host}:{settings.api_port}"
        h = {"Authorization": f"Bearer {token}"}
        yield ControlPlane(url, h, *provision_test_number(url, h, settings), env)
    finally:
        proc.stop()
        assert_all_gone(proc.seen_pids)


@pytest.fixture(scope="session")
def control_plane(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with running_control_plane(stack.settings, tmp_path_factory.mktemp("cp")) as cp:
        yield cp


@contextlib.contextmanager
def registered_receiver(cp: ControlPlane, events: list[str] | None = None) -> Iterator[WebhookReceiver]:
    """A webhook receiver registered as the e2e tenant's endpoint (``events``: every type if None)."""
    body: dict[str, Any] = {"url": ""}
    if events is not None:
        body["events"] = events
    with WebhookReceiver() as rx, httpx.Client(base_url=cp.url, headers=cp.headers) as c:
        r = c.post("/webhook-endpoints", json={**body, "url": rx.url})
        assert r.status_code == 201, r.text
        rx.secret = r.json()["secret"]
        try:
            yield rx
        finally:
            c.delete(f"/webhook-endpoints/{r.json()['id']}")


class PhoneagentProcess:
    """A `phoneagent` command (``worker``, ``api``) that a test may kill (a crash) and start again; each
    start logs to its own file in ``log_dir`` and is ready once its log says ``ready``."""

    command = "worker"
    ready = r"registered worker"
    ready_timeout_s = 120.0

    def __init__(self, env: dict[str, str], log_dir: Path, name: str = "") -> None:
        self.env, self.log_dir = env, log_dir
        self.name = name or self.command
        self.proc: LoggedProcess | None = None
        self.starts = 0
        self.seen_pids: set[int] = set()

    def start(self) -> Self:
        """Start it; one that still runs (a test failed before its kill) is stopped first."""
        self.stop()
        self.starts += 1
        log_path = self.log_dir / f"{self.name}-{self.starts}.log"
        self.proc = LoggedProcess.phoneagent(self.command, log_path=log_path, env=self.env)
        self.proc.wait_for(self.ready, timeout=self.ready_timeout_s)
        self.seen_pids |= self.proc.seen_pids
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.seen_pids |= self.proc.seen_pids

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.seen_pids |= self.proc.seen_pids

    def text(self) -> str:
        logs = sorted(self.log_dir.glob(f"{self.name}-*.log"))
        return "\n".join(p.read_text(errors="replace") for p in logs)


class WorkerProcess(PhoneagentProcess):
    """`phoneagent worker` for the e2e session."""


class ApiReplica(PhoneagentProcess):
    """`phoneagent api`, one control-plane replica."""

    command = "api"
    ready = r"Uvicorn running"
    ready_timeout_s = 60.0


P = TypeVar("P", bound=PhoneagentProcess)


@contextlib.contextmanager
def running(proc: P) -> Iterator[P]:
    """``proc`` started, then stopped: every process it ran is gone afterwards."""
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        print(f"[{proc.name}] logs: {proc.log_dir}")
        assert_all_gone(proc.seen_pids)


def running_worker(settings: Settings, log_dir: Path) -> contextlib.AbstractContextManager[WorkerProcess]:
    return running(WorkerProcess(settings_env(settings), log_dir))


@pytest.fixture(scope="session")
def worker(
    stack: Stack, control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    with running_worker(stack.settings, tmp_path_factory.mktemp("worker")) as proc:
        yield proc


@dataclass
class ApiProcess:
    """`phoneagent api` as a real process on its own database and the spare port (where LiveKit's
    webhooks reach it too), restartable (crash tests). One at a time."""

    env: dict[str, str]
    log_dir: Path
    url: str
    headers: dict[str, str]
    proc: LoggedProcess | None = None
    starts: int = 0

    @classmethod
    def create(cls, settings: Settings, db_url: str, log_dir: Path, **extra_env: str) -> ApiProcess:
        port = SPARE_API_PORT
        env = {
            **settings_env(settings),
            "PHONEAGENT_DATABASE_URL": db_url,
            "PHONEAGENT_API_PORT": str(port),
            **extra_env,
        }
        run = functools.partial(
            subprocess.run, env=env, capture_output=True, text=True, timeout=120, check=True
        )
        run([sys.executable, "-m", "phoneagent.cli", "db", "upgrade"])
        token = run(
            [sys.executable, "-m", "phoneagent.cli", "keys", "create", "--tenant", "t"]
        ).stdout.strip()
        return cls(env, log_dir, f"http://{settings.bind_host}:{port}", {"Authorization": f"Bearer {token}"})

    def start(self) -> ApiProcess:
        self.starts += 1
        self.proc = LoggedProcess.phoneagent(
            "api", log_path=self.log_dir / f"api-{self.starts}.log", env=self.env
        )
        self.proc.wait_for(r"Uvicorn running", timeout=60)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            assert_all_gone(self.proc.seen_pids)
