"""One agent per call after livekit-server restarts.

livekit-server keeps its rooms in Redis. Killed and started again mid-call, it restores the call's
room; livekit-sip rejoins it with the phone, and that join dispatches the call to a new agent job,
while the job that had the call rejoins too (livekit's full reconnect). Left alone, both agents talk
to the caller until the call ends (seen in the fault e2e test: 48 s of two agents answering).

The rule: a job that went through a reconnect gives way to any other agent in its room. The new job
never reconnected, so it stays and the old one leaves (without hanging up or reporting an end: the
call goes on). A plain reconnect with no other agent (a network blip) changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from livekit import rtc

log = logging.getLogger("phoneagent.worker")


class GiveWayAfterReconnect:
    def __init__(self, room: rtc.Room, leave: Callable[[], None]) -> None:
        self._room, self._leave = room, leave
        self._reconnected = self._left = False
        room.on("reconnected", self._on_reconnected)
        room.on("participant_connected", self._check)

    def _on_reconnected(self) -> None:
        self._reconnected = True
        self._check()

    def _check(self, *_args: object) -> None:
        if not self._reconnected or self._left:
            return
        agents = [
            p.identity
            for p in self._room.remote_participants.values()
            if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        ]
        if agents:
            self._left = True
            log.warning(
                "another agent has the call after a reconnect; this one leaves",
                extra={"room": self._room.name, "other_agent": agents[0]},
            )
            self._leave()
