"""Campaign calling windows, in the callee's own time zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from phoneagent.calls.campaigns import callee_timezone, next_window_start


@pytest.mark.parametrize(
    ("number", "zone"),
    [
        ("+14155550123", "America/Los_Angeles"),
        ("+12125550123", "America/New_York"),
        ("+442071234567", "Europe/London"),
        ("+4930123456", "Europe/Berlin"),
    ],
)
def test_the_callee_time_zone_comes_from_the_number(number: str, zone: str) -> None:
    assert callee_timezone(number) == zone


def test_inside_the_window_calls_now() -> None:
    # 17:00 UTC is 09:00 in Los Angeles (PST, UTC-8) on 25 Nov 2026
    assert (
        next_window_start(datetime(2026, 11, 25, 17, 0, tzinfo=UTC), "America/Los_Angeles", "09:00", "20:00")
        is None
    )


def test_before_the_window_waits_for_its_opening_in_the_callee_zone() -> None:
    at = datetime(2026, 11, 25, 16, 59, tzinfo=UTC)
    opens = next_window_start(at, "America/Los_Angeles", "09:00", "20:00")
    assert opens == datetime(2026, 11, 25, 17, 0, tzinfo=UTC)


def test_after_the_window_waits_for_the_next_day() -> None:
    # 21:30 in Berlin (UTC+1): closed until 09:00 Berlin the next day
    opens = next_window_start(datetime(2026, 11, 25, 20, 30, tzinfo=UTC), "Europe/Berlin", "09:00", "20:00")
    assert opens == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def test_a_window_over_midnight() -> None:
    at = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    assert next_window_start(at, "UTC", "22:00", "02:00") is None
    assert next_window_start(at.replace(hour=1), "UTC", "22:00", "02:00") is None
    assert next_window_start(at.replace(hour=3), "UTC", "22:00", "02:00") == at.replace(hour=22, minute=0)
