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


@pytest.mark.parametrize("number", ["+18005550123", "+18885550199"])
def test_a_toll_free_number_takes_the_campaigns_zone_not_the_first_of_all(number: str) -> None:
    assert callee_timezone(number, "America/New_York") == "America/New_York"
    assert callee_timezone(number) == "UTC"


def test_a_number_in_one_zone_keeps_it_whatever_the_default() -> None:
    assert callee_timezone("+12125550123", "America/Chicago") == "America/New_York"


def test_a_contacts_own_zone_and_the_campaign_default_are_checked_names() -> None:
    from pydantic import ValidationError

    from phoneagent.api.schemas_outbound import ContactIn

    assert ContactIn(number="+18005550123", timezone="America/Denver").timezone == "America/Denver"
    for bad in ("Mars/Olympus", "../etc/passwd", ""):
        with pytest.raises(ValidationError, match="timezone"):
            ContactIn(number="+18005550123", timezone=bad)
