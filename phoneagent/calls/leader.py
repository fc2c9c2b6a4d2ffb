"""One leader among control-plane replicas on one PostgreSQL, for the background work that must run
once: the dialer, the sweeper, the campaign runner, the recorder and the provisioning upkeep.

The leader holds a PostgreSQL session advisory lock on a connection of its own. The lock lives
exactly as long as that connection: a replica that dies, or loses its database, loses it at once,
and another replica takes it on its next try (every ``retry_s``). Work that is safe in every replica
(the webhook deliverer and the post-call extraction, both leased row by row) runs everywhere.

On SQLite there is one control plane per database file: it always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("phoneagent.calls")

# the advisory lock's key (a number no other lock of ours uses)
LEADER_LOCK = 0x7068_6F6E_6530  # "phone0"


class Leadership:
    def __init__(self, engine: Engine, *, retry_s: float = 2.0, name: str = "") -> None:
        self._engine = engine
        self._retry_s = retry_s
        self._name = name
        self._conn: Connection | None = None
        self.leading = asyncio.Event()
        self.lost = asyncio.Event()  # set when leadership ends; cleared when it is taken again

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set()

    async def run(self) -> None:
        """Try to lead, keep checking the lock's connection while leading; until cancelled."""
        try:
            while True:
                await asyncio.to_thread(self._step)
                await asyncio.sleep(self._retry_s)
        finally:
            await asyncio.to_thread(self._release)

    def _step(self) -> None:
        if self._engine.dialect.name != "postgresql":
            self._lead()
            return
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return
            except SQLAlchemyError as exc:
                log.warning(
                    "lost the database connection that held leadership", extra={"error": str(exc)[:200]}
                )
                self._drop()
                return
        try:
            conn = self._engine.connect()
        except SQLAlchemyError as exc:
            log.warning("cannot reach the database to take leadership", extra={"error": str(exc)[:200]})
            return
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK}).scalar()
            conn.commit()  # the lock is the session's: it outlives this transaction
        except SQLAlchemyError:
            conn.close()
            raise
        if got:
            self._conn = conn
            self._lead()
        else:
            conn.close()

    def _lead(self) -> None:
        if not self.leading.is_set():
            log.info("this control plane leads the background work", extra={"replica": self._name})
            self.lost.clear()
            self.leading.set()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.invalidate()  # never back to the pool: the lock goes with the connection
            self._conn = None
        if self.leading.is_set():
            log.warning(
                "this control plane no longer leads the background work", extra={"replica": self._name}
            )
            self.leading.clear()
            self.lost.set()

    def _release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LEADER_LOCK})
                self._conn.commit()
        self._drop()


async def while_leading(
    leadership: Leadership, name: str, work: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """Run ``work()`` while this replica leads: started when it takes the lead, cancelled when it
    loses it (another replica's copy then takes over), until cancelled itself."""
    while True:
        await leadership.leading.wait()
        task = asyncio.create_task(work(), name=f"phoneagent-{name}")
        lost = asyncio.create_task(leadership.lost.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if leadership.lost.is_set():
            continue  # lost the lead: wait to take it again
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error(
                "background work failed; started again", extra={"work": name}, exc_info=task.exception()
            )
            await asyncio.sleep(1.0)
            continue
        return  # the work ended by itself
