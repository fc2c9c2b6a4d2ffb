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
    and must not greet a ringing line."""
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
