"""One agent per call after livekit-server restarts: the agent that has the call keeps it.

livekit-server keeps its rooms in Redis. Killed and started again mid-call, it restores the call's
room; livekit-sip rejoins it with the phone, and that join dispatches the call to a new agent job,
while the job that had the call rejoins too (livekit's full reconnect, seconds later). Left alone,
both agents talk to the caller (seen in the fault e2e test: 48 s of two agents answering).

The rule: a job sent to a call that is already up (the room marked answered: the agent that answers
writes it into the room's metadata, which livekit-server keeps in Redis with the room and restores with
it; the phone ``active`` when the job starts; its room made well before the job, as a restored room
is, while a new call's room is made by the INVITE a moment before its job; or the phone gone meanwhile
while another agent is in the room) waits a while
for the call's own agent to be back, and
leaves without a word when it is (or already is) there; only when no other agent comes does it take
the call over and greet. The agent that had the call never gives way: it keeps the conversation so
far, and nothing is said twice. A caller who reaches a new job normally (the phone still ringing) is
not affected.

livekit's reconnect tries every 5 s for up to 50 s; on a loaded machine the call's own agent may come
back only after the new job has taken the call over. The job that takes over marks itself
(``TOOK_OVER``), and an agent that finds a marked agent in its call (back from its reconnect, or as the
mark arrives) leaves: one agent talks to the caller, whichever way the race went.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import aiohttp
from livekit import api, rtc

from phoneagent.worker.phone import CALL_STATUS, sip_participant

log = logging.getLogger("phoneagent.worker")

# how long a job sent to a call already up waits for the call's own agent to rejoin (livekit's full
# reconnect after a livekit-server restart took 8 s in the fault e2e tests)
HANDOVER_WAIT_S = 15.0
# a new inbound call's room is made by its INVITE and its job sent at once (an unserved one is refused
# after 1.5 s): a job whose room is older than this was sent to a call already going on
NEW_CALL_ROOM_AGE_S = 10.0
# the key in the room's metadata that says the call was answered (written by the agent that answered)
ANSWERED = "phoneagent.answered"
# the participant attribute of an agent that took a call over from one that did not come back in time
TOOK_OVER = "phoneagent.took_over"


def other_agents(room: rtc.Room) -> list[str]:
    return [
        p.identity
        for p in room.remote_participants.values()
        if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
    ]


def _metadata(text: str) -> dict[str, object]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def marked_answered(room_metadata: str) -> bool:
    return bool(_metadata(room_metadata).get(ANSWERED))


async def mark_answered(lkapi: api.LiveKitAPI, room: rtc.Room) -> None:
    """Write into the room's metadata that its call was answered. livekit-sip's phone never says
    ``active`` again after it rejoins a restored room, and a call restored a few seconds after its
    answer is no older than a slow new one: this mark is what tells a job sent after a restart that the
    call is already going on."""
    meta = _metadata(room.metadata)
    meta[ANSWERED] = True
    try:
        await lkapi.room.update_room_metadata(
            api.UpdateRoomMetadataRequest(room=room.name, metadata=json.dumps(meta))
        )
    except (api.TwirpError, aiohttp.ClientError, TimeoutError) as exc:
        log.warning(
            "cannot mark the call answered in its room; after a livekit-server restart a new job may "
            "take it for a new call",
            extra={"room": room.name, "error": str(exc)[:300]},
        )


def call_already_up(room: rtc.Room, *, room_age_s: float, room_metadata: str = "") -> bool:
    """At a job's start: the room is marked answered (``room_metadata``: the room as the job's dispatch
    saw it), or the phone is already answered, or the room is older than a new call's (``room_age_s``:
    since LiveKit made it), or the phone is not there but another agent is (the phone is rejoining a
    restored room)."""
    if marked_answered(room_metadata) or marked_answered(room.metadata):
        return True
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


class Handover:
    """This job's side of the rule above, for the whole call: ``take_over`` marks this agent as the
    one the call now has; an agent that sees another marked leaves (``leave`` is called once)."""

    def __init__(self, room: rtc.Room, leave: Callable[[], None]) -> None:
        self._room = room
        self._leave = leave
        self.took_over = False
        self.gave_way = False
        for event in ("reconnected", "participant_connected", "participant_attributes_changed"):
            room.on(event, self._look)

    async def take_over(self) -> None:
        self.took_over = True
        await self._room.local_participant.set_attributes({TOOK_OVER: "1"})

    def _look(self, *_args: object) -> None:
        if self.took_over or self.gave_way:
            return
        marked = [
            p.identity
            for p in self._room.remote_participants.values()
            if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT and p.attributes.get(TOOK_OVER)
        ]
        if marked:
            self.gave_way = True
            log.warning(
                "another agent took this call over while this one was away; this job leaves",
                extra={"room": self._room.name, "other_agent": marked[:1]},
            )
            self._leave()
