"""A call's recording as rows: what it is waiting for, what its track egresses reported, how it ended.

``Call.recording_status`` moves ``pending`` (answered; its tracks' egresses are being started) →
``recording`` (both started) → ``processing`` (both files complete, the call over: to be merged) →
``ready``, or to ``failed`` from any of them (with ``recording_error``), and from ``ready`` to
``deleted``. A recording that fails never touches the call's own lifecycle: it has its own status,
its own reason and its own webhook (``recording.failed``).

Every function here works in the caller's transaction and never commits; the webhooks it queues are
written in that same transaction (``phoneagent.calls.outbox``), once per call and event type.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneagent.calls.outbox import enqueue
from phoneagent.db.models import AgentProfile, Call, RecordingEgress
from phoneagent.db.states import is_egress_status
from phoneagent.telephony.egress import EgressState

log = logging.getLogger("phoneagent.recordings")

ROLES = ("caller", "agent")
LIVE = ("pending", "recording")
ENDED_EGRESS = ("complete", "failed", "aborted", "limit_reached", "lost")
SUPPORTED_FORMATS = ("ogg",)
NO_AAC = (
    "egress v1.8.6 cannot write {fmt}: it needs an AAC encoder (GStreamer's faac), which no Debian "
    "package provides; only ogg (Opus) can be recorded"
)
STOPPED_RESPONDING = "egress stopped responding"


def tracks_dir(recordings_root: Path, call_id: str) -> Path:
    """Where egress writes a call's track files (inside the recordings directory)."""
    return recordings_root / ".tracks" / call_id


def begin(session: Session, call: Call) -> None:
    """The call was answered: start its recording if its agent profile records calls."""
    if call.recording_status is not None or call.agent_profile_id is None:
        return
    profile = session.get(AgentProfile, call.agent_profile_id)
    if profile is None or not profile.recording:
        return
    call.recording_format, call.recording_layout = profile.recording_format, profile.recording_layout
    call.recording_status = "pending"
    if profile.recording_format not in SUPPORTED_FORMATS:  # refused by the API; an old row may hold it
        fail(session, call, NO_AAC.format(fmt=profile.recording_format))


def egresses(session: Session, call: Call) -> dict[str, RecordingEgress]:
    rows = session.scalars(select(RecordingEgress).where(RecordingEgress.call_id == call.id)).all()
    return {r.role: r for r in rows}


def add_egress(session: Session, call: Call, role: str, state: EgressState, filepath: str) -> None:
    session.add(
        RecordingEgress(
            call_id=call.id,
            role=role,
            egress_id=state.egress_id,
            track_id=state.track_id,
            status=state.status,
            filepath=filepath,
        )
    )
    session.flush()
    rows = egresses(session, call)
    call.recording_egress_id = ",".join(rows[r].egress_id for r in ROLES if r in rows)
    if call.recording_status == "pending" and set(rows) == set(ROLES):
        call.recording_status = "recording"


def fail(session: Session, call: Call, reason: str) -> None:
    """The recording failed: say why, queue ``recording.failed``, drop the partial track files."""
    if call.recording_status in ("ready", "failed", "deleted"):
        return
    log.warning("recording failed", extra={"call_id": call.id, "reason": reason})
    call.recording_status, call.recording_error = "failed", reason[:500]
    call.recording_ended_at = datetime.now(UTC)
    session.flush()
    enqueue(session, call, "recording.failed")
    for row in egresses(session, call).values():
        if row.status in ENDED_EGRESS:
            _drop_files(row)


def _drop_files(row: RecordingEgress) -> None:
    path = Path(row.filepath)
    for p in (path, path.with_name(path.name + ".json")):  # egress writes a manifest beside each file
        p.unlink(missing_ok=True)
    if path.parent.is_dir() and not any(path.parent.iterdir()):
        shutil.rmtree(path.parent, ignore_errors=True)


def apply_egress(session: Session, row: RecordingEgress, state: EgressState) -> None:
    """What livekit-server said about one track egress (webhook or poll), then the recording's step."""
    if row.status in ENDED_EGRESS:
        return  # an end is final (a late "active" update changes nothing)
    if is_egress_status(state.status):
        row.status = state.status
    else:  # a state this version does not know: the track cannot be trusted to be whole
        row.status, state = "failed", replace(state, error=state.error or f"egress state {state.status}")
    if state.error:
        row.error = state.error[:500]
    for name in ("file_started_ns", "file_ended_ns", "file_duration_ns", "file_size"):
        if getattr(state, name) is not None:
            setattr(row, name, getattr(state, name))
    if state.filename:
        row.filepath = state.filename
    call = session.get(Call, row.call_id)
    if call is not None:
        settle(session, call)


def lose(session: Session, row: RecordingEgress) -> None:
    """The egress behind ``row`` stopped responding: livekit-server will report it ACTIVE for ever."""
    if row.status in ENDED_EGRESS:
        return
    row.status, row.error = "lost", STOPPED_RESPONDING
    call = session.get(Call, row.call_id)
    if call is not None:
        settle(session, call)


def settle(session: Session, call: Call) -> None:
    """Move the recording on from what its egresses say: failed, or ready to merge once all ended."""
    rows = egresses(session, call)
    if call.recording_status == "failed":
        for row in rows.values():
            if row.status in ENDED_EGRESS:
                _drop_files(row)
        return
    if call.recording_status not in LIVE:
        return
    for role in ROLES:
        bad = rows.get(role)
        if bad is not None and bad.status in ("failed", "aborted", "limit_reached", "lost"):
            fail(session, call, f"{role} track: {bad.error or bad.status}")
            return
    if call.status != "ended" or any(r.status not in ENDED_EGRESS for r in rows.values()):
        return
    missing = [role for role in ROLES if role not in rows]
    if len(missing) == len(ROLES):
        fail(session, call, "the call ended before its recording started")
        return
    if missing:
        fail(session, call, f"the {missing[0]}'s audio was not recorded: no track of it was found in time")
        return
    call.recording_status = "processing"


def mark_ready(
    session: Session, call: Call, *, location: str, size: int, duration_ms: int, started_ns: int | None = None
) -> None:
    """``started_ns``: the merged file's time 0 (its earliest input), when the caller knows it."""
    rows = egresses(session, call)
    started = [started_ns] if started_ns else [r.file_started_ns for r in rows.values() if r.file_started_ns]
    call.recording_status, call.recording_error = "ready", None
    call.recording_location, call.recording_size_bytes = location, size
    call.recording_duration_ms = duration_ms
    call.recording_started_at = datetime.fromtimestamp(min(started) / 1e9, UTC) if started else None
    call.recording_ended_at = datetime.now(UTC)
    session.flush()
    enqueue(session, call, "recording.ready")
    for row in rows.values():
        _drop_files(row)


def mark_deleted(session: Session, call: Call) -> None:
    call.recording_status, call.recording_location = "deleted", None
    call.recording_deleted_at = datetime.now(UTC)


def expired(session: Session, days: int, *, limit: int = 100) -> list[Call]:
    """Ready recordings older than the retention period, oldest first."""
    cutoff = datetime.now(UTC) - timedelta(days=days)
    return list(
        session.scalars(
            select(Call)
            .where(Call.recording_status == "ready", Call.recording_ended_at < cutoff)
            .order_by(Call.recording_ended_at)
            .limit(limit)
        )
    )
