"""The agent's heartbeat in its room: a counter in its participant attributes, moved every
``BEAT_EVERY_S``. LiveKit keeps the participant of an agent whose worker died (``kill -9``, a host
gone) until its WebRTC connection fails, about 20 s later; the control plane's sweeper reads the
counter with the room's participants and takes an agent whose counter stopped for
``phoneagent.calls.sweeper.AGENT_STALE_AFTER_S`` as gone (``worker_lost``), so the caller is not left
with silence that long. A counter, not a time: the worker's and the control plane's clocks need not
agree. The agent joins with the counter at 0 (``accept``): one whose worker dies before its first
beat is caught too, while an agent that shows no counter at all (a worker of an older version during
a rolling upgrade) is left alone."""

from __future__ import annotations

import asyncio
import logging

from livekit import rtc
from livekit.agents import JobRequest

from phoneagent.telephony.calls import AGENT_BEAT

log = logging.getLogger("phoneagent.worker")

BEAT_EVERY_S = 2.0


async def accept(req: JobRequest) -> None:
    """The worker's answer to every job LiveKit offers: yes, its agent joining with the counter at 0."""
    await req.accept(attributes={AGENT_BEAT: "0"})


async def beat(room: rtc.Room, every_s: float = BEAT_EVERY_S) -> None:
    """Move the agent's counter every ``every_s`` until cancelled (the job's end)."""
    n = 0
    while True:
        n += 1
        try:
            await room.local_participant.set_attributes({AGENT_BEAT: str(n)})
        except Exception as exc:  # noqa: BLE001 - a missed beat is retried; the room may be closing
            log.debug("heartbeat not sent", extra={"error": str(exc)[:200]})
        await asyncio.sleep(every_s)
