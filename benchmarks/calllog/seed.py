"""Bulk seeding: executemany of the Core tables' INSERT on SQLite, COPY on PostgreSQL; one transaction
per batch of calls (with their turns, events and search rows).

The rows are generated in a child process (fork) while the parent inserts, so generation and insertion
overlap on a 2-core machine. For SQLite the child also converts values to the column types' storage
form (UTC datetimes as SQLAlchemy's text format, JSON as json.dumps): that Python work would otherwise
be most of the parent's time. The conversion is checked against the dialect's own bind processors
before seeding starts. Tenants and agent profiles are real ORM rows (the calls reference them).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Engine, Table, event, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator, TypeEngine

from benchmarks.calllog.data import (
    CALL_COLS,
    EVENT_COLS,
    SEARCH_COLS,
    TURN_COLS,
    Batch,
    Row,
    SearchRow,
    World,
    make_batch,
    n_batches,
)
from phoneagent.calls.query import SEARCH_SLOTS, SQLITE_SEARCH_INSERT, tenant_token
from phoneagent.db.base import Base
from phoneagent.db.engine import make_engine
from phoneagent.db.models import AgentProfile, Call, CallEvent, CallTurn, Tenant


class _SearchRows:
    """The rows phoneagent.calls.query.index_transcript writes on SQLite, for calls fed in created_at
    order: the rowid is created_at in µs times SEARCH_SLOTS, plus a slot for calls of the same µs."""

    def __init__(self) -> None:
        self._last_us = -1
        self._slot = 0

    def __call__(self, search: list[SearchRow]) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for call_id, tenant_id, body, us in search:
            self._slot = self._slot + 1 if us == self._last_us else 0
            self._last_us = us
            out.append(
                {
                    "rowid": us * SEARCH_SLOTS + self._slot,
                    "id": call_id,
                    "tenant": tenant_token(tenant_id),
                    "body": body,
                }
            )
        return out


@dataclass
class SeedStats:
    engine: str
    calls: int = 0
    turns: int = 0
    events: int = 0
    search_rows: int = 0
    insert_seconds: float = 0.0  # wall time from the first batch to the last commit
    generate_wait_seconds: float = 0.0  # time the inserter waited on the generator
    analyze_seconds: float = 0.0
    progress: list[dict[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "calls": self.calls,
            "turns": self.turns,
            "events": self.events,
            "search_rows": self.search_rows,
            "seed_seconds": round(self.insert_seconds, 2),
            "generator_wait_seconds": round(self.generate_wait_seconds, 2),
            "analyze_seconds": round(self.analyze_seconds, 2),
            "calls_per_second": round(self.calls / self.insert_seconds) if self.insert_seconds else None,
            "rows_per_second_all_tables": (
                round((self.calls + self.turns + self.events + self.search_rows) / self.insert_seconds)
                if self.insert_seconds
                else None
            ),
            "progress": self.progress,
        }


Transform = Callable[[Batch], Batch]


def _produce(
    world: World,
    batch_size: int,
    events_per_call: int,
    transform: Transform | None,
    q: mp.Queue[Batch | None],
) -> None:
    for b in range(n_batches(world, batch_size)):
        batch = make_batch(world, b, batch_size, events_per_call)
        q.put(transform(batch) if transform else batch)
    q.put(None)


def _feed(
    world: World, batch_size: int, events_per_call: int, stats: SeedStats, transform: Transform | None = None
) -> Iterator[Batch]:
    ctx = mp.get_context("fork")
    q: mp.Queue[Batch | None] = ctx.Queue(maxsize=4)
    proc = ctx.Process(target=_produce, args=(world, batch_size, events_per_call, transform, q), daemon=True)
    proc.start()
    try:
        while True:
            t0 = time.perf_counter()
            batch = q.get()
            stats.generate_wait_seconds += time.perf_counter() - t0
            if batch is None:
                return
            yield batch
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join()


def _progress(stats: SeedStats, t_start: float, last: list[float], every: int, total: int) -> None:
    done = stats.calls
    if done // every != last[1] // every or done == total:
        now = time.perf_counter()
        rate_all = done / (now - t_start)
        rate_now = (done - last[1]) / (now - last[0]) if now > last[0] else 0.0
        print(
            f"  [{stats.engine}] {done:>9,} / {total:,} calls  {rate_all:,.0f} calls/s overall, "
            f"{rate_now:,.0f} calls/s last interval  (+{stats.turns:,} turns, {stats.events:,} events, "
            f"{stats.search_rows:,} search rows)  {now - t_start:6.1f}s",
            flush=True,
        )
        stats.progress.append(
            {"calls": done, "seconds": round(now - t_start, 2), "calls_per_second": round(rate_all)}
        )
        last[0], last[1] = now, done


def seed_reference_rows(engine: Engine, world: World) -> None:
    """Tenants and agent profiles through the ORM (the FK targets of every call)."""
    with Session(engine) as s:
        for t in world.tenants:
            s.add(Tenant(id=t.id, name=t.name))
        s.flush()
        for t in world.tenants:
            for agent_id, name in t.agents:
                s.add(AgentProfile(id=agent_id, tenant_id=t.id, name=name, greeting="Hello"))
        s.commit()


def _sqlite_dt(d: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DATETIME storage format; the values are generated in UTC
    if d is None:
        return None
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d} {d.hour:02d}:{d.minute:02d}:{d.second:02d}"
        f".{d.microsecond:06d}"
    )


def _python_type(t: TypeEngine[Any]) -> type | None:
    # TypeDecorator: the wrapped type's, if the decorator itself does not say
    for cand in (t, t.impl_instance) if isinstance(t, TypeDecorator) else (t,):
        try:
            return cand.python_type
        except NotImplementedError:
            continue
    return None


def _table(model: type[Base]) -> Table:
    """A model's Core table: the declarative base types ``__table__`` as a FromClause, but for these
    models (declared with columns, not mapped to a select) it is a Table."""
    table = model.__table__
    assert isinstance(table, Table), f"{model.__name__}.__table__ is a {type(table).__name__}, not a Table"
    return table


def _positions(cols: tuple[str, ...], table: Table, kind: type) -> list[int]:
    return [i for i, c in enumerate(cols) if _python_type(table.c[c].type) is kind]


def _sqlite_transform() -> Transform:
    plan = {
        name: (_positions(cols, table, datetime), _positions(cols, table, dict))
        for name, cols, table in (
            ("calls", CALL_COLS, _table(Call)),
            ("turns", TURN_COLS, _table(CallTurn)),
            ("events", EVENT_COLS, _table(CallEvent)),
        )
    }

    def conv(rows: list[Row], dts: list[int], js: list[int]) -> list[Row]:
        out: list[Row] = []
        for r in rows:
            v = list(r)
            for i in dts:
                v[i] = _sqlite_dt(v[i])
            for i in js:
                v[i] = json.dumps(v[i])
            out.append(tuple(v))
        return out

    def transform(b: Batch) -> Batch:
        return Batch(
            calls=conv(b.calls, *plan["calls"]),
            turns=conv(b.turns, *plan["turns"]),
            events=conv(b.events, *plan["events"]),
            search=b.search,
        )

    return transform


def _check_sqlite_storage(engine: Engine, world: World, batch_size: int) -> None:
    """The converted rows must be byte-identical to what Core's own bind processors produce."""
    d = engine.dialect
    sample = make_batch(world, 0, min(batch_size, world.n, 2000), 2)
    mine = _sqlite_transform()(sample)
    for rows, conv_rows, cols, table in (
        (sample.calls, mine.calls, CALL_COLS, _table(Call)),
        (sample.turns, mine.turns, TURN_COLS, _table(CallTurn)),
        (sample.events, mine.events, EVENT_COLS, _table(CallEvent)),
    ):
        procs = [table.c[c].type.dialect_impl(d).bind_processor(d) for c in cols]
        for r, m in zip(rows, conv_rows, strict=True):
            ref = tuple(p(v) if p else v for p, v in zip(procs, r, strict=True))
            if ref != m:
                raise AssertionError(f"storage conversion differs from SQLAlchemy's: {ref} != {m}")


def _insert_sql(engine: Engine, table: Table, cols: tuple[str, ...]) -> str:
    compiled = table.insert().compile(dialect=engine.dialect, column_keys=list(cols))
    assert compiled.positiontup == list(cols), compiled.positiontup
    return str(compiled)


def seed_sqlite(
    url: str, world: World, batch_size: int, events_per_call: int, every: int = 100_000
) -> SeedStats:
    stats = SeedStats(engine="sqlite")
    engine = make_engine(url)  # the project's pragmas (WAL, synchronous=NORMAL, foreign_keys=ON)

    @event.listens_for(engine, "connect")
    def _big_cache(dbapi_conn: sqlite3.Connection, _rec: ConnectionPoolEntry) -> None:
        # loading only: a 512 MB page cache for the index maintenance; this engine is disposed after
        dbapi_conn.execute("PRAGMA cache_size=-524288")

    seed_reference_rows(engine, world)
    _check_sqlite_storage(engine, world, batch_size)
    calls_sql = _insert_sql(engine, _table(Call), CALL_COLS)
    turns_sql = _insert_sql(engine, _table(CallTurn), TURN_COLS)
    events_sql = _insert_sql(engine, _table(CallEvent), EVENT_COLS)
    search_sql = text(SQLITE_SEARCH_INSERT)
    search_rows = _SearchRows()
    t_start = time.perf_counter()
    last = [t_start, 0.0]
    for batch in _feed(world, batch_size, events_per_call, stats, _sqlite_transform()):
        with engine.begin() as conn:
            conn.exec_driver_sql(calls_sql, batch.calls)  # executemany
            conn.exec_driver_sql(turns_sql, batch.turns)
            if batch.events:
                conn.exec_driver_sql(events_sql, batch.events)
            conn.execute(search_sql, search_rows(batch.search))
        stats.calls += len(batch.calls)
        stats.turns += len(batch.turns)
        stats.events += len(batch.events)
        stats.search_rows += len(batch.search)
        _progress(stats, t_start, last, every, world.n)
    stats.insert_seconds = time.perf_counter() - t_start

    t0 = time.perf_counter()
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.exec_driver_sql("PRAGMA optimize")
        conn.commit()
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    stats.analyze_seconds = time.perf_counter() - t0
    engine.dispose()
    return stats


_R = TypeVar("_R", bound=tuple[Any, ...])


def _copy(
    cur: psycopg.Cursor[Any],
    table: str,
    cols: tuple[str, ...],
    rows: Sequence[_R],
    fix: Callable[[_R], tuple[Any, ...]] | None = None,
) -> None:
    with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
        if fix is None:
            for r in rows:
                cp.write_row(r)
        else:
            for r in rows:
                cp.write_row(fix(r))


def _without_created(r: SearchRow) -> tuple[str, str, str]:
    """A call_search row: (call_id, tenant_id, body), without the created_at µs."""
    return r[:3]


_METADATA = CALL_COLS.index("metadata")


def _json_metadata(r: Row) -> Row:  # calls.metadata, a JSON column
    return (*r[:_METADATA], json.dumps(r[_METADATA]), *r[_METADATA + 1 :])


def _json_payload(r: Row) -> Row:  # call_events: payload is column 4
    return (*r[:4], json.dumps(r[4]), *r[5:])


def seed_postgres(
    url: str, world: World, batch_size: int, events_per_call: int, every: int = 100_000
) -> SeedStats:
    stats = SeedStats(engine="postgresql")
    engine = make_engine(url)
    seed_reference_rows(engine, world)
    engine.dispose()
    t_start = time.perf_counter()
    last = [t_start, 0.0]
    with psycopg.connect(url) as conn:
        for batch in _feed(world, batch_size, events_per_call, stats):
            with conn.transaction(), conn.cursor() as cur:
                _copy(cur, "calls", CALL_COLS, batch.calls, _json_metadata)
                _copy(cur, "call_turns", TURN_COLS, batch.turns)
                if batch.events:
                    _copy(cur, "call_events", EVENT_COLS, batch.events, _json_payload)
                _copy(cur, "call_search", SEARCH_COLS, batch.search, _without_created)
            stats.calls += len(batch.calls)
            stats.turns += len(batch.turns)
            stats.events += len(batch.events)
            stats.search_rows += len(batch.search)
            _progress(stats, t_start, last, every, world.n)
    stats.insert_seconds = time.perf_counter() - t_start

    t0 = time.perf_counter()
    # VACUUM as well as ANALYZE: sets the visibility map (index-only scans) and flushes the GIN pending
    # list, the state autovacuum keeps a production table in; without it the first reads set hint bits.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
    stats.analyze_seconds = time.perf_counter() - t0
    return stats
