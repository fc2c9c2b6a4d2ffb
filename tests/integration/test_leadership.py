"""Control-plane replicas on one PostgreSQL elect one leader for the work that must run once: exactly
one leads; when its database connection dies, another takes over within seconds; work runs only in
the replica that leads, and stops there when it loses the lead. On SQLite the one process leads."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from sqlalchemy import text

from phoneagent.calls.leader import Leadership, while_leading
from phoneagent.db.engine import make_engine
from tests.peers.postgres import TempPostgres

_names = itertools.count()


async def _first(events: list[asyncio.Event], timeout_s: float) -> None:
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        assert done, f"none of the events within {timeout_s} s"
    finally:
        for w in waits:
            w.cancel()


def test_one_replica_leads_and_another_takes_over_when_it_dies(postgres: TempPostgres) -> None:
    url = postgres.create_database(f"leaders{next(_names)}", template="phoneagent_template")
    engines = [make_engine(url) for _ in range(2)]
    replicas = [Leadership(engine, retry_s=0.2, name=f"r{i}") for i, engine in enumerate(engines)]
    runs: list[str] = []
    started = {r._name: asyncio.Event() for r in replicas}

    async def work(name: str) -> None:
        runs.append(f"{name} started")
        started[name].set()
        try:
            await asyncio.Event().wait()
        finally:
            runs.append(f"{name} stopped")

    async def scenario() -> None:
        tasks = [asyncio.create_task(r.run()) for r in replicas]
        workers = [
            asyncio.create_task(while_leading(r, "dialer", lambda n=r._name: work(n)))  # type: ignore[misc]
            for r in replicas
        ]
        try:
            await _first([r.leading for r in replicas], 10)
            await asyncio.sleep(1.0)  # several retries of the other: it never leads too
            assert sum(r.is_leader for r in replicas) == 1
            first = next(r for r in replicas if r.is_leader)
            other = next(r for r in replicas if r is not first)
            assert runs == [f"{first._name} started"]
            # the leader's database session dies (a replica killed, a network cut): its lock goes with it
            with engines[1 - replicas.index(first)].connect() as admin:
                admin.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND granted AND pid <> pg_backend_pid()"
                    )
                )
            await _first([first.lost], 10)
            await _first([other.leading], 10)
            await _first([started[other._name]], 5)
            assert not first.is_leader
            assert runs[:3] == [f"{first._name} started", f"{first._name} stopped", f"{other._name} started"]
        finally:
            for t in [*workers, *tasks]:
                t.cancel()
            await asyncio.gather(*workers, *tasks, return_exceptions=True)

    try:
        asyncio.run(scenario())
    finally:
        for engine in engines:
            engine.dispose()


def test_on_sqlite_the_one_control_plane_leads(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'one.db'}")
    leadership = Leadership(engine, retry_s=0.1)

    async def scenario() -> None:
        task = asyncio.create_task(leadership.run())
        try:
            await _first([leadership.leading], 5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    engine.dispose()
