"""The post-call extraction: an agent profile's ``outcome_schema`` filled from the ended call's
transcript by an LLM, into the call's ``outcome.extracted``, with ``outcome.extraction`` saying how
it went (``{"status": "done" | "failed" | "skipped", "model", "error"?, "at"}``).

The database is the queue, as the webhook outbox is (``phoneagent.calls.outbox``):

- :func:`queue` writes a row when a call ends, in the transaction that ends it, if the call's agent
  profile (of the call's own tenant) declares a schema; the row keeps that schema. It is due after
  the grace ``call.ended`` waits for the last transcript turns.
- :class:`Extractor` *leases* due rows (a conditional update that moves ``next_attempt_at`` past the
  attempt's timeout and stamps the row with the attempt's token, counting the attempt), asks the LLM,
  and records the result only while its token still holds the row. A control plane that dies
  mid-way leaves a leased row, which becomes due again when its lease ends; one whose lease ended and
  was taken over can no longer record. So each call's extraction is stored once, and its
  ``call.outcome`` webhook queued once (with the result, in the same transaction), whatever restarts.
- A 5xx, 408, 429, a timeout or a network error is retried after a backoff (exponential, with
  jitter) until the attempts are used up; any other 4xx, or an answer the schema refuses, fails at
  once. A call without a caller's words, or a control plane with extraction off, is ``skipped``
  (no LLM asked, no webhook).

The extraction writes only its own two keys of the outcome; the worker's outcome, applied later or
earlier (``phoneagent.calls.outcome.apply_outcome``), keeps them. Both lock the call row first.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from phoneagent.calls.extraction_llm import ExtractionLLM
from phoneagent.calls.outbox import enqueue
from phoneagent.calls.outcome import lock_outcome
from phoneagent.calls.outcome_schema import AnswerError, check_answer
from phoneagent.calls.passes import run_passes
from phoneagent.clock import Clock, SystemClock
from phoneagent.db.models import AgentProfile, Call, CallTurn, OutcomeExtraction
from phoneagent.db.states import ExtractionStatus
from phoneagent.errors import ExtractionError

log = logging.getLogger("phoneagent.extraction")

ENDED_GRACE_S = 3.0  # as call.ended: the worker's last turns arrive within it
MAX_TRANSCRIPT_CHARS = 100_000  # the start of a longer call is sent, with a note that it goes on


def queue(session: Session, call: Call, *, grace_s: float = ENDED_GRACE_S) -> bool:
    """Queue the extraction of ``call``, which has just ended, when its agent profile declares an
    outcome schema (caller commits); repeated calls add nothing."""
    if call.agent_profile_id is None:
        return False
    profile = session.get(AgentProfile, call.agent_profile_id)
    if profile is None or profile.tenant_id != call.tenant_id or not profile.outcome_schema:
        return False
    row = OutcomeExtraction(
        call_id=call.id,
        schema=profile.outcome_schema,
        next_attempt_at=datetime.now(UTC) + timedelta(seconds=grace_s),
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False  # queued already
    return True


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_s: float = 5.0  # first retry after about this long; each next one 3x later
    factor: float = 3.0
    cap_s: float = 3600.0
    jitter: float = 0.2

    def backoff(self, attempt: int, rnd: Callable[[], float] = random.random) -> timedelta:
        delay = min(self.cap_s, self.base_s * self.factor ** (attempt - 1))
        return timedelta(seconds=delay * (1 + self.jitter * (2 * rnd() - 1)))


@dataclass(frozen=True)
class Lease:
    call_id: str
    token: str
    attempt: int


class Extractor:
    """Extracts the due calls' outcomes; ``run`` loops until cancelled, ``extract_due`` is one pass.

    ``llm`` None: extraction is off on this control plane, and the queued calls are skipped."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        llm: ExtractionLLM | None,
        *,
        policy: RetryPolicy | None = None,
        timeout_s: float = 60.0,
        concurrency: int = 2,
        clock: Clock | None = None,
    ) -> None:
        self._sessions = sessions
        self._llm = llm
        self.policy = policy or RetryPolicy()
        # a leased row is not taken again before this, even if the process that leased it died
        self.lease_for = timedelta(seconds=timeout_s + 30)
        self._concurrency = concurrency
        self._clock = clock or SystemClock()
        self.wake = asyncio.Event()

    async def aclose(self) -> None:
        if self._llm is not None:
            await self._llm.aclose()

    async def run(self, *, idle_s: float = 1.0) -> None:
        await run_passes(log, "outcome extraction pass", self.extract_due, self.wake, idle_s, more=bool)

    async def extract_due(self) -> int:
        """Lease the due calls (at most ``concurrency``), extract each; how many were leased."""
        leases = await asyncio.to_thread(self.lease_due)
        await asyncio.gather(*(self.extract(lease) for lease in leases))
        return len(leases)

    # ---- the queue ---------------------------------------------------------------------------------

    def lease_due(self) -> list[Lease]:
        now = self._clock.now()
        with self._sessions() as s:
            due = s.execute(
                select(
                    OutcomeExtraction.call_id, OutcomeExtraction.next_attempt_at, OutcomeExtraction.attempts
                )
                .where(OutcomeExtraction.status == "pending", OutcomeExtraction.next_attempt_at <= now)
                .order_by(OutcomeExtraction.next_attempt_at)
                .limit(self._concurrency)
            ).all()
            leases = []
            for call_id, at, attempts in due:
                token = secrets.token_hex(8)
                got = s.execute(
                    update(OutcomeExtraction)
                    .where(
                        OutcomeExtraction.call_id == call_id,
                        OutcomeExtraction.status == "pending",
                        OutcomeExtraction.next_attempt_at == at,
                    )
                    .values(next_attempt_at=now + self.lease_for, lease=token, attempts=attempts + 1)
                )
                if got.rowcount == 1:  # type: ignore[attr-defined]
                    leases.append(Lease(call_id, token, attempts + 1))
            s.commit()
        return leases

    def _held(self, s: Session, lease: Lease) -> OutcomeExtraction | None:
        """The row, locked, if ``lease`` still holds it."""
        return s.scalar(
            select(OutcomeExtraction)
            .where(
                OutcomeExtraction.call_id == lease.call_id,
                OutcomeExtraction.status == "pending",
                OutcomeExtraction.lease == lease.token,
            )
            .with_for_update()
        )

    # ---- one call --------------------------------------------------------------------------------------

    async def extract(self, lease: Lease) -> bool:
        """One attempt at ``lease``'s call; whether its result was recorded (False: the lease was lost)."""
        if lease.attempt > self.policy.max_attempts:
            # the last attempt's control plane stopped before it recorded anything
            return await asyncio.to_thread(
                self.record, lease, "failed", error=f"no answer after {self.policy.max_attempts} attempts"
            )
        if self._llm is None:
            return await asyncio.to_thread(
                self.record, lease, "skipped", error="outcome extraction is off on this control plane"
            )
        work = await asyncio.to_thread(self._work, lease)
        if work is None:
            return False
        schema, transcript = work
        if not transcript:
            return await asyncio.to_thread(self.record, lease, "skipped", error="the caller said nothing")
        try:
            extracted = check_answer(schema, await self._llm.extract(transcript, schema))
        except AnswerError as exc:
            return await asyncio.to_thread(self.record, lease, "failed", error=f"the LLM's answer: {exc}")
        except ExtractionError as exc:
            return await asyncio.to_thread(
                self.record, lease, "failed", error=exc.message, retry=exc.retryable
            )
        return await asyncio.to_thread(self.record, lease, "done", extracted=extracted)

    def _work(self, lease: Lease) -> tuple[dict[str, Any], str] | None:
        """The schema and the transcript ("" when the caller said nothing), if the lease holds."""
        with self._sessions() as s:
            row = s.get(OutcomeExtraction, lease.call_id)
            if row is None or row.lease != lease.token:
                return None
            turns = s.scalars(
                select(CallTurn).where(CallTurn.call_id == lease.call_id).order_by(CallTurn.seq)
            ).all()
            if not any(t.speaker == "caller" and t.text.strip() for t in turns):
                return row.schema, ""
            return row.schema, transcript_text(turns)

    def record(
        self,
        lease: Lease,
        status: ExtractionStatus,
        *,
        extracted: dict[str, Any] | None = None,
        error: str | None = None,
        retry: bool = False,
    ) -> bool:
        """Record an attempt's result while ``lease`` holds the row; a retryable failure with attempts
        left makes the row due again after the backoff. False: another attempt holds the row now."""
        now = self._clock.now()
        with self._sessions() as s:
            row = self._held(s, lease)
            if row is None:
                log.info(
                    "an extraction's lease was lost; its result is dropped", extra={"call_id": lease.call_id}
                )
                return False
            if retry and lease.attempt < self.policy.max_attempts:
                row.lease, row.last_error = None, error
                row.next_attempt_at = now + self.policy.backoff(lease.attempt)
                s.commit()
                return True
            if retry:
                error = f"{error} (after {lease.attempt} attempts)"
            row.status, row.lease, row.last_error, row.finished_at = status, None, error, now
            call = s.get(Call, lease.call_id)
            if call is not None:
                self._write_outcome(s, call, status, extracted, error, now)
            s.commit()
        log.info("outcome extraction %s", status, extra={"call_id": lease.call_id, "attempts": lease.attempt})
        return True

    def _write_outcome(
        self,
        s: Session,
        call: Call,
        status: ExtractionStatus,
        extracted: dict[str, Any] | None,
        error: str | None,
        now: datetime,
    ) -> None:
        lock_outcome(s, call)
        outcome = dict(call.outcome or {})
        if extracted is not None:
            outcome["extracted"] = extracted
        report: dict[str, Any] = {"status": status, "model": self._llm.model if self._llm else None}
        if error is not None:
            report["error"] = error[:500]
        report["at"] = now.isoformat()
        outcome["extraction"] = report
        call.outcome = outcome
        s.flush()
        if status in ("done", "failed"):
            enqueue(s, call, "call.outcome")


def transcript_text(turns: Sequence[CallTurn]) -> str:
    """The transcript as the LLM reads it: one line per turn, by who spoke; bounded."""
    lines = [
        f"{'Caller' if t.speaker == 'caller' else 'Agent'}: {t.text.strip()}" for t in turns if t.text.strip()
    ]
    text = "\n".join(lines)
    if len(text) > MAX_TRANSCRIPT_CHARS:
        text = text[:MAX_TRANSCRIPT_CHARS] + "\n(the call goes on; the rest is left out)"
    return text
