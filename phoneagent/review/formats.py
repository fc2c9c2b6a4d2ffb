"""How times, durations and offsets read, on the review pages and in `phoneagent calls` alike."""

from __future__ import annotations

from datetime import datetime


def utc(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def duration(ms: int | None) -> str:
    if ms is None:
        return "—"
    s = round(ms / 1000)
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def clock(seconds: float | None) -> str:
    """mm:ss (h:mm:ss past an hour) of an offset into the call."""
    if seconds is None:
        return "—"
    total = max(0, int(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def offset_s(origin: datetime | None, at: datetime | None) -> float | None:
    """Seconds from ``origin`` (e.g. the answer, where the recording starts) to ``at``, never negative."""
    if origin is None or at is None:
        return None
    return max(0.0, round((at - origin).total_seconds(), 2))
