"""The sweeper: calls whose worker vanished, and records whose room is gone, end in bounded time.

Every ``interval`` it looks at live calls (dialing, ringing, in progress) against what LiveKit holds:

- in progress, and every phone left in the room says it hung up (``sip.callStatus: hangup``, which
  livekit-sip sets before it leaves; v1.8.0 sometimes never leaves): the call ends as
  ``customer_hangup`` and its room is deleted. An inbound call still ringing (its agent has not
  answered) is watched the same way: its caller who hung up ends it as ``abandoned``, and a room with
  no agent ends it as ``worker_lost``.
- in progress (or inbound and ringing), the phone still in the room, but no agent there for
  ``worker_lost_after`` seconds (its job process or its whole worker died): the call ends as
  ``worker_lost`` and its room is deleted, so the caller is not left listening to silence. A worker
  is lost at most ``worker_lost_after + interval`` seconds after LiveKit noticed its agent leave.
  A call whose agent never joined while LiveKit has its agent job assigned to a worker gets up to
  ``agent_arrival_after`` seconds instead: its agent is on its way. A worker that took over a dead
  peer's calls on a loaded host started job processes in up to 18 s (the cluster test), and counting
  that as a lost worker ended live calls with a false reason.
- in progress (or inbound and ringing), and no livekit-server node answers for its room (the node
  hosting it died; LiveKit's store still lists the room) for ``media_node_lost_after`` seconds: the
  call ends as ``media_node_lost`` and its room is deleted. Clients of a dead node rejoin through the
  front and bring the room back on a node that lives (4-9 s in the cluster test), so only a call
  whose phone and agent both never came back ends so. LiveKit not answering at all (it or its Redis
  down) proves nothing about a call: the pass stops and tries again.
- a call whose room has no agent and none on its way (LiveKit assigned no agent job for the room)
  ``unserved_after`` seconds after it arrived or was dialed: its dispatch is offered to the workers
  again, ``unserved_reoffers`` times, 1 by default (with several livekit-server nodes, a node can be
  handed a job for workers that filled up a moment before, while another node's are free). Still
  none after another ``unserved_after`` seconds (every worker is full, or none is running): an
  inbound call is refused at once, ``over_capacity``; deleting the room makes livekit-sip answer the
  caller's INVITE with 486 Busy Here (a fast busy) instead of letting it ring until it gives up. An
  outbound one is offered again every ``unserved_after`` seconds (up to ``OUTBOUND_REOFFERS``
  times) and left to the lost-worker rule above once it is answered.
- the room does not exist any more and no event said why (a webhook was lost): the call ends as
  ``failed`` with no evidence; any later event that knows better still wins (see lifecycle).
- dialing for longer than its ring timeout plus a minute without a dial task in this process (the
  control plane restarted mid-dial): it is read from the room: answered if the phone is active there,
  else ended as ``failed``.
- a call ended ``ROOM_LINGER_S`` ago whose room LiveKit still holds (an agent that missed the phone
  leaving keeps it): the room is deleted, so nothing of the call is left dangling.
- recordings (``phoneagent.calls.recorder``): a track egress that stops answering, or is still
  running well after its call ended, fails its recording ("egress stopped responding"); recordings
  past their retention period are deleted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from phoneagent.calls import lifecycle as lc
from phoneagent.calls.passes import run_passes
from phoneagent.calls.recorder import Recorder
from phoneagent.calls.records import AGENT_KIND, own_event
from phoneagent.clock import Clock, SystemClock
from phoneagent.db.base import UTCDateTime
from phoneagent.db.models import Call, CallEvent
from phoneagent.db.states import EndReason
from phoneagent.errors import PhoneagentError, TelephonyError
from phoneagent.telephony.interface import CallControl, RoomPeople

log = logging.getLogger("phoneagent.calls")

# a call's room outliving the call by this long is ended (the agent normally leaves at once; a
# transfer waits up to 10 s for the phone to follow)
ROOM_LINGER_S = 30.0
# an answered outbound call's job is offered again this often at most (the lost-worker rule ends it
# first, at the defaults: 15 s lost after / 1.5 s between offers)
OUTBOUND_REOFFERS = 20


class Sweeper:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        calls: CallControl,
        *,
        worker_lost_after_s: float,
        interval_s: float,
        media_node_lost_after_s: float = 30.0,
        agent_arrival_after_s: float = 30.0,
        unserved_after_s: float = 1.5,
        unserved_reoffers: int = 1,
        dialing: Callable[[], set[str]] = set,
        recorder: Recorder | None = None,
        clock: Clock | None = None,
        on_change: Callable[[str], None] = lambda _call_id: None,
    ) -> None:
        self._on_change = on_change  # a call's record changed (``calls.changes``)
        self._sessions = sessions
        self._clock = clock or SystemClock()
        self._calls = calls
        self._lost_after = worker_lost_after_s
        self._arrival_after = max(agent_arrival_after_s, worker_lost_after_s)
        self._interval = interval_s
        self._dialing = dialing  # calls this process is dialing right now
        self._recorder = recorder
        self._no_agent_since: dict[str, float] = {}
        self._node_lost_after = media_node_lost_after_s
        self._unanswered_since: dict[str, float] = {}  # calls whose room no node answered for, since
        self._unserved_after = unserved_after_s
        # once is enough for a job lost to a moment-old claim between nodes, and keeps a busy quick
        self._reoffers = unserved_reoffers
        self._arrived: dict[str, float] = {}  # inbound calls not yet seen served, since when
        self._served: set[str] = set()
        self._reoffered: dict[str, int] = {}  # calls whose agent job was offered again, how often
        self.wake = asyncio.Event()

    async def run(self) -> None:
        await run_passes(log, "sweep", self.sweep, self.wake, self._interval)

    def call_arrived(self, call_id: str) -> None:
        """An inbound call's phone joined its room (its webhook just came): look whether a worker
        took it as soon as one should have."""
        self._arrived.setdefault(call_id, self._clock.monotonic())
        asyncio.get_running_loop().call_later(self._unserved_after, self.wake.set)

    def _live(self) -> list[tuple[str, str, str, str | None, datetime, int]]:
        """The live calls, each with the time it began to be dialed (when a dialer claimed it; an
        inbound call's arrival): a call that waited long in the queue is not stale the moment another
        replica's dialer takes it."""
        claimed = (
            select(func.min(CallEvent.occurred_at))
            .where(CallEvent.call_id == Call.id, CallEvent.source == "api", CallEvent.type == "dialing")
            .scalar_subquery()
        )
        with self._sessions() as s:
            rows = s.execute(
                select(
                    Call.id,
                    Call.status,
                    Call.direction,
                    Call.room_name,
                    func.coalesce(claimed, Call.created_at, type_=UTCDateTime()),
                    Call.ring_timeout_s,
                ).where(Call.status.in_(("dialing", "ringing", "in_progress")))
            ).tuples()
            return list(rows)

    async def sweep(self) -> None:
        if self._recorder is None:
            await self._sweep_calls()
            return
        # egress probes may each wait seconds for an answer: never hold up the calls' sweep for them
        calls, recordings = await asyncio.gather(
            self._sweep_calls(), self._recorder.sweep(), return_exceptions=True
        )
        for result in (calls, recordings):
            if isinstance(result, BaseException):
                raise result

    async def _sweep_calls(self) -> None:
        arrived_before = set(self._arrived)  # one that arrives during this pass is not in its snapshot
        live = await asyncio.to_thread(self._live)
        seen = set()
        now = self._clock.monotonic()
        for call_id, status, direction, room, created_at, ring_timeout_s in live:
            seen.add(call_id)
            if not room:
                continue
            try:
                await self._sweep_call(call_id, status, direction, room, created_at, ring_timeout_s, now)
            except PhoneagentError as exc:  # one room LiveKit cannot answer for holds up no other
                if isinstance(exc, TelephonyError) and exc.code == "unreachable":
                    raise  # LiveKit is away: it proves nothing about any call; the next pass tries again
                extra = {"call_id": call_id, "error": exc.message}
                log.warning("could not look at a call's room", extra=extra)
        for gone in set(self._no_agent_since) - seen:
            del self._no_agent_since[gone]
        for gone in set(self._unanswered_since) - seen:
            del self._unanswered_since[gone]
        for gone in arrived_before - seen:
            self._arrived.pop(gone, None)
        for gone in set(self._reoffered) - seen:
            del self._reoffered[gone]
        await self._end_leftover_rooms()
        self._served &= seen

    async def _sweep_call(
        self,
        call_id: str,
        status: str,
        direction: str,
        room: str,
        created_at: datetime,
        ring_timeout_s: int,
        now: float,
    ) -> None:
        # an inbound call rings in its room until its agent answers: watched like one in progress
        ringing_in = direction == "inbound" and status == "ringing"
        if status != "in_progress" and not ringing_in:
            if direction == "outbound":
                await self._offer_again(call_id, room, 0, now)
            stale = self._clock.now() - created_at > timedelta(seconds=ring_timeout_s + 60)
            if stale and call_id not in self._dialing():
                await self._settle_stale_dial(call_id, room)
            return
        try:
            people = await self._calls.people(room)
        except TelephonyError as exc:
            if not exc.no_response:
                raise
            await self._room_unanswered(call_id, room, now)
            return
        self._unanswered_since.pop(call_id, None)
        if people is None:
            await self._ended(call_id, "failed", lc.NO_EVIDENCE, "room_gone")
            return
        if direction == "inbound" and await self._refused_unserved(call_id, room, people, now):
            return
        if people.sip and all(p.get("sip.callStatus") == "hangup" for p in people.sip):
            # livekit-sip v1.8.0 leaves a phone's participant in the room after some BYEs (about
            # 1 in 100); its own status on it says the phone hung up, and nobody is on the line
            log.info("the phone hung up; its participant was left behind", extra={"call_id": call_id})
            reason: EndReason = "abandoned" if ringing_in else "customer_hangup"
            await self._ended(call_id, reason, lc.OBSERVED, "sip_hangup_seen")
            await self._calls.end_room(room)
            self._no_agent_since.pop(call_id, None)
            return
        if people.agents > 0 or not people.sip:
            self._no_agent_since.pop(call_id, None)
            return
        if direction == "outbound":
            await self._offer_again(call_id, room, people.agents, now)
        since = self._no_agent_since.setdefault(call_id, now)
        if now - since >= self._lost_after and not await self._on_its_way(call_id, room, now - since):
            log.warning("worker lost: no agent in the call's room", extra={"call_id": call_id})
            # hanging up a ringing caller makes livekit-sip mark its phone hangup as it leaves: what
            # the sweeper declares it did must beat that (lifecycle.inbound_phone_left)
            strength = lc.DECLARED if ringing_in else lc.OBSERVED
            await self._ended(call_id, "worker_lost", strength, "worker_lost")
            await self._calls.end_room(room)
            self._no_agent_since.pop(call_id, None)

    async def _on_its_way(self, call_id: str, room: str, waited: float) -> bool:
        """Whether the call's agent may still come: it never joined the room, a worker holds its job,
        and ``agent_arrival_after`` has not passed."""
        if waited >= self._arrival_after:
            return False
        if await asyncio.to_thread(self._agent_joined, call_id):
            return False
        jobs = await self._calls.agent_jobs(room)
        if jobs:
            log.info("the call's agent has not joined yet; its job is assigned", extra={"call_id": call_id})
        return bool(jobs)

    def _agent_joined(self, call_id: str) -> bool:
        """An agent was in the call's room: LiveKit said one joined, or the worker reported on it."""
        of_call = CallEvent.call_id == call_id
        joins = (CallEvent.source == "livekit") & (CallEvent.type == "participant_joined")
        with self._sessions() as s:
            if s.scalar(select(CallEvent.id).where(of_call, CallEvent.source == "worker").limit(1)):
                return True
            payloads = s.scalars(select(CallEvent.payload).where(of_call, joins)).all()
        return any(((p or {}).get("participant") or {}).get("kind") == AGENT_KIND for p in payloads)

    async def _room_unanswered(self, call_id: str, room: str, now: float) -> None:
        """No livekit-server node answered for the call's room (see the module's docstring)."""
        if call_id not in self._unanswered_since:
            log.warning("no LiveKit node answers for the call's room", extra={"call_id": call_id})
        since = self._unanswered_since.setdefault(call_id, now)
        if now - since < self._node_lost_after:
            return
        # LiveKit answers for its rooms as a whole (raises if it does not): the room is still listed,
        # and no node has served it for the whole time
        if room not in await self._calls.room_names():
            return  # the room just went: the next pass settles the call
        log.warning("the call's media node was lost: no node took its room back", extra={"call_id": call_id})
        await self._ended(call_id, "media_node_lost", lc.OBSERVED, "media_node_lost")
        self._unanswered_since.pop(call_id, None)
        await self._calls.end_room(room)

    async def _end_leftover_rooms(self) -> None:
        """A room still in LiveKit ``ROOM_LINGER_S`` after its call ended (an agent that missed the
        phone leaving, e.g. across a Redis restart, keeps it alive for ever): deleted."""
        try:
            held = await self._calls.room_names()
        except PhoneagentError as exc:
            log.warning("could not list LiveKit's rooms", extra={"error": exc.message})
            return
        if not held:
            return
        cutoff = self._clock.now() - timedelta(seconds=ROOM_LINGER_S)
        for room in await asyncio.to_thread(self._ended_rooms, held, cutoff):
            log.warning("a room outlived its call; ending it", extra={"room": room})
            try:
                await self._calls.end_room(room)
            except PhoneagentError as exc:
                log.warning("could not end a leftover room", extra={"room": room, "error": exc.message})

    def _ended_rooms(self, held: list[str], cutoff: datetime) -> list[str]:
        with self._sessions() as s:
            return list(
                s.scalars(
                    select(Call.room_name).where(
                        Call.room_name.in_(held), Call.status == "ended", Call.ended_at < cutoff
                    )
                )
            )

    async def _unserved(
        self, call_id: str, room: str, agents: int, now: float, *, reoffers: int | None = None
    ) -> bool:
        """Whether no worker took the call's agent job ``unserved_after`` seconds after it arrived and
        again after each offer made anew (``reoffers``, by default ``unserved_reoffers``): with several
        livekit-server nodes the room's node gives a job to the node whose workers claimed the most
        free room a moment earlier; if they filled up meanwhile, the job is refused and LiveKit does not
        try another node's."""
        if call_id in self._served:
            return False
        if agents > 0:
            self._served.add(call_id)
            return False
        arrived = self._arrived.setdefault(call_id, now)
        if now - arrived < self._unserved_after:
            return False
        jobs = await self._calls.agent_jobs(room)
        if jobs is None:
            return False  # the room just went: the next pass settles the call
        if jobs > 0:
            self._served.add(call_id)  # an agent is on its way; a worker lost later is worker_lost
            return False
        offers = self._reoffered.get(call_id, 0)
        limit = self._reoffers if reoffers is None else reoffers
        if offers < limit and await self._calls.redispatch(room):
            log.warning("no worker took the call's agent job; offering it again", extra={"call_id": call_id})
            self._reoffered[call_id] = offers + 1
            self._arrived[call_id] = now
            return False
        return True

    async def _offer_again(self, call_id: str, room: str, agents: int, now: float) -> None:
        """An outbound call whose agent job no worker took is offered again (``_unserved``), every
        ``unserved_after`` seconds until a worker takes it or the lost-worker rule ends the call once
        it is answered: the callee is on the line, and refusing is no longer possible. Right after a
        worker died, LiveKit found no worker for a new job for a few seconds (the cluster test)."""
        try:
            if await self._unserved(call_id, room, agents, now, reoffers=OUTBOUND_REOFFERS):
                self._served.add(call_id)
        except PhoneagentError as exc:
            extra = {"call_id": call_id, "error": exc.message}
            log.warning("could not look at a call's agent job", extra=extra)

    async def _refused_unserved(self, call_id: str, room: str, people: RoomPeople, now: float) -> bool:
        """Refuse an inbound call that no worker took (see the module's docstring); True if it was."""
        if not people.sip:
            return False
        try:
            if not await self._unserved(call_id, room, people.agents, now):
                return False
            log.warning("no worker took the call: every line is busy", extra={"call_id": call_id})
            await self._calls.end_room(room)  # first: if LiveKit cannot, the next pass tries again
        except PhoneagentError as exc:
            log.warning("could not refuse an unserved call", extra={"call_id": call_id, "error": exc.message})
            return False
        await self._ended(call_id, "over_capacity", lc.DECLARED, "over_capacity")
        self._arrived.pop(call_id, None)
        return True

    async def _settle_stale_dial(self, call_id: str, room: str) -> None:
        people = await self._calls.people(room)
        active = people is not None and any(p.get("sip.callStatus") == "active" for p in people.sip)
        if active:
            await asyncio.to_thread(self._answered, call_id)
            self._on_change(call_id)
        else:
            await self._ended(call_id, "failed", lc.NO_EVIDENCE, "dial_lost")
            await self._calls.end_room(room)

    async def _ended(self, call_id: str, reason: EndReason, strength: int, kind: str) -> None:
        await asyncio.to_thread(self._end, call_id, reason, strength, kind)
        self._on_change(call_id)

    def _answered(self, call_id: str) -> None:
        with self._sessions() as s:
            call = s.get(Call, call_id)
            if call is not None:
                own_event(
                    s,
                    call,
                    "answered_seen",
                    lc.Fact(self._clock.now(), "in_progress"),
                    f"{call_id}:answered-seen",
                )
                s.commit()

    def _end(self, call_id: str, reason: EndReason, strength: int, kind: str) -> None:
        with self._sessions() as s:
            call = s.get(Call, call_id)
            if call is not None and call.status != "ended":
                fact = lc.Fact(self._clock.now(), "ended", reason, strength)
                own_event(s, call, kind, fact, f"{call_id}:{kind}", source_note="sweeper")
                s.commit()
