"""An agent profile's outcome_schema: the JSON Schema subset taken (and everything else refused, by
name and place), its bounds, the strict form sent to the LLM, and the LLM's answer held to it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from phoneagent.calls.outcome_schema import (
    MAX_PROPERTIES,
    MAX_SCHEMA_BYTES,
    AnswerError,
    SchemaError,
    check_answer,
    check_schema,
    wire_schema,
)

BOOKING: dict[str, Any] = {
    "type": "object",
    "description": "what a booking call came to",
    "properties": {
        "day": {"type": "string", "enum": ["monday", "tuesday", "friday"]},
        "party_size": {"type": "integer", "description": "how many people"},
        "budget": {"type": "number"},
        "callback": {"type": "boolean", "title": "wants a call back"},
        "topics": {"type": "array", "items": {"type": "string"}},
        "rooms": {"type": "array", "items": {"type": "integer", "enum": [1, 2, 3]}},
    },
    "required": ["day", "callback"],
}


def test_the_subset_is_taken_as_it_is() -> None:
    assert check_schema(BOOKING) is BOOKING


@pytest.mark.parametrize(
    ("schema", "where", "says"),
    [
        ([], "", "JSON object"),
        ({"type": "array", "properties": {"a": {"type": "string"}}}, "type", '"object"'),
        ({"type": "object"}, "properties", "at least one field"),
        ({"type": "object", "properties": {}}, "properties", "at least one field"),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False},
            "additionalProperties",
            "not supported",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}},
            "properties.a.pattern",
            "not supported",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "string", "format": "date"}}},
            "properties.a.format",
            "not supported",
        ),
        ({"type": "object", "properties": {"a": {"$ref": "#/defs/x"}}}, "properties.a.$ref", "not supported"),
        (
            {"type": "object", "properties": {"a": {"type": "object", "properties": {}}}},
            "properties.a.properties",
            "not supported",
        ),
        ({"type": "object", "properties": {"a": {"type": "null"}}}, "properties.a.type", "one of"),
        (
            {"type": "object", "properties": {"a": {"type": ["string", "null"]}}},
            "properties.a.type",
            "one of",
        ),
        ({"type": "object", "properties": {"a": {"type": "array"}}}, "properties.a.items", "needs items"),
        (
            {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "array"}}}},
            "properties.a.items.type",
            "one of",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "array", "items": {"type": "string", "items": {}}}},
            },
            "properties.a.items.items",
            "not supported",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "string", "items": {"type": "string"}}}},
            "properties.a.items",
            "only an array",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "integer", "enum": [1, "2"]}}},
            "properties.a.enum",
            "not an integer",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "integer", "enum": [True]}}},
            "properties.a.enum",
            "not an integer",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "string", "enum": []}}},
            "properties.a.enum",
            "1 to",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "string", "enum": ["a\x00"]}}},
            "properties.a.enum",
            "printable",
        ),
        ({"type": "object", "properties": {"a b": {"type": "string"}}}, "properties.a b", "letters, digits"),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}, "required", "b not"),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": "a"}, "required", "a list"),
        (
            {"type": "object", "properties": {"a": {"type": "string", "description": 3}}},
            "properties.a.description",
            "text",
        ),
    ],
)
def test_what_is_outside_the_subset_is_refused_by_place(schema: Any, where: str, says: str) -> None:
    with pytest.raises(SchemaError) as err:
        check_schema(schema)
    assert err.value.where == where
    assert says in err.value.reason


def test_the_schema_is_bounded_in_size_fields_and_texts() -> None:
    many: dict[str, Any] = {
        "type": "object",
        "properties": {f"f{i}": {"type": "string"} for i in range(MAX_PROPERTIES + 1)},
    }
    with pytest.raises(SchemaError, match=f"at most {MAX_PROPERTIES} fields"):
        check_schema(many)
    check_schema({**many, "properties": dict(list(many["properties"].items())[:MAX_PROPERTIES])})
    big: dict[str, Any] = {
        "type": "object",
        "properties": {"a": {"type": "string", "description": "x" * 400}},
    }
    big["properties"].update({f"b{i}": {"type": "string", "description": "x" * 400} for i in range(45)})
    assert len(json.dumps(big)) > MAX_SCHEMA_BYTES
    with pytest.raises(SchemaError, match="is over 16 kB"):
        check_schema(big)
    with pytest.raises(SchemaError, match="at most 500"):
        check_schema({"type": "object", "properties": {"a": {"type": "string", "description": "x" * 501}}})


def test_the_llm_is_sent_a_strict_schema_with_the_optional_fields_nullable() -> None:
    wire = wire_schema(BOOKING)
    assert wire["additionalProperties"] is False
    assert wire["required"] == list(BOOKING["properties"])
    assert wire["description"] == "what a booking call came to"
    assert wire["properties"]["day"] == BOOKING["properties"]["day"]  # required: as it is
    assert wire["properties"]["party_size"]["type"] == ["integer", "null"]
    assert wire["properties"]["topics"] == {"type": ["array", "null"], "items": {"type": "string"}}
    assert BOOKING["properties"]["party_size"]["type"] == "integer"  # the profile's own is untouched
    optional_enum = {"type": "object", "properties": {"size": {"type": "string", "enum": ["s", "l"]}}}
    assert wire_schema(optional_enum)["properties"]["size"]["enum"] == ["s", "l", None]


def test_an_answer_that_holds_is_kept_without_the_optional_fields_left_null() -> None:
    answer = {
        "day": "friday",
        "party_size": 4,
        "budget": 120,
        "callback": False,
        "topics": ["parking", "menu"],
        "rooms": None,
    }
    assert check_answer(BOOKING, answer) == {
        "day": "friday",
        "party_size": 4,
        "budget": 120,
        "callback": False,
        "topics": ["parking", "menu"],
    }
    assert check_answer(BOOKING, {"day": "monday", "callback": True}) == {"day": "monday", "callback": True}


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (["friday"], "not a JSON object"),
        ("friday", "not a JSON object"),
        ({"callback": True}, "day: required"),
        ({"day": None, "callback": True}, "day: required"),
        ({"day": "sunday", "callback": True}, "day: not one of"),
        ({"day": "friday", "callback": "yes"}, "callback: not a boolean"),
        ({"day": "friday", "callback": True, "party_size": 2.5}, "party_size: not an integer"),
        ({"day": "friday", "callback": True, "party_size": True}, "party_size: not an integer"),
        ({"day": "friday", "callback": True, "budget": "100"}, "budget: not a number"),
        ({"day": "friday", "callback": True, "topics": "menu"}, "topics: not an array"),
        ({"day": "friday", "callback": True, "topics": ["menu", 3]}, r"topics\[1\]: not a string"),
        ({"day": "friday", "callback": True, "rooms": [4]}, r"rooms\[0\]: not one of"),
        ({"day": "friday", "callback": True, "notes": "x"}, "notes: not a field"),
        ({"day": "friday", "callback": True, "topics": ["a\x00b"]}, "control characters"),
        ({"day": "friday", "callback": True, "topics": ["x"] * 101}, "more than 100"),
        ({"day": "friday", "callback": True, "topics": ["x" * 70_000]}, "over 64 kB"),
    ],
)
def test_an_answer_that_does_not_hold_is_refused_saying_where(answer: Any, says: str) -> None:
    with pytest.raises(AnswerError, match=says):
        check_answer(BOOKING, answer)


def test_line_ends_and_tabs_in_an_answer_are_kept() -> None:
    schema = {"type": "object", "properties": {"notes": {"type": "string"}}}
    assert check_answer(schema, {"notes": "one\ntwo\tthree"}) == {"notes": "one\ntwo\tthree"}
