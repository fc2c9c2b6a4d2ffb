"""Call recordings served with HTTP Range support (so that a browser's player can seek), and deleted.

``Call.recording_location`` is a path relative to the recordings directory (``PHONEAGENT_RECORDINGS_DIR``,
default ``<state_dir>/recordings``) or an absolute path inside it, or ``s3://bucket/key``. A path that
leads out of that directory (``..``, an absolute path elsewhere, a symlink pointing out) is refused
like a missing file: the caller learns nothing about the rest of the disk. Ranges (``bytes=0-99``,
``bytes=100-``, ``bytes=-500``; 206, 416 for a range outside the file) are Starlette's
``FileResponse``'s for files; for objects one range is asked of the S3 server and relayed.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

from sqlalchemy.orm import Session
from starlette.responses import FileResponse, Response, StreamingResponse

from phoneagent.calls import recording_state
from phoneagent.config import Settings
from phoneagent.db.models import Call
from phoneagent.errors import Conflict, NotFound
from phoneagent.recording.storage import S3Store, delete_location, is_s3

log = logging.getLogger("phoneagent.recordings")

CONTENT_TYPES = {
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".wav": "audio/wav",
    ".m4a": "audio/mp4",
    ".mp4": "audio/mp4",
}


def recording_path(root: Path, call: Call) -> Path:
    """The recording's file, checked to be a regular file inside ``root``; NotFound otherwise."""
    location = call.recording_location
    if not location:
        raise NotFound("this call has no recording")
    if "://" in location:
        raise NotFound("this call's recording is not a local file")
    try:
        base = root.resolve()
        path = Path(location)
        path = (path if path.is_absolute() else base / path).resolve()
    except (OSError, ValueError):
        raise NotFound("this call has no recording") from None
    if not path.is_relative_to(base):
        log.warning("recording path outside the recordings directory", extra={"call_id": call.id})
        raise NotFound("this call has no recording")
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise NotFound("this call's recording file is gone")
    except OSError:
        raise NotFound("this call's recording file is gone") from None
    return path


_HEADERS = {"Cache-Control": "private, no-cache", "X-Content-Type-Options": "nosniff"}


def recording_note(settings: Settings, call: Call) -> str:
    """Why the call's recording cannot be played ("" when it can), for the review page."""
    if call.recording_status == "failed":
        return f"the recording failed: {call.recording_error or 'no reason given'}"
    if call.recording_status in ("pending", "recording", "processing"):
        return "the recording is not ready yet"
    if call.recording_location and is_s3(call.recording_location):
        return ""
    try:
        recording_path(settings.recordings_path, call)
    except NotFound as exc:
        return exc.message
    return ""


def recording_response(
    settings: Settings, call: Call, *, download: bool = False, range_header: str | None = None
) -> Response:
    """The recording (whole, or the requested byte range) for the player, or as a download."""
    if call.recording_location and is_s3(call.recording_location):
        return _object_response(settings, call, call.recording_location, download, range_header)
    return file_response(settings.recordings_path, call, download=download)


def _disposition(call: Call, suffix: str, download: bool) -> str:
    return f'{"attachment" if download else "inline"}; filename="{call.id}{suffix}"'


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """One ``bytes=`` range as (start, end) inclusive; None for the whole object (no header, or one we
    do not serve as a range, e.g. several ranges); False when it cannot be satisfied (416)."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header or "")
    if m is None or m.group(1) == m.group(2) == "":
        return None
    if max(len(m.group(1)), len(m.group(2))) > 18:  # past any object's size (and int()'s digit limit)
        return False
    if m.group(1) == "":  # the last n bytes
        n = int(m.group(2))
        return (max(0, size - n), size - 1) if n > 0 and size > 0 else False
    start = int(m.group(1))
    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    if start >= size or end < start:
        return False
    return start, end


def _object_response(
    settings: Settings, call: Call, location: str, download: bool, range_header: str | None
) -> Response:
    if not settings.s3_bucket:
        raise NotFound("this call's recording is in S3 storage, which this control plane is not set up for")
    store = S3Store(settings)
    suffix = Path(location).suffix.lower()
    disposition = _disposition(call, suffix, download)
    headers = {**_HEADERS, "Accept-Ranges": "bytes", "Content-Disposition": disposition}
    size = store.size(location)
    if size is None:
        raise NotFound("this call's recording is gone from storage")
    wanted = _byte_range(range_header, size)
    if wanted is False:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    got = store.read(location, wanted if isinstance(wanted, tuple) else None)
    headers["Content-Length"] = str(got.end - got.start + 1)
    if got.status == 206:
        headers["Content-Range"] = f"bytes {got.start}-{got.end}/{got.size}"
    media = CONTENT_TYPES.get(suffix, "application/octet-stream")
    return StreamingResponse(got.chunks, status_code=got.status, media_type=media, headers=headers)


def delete_recording(session: Session, settings: Settings, call: Call) -> None:
    """Delete the call's recording file or object (idempotent). One still being made cannot be."""
    if call.recording_status in ("pending", "recording", "processing"):
        raise Conflict(
            "the call's recording is still being made",
            hint="delete it once GET /calls/{id} says its recording_status is ready or failed",
        )
    if call.recording_location:
        delete_location(settings, call.recording_location)
    if call.recording_status == "ready" or call.recording_location:
        recording_state.mark_deleted(session, call)


def file_response(root: Path, call: Call, *, download: bool = False) -> FileResponse:
    """A local recording file (Starlette serves the ranges)."""
    path = recording_path(root, call)
    suffix = path.suffix.lower()
    return FileResponse(
        path,
        media_type=CONTENT_TYPES.get(suffix, "application/octet-stream"),
        filename=f"{call.id}{suffix}",
        content_disposition_type="attachment" if download else "inline",
        stat_result=os.stat(path),
        headers=_HEADERS,
    )
