"""The phone line as the agent sees it: the SIP participant in the room and its call status."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from livekit import rtc

log = logging.getLogger("phoneagent.worker")

CALL_STATUS = "sip.callStatus"


def job_metadata(raw: str) -> dict[str, Any]:
    try:
        data = json.loads(raw or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


async def room_is_gone(room: rtc.Room, dispatched_sid: str) -> bool:
    """True when the room the agent joined is not the call's room: the call ended (its room deleted)
    between the dispatch and the agent's arrival, and joining made a new, empty room of the same
    name. An agent left there would wait for a phone that never comes, holding its place on the
    worker (a busy callee answers 486 faster than a job starts)."""
    if not dispatched_sid:
        return False
    try:
        joined = await asyncio.wait_for(room.sid, timeout=5.0)
    except TimeoutError:
        return False
    return joined != dispatched_sid


def sip_participant(room: rtc.Room) -> rtc.RemoteParticipant | None:
    for p in room.remote_participants.values():
        if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP:
            return p
    return None


async def wait_for_answer(room: rtc.Room, *, within_s: float) -> bool:
    """True once the phone's SIP participant is ``active`` (answered); False when the call is given up
    (the room ends, the phone leaves, or ``within_s`` passes). An outbound agent joins before the phone rings
    and must not greet a ringing line; an inbound call rings until livekit-sip hears the agent's track,
    and must not be greeted before it is answered either (the caller may hang up first)."""
    changed = asyncio.Event()

    def poke(*_args: object) -> None:
        changed.set()

    events: tuple[rtc.room.EventTypes, ...] = (
        "participant_connected",
        "participant_disconnected",
        "participant_attributes_changed",
        "disconnected",
    )
    for name in events:
        room.on(name, poke)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    try:
        seen_phone = False
        while True:
            phone = sip_participant(room)
            if phone is not None:
                seen_phone = True
                if phone.attributes.get(CALL_STATUS) == "active":
                    return True
                if phone.attributes.get(CALL_STATUS) == "hangup":
                    return False
            elif seen_phone or not room.isconnected():
                return False
            left = deadline - loop.time()
            if left <= 0:
                return False
            changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 0.5)):  # wait_for may swallow a cancel (3.11)
                    await changed.wait()
    finally:
        for name in events:
            room.off(name, poke)


async def phone_leaves(room: rtc.Room, identity: str, *, within_s: float) -> bool:
    """True when the phone ``identity`` leaves the room (or says it hung up) within ``within_s``."""
    changed = asyncio.Event()

    def poke(*_args: object) -> None:
        changed.set()

    events: tuple[rtc.room.EventTypes, ...] = ("participant_disconnected", "participant_attributes_changed")
    for name in events:
        room.on(name, poke)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    try:
        while True:
            phone = room.remote_participants.get(identity)
            if phone is None or phone.attributes.get(CALL_STATUS) == "hangup":
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 0.5)):  # wait_for may swallow a cancel (3.11)
                    await changed.wait()
    finally:
        for name in events:
            room.off(name, poke)


async def caller_heard(room: rtc.Room, *, within_s: float, poll_s: float = 0.02) -> bool:
    """True once audio from the phone reaches the agent; False when the phone leaves (or says it hung
    up) first, or ``within_s`` passes.

    livekit-sip marks an inbound call ``active`` a second after its 200 OK at the latest, whether or
    not an ACK came; a caller whose CANCEL crossed that 200 OK never ACKs it and never sends audio, and
    livekit-sip hangs up on it a few seconds later. A phone that is really on the line sends RTP from
    its answer (livekit-sip waits for its first packet before it says ``active``), so this costs a real
    call nothing. Audio frames are no evidence (the agent's side makes silence when no packet comes):
    the packets received on the phone's track are."""
    phone = sip_participant(room)
    if phone is None:
        return False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        if await _packets_from(phone) > 0:
            return True
        gone = room.remote_participants.get(phone.identity) is None
        if gone or phone.attributes.get(CALL_STATUS) == "hangup" or loop.time() >= deadline:
            return False
        await asyncio.sleep(poll_s)


async def _packets_from(phone: rtc.RemoteParticipant) -> int:
    """RTP packets the agent has received on the phone's audio track."""
    for pub in phone.track_publications.values():
        if pub.kind == rtc.TrackKind.KIND_AUDIO and pub.track is not None:
            try:
                stats = await pub.track.get_stats()
            except Exception:  # noqa: BLE001 - the track went away under us: no packets to count
                return 0
            return sum(s.inbound_rtp.received.packets_received for s in stats if s.HasField("inbound_rtp"))
    return 0
