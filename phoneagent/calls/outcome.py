"""A call's outcome: what the caller came for and gave, as the worker reported it, and whether the call
reached its agent profile's goal.

- The worker reports the whole outcome so far as an ``outcome`` event each time it changes
  (``phoneagent.worker.outcome``: ``intent``, ``intents``, ``confirmations``, ``slots``). The record
  keeps the latest by the worker's own clock (``occurred_at``, then arrival): a resent or late
  older one changes nothing, and each event id is stored once (``worker_events``).
- ``success``: an agent profile may declare a condition on the outcome, e.g.
  ``{"intent": "appointment", "slots": ["day"]}``: that intent was taken (at any point of the call),
  those slots filled, and (``values``) those slots hold those values. The record's
  ``outcome.success`` is true or false by the condition the profile had when the outcome arrived;
  absent when the profile declares none.
- The call log filters on it (``outcome.intent``, ``outcome.success``, ``outcome.slot``) with JSON
  path expressions that SQLite and PostgreSQL both run; :func:`success_rates` counts per agent
  profile and per campaign.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import and_, case, func, or_, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from phoneagent.db.models import AgentProfile, Call, CallEvent, Campaign
from phoneagent.errors import InvalidField

SLOT_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
SlotName = Annotated[str, StringConstraints(pattern=SLOT_PATTERN)]
# no control characters: PostgreSQL cannot turn a JSON "\u0000" into text, and every filter on the
# outcome would fail on a record holding one
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
Text = Annotated[str, StringConstraints(max_length=200, pattern=PRINTABLE)]
Turn = Annotated[int, Field(ge=0, le=100_000)]
FILTERS = ("outcome.intent", "outcome.success", "outcome.slot")


# ---- what the worker sends -------------------------------------------------------------------------


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    via: Literal["voice", "dtmf"]
    turn: Turn | None = None
    keys: Annotated[str, StringConstraints(max_length=64, pattern=r"^[0-9*#A-D]*$")] | None = None


class IntentEntry(_Entry):
    name: Text


class ConfirmationEntry(_Entry):
    intent: Text
    question: Annotated[str, StringConstraints(max_length=2000, pattern=PRINTABLE)] = ""
    answer: Literal["yes", "no"]


class SlotEntry(_Entry):
    value: Text


class OutcomeData(BaseModel):
    """An ``outcome`` worker event's data: the whole outcome so far (bounded)."""

    model_config = ConfigDict(extra="forbid")
    intent: Text | None = None
    intents: list[IntentEntry] = Field(default_factory=list, max_length=200)
    confirmations: list[ConfirmationEntry] = Field(default_factory=list, max_length=200)
    slots: dict[SlotName, SlotEntry] = Field(default_factory=dict, max_length=50)


# ---- success ---------------------------------------------------------------------------------------


class SuccessCondition(BaseModel):
    """When a call of the profile is a success: every part given must hold (``{}``: no condition)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"intent": "appointment", "slots": ["day"]}]},
    )
    intent: Text | None = Field(None, min_length=1, description="this intent was taken during the call")
    slots: list[SlotName] = Field(default_factory=list, max_length=20, description="these slots are filled")
    values: dict[SlotName, Text] = Field(
        default_factory=dict, max_length=20, description="these slots hold these values (e.g. consent: yes)"
    )


def declared(condition: dict[str, Any] | None) -> bool:
    return bool(condition) and any(v for v in (condition or {}).values())


def succeeded(condition: dict[str, Any] | None, outcome: dict[str, Any]) -> bool | None:
    """Whether ``outcome`` meets ``condition``; None when there is no condition."""
    if not declared(condition):
        return None
    c = SuccessCondition.model_validate(condition)
    taken = {i.get("name") for i in outcome.get("intents", [])}
    slots = outcome.get("slots", {})
    return (
        (c.intent is None or c.intent in taken)
        and all(name in slots for name in c.slots)
        and all(
            str(slots.get(name, {}).get("value", "")).lower() == value.lower()
            for name, value in c.values.items()
        )
    )


# ---- the record --------------------------------------------------------------------------------------


EXTRACTION_KEYS = ("extracted", "extraction")  # the post-call extraction's parts (calls.extraction)


def lock_outcome(session: Session, call: Call) -> None:
    """Lock the call row and read its outcome afresh, before a change to it is computed: the worker's
    outcome and the post-call extraction write different parts of it, and neither may lose the
    other's (a row lock on PostgreSQL; SQLite has one writer at a time)."""
    session.refresh(call, attribute_names=["outcome"], with_for_update=True)


def apply_outcome(session: Session, call: Call) -> None:
    """Set the record's outcome from the latest ``outcome`` event of its worker, keeping what the
    post-call extraction wrote (caller commits)."""
    session.flush()
    latest = session.scalars(
        select(CallEvent)
        .where(CallEvent.call_id == call.id, CallEvent.source == "worker", CallEvent.type == "outcome")
        .order_by(CallEvent.occurred_at.desc(), CallEvent.id.desc())
        .limit(1)
    ).first()
    if latest is None:
        return
    outcome = OutcomeData.model_validate(latest.payload.get("data", {})).model_dump(exclude_none=False)
    for entry in (*outcome["intents"], *outcome["confirmations"], *outcome["slots"].values()):
        if entry.get("keys") is None:
            entry.pop("keys", None)
    profile = session.get(AgentProfile, call.agent_profile_id) if call.agent_profile_id else None
    success = succeeded(profile.success if profile else None, outcome)
    if success is not None:
        outcome["success"] = success
    lock_outcome(session, call)
    kept = {k: v for k, v in (call.outcome or {}).items() if k in EXTRACTION_KEYS}
    call.outcome = {**outcome, **kept}


# ---- the call log --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeFilter:
    intent: str | None = None
    success: bool | None = None
    # (slot, value): filled with that value (case ignored); value None: filled
    slots: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, intent: str | None, success: bool | None, slots: list[str] | None) -> OutcomeFilter:
        """From the query's ``outcome.*`` parameters; InvalidField (422) names a malformed one."""
        if intent is not None and not re.fullmatch(PRINTABLE, intent):
            raise InvalidField("outcome.intent", "control characters are never in an intent")
        parsed = []
        for raw in slots or []:
            name, sep, value = raw.partition(":")
            if not _slot_name(name) or (sep and not value) or not re.fullmatch(PRINTABLE, value):
                raise InvalidField("outcome.slot", f"{raw!r}: give <slot> or <slot>:<value>, e.g. day:friday")
            parsed.append((name, value if sep else None))
        return cls(intent=intent, success=success, slots=tuple(parsed))

    def conditions(self) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = []
        if self.intent is not None:
            conds.append(Call.outcome["intent"].as_string() == self.intent)
        if self.success is not None:
            conds.append(Call.outcome["success"].as_boolean() == self.success)
        for name, value in self.slots:
            found = Call.outcome[("slots", name, "value")].as_string()
            conds.append(found.is_not(None) if value is None else func.lower(found) == value.lower())
        return conds


def check_filter_names(names: list[str]) -> None:
    """Refuse an ``outcome.*`` query parameter this API does not know (a typo must not list every call)."""
    for name in names:
        if name.startswith("outcome.") and name not in FILTERS:
            raise InvalidField(name, f"not a filter; the outcome filters are {', '.join(FILTERS)}")


def _slot_name(name: str) -> bool:
    return re.fullmatch(SLOT_PATTERN, name) is not None


# ---- success rates ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    id: str | None
    name: str | None
    ended: int
    with_outcome: int
    succeeded: int
    success_rate: float | None  # succeeded / ended; None when the profile declares no success


def _counts(
    session: Session, tenant_id: str, key: Any, since: datetime | None, until: datetime | None
) -> dict[str | None, tuple[int, int, int]]:
    won = case((Call.outcome["success"].as_boolean() == true(), 1), else_=0)
    # an outcome the worker reported (it always has intents), or one the extraction gave
    has = case(
        (
            or_(
                Call.outcome["intents"].as_string().is_not(None),
                Call.outcome[("extraction", "status")].as_string() == "done",
            ),
            1,
        ),
        else_=0,
    )
    conds = [Call.tenant_id == tenant_id, Call.status == "ended"]
    if since is not None:
        conds.append(Call.created_at >= since)
    if until is not None:
        conds.append(Call.created_at < until)
    rows = session.execute(
        select(key, func.count(), func.coalesce(func.sum(has), 0), func.coalesce(func.sum(won), 0))
        .where(and_(*conds))
        .group_by(key)
    )
    return {k: (int(ended), int(outcome), int(ok)) for k, ended, outcome, ok in rows}


def _rate(ended: int, ok: int, condition: dict[str, Any] | None) -> float | None:
    return round(ok / ended, 4) if ended and declared(condition) else None


def success_rates(
    session: Session, tenant_id: str, *, since: datetime | None = None, until: datetime | None = None
) -> tuple[list[Rate], list[Rate]]:
    """Ended calls, those with an outcome, and those that succeeded, per agent profile and per campaign
    of ``tenant_id`` (calls created in ``[since, until)``)."""
    by_profile = _counts(session, tenant_id, Call.agent_profile_id, since, until)
    by_campaign = _counts(session, tenant_id, Call.campaign_id, since, until)
    by_campaign.pop(None, None)  # calls of no campaign
    profiles = {
        p.id: p
        for p in session.scalars(
            select(AgentProfile).where(
                AgentProfile.tenant_id == tenant_id, AgentProfile.id.in_(list(by_profile))
            )
        )
    }
    campaigns = {
        c.id: c
        for c in session.scalars(
            select(Campaign).where(Campaign.tenant_id == tenant_id, Campaign.id.in_(list(by_campaign)))
        )
    }
    per_profile = []
    for pid, (ended, outcome, ok) in sorted(by_profile.items(), key=lambda kv: (kv[0] is None, kv[0] or "")):
        p = profiles.get(pid) if pid else None
        per_profile.append(
            Rate(pid, p.name if p else None, ended, outcome, ok, _rate(ended, ok, p.success if p else None))
        )
    per_campaign = []
    for cid, (ended, outcome, ok) in sorted(by_campaign.items(), key=lambda kv: kv[0] or ""):
        c = campaigns.get(cid or "")
        p = session.get(AgentProfile, c.agent_profile_id) if c else None
        per_campaign.append(
            Rate(cid, c.name if c else None, ended, outcome, ok, _rate(ended, ok, p.success if p else None))
        )
    return per_profile, per_campaign
