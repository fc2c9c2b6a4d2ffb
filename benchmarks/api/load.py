"""The load generator, in its own process: ``concurrency`` clients send requests back to back for
``seconds``; every request's latency is kept. Bodies (and, for webhook ingest, their signatures) are
made before the clock starts."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any, TypedDict

import httpx


class LoadRequest(TypedDict):
    path: str
    body: str
    headers: dict[str, str]


async def run(url: str, requests: list[LoadRequest], concurrency: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    codes: dict[str, int] = {}
    queue = iter(requests)
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one_client() -> None:
            while time.perf_counter() < deadline:
                req = next(queue, None)
                if req is None:
                    return
                t0 = time.perf_counter()
                r = await client.post(req["path"], content=req["body"].encode(), headers=req["headers"])
                latencies.append(time.perf_counter() - t0)
                codes[str(r.status_code)] = codes.get(str(r.status_code), 0) + 1

        t_start = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t_start
    return {"latencies_s": latencies, "elapsed_s": elapsed, "status_codes": codes}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--requests", type=Path, required=True, help="JSON list of {path, body, headers}")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    requests = json.loads(a.requests.read_text())
    a.out.write_text(json.dumps(asyncio.run(run(a.url, requests, a.concurrency, a.seconds))))


if __name__ == "__main__":
    main()
