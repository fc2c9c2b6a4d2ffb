"""A room whose livekit-server was killed and nobody rejoined, against a real livekit-server and Redis.

LiveKit's store keeps such a room for ever. Asked for its participants, LiveKit asks the room's node
(``enable_psrpc_for_get_list_participants``) and nobody answers, which is also its answer for a room
that does not exist at all; ``DeleteRoom`` asks the dead node too. The control plane must tell the two
apart (a gone room settles its call as ``room_gone``) and must be able to delete the lost room.

Runs its own Redis and livekit-server on their own ports, since it kills livekit-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from phoneagent.config import Settings
from phoneagent.errors import TelephonyError
from phoneagent.stack.services import Stack
from phoneagent.telephony.calls import LiveKitCalls, RoomPeople
from tests.stack_fixtures import PORT_OFFSET

PORTS = {  # clear of test_stack_lifecycle's and the suite stack's; moved by the port offset
    "redis_port": 26489,
    "livekit_port": 27980,
    "livekit_rtc_tcp_port": 27981,
    "livekit_rtc_udp_start": 52100,
    "livekit_rtc_udp_end": 52109,
    "livekit_prometheus_port": 0,
}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    ports = {name: port + PORT_OFFSET if port else 0 for name, port in PORTS.items()}
    st = Stack(Settings(state_dir=tmp_path / "state", **ports), only={"redis", "livekit-server"})  # type: ignore[arg-type]
    st.up(progress=lambda _m: None)
    yield st
    st.down(progress=lambda _m: None)


def _kill_livekit(stack: Stack) -> None:
    pid = next(s.pid for s in stack.status() if s.name == "livekit-server")
    assert pid is not None
    proc = psutil.Process(pid)
    proc.kill()
    proc.wait(30)


async def _ended_within(calls: LiveKitCalls, room: str, *, within_s: float) -> None:
    """``end_room`` as the sweeper calls it, once a pass, until LiveKit no longer lists the room.
    For the first seconds after the kill LiveKit still takes the dead node for a live one (its last
    stats are less than 5 s old) and sends the room's requests there: those passes fail."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            await calls.end_room(room)
        except TelephonyError as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"the room {room} was not deleted within {within_s} s: {exc}") from exc
            await asyncio.sleep(1.0)  # the sweeper's pass interval
            continue
        break
    assert room not in await calls.room_names()


async def test_a_room_whose_node_died_is_told_from_a_gone_one_and_can_be_deleted(stack: Stack) -> None:
    calls = LiveKitCalls(stack.settings)
    try:
        await calls.create_room("call-lost")
        await calls.create_room("call-ended")
        assert await calls.people("call-lost") == RoomPeople(sip=[], agents=0)
        assert await calls.people("call-never-was") is None

        await calls.end_room("call-ended")
        assert await calls.people("call-ended") is None  # gone: LiveKit's store no longer lists it

        _kill_livekit(stack)
        stack.up(progress=lambda _m: None)  # a new node (a new id); the old one's rooms stay in Redis
        await calls.aclose()  # its kept connection went with the killed process
        assert "call-lost" in await calls.room_names()  # the dead node's room, kept in Redis
        with pytest.raises(TelephonyError) as err:
            await calls.people("call-lost")
        assert err.value.no_response, err.value  # listed, and no node answers for it

        await _ended_within(calls, "call-lost", within_s=30)
        assert await calls.people("call-lost") is None
        await calls.end_room("call-lost")  # gone already: no error
    finally:
        await calls.aclose()


async def test_ending_a_room_while_livekit_is_down_is_a_warning_not_an_error(stack: Stack) -> None:
    calls = LiveKitCalls(stack.settings)
    try:
        await calls.create_room("call-a")
        _kill_livekit(stack)
        await calls.end_room("call-a")  # logged; the sweeper's next pass tries again
        stack.up(progress=lambda _m: None)
        await calls.aclose()
        assert "call-a" in await calls.room_names()
        await _ended_within(calls, "call-a", within_s=30)
    finally:
        await calls.aclose()
