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
                res = await lk.room.list_participants(api.ListParticipantsRequest(room=room.name))
                out[room.name] = list(res.participants)
        return out


def call_rooms(settings: Settings) -> dict[str, list[api.ParticipantInfo]]:
    """Every call's room in LiveKit, with its participants."""
    return asyncio.run(_call_rooms(settings))
