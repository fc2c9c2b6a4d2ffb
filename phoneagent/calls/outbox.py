"""Outgoing webhooks: a durable outbox, signed deliveries, retries with backoff, dead letters.

``enqueue`` writes one delivery row per subscribed endpoint in the caller's transaction, so a call's
step and its webhooks are committed together (nothing is sent for a step that was rolled back, and
nothing is lost when the process dies after the commit). ``Deliverer`` sends due rows: it first
*leases* a row (moves its ``next_attempt_at`` forward with a conditional update, so two control-plane
processes never send the same row at once), POSTs it, then records the outcome. A 2xx marks it
delivered; anything else schedules the next attempt after ``backoff(n)`` (exponential, with jitter);
after ``max_attempts`` the row is dead and waits for a replay through the API.

Delivery is at least once, with a stable event id in ``Phoneagent-Event-Id``: a receiver sees a
second copy only if this process dies between the receiver's 2xx and the commit of "delivered".
The signature scheme and the receiver's check are in ``phoneagent.webhooks``.

``call.ended`` is rendered at its first attempt, from the record as it is then, and the ``Deliverer``
makes no attempt before its policy's ``ended_grace_s`` has passed since the end was recorded (the row
was queued): the worker's last transcript turns and outcome arrive a moment after the end. The row is
queued due at once and the grace is the deliverer's to apply: the grace is a setting, and the fold
that queues the row (``records.refresh``) has no settings. Better evidence can change the record's end
reason after the first attempt (``phoneagent.calls.records``): ``correct_end_reason`` then queues a
``call.updated`` for each endpoint that was sent the old one.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import httpx
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from phoneagent.calls.passes import run_passes
from phoneagent.clock import Clock, SystemClock
from phoneagent.db.models import Call, CallTurn, WebhookDelivery, WebhookEndpoint
from phoneagent.netguard import AddressPolicy, failure_class, guarded_client
from phoneagent.webhooks import sign

log = logging.getLogger("phoneagent.webhooks")

# call.outcome: the post-call extraction finished (done or failed), later than call.ended is rendered;
# call.updated: the record changed after call.ended was rendered (see correct_end_reason)
EventType = Literal[
    "call.queued",
    "call.ringing",
    "call.answered",
    "call.ended",
    "call.updated",
    "call.outcome",
    "recording.ready",
    "recording.failed",
]
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_s: float = 10.0  # first retry after about this long; each next one 3x later
    factor: float = 3.0
    cap_s: float = 6 * 3600.0
    jitter: float = 0.2  # +- this share of each delay
    # call.ended's first attempt waits this long after the end was recorded, for the last transcript turns
    ended_grace_s: float = 3.0

    def backoff(self, attempt: int, rnd: Callable[[], float] = random.random) -> timedelta:
        """Delay after failed attempt number ``attempt`` (1-based)."""
        delay = min(self.cap_s, self.base_s * self.factor ** (attempt - 1))
        return timedelta(seconds=delay * (1 + self.jitter * (2 * rnd() - 1)))


def call_payload(session: Session, call: Call, *, with_transcript: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": call.id,
        "direction": call.direction,
        "status": call.status,
        "end_reason": call.end_reason,
        "from_number": call.from_number,
        "to_number": call.to_number,
        "agent_profile_id": call.agent_profile_id,
        "campaign_id": call.campaign_id,
        "created_at": call.created_at.isoformat(),
        "ringing_at": call.ringing_at.isoformat() if call.ringing_at else None,
        "answered_at": call.answered_at.isoformat() if call.answered_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "duration_ms": call.duration_ms,
        "sip_status_code": call.sip_status_code,
        "sip_status_reason": call.sip_status_reason,
        "disconnect_reason": call.disconnect_reason,
        "metadata": call.call_metadata,
        "outcome": call.outcome,
    }
    if call.recording_status:
        body["recording"] = {
            "status": call.recording_status,
            "location": call.recording_location,
            "size_bytes": call.recording_size_bytes,
            "duration_ms": call.recording_duration_ms,
            "format": call.recording_format,
            "layout": call.recording_layout,
            "started_at": call.recording_started_at.isoformat() if call.recording_started_at else None,
            "error": call.recording_error,
        }
    if with_transcript:
        turns = session.scalars(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
        body["transcript"] = [
            {
                "seq": t.seq,
                "speaker": t.speaker,
                "text": t.text,
                "started_at": t.started_at.isoformat() if t.started_at else None,
            }
            for t in turns
        ]
    return body


def enqueue(session: Session, call: Call, event_type: str) -> int:
    """Queue ``event_type`` about ``call`` for each subscribed endpoint; repeated calls add nothing.

    ``call.ended`` is queued unrendered, due at once: the deliverer holds it for its grace."""
    endpoints = _subscribed(session, call, (event_type,))
    if not endpoints:
        return 0
    payload = None if event_type == "call.ended" else call_payload(session, call)
    event_id = f"evt_{call.id}_{event_type.replace('.', '_')}"
    return _add(session, call, endpoints, event_type, event_id, payload, datetime.now(UTC))


# a subscriber of call.ended learns that what it was sent is no longer true, whether or not it asked
# for call.updated by name: a correction that only explicit subscribers got would leave it wrong
_CORRECTION_FOR: tuple[EventType, ...] = ("call.ended", "call.updated")


def correct_end_reason(session: Session, call: Call, before: str | None) -> int:
    """The ended call's end reason changed from ``before`` (later, better evidence): queue
    ``call.updated`` for each endpoint whose ``call.ended`` was rendered with the old one.

    An endpoint whose ``call.ended`` is not rendered yet gets none: it will render the record as it is
    then. One that takes neither ``call.ended`` nor ``call.updated`` any more (nor every event) gets
    none either. The payload is the call as now, as ``call.ended`` renders it, with what changed. The
    event id names the change, so two replicas folding the same change queue it once."""
    told = session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.call_id == call.id, WebhookDelivery.event_type == "call.ended"
        )
    ).all()
    rendered = {row.endpoint_id for row in told if row.payload is not None}
    endpoints = [e for e in _subscribed(session, call, _CORRECTION_FOR) if e.id in rendered]
    if not endpoints:
        return 0
    changed = {"end_reason": {"from": before, "to": call.end_reason}}
    payload = {**call_payload(session, call, with_transcript=True), "changed": changed}
    event_id = f"evt_{call.id}_call_updated_end_reason_{before or 'none'}_to_{call.end_reason or 'none'}"
    return _add(session, call, endpoints, "call.updated", event_id, payload, datetime.now(UTC))


def _subscribed(session: Session, call: Call, event_types: Collection[str]) -> list[WebhookEndpoint]:
    """The call's tenant's enabled endpoints that take any of ``event_types`` (an empty list: all)."""
    endpoints = session.scalars(
        select(WebhookEndpoint).where(
            WebhookEndpoint.tenant_id == call.tenant_id, WebhookEndpoint.enabled.is_(True)
        )
    ).all()
    return [e for e in endpoints if not e.events or any(t in e.events for t in event_types)]


def _add(
    session: Session,
    call: Call,
    endpoints: Sequence[WebhookEndpoint],
    event_type: str,
    event_id: str,
    payload: dict[str, Any] | None,
    due: datetime,
) -> int:
    """One delivery row per endpoint, none for an endpoint that has this event id queued already."""
    added = 0
    for ep in endpoints:
        row = WebhookDelivery(
            tenant_id=call.tenant_id,
            endpoint_id=ep.id,
            event_id=event_id,
            event_type=event_type,
            call_id=call.id,
            payload=payload,
            next_attempt_at=due,
        )
        try:
            with session.begin_nested():
                session.add(row)
            added += 1
        except IntegrityError:
            continue  # this event was queued for this endpoint already
    return added


def envelope(row: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": row.event_id,
        "type": row.event_type,
        "created_at": row.created_at.isoformat(),
        "data": row.payload,
    }


@dataclass(frozen=True)
class Lease:
    """A delivery row leased for one attempt: ``until`` is the row's ``next_attempt_at`` the lease
    set, and names it (a later lease of the row sets another)."""

    row_id: str
    tenant: str
    until: datetime


class Deliverer:
    """Sends due outbox rows; ``run`` loops until cancelled, ``deliver_due`` is one pass.

    Fair between tenants: at most ``per_tenant`` of one tenant's deliveries are in flight at once,
    and each pass takes due rows from every tenant in turn, so one tenant's slow or dead endpoints
    (each attempt may hang for the timeout) hold up no one else's. ``run`` does not wait for a pass's
    sends before it looks for more.

    A ``call.ended`` found due within its grace (``policy.ended_grace_s`` after it was queued) is not
    leased: the pass moves it to the end of its grace instead, so it takes none of its tenant's room,
    counts no attempt, and is not looked at again before then."""

    TIMEOUT_S = 10.0  # per request
    # a leased row is not picked again before this, even if the process that leased it died mid-send
    LEASE = timedelta(seconds=TIMEOUT_S + 5)

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        policy: RetryPolicy | None = None,
        addresses: AddressPolicy | None = None,
        batch: int = 50,
        concurrency: int = 8,
        per_tenant: int = 2,
        clock: Clock | None = None,
    ) -> None:
        self._sessions = sessions
        self.policy = policy or RetryPolicy()
        self._clock = clock or SystemClock()
        # tenants' URLs: public addresses only, checked on the address connected to (see netguard)
        self._client = guarded_client(addresses or AddressPolicy(), timeout=self.TIMEOUT_S)
        self._batch = batch
        self._sem = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._per_tenant = per_tenant
        self._in_flight: dict[str, int] = {}  # tenant -> its deliveries leased and not yet recorded
        self._sending: set[asyncio.Task[None]] = set()
        self.wake = asyncio.Event()

    async def aclose(self) -> None:
        for task in list(self._sending):
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)
        await self._client.aclose()

    async def run(self, *, idle_s: float = 1.0) -> None:
        # a pass that started sends looks again at once (more may be due, of other tenants); the sends
        # go on meanwhile, and their end wakes the next pass (their tenants have room again)
        await run_passes(log, "webhook delivery pass", self._start_due, self.wake, idle_s, more=bool)

    async def deliver_due(self) -> int:
        """One pass, waiting for its sends (tests, and a control plane that is stopping)."""
        leased = await self._lease()
        await asyncio.gather(*(self._send(lease) for lease in leased))
        return len(leased)

    async def _start_due(self) -> int:
        leased = await self._lease()
        for lease in leased:
            task = asyncio.create_task(self._send(lease), name=f"webhook-{lease.row_id}")
            self._sending.add(task)
            task.add_done_callback(self._sent)
        return len(leased)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self.wake.set()

    async def _lease(self) -> list[Lease]:
        # no more rows than there are send slots free: a leased row that waited for a slot behind
        # hanging attempts (each up to TIMEOUT_S) would outlive its LEASE, and another replica would
        # lease it and send it a second time
        free = self._concurrency - sum(self._in_flight.values())
        if free <= 0:
            return []
        room = {t: self._per_tenant - n for t, n in self._in_flight.items()}
        leased = await asyncio.to_thread(self._lease_due, room, min(free, self._batch))
        for lease in leased:
            self._in_flight[lease.tenant] = self._in_flight.get(lease.tenant, 0) + 1
        return leased

    def _lease_due(self, room: dict[str, int], limit: int) -> list[Lease]:
        """Lease up to ``limit`` due rows, taken from every tenant in turn (oldest first within each),
        at most as many of a tenant's as it has room for. A ``call.ended``
        within its grace is moved to the grace's end instead (see the class)."""
        now = self._clock.now()
        grace = timedelta(seconds=self.policy.ended_grace_s)
        with self._sessions() as s:
            due = s.execute(
                select(
                    WebhookDelivery.id,
                    WebhookDelivery.tenant_id,
                    WebhookDelivery.next_attempt_at,
                    WebhookDelivery.event_type,
                    WebhookDelivery.attempts,
                    WebhookDelivery.created_at,
                )
                .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(self._batch * 4)
            ).all()
            per_tenant: dict[str, list[tuple[str, datetime]]] = {}
            for row_id, tenant, at, event_type, attempts, queued_at in due:
                if event_type == "call.ended" and attempts == 0 and queued_at + grace > now:
                    # its first attempt only (a retry waits for its backoff alone); moved on the same
                    # condition as a lease: a replica that leased or moved it meanwhile wins
                    s.execute(
                        update(WebhookDelivery)
                        .where(WebhookDelivery.id == row_id, WebhookDelivery.next_attempt_at == at)
                        .values(next_attempt_at=queued_at + grace)
                    )
                elif len(per_tenant.setdefault(tenant, [])) < room.get(tenant, self._per_tenant):
                    per_tenant[tenant].append((row_id, at))
            queues = [[(row_id, tenant, at) for row_id, at in rows] for tenant, rows in per_tenant.items()]
            turns = itertools.zip_longest(*queues)
            leased: list[Lease] = []
            for row_id, tenant, at in (x for turn in turns for x in turn if x is not None):
                if len(leased) >= limit:
                    break
                until = now + self.LEASE
                got = s.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == row_id, WebhookDelivery.next_attempt_at == at)
                    .values(next_attempt_at=until)
                )
                if got.rowcount == 1:  # type: ignore[attr-defined]
                    leased.append(Lease(row_id, tenant, until))
            s.commit()
        return leased

    def _prepare(self, row_id: str) -> tuple[str, dict[str, str], bytes] | None:
        with self._sessions() as s:
            row = s.get(WebhookDelivery, row_id)
            endpoint = s.get(WebhookEndpoint, row.endpoint_id) if row else None
            if row is None or endpoint is None or row.status != "pending":
                return None
            if row.payload is None:  # rendered at its first attempt, then fixed for every retry
                call = _held_call(s, row)
                row.payload = call_payload(s, call, with_transcript=True) if call else {}
                s.commit()
            body = json.dumps(envelope(row), separators=(",", ":")).encode()
            headers = {
                "content-type": "application/json",
                "phoneagent-event-id": row.event_id,
                "phoneagent-event-type": row.event_type,
                "phoneagent-signature": sign(endpoint.secret, body),
                "user-agent": "phoneagent-webhooks",
            }
            return endpoint.url, headers, body

    async def _send(self, lease: Lease) -> None:
        try:
            async with self._sem:
                await self._attempt(lease)
        finally:
            self._in_flight[lease.tenant] -= 1
            if not self._in_flight[lease.tenant]:
                del self._in_flight[lease.tenant]

    async def _attempt(self, lease: Lease) -> None:
        row_id = lease.row_id
        prepared = await asyncio.to_thread(self._prepare, row_id)
        if prepared is not None:
            url, headers, body = prepared
            code: int | None = None
            error: str | None = None
            try:
                resp = await self._client.post(url, content=body, headers=headers)
                code = resp.status_code
                if not 200 <= code < 300:
                    error = f"HTTP {code}"
            except httpx.HTTPError as exc:
                # the tenant sees the kind of failure; the operator's log has the error itself
                error = failure_class(exc)
                log.info(
                    "webhook delivery failed",
                    extra={"delivery": row_id, "error": f"{type(exc).__name__}: {exc}"[:500]},
                )
            await asyncio.to_thread(self._record, lease, code, error)

    def _record(self, lease: Lease, code: int | None, error: str | None) -> None:
        """The attempt's result, if its lease still holds the row. A send that outlived its lease
        (another replica may have leased and sent the row meanwhile) records only a success: the
        receiver has the event; a late failure would undo the other attempt's lease or result."""
        now = self._clock.now()
        with self._sessions() as s:
            row = s.get(WebhookDelivery, lease.row_id, with_for_update=True)
            if row is None:
                return
            held = row.status == "pending" and row.next_attempt_at == lease.until
            if not held:
                log.info(
                    "a webhook send outlived its lease",
                    extra={"delivery": row.id, "error": error or "", "status": row.status},
                )
                if error is None and row.status != "delivered":
                    row.status, row.delivered_at, row.last_status_code = "delivered", now, code
                    s.commit()
                return
            row.attempts += 1
            row.last_attempt_at, row.last_status_code, row.last_error = now, code, error
            if error is None:
                row.status, row.delivered_at = "delivered", now
            elif row.attempts >= self.policy.max_attempts:
                row.status = "dead"
                log.warning(
                    "webhook delivery is dead after %d attempts",
                    row.attempts,
                    extra={"delivery": row.id, "event_type": row.event_type, "error": error},
                )
            else:
                row.next_attempt_at = now + self.policy.backoff(row.attempts)
            s.commit()


def _held_call(session: Session, row: WebhookDelivery) -> Call | None:
    """The delivery's call as last committed, held until its rendered payload is: a fold that changes
    the call meanwhile (``records.refresh``) either commits first and is rendered, or comes after and
    finds the payload rendered, and corrects it (``correct_end_reason``). Without this, a fold between
    the read and the commit was lost to both. On PostgreSQL the call's row is locked, as the fold locks
    it; SQLite has no row locks but one writer at a time, so a write comes first: it waits for a fold
    in progress, and what is read after it is what that fold committed."""
    if row.call_id is None:
        return None
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == row.id)
            .values(attempts=WebhookDelivery.attempts)  # changes nothing; takes the write lock
            .execution_options(synchronize_session=False)
        )
    return session.scalars(select(Call).where(Call.id == row.call_id).with_for_update()).one_or_none()


def replay(session: Session, row: WebhookDelivery) -> None:
    """A dead (or delivered) delivery goes out again with its original event id and payload."""
    row.status, row.attempts, row.next_attempt_at = "pending", 0, datetime.now(UTC)
    row.last_error = None
