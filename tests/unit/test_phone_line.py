"""The agent's view of the phone line: is the room it joined still the call's room."""

from __future__ import annotations

import asyncio

import pytest

from phoneagent.worker.phone import room_is_gone

pytestmark = pytest.mark.unit


class _Room:
    """What room_is_gone reads of an rtc.Room: its sid, known after the join (async in rtc)."""

    def __init__(self, sid: str | None) -> None:
        self._sid = sid

    @property
    async def sid(self) -> str:
        if self._sid is None:
            await asyncio.sleep(3600)  # never known
        return self._sid or ""


@pytest.mark.parametrize(
    ("joined", "dispatched", "gone"),
    [
        ("RM_a", "RM_a", False),  # the call's own room
        ("RM_b", "RM_a", True),  # deleted before the agent came; joining made a new one
        ("RM_b", "", False),  # a dispatch that did not say which room: nothing to compare
    ],
)
def test_a_room_made_again_by_the_agents_join_is_not_the_calls_room(
    joined: str, dispatched: str, gone: bool
) -> None:
    assert asyncio.run(room_is_gone(_Room(joined), dispatched)) is gone  # type: ignore[arg-type]


def test_a_room_whose_sid_never_comes_is_taken_as_the_calls_room(monkeypatch: pytest.MonkeyPatch) -> None:
    real_wait_for = asyncio.wait_for

    async def quick(aw: object, **_kw: float) -> object:
        return await real_wait_for(aw, timeout=0.05)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "wait_for", quick)
    assert asyncio.run(room_is_gone(_Room(None), "RM_a")) is False  # type: ignore[arg-type]
