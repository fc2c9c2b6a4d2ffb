"""Two control-plane replicas on one PostgreSQL, each with its dialer: at the same instant both claim
queued calls, and the tenant's cap still holds (their passes take turns on an advisory lock), with
every call claimed once."""

from __future__ import annotations

import itertools
import threading

from sqlalchemy import func, select

from phoneagent.calls.outbound import LIVE, CallRequest, Dialer, place_call
from phoneagent.db.engine import make_engine, session_factory
from phoneagent.db.models import AgentProfile, Call, OutboundTrunk, Tenant
from tests.peers.fake_telephony import FakeCalls, FakeClock
from tests.peers.postgres import TempPostgres

CAP = 2
ROUNDS = 15
_names = itertools.count()


def _claim(dialer: Dialer, start: threading.Barrier, claimed: list[list[str]], i: int) -> None:
    start.wait()  # both replicas' passes begin together
    claimed[i] = [job.call_id for job in dialer._claim()]


def test_two_replicas_claiming_at_once_never_pass_the_tenants_cap(postgres: TempPostgres) -> None:
    engine = make_engine(postgres.create_database(f"replicas{next(_names)}", template="phoneagent_template"))
    sessions = session_factory(engine)
    with sessions() as s:
        tenant = Tenant(name="t")
        s.add(tenant)
        s.flush()
        profile = AgentProfile(tenant_id=tenant.id, name="p")
        trunk = OutboundTrunk(tenant_id=tenant.id, name="o", address="sip.example.com", numbers=["+15550100"])
        trunk.livekit_id = "ST_fake"
        s.add_all([profile, trunk])
        s.commit()
        tenant_id, profile_id, trunk_id = tenant.id, profile.id, trunk.id
    clock = FakeClock()
    replicas = [
        Dialer(sessions, FakeCalls(clock), agent_name="agent", max_calls_per_tenant=CAP, clock=clock)
        for _ in range(2)
    ]
    try:
        for n in range(ROUNDS):
            with sessions() as s:
                for i in range(6):
                    place_call(
                        s,
                        tenant_id,
                        CallRequest(
                            to=f"+1415555{n:02d}{i:02d}",
                            agent_profile_id=profile_id,
                            outbound_trunk_id=trunk_id,
                        ),
                    )
                s.commit()
            start = threading.Barrier(2)
            claimed: list[list[str]] = [[], []]

            threads = [
                threading.Thread(target=_claim, args=(replicas[i], start, claimed, i)) for i in range(2)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            with sessions() as s:
                live = s.scalar(
                    select(func.count()).where(Call.tenant_id == tenant_id, Call.status.in_(LIVE))
                )
                # the round's calls end, as if hung up: the next round starts under the cap again
                for call in s.scalars(select(Call).where(Call.status.in_(LIVE))):
                    call.status = "ended"
                for call in s.scalars(select(Call).where(Call.status == "queued")):
                    call.status = "ended"
                s.commit()
            both = claimed[0] + claimed[1]
            assert len(both) == len(set(both)), f"round {n}: a call claimed twice: {claimed}"
            assert live == len(both) == CAP, f"round {n}: {live} live after both claimed {claimed}"
    finally:
        engine.dispose()
