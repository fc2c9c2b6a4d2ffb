"""What livekit-server holds right now for the calls of a test: their rooms and who is in them."""

from __future__ import annotations

import asyncio

from livekit import api

from phoneagent.config import Settings
from phoneagent.telephony.client import livekit_api


async def _call_rooms(settings: Settings) -> dict[str, list[api.ParticipantInfo]]:
    async with livekit_api(settings) as lk:
        rooms = (await lk.room.list_rooms(api.ListRoomsRequest())).rooms
        out = {}
        for room in rooms:
            # a call's room: named after its dispatch rule (inbound, dsp_...) or its call (outbound, call-)
            if room.name.startswith(("dsp_", "call-")):
                out[room.name] = await _participants(lk, room.name)
        return out


async def _participants(lk: api.LiveKitAPI, room: str) -> list[api.ParticipantInfo]:
    """Who is in the room, asked of the node hosting it. A room that Redis still lists but no node
    holds (livekit-server was restarted, and nobody has rejoined it yet) has nobody in it."""
    try:
        res = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
    except api.TwirpError as exc:
        if "no response from servers" not in exc.message:
            raise
        return []
    return list(res.participants)


def call_rooms(settings: Settings) -> dict[str, list[api.ParticipantInfo]]:
    """Every call's room in LiveKit, with its participants."""
    return asyncio.run(_call_rooms(settings))
