"""The status-like values are one closed set each, from the database through the API's schema."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from phoneagent.api.schemas import CallOut
from phoneagent.calls import lifecycle as lc
from phoneagent.db.states import CALL_STATUSES, END_REASONS, is_call_status, is_end_reason

pytestmark = pytest.mark.unit


def _enum(prop: dict[str, object]) -> list[object]:
    options = prop.get("anyOf", [prop])
    assert isinstance(options, list)
    return [v for o in options if isinstance(o, dict) for v in o.get("enum", [])]


def test_the_api_schema_lists_exactly_the_stored_statuses_and_end_reasons() -> None:
    props = CallOut.model_json_schema()["properties"]
    assert _enum(props["status"]) == list(CALL_STATUSES)
    assert _enum(props["end_reason"]) == list(END_REASONS)
    assert _enum(props["direction"]) == ["inbound", "outbound"]


def test_the_guards_accept_only_known_values() -> None:
    assert is_call_status("ringing") and not is_call_status("RINGING") and not is_call_status(3)
    assert is_end_reason("busy") and not is_end_reason("hung_up") and not is_end_reason(None)


def test_a_worker_cannot_declare_a_reason_it_may_not_claim_or_does_not_exist() -> None:
    now = datetime.now(UTC)
    declared = lc.worker_hangup(now, "transferred")
    assert declared is not None and declared.end_reason == "transferred"
    assert lc.worker_hangup(now, "busy") is None  # only a SIP response may say busy
    assert lc.worker_hangup(now, "exploded") is None
