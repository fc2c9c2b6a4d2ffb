"""An agent profile's ``outcome_schema``: the JSON Schema the post-call extraction fills from the
transcript (``phoneagent.calls.extraction``), in the small subset checked here.

The subset: one ``object`` with ``properties`` (and ``required``), each property of ``type``
``string``, ``number``, ``integer`` or ``boolean``, or an ``array`` whose ``items`` are one of those;
``enum`` on a property or its items; ``description`` (and ``title``) anywhere, for the LLM to read.
Any other keyword is refused when the profile is saved, by name and place, so that what the LLM is
asked for is exactly what :func:`check_answer` can check.

- :func:`check_schema`: the profile's schema, refused with a :class:`SchemaError` naming the place;
- :func:`wire_schema`: the same schema as OpenAI's strict structured output wants it (every property
  required, optional ones nullable, no other properties);
- :func:`check_answer`: the LLM's answer, held to the schema (optional properties it left null are
  dropped), refused with an :class:`AnswerError` that says where.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_SCHEMA_BYTES = 16 * 1024
MAX_PROPERTIES = 50
MAX_ENUM = 50
MAX_TEXT = 500  # a description, a title, an enum value
MAX_ANSWER_BYTES = 64 * 1024
MAX_ITEMS = 100  # values in one array of an answer
PROPERTY_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
SCALARS = ("string", "number", "integer", "boolean")
_DOCS = {"description", "title"}
_TOP_KEYWORDS = {"type", "properties", "required", *_DOCS}
_PROPERTY_KEYWORDS = {"type", "enum", "items", *_DOCS}
_ITEM_KEYWORDS = {"type", "enum", *_DOCS}
# PostgreSQL cannot turn a JSON "\u0000" into text (every outcome filter of the tenant would fail on
# such a record); other control characters but tab and line ends are no more than noise
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class SchemaError(ValueError):
    """The schema is outside the subset; ``where`` is the place in it (``properties.day.type``)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}" if where else reason)
        self.where = where
        self.reason = reason


class AnswerError(ValueError):
    """The LLM's answer does not hold to the schema."""


def check_schema(schema: Any) -> dict[str, Any]:
    """``schema`` if it is in the subset and within the bounds; SchemaError otherwise."""
    if not isinstance(schema, dict):
        raise SchemaError("", "must be a JSON object")
    if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
        raise SchemaError("", f"is over {MAX_SCHEMA_BYTES // 1024} kB")
    _keywords(schema, _TOP_KEYWORDS, "")
    if schema.get("type") != "object":
        raise SchemaError("type", 'must be "object" (the outcome is an object of named fields)')
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        raise SchemaError("properties", "must name at least one field")
    if len(props) > MAX_PROPERTIES:
        raise SchemaError("properties", f"at most {MAX_PROPERTIES} fields")
    for name, prop in props.items():
        if not re.fullmatch(PROPERTY_NAME, name):
            raise SchemaError(f"properties.{name}", "a field's name is letters, digits and _ (at most 64)")
        _check_property(prop, f"properties.{name}")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise SchemaError("required", "must be a list of field names")
    unknown = sorted(set(required) - set(props))
    if unknown:
        raise SchemaError("required", f"{', '.join(unknown)} not among the properties")
    if len(set(required)) != len(required):
        raise SchemaError("required", "names a field twice")
    return schema


def _keywords(node: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in node:
        if key not in allowed:
            place = f"{where}.{key}" if where else key
            raise SchemaError(
                place, f"{key!r} is not supported here; the keywords taken are {', '.join(sorted(allowed))}"
            )
    for key in _DOCS & set(node):
        if not isinstance(node[key], str) or len(node[key]) > MAX_TEXT:
            raise SchemaError(f"{where}.{key}" if where else key, f"must be text of at most {MAX_TEXT}")


def _check_property(prop: Any, where: str) -> None:
    if not isinstance(prop, dict):
        raise SchemaError(where, "must be an object with a type")
    _keywords(prop, _PROPERTY_KEYWORDS, where)
    kind = prop.get("type")
    if kind == "array":
        items = prop.get("items")
        if not isinstance(items, dict):
            raise SchemaError(f"{where}.items", "an array needs items with a type")
        if "enum" in prop:
            raise SchemaError(f"{where}.enum", "put an array's enum in its items")
        _keywords(items, _ITEM_KEYWORDS, f"{where}.items")
        _check_scalar(items, f"{where}.items")
        return
    if "items" in prop:
        raise SchemaError(f"{where}.items", "only an array has items")
    _check_scalar(prop, where)


def _check_scalar(node: dict[str, Any], where: str) -> None:
    kind = node.get("type")
    if kind not in SCALARS:
        taken = ", ".join(SCALARS) if where.endswith(".items") else f"{', '.join(SCALARS)} or array"
        raise SchemaError(f"{where}.type", f"must be one of {taken}")
    if "enum" not in node:
        return
    enum = node["enum"]
    if not isinstance(enum, list) or not enum or len(enum) > MAX_ENUM:
        raise SchemaError(f"{where}.enum", f"must list 1 to {MAX_ENUM} values")
    for value in enum:
        if not _is(kind, value) or (
            isinstance(value, str) and (len(value) > MAX_TEXT or _CONTROL.search(value))
        ):
            raise SchemaError(
                f"{where}.enum", f"{value!r} is not {_a(kind)} (of at most {MAX_TEXT} printable characters)"
            )


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _is(kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool)  # number


# ---- what the LLM is sent -----------------------------------------------------------------------------


def wire_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema for OpenAI's strict structured output: every property listed in ``required``, an
    optional one nullable (the model says null for what the call did not say), no other properties."""
    required = set(schema.get("required", []))
    props: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        wire = dict(prop)
        if name not in required:
            wire["type"] = [prop["type"], "null"]
            if "enum" in prop:
                wire["enum"] = [*prop["enum"], None]
        props[name] = wire
    out: dict[str, Any] = {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }
    if "description" in schema:
        out["description"] = schema["description"]
    return out


# ---- what the LLM answered -----------------------------------------------------------------------------


def check_answer(schema: dict[str, Any], answer: Any) -> dict[str, Any]:
    """The answer held to the schema, without the optional fields it left null; AnswerError if it
    does not hold (an unknown field, a missing required one, a wrong type, a value out of its enum)."""
    if not isinstance(answer, dict):
        raise AnswerError("the answer is not a JSON object")
    if len(json.dumps(answer)) > MAX_ANSWER_BYTES:
        raise AnswerError(f"the answer is over {MAX_ANSWER_BYTES // 1024} kB")
    props: dict[str, Any] = schema["properties"]
    unknown = sorted(set(answer) - set(props))
    if unknown:
        raise AnswerError(f"{', '.join(unknown[:5])}: not a field of the schema")
    out: dict[str, Any] = {}
    for name in props:
        value = answer.get(name)
        if value is None:
            if name in schema.get("required", []):
                raise AnswerError(f"{name}: required, and missing")
            continue
        out[name] = _value(props[name], value, name)
    return out


def _value(prop: dict[str, Any], value: Any, where: str) -> Any:
    if prop["type"] == "array":
        if not isinstance(value, list):
            raise AnswerError(f"{where}: not an array")
        if len(value) > MAX_ITEMS:
            raise AnswerError(f"{where}: more than {MAX_ITEMS} values")
        return [_value(prop["items"], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not _is(prop["type"], value):
        raise AnswerError(f"{where}: not {_a(prop['type'])}")
    if "enum" in prop and value not in prop["enum"]:
        raise AnswerError(f"{where}: not one of the enum's values")
    if isinstance(value, str) and _CONTROL.search(value):
        raise AnswerError(f"{where}: holds control characters")
    return value
