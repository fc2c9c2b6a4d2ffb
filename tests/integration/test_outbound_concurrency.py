"""Concurrent retries of one POST /calls (same Idempotency-Key) against a real control-plane process
make exactly one call, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from phoneagent.stack.services import Stack
from tests.stack_fixtures import ApiProcess


async def _storm(api: ApiProcess, body: dict[str, object], n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=api.url, headers=api.headers, timeout=60, limits=limits) as c:
        headers = {"Idempotency-Key": "order-1001-call"}
        return await asyncio.gather(*(c.post("/calls", json=body, headers=headers) for _ in range(n)))


def test_200_concurrent_requests_with_one_key_make_one_call(
    stack: Stack, db_url: str, tmp_path: Path
) -> None:
    api = ApiProcess.create(stack.settings, db_url, tmp_path, PHONEAGENT_BACKGROUND="false").start()
    try:
        with httpx.Client(base_url=api.url, headers=api.headers, timeout=30) as c:
            agent = c.post("/agents", json={"name": "a"}).json()["id"]
            out = {"name": "o", "address": "127.0.0.1:9", "numbers": ["+15550001111"]}
            trunk = c.post("/trunks/outbound", json=out).json()["id"]
            body = {"to": "+14155550123", "agent_profile_id": agent, "outbound_trunk_id": trunk}
            responses = asyncio.run(_storm(api, body, 200))
            calls = c.get("/calls", params={"limit": 200}).json()["items"]
    finally:
        api.stop()
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1 and codes.count(200) == 199, codes
    assert {r.json()["id"] for r in responses} == {calls[0]["id"]}
    assert len(calls) == 1
