"""Throughput and latency of the control plane's hot endpoints, side by side with a bare FastAPI one.

    uv run --frozen --no-sync python -m benchmarks.api [--seconds 10] [--concurrency 32]

A real stack (Redis, livekit-server, livekit-sip) on its own ports, a real `phoneagent api` process
(SQLite, its background work on: the dialer really dials every queued call, through livekit-sip, to
a sipp callee on loopback that answers 486), and a bare FastAPI app served the same way (uvicorn, one
process). A load generator in its own process keeps ``concurrency`` requests in flight for
``seconds`` against, in this order: the bare endpoint, ``POST /calls`` (each with its own
Idempotency-Key), ``POST /webhooks/livekit`` (signed SIP participant joined/left events, each a new
call record), and the bare endpoint again (how much the machine drifted during the run). The ratios
are each endpoint's requests per second and p99 over the bare endpoint's, measured in the same run.

Results: benchmarks/results/api-<stamp>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks import REPO_ROOT
from benchmarks.api.load import LoadRequest
from benchmarks.calllog.report import git_state, machine, versions, write_json
from benchmarks.ports import StackPorts
from phoneagent.config import Settings
from phoneagent.db.migrate import upgrade
from phoneagent.stack.processes import LoggedProcess
from phoneagent.stack.services import Stack
from phoneagent.telephony.client import livekit_credentials
from tests.peers.livekit_events import signed_headers, sip_participant_event
from tests.peers.sipp import SippCallee

PORTS: StackPorts = {
    "redis_port": 36389,
    "livekit_port": 37880,
    "livekit_rtc_tcp_port": 37881,
    "livekit_rtc_udp_start": 55000,
    "livekit_rtc_udp_end": 55049,
    "sip_port": 35070,
    "sip_rtp_start": 15000,
    "sip_rtp_end": 15499,
    "worker_http_port": 38081,
    "worker_metrics_port": 38082,
    "livekit_prometheus_port": 36789,
    "api_port": 38000,
}
BARE_PORT, SIPP_PORT = 38010, 35160


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


def _load(
    name: str, url: str, requests: list[LoadRequest], tmp: Path, args: argparse.Namespace
) -> dict[str, Any]:
    req_file, out_file = tmp / f"{name}-requests.json", tmp / f"{name}-out.json"
    req_file.write_text(json.dumps(requests))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.api.load",
            "--url",
            url,
            "--requests",
            str(req_file),
            "--concurrency",
            str(args.concurrency),
            "--seconds",
            str(args.seconds),
            "--out",
            str(out_file),
        ],
        check=True,
        cwd=REPO_ROOT,
    )
    raw = json.loads(out_file.read_text())
    ok = sum(n for code, n in raw["status_codes"].items() if code.startswith("2"))
    lat_ms = [x * 1000 for x in raw["latencies_s"]]
    row = {
        "requests": len(lat_ms),
        "ok": ok,
        "status_codes": raw["status_codes"],
        "elapsed_s": round(raw["elapsed_s"], 3),
        "rps": round(ok / raw["elapsed_s"], 1),
        "p50_ms": round(pct(lat_ms, 50), 2),
        "p95_ms": round(pct(lat_ms, 95), 2),
        "p99_ms": round(pct(lat_ms, 99), 2),
        "max_ms": round(max(lat_ms), 2),
        "loadavg_after": os.getloadavg(),
    }
    print(
        f"  {name:<16} {row['rps']:>8.1f} req/s   p50 {row['p50_ms']:>7.2f}   p99 {row['p99_ms']:>7.2f} ms   "
        f"codes {row['status_codes']}",
        flush=True,
    )
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="phoneagent-api-bench-"))
    settings = Settings(state_dir=tmp / "state", agent_name="phoneagent-bench", **PORTS)
    stack = Stack(settings)
    stack.up(progress=lambda m: print(f"[stack] {m}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHONEAGENT_", "LIVEKIT_"))}
    env.update({f"PHONEAGENT_{k.upper()}": str(v) for k, v in PORTS.items()})
    db = f"sqlite:///{tmp}/cp.db"
    env.update(
        PHONEAGENT_STATE_DIR=str(settings.state_dir),
        PHONEAGENT_AGENT_NAME=settings.agent_name,
        PHONEAGENT_DATABASE_URL=db,
        PHONEAGENT_LOG_LEVEL="WARNING",
    )
    upgrade(db)
    token = subprocess.run(
        [sys.executable, "-m", "phoneagent.cli", "keys", "create", "--tenant", "bench"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    cp = LoggedProcess.phoneagent("api", log_path=tmp / "api.log", env=env)
    bare = LoggedProcess(
        [sys.executable, "-m", "benchmarks.api.bare", str(BARE_PORT)],
        log_path=tmp / "bare.log",
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
    )
    sipp = SippCallee("uas_busy", workdir=tmp, port=SIPP_PORT).start()
    results: dict[str, Any] = {}
    try:
        cp.wait_for(r"Uvicorn running", timeout=60)
        base = f"http://127.0.0.1:{PORTS['api_port']}"
        h = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
        with httpx.Client(base_url=base, headers=h, timeout=30) as c:
            agent = c.post("/agents", json={"name": "bench"}).json()["id"]
            trunk = c.post(
                "/trunks/outbound", json={"name": "o", "address": sipp.address, "numbers": ["+15550100"]}
            ).json()["id"]
            inbound = c.post(
                "/trunks/inbound",
                json={"name": "in", "numbers": ["+15550100"], "allowed_addresses": ["127.0.0.1"]},
            ).json()["id"]
            rule = c.post(
                "/dispatch-rules", json={"name": "r", "inbound_trunk_id": inbound, "agent_profile_id": agent}
            ).json()["livekit_id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if (
                    httpx.post(
                        f"http://127.0.0.1:{BARE_PORT}/echo",
                        json={"to": "x", "agent_profile_id": "a", "outbound_trunk_id": "t"},
                    ).status_code
                    == 201
                ):
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        n = 40_000
        body = {"to": "+14155550123", "agent_profile_id": agent, "outbound_trunk_id": trunk}
        bare_reqs: list[LoadRequest] = [
            {"path": "/echo", "body": json.dumps(body), "headers": {"content-type": "application/json"}}
        ] * n
        call_reqs: list[LoadRequest] = [
            {"path": "/calls", "body": json.dumps(body), "headers": {**h, "Idempotency-Key": f"b-{i}"}}
            for i in range(n)
        ]
        creds = livekit_credentials(settings)
        ingest_reqs: list[LoadRequest] = []
        for i in range(n // 2):
            for kind in ("participant_joined", "participant_left"):
                ev = sip_participant_event(
                    f"EV_{uuid.uuid4().hex}", kind, f"call-bench-{i}", rule, callee="+15550100"
                )
                ingest_reqs.append(
                    {
                        "path": "/webhooks/livekit",
                        "body": ev,
                        "headers": signed_headers(ev, creds.api_key, creds.api_secret),
                    }
                )
        print(f"load: {args.concurrency} in flight, {args.seconds:.0f} s each", flush=True)
        results["bare_fastapi"] = _load("bare_fastapi", f"http://127.0.0.1:{BARE_PORT}", bare_reqs, tmp, args)
        results["post_calls"] = _load("post_calls", base, call_reqs, tmp, args)
        results["webhook_ingest"] = _load("webhook_ingest", base, ingest_reqs, tmp, args)
        results["bare_fastapi_again"] = _load(
            "bare_fastapi_again", f"http://127.0.0.1:{BARE_PORT}", bare_reqs, tmp, args
        )
        with httpx.Client(base_url=base, headers=h, timeout=60) as c:
            time.sleep(3)
            statuses: dict[str, int] = {}
            for status in ("queued", "dialing", "ringing", "in_progress", "ended"):
                page = c.get(
                    "/calls", params={"status": status, "direction": "outbound", "limit": 200}
                ).json()
                statuses[status] = len(page["items"]) + (1000 if page["next_cursor"] else 0)
            results["dialer_after_load"] = {"outbound_calls_by_status_capped_at_200": statuses}
    finally:
        sipp.stop()
        bare.stop()
        cp.stop()
        stack.down()
    ref_rps = (results["bare_fastapi"]["rps"] + results["bare_fastapi_again"]["rps"]) / 2
    ref_p99 = (results["bare_fastapi"]["p99_ms"] + results["bare_fastapi_again"]["p99_ms"]) / 2
    results["ratios_vs_bare"] = {
        name: {
            "rps": round(results[name]["rps"] / ref_rps, 3),
            "p99": round(results[name]["p99_ms"] / ref_p99, 2),
        }
        for name in ("post_calls", "webhook_ingest")
    }
    return results


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.api", description=__doc__)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--out-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    args = p.parse_args()
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    results = run(args)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    doc = {
        "benchmark": "api",
        "date": started.isoformat(),
        "command": "uv run --frozen --no-sync python -m benchmarks.api",
        "machine": machine(),
        "versions": versions(),
        "git": git_state(REPO_ROOT),
        "method": {
            "seconds": args.seconds,
            "concurrency": args.concurrency,
            "database": "sqlite",
            "server": "uvicorn, 1 process, for both",
            "loadavg_before": load_before,
            "order": ["bare_fastapi", "post_calls", "webhook_ingest", "bare_fastapi_again"],
        },
        "results": results,
    }
    write_json(args.out_dir / f"api-{stamp}.json", doc)
    lines = [
        "| endpoint | req/s | p50 ms | p99 ms | req/s vs bare | p99 vs bare |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("bare_fastapi", "post_calls", "webhook_ingest", "bare_fastapi_again"):
        r = results[name]
        ratio = results["ratios_vs_bare"].get(name, {"rps": 1.0, "p99": 1.0}) if "bare" not in name else None
        lines.append(
            f"| `{name}` | {r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            + (f"{ratio['rps']:.2f} | {ratio['p99']:.1f} |" if ratio else "1 | 1 |")
        )
    (args.out_dir / f"api-{stamp}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
