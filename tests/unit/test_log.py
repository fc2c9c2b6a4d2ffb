from __future__ import annotations

import logging
import sys

from phoneagent.log import MaskingFormatter, mask


def _record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("phoneagent.test", logging.INFO, __file__, 1, "call answered", (), None)
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_personal_fields_are_masked() -> None:
    line = MaskingFormatter().format(_record(caller="+15550100", transcript="my card is 4111", room="call-1"))
    assert "+15550100" not in line and "4111" not in line
    assert 'caller="+1***00"' in line
    assert 'room="call-1"' in line  # not personal: shown as is


def test_personal_fields_shown_only_when_asked() -> None:
    line = MaskingFormatter(show_personal=True).format(_record(caller="+15550100"))
    assert '"+15550100"' in line


def test_short_values_are_fully_masked() -> None:
    assert mask("1234") == "***"


def test_livekits_personal_fields_are_masked_too() -> None:
    line = MaskingFormatter().format(
        _record(text_sent="your code is 4711", **{"lk.pii.data": {"transcript": "my card is 4111"}})
    )
    assert "4711" not in line and "4111" not in line


def test_numbers_in_errors_and_tracebacks_are_masked() -> None:
    """A background pass that fails logs its error and traceback: phone and card numbers inside them
    are masked (dates, line numbers and short numbers stay readable)."""
    try:
        raise ValueError("dial +14155550123 refused; card 4111 1111 1111 1111 on 2026-11-30")
    except ValueError:
        rec = _record(error="TelephonyError: callee +14155550123 busy")
        rec.exc_info = sys.exc_info()
    line = MaskingFormatter().format(rec)
    assert "4155550123" not in line and "1111 1111" not in line
    assert "+1***23" in line and "2026-11-30" in line and "line " in line
    shown = MaskingFormatter(show_personal=True).format(rec)
    assert "+14155550123" in shown


def test_livekits_own_json_logs_in_the_worker_are_masked() -> None:
    """The worker's job processes log through livekit-agents' JSON formatter, which knows nothing of
    phoneagent's masking: the filter on every root handler masks the caller's words before it."""
    import io
    import json

    from livekit.agents.cli.log import JsonFormatter

    from phoneagent.log import mask_personal_in_handlers

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        mask_personal_in_handlers()
        mask_personal_in_handlers()  # twice: one filter
        assert len(handler.filters) == 1
        logging.getLogger("livekit.agents").warning(
            "received user transcript", extra={"lk.pii.user_transcript": "my card is 4111 2222 3333"}
        )
    finally:
        root.removeHandler(handler)
    line = json.loads(out.getvalue().splitlines()[-1])
    assert "4111" not in out.getvalue() and line["lk.pii.user_transcript"] == "my***33"
