"""The recorder: the control plane's background work for call recordings.

- **Start**: a recording ``pending`` (its call was answered, its agent profile records) gets one
  TrackEgress per audio track as soon as each track is in the room: the phone's (SIP participant)
  and the agent's. Each writes ``<recordings dir>/.tracks/<call>/<role>.ogg``. LiveKit's
  ``track_published`` webhooks wake the recorder; it reads the track ids from the room itself.
- **Finish**: once both files are complete and the call is over (``processing``), they are merged
  into one OGG/Opus file aligned by their ``FileInfo.started_at`` (``phoneagent.recording.merge``),
  stored locally or uploaded to S3, and ``recording.ready`` is queued.
- **Watch** (``sweep``, run by the sweeper): egress v1.8.6 has failure modes that send no event. A
  killed egress stays ACTIVE in livekit-server for ever, so every running track egress is probed
  (twice unanswered in a row: lost, "egress stopped responding"); one still running
  ``recording_stop_after_s`` after its call ended is stopped, and one that has not ended
  ``recording_lost_after_s`` after that is lost too. Failed egresses (``egress_ended`` with
  FAILED/ABORTED, from ``phoneagent.calls.ingest``) fail the recording with egress's own error.
- **Retention**: ready recordings older than ``recording_retention_days`` are deleted.

Nothing here can block or change a call: every failure becomes the recording's status and reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from phoneagent.calls import recording_state as rs
from phoneagent.calls.passes import run_passes
from phoneagent.clock import Clock, SystemClock
from phoneagent.config import Settings
from phoneagent.db.models import Call, CallEvent, RecordingEgress
from phoneagent.db.states import CallStatus
from phoneagent.errors import EgressUnavailable, PhoneagentError
from phoneagent.recording import lead_in
from phoneagent.recording.merge import Layout, MergeError, TrackFile, merge_tracks
from phoneagent.recording.ogg import opus_duration_s
from phoneagent.recording.storage import delete_location, object_name, store_for
from phoneagent.telephony.interface import EgressControl

# how long the agent's first words wait for their call's merge before they are deleted unused
LEAD_IN_KEPT_S = 24 * 3600

log = logging.getLogger("phoneagent.recordings")


class Recorder:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        egress: EgressControl,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock or SystemClock()  # when the probes are due and the stops were asked
        self._settings = settings
        self._sessions = sessions
        self._egress = egress
        self._root = settings.recordings_path
        self._last_probe = datetime.min.replace(tzinfo=UTC)
        self._finish_attempts: dict[str, int] = {}
        self.wake = asyncio.Event()

    async def run(self, *, idle_s: float = 1.0) -> None:
        await run_passes(log, "recorder pass", self.step, self.wake, idle_s)

    async def step(self) -> None:
        await self.start_pending()
        await self.finish_processing()

    # ---- start ---------------------------------------------------------------------------------

    def _calls(self, *statuses: str) -> list[tuple[str, str | None, str]]:
        with self._sessions() as s:
            rows = s.execute(
                select(Call.id, Call.room_name, Call.status).where(Call.recording_status.in_(statuses))
            ).tuples()
            return list(rows)

    async def start_pending(self) -> None:
        for call_id, room, status in await asyncio.to_thread(self._calls, "pending"):
            if status != "in_progress" or not room:
                continue
            try:
                await self._start_tracks(call_id, room)
            except EgressUnavailable as exc:
                await asyncio.to_thread(self._fail, call_id, f"egress is not running ({exc.message})")
            except PhoneagentError as exc:
                log.warning(
                    "could not start a track recording; retrying",
                    extra={"call_id": call_id, "error": exc.message},
                )

    async def _start_tracks(self, call_id: str, room: str) -> None:
        tracks = await self._egress.tracks(room)
        if tracks is None:
            return  # the room is gone: the call's end will settle the recording
        started = await asyncio.to_thread(self._started_roles, call_id)
        for role, track_id in (("caller", tracks.caller), ("agent", tracks.agent)):
            if track_id is None or role in started:
                continue
            path = rs.tracks_dir(self._root, call_id) / f"{role}.ogg"
            path.parent.mkdir(parents=True, exist_ok=True)
            state = await self._egress.start_track(room=room, track_id=track_id, filepath=str(path))
            log.info(
                "track recording started",
                extra={"call_id": call_id, "role": role, "egress_id": state.egress_id},
            )
            await asyncio.to_thread(self._add, call_id, role, state, str(path))

    def _started_roles(self, call_id: str) -> set[str]:
        with self._sessions() as s:
            return set(s.scalars(select(RecordingEgress.role).where(RecordingEgress.call_id == call_id)))

    def _add(self, call_id: str, role: str, state: object, path: str) -> None:
        with self._sessions() as s:
            call = s.get(Call, call_id)
            if call is not None:
                rs.add_egress(s, call, role, state, path)  # type: ignore[arg-type]
                s.commit()

    def _fail(self, call_id: str, reason: str) -> None:
        with self._sessions() as s:
            call = s.get(Call, call_id)
            if call is not None:
                rs.fail(s, call, reason)
                s.commit()

    # ---- finish --------------------------------------------------------------------------------

    MAX_FINISH_ATTEMPTS = 5  # a storage outage is retried this often before the recording fails

    async def finish_processing(self) -> None:
        for call_id, _room, _status in await asyncio.to_thread(self._calls, "processing"):
            try:
                await self._finish(call_id)
            except Exception as exc:  # noqa: BLE001 - one call's failure, even a bug, never stops the others'
                if not isinstance(exc, PhoneagentError | OSError):
                    log.exception("finishing a recording failed unexpectedly", extra={"call_id": call_id})
                reason = exc.message if isinstance(exc, PhoneagentError) else f"{type(exc).__name__}: {exc}"
                tries = self._finish_attempts[call_id] = self._finish_attempts.get(call_id, 0) + 1
                if getattr(exc, "retryable", False) and tries < self.MAX_FINISH_ATTEMPTS:
                    log.warning(
                        "could not finish a recording; retrying",
                        extra={"call_id": call_id, "error": reason, "attempt": tries},
                    )
                    continue
                await asyncio.to_thread(self._fail, call_id, reason)
            self._finish_attempts.pop(call_id, None)

    async def _finish(self, call_id: str) -> None:
        tracks, tenant, layout_name, end_ns = await asyncio.to_thread(self._track_files, call_id)
        layout: Layout = "mixed" if layout_name == "mixed" else "dual"
        merged = self._root / ".tracks" / call_id / "merged.ogg"
        lead = await asyncio.to_thread(self._lead_in, call_id, tracks["agent"])
        try:
            try:
                await merge_tracks(
                    tracks["caller"],
                    tracks["agent"],
                    merged,
                    layout=layout,
                    end_ns=end_ns,
                    lead=TrackFile(lead.path, lead.started_ns) if lead else None,
                )
            except MergeError as exc:
                if lead is None:
                    raise
                # the agent's first words cost only themselves: the call is merged without them
                log.warning(
                    "merging with the agent's first words failed; merging without them",
                    extra={"call_id": call_id, "error": exc.message},
                )
                lead = None
                await merge_tracks(
                    tracks["caller"],
                    tracks["agent"],
                    merged,
                    layout=layout,
                    end_ns=end_ns,
                )
        finally:
            for path in (
                tracks["agent"].path.with_name(lead_in.JOINED_NAME),
                (await asyncio.to_thread(self._lead_in_event, call_id))[0],
            ):
                if path is not None:
                    path.unlink(missing_ok=True)
        duration_ms = round(opus_duration_s(merged) * 1000)
        size = merged.stat().st_size
        store = store_for(self._settings)
        location = await asyncio.to_thread(store.put, merged, object_name(tenant, call_id))
        merged.unlink(missing_ok=True)
        started_ns = min([*(t.started_ns for t in tracks.values()), *([lead.started_ns] if lead else [])])
        await asyncio.to_thread(self._ready, call_id, location, size, duration_ms, started_ns)
        log.info("recording ready", extra={"call_id": call_id, "duration_ms": duration_ms, "bytes": size})

    def _lead_in_event(self, call_id: str) -> tuple[Path | None, float | None]:
        """The worker's copy of the agent's first utterance (``recording/lead_in.py``), if it came:
        its file and the wall-clock time of its first sample."""
        with self._sessions() as s:
            ev = s.scalar(
                select(CallEvent)
                .where(CallEvent.call_id == call_id, CallEvent.type == lead_in.EVENT)
                .order_by(CallEvent.occurred_at, CallEvent.id)
                .limit(1)
            )
            data = dict((ev.payload or {}).get("data", {})) if ev is not None else {}
        name, started = data.get("file"), data.get("started_at")
        folder = (self._root / lead_in.LEAD_IN_DIR).resolve()
        path = (self._root / name).resolve() if isinstance(name, str) else None
        # only a file the control plane wrote itself (recording/lead_in.py keep), whatever the event says
        if (
            path is None
            or path.parent != folder
            or not path.is_file()
            or not isinstance(started, int | float)
        ):
            return None, None
        return path, float(started)

    def _lead_in(self, call_id: str, agent: TrackFile) -> lead_in.Joined | None:
        """The part of the agent's first utterance that egress missed, ready to go in front of its
        track; None when there is none (or it cannot be used: the recording is made without it)."""
        source, started = self._lead_in_event(call_id)
        if source is None or started is None:
            return None
        out = agent.path.with_name(lead_in.JOINED_NAME)
        try:
            joined = lead_in.join(source, round(started * 1e9), agent.path, agent.started_ns, out)
        except (OSError, ValueError, EOFError, wave.Error, av.FFmpegError) as exc:
            log.warning(
                "the agent's first words could not be joined to its recording",
                extra={"call_id": call_id, "error": str(exc)[:300]},
            )
            return None
        log.info(
            "the agent's first words joined to its recording",
            extra={
                "call_id": call_id,
                "joined_ms": round(joined.samples * 1000 / joined.rate) if joined else 0,
                "aligned_by": joined.how if joined else None,
                "clock_error_ms": joined.clock_error_ms if joined else None,
            },
        )
        return joined

    def _track_files(self, call_id: str) -> tuple[dict[str, TrackFile], str, str, int | None]:
        """The two track files, and where the call ended on their clock: the phone track's own end
        (the agent's track may have been stopped later, with egress's 4 s drain after the stop)."""
        with self._sessions() as s:
            call = s.get(Call, call_id)
            if call is None:
                raise LookupError(f"call {call_id} is gone")
            rows = rs.egresses(s, call)
            files = {}
            for role, row in rows.items():
                if not row.file_started_ns:
                    raise PhoneagentError(f"egress reported no start time for the {role} track")
                files[role] = TrackFile(Path(row.filepath), row.file_started_ns)
            end_ns = rows["caller"].file_ended_ns
            return files, call.tenant_id, call.recording_layout or "dual", end_ns

    def _ready(self, call_id: str, location: str, size: int, duration_ms: int, started_ns: int) -> None:
        with self._sessions() as s:
            call = s.get(Call, call_id)
            if call is not None and call.recording_status == "processing":
                rs.mark_ready(
                    s, call, location=location, size=size, duration_ms=duration_ms, started_ns=started_ns
                )
                s.commit()
            else:  # deleted or failed meanwhile: keep nothing
                delete_location(self._settings, location)

    # ---- watch (run by the sweeper) --------------------------------------------------------------

    def _running(self) -> list[tuple[RecordingEgress, CallStatus, datetime | None]]:
        with self._sessions() as s:
            rows = s.execute(
                select(RecordingEgress, Call.status, Call.ended_at)
                .join(Call, Call.id == RecordingEgress.call_id)
                .where(RecordingEgress.status.not_in(rs.ENDED_EGRESS))
            ).tuples()
            out = list(rows)
            s.expunge_all()
            return out

    async def sweep(self) -> None:
        now = self._clock.now()
        probe = now - self._last_probe >= timedelta(seconds=self._settings.recording_probe_interval_s)
        if probe:
            self._last_probe = now
        running = await asyncio.to_thread(self._running)
        await asyncio.gather(
            *(self._watch(row, status, ended_at, now, probe=probe) for row, status, ended_at in running)
        )
        if self._settings.recording_retention_days > 0:
            await self.apply_retention()

    async def _watch(
        self, row: RecordingEgress, call_status: str, ended_at: datetime | None, now: datetime, *, probe: bool
    ) -> None:
        st = self._settings
        try:
            if row.stop_requested_at is not None:
                if now - row.stop_requested_at >= timedelta(seconds=st.recording_lost_after_s):
                    await self._poll_or_lose(row)
                return
            over = call_status == "ended" and ended_at is not None
            if over and now - ended_at >= timedelta(seconds=st.recording_stop_after_s):  # type: ignore[operator]
                await self._stop(row)
                return
            if probe:
                await self._probe(row)
        except PhoneagentError as exc:  # LiveKit itself unreachable: nothing can be said about egress
            log.warning(
                "could not check a track recording", extra={"egress_id": row.egress_id, "error": exc.message}
            )

    async def _probe(self, row: RecordingEgress) -> None:
        answered = await self._egress.answers(row.egress_id)
        if answered is None:  # over: read how it ended (its webhook may still be on its way)
            await self._poll(row)
            return
        await asyncio.to_thread(self._probed, row.id, answered)

    def _probed(self, row_id: int, answered: bool) -> None:
        with self._sessions() as s:
            row = s.get(RecordingEgress, row_id)
            if row is None or row.status in rs.ENDED_EGRESS:
                return
            row.unanswered_probes = 0 if answered else row.unanswered_probes + 1
            if row.unanswered_probes >= 2:
                log.warning("track recording lost: egress does not answer", extra={"egress": row.egress_id})
                rs.lose(s, row)
            s.commit()

    async def _stop(self, row: RecordingEgress) -> None:
        state = await self._egress.state(row.egress_id)
        if state is not None and state.ended:
            await asyncio.to_thread(self._apply, row.id, state)
            return
        answered = await self._egress.stop(row.egress_id)
        await asyncio.to_thread(self._stop_requested, row.id, answered)

    def _stop_requested(self, row_id: int, answered: bool) -> None:
        with self._sessions() as s:
            row = s.get(RecordingEgress, row_id)
            if row is None:
                return
            row.stop_requested_at = self._clock.now()
            if not answered:
                rs.lose(s, row)
            s.commit()

    async def _poll(self, row: RecordingEgress) -> None:
        state = await self._egress.state(row.egress_id)
        if state is not None:
            await asyncio.to_thread(self._apply, row.id, state)

    async def _poll_or_lose(self, row: RecordingEgress) -> None:
        state = await self._egress.state(row.egress_id)
        if state is not None and state.ended:
            await asyncio.to_thread(self._apply, row.id, state)
        else:
            await asyncio.to_thread(self._lose, row.id)

    def _apply(self, row_id: int, state: object) -> None:
        with self._sessions() as s:
            row = s.get(RecordingEgress, row_id)
            if row is not None:
                rs.apply_egress(s, row, state)  # type: ignore[arg-type]
                s.commit()

    def _lose(self, row_id: int) -> None:
        with self._sessions() as s:
            row = s.get(RecordingEgress, row_id)
            if row is not None:
                rs.lose(s, row)
                s.commit()

    # ---- retention -----------------------------------------------------------------------------

    async def apply_retention(self) -> int:
        """Delete the files and objects of recordings past the retention period; how many."""
        return await asyncio.to_thread(self._retention)

    def _retention(self) -> int:
        deleted = 0
        with self._sessions() as s:
            for call in rs.expired(s, self._settings.recording_retention_days):
                try:
                    if call.recording_location:
                        delete_location(self._settings, call.recording_location)
                except PhoneagentError as exc:
                    log.warning(
                        "could not delete an expired recording",
                        extra={"call_id": call.id, "error": exc.message},
                    )
                    continue
                rs.mark_deleted(s, call)
                deleted += 1
            s.commit()
        # a lead-in whose call was never merged (its recording failed, or was never started)
        cutoff = time.time() - LEAD_IN_KEPT_S
        for f in (self._root / lead_in.LEAD_IN_DIR).glob("*.wav"):
            with contextlib.suppress(FileNotFoundError):
                if f.stat().st_mtime < cutoff:
                    f.unlink()
        if deleted:
            log.info("expired recordings deleted", extra={"count": deleted})
        return deleted
