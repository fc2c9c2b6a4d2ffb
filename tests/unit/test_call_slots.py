"""The worker's call slots as livekit-agents sees them: a call accepted but not yet running takes
exactly one slot, so callers arriving together are taken up to capacity, and no further."""

from __future__ import annotations

import pytest

from phoneagent.config import Settings
from phoneagent.worker.main import CallSlots, build_server

pytestmark = pytest.mark.unit


def _server(capacity: int) -> CallSlots:
    server = build_server(Settings(max_concurrent_calls=capacity, shared_models=True))
    assert isinstance(server, CallSlots)
    server._devmode, server._reserved_slots = False, 0  # set by run(), which is not called here
    return server


@pytest.mark.parametrize("running", [0, 1, 3])
def test_callers_arriving_together_are_taken_up_to_capacity_and_no_further(running: int) -> None:
    server = _server(capacity=4)
    server._worker_load = running / 4  # what the load function reports with that many calls running
    taken = 0
    while server._is_available():  # livekit-agents asks this before it reserves a slot for a caller
        server._reserved_slots += 1
        taken += 1
        assert taken <= 4
    assert running + taken == 4


def test_capacity_comes_from_the_settings() -> None:
    assert _server(capacity=7).capacity == 7
