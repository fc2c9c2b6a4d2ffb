"""Recording calls through livekit-egress: the one place its API is called and its answers are read.

phoneagent asks egress (v1.8.6, see ``phoneagent.stack.versions``) for **TrackEgress** only: one
audio track into one OGG/Opus file, written by egress straight to the given absolute path. Nothing
else is ever requested: in this version a request that needs a GStreamer element that is not
installed (MP4 needs ``faac``) fails *and takes the whole egress service down*.

How egress's answers are read:

- a start that no egress takes ("no response from servers") means egress is not running:
  :class:`EgressUnavailable`;
- a probe of a running egress: ``UpdateStream`` with nothing to add or remove reaches the egress's
  own handler process and changes nothing (a file-only egress answers "non-streaming pipeline"). A
  handler that answers is alive; one that does not (its process was killed) never will, and
  livekit-server keeps reporting it ACTIVE for ever, with no ``egress_ended`` webhook;
- ``StopEgress`` on such an egress times out ("request timed out") in the same way.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
from livekit import api

from phoneagent.errors import EgressUnavailable, TelephonyError
from phoneagent.telephony.client import LiveKitClient

log = logging.getLogger("phoneagent.telephony")

SIP_KIND = api.ParticipantInfo.Kind.SIP
AGENT_KIND = api.ParticipantInfo.Kind.AGENT

# what livekit-server answers when no egress process takes (or answers) a request
_NOBODY = ("no response from servers", "request timed out")


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

    async def tracks(self, room: str) -> CallTracks | None:
        """The phone's and the agent's audio tracks in ``room``; None when the room is gone."""
        try:
            with _reaching_livekit():
                res = await self._api().room.list_participants(api.ListParticipantsRequest(room=room))
        except api.TwirpError as exc:
            if exc.code == "not_found":
                return None
            raise _translate(exc) from None
        caller = next((_audio_track(p) for p in res.participants if p.kind == SIP_KIND), None)
        agent = next((_audio_track(p) for p in res.participants if p.kind == AGENT_KIND), None)
        return CallTracks(caller=caller, agent=agent)

    async def start_track(self, *, room: str, track_id: str, filepath: str) -> EgressState:
        """Record one audio track into an OGG/Opus file at the absolute ``filepath``."""
        req = api.TrackEgressRequest(
            room_name=room, track_id=track_id, file=api.DirectFileOutput(filepath=filepath)
        )
        try:
            with _reaching_livekit():
                info = await self._api().egress.start_track_egress(req)
        except api.TwirpError as exc:
            raise _translate(exc) from None
        return EgressState.from_info(info)

    async def state(self, egress_id: str) -> EgressState | None:
        try:
            with _reaching_livekit():
                res = await self._api().egress.list_egress(api.ListEgressRequest(egress_id=egress_id))
        except api.TwirpError as exc:
            if exc.code == "not_found":
                return None
            raise _translate(exc) from None
        return EgressState.from_info(res.items[0]) if res.items else None

    async def answers(self, egress_id: str) -> bool | None:
        """Whether the egress's own process answers (True), does not (False), or it is over (None)."""
        try:
            with _reaching_livekit():
                await self._api().egress.update_stream(api.UpdateStreamRequest(egress_id=egress_id))
        except api.TwirpError as exc:
            if _nobody(exc):
                return False
            if exc.code == "failed_precondition":  # "egress with status ... cannot be updated": over
                return None
            return True  # its handler refused the empty update: it is alive
        return True

    async def stop(self, egress_id: str) -> bool:
        """Ask the egress to finish its file; False when its process does not answer."""
        try:
            with _reaching_livekit():
                await self._api().egress.stop_egress(api.StopEgressRequest(egress_id=egress_id))
        except api.TwirpError as exc:
            if _nobody(exc):
                return False
            if exc.code in ("failed_precondition", "not_found"):  # already over
                return True
            raise _translate(exc) from None
        return True


@contextlib.contextmanager
def _reaching_livekit() -> Iterator[None]:
    """LiveKit's HTTP API not answering at all: a retryable TelephonyError (its own refusals, Twirp
    errors, pass through to each caller, which reads them)."""
    try:
        yield
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise TelephonyError(f"cannot reach LiveKit: {type(exc).__name__}", retryable=True) from None


def _nobody(exc: api.TwirpError) -> bool:
    return any(n in exc.message for n in _NOBODY) or exc.code == "deadline_exceeded"


def _translate(exc: api.TwirpError) -> TelephonyError:
    if _nobody(exc) or exc.code == "unavailable":
        return EgressUnavailable(
            f"no egress took the request ({exc.message})",
            hint="is egress running? `phoneagent stack status`; `phoneagent stack up` starts it",
        )
    retryable = exc.code in ("deadline_exceeded", "resource_exhausted", "internal")
    return TelephonyError(f"LiveKit egress API: {exc.code}: {exc.message}", retryable=retryable)
