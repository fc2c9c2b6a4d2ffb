"""Structured logs that mask personal data.

Log messages are fixed text; personal data (phone numbers, transcripts, digits, names) goes only
into ``extra`` fields whose names are listed in ``PERSONAL_FIELDS``. The formatter masks those
fields unless ``PHONEAGENT_LOG_PERSONAL_DATA=1`` is set (for local debugging only).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Any

PERSONAL_FIELDS = frozenset(
    # text_sent: livekit's LLM FallbackAdapter logs the reply spoken so far when an LLM fails mid-reply
    {"number", "caller", "callee", "transcript", "text", "digits", "name", "text_sent"}
)
# livekit-agents marks personal data in its own log fields with this prefix (e.g. lk.pii.chat_ctx)
PERSONAL_PREFIX = "lk.pii."
_STD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


# a phone number, card or account number inside free text (an error's message, a traceback)
_NUMBERS = re.compile(r"\+?\d[\d ().-]{4,}\d")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}( \d{2})?")
# fields that carry an error's text: scrubbed of numbers like tracebacks are
ERROR_FIELDS = frozenset({"error"})


def scrub(text: str) -> str:
    """Free text with every run of five or more digits masked (its first two and last two kept)."""

    def masked(m: re.Match[str]) -> str:
        found = m.group(0)
        return found if _DATE.fullmatch(found) else mask(found)

    return _NUMBERS.sub(masked, text)


def mask(value: Any) -> str:
    text = str(value)
    if len(text) <= 4:
        return "***"
    return f"{text[:2]}***{text[-2:]}"


class MaskingFormatter(logging.Formatter):
    """One line per record: time, level, logger, message, then key=value fields (masked)."""

    def __init__(self, *, show_personal: bool = False) -> None:
        super().__init__()
        self._show_personal = show_personal

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in record.__dict__.items() if k not in _STD_ATTRS and not k.startswith("_")}
        parts = [
            time.strftime("%H:%M:%S", time.localtime(record.created)),
            record.levelname.lower(),
            record.name,
            record.getMessage(),
        ]
        for key, value in fields.items():
            personal = key in PERSONAL_FIELDS or key.startswith(PERSONAL_PREFIX)
            shown = value if self._show_personal or not personal else mask(value)
            if key in ERROR_FIELDS and not self._show_personal:
                shown = scrub(str(shown))
            parts.append(f"{key}={json.dumps(shown, default=str)}")
        line = " ".join(parts)
        if record.exc_info:
            trace = self.formatException(record.exc_info)
            line += "\n" + (trace if self._show_personal else scrub(trace))
        return line


class MaskPersonal(logging.Filter):
    """Masks personal fields of a record in place, whatever formats it next: for handlers phoneagent
    does not format itself (livekit-agents' JSON logs in the worker's job processes, which carry the
    caller's words in ``lk.pii.*`` fields)."""

    def __init__(self, *, show_personal: bool = False) -> None:
        super().__init__()
        self._show_personal = show_personal

    def filter(self, record: logging.LogRecord) -> bool:
        if self._show_personal:
            return True
        for key, value in list(record.__dict__.items()):
            if key in PERSONAL_FIELDS or key.startswith(PERSONAL_PREFIX):
                setattr(record, key, mask(value))
            elif key in ERROR_FIELDS:
                setattr(record, key, scrub(str(value)))
        return True


def mask_personal_in_handlers() -> None:
    """Every handler of the root logger masks personal fields (once per handler)."""
    show = os.environ.get("PHONEAGENT_LOG_PERSONAL_DATA") == "1"
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskPersonal) for f in handler.filters):
            handler.addFilter(MaskPersonal(show_personal=show))


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        MaskingFormatter(show_personal=os.environ.get("PHONEAGENT_LOG_PERSONAL_DATA") == "1")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
