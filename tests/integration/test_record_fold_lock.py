"""Two transactions adding events to one call at once, on PostgreSQL: the second folds the record
with the first's event in view (the call's row is locked for the fold), so no fact is lost to the
last writer."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta

from phoneagent.calls import lifecycle as lc
from phoneagent.calls.records import own_event
from phoneagent.db.engine import make_engine, session_factory
from phoneagent.db.models import Call, Tenant
from tests.peers.postgres import TempPostgres

_names = itertools.count()


def test_concurrent_events_on_one_call_both_count(postgres: TempPostgres) -> None:
    engine = make_engine(postgres.create_database(f"fold{next(_names)}", template="phoneagent_template"))
    sessions = session_factory(engine)
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    with sessions() as s:
        tenant = Tenant(name="t")
        s.add(tenant)
        s.flush()
        call = Call(tenant_id=tenant.id, direction="outbound", status="dialing", room_name="r")
        s.add(call)
        s.commit()
        call_id = call.id
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

    threads = [threading.Thread(target=hung_up), threading.Thread(target=busy)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert not errors, errors
        with sessions() as s:
            c = s.get(Call, call_id)
            assert c is not None
            # what the API declared beats a SIP answer, whichever transaction wrote last
            assert (c.status, c.end_reason) == ("ended", "api_hangup"), (c.end_reason, c.sip_status_code)
    finally:
        engine.dispose()
