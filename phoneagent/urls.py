"""The one check of an http(s) URL that phoneagent is told to call: settings, profiles, webhook endpoints.

Parsed by pydantic's URL type (the WHATWG rules browsers follow: host, international names, port
range), after two checks of the text as written that a lenient parser would repair instead of
refuse: the scheme and ``://`` spelled out, a host right after them, and no whitespace anywhere.
"""

from __future__ import annotations

from pydantic import AnyHttpUrl, TypeAdapter, ValidationError

NOT_HTTP = "must be an http:// or https:// URL"
_PARSER: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)


def check_http_url(value: str) -> str:
    """``value``, unchanged, when it is an absolute http:// or https:// URL with a host; else
    ValueError saying what is wrong (never echoing the URL, which may carry a token)."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise ValueError(NOT_HTTP)
    if not rest or rest[0] in "/?#":
        raise ValueError(f"{NOT_HTTP} with a host")
    if any(c.isspace() for c in value):
        raise ValueError(f"{NOT_HTTP} without spaces")
    try:
        _PARSER.validate_python(value)
    except ValidationError as exc:
        reason = str(exc.errors()[0]["msg"]).removeprefix("Input should be a valid URL, ")
        raise ValueError(f"{NOT_HTTP}: {reason}") from None
    return value
