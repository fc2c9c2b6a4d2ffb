"""One-line summaries of call events, for the review page's timeline and `phoneagent calls tail`.

Known types get a tailored line (turns, hang-ups, provider fallbacks, tool calls, LiveKit participant
events); any other type is summarised from its scalar fields, so a new event type shows up without a
change here. Pure functions of (source, type, payload): no database, no framework.
"""

from __future__ import annotations

from typing import Any

MAX_VALUE = 60
MAX_FIELDS = 4
# event types drawn as markers of their own on the timeline
HIGHLIGHT = {"fallback": "fallback", "tool": "tool", "hangup": "hangup", "answered": "answered"}


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _scalars(data: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    parts = [
        f"{k}={_short(v)}"
        for k, v in data.items()
        if k not in skip and isinstance(v, str | int | float | bool) and v != ""
    ]
    return ", ".join(parts[:MAX_FIELDS])


def _livekit(payload: dict[str, Any]) -> str:
    part = payload.get("participant") or {}
    bits = []
    if part.get("identity"):
        bits.append(f"participant {_short(part['identity'])}")
    if part.get("kind"):
        bits.append(f"kind {part['kind']}")
    if part.get("disconnectReason"):
        bits.append(f"disconnect {part['disconnectReason']}")
    egress = payload.get("egressInfo") or {}
    if egress.get("status"):
        bits.append(f"egress {egress['status']}")
    return ", ".join(bits)


def summarize_event(source: str, type_: str, payload: dict[str, Any]) -> str:
    """A short, human-readable line about one event (no transcript text)."""
    if source == "livekit":
        return _livekit(payload)
    data = payload.get("data", payload)
    if not isinstance(data, dict):
        return ""
    if type_ == "turn":
        line = f"{data.get('speaker', '?')} turn {data.get('seq', '?')}"
        total = data.get("total_s")
        return (
            f"{line}, {round(float(total) * 1000)} ms to first audio"
            if isinstance(total, int | float)
            else line
        )
    if type_ == "fallback":
        kind = f"{data['kind']}: " if data.get("kind") else ""
        moved = f"{_short(data.get('from', '?'))} → {_short(data.get('to', '?'))}"
        rest = _scalars(data, skip=("kind", "from", "to"))
        return f"{kind}{moved}" + (f" ({rest})" if rest else "")
    if type_ == "tool":
        name = _short(data.get("name") or data.get("tool") or "?")
        args = data.get("arguments") or data.get("args")
        shown = _scalars(args) if isinstance(args, dict) else (_short(args) if args else "")
        rest = _scalars(data, skip=("name", "tool", "arguments", "args"))
        return f"{name}({shown})" + (f" {rest}" if rest else "")
    if type_ == "outcome":  # the slots' names, not their values (a number, an account)
        slots = data.get("slots")
        names = ", ".join(_short(k) for k in slots) if isinstance(slots, dict) else ""
        intents = data.get("intents")
        taken = len(intents) if isinstance(intents, list) else 0
        line = f"intent {_short(data.get('intent') or '—')} ({taken} taken)"
        return line + (f", slots: {names}" if names else "")
    return _scalars(data, skip=("text",))
