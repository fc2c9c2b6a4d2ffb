"""Recording calls through livekit-egress: the one place its API is called and its answers are read.

phoneagent asks egress (v1.8.6, see ``phoneagent.stack.versions``) for **TrackEgress** only: one
audio track into one OGG/Opus file, written by egress straight to the given absolute path. Nothing
else is ever requested: in this version a request that needs a GStreamer element that is not
installed (MP4 needs ``faac``) fails *and takes the whole egress service down*.

How egress's answers are read (its errors are translated by ``telephony.client.translate``):

- a start that no egress takes ("no response from servers") means egress is not running:
  :class:`EgressUnavailable` (``no_response`` set);
- a probe of a running egress: ``UpdateStream`` with nothing to add or remove reaches the egress's
  own handler process and changes nothing (a file-only egress answers "non-streaming pipeline"). A
  handler that answers is alive; one that does not (its process was killed) never will, and
  livekit-server keeps reporting it ACTIVE for ever, with no ``egress_ended`` webhook;
- ``StopEgress`` on such an egress times out ("request timed out") in the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from livekit import api

from phoneagent.errors import LiveKitNotFound, LiveKitRefused, TelephonyError
from phoneagent.telephony.client import LiveKitClient, livekit_errors

log = logging.getLogger("phoneagent.telephony")

SIP_KIND = api.ParticipantInfo.Kind.SIP
AGENT_KIND = api.ParticipantInfo.Kind.AGENT


@dataclass(frozen=True)
class EgressState:
    """What livekit-server knows about one egress (``EgressInfo``), in phoneagent's words."""

    egress_id: str
    status: str  # starting | active | ending | complete | failed | aborted | limit_reached
    error: str
    room: str
    track_id: str
    filename: str
    file_started_ns: int | None
    file_ended_ns: int | None
    file_duration_ns: int | None
    file_size: int | None

    @property
    def ended(self) -> bool:
        return self.status in ("complete", "failed", "aborted", "limit_reached")

    @classmethod
    def from_info(cls, info: api.EgressInfo) -> EgressState:
        status = api.EgressStatus.Name(info.status).removeprefix("EGRESS_").lower()
        f = info.file_results[0] if info.file_results else (info.file if info.HasField("file") else None)
        track_id = info.track.track_id if info.HasField("track") else ""

        def ns(v: int) -> int | None:
            return int(v) if v else None

        return cls(
            egress_id=info.egress_id,
            status=status,
            error=info.error,
            room=info.room_name,
            track_id=track_id,
            filename=f.filename if f else "",
            file_started_ns=ns(f.started_at) if f else None,
            file_ended_ns=ns(f.ended_at) if f else None,
            file_duration_ns=ns(f.duration) if f else None,
            file_size=ns(f.size) if f else None,
        )


@dataclass(frozen=True)
class CallTracks:
    """The published audio track ids of a call's room (None where none is published yet)."""

    caller: str | None
    agent: str | None


def _audio_track(p: api.ParticipantInfo) -> str | None:
    for t in p.tracks:
        if t.type == api.TrackType.AUDIO:
            return str(t.sid)
    return None


class LiveKitEgress(LiveKitClient):
    """Async egress calls for the control plane's background work (one client per process)."""

    PROBE_TIMEOUT_S = 8.0
    _egress = True

    async def tracks(self, room: str) -> CallTracks | None:
        """The phone's and the agent's audio tracks in ``room``; None when the room is gone."""
        try:
            # a room request, not an egress one: a room whose node does not answer (it died) is not
            # egress missing, and must not fail the recording as "egress is not running"
            with livekit_errors():
                res = await self._api().room.list_participants(api.ListParticipantsRequest(room=room))
        except LiveKitNotFound:
            return None
        caller = next((_audio_track(p) for p in res.participants if p.kind == SIP_KIND), None)
        agent = next((_audio_track(p) for p in res.participants if p.kind == AGENT_KIND), None)
        return CallTracks(caller=caller, agent=agent)

    async def start_track(self, *, room: str, track_id: str, filepath: str) -> EgressState:
        """Record one audio track into an OGG/Opus file at the absolute ``filepath``."""
        req = api.TrackEgressRequest(
            room_name=room, track_id=track_id, file=api.DirectFileOutput(filepath=filepath)
        )
        with self._errors():
            info = await self._api().egress.start_track_egress(req)
        return EgressState.from_info(info)

    async def state(self, egress_id: str) -> EgressState | None:
        try:
            with self._errors():
                res = await self._api().egress.list_egress(api.ListEgressRequest(egress_id=egress_id))
        except LiveKitNotFound:
            return None
        return EgressState.from_info(res.items[0]) if res.items else None

    async def answers(self, egress_id: str) -> bool | None:
        """Whether the egress's own process answers (True), does not (False), or it is over (None)."""
        try:
            with self._errors():
                await self._api().egress.update_stream(api.UpdateStreamRequest(egress_id=egress_id))
        except LiveKitRefused as exc:
            if exc.code == "failed_precondition":  # "egress with status ... cannot be updated": over
                return None
            return True  # its handler refused the empty update: it is alive
        except TelephonyError as exc:
            if exc.no_response:
                return False
            if exc.code in ("timeout", "unreachable"):  # LiveKit itself: nothing is known of egress
                raise
            return True  # its handler refused the empty update: it is alive
        return True

    async def stop(self, egress_id: str) -> bool:
        """Ask the egress to finish its file; False when its process does not answer."""
        try:
            with self._errors():
                await self._api().egress.stop_egress(api.StopEgressRequest(egress_id=egress_id))
        except LiveKitNotFound:  # already over
            return True
        except LiveKitRefused as exc:
            if exc.code == "failed_precondition":  # already over
                return True
            raise
        except TelephonyError as exc:
            if exc.no_response:
                return False
            raise
        return True
