"""The call lifecycle: facts from three sources folded into one truthful state and one end reason.

Events about a call arrive late, twice and out of order from the SIP API's answer, LiveKit's webhooks
and the worker. Each stored event becomes zero or more :class:`Fact`; the call's state is
:func:`fold` of all its facts, a function of the *set* of facts (never of their arrival order), so a
duplicate or a late event can only ever move the record to the state the full history implies.

- ``status`` is the furthest state any fact proves: queued < dialing < ringing < in_progress < ended.
- ``ringing_at``, ``answered_at``, ``ended_at`` are the earliest time a fact proves that state.
- ``end_reason`` comes from the *strongest* ending fact (see ``STRENGTH``): what an actor declared
  about its own action (the worker hung up because of silence; the API was asked to hang up) beats a
  SIP final response, which beats what the control plane observed (the worker vanished), which beats
  LiveKit's guess from a disconnect reason. Ties go to the earliest fact, then to the name, so the
  result never depends on arrival order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from phoneagent.db.states import CALL_STATUSES, END_REASONS, CallStatus, EndReason, is_end_reason

STATUSES: Final = CALL_STATUSES
_RANK: Final = {s: i for i, s in enumerate(STATUSES)}

# how sure each kind of evidence is about why a call ended
DECLARED = 50  # the worker or the API says what it did
SIP_FINAL = 40  # a final SIP response to our INVITE
OBSERVED = 30  # the control plane saw it happen (the worker vanished, the caller sent BYE)
INFERRED = 20  # read from LiveKit's disconnect reason
NO_EVIDENCE = 10  # the call is gone and nothing says why

WORKER_DECLARED: frozenset[EndReason] = frozenset(
    {"agent_hangup", "transferred", "voicemail", "max_duration", "silence_timeout"}
)


@dataclass(frozen=True)
class Fact:
    at: datetime
    status: CallStatus
    end_reason: EndReason | None = None
    strength: int = 0
    sip_status_code: int | None = None
    sip_status_reason: str | None = None
    disconnect_reason: str | None = None

    def __post_init__(self) -> None:
        if self.status not in _RANK:
            raise ValueError(f"unknown call status {self.status!r}")
        if self.end_reason is not None and self.end_reason not in END_REASONS:
            raise ValueError(f"unknown end reason {self.end_reason!r}")


@dataclass
class CallState:
    status: CallStatus = "queued"
    end_reason: EndReason | None = None
    ringing_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    sip_status_code: int | None = None
    sip_status_reason: str | None = None
    disconnect_reason: str | None = None
    evidence: list[Fact] = field(default_factory=list)

    @property
    def duration_ms(self) -> int | None:
        if self.answered_at is None or self.ended_at is None:
            return None
        return max(0, int((self.ended_at - self.answered_at).total_seconds() * 1000))


def _order(f: Fact) -> tuple[object, ...]:
    return (
        f.at,
        _RANK[f.status],
        f.end_reason or "",
        f.strength,
        f.sip_status_code or 0,
        f.sip_status_reason or "",
        f.disconnect_reason or "",
    )


def _earliest(facts: list[Fact], status: str) -> datetime | None:
    times = [f.at for f in facts if f.status == status]
    return min(times) if times else None


def fold(facts: Iterable[Fact]) -> CallState:
    """The state a set of facts implies; the same for any order and any number of duplicates."""
    unique = sorted(set(facts), key=_order)
    state = CallState(evidence=unique)
    if not unique:
        return state
    state.status = max((f.status for f in unique), key=_RANK.__getitem__)
    state.ringing_at = _earliest(unique, "ringing")
    state.answered_at = _earliest(unique, "in_progress")
    if state.answered_at is not None and state.ringing_at is not None:
        state.ringing_at = min(state.ringing_at, state.answered_at)
    if state.status == "ended":
        endings = [f for f in unique if f.status == "ended"]
        if state.answered_at is not None:
            # an answered call was not busy, unanswered, refused or abandoned, whatever a late source claims
            endings = [f for f in endings if f.end_reason not in _UNANSWERED] or [
                Fact(max(f.at for f in endings), "ended", "failed", NO_EVIDENCE)
            ]
        state.ended_at = min(f.at for f in endings)
        best = min(endings, key=lambda f: (-f.strength, f.at, f.end_reason or "~"))
        state.end_reason = best.end_reason or "failed"
    sip = [f for f in unique if f.sip_status_code is not None]
    if sip:
        best_sip = min(sip, key=lambda f: (-f.strength, f.at))
        state.sip_status_code, state.sip_status_reason = best_sip.sip_status_code, best_sip.sip_status_reason
    disconnect = [f for f in unique if f.disconnect_reason]
    if disconnect:
        state.disconnect_reason = min(disconnect, key=lambda f: f.at).disconnect_reason
    return state


# what cannot have ended a call that was answered
_UNANSWERED = frozenset({"no_answer", "busy", "rejected", "abandoned"})


def end_reason_for_sip(code: int) -> EndReason:
    """The end reason a final SIP response to our INVITE means."""
    if code in (486, 600):
        return "busy"
    if code in (408, 480, 487):
        return "no_answer"
    if code in (403, 404, 410, 484, 603, 604):
        return "rejected"
    return "failed"


# LiveKit's disconnect reason of the SIP participant, when nothing better is known
_DISCONNECT: Final[dict[str, tuple[EndReason, int]]] = {
    "CLIENT_INITIATED": ("customer_hangup", OBSERVED),  # the phone sent BYE
    "ROOM_DELETED": ("agent_hangup", INFERRED),  # someone deleted the room: the agent, or the API
    "PARTICIPANT_REMOVED": ("agent_hangup", INFERRED),
    "USER_UNAVAILABLE": ("no_answer", INFERRED),
    "USER_REJECTED": ("rejected", INFERRED),
    "SIP_TRUNK_FAILURE": ("failed", INFERRED),
    "MEDIA_FAILURE": ("failed", INFERRED),
    # livekit-server stopped hearing from the phone's participant, which livekit-sip holds: the SIP
    # bridge died or hung (killed, it sends nothing; LiveKit gives up on it after about 20 s)
    "CONNECTION_TIMEOUT": ("sip_bridge_lost", INFERRED),
    "AGENT_ERROR": ("worker_lost", INFERRED),
}


def sip_participant_left(at: datetime, disconnect_reason: str) -> Fact:
    reason, strength = _DISCONNECT.get(disconnect_reason, ("failed", NO_EVIDENCE))
    return Fact(at, "ended", reason, strength, disconnect_reason=disconnect_reason)


def inbound_phone_left(at: datetime, call_status: str) -> Fact | None:
    """What an inbound caller's phone leaving says, by the call status livekit-sip last gave it
    (``sip.callStatus``); it counts only for a call nothing proves answered (see ``_UNANSWERED``).

    livekit-sip v1.8.0 answers an inbound call only once it has subscribed to the agent's track, and
    marks it ``active`` a moment after its 200 OK. A phone that leaves still ``ringing`` was given up
    by livekit-sip (nobody picked up within its ring timeout); one that leaves as ``hangup`` sent
    CANCEL (or BYE) before the agent was on the line; one that leaves ``active`` with nothing proving
    the call answered was hung up by livekit-sip because no ACK came for its 200 OK (it sets no status
    for that), which is what a CANCEL that crossed the 200 OK leads to.
    """
    if call_status == "ringing":
        return Fact(at, "ended", "no_answer", SIP_FINAL)
    if call_status in ("hangup", "active"):
        return Fact(at, "ended", "abandoned", SIP_FINAL)
    return None


def worker_hangup(at: datetime, reason: str) -> Fact | None:
    """The worker ended the call and says why; anything it may not claim is ignored."""
    if not is_end_reason(reason) or reason not in WORKER_DECLARED:
        return None
    return Fact(at, "ended", reason, DECLARED)


def sip_final(at: datetime, code: int, reason: str | None) -> Fact:
    return Fact(
        at, "ended", end_reason_for_sip(code), SIP_FINAL, sip_status_code=code, sip_status_reason=reason
    )
