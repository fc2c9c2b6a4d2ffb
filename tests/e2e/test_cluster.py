"""Two of everything on one machine, as a site runs phoneagent on several hosts: two livekit-server
nodes on one Redis, two livekit-sip bridges, one egress, two workers, and two control-plane replicas on
one PostgreSQL, all with the configs `phoneagent stack up` renders. The bridges, egress, the workers and
the replicas reach LiveKit through one front address (``PHONEAGENT_LIVEKIT_FRONT_URL``), a loopback TCP
balancer in front of both nodes, as a load balancer or a Kubernetes Service is in production; the
workers and LiveKit's webhooks reach the control plane through another in front of both replicas.
livekit-server's selector puts each room on a node, and a node that does not host a room relays its
signalling to the one that does.

The tests check that calls spread (inbound callers on both bridges, outbound calls through the bridges,
rooms on both nodes, jobs on both workers) and that the background work still happens exactly once with
both replicas live: each campaign contact called once with one outcome, each call one record and one
end reason, each webhook delivered once. Then, each during a campaign of 30 calls at concurrency 6, a
worker, the leading replica and a livekit-server node are killed with SIGKILL. Each test prints what it
saw and how long each kill took to be noticed.

Its own ports (the suite's moved by ``SHIFT_A``/``SHIFT_B``), state dirs and database."""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import sqlalchemy as sa

from phoneagent.config import Settings
from phoneagent.db.engine import make_engine
from phoneagent.stack import ports
from phoneagent.stack.secrets import load_or_create
from phoneagent.stack.services import Stack
from tests.peers.balancer import Balancer
from tests.peers.postgres import TempPostgres
from tests.peers.processes import assert_all_gone
from tests.peers.receiver import WebhookReceiver
from tests.peers.sip_phone import BaresipPhone, wait_until
from tests.peers.sipp import SippCallee
from tests.stack_fixtures import (
    E2E_CONTROL_PLANE_ENV,
    PORT_OFFSET,
    STACK_PORTS,
    ApiReplica,
    ControlPlane,
    WorkerProcess,
    new_api_key,
    provision_test_number,
    registered_receiver,
    running,
    running_stack,
    settings_env,
    suite_stack_settings,
)

pytestmark = pytest.mark.cluster

# clear of the suite's ports, of the fault tests' (+500) and of each other (RTP 14300-14599 and
# 14700-14999, WebRTC 52300-52349 and 52700-52749 before PORT_OFFSET; the SIP ports clear of the RTP
# ranges of checkouts moved by 3000-5000)
SHIFT_A, SHIFT_B = 1300, 1700
# room for a campaign's 6 calls and the job processes of calls just ended on one worker alone
CALLS_PER_WORKER = 12
WORKER_LOST_AFTER_S = 12
CONTACTS, CONCURRENCY = 10, 3


@dataclass
class Node:
    """One half of the cluster: a livekit-server node, a livekit-sip bridge, a worker and a
    control-plane replica (the last three reach whichever node the front hands them)."""

    name: str
    settings: Settings
    stack: Stack
    env: dict[str, str]
    api: ApiReplica
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
    front: Balancer  # in front of both replicas: workers, LiveKit's webhooks and the tests go through it

    @property
    def nodes(self) -> tuple[Node, Node]:
        return self.a, self.b

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.front.url, headers=self.cp.headers, timeout=30)


def _node_env(settings: Settings, shared: dict[str, str]) -> dict[str, str]:
    return {
        **settings_env(settings),
        **E2E_CONTROL_PLANE_ENV,
        **shared,
        "PHONEAGENT_MAX_CONCURRENT_CALLS": str(CALLS_PER_WORKER),
        # a worker started again takes a job before it has a process ready for it: on this 2-core
        # machine under a campaign its agent joined 8 s later, past the suite's usual 6 s
        "PHONEAGENT_WORKER_LOST_AFTER_S": str(WORKER_LOST_AFTER_S),
    }


def _share_secrets(a: Settings, b: Settings) -> None:
    """Node B's stack renders its configs with node A's keys and Redis password (one cluster)."""
    src, dst = a.state_dir / "secrets.json", b.state_dir / "secrets.json"
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(src.read_text())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres: TempPostgres) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    ports_a = {name: port + SHIFT_A for name, port in STACK_PORTS.items()}
    ports_b = {name: port + SHIFT_B for name, port in STACK_PORTS.items()}
    ports_b["redis_port"] = ports_a["redis_port"]  # one Redis: the bus of both nodes and both bridges
    host = "127.0.0.1"
    with (
        Balancer([(host, ports_a["api_port"]), (host, ports_b["api_port"])]) as front,
        Balancer([(host, ports_a["livekit_port"]), (host, ports_b["livekit_port"])]) as lk_front,
    ):
        # each node sends LiveKit's webhooks to its own replica and through the balancer: either copy
        # is enough (the control plane keeps one of each event), so a dead replica loses none
        hooks_url = [f"{front.url}/webhooks/livekit"]
        # the bridges, egress, the workers and the replicas reach LiveKit through the nodes' balancer
        lk_url = f"ws://{lk_front.host}:{lk_front.port}"
        both = {"extra_webhook_urls": hooks_url, "livekit_front_url": lk_url}
        settings_a = suite_stack_settings(root / "node-a", ports_a, **both)
        settings_b = suite_stack_settings(root / "node-b", ports_b, **both)
        db_url = postgres.create_database("cluster")
        with running_stack(settings_a, "node-a") as stack_a:
            _share_secrets(settings_a, settings_b)
            secrets = load_or_create(stack_a.paths.secrets)
            shared = {
                "PHONEAGENT_DATABASE_URL": db_url,
                "LIVEKIT_API_KEY": secrets.livekit_api_key,
                "LIVEKIT_API_SECRET": secrets.livekit_api_secret,
                "PHONEAGENT_WORKER_SECRET": "cluster-worker-secret",
                "PHONEAGENT_CONTROL_PLANE_URL": front.url,  # workers reach whichever replica lives
                "PHONEAGENT_LIVEKIT_FRONT_URL": lk_url,
            }
            env_a, env_b = _node_env(settings_a, shared), _node_env(settings_b, shared)
            cmd = [sys.executable, "-m", "phoneagent.cli", "db", "upgrade"]
            subprocess.run(cmd, env=env_a, check=True, timeout=120)
            token = new_api_key(env_a, "cluster")
            b_only = Stack(settings_b, only=("livekit-server", "livekit-sip"))
            b_only.up(progress=lambda msg: print(f"[node-b] {msg}"))
            b_pids = {s.pid for s in b_only.status() if s.pid}
            try:
                with (
                    running(ApiReplica(env_a, root, "api-a")) as api_a,
                    running(ApiReplica(env_b, root, "api-b")) as api_b,
                    running(WorkerProcess(env_a, root / "worker-a")) as worker_a,
                    running(WorkerProcess(env_b, root / "worker-b")) as worker_b,
                ):
                    a = Node("A", settings_a, stack_a, env_a, api_a, worker_a)
                    b = Node("B", settings_b, b_only, env_b, api_b, worker_b)
                    h = {"Authorization": f"Bearer {token}"}
                    provisioned = provision_test_number(a.url, h, settings_a)
                    cp = ControlPlane(front.url, h, *provisioned, env_a)  # through whichever replica lives
                    with registered_receiver(cp) as hooks:
                        yield Cluster(a, b, db_url, cp, hooks, front)
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
    assert "leads the background work" in c.a.api.text()
    assert "leads the background work" not in c.b.api.text()

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


# ---- faults in the cluster -----------------------------------------------------------------------

FAULT_CONTACTS, FAULT_CONCURRENCY = 30, 6
# how long each callee stays on the line: under livekit-sip's media timeout (the sipp callee sends no
# RTP, and livekit-sip hangs up a call without media after 30 s). A call on the killed worker ends
# worker_lost if LiveKit drops its agent (when the agent's WebRTC connection fails, about 20 s) and
# WORKER_LOST_AFTER_S passes before the callee hangs up; customer_hangup otherwise
WORKER_KILL_HOLD_MS = 25_000
REPLICA_KILL_HOLD_MS = 8_000


def _bye_senders(trace: str) -> dict[str, str]:
    """Who hung up each call the sipp callee had, by the number dialed: "callee" (sipp sent the BYE)
    or "caller" (livekit-sip sent it: the control plane or the agent ended the call)."""
    numbers: dict[str, str] = {}  # Call-ID -> number
    first_bye: dict[str, str] = {}
    for block in trace.split("-----------------------------------------------")[1:]:
        call_id = re.search(r"^Call-I[Dd]: (\S+)", block, flags=re.MULTILINE)
        if call_id is None:
            continue
        invite = re.search(r"^INVITE sip:(\+?\d+)@", block, flags=re.MULTILINE)
        if invite:
            numbers[call_id.group(1)] = invite.group(1)
        if re.search(r"^BYE sip:", block, flags=re.MULTILINE):
            first_bye.setdefault(call_id.group(1), "callee" if "message sent" in block else "caller")
    return {numbers[cid]: who for cid, who in first_bye.items() if cid in numbers}


@dataclass(frozen=True)
class CallRow:
    id: str
    to: str
    room: str
    status: str
    end_reason: str | None
    answered_at: datetime | None
    ended_at: datetime | None
    dialed_at: datetime | None


def _campaign_calls(db_url: str, campaign: str) -> list[CallRow]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as db:
            rows = db.execute(
                sa.text(
                    "select c.id, c.to_number, c.room_name, c.status, c.end_reason, c.answered_at, "
                    "c.ended_at, (select min(e.occurred_at) from call_events e where e.call_id = c.id "
                    "and e.type = 'dialing') from calls c where c.campaign_id = :c"
                ),
                {"c": campaign},
            ).all()
    finally:
        engine.dispose()
    return [CallRow(r[0], r[1], r[2], r[3], r[4], _utc(r[5]), _utc(r[6]), _utc(r[7])) for r in rows]


def _utc(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


def _contacts(db_url: str, campaign: str) -> list[Any]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as db:
            return list(
                db.execute(
                    sa.text(
                        "select number, status, attempts, last_call_id, last_end_reason "
                        "from campaign_contacts where campaign_id = :c"
                    ),
                    {"c": campaign},
                ).all()
            )
    finally:
        engine.dispose()


def _callee(tmp_path: Path, host: str, port_from: int, hold_ms: int) -> SippCallee:
    """A sipp callee that answers every call and hangs up after ``hold_ms``."""
    port = _free_udp(host, port_from)
    workdir = tmp_path / "callee"
    return SippCallee("uas_answer_then_hangup", workdir=workdir, port=port, host=host, hold_ms=hold_ms)


def _start_campaign(c: Cluster, callee: SippCallee, name: str, prefix: str) -> str:
    with c.api() as api:
        out = {"name": name, "address": callee.address, "numbers": ["+15550100"], "max_concurrent_calls": 50}
        r = api.post("/trunks/outbound", json=out)
        assert r.status_code == 201, r.text
        body = {
            "name": name,
            "agent_profile_id": c.cp.agent_id,
            "outbound_trunk_id": r.json()["id"],
            "concurrency": FAULT_CONCURRENCY,
            "ring_timeout_s": 10,
            "window_start": "00:00",
            "window_end": "00:00",
            "contacts": [{"number": f"{prefix}{i:04d}"} for i in range(FAULT_CONTACTS)],
        }
        r = api.post("/campaigns", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def _wait_completed(c: Cluster, campaign: str, timeout: float) -> None:
    def completed() -> bool:
        with c.api() as api:
            r = api.get(f"/campaigns/{campaign}")
        return r.status_code == 200 and r.json()["status"] == "completed"

    wait_until(completed, timeout=timeout, what="the campaign completed", interval=1.0)


def _rooms_said(worker: WorkerProcess, message: str) -> set[str]:
    """Rooms this worker logged ``message`` about."""
    rooms = set()
    for line in worker.text().splitlines():
        if line.startswith("{") and f'"{message}"' in line:
            rooms.add(json.loads(line)["room"])
    return rooms


def _joined(worker: WorkerProcess) -> set[str]:
    """Rooms whose call this worker's agent joined."""
    return _rooms_said(worker, "agent joined the call")


def _taken(worker: WorkerProcess) -> set[str]:
    """Rooms whose agent job LiveKit gave this worker (its agent may join after the call ended: on a
    loaded host a job process took up to 37 s to start, and the callee hangs up after 25 s)."""
    return _rooms_said(worker, "received job request")


def _check_every_outcome(c: Cluster, campaign: str, calls: list[CallRow]) -> None:
    """Every contact one outcome from one call, every record one end reason, every end delivered."""
    contacts = _contacts(c.db_url, campaign)
    assert len(contacts) == FAULT_CONTACTS
    assert {r.status for r in contacts} <= {"done", "failed"}, contacts
    assert all(r.attempts == 1 for r in contacts), contacts  # no retries were asked for these reasons
    by_id = {x.id: x for x in calls}
    assert len(calls) == FAULT_CONTACTS and {r.last_call_id for r in contacts} == set(by_id)
    for r in contacts:
        assert by_id[r.last_call_id].end_reason == r.last_end_reason, r
    assert all(x.status == "ended" and x.end_reason for x in calls), calls

    def every_end_delivered() -> bool:
        ended = {r.body["data"]["id"] for r in c.hooks.of_type("call.ended")}
        return ended >= set(by_id)

    wait_until(every_end_delivered, timeout=90, what="a call.ended webhook for every call")


def test_a_worker_killed_mid_campaign_its_calls_end_worker_lost_and_the_rest_go_on(
    cluster: Cluster, tmp_path: Path
) -> None:
    c = cluster
    host = c.a.settings.bind_host
    with _callee(tmp_path, host, 36500 + PORT_OFFSET, WORKER_KILL_HOLD_MS) as callee:
        campaign = _start_campaign(c, callee, "worker-kill", "+1628555")

        def live_on_b() -> list[CallRow]:
            joined = _joined(c.b.worker)
            fresh = datetime.now(UTC) - timedelta(seconds=4)
            return [
                x
                for x in _campaign_calls(c.db_url, campaign)
                if x.status == "in_progress" and x.room in joined and x.answered_at and x.answered_at > fresh
            ]

        wait_until(lambda: len(live_on_b()) >= 2, timeout=120, what="calls of worker B in progress")
        victims = {x.id for x in live_on_b()}
        on_a_before = _taken(c.a.worker)
        killed_at = datetime.now(UTC)
        c.b.worker.kill()
        try:
            print(f"\n[worker kill] killed worker B with {len(victims)} fresh calls on it")
            _wait_completed(c, campaign, timeout=360)
            survivors_jobs = _taken(c.a.worker) - on_a_before
            hung_up_by = _bye_senders(callee.trace())
        finally:
            c.b.worker.start()
    calls = _campaign_calls(c.db_url, campaign)
    _check_every_outcome(c, campaign, calls)
    by_id = {x.id: x for x in calls}
    # each record says who ended the call as the callee saw it: the control plane's BYE for a lost
    # worker, the callee's own BYE for a call that ran its course (or outlived its dead agent)
    for x in calls:
        expected = {"caller": "worker_lost", "callee": "customer_hangup"}[hung_up_by[x.to]]
        assert x.end_reason == expected, (x, hung_up_by[x.to])
    ended = [(e - killed_at).total_seconds() for v in victims if (e := by_id[v].ended_at)]
    lost = [v for v in victims if by_id[v].end_reason == "worker_lost"]
    print(
        f"[worker kill] {len(lost)} of its {len(victims)} calls ended worker_lost, the others by their "
        f"callee; they ended {min(ended):.1f}-{max(ended):.1f} s after the kill"
    )
    assert {by_id[v].end_reason for v in victims} <= {"worker_lost", "customer_hangup"}
    # the calls placed after the kill went to the worker that lives (LiveKit gave it their jobs), and
    # their records say the callee hung up
    later = [x for x in calls if x.dialed_at and x.dialed_at > killed_at + timedelta(seconds=1)]
    print(f"[worker kill] {len(later)} calls dialed after the kill, on worker A: ", end="")
    print(sum(1 for x in later if x.room in survivors_jobs))
    assert later and not [x for x in later if x.room not in survivors_jobs], [
        x for x in later if x.room not in survivors_jobs
    ]
    assert {x.end_reason for x in later} == {"customer_hangup"}, later
    # only calls that worker B had, or had been handed, when it died were lost
    lost_after = [
        x for x in calls if x.end_reason == "worker_lost" and x.dialed_at and x.dialed_at > killed_at
    ]
    assert not lost_after, lost_after


def test_the_leading_control_plane_killed_mid_campaign_the_other_takes_over_and_loses_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    c = cluster
    host = c.a.settings.bind_host
    leader, follower = (c.a, c.b) if "leads the background work" in c.a.api.text() else (c.b, c.a)
    with _callee(tmp_path, host, 36700 + PORT_OFFSET, REPLICA_KILL_HOLD_MS) as callee:
        campaign = _start_campaign(c, callee, "replica-kill", "+1628556")
        wait_until(
            lambda: len(_campaign_calls(c.db_url, campaign)) >= 8, timeout=120, what="8 calls of the campaign"
        )
        leads_before = follower.api.text().count("leads the background work")
        killed = time.monotonic()
        leader.api.kill()
        try:
            killed_at = datetime.now(UTC)
            delivered_at_kill = len(c.hooks.accepted())
            wait_until(
                lambda: follower.api.text().count("leads the background work") > leads_before,
                timeout=60,
                what=f"replica {follower.name} to take the lead",
                interval=0.05,
            )
            took_over_s = time.monotonic() - killed
            print(f"\n[replica kill] replica {follower.name} leads {took_over_s:.1f} s after the kill")
            _wait_completed(c, campaign, timeout=300)
            invites = re.findall(
                r"INVITE sip:(\+?\d+)@.*?\nCall-I[Dd]: (\S+)", callee.trace(), flags=re.DOTALL
            )
        finally:
            leader.api.start()
    calls = _campaign_calls(c.db_url, campaign)
    _check_every_outcome(c, campaign, calls)
    per_number = collections.Counter(num for num, _ in set(invites))
    assert set(per_number.values()) <= {1}, per_number  # no number dialed twice
    later = [x for x in calls if x.dialed_at and x.dialed_at > killed_at]
    print(f"[replica kill] {len(later)} calls dialed by replica {follower.name} after the kill")
    assert later and {x.end_reason for x in later} == {"customer_hangup"}, later
    reasons = collections.Counter(x.end_reason for x in calls)
    print(f"[replica kill] end reasons: {dict(reasons)}")
    # a delivery the killed replica had sent but not yet recorded is sent again (at least once); no
    # event the surviving replica delivered reached the endpoint twice
    seen: dict[str, int] = {}
    for i, r in enumerate(c.hooks.accepted()):
        if r.event_id in seen:
            assert seen[r.event_id] < delivered_at_kill, f"{r.event_id} delivered twice after the kill"
        else:
            seen[r.event_id] = i


# the callee stays 25 s (see WORKER_KILL_HOLD_MS): a call killed a few seconds after its agent joined
# has time left after its clients rejoin the room on node A (about 15 s after the kill)
NODE_KILL_HOLD_MS = 25_000


def _lk_times(livekit_log: str, room: str, what: str) -> list[datetime]:
    """When livekit-server logged ``what`` (e.g. "starting RTC session") for ``room``."""
    out = []
    for line in livekit_log.splitlines():
        if what in line and f'"room": "{room}"' in line:
            out.append(datetime.fromisoformat(line.split("\t", 1)[0].replace("Z", "+00:00")))
    return out


def _api_log_times(c: Cluster, message: str, call_id: str) -> list[str]:
    """The clock times (HH:MM:SS) at which a replica logged ``message`` about a call."""
    return sorted(
        line.split(" ", 1)[0]
        for n in c.nodes
        for line in n.api.text().splitlines()
        if message in line and call_id in line
    )


def test_a_livekit_server_node_killed_mid_campaign_its_calls_are_accounted_for_and_the_rest_go_on(
    cluster: Cluster, tmp_path: Path
) -> None:
    c = cluster
    host = c.a.settings.bind_host
    node_a, node_b = _node_id(c.a.log("livekit-server")), _node_id(c.b.log("livekit-server"))
    with _callee(tmp_path, host, 36900 + PORT_OFFSET, NODE_KILL_HOLD_MS) as callee:
        campaign = _start_campaign(c, callee, "node-kill", "+1628557")

        def talking_on_b() -> list[CallRow]:
            """Calls in progress in a room node B hosts, their agent joined, answered in the last 8 s."""
            hosted = _rooms_hosted(c.b.log("livekit-server"), node_b)
            joined = _joined(c.a.worker) | _joined(c.b.worker)
            fresh = datetime.now(UTC) - timedelta(seconds=8)
            return [
                x
                for x in _campaign_calls(c.db_url, campaign)
                if x.status == "in_progress"
                and x.room in hosted & joined
                and x.answered_at
                and x.answered_at > fresh
            ]

        wait_until(lambda: len(talking_on_b()) >= 2, timeout=150, what="calls talking on node B")
        victims = {x.id for x in talking_on_b()}
        on_b = _rooms_hosted(c.b.log("livekit-server"), node_b)
        live_at_kill = {x.id for x in _campaign_calls(c.db_url, campaign) if x.status != "ended"}
        pid = next(s.pid for s in c.b.stack.status() if s.name == "livekit-server")
        assert pid is not None
        proc = psutil.Process(pid)
        killed_at = datetime.now(UTC)
        proc.kill()
        proc.wait(30)
        try:
            print(f"\n[node kill] killed node B's livekit-server with {len(victims)} calls talking on it")
            _wait_completed(c, campaign, timeout=420)
            hung_up_by = _bye_senders(callee.trace())
        finally:
            c.b.stack.up(progress=lambda msg: print(f"[node-b] {msg}"))
    calls = _campaign_calls(c.db_url, campaign)
    by_id = {x.id: x for x in calls}
    lk_a = c.a.log("livekit-server")
    # when each call node B had at the kill got its room back on node A (None: never)
    back: dict[str, datetime | None] = {
        x.id: min((t for t in _lk_times(lk_a, x.room, "starting RTC session") if t > killed_at), default=None)
        for x in calls
        if x.id in live_at_kill and x.room in on_b
    }
    for x in calls:
        if x.id not in back:
            continue
        at = back[x.id]
        back_s = f"{(at - killed_at).total_seconds():.1f} s" if at else "never"
        ended = f"{(x.ended_at - killed_at).total_seconds():.1f} s" if x.ended_at else "-"
        noticed = _api_log_times(c, "no LiveKit node answers for the call's room", x.id)
        print(
            f"[node kill] {'talking' if x.id in victims else 'on node B'} {x.to}: room back on node A "
            f"after {back_s}, sweeper first found no node at {noticed[:1]}, ended {x.end_reason} "
            f"{ended} after the kill, BYE by {hung_up_by.get(x.to)}"
        )
    reasons = collections.Counter(x.end_reason for x in calls)
    print(f"[node kill] end reasons: {dict(reasons)}")
    _check_every_outcome(c, campaign, calls)
    # each record says who ended the call as the callee saw it: the callee's own BYE, or the control
    # plane's for a call on node B whose room no node took back; every call talking on node B went on
    # (its room back on node A) unless it ended so
    for x in calls:
        if x.to not in hung_up_by:
            continue
        lost = x.id in live_at_kill and x.room in on_b
        expected = {
            "caller": "media_node_lost" if lost else "agent or control plane",
            "callee": "customer_hangup",
        }
        assert x.end_reason == expected[hung_up_by[x.to]], (x, hung_up_by[x.to])
    for v in victims:
        assert back.get(v) or by_id[v].end_reason == "media_node_lost", by_id[v]
    later = [x for x in calls if x.dialed_at and x.dialed_at > killed_at + timedelta(seconds=6)]
    hosted_b = _rooms_hosted(c.b.log("livekit-server"), node_b)
    hosted_a = _rooms_hosted(lk_a, node_a)
    on_a = sum(x.room in hosted_a for x in later)
    print(f"[node kill] {len(later)} calls dialed after the kill, {on_a} of them hosted on node A")
    assert later and {x.end_reason for x in later} == {"customer_hangup"}, later
    assert not [x for x in later if x.room in hosted_b], later
