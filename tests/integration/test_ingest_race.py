"""One LiveKit webhook event delivered to two control-plane replicas at once (each livekit-server node
sends it to every URL it has: its own replica and the load balancer in front of both), on
PostgreSQL: the caller's SIP participant joining opens one inbound call record, never two. The
second request's event row waits for the first's and is refused as a duplicate; what that request
had opened goes with it."""

from __future__ import annotations

import itertools
import threading
import time

import psycopg
from sqlalchemy import func, select

from phoneagent.calls.ingest import ingest_livekit_event
from phoneagent.db.engine import make_engine, session_factory
from phoneagent.db.models import Call, CallEvent, InboundTrunk, Tenant
from phoneagent.telephony.webhooks import LiveKitEvent
from tests.peers.postgres import TempPostgres

_names = itertools.count()


def test_one_sip_join_delivered_to_two_replicas_at_once_opens_one_call(postgres: TempPostgres) -> None:
    name = f"race{next(_names)}"
    engine = make_engine(postgres.create_database(name, template="phoneagent_template"))
    sessions = session_factory(engine)
    with sessions() as s:
        tenant = Tenant(name="t")
        s.add(tenant)
        s.flush()
        s.add(InboundTrunk(tenant_id=tenant.id, name="in", livekit_id="ST_race"))
        s.commit()
    event = LiveKitEvent(
        id="EV_twice",
        type="participant_joined",
        created_at=int(time.time()),
        room="dsp_race",
        payload={"event": "participant_joined"},
        participant_kind="sip",
        participant_attributes={"sip.trunkID": "ST_race", "sip.phoneNumber": "+15550100"},
    )
    # the first request: its event row is written and not yet committed when the second one looks
    first = psycopg.connect(postgres.url(name))
    first.execute(
        "insert into call_events (source, event_id, type, payload, occurred_at, received_at, room_name) "
        "values ('livekit', 'EV_twice', 'participant_joined', '{}', now(), now(), 'dsp_race')"
    )
    result: list[tuple[bool, Call | None]] = []

    def second() -> None:
        with sessions() as s:
            result.append(ingest_livekit_event(s, event))

    thread = threading.Thread(target=second)
    thread.start()
    try:
        # the second request saw no such event yet, opened a call and now waits on the first's row
        with psycopg.connect(postgres.url(name), autocommit=True) as probe:
            deadline = time.monotonic() + 30
            while not probe.execute(
                "select 1 from pg_stat_activity where datname = %s and wait_event_type = 'Lock'", (name,)
            ).fetchone():
                assert time.monotonic() < deadline, "the second request never waited on the first"
                time.sleep(0.02)
        first.commit()
    finally:
        thread.join(30)
        first.close()
    assert result and result[0][0] is False  # seen already: no effect
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Call).where(Call.room_name == "dsp_race")) == 0
        assert (
            s.scalar(select(func.count()).select_from(CallEvent).where(CallEvent.event_id == "EV_twice")) == 1
        )
    engine.dispose()
