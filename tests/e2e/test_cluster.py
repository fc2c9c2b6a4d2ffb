"""Two of everything on one machine, as a site runs phoneagent on several hosts: two livekit-server
nodes on one Redis, two livekit-sip bridges, one egress, two workers, and two control-plane replicas on
one PostgreSQL, all with the configs `phoneagent stack up` renders. Each half talks to its own node:
bridge 1, worker 1 and control plane 1 to node A; bridge 2, worker 2 and control plane 2 to node B (in
production a load balancer or a Kubernetes Service stands in front of the nodes). livekit-server's
selector puts each room on a node, and a node that does not host a room relays its signalling to the
one that does.

The test checks that calls spread (inbound callers on both bridges, outbound calls through the bridges,
rooms on both nodes, jobs on both workers) and that the background work still happens exactly once with
both replicas live: each campaign contact called once with one outcome, each call one record and one
end reason, each webhook delivered once. It prints the spread it saw.

Its own ports (the suite's moved by ``SHIFT_A``/``SHIFT_B``), state dirs and database."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from phoneagent.config import Settings
from phoneagent.db.engine import make_engine
from phoneagent.stack import ports
from phoneagent.stack.processes import LoggedProcess
from phoneagent.stack.secrets import load_or_create
from phoneagent.stack.services import Stack
from tests.peers.postgres import TempPostgres
from tests.peers.processes import assert_all_gone
from tests.peers.receiver import WebhookReceiver
from tests.peers.sip_phone import BaresipPhone, wait_until
from tests.peers.sipp import SippCallee
from tests.stack_fixtures import (
    E2E_CONTROL_PLANE_ENV,
    PORT_OFFSET,
    STACK_PORTS,
    ControlPlane,
    WorkerProcess,
    new_api_key,
    provision_test_number,
    registered_receiver,
    running_stack,
    settings_env,
    suite_stack_settings,
)

pytestmark = pytest.mark.cluster

# clear of the suite's ports, of the fault tests' (+500) and of each other (RTP 14300-14599 and
# 14700-14999, WebRTC 52300-52349 and 52700-52749 before PORT_OFFSET; the SIP ports clear of the RTP
# ranges of checkouts moved by 3000-5000)
SHIFT_A, SHIFT_B = 1300, 1700
CALLS_PER_WORKER = 4
CONTACTS, CONCURRENCY = 10, 3


@dataclass
class Node:
    """One half of the cluster: a livekit-server node, its livekit-sip bridge, a worker and a
    control-plane replica that reach LiveKit through that node."""

    name: str
    settings: Settings
    stack: Stack
    env: dict[str, str]
    api: LoggedProcess
    worker: WorkerProcess

    @property
    def url(self) -> str:
        return f"http://{self.settings.bind_host}:{self.settings.api_port}"

    def log(self, service: str) -> str:
        return self.stack.paths.logfile(service).read_text(errors="replace")


@dataclass
class Cluster:
    a: Node
    b: Node
    db_url: str
    cp: ControlPlane  # the tenant's key and the test number, through replica A
    hooks: WebhookReceiver

    @property
    def nodes(self) -> tuple[Node, Node]:
        return self.a, self.b


def _node_env(settings: Settings, shared: dict[str, str]) -> dict[str, str]:
    return {
        **settings_env(settings),
        **E2E_CONTROL_PLANE_ENV,
        **shared,
        "PHONEAGENT_MAX_CONCURRENT_CALLS": str(CALLS_PER_WORKER),
    }


def _share_secrets(a: Settings, b: Settings) -> None:
    """Node B's stack renders its configs with node A's keys and Redis password (one cluster)."""
    src, dst = a.state_dir / "secrets.json", b.state_dir / "secrets.json"
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(src.read_text())


@contextlib.contextmanager
def _api(env: dict[str, str], log_path: Path) -> Iterator[LoggedProcess]:
    proc = LoggedProcess.phoneagent("api", log_path=log_path, env=env)
    try:
        proc.wait_for(r"Uvicorn running", timeout=60)
        yield proc
    finally:
        proc.stop()
        assert_all_gone(proc.seen_pids)


@contextlib.contextmanager
def _worker(env: dict[str, str], log_dir: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(env, log_dir).start()
    try:
        yield proc
    finally:
        proc.stop()
        print(f"[worker] logs: {log_dir}")
        assert_all_gone(proc.seen_pids)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres: TempPostgres) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    ports_a = {name: port + SHIFT_A for name, port in STACK_PORTS.items()}
    ports_b = {name: port + SHIFT_B for name, port in STACK_PORTS.items()}
    ports_b["redis_port"] = ports_a["redis_port"]  # one Redis: the bus of both nodes and both bridges
    settings_a = suite_stack_settings(root / "node-a", ports_a)
    settings_b = suite_stack_settings(root / "node-b", ports_b)
    db_url = postgres.create_database("cluster")
    with running_stack(settings_a, "node-a") as stack_a:
        _share_secrets(settings_a, settings_b)
        secrets = load_or_create(stack_a.paths.secrets)
        shared = {
            "PHONEAGENT_DATABASE_URL": db_url,
            "LIVEKIT_API_KEY": secrets.livekit_api_key,
            "LIVEKIT_API_SECRET": secrets.livekit_api_secret,
            "PHONEAGENT_WORKER_SECRET": "cluster-worker-secret",
        }
        env_a, env_b = _node_env(settings_a, shared), _node_env(settings_b, shared)
        for cmd in (["db", "upgrade"],):
            subprocess.run([sys.executable, "-m", "phoneagent.cli", *cmd], env=env_a, check=True, timeout=120)
        token = new_api_key(env_a, "cluster")
        b_only = Stack(settings_b, only=("livekit-server", "livekit-sip"))
        b_only.up(progress=lambda msg: print(f"[node-b] {msg}"))
        b_pids = {s.pid for s in b_only.status() if s.pid}
        try:
            with (
                _api(env_a, root / "api-a.log") as api_a,
                _api(env_b, root / "api-b.log") as api_b,
                _worker(env_a, root / "worker-a") as worker_a,
                _worker(env_b, root / "worker-b") as worker_b,
            ):
                a = Node("A", settings_a, stack_a, env_a, api_a, worker_a)
                b = Node("B", settings_b, b_only, env_b, api_b, worker_b)
                headers = {"Authorization": f"Bearer {token}"}
                cp = ControlPlane(a.url, headers, *provision_test_number(a.url, headers, settings_a), env_a)
                with registered_receiver(cp) as hooks:
                    yield Cluster(a, b, db_url, cp, hooks)
        finally:
            b_only.down(progress=lambda msg: print(f"[node-b] {msg}"))
            assert_all_gone(b_pids)


# ---- what the logs say ---------------------------------------------------------------------------


def _node_id(livekit_log: str) -> str:
    found = re.findall(r'starting LiveKit server\t\{.*?"nodeID": "(ND_\w+)"', livekit_log)
    assert found, "livekit-server logged no node ID"
    return str(found[-1])


def _rooms_hosted(livekit_log: str, node_id: str) -> set[str]:
    """Rooms whose RTC sessions this node ran (livekit-server logs each on the room's own node)."""
    rooms = set()
    for line in livekit_log.splitlines():
        if "starting RTC session" in line and f'"nodeID": "{node_id}"' in line:
            m = re.search(r'"room": "([^"]+)"', line)
            if m:
                rooms.add(m.group(1))
    return rooms


def _jobs(worker: WorkerProcess) -> set[str]:
    rooms = set()
    for line in worker.text().splitlines():
        if line.startswith("{") and '"received job request"' in line:
            rooms.add(json.loads(line)["room"])
    return rooms


def _bridged(sip_log: str, rooms: set[str]) -> set[str]:
    return {room for room in rooms if room in sip_log}


# ---- the test ------------------------------------------------------------------------------------


def _free_udp(host: str, start: int) -> int:
    return next(p for p in range(start, start + 200, 2) if ports.is_free(host, p, "udp"))


def _inbound_round(c: Cluster, tmp_path: Path, round_: int) -> None:
    """One caller on each bridge at once; each hears the agent's greeting, then hangs up."""
    phones = []
    try:
        for i, node in enumerate(c.nodes):
            base = 40600 + PORT_OFFSET + 50 * (2 * round_ + i)
            phone = BaresipPhone(
                tmp_path / f"phone-{round_}-{node.name}", rtp_ports=(base, base + 24)
            ).start()
            phones.append(phone)
            s = node.settings
            phone.start_dial(f"sip:{s.dev_number}@{s.bind_host}:{s.sip_port}")
        for phone in phones:
            phone.wait_for(r"Call established", timeout=60)
            phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.0, timeout=90)
            phone.hangup()
    finally:
        for phone in phones:
            phone.close()


def _all_calls(url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    cursor = None
    with httpx.Client(base_url=url, headers=headers, timeout=30) as h:
        while True:
            page = h.get("/calls", params={"limit": 200, **({"cursor": cursor} if cursor else {})}).json()
            calls += page["items"]
            if not (cursor := page["next_cursor"]):
                return calls


def test_calls_spread_over_both_nodes_bridges_and_workers_and_background_work_runs_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    c = cluster
    a, b = c.nodes
    assert "leads the background work" in (c.a.api.log_path.read_text())
    assert "leads the background work" not in (c.b.api.log_path.read_text())

    # inbound: two rounds of one caller on each bridge
    for round_ in range(2):
        _inbound_round(c, tmp_path, round_)

    # outbound: a campaign created through replica B (the one not leading), run by the leader
    host = a.settings.bind_host
    headers_b = c.cp.headers
    with (
        SippCallee(
            "uas_answer_then_hangup",
            workdir=tmp_path / "callee",
            port=_free_udp(host, 36300 + PORT_OFFSET),
            host=host,
            hold_ms=4000,
        ) as callee,
        httpx.Client(base_url=b.url, headers=headers_b, timeout=30) as api_b,
    ):
        out = {"name": "o", "address": callee.address, "numbers": ["+15550100"], "max_concurrent_calls": 50}
        r = api_b.post("/trunks/outbound", json=out)
        assert r.status_code == 201, r.text
        contacts = [{"number": f"+1415555{i:04d}"} for i in range(CONTACTS)]
        r = api_b.post(
            "/campaigns",
            json={
                "name": "cluster",
                "agent_profile_id": c.cp.agent_id,
                "outbound_trunk_id": r.json()["id"],
                "concurrency": CONCURRENCY,
                "window_start": "00:00",
                "window_end": "00:00",
                "contacts": contacts,
            },
        )
        assert r.status_code == 201, r.text
        campaign = r.json()["id"]

        def completed() -> bool:
            return bool(api_b.get(f"/campaigns/{campaign}").json()["status"] == "completed")

        wait_until(completed, timeout=240, what="the campaign completed", interval=0.5)
        invites = re.findall(r"INVITE sip:(\+?\d+)@.*?\nCall-I[Dd]: (\S+)", callee.trace(), flags=re.DOTALL)

    calls = _all_calls(b.url, headers_b)

    def all_ended() -> bool:
        nonlocal calls
        calls = _all_calls(b.url, headers_b)
        return all(x["status"] == "ended" for x in calls)

    wait_until(all_ended, timeout=60, what="every call's record ended")
    inbound = [x for x in calls if x["direction"] == "inbound"]
    outbound = [x for x in calls if x["direction"] == "outbound"]

    # ---- the spread ----
    rooms_in = {x["room_name"] for x in inbound}
    rooms_out = {x["room_name"] for x in outbound}
    lk = {n.name: n.log("livekit-server") for n in c.nodes}
    hosted = {n.name: _rooms_hosted(lk[n.name], _node_id(lk[n.name])) for n in c.nodes}
    sip = {n.name: n.log("livekit-sip") for n in c.nodes}
    jobs = {n.name: _jobs(n.worker) for n in c.nodes}
    every = rooms_in | rooms_out
    print("\nspread over the cluster:")
    for n in c.nodes:
        bridged_in, bridged_out = _bridged(sip[n.name], rooms_in), _bridged(sip[n.name], rooms_out)
        print(
            f"  half {n.name}: rooms hosted {len(hosted[n.name] & every)}, inbound bridged "
            f"{len(bridged_in)}, outbound bridged {len(bridged_out)}, jobs {len(jobs[n.name] & every)}"
        )
    assert len(inbound) == 4 and len(outbound) == CONTACTS, [(x["direction"], x["to_number"]) for x in calls]
    # every room on exactly one node, and both nodes host some
    assert all(len([n for n in hosted if room in hosted[n]]) == 1 for room in every), hosted
    assert all(hosted[n] & every for n in hosted), hosted
    # each bridge took the inbound callers sent to it
    for n in c.nodes:
        assert len(_bridged(sip[n.name], rooms_in)) == 2, (n.name, rooms_in)
    # each outbound call went through exactly one bridge
    assert all(len([n for n in sip if room in sip[n]]) == 1 for room in rooms_out), rooms_out
    # every call had its agent, and both workers took jobs
    assert every <= jobs["A"] | jobs["B"] and not jobs["A"] & jobs["B"], jobs
    assert jobs["A"] & every and jobs["B"] & every, jobs

    # ---- the background work ran once ----
    numbers = [i for i, _ in invites]
    dialed = collections.Counter({(num, cid) for num, cid in invites})
    per_number = collections.Counter(num for num, _ in dialed)
    assert sorted(per_number) == sorted(x["number"] for x in contacts), per_number
    assert set(per_number.values()) == {1}, per_number  # each contact called once (one Call-ID)
    assert len(numbers) >= CONTACTS
    engine = make_engine(c.db_url)
    try:
        with engine.connect() as db:
            rows = db.execute(
                sa.text(
                    "select number, status, attempts, last_call_id, last_end_reason from campaign_contacts "
                    "where campaign_id = :c"
                ),
                {"c": campaign},
            ).all()
    finally:
        engine.dispose()
    assert len(rows) == CONTACTS
    assert {(r.status, r.attempts, r.last_end_reason) for r in rows} == {("done", 1, "customer_hangup")}, rows
    assert {r.last_call_id for r in rows} == {x["id"] for x in outbound}
    assert {(x["status"], x["end_reason"]) for x in outbound} == {("ended", "customer_hangup")}, outbound
    assert {x["end_reason"] for x in inbound} == {"customer_hangup"}, inbound

    # each call's events and its end reached the tenant's endpoint, each delivery once
    def every_end_delivered() -> bool:
        ended = {r.body["data"]["id"] for r in c.hooks.of_type("call.ended")}
        return ended >= {x["id"] for x in calls}

    wait_until(every_end_delivered, timeout=60, what="a call.ended webhook for every call")
    got = collections.Counter(r.event_id for r in c.hooks.accepted())
    assert all(n == 1 for n in got.values()), {e: n for e, n in got.items() if n > 1}
    assert all(r.signature_ok for r in c.hooks.accepted())
    shutil.rmtree(tmp_path / "callee", ignore_errors=True)
