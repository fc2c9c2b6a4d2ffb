"""PostgreSQL restarted under a running campaign (real SIP callee: sipp answers, holds, hangs up):
while it is down, API clients get a clear 503 and never a 500; nothing is dialed twice; once it is
back, the campaign finishes with exactly one call per contact, each ended once."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from phoneagent.db.migrate import upgrade
from phoneagent.stack import ports
from phoneagent.stack.services import Stack
from tests.db_fixtures import PG_PORT
from tests.peers.postgres import TempPostgres
from tests.peers.sipp import SippCallee
from tests.stack_fixtures import ApiProcess

N, CONCURRENCY, DOWN_S = 16, 4, 6.0


def _free_udp(host: str) -> int:
    return next(p for p in range(36200, 36400, 2) if ports.is_free(host, p, "udp"))


def test_postgresql_restarted_under_a_campaign_answers_503_and_dials_nobody_twice(
    stack: Stack, tmp_path: Path
) -> None:
    host = stack.settings.bind_host
    pg = TempPostgres(PG_PORT + 1).start()  # its own server: the suite's shared one stays up
    try:
        url = pg.create_database("restart")
        upgrade(url)
        api = ApiProcess.create(
            stack.settings, url, tmp_path, PHONEAGENT_AGENT_NAME="database-restart-nobody"
        ).start()
        try:
            with (
                SippCallee(
                    "uas_answer_then_hangup", workdir=tmp_path, port=_free_udp(host), host=host, hold_ms=1500
                ) as sipp,
                httpx.Client(base_url=api.url, headers=api.headers, timeout=30) as c,
            ):
                agent = c.post("/agents", json={"name": "a"}).json()["id"]
                out = {"name": "o", "address": sipp.address, "numbers": ["+15550100"]}
                trunk = c.post("/trunks/outbound", json=out).json()["id"]
                contacts = [{"number": f"+1415556{i:04d}"} for i in range(N)]
                body = {
                    "name": "restart",
                    "agent_profile_id": agent,
                    "outbound_trunk_id": trunk,
                    "concurrency": CONCURRENCY,
                    "window_start": "00:00",
                    "window_end": "00:00",
                    "contacts": contacts,
                }
                r = c.post("/campaigns", json=body)
                assert r.status_code == 201, r.text
                campaign = r.json()["id"]
                deadline = time.monotonic() + 120
                while c.get(f"/campaigns/{campaign}").json()["progress"]["done"] < CONCURRENCY:
                    assert time.monotonic() < deadline, "the campaign did not start calling"
                    time.sleep(0.2)

                pg.down()
                answers: dict[int, int] = {}
                down_until = time.monotonic() + DOWN_S
                while time.monotonic() < down_until:  # clients keep asking while it is down
                    for path in (f"/campaigns/{campaign}", "/calls", "/health/ready"):
                        got = c.get(path)
                        answers[got.status_code] = answers.get(got.status_code, 0) + 1
                        if got.status_code == 503:
                            assert "database is unavailable" in got.json()["error"], got.text
                            assert got.headers["retry-after"] == "5"
                    time.sleep(0.2)
                pg.up()
                print(f"[database down] answers while down: {answers}")
                assert set(answers) == {503}, answers  # never a 500, never a stale 200

                deadline = time.monotonic() + 300
                while (progress := c.get(f"/campaigns/{campaign}")).status_code != 200 or progress.json()[
                    "status"
                ] != "completed":
                    assert time.monotonic() < deadline, progress.text
                    time.sleep(0.3)
                assert c.get("/health/ready").json() == {"status": "ready", "database": "ok"}
                calls = c.get("/calls", params={"limit": 200}).json()["items"]
                report = c.get(f"/campaigns/{campaign}").json()
        finally:
            api.stop()
    finally:
        pg.stop()
    dialed = sorted(x["to_number"] for x in calls)
    assert dialed == sorted(x["number"] for x in contacts), dialed  # each contact called exactly once
    assert all(x["status"] == "ended" and x["end_reason"] for x in calls), calls
    assert report["progress"]["done"] == N, (
        report["progress"],
        [(x["to_number"], x["end_reason"]) for x in calls],
    )
