"""Two transactions adding events to one call at once, on PostgreSQL: the second folds the record
with the first's event in view (the call's row is locked for the fold), so no fact is lost to the
last writer."""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from phoneagent.calls import lifecycle as lc
from phoneagent.calls import records
from phoneagent.calls.records import own_event
from phoneagent.db.engine import make_engine, session_factory
from phoneagent.db.models import Call, Tenant
from tests.peers.postgres import TempPostgres

_names = itertools.count()


def _one_call(postgres: TempPostgres) -> tuple[Engine, sessionmaker[Session], str]:
    """A database of its own holding one outbound call being dialed."""
    engine = make_engine(postgres.create_database(f"fold{next(_names)}", template="phoneagent_template"))
    sessions = session_factory(engine)
    with sessions() as s:
        tenant = Tenant(name="t")
        s.add(tenant)
        s.flush()
        call = Call(tenant_id=tenant.id, direction="outbound", status="dialing", room_name="r")
        s.add(call)
        s.commit()
        return engine, sessions, call.id


def _at_once(*transactions: Callable[[], None]) -> None:
    """Each in a thread of its own, all started together; returns when all are done (30 s each)."""
    threads = [threading.Thread(target=run) for run in transactions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


def test_concurrent_events_on_one_call_both_count(postgres: TempPostgres) -> None:
    engine, sessions, call_id = _one_call(postgres)
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    first_folded = threading.Event()
    errors: list[BaseException] = []

    def hung_up() -> None:  # the first transaction: the API was asked to hang up; folds, then commits later
        try:
            with sessions() as s:
                c = s.get(Call, call_id)
                assert c is not None
                fact = lc.Fact(t0 + timedelta(seconds=5), "ended", "api_hangup", lc.DECLARED)
                own_event(s, c, "hangup_requested", fact, f"{call_id}:hangup")
                first_folded.set()
                threading.Event().wait(0.5)  # the second transaction folds meanwhile
                s.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
            first_folded.set()

    def busy() -> None:  # the second: the SIP answer to the dial, a weaker kind of evidence
        try:
            first_folded.wait(10)
            with sessions() as s:
                c = s.get(Call, call_id)
                assert c is not None
                fact = lc.Fact(t0 + timedelta(seconds=6), "ended", "busy", lc.SIP_FINAL, sip_status_code=486)
                own_event(s, c, "dial_sip_final", fact, f"{call_id}:dial")
                s.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    _at_once(hung_up, busy)
    try:
        assert not errors, errors
        with sessions() as s:
            c = s.get(Call, call_id)
            assert c is not None
            # what the API declared beats a SIP answer, whichever transaction wrote last
            assert (c.status, c.end_reason) == ("ended", "api_hangup"), (c.end_reason, c.sip_status_code)
    finally:
        engine.dispose()


def test_two_events_added_to_one_call_at_the_same_instant_do_not_deadlock(
    postgres: TempPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replicas each given an event of one call at the same instant (LiveKit sends each event to
    every URL, workers' events come through the balancer). Inserting an event takes a shared key lock
    on its call's row; when both transactions held one and then asked for the row lock the fold
    takes, PostgreSQL broke the deadlock by failing one (the cluster test saw DeadlockDetected). The
    row lock is now taken before the insert: the second waits for the first and both events count."""
    engine, sessions, call_id = _one_call(postgres)
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    both_inserted = threading.Barrier(2, timeout=2)
    fold = records.refresh

    def refresh_when_both_inserted(session: Session, c: Call) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):  # the other one waits on the row lock
            both_inserted.wait()
        fold(session, c)

    monkeypatch.setattr(records, "refresh", refresh_when_both_inserted)
    errors: list[BaseException] = []

    def add(kind: str, fact: lc.Fact) -> None:
        try:
            with sessions() as s:
                c = s.get(Call, call_id)
                assert c is not None
                own_event(s, c, kind, fact, f"{call_id}:{kind}")
                s.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    answered = lc.Fact(t0 + timedelta(seconds=2), "in_progress", None, lc.SIP_FINAL)
    hung_up = lc.Fact(t0 + timedelta(seconds=9), "ended", "api_hangup", lc.DECLARED)
    _at_once(lambda: add("answered", answered), lambda: add("hung_up", hung_up))
    try:
        assert not errors, errors
        with sessions() as s:
            c = s.get(Call, call_id)
            assert c is not None
            assert (c.status, c.end_reason) == ("ended", "api_hangup")
            assert c.answered_at is not None
    finally:
        engine.dispose()
