"""A fake LiveKit behind the telephony interface, and a fake clock, for unit tests of the dialer, the
sweeper and the call lifecycle: no process, no network, no real waiting.

``FakeClock`` keeps its own time: ``sleep`` waits until the test moves the clock past its deadline
(``run_until``), so a ring of 30 s takes no real time. ``inline_threads`` makes ``asyncio.to_thread``
run its function at once on the loop, so that the only thing that ever waits is the clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from phoneagent.errors import TelephonyError
from phoneagent.telephony.interface import CallControl, DialOutcome, RoomPeople


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._mono = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self._mono + max(0.0, seconds), next(self._seq), fut))
        await fut

    def advance(self, seconds: float) -> None:
        """Move time on without waking anyone whose deadline passed (``run_until`` wakes them)."""
        self._mono += seconds
        self._now += timedelta(seconds=seconds)

    async def settle(self) -> None:
        """Let every task that can run, run (with ``inline_threads`` nothing runs off the loop)."""
        for _ in range(50):
            await asyncio.sleep(0)

    async def run_until(self, done: Callable[[], bool], *, limit_s: float = 3600.0) -> None:
        """Wake sleepers in deadline order, moving the clock to each, until ``done()``."""
        end = self._mono + limit_s
        await self.settle()
        while not done():
            while self._timers and self._timers[0][2].cancelled():
                heapq.heappop(self._timers)
            if not self._timers or self._timers[0][0] > end:
                raise AssertionError("nothing left to wake, and still not done")
            at, _, fut = heapq.heappop(self._timers)
            self.advance(at - self._mono)
            fut.set_result(None)
            await self.settle()


class _InlineExecutor(ThreadPoolExecutor):
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine, as a thread would
            fut.set_exception(exc)
        return fut


@contextmanager
def inline_threads(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    loop.set_default_executor(_InlineExecutor(max_workers=1))
    yield


@dataclass
class Answer:
    """How the fake phone network answers a dial to one number."""

    outcome: DialOutcome
    ring_s: float = 2.0  # rings (180) this long before its answer


ANSWERED = Answer(DialOutcome("answered"))
BUSY = Answer(DialOutcome("sip_final", 486, "Busy Here", "SIP 486 Busy Here"), ring_s=1.0)


def no_answer(ring_timeout_s: float) -> Answer:
    return Answer(DialOutcome("no_answer", detail="no answer"), ring_s=ring_timeout_s)


@dataclass
class FakeCalls(CallControl):
    """LiveKit's rooms, agent dispatch and livekit-sip, as the dialer and the sweeper see them."""

    clock: FakeClock
    answers: dict[str, Answer] = field(default_factory=dict)  # by number dialed; default ANSWERED
    rooms: dict[str, RoomPeople] = field(default_factory=dict)
    dispatched: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    jobs: dict[str, int] = field(default_factory=dict)  # agent jobs assigned, by room
    # a dispatch offered again finds a worker (a job refused on one node, while another's were free)
    reoffer_finds_worker: bool = False
    reoffered: list[str] = field(default_factory=list)
    down: bool = False  # LiveKit unreachable: every call fails as the real adapter says it does
    # rooms whose livekit-server node died: LiveKit still lists them, and no node answers for them
    unhosted: set[str] = field(default_factory=set)

    def _reach(self) -> None:
        if self.down:
            raise TelephonyError(
                "cannot reach LiveKit: ClientConnectorError", code="unreachable", retryable=True
            )

    async def create_room(self, room: str) -> None:
        self._reach()
        self.rooms.setdefault(room, RoomPeople(sip=[], agents=0))

    async def dispatch_agent(self, room: str, agent_name: str, metadata: dict[str, Any]) -> None:
        self._reach()
        self.rooms[room] = RoomPeople(sip=[], agents=1)
        self.jobs[room] = 1
        self.dispatched.append(room)

    async def dial(
        self,
        *,
        room: str,
        trunk_id: str,
        to: str,
        from_number: str,
        identity: str,
        ring_timeout_s: int,
        max_call_s: int,
        attributes: dict[str, str] | None = None,
    ) -> DialOutcome:
        if self.down:
            return DialOutcome("failed", detail="LiveKit unreachable: ClientConnectorError")
        answer = self.answers.get(to, ANSWERED)
        phone = {**(attributes or {}), "sip.callStatus": "ringing"}
        self._set_phone(room, phone)
        await self.clock.sleep(min(answer.ring_s, ring_timeout_s))
        if answer.outcome.kind == "answered":
            self._set_phone(room, {**phone, "sip.callStatus": "active"})
        else:
            self._set_phone(room, None)
        return answer.outcome

    def _set_phone(self, room: str, attributes: dict[str, str] | None) -> None:
        people = self.rooms.get(room)
        if people is not None:
            self.rooms[room] = RoomPeople(sip=[attributes] if attributes else [], agents=people.agents)

    async def people(self, room: str) -> RoomPeople | None:
        self._reach()
        if room in self.unhosted:  # what livekit-server answers when the room's node is gone
            raise TelephonyError(
                "LiveKit API: unavailable: twirp error unknown: no response from servers",
                code="unavailable",
                retryable=True,
                no_response=True,
            )
        return self.rooms.get(room)

    async def room_names(self) -> list[str]:
        self._reach()
        return list(self.rooms)

    async def agent_jobs(self, room: str) -> int | None:
        self._reach()
        return self.jobs.get(room, 0) if room in self.rooms else None

    async def redispatch(self, room: str) -> bool:
        self._reach()
        if room not in self.rooms or self.jobs.get(room, 0):
            return False
        self.reoffered.append(room)
        if self.reoffer_finds_worker:
            self.jobs[room] = 1
        return True

    async def end_room(self, room: str) -> None:
        self._reach()
        self.rooms.pop(room, None)
        self.ended.append(room)

    async def aclose(self) -> None:
        pass

    # ---- what happens in LiveKit without the control plane asking ---------------------------------

    def phone_hung_up_but_stayed(self, room: str) -> None:
        """livekit-sip v1.8.0 sometimes leaves the phone's participant behind after a BYE."""
        people = self.rooms[room]
        self.rooms[room] = RoomPeople(sip=[{**p, "sip.callStatus": "hangup"} for p in people.sip], agents=0)

    def phone_rings(self, room: str, *, agent_job: bool) -> None:
        """A caller's INVITE made the room (a dispatch rule); a worker took its agent job, or none
        could (every worker full, or none running)."""
        self.rooms[room] = RoomPeople(sip=[{"sip.callStatus": "ringing"}], agents=0)
        self.jobs[room] = 1 if agent_job else 0

    def agent_left(self, room: str) -> None:
        self.rooms[room] = RoomPeople(sip=self.rooms[room].sip, agents=0)

    def room_vanished(self, room: str) -> None:
        del self.rooms[room]
