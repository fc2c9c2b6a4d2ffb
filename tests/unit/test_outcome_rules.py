"""Success by an agent profile's condition, and the call log's outcome filters as parsed from a query."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from phoneagent.calls.outcome import (
    OutcomeData,
    OutcomeFilter,
    SuccessCondition,
    check_filter_names,
    succeeded,
)
from phoneagent.errors import InvalidField

OUTCOME: dict[str, Any] = {
    "intent": "hours",
    "intents": [
        {"name": "hours", "via": "voice", "turn": 1},
        {"name": "appointment", "via": "dtmf", "keys": "2"},
    ],
    "confirmations": [],
    "slots": {
        "day": {"value": "friday", "via": "voice", "turn": 5},
        "consent": {"value": "yes", "via": "voice"},
    },
}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (None, None),
        ({}, None),
        ({"slots": [], "values": {}}, None),  # what an empty condition is stored as
        ({"intent": "appointment"}, True),  # taken at any point, not only first
        ({"intent": "refund"}, False),
        ({"intent": "appointment", "slots": ["day"]}, True),
        ({"intent": "appointment", "slots": ["day", "time"]}, False),
        ({"values": {"consent": "YES"}}, True),  # case ignored
        ({"values": {"consent": "no"}}, False),
        ({"values": {"time": "10:00"}}, False),
    ],
)
def test_success_is_every_part_of_the_condition(
    condition: dict[str, Any] | None, expected: bool | None
) -> None:
    assert succeeded(condition, OUTCOME) is expected


def test_a_condition_with_unknown_or_malformed_parts_is_refused() -> None:
    for bad in ({"intnt": "x"}, {"slots": ["Day"]}, {"slots": "day"}, {"values": {"day": 5}}, {"intent": ""}):
        with pytest.raises(ValidationError):
            SuccessCondition.model_validate(bad)


def test_the_workers_outcome_is_checked_and_bounded() -> None:
    assert OutcomeData.model_validate(OUTCOME).slots["day"].value == "friday"
    for bad in (
        {**OUTCOME, "slots": {"Day": {"value": "x", "via": "voice"}}},
        {**OUTCOME, "intents": [{"name": "x", "via": "fax"}]},
        {**OUTCOME, "intents": [{"name": "x", "via": "voice", "turn": -1}]},
        {**OUTCOME, "confirmations": [{"intent": "x", "answer": "maybe", "via": "voice"}]},
        {**OUTCOME, "slots": {"d": {"value": "x" * 201, "via": "voice"}}},
        {**OUTCOME, "extra": 1},
        {**OUTCOME, "intent": "book\x00"},  # PostgreSQL could not read it back as text
    ):
        with pytest.raises(ValidationError):
            OutcomeData.model_validate(bad)


def test_slot_filters_are_a_name_with_or_without_a_value() -> None:
    f = OutcomeFilter.parse("appointment", True, ["day:friday", "account", "time:10:30"])
    assert f.slots == (("day", "friday"), ("account", None), ("time", "10:30"))
    for bad in ("Day:friday", "day:", ":friday", "day friday", "", "day:fri\x00day"):
        with pytest.raises(InvalidField, match="outcome.slot"):
            OutcomeFilter.parse(None, None, [bad])
    with pytest.raises(InvalidField, match="outcome.intent"):
        OutcomeFilter.parse("appoint\x00ment", None, None)


def test_unknown_outcome_filters_are_refused_and_other_parameters_left_alone() -> None:
    check_filter_names(["outcome.intent", "outcome.slot", "status", "limit"])
    with pytest.raises(InvalidField, match="outcome.intents: not a filter"):
        check_filter_names(["outcome.intents"])


@pytest.mark.parametrize("module", [sqlite, postgresql])
def test_outcome_filters_are_json_paths_on_both_databases(module: Any) -> None:
    dialect: Dialect = module.dialect()
    f = OutcomeFilter.parse("appointment", False, ["day:friday"])
    sql = " AND ".join(str(c.compile(dialect=dialect)) for c in f.conditions())
    if dialect.name == "sqlite":
        assert "JSON_EXTRACT(calls.outcome" in sql
    else:
        assert "calls.outcome ->>" in sql and "calls.outcome #>>" in sql
