from __future__ import annotations

import logging

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
