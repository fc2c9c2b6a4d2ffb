"""Outbound calls: placed through the API (queued, idempotent), dialed by the ``Dialer``, hung up in
any state.

``place_call`` only writes the record (``queued``) and its ``call.queued`` webhook; the dialer picks
queued calls in order, as long as the tenant and the outbound trunk are under their caps (excess
calls wait, they are never dropped), claims each with a conditional update, sends the agent into the
call's room, and dials through livekit-sip. Every outcome is written as a lifecycle fact, so the
record's status and end reason come from the same fold as every other source's events.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from phoneagent.calls import lifecycle as lc
from phoneagent.calls.outbox import enqueue
from phoneagent.calls.passes import run_passes
from phoneagent.calls.records import own_event
from phoneagent.clock import Clock, SystemClock
from phoneagent.db.base import new_id
from phoneagent.db.models import AgentProfile, Call, OutboundTrunk
from phoneagent.errors import Conflict, InvalidField, PhoneagentError, QueueFull
from phoneagent.provisioning.resources import get_owned
from phoneagent.telephony.destinations import NumberPolicy
from phoneagent.telephony.interface import CallControl, DialOutcome

log = logging.getLogger("phoneagent.calls")

LIVE = ("dialing", "ringing", "in_progress")


@dataclass(frozen=True)
class CallRequest:
    to: str  # E.164
    agent_profile_id: str
    outbound_trunk_id: str | None = None
    from_number: str | None = None
    ring_timeout_s: int = 30
    metadata: dict[str, Any] = field(default_factory=dict)
    campaign_id: str | None = None

    def fingerprint(self) -> str:
        body = json.dumps(self.__dict__, sort_keys=True, default=str)
        return hashlib.sha256(body.encode()).hexdigest()


def _trunk_for(session: Session, tenant_id: str, req: CallRequest) -> tuple[OutboundTrunk, str]:
    if req.outbound_trunk_id:
        trunk = get_owned(session, OutboundTrunk, tenant_id, req.outbound_trunk_id)
        from_number = req.from_number or (trunk.numbers[0] if trunk.numbers else "")
        if req.from_number and trunk.numbers and req.from_number not in trunk.numbers:
            raise InvalidField("from_number", "is not one of the outbound trunk's numbers")
        return trunk, from_number
    if not req.from_number:
        raise InvalidField("outbound_trunk_id", "give an outbound trunk, or a from_number one of them holds")
    trunks = session.scalars(select(OutboundTrunk).where(OutboundTrunk.tenant_id == tenant_id)).all()
    for trunk in trunks:
        if req.from_number in trunk.numbers:
            return trunk, req.from_number
    raise InvalidField("from_number", "no outbound trunk of yours holds this number")


def place_call(
    session: Session,
    tenant_id: str,
    req: CallRequest,
    *,
    idempotency_key: str | None = None,
    max_queued: int | None = None,
    numbers: NumberPolicy | None = None,
) -> tuple[Call, bool]:
    """Queue an outbound call; (call, created). The same idempotency key gives the same call back,
    also when requests race; reusing a key for a different request is a conflict. A tenant with
    ``max_queued`` calls waiting already gets QueueFull (429). Flushes; the caller owns the
    transaction and commits (a refused or raced call leaves the caller's other work as it was)."""
    fingerprint = req.fingerprint()
    if idempotency_key:
        existing = _by_key(session, tenant_id, idempotency_key)
        if existing is not None:
            return _same_request(existing, fingerprint), False
    if numbers is not None and (why := numbers.why_refused(req.to)) is not None:
        raise InvalidField("to", why)
    if max_queued is not None:
        waiting = session.scalar(
            select(func.count()).where(Call.tenant_id == tenant_id, Call.status == "queued")
        )
        if (waiting or 0) >= max_queued:
            raise QueueFull(
                f"{waiting} of this tenant's calls are waiting to be dialed already (at most {max_queued}); "
                "place more as they go out"
            )
    get_owned(session, AgentProfile, tenant_id, req.agent_profile_id)
    trunk, from_number = _trunk_for(session, tenant_id, req)
    call_id = new_id("call")
    call = Call(
        id=call_id,
        tenant_id=tenant_id,
        direction="outbound",
        status="queued",
        from_number=from_number,
        to_number=req.to,
        agent_profile_id=req.agent_profile_id,
        outbound_trunk_id=trunk.id,
        room_name=f"call-{call_id}",
        ring_timeout_s=req.ring_timeout_s,
        call_metadata=req.metadata,
        idempotency_key=idempotency_key,
        idempotency_hash=fingerprint if idempotency_key else None,
        campaign_id=req.campaign_id,
    )
    try:
        with session.begin_nested():  # only this insert is undone if it loses a race
            session.add(call)
    except IntegrityError:  # a concurrent request with the same key won the insert
        existing = _by_key(session, tenant_id, idempotency_key or "")
        if existing is None:
            raise
        return _same_request(existing, fingerprint), False
    own_event(session, call, "queued", lc.Fact(call.created_at, "queued"), f"{call.id}:queued")
    enqueue(session, call, "call.queued")
    session.flush()
    return call, True


def _by_key(session: Session, tenant_id: str, key: str) -> Call | None:
    return session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.idempotency_key == key))


def _same_request(call: Call, fingerprint: str) -> Call:
    if call.idempotency_hash != fingerprint:
        raise Conflict("this Idempotency-Key was used for a different request")
    return call


def request_hangup(session: Session, call: Call) -> bool:
    """Record that the API was asked to end the call; True when the call was still live. Flushes;
    the caller commits.

    A queued call ends here; a live one also needs its room ended (``Dialer.hang_up``)."""
    if call.status == "ended":
        return False
    live = call.status != "queued"
    now = datetime.now(UTC)
    own_event(
        session,
        call,
        "hangup_requested",
        lc.Fact(now, "ended", "api_hangup", lc.DECLARED),
        f"{call.id}:hangup",
    )
    session.flush()
    return live


@dataclass
class _Job:
    call_id: str
    room: str
    trunk_livekit_id: str
    to: str
    from_number: str
    ring_timeout_s: int
    max_call_s: int
    agent_profile_id: str | None
    metadata: dict[str, Any]
    tenant_id: str
    # a warm transfer's consultation leg: no agent of its own (the caller's agent joins its room)
    consultation: bool = False


# the PostgreSQL advisory lock dialer passes take turns on (any number no other lock of ours uses)
DIALER_LOCK = 0x7068_6F6E_6531  # "phone1"
# queued calls looked at per tenant in one dialer pass (the tenant and trunk caps decide how many go)
CLAIM_PER_TENANT = 50


class Dialer:
    """Dials queued outbound calls under the tenant and trunk caps; ``run`` loops until cancelled."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        calls: CallControl,
        *,
        agent_name: str,
        max_calls_per_tenant: int,
        clock: Clock | None = None,
        ringing_poll_s: float = 0.3,
        on_change: Callable[[str], None] = lambda _call_id: None,
    ) -> None:
        self._on_change = on_change  # a call's record changed (``calls.changes``)
        self._sessions = sessions
        self._calls = calls
        self._clock = clock or SystemClock()
        self._ringing_poll_s = ringing_poll_s
        self._agent_name = agent_name
        self._tenant_cap = max_calls_per_tenant
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.wake = asyncio.Event()

    @property
    def dialing(self) -> set[str]:
        return set(self._tasks)

    async def run(self, *, idle_s: float = 0.5) -> None:
        # a failed pass leaves the queue as it is: the next one claims the same calls
        await run_passes(log, "dialer pass", self._pass, self.wake, idle_s)

    async def step(self) -> None:
        """One pass: claim the queued calls the caps allow and start dialing each."""
        await self._pass()

    async def idle(self) -> None:
        """Wait until every call this process is dialing has its outcome recorded."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _pass(self) -> None:
        for job in await asyncio.to_thread(self._claim):
            self._on_change(job.call_id)
            task = asyncio.create_task(self._dial(job), name=f"dial-{job.call_id}")
            self._tasks[job.call_id] = task
            task.add_done_callback(functools.partial(self._done, job.call_id))

    def _done(self, call_id: str, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(call_id, None)
        self._on_change(call_id)  # a request waiting for the dial's outcome may return now

    async def aclose(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def _claim(self) -> list[_Job]:
        jobs: list[_Job] = []
        with self._sessions() as s:
            # control-plane replicas on one PostgreSQL take turns: each counts the live calls against
            # the caps and claims within one transaction, so two cannot both fill the last free place
            # (the lock is the transaction's: it goes with the commit, or with a replica that dies)
            if s.get_bind().dialect.name == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": DIALER_LOCK})
            live_tenant = dict(
                s.execute(
                    select(Call.tenant_id, func.count()).where(Call.status.in_(LIVE)).group_by(Call.tenant_id)
                )
                .tuples()
                .all()
            )
            queued = self._fair_queue(s, live_tenant)
            if not queued:
                return jobs
            live_trunk = dict(
                s.execute(
                    select(Call.outbound_trunk_id, func.count())
                    .where(Call.status.in_(LIVE))
                    .group_by(Call.outbound_trunk_id)
                )
                .tuples()
                .all()
            )
            for call in queued:
                trunk = s.get(OutboundTrunk, call.outbound_trunk_id) if call.outbound_trunk_id else None
                if trunk is None or not trunk.livekit_id:
                    self._fail_now(s, call, "the outbound trunk is gone")
                    continue
                if live_tenant.get(call.tenant_id, 0) >= self._tenant_cap:
                    continue
                if live_trunk.get(trunk.id, 0) >= trunk.max_concurrent_calls:
                    continue
                claimed = s.execute(
                    update(Call).where(Call.id == call.id, Call.status == "queued").values(status="dialing")
                )
                if claimed.rowcount != 1:  # type: ignore[attr-defined]
                    continue  # another process took it, or it was hung up meanwhile
                s.refresh(call)
                own_event(s, call, "dialing", lc.Fact(self._clock.now(), "dialing"), f"{call.id}:dialing")
                live_tenant[call.tenant_id] = live_tenant.get(call.tenant_id, 0) + 1
                live_trunk[trunk.id] = live_trunk.get(trunk.id, 0) + 1
                profile = s.get(AgentProfile, call.agent_profile_id) if call.agent_profile_id else None
                jobs.append(
                    _Job(
                        call.id,
                        call.room_name or f"call-{call.id}",
                        trunk.livekit_id,
                        call.to_number,
                        call.from_number,
                        call.ring_timeout_s,
                        profile.max_duration_s if profile else 1800,
                        call.agent_profile_id,
                        call.call_metadata,
                        call.tenant_id,
                        consultation=call.parent_call_id is not None,
                    )
                )
            s.commit()
        return jobs

    def _fair_queue(self, s: Session, live_tenant: dict[str, int]) -> list[Call]:
        """The queued calls to try in this pass, taken in turn from every tenant under its cap (each
        tenant's oldest first): a tenant with a long queue, or one at its cap, holds no one else up."""
        waiting = (Call.status == "queued", Call.direction == "outbound")
        tenants = s.scalars(select(Call.tenant_id).where(*waiting).distinct()).all()
        per_tenant = []
        for tenant_id in sorted(tenants):
            if live_tenant.get(tenant_id, 0) >= self._tenant_cap:
                continue
            per_tenant.append(
                s.scalars(
                    select(Call)
                    .where(*waiting, Call.tenant_id == tenant_id)
                    .order_by(Call.created_at, Call.id)
                    .limit(CLAIM_PER_TENANT)
                ).all()
            )
        return [c for turn in itertools.zip_longest(*per_tenant) for c in turn if c is not None]

    def _fail_now(self, s: Session, call: Call, why: str) -> None:
        own_event(
            s,
            call,
            "dial_failed",
            lc.Fact(self._clock.now(), "ended", "failed", lc.SIP_FINAL),
            f"{call.id}:dial",
            detail=why,
        )

    async def _dial(self, job: _Job) -> None:
        ringing = asyncio.create_task(self._watch_ringing(job))
        try:
            meta = {
                "agent_profile_id": job.agent_profile_id,
                "call_id": job.call_id,
                "direction": "outbound",
                "tenant_id": job.tenant_id,
                "metadata": job.metadata,
            }
            if job.consultation:
                await self._calls.create_room(job.room)
                if not await asyncio.to_thread(self._wanted, job.call_id):
                    # the caller's agent gave the leg up while it was being claimed: never ring
                    await self._calls.end_room(job.room)
                    return
            else:
                await self._calls.dispatch_agent(job.room, self._agent_name, meta)
            outcome = await self._calls.dial(
                room=job.room,
                trunk_id=job.trunk_livekit_id,
                to=job.to,
                from_number=job.from_number,
                identity=f"phone-{job.call_id}",
                ring_timeout_s=job.ring_timeout_s,
                max_call_s=job.max_call_s,
                attributes={"phoneagent.call_id": job.call_id},
            )
        except PhoneagentError as exc:  # LiveKit refused the room or the dispatch, or is down: failed
            outcome = DialOutcome("failed", detail=f"{type(exc).__name__}: {exc.message}"[:300])
        except Exception as exc:  # noqa: BLE001 - a bug: its traceback is logged, the call fails, not hangs
            log.exception("dialing failed unexpectedly", extra={"call_id": job.call_id})
            outcome = DialOutcome("failed", detail=f"internal error: {type(exc).__name__}")
        finally:
            ringing.cancel()
        await self._keep_trying(self._record_outcome, job, outcome, self._clock.now())
        self._on_change(job.call_id)
        if outcome.kind != "answered":
            try:
                await self._calls.end_room(job.room)  # the agent leaves the empty room at once
            except PhoneagentError as exc:  # the room empties itself (empty_timeout) in time
                log.warning("could not end the room", extra={"call_id": job.call_id, "error": exc.message})

    def _wanted(self, call_id: str) -> bool:
        with self._sessions() as s:
            call = s.get(Call, call_id)
            return call is not None and call.status != "ended"

    async def _keep_trying(self, write: Callable[..., None], *args: Any) -> None:
        """A write the call's truth depends on (what the callee answered, known only here), retried
        while the database is unreachable (restarting, failing over) instead of lost; meanwhile the
        call stays this dialer's (``dialing``), so neither the sweeper nor a campaign settles it."""
        delay = 0.5
        while True:
            try:
                await asyncio.to_thread(write, *args)
                return
            except (OperationalError, InterfaceError) as exc:
                log.warning(
                    "database unavailable: the dial's outcome is kept and written again",
                    extra={"error": type(exc.orig).__name__, "retry_in_s": delay},
                )
            await self._clock.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _record_outcome(self, job: _Job, o: DialOutcome, now: datetime) -> None:
        if o.kind == "answered":
            fact = lc.Fact(now, "in_progress")
        elif o.kind == "sip_final" and o.sip_status_code is not None:
            fact = lc.sip_final(now, o.sip_status_code, o.sip_status_reason)
        elif o.kind == "no_answer":
            fact = lc.Fact(now, "ended", "no_answer", lc.SIP_FINAL)
        else:
            fact = lc.Fact(now, "ended", "failed", lc.SIP_FINAL)
        with self._sessions() as s:
            call = s.get(Call, job.call_id)
            if call is not None:
                own_event(s, call, f"dial_{o.kind}", fact, f"{job.call_id}:dial", detail=o.detail)
                s.commit()
        log.info("call dialed", extra={"call_id": job.call_id, "outcome": o.kind, "sip": o.sip_status_code})

    async def _watch_ringing(self, job: _Job) -> None:
        """livekit-sip marks its participant ``sip.callStatus=ringing`` on 180/183: record it once."""
        while True:
            await self._clock.sleep(self._ringing_poll_s)
            try:
                people = await self._calls.people(job.room)
            except PhoneagentError as exc:  # a missed poll only delays ringing_at
                log.debug("ringing poll failed", extra={"call_id": job.call_id, "error": exc.message})
                continue
            if people and any(p.get("sip.callStatus") in ("ringing", "active") for p in people.sip):
                break
        await asyncio.to_thread(self._ringing, job.call_id)
        self._on_change(job.call_id)

    def _ringing(self, call_id: str) -> None:
        with self._sessions() as s:
            call = s.get(Call, call_id)
            if call is not None:
                own_event(s, call, "ringing", lc.Fact(self._clock.now(), "ringing"), f"{call_id}:ringing")
                s.commit()

    async def hang_up(self, call_id: str, room: str | None) -> None:
        task = self._tasks.get(call_id)
        if room:
            await self._calls.end_room(room)  # a ringing phone gets a CANCEL, an answered one a BYE
        if task is not None:
            task.cancel()
