"""One agent per call after livekit-server restarts: the agent that has the call keeps it.

livekit-server keeps its rooms in Redis. Killed and started again mid-call, it restores the call's
room; livekit-sip rejoins it with the phone, and that join dispatches the call to a new agent job,
while the job that had the call rejoins too (livekit's full reconnect, seconds later). Left alone,
both agents talk to the caller (seen in the fault e2e test: 48 s of two agents answering).

The rule: a job sent to a call that is already up (the phone ``active`` when the job starts; or its
room made well before the job, as a restored room is, while a new call's room is made by the INVITE a
moment before its job; or the phone gone meanwhile while another agent is in the room) waits a while
for the call's own agent to be back, and
leaves without a word when it is (or already is) there; only when no other agent comes does it take
the call over and greet. The agent that had the call never gives way: it keeps the conversation so
far, and nothing is said twice. A caller who reaches a new job normally (the phone still ringing) is
not affected.
"""

from __future__ import annotations

import asyncio
import logging

from livekit import rtc

from phoneagent.worker.phone import CALL_STATUS, sip_participant

log = logging.getLogger("phoneagent.worker")

# how long a job sent to a call already up waits for the call's own agent to rejoin (livekit's full
# reconnect after a livekit-server restart took 8 s in the fault e2e tests)
HANDOVER_WAIT_S = 15.0
# a new inbound call's room is made by its INVITE and its job sent at once (an unserved one is refused
# after 1.5 s): a job whose room is older than this was sent to a call already going on
NEW_CALL_ROOM_AGE_S = 10.0


def other_agents(room: rtc.Room) -> list[str]:
    return [
        p.identity
        for p in room.remote_participants.values()
        if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
    ]


def call_already_up(room: rtc.Room, *, room_age_s: float) -> bool:
    """At a job's start: the phone is already answered, or the room is older than a new call's
    (``room_age_s``: since LiveKit made it), or the phone is not there but another agent is (the phone
    is rejoining a restored room)."""
    phone = sip_participant(room)
    if phone is not None:
        return phone.attributes.get(CALL_STATUS) == "active" or room_age_s > NEW_CALL_ROOM_AGE_S
    return bool(other_agents(room))


async def call_has_its_agent(room: rtc.Room, *, within_s: float = HANDOVER_WAIT_S) -> bool:
    """True once another agent is in the room (the call's own, back): this job is not needed. False
    when none comes within ``within_s``: the call's own agent is gone, this job takes the call over."""
    came = asyncio.Event()

    def look(*_args: object) -> None:
        if other_agents(room):
            came.set()

    room.on("participant_connected", look)
    try:
        look()
        async with asyncio.timeout(within_s):
            await came.wait()
        log.info(
            "this call has its agent already; this job leaves",
            extra={"room": room.name, "other_agent": other_agents(room)[:1]},
        )
        return True
    except TimeoutError:
        log.warning("no agent came back to this call; this job takes it over", extra={"room": room.name})
        return False
    finally:
        room.off("participant_connected", look)
