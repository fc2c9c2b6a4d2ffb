"""`phoneagent stack refused`: the INVITEs livekit-sip turned away before any room existed.

A call that matched no trunk, failed its trunk's authentication, found no dispatch rule or hit a
quota never reaches LiveKit's rooms, so no webhook and no call record tells of it; livekit-sip v1.8.0
sends its own call-state reports only to a LiveKit Cloud backend. What remains is its log: every INVITE
gets an info line ``processing invite`` (with a ``callID``, the caller and the number called), and a
refusal a ``Rejecting ...`` (or authentication, or media) line for the same ``callID`` (404, 503, 401,
407, 488, ...). An INVITE from an address no
trunk allows is dropped with no answer at all and no line at info level (livekit-sip's flood
protection, logged at debug): it shows here as an INVITE that nothing followed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

# what each refusal line means for the caller, by livekit-sip's message
_REFUSALS = {
    "Rejecting inbound, doesn't match any Trunks": "404: no inbound trunk has this number",
    "Rejecting inbound, no trunk found": "404: no inbound trunk found",
    "Rejecting inbound, auth check failed": "503: the trunk lookup failed (LiveKit or Redis down?)",
    "Rejecting inbound, quota exceeded": "503: quota exceeded",
    "Rejecting inbound call, doesn't match any Dispatch Rules": "404: no dispatch rule for this trunk",
    "Rejecting inbound call, dispatch evaluation failed": "503: the dispatch rule lookup failed",
    "Authentication failed - username mismatch": "401: wrong digest user name",
    "Authentication failed - response mismatch": "401: wrong digest password",
    "No Proxy header found. Sending 407 Unauthorized response with Proxy-Authenticate header": (
        "407: the trunk asks for digest credentials, and the caller did not send them"
    ),
    "Cannot start media": "488/400: no codec or media address livekit-sip can use",
}
DROPPED = (
    "dropped, no answer: no trunk allows this source address and number (livekit-sip's flood protection)"
)
# a line for the call that means it went on to a room (so it was not refused)
_WENT_ON = ("Joining room", "Accepting the call", "Waiting for track subscription")


@dataclass(frozen=True)
class RefusedInvite:
    at: datetime
    call_id: str  # livekit-sip's SCL_... id, in every line of its log about the call
    from_user: str
    from_ip: str
    to_user: str
    why: str


def _parse(line: str) -> tuple[datetime, str, dict[str, object]] | None:
    """livekit-sip's console log: ``time<TAB>LEVEL<TAB>logger<TAB>caller<TAB>message<TAB>{json}``."""
    parts = line.rstrip("\n").split("\t")
    if len(parts) < 6:
        return None
    try:
        at = datetime.fromisoformat(parts[0].replace("Z", "+00:00"))
        fields = json.loads(parts[5])
    except ValueError:
        return None
    return (at, parts[4], fields) if isinstance(fields, dict) else None


def refused_invites(log: Path, *, settled_before: datetime | None = None) -> list[RefusedInvite]:
    """The INVITEs in livekit-sip's log that were refused or dropped, oldest first. An INVITE with no
    later line counts as dropped only when it is older than ``settled_before`` (a call being set up
    right now has no later line yet either)."""
    if not log.exists():
        return []
    invites: dict[str, tuple[datetime, dict[str, object]]] = {}
    outcome: dict[str, str] = {}
    went_on: set[str] = set()
    with log.open(errors="replace") as fh:
        for line in fh:
            parsed = _parse(line)
            if parsed is None:
                continue
            at, message, fields = parsed
            call_id = str(fields.get("callID", ""))
            if not call_id:
                continue
            if message == "processing invite":
                invites.setdefault(call_id, (at, fields))
            elif message in _REFUSALS:
                outcome.setdefault(call_id, _REFUSALS[message])
            elif message.startswith(_WENT_ON):
                went_on.add(call_id)
    found = []
    for call_id, (at, fields) in invites.items():
        if call_id in went_on:  # e.g. answered the 407 challenge with the right credentials
            continue
        why = outcome.get(call_id)
        if why is None:
            if settled_before is None or at >= settled_before:
                continue
            why = DROPPED
        found.append(
            RefusedInvite(
                at=at,
                call_id=call_id,
                from_user=str(fields.get("fromUser", "")),
                from_ip=str(fields.get("fromIP", "")),
                to_user=str(fields.get("toUser", "")),
                why=why,
            )
        )
    return sorted(found, key=lambda r: r.at)
