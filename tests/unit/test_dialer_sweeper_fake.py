"""The dialer, the sweeper and the call lifecycle against a fake LiveKit and a fake clock: every
outcome of a dial, LiveKit down, and the rooms the sweeper finds changed, in well under a second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from phoneagent.calls import lifecycle as lc
from phoneagent.calls.campaigns import CampaignRunner
from phoneagent.calls.outbound import CallRequest, Dialer, place_call, request_hangup
from phoneagent.calls.records import own_event, record_event
from phoneagent.calls.sweeper import ROOM_LINGER_S, Sweeper
from phoneagent.db.base import Base
from phoneagent.db.engine import make_engine, session_factory
from phoneagent.db.models import AgentProfile, Call, Campaign, CampaignContact, OutboundTrunk, Tenant
from phoneagent.errors import TelephonyError
from phoneagent.telephony.interface import RoomPeople
from tests.peers.fake_telephony import BUSY, FakeCalls, FakeClock, inline_threads, no_answer

pytestmark = pytest.mark.unit

ANSWERS, BUSY_NO, SILENT, OTHER = "+15550100001", "+15550100002", "+15550100003", "+15550100004"
LOST_AFTER_S = 40.0
MEDIA_NODE_LOST_AFTER_S = 30.0


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'phoneagent.db'}")
    Base.metadata.create_all(engine)
    yield session_factory(engine)
    engine.dispose()


class World:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.clock = FakeClock()
        self.lk = FakeCalls(self.clock, answers={BUSY_NO: BUSY, SILENT: no_answer(30)})
        self.notices: list[str] = []  # calls whose record changed, as a waiting request hears of them
        self.dialer = Dialer(
            sessions,
            self.lk,
            agent_name="agent",
            max_calls_per_tenant=10,
            clock=self.clock,
            on_change=self.notices.append,
        )
        self.sweeper = Sweeper(
            sessions,
            self.lk,
            worker_lost_after_s=LOST_AFTER_S,
            media_node_lost_after_s=MEDIA_NODE_LOST_AFTER_S,
            interval_s=2.0,
            unserved_after_s=1.0,
            dialing=lambda: self.dialer.dialing,
            clock=self.clock,
            on_change=self.notices.append,
        )
        with sessions() as s:
            tenant = Tenant(name="t")
            s.add(tenant)
            s.flush()
            profile = AgentProfile(tenant_id=tenant.id, name="p")
            trunk = OutboundTrunk(
                tenant_id=tenant.id, name="o", address="sip.example.com", numbers=["+15550109999"]
            )
            trunk.livekit_id = "ST_fake"
            s.add_all([profile, trunk])
            s.commit()
            self.tenant, self.profile, self.trunk = tenant.id, profile.id, trunk.id

    def place(self, to: str) -> str:
        with self.sessions() as s:
            call, _ = place_call(
                s,
                self.tenant,
                CallRequest(to=to, agent_profile_id=self.profile, outbound_trunk_id=self.trunk),
            )
            s.commit()
            return call.id

    def call(self, call_id: str) -> Call:
        with self.sessions() as s:
            call = s.get(Call, call_id)
            assert call is not None
            return call

    async def dial_all(self) -> None:
        await self.dialer.step()
        await self.clock.run_until(lambda: not self.dialer.dialing)

    def room(self, call_id: str) -> str:
        return f"call-{call_id}"

    def live_calls(self, rooms: dict[str, str], direction: str, status: str) -> dict[str, str]:
        """A call record in each of ``rooms`` (name -> room name); their ids by name."""
        ids = {}
        with self.sessions() as s:
            for name, room in rooms.items():
                call = Call(tenant_id=self.tenant, direction=direction, status=status, room_name=room)
                s.add(call)
                s.flush()
                ids[name] = call.id
            s.commit()
        return ids


def scenario(sessions: sessionmaker[Session], body: Callable[[World], Awaitable[None]]) -> None:
    async def go() -> None:
        with inline_threads(asyncio.get_running_loop()):
            world = World(sessions)
            await body(world)

    started = time.perf_counter()
    asyncio.run(go())
    assert time.perf_counter() - started < 5.0  # minutes of calls on the fake clock, no real waiting


def test_answered_busy_and_unanswered_calls(sessions: sessionmaker[Session]) -> None:
    async def body(w: World) -> None:
        answered, busy, silent = w.place(ANSWERS), w.place(BUSY_NO), w.place(SILENT)
        started = w.clock.monotonic()
        await w.dial_all()
        assert w.clock.monotonic() - started == pytest.approx(30.0)  # the longest ring, on the fake clock

        a = w.call(answered)
        assert (a.status, a.end_reason) == ("in_progress", None)
        assert a.ringing_at is not None and a.answered_at is not None and a.ringing_at < a.answered_at
        b = w.call(busy)
        assert (b.status, b.end_reason, b.sip_status_code) == ("ended", "busy", 486)
        s = w.call(silent)
        assert (s.status, s.end_reason, s.answered_at) == ("ended", "no_answer", None)
        assert s.ringing_at is not None  # the ringing poll saw livekit-sip's 180
        # the agent leaves the rooms of calls nobody answered at once; the answered call's room stays
        assert set(w.lk.rooms) == {w.room(answered)}
        # claimed, ringing, the outcome recorded, the dial over: each is told to whoever waits
        assert [w.notices.count(c) for c in (answered, busy, silent)] == [4, 4, 4]

    scenario(sessions, body)


def test_livekit_down_fails_the_call_and_the_sweep_leaves_calls_alone(
    sessions: sessionmaker[Session],
) -> None:
    async def body(w: World) -> None:
        live = w.place(ANSWERS)
        await w.dial_all()
        w.lk.down = True
        doomed = w.place(OTHER)
        await w.dial_all()
        c = w.call(doomed)
        assert (c.status, c.end_reason) == ("ended", "failed")
        with pytest.raises(TelephonyError) as err:  # the sweep's loop logs one warning and tries again
            await w.sweeper.sweep()
        assert err.value.retryable
        assert w.call(live).status == "in_progress"  # LiveKit being away proves nothing about the call
        w.lk.down = False
        await w.sweeper.sweep()
        assert w.call(live).status == "in_progress"

    scenario(sessions, body)


def test_the_sweeper_ends_calls_whose_room_changed_with_a_truthful_reason(
    sessions: sessionmaker[Session],
) -> None:
    async def body(w: World) -> None:
        vanished, hung_up, orphaned = w.place(ANSWERS), w.place(ANSWERS), w.place(ANSWERS)
        await w.dial_all()
        w.lk.room_vanished(w.room(vanished))
        w.lk.phone_hung_up_but_stayed(w.room(hung_up))
        w.lk.agent_left(w.room(orphaned))
        await w.sweeper.sweep()

        assert set(w.notices[-2:]) == {vanished, hung_up}
        v = w.call(vanished)
        assert (v.status, v.end_reason) == ("ended", "failed")  # gone, and nothing said why
        h = w.call(hung_up)
        assert (h.status, h.end_reason) == ("ended", "customer_hangup")
        assert w.room(hung_up) in w.lk.ended
        assert w.call(orphaned).status == "in_progress"  # not yet: the worker may be coming back

        w.clock.advance(LOST_AFTER_S)
        await w.sweeper.sweep()
        o = w.call(orphaned)
        assert (o.status, o.end_reason) == ("ended", "worker_lost")
        assert w.room(orphaned) not in w.lk.rooms  # the caller is not left listening to silence

    scenario(sessions, body)


def test_a_call_whose_room_no_node_takes_back_ends_media_node_lost_and_holds_up_no_other_call(
    sessions: sessionmaker[Session],
) -> None:
    """The livekit-server node hosting two calls' rooms died. One call's phone and agent rejoin
    through the front and bring its room back on a node that lives; the other's never do. A third
    call, elsewhere, loses its worker meanwhile: the rooms nobody answers for do not stop the sweep
    from ending it in time."""

    async def body(w: World) -> None:
        back, gone, elsewhere = w.place(ANSWERS), w.place(ANSWERS), w.place(ANSWERS)
        await w.dial_all()
        w.lk.unhosted |= {w.room(back), w.room(gone)}
        w.lk.agent_left(w.room(elsewhere))
        await w.sweeper.sweep()
        w.clock.advance(MEDIA_NODE_LOST_AFTER_S - 1)
        await w.sweeper.sweep()
        assert [w.call(c).status for c in (back, gone, elsewhere)] == ["in_progress"] * 3
        w.lk.unhosted.discard(w.room(back))  # its clients rejoined on another node
        w.clock.advance(1)
        await w.sweeper.sweep()
        assert w.call(back).status == "in_progress"
        g = w.call(gone)
        assert (g.status, g.end_reason) == ("ended", "media_node_lost")
        assert w.room(gone) in w.lk.ended  # the phone, if its bridge still holds it, is hung up
        # LOST_AFTER_S after the agent left, each pass meanwhile having looked past the dead rooms
        w.clock.advance(LOST_AFTER_S - MEDIA_NODE_LOST_AFTER_S)
        await w.sweeper.sweep()
        assert (w.call(elsewhere).status, w.call(elsewhere).end_reason) == ("ended", "worker_lost")
        # the room that came back and went unanswered again starts its own count afresh
        w.lk.unhosted.add(w.room(back))
        await w.sweeper.sweep()
        w.clock.advance(MEDIA_NODE_LOST_AFTER_S - 1)
        await w.sweeper.sweep()
        assert w.call(back).status == "in_progress"

    scenario(sessions, body)


def test_a_dial_lost_by_a_restart_is_settled_and_a_hangup_wins(sessions: sessionmaker[Session]) -> None:
    async def body(w: World) -> None:
        w.lk.answers[OTHER] = no_answer(3600)  # rings on while the control plane restarts
        lost, hung = w.place(OTHER), w.place(OTHER)
        await w.dialer.step()
        await w.clock.run_until(lambda: w.call(lost).status == "ringing")
        await w.dialer.aclose()  # the process that dialed is gone; LiveKit still has the room
        w.sweeper = Sweeper(w.sessions, w.lk, worker_lost_after_s=LOST_AFTER_S, interval_s=2.0, clock=w.clock)
        with w.sessions() as s:
            call = s.get(Call, hung)
            assert call is not None
            assert request_hangup(s, call) is True
            s.commit()
        w.clock.advance(30 + 61)  # past the ring timeout and the minute of grace
        await w.sweeper.sweep()
        lost_call, hung_call = w.call(lost), w.call(hung)
        assert (lost_call.status, lost_call.end_reason) == ("ended", "failed")
        assert (hung_call.status, hung_call.end_reason) == ("ended", "api_hangup")  # declared beats seen

    scenario(sessions, body)


def test_a_settled_contact_follows_its_calls_end_reason_when_better_evidence_changes_it(
    sessions: sessionmaker[Session],
) -> None:
    """The sweeper saw no agent (worker_lost, observed); the caller's own hang-up was declared later
    and wins on the record: the contact the call settled says so too."""

    async def body(w: World) -> None:
        t0 = w.clock.now()
        with w.sessions() as s:
            campaign = Campaign(
                tenant_id=w.tenant,
                name="c",
                agent_profile_id=w.profile,
                outbound_trunk_id=w.trunk,
                window_start="00:00",
                window_end="00:00",
            )
            s.add(campaign)
            s.flush()
            call = Call(
                tenant_id=w.tenant, direction="outbound", status="in_progress", campaign_id=campaign.id
            )
            s.add(call)
            s.flush()
            contact = CampaignContact(
                campaign_id=campaign.id, number=ANSWERS, status="calling", last_call_id=call.id
            )
            s.add(contact)
            s.flush()
            own_event(s, call, "lost", lc.Fact(t0, "ended", "worker_lost", lc.OBSERVED), f"{call.id}:lost")
            s.commit()
            contact_id = contact.id
        CampaignRunner(w.sessions, wake_dialer=lambda: None).tick(w.clock.now())
        with w.sessions() as s:
            settled = s.get(CampaignContact, contact_id)
            assert settled is not None and settled.last_end_reason == "worker_lost"
            status = settled.status
            c = s.get(Call, settled.last_call_id)
            assert c is not None
            fact = lc.Fact(t0, "ended", "customer_hangup", lc.DECLARED)
            own_event(s, c, "hung_up", fact, f"{c.id}:hung-up")
            s.commit()
            assert c.end_reason == "customer_hangup"
        with w.sessions() as s:
            after = s.get(CampaignContact, contact_id)
            assert after is not None and (after.status, after.last_end_reason) == (status, "customer_hangup")

    scenario(sessions, body)


def test_a_refused_attempt_costs_the_campaign_pass_nothing_else(sessions: sessionmaker[Session]) -> None:
    """place_call flushes inside the runner's transaction: an attempt it refuses (its idempotency key
    was used for another request) fails that contact only; the pass's other attempts are kept."""

    async def body(w: World) -> None:
        with w.sessions() as s:
            campaign = Campaign(
                tenant_id=w.tenant,
                name="c",
                agent_profile_id=w.profile,
                outbound_trunk_id=w.trunk,
                concurrency=3,
                window_start="00:00",
                window_end="00:00",
            )
            s.add(campaign)
            s.flush()
            contacts = [
                CampaignContact(campaign_id=campaign.id, number=n) for n in (ANSWERS, BUSY_NO, SILENT)
            ]
            s.add_all(contacts)
            s.flush()
            taken = CallRequest(to=OTHER, agent_profile_id=w.profile, outbound_trunk_id=w.trunk)
            place_call(s, w.tenant, taken, idempotency_key=f"campaign:{campaign.id}:{contacts[1].id}:1")
            s.commit()
            campaign_id, ids = campaign.id, [c.id for c in contacts]

        runner = CampaignRunner(w.sessions, wake_dialer=lambda: None)
        w.clock.advance(1)  # the contacts are due from when they were stored
        assert runner.tick(w.clock.now()) == 2

        def states() -> list[tuple[str, str | None]]:
            with w.sessions() as s:
                rows = [s.get(CampaignContact, i) for i in ids]
                return [(c.status, c.last_end_reason) for c in rows if c is not None]

        assert states() == [("calling", None), ("failed", "failed"), ("calling", None)]
        await w.dial_all()
        runner.tick(w.clock.now())
        # the answered call goes on; the unanswered number waits for its retry
        assert states() == [("calling", None), ("failed", "failed"), ("pending", "no_answer")]
        with w.sessions() as s:
            answered = s.get(CampaignContact, ids[0]).last_call_id  # type: ignore[union-attr]
        w.lk.phone_hung_up_but_stayed(w.room(str(answered)))
        await w.sweeper.sweep()
        runner.tick(w.clock.now())
        assert states()[0] == ("done", "customer_hangup")
        with w.sessions() as s:
            assert s.get(Campaign, campaign_id).status == "running"  # type: ignore[union-attr]

    scenario(sessions, body)


def test_an_inbound_call_no_worker_took_is_refused_busy_as_over_capacity(
    sessions: sessionmaker[Session],
) -> None:
    async def body(w: World) -> None:
        rooms = {"unserved": "in-1", "coming": "in-2", "answered": "in-3"}
        ids = w.live_calls(rooms, "inbound", "ringing")
        w.lk.phone_rings(rooms["unserved"], agent_job=False)  # every worker was full
        w.lk.phone_rings(rooms["coming"], agent_job=True)  # a worker took it; its agent is joining
        w.lk.phone_rings(rooms["answered"], agent_job=True)
        w.lk.rooms[rooms["answered"]] = RoomPeople(sip=[{"sip.callStatus": "active"}], agents=1)
        for call_id in ids.values():
            w.sweeper.call_arrived(call_id)
        w.clock.advance(0.5)
        await w.sweeper.sweep()
        assert w.call(ids["unserved"]).status == "ringing"  # not yet: LiveKit may still be dispatching
        assert w.lk.ended == []

        w.clock.advance(0.5)
        await w.sweeper.sweep()
        # its dispatch is offered to the workers again (on another livekit-server node one may be free)
        assert w.lk.reoffered == [rooms["unserved"]]
        assert w.call(ids["unserved"]).status == "ringing" and w.lk.ended == []

        w.clock.advance(1.0)  # no worker took it this time either
        await w.sweeper.sweep()
        assert w.lk.reoffered == [rooms["unserved"]]  # once
        refused = w.call(ids["unserved"])
        assert (refused.status, refused.end_reason) == ("ended", "over_capacity")
        assert refused.answered_at is None and refused.duration_ms is None
        assert w.lk.ended == [rooms["unserved"]]  # deleting the room answers the INVITE 486
        assert ids["unserved"] in w.notices
        for name in ("coming", "answered"):
            assert w.call(ids[name]).status == "ringing", name

        w.clock.advance(LOST_AFTER_S)  # the agent on its way never came: not over capacity, lost
        await w.sweeper.sweep()
        lost = w.call(ids["coming"])
        assert (lost.status, lost.end_reason) == ("ended", "worker_lost")
        assert w.call(ids["answered"]).status == "ringing"
        assert w.lk.ended == [rooms["unserved"], rooms["coming"]]

    scenario(sessions, body)


def test_a_call_whose_agent_job_no_worker_took_is_offered_again_and_gets_its_agent(
    sessions: sessionmaker[Session],
) -> None:
    """With several livekit-server nodes, a job can be refused by the workers of the node that claimed
    it (they filled up a moment before) while another node's are free: offered again, it is taken."""

    async def body(w: World) -> None:
        w.lk.reoffer_finds_worker = True
        with w.sessions() as s:
            inbound = Call(tenant_id=w.tenant, direction="inbound", status="ringing", room_name="in-1")
            outbound = Call(tenant_id=w.tenant, direction="outbound", status="in_progress", room_name="out-1")
            s.add_all([inbound, outbound])
            s.commit()
            ids = {"in": inbound.id, "out": outbound.id}
        w.lk.phone_rings("in-1", agent_job=False)
        w.lk.rooms["out-1"] = RoomPeople(sip=[{"sip.callStatus": "active"}], agents=0)  # answered, no job
        w.sweeper.call_arrived(ids["in"])
        await w.sweeper.sweep()
        assert w.lk.reoffered == []  # LiveKit may still be dispatching
        w.clock.advance(1.0)
        await w.sweeper.sweep()
        assert sorted(w.lk.reoffered) == ["in-1", "out-1"]
        w.lk.rooms["in-1"] = RoomPeople(sip=[{"sip.callStatus": "active"}], agents=1)  # its agent came
        w.lk.rooms["out-1"] = RoomPeople(sip=[{"sip.callStatus": "active"}], agents=1)
        w.clock.advance(LOST_AFTER_S)
        await w.sweeper.sweep()
        # neither refused nor lost
        assert [w.call(i).status for i in ids.values()] == ["ringing", "in_progress"]
        assert w.lk.ended == [] and sorted(w.lk.reoffered) == ["in-1", "out-1"]

    scenario(sessions, body)


def test_the_dial_outcome_survives_the_database_being_down_when_it_is_written(
    sessions: sessionmaker[Session],
) -> None:
    async def body(w: World) -> None:
        call_id = w.place(ANSWERS)
        write = w.dialer._record_outcome
        refused: list[datetime] = []

        def database_down_twice(*args: Any) -> None:
            if len(refused) < 2:
                refused.append(w.clock.now())
                raise OperationalError("UPDATE calls", {}, Exception("connection refused"))
            write(*args)

        w.dialer._record_outcome = database_down_twice  # type: ignore[method-assign,assignment]
        await w.dialer.step()
        await w.clock.run_until(lambda: len(refused) == 2)
        assert w.call(call_id).status == "ringing" and call_id in w.dialer.dialing  # kept, still its own
        answered_at = refused[0]
        await w.clock.run_until(lambda: not w.dialer.dialing)
        call = w.call(call_id)
        assert call.status == "in_progress"
        assert call.answered_at is not None and call.answered_at.replace(tzinfo=UTC) == answered_at


def test_an_inbound_call_still_ringing_is_watched_like_one_in_progress(
    sessions: sessionmaker[Session],
) -> None:
    async def body(w: World) -> None:
        rooms = {"left_behind": "dsp_a", "no_agent": "dsp_b"}
        ids = {}
        with w.sessions() as s:
            for name, room in rooms.items():
                call = Call(tenant_id=w.tenant, direction="inbound", status="queued", room_name=room)
                s.add(call)
                s.flush()
                phone = {"kind": "SIP", "attributes": {"sip.callStatus": "ringing"}}
                record_event(
                    s,
                    call,
                    source="livekit",
                    event_id=f"EV_{name}",
                    type_="participant_joined",
                    payload={"participant": phone},
                )
                s.commit()
                ids[name] = call.id
        w.lk.rooms["dsp_a"] = RoomPeople(sip=[{"sip.callStatus": "hangup"}], agents=0)
        w.lk.rooms["dsp_b"] = RoomPeople(sip=[{"sip.callStatus": "ringing"}], agents=0)
        w.lk.jobs["dsp_b"] = 1  # a worker took its job, and its agent never came
        assert w.call(ids["no_agent"]).status == "ringing"
        await w.sweeper.sweep()
        a = w.call(ids["left_behind"])
        assert (a.status, a.end_reason, a.answered_at) == ("ended", "abandoned", None)  # hung up ringing
        assert w.call(ids["no_agent"]).status == "ringing"  # not yet: its agent may still come

        w.clock.advance(LOST_AFTER_S)
        await w.sweeper.sweep()
        assert "dsp_b" in w.lk.ended  # the caller does not ring on for nobody
        with w.sessions() as s:
            lost = s.get(Call, ids["no_agent"])
            assert lost is not None
            # livekit-sip then marks the phone hangup as it leaves: the sweeper's word stands
            record_event(
                s,
                lost,
                source="livekit",
                event_id="EV_left",
                type_="participant_left",
                payload={
                    "participant": {
                        "kind": "SIP",
                        "attributes": {"sip.callStatus": "hangup"},
                        "disconnectReason": "CLIENT_INITIATED",
                    }
                },
            )
            s.commit()
        b = w.call(ids["no_agent"])
        assert (b.status, b.end_reason, b.answered_at) == ("ended", "worker_lost", None)

    scenario(sessions, body)


def test_a_room_that_outlives_its_ended_call_is_ended(sessions: sessionmaker[Session]) -> None:
    async def body(w: World) -> None:
        call_id = w.place(ANSWERS)
        await w.dial_all()
        room = w.room(call_id)
        with w.sessions() as s:  # the phone hung up; the agent missed it and stays in the room
            call = s.get(Call, call_id)
            assert call is not None
            own_event(
                s, call, "hung_up", lc.Fact(w.clock.now(), "ended", "customer_hangup", lc.OBSERVED), "x"
            )
            s.commit()
        w.lk.rooms[room] = RoomPeople(sip=[], agents=1)
        await w.sweeper.sweep()
        assert room in w.lk.rooms  # not yet: an agent may still be finishing (a transfer waits 10 s)
        w.clock.advance(ROOM_LINGER_S + 1)
        await w.sweeper.sweep()
        assert room not in w.lk.rooms and room in w.lk.ended
        assert w.call(call_id).end_reason == "customer_hangup"  # the record stays as it was

    scenario(sessions, body)


def test_a_call_that_waited_in_the_queue_is_not_stale_when_another_replica_dials_it(
    sessions: sessionmaker[Session],
) -> None:
    """Two control planes: this one's sweeper sees a call the other's dialer is dialing. It queued long
    ago (behind the caps), so its age is not the dial's: only the claim's age can make it stale."""

    async def body(w: World) -> None:
        w.lk.answers[OTHER] = no_answer(3600)
        waited = w.place(OTHER)
        w.clock.advance(600)  # ten minutes in the queue
        other_replica = Dialer(w.sessions, w.lk, agent_name="agent", max_calls_per_tenant=10, clock=w.clock)
        await other_replica.step()
        await w.clock.run_until(lambda: w.call(waited).status == "ringing")
        await w.sweeper.sweep()  # this replica's dialer dials nothing: the call is not in its own list
        assert w.call(waited).status == "ringing"
        await other_replica.aclose()  # that replica dies mid-dial: now the claim's age counts
        w.clock.advance(30 + 61)
        await w.sweeper.sweep()
        assert (w.call(waited).status, w.call(waited).end_reason) == ("ended", "failed")

    scenario(sessions, body)


ARRIVAL_AFTER_S = 70.0


def test_an_agent_still_on_its_way_is_waited_for_longer_than_a_lost_one(
    sessions: sessionmaker[Session],
) -> None:
    """Four answered calls with no agent in their rooms, each with its agent job assigned. Two agents
    never joined (a loaded worker is starting their job processes): not lost at LOST_AFTER_S; one of
    them comes, the other is lost at ARRIVAL_AFTER_S. The other two calls' agents had joined (the
    worker reported on the call, or LiveKit said an agent joined) and left: lost at LOST_AFTER_S."""

    async def body(w: World) -> None:
        w.sweeper = Sweeper(
            w.sessions,
            w.lk,
            worker_lost_after_s=LOST_AFTER_S,
            agent_arrival_after_s=ARRIVAL_AFTER_S,
            interval_s=2.0,
            clock=w.clock,
        )
        slow, never, left, seen = (w.place(ANSWERS) for _ in range(4))
        await w.dial_all()
        for call_id in (slow, never, left, seen):
            w.lk.agent_left(w.room(call_id))
            assert w.lk.jobs[w.room(call_id)] == 1
        with w.sessions() as s:
            call, other = s.get(Call, left), s.get(Call, seen)
            assert call is not None and other is not None
            record_event(s, call, source="worker", event_id="EV_answered", type_="answered", payload={})
            # only LiveKit's word that an agent joined (its worker's events never arrived)
            agent = {"participant": {"kind": "AGENT", "identity": "agent-1"}}
            joined = "participant_joined"
            record_event(s, other, source="livekit", event_id="EV_agent", type_=joined, payload=agent)
            s.commit()
        await w.sweeper.sweep()
        w.clock.advance(LOST_AFTER_S)
        await w.sweeper.sweep()
        for gone in (left, seen):
            assert (w.call(gone).status, w.call(gone).end_reason) == ("ended", "worker_lost")
        assert [w.call(c).status for c in (slow, never)] == ["in_progress"] * 2

        w.lk.rooms[w.room(slow)] = RoomPeople(sip=w.lk.rooms[w.room(slow)].sip, agents=1)  # it came
        w.clock.advance(ARRIVAL_AFTER_S - LOST_AFTER_S)
        await w.sweeper.sweep()
        assert w.call(slow).status == "in_progress"
        assert (w.call(never).status, w.call(never).end_reason) == ("ended", "worker_lost")
        assert w.room(never) in w.lk.ended and w.room(slow) not in w.lk.ended

    scenario(sessions, body)


def test_an_answered_outbound_call_whose_job_no_worker_took_is_offered_again_until_one_does(
    sessions: sessionmaker[Session],
) -> None:
    """Right after a worker died, LiveKit found no worker for a new job for a few seconds: the answered
    callee cannot be refused, so its job is offered again each time, and the fourth offer is taken."""

    async def body(w: World) -> None:
        call_id = w.place(ANSWERS)
        await w.dial_all()
        room = w.room(call_id)
        w.lk.agent_left(room)
        w.lk.jobs[room] = 0  # no worker took its job
        for _ in range(4):
            await w.sweeper.sweep()
            w.clock.advance(1.0)  # the world's unserved_after
        assert w.lk.reoffered == [room] * 3 and w.call(call_id).status == "in_progress"
        w.lk.reoffer_finds_worker = True
        await w.sweeper.sweep()
        assert w.lk.reoffered == [room] * 4 and w.lk.jobs[room] == 1
        w.lk.rooms[room] = RoomPeople(sip=w.lk.rooms[room].sip, agents=1)  # its agent came
        w.clock.advance(LOST_AFTER_S)
        await w.sweeper.sweep()
        assert w.call(call_id).status == "in_progress" and room not in w.lk.ended

    scenario(sessions, body)
