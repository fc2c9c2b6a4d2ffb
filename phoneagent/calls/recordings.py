"""Call recordings as local files, served with HTTP Range support so that a browser's player can seek.

``Call.recording_location`` is a path relative to the recordings directory (``PHONEAGENT_RECORDINGS_DIR``,
default ``<state_dir>/recordings``) or an absolute path inside it. A path that leads out of that
directory (``..``, an absolute path elsewhere, a symlink pointing out) is refused like a missing file:
the caller learns nothing about the rest of the disk. Ranges (``bytes=0-99``, ``bytes=100-``,
``bytes=-500``; 206, 416 for a range outside the file) are Starlette's ``FileResponse``'s.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from starlette.responses import FileResponse

from phoneagent.db.models import Call
from phoneagent.errors import NotFound

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
        raise NotFound("this call's recording is not a local file", hint="fetch it from where egress put it")
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


def recording_response(root: Path, call: Call, *, download: bool = False) -> FileResponse:
    """The recording (whole, or the requested byte range) for the player, or as a download."""
    path = recording_path(root, call)
    suffix = path.suffix.lower()
    return FileResponse(
        path,
        media_type=CONTENT_TYPES.get(suffix, "application/octet-stream"),
        filename=f"{call.id}{suffix}",
        content_disposition_type="attachment" if download else "inline",
        stat_result=os.stat(path),
        headers={"Cache-Control": "private, no-cache", "X-Content-Type-Options": "nosniff"},
    )
