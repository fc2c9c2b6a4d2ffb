"""What the review pages show, shaped from the call log: the list's filter form (as typed, with its
errors), a call's end reason in words, its outcome, its turns placed on the recording's clock, its
event timeline, and the transcript downloads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from phoneagent.calls.outcome import OutcomeFilter
from phoneagent.calls.query import CallFilter
from phoneagent.calls.timeline import HIGHLIGHT, summarize_event
from phoneagent.db.models import Call, CallEvent, CallTurn
from phoneagent.review.formats import clock, offset_s
from phoneagent.telephony.numbers import to_e164

# end reason -> (who ended the call, what happened)
END_REASONS: dict[str, tuple[str, str]] = {
    "customer_hangup": ("the person on the phone", "The person on the phone hung up."),
    "abandoned": ("the caller", "The caller hung up before the call was answered."),
    "agent_hangup": ("the agent", "The agent ended the call."),
    "no_answer": ("nobody", "Nobody answered."),
    "busy": ("the called side", "The line was busy."),
    "rejected": ("the called side", "The call was rejected."),
    "failed": ("the network", "The call could not be connected."),
    "voicemail": ("the agent", "A voicemail answered."),
    "transferred": ("the agent", "The agent transferred the call."),
    "max_duration": ("the agent", "The call reached its maximum duration."),
    "silence_timeout": ("the agent", "Nobody spoke for too long."),
    "worker_lost": ("nobody (the agent process was lost)", "The agent process was lost during the call."),
    "over_capacity": ("phoneagent (all lines busy)", "No agent was free: the caller got a busy signal."),
    "sip_bridge_lost": (
        "nobody (the SIP bridge was lost)",
        "The SIP bridge carrying the phone call was lost during the call.",
    ),
    "media_node_lost": (
        "nobody (the media server was lost)",
        "The LiveKit node carrying the call's audio was lost during the call.",
    ),
}

FILTER_FIELDS = (
    "from",
    "to",
    "status",
    "end_reason",
    "direction",
    "number",
    "agent",
    "intent",
    "success",
    "q",
)
SUCCESS_CHOICES = {"yes": True, "no": False}
MAX_FIELD = 200


@dataclass
class ListQuery:
    form: dict[str, str]  # the filter values as typed, to fill the form again
    filter: CallFilter
    cursor: str | None
    errors: dict[str, str] = field(default_factory=dict)

    def link(self, **extra: str | None) -> str:
        """A query string with the current filters (plus ``extra``), empty values left out."""
        values = {**self.form, **extra}
        return urlencode({k: v for k, v in values.items() if v})


def parse_list_query(
    params: Mapping[str, str],
    *,
    statuses: Iterable[str],
    end_reasons: Iterable[str],
    directions: Iterable[str],
    agent_ids: Iterable[str],
) -> ListQuery:
    """The list page's query string as a CallFilter. Empty fields (what a submitted form sends for
    untouched inputs) mean "any"; each bad field gets a message instead of an exception (the filter is
    only for use when there is none)."""
    form = {k: params.get(k, "").strip() for k in FILTER_FIELDS}
    errors: dict[str, str] = {
        k: f"at most {MAX_FIELD} characters" for k, v in form.items() if len(v) > MAX_FIELD
    }
    form = {k: ("" if k in errors else v) for k, v in form.items()}
    cursor = params.get("cursor", "").strip() or None
    if cursor and len(cursor) > MAX_FIELD:
        errors["cursor"], cursor = "not a page link made by this page", None
    choices = {
        "status": statuses,
        "end_reason": end_reasons,
        "direction": directions,
        "agent": agent_ids,
        "success": SUCCESS_CHOICES,
    }
    for name, allowed in choices.items():
        if form[name] and form[name] not in set(allowed):
            errors[name] = "not one of the choices"
    days: dict[str, datetime] = {}  # "to" is included: the filter ends at the next midnight
    for name, extra in (("from", 0), ("to", 1)):
        if form[name]:
            try:
                day = date.fromisoformat(form[name]) + timedelta(days=extra)
                days[name] = datetime.combine(day, time(), UTC)
            except ValueError:
                errors[name] = "a date like 2026-11-25"
    if "from" in days and "to" in days and days["from"] >= days["to"]:
        errors["to"] = "must be on or after the first day"
    number = None
    if form["number"]:
        try:
            number = to_e164(form["number"])
        except ValueError as exc:
            errors["number"] = str(exc)
    f = CallFilter(
        status=form["status"] or None,
        end_reason=form["end_reason"] or None,
        direction=form["direction"] or None,
        number=number,
        agent_profile_id=form["agent"] or None,
        since=days.get("from"),
        until=days.get("to"),
        q=form["q"] or None,
        outcome=OutcomeFilter(intent=form["intent"] or None, success=SUCCESS_CHOICES.get(form["success"]))
        if form["intent"] or form["success"] in SUCCESS_CHOICES
        else None,
    )
    return ListQuery(form=form, filter=f, cursor=cursor, errors=errors)


# ---- one call ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TurnView:
    seq: int
    speaker: str
    text: str
    started_at: datetime | None
    offset_s: float | None  # where the turn starts in the recording (which starts at answer)

    @property
    def clock(self) -> str:
        return clock(self.offset_s)


@dataclass(frozen=True)
class EventView:
    occurred_at: datetime
    offset: str
    source: str
    type: str
    summary: str
    kind: str  # a CSS class: fallback, tool, hangup, answered or other


def turn_views(call: Call, turns: Iterable[CallTurn]) -> list[TurnView]:
    return [
        TurnView(t.seq, t.speaker, t.text, t.started_at, offset_s(call.answered_at, t.started_at))
        for t in turns
    ]


def event_views(call: Call, events: Iterable[CallEvent]) -> list[EventView]:
    origin = call.answered_at or call.created_at
    out = []
    for e in events:
        offset = clock(offset_s(origin, e.occurred_at)) if e.occurred_at >= origin else "before answer"
        out.append(
            EventView(
                occurred_at=e.occurred_at,
                offset=offset,
                source=e.source,
                type=e.type,
                summary=summarize_event(e.source, e.type, e.payload),
                kind=HIGHLIGHT.get(e.type, "other"),
            )
        )
    return out


@dataclass(frozen=True)
class OutcomeItem:
    label: str  # the intent, the confirmation question, or the slot's name
    value: str  # the slot's value, the caller's yes or no; empty for an intent
    source: str  # where it came from, in words: "turn 3 at 0:12", "keys 2"
    turn: int | None  # the transcript turn it came from, to link to


@dataclass(frozen=True)
class Extraction:
    """The post-call extraction: the schema's fields filled from the transcript, and how it went."""

    fields: list[tuple[str, str]]  # (field, value in words)
    status: str  # done | failed | skipped
    model: str
    error: str


@dataclass(frozen=True)
class OutcomeView:
    intent: str | None
    success: bool | None
    intents: list[OutcomeItem]
    confirmations: list[OutcomeItem]
    slots: list[OutcomeItem]
    extraction: Extraction | None = None


def _source(entry: Mapping[str, Any], turns: Mapping[int, TurnView]) -> tuple[str, int | None]:
    if entry.get("via") == "dtmf":
        return f"keys {entry.get('keys') or '?'}", None
    seq = entry.get("turn")
    if not isinstance(seq, int):
        return "by voice", None
    turn = turns.get(seq)
    return (f"turn {seq} at {turn.clock}" if turn and turn.offset_s is not None else f"turn {seq}"), seq


def outcome_view(call: Call, turns: Iterable[TurnView]) -> OutcomeView | None:
    """The call's outcome for the detail page, each part with the turn (or keys) it came from."""
    o = call.outcome
    if not o:
        return None
    by_seq = {t.seq: t for t in turns}

    def item(label: str, value: str, entry: Mapping[str, Any]) -> OutcomeItem:
        return OutcomeItem(label, value, *_source(entry, by_seq))

    success = o.get("success")
    return OutcomeView(
        intent=o.get("intent"),
        success=success if isinstance(success, bool) else None,
        intents=[item(str(i.get("name", "")), "", i) for i in o.get("intents", [])],
        confirmations=[
            item(str(c.get("question") or c.get("intent", "")), str(c.get("answer", "")), c)
            for c in o.get("confirmations", [])
        ],
        slots=[item(name, str(s.get("value", "")), s) for name, s in (o.get("slots") or {}).items()],
        extraction=_extraction(o),
    )


def _words(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_words(v) for v in value) or "—"
    return str(value)


def _extraction(o: Mapping[str, Any]) -> Extraction | None:
    report = o.get("extraction")
    if not isinstance(report, dict):
        return None
    extracted = o.get("extracted")
    fields = [(str(k), _words(v)) for k, v in extracted.items()] if isinstance(extracted, dict) else []
    return Extraction(
        fields=fields,
        status=str(report.get("status", "")),
        model=str(report.get("model") or ""),
        error=str(report.get("error") or ""),
    )


def end_reason_text(call: Call) -> tuple[str, str]:
    """(who ended the call, what happened) for the detail page."""
    if call.end_reason is None:
        return ("—", "The call has not ended." if call.status != "ended" else "No reason was recorded.")
    return END_REASONS.get(call.end_reason, ("—", call.end_reason))


def transcript_json(call: Call, turns: list[TurnView]) -> dict[str, Any]:
    return {
        "call_id": call.id,
        "direction": call.direction,
        "from": call.from_number,
        "to": call.to_number,
        "answered_at": call.answered_at.isoformat() if call.answered_at else None,
        "turns": [
            {
                "seq": t.seq,
                "speaker": t.speaker,
                "offset_s": t.offset_s,
                "started_at": t.started_at.isoformat() if t.started_at else None,
                "text": t.text,
            }
            for t in turns
        ],
    }


def transcript_text(call: Call, turns: list[TurnView]) -> str:
    head = f"Call {call.id}: {call.from_number} -> {call.to_number} ({call.direction})"
    lines = [head, f"Answered: {call.answered_at.isoformat() if call.answered_at else '-'}", ""]
    lines += [f"[{t.clock}] {t.speaker.capitalize()}: {t.text}" for t in turns]
    return "\n".join(lines) + "\n"
