"""A transfer whose answer livekit-sip lost: the phone's leaving tells whether it followed."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from livekit import rtc

from phoneagent.telephony.destinations import TransferPolicy
from phoneagent.worker import agent
from phoneagent.worker.agent import CallControl

pytestmark = pytest.mark.unit

DESK = "tel:+14155550100"
LOST = (  # what livekit-sip v1.8.0 answered in a run where the phone did follow the REFER
    "ServerError(code=canceled, message=twirp error unknown: transaction failed to complete "
    "(0 intermediate responses), status=408)"
)


class FakePhone:
    identity = "sip_tester"
    kind = rtc.ParticipantKind.PARTICIPANT_KIND_SIP

    def __init__(self) -> None:
        self.attributes: dict[str, str] = {"sip.callStatus": "active"}


class FakeRoom:
    def __init__(self, phone: FakePhone) -> None:
        self.remote_participants: dict[str, FakePhone] = {phone.identity: phone}
        self._handlers: dict[str, list[Any]] = {}

    def on(self, name: str, callback: Any) -> Any:
        self._handlers.setdefault(name, []).append(callback)
        return callback

    def off(self, name: str, callback: Any) -> None:
        self._handlers[name].remove(callback)

    def leave(self, identity: str) -> None:
        phone = self.remote_participants.pop(identity)
        for callback in list(self._handlers.get("participant_disconnected", [])):
            callback(phone)


class FakeJob:
    def __init__(self, error: Exception) -> None:
        self.phone = FakePhone()
        self.room = FakeRoom(self.phone)
        self.error = error
        self.deleted = False

    async def transfer_sip_participant(self, phone: FakePhone, to: str) -> None:
        raise self.error

    async def delete_room(self) -> None:
        self.deleted = True


def _control(job: FakeJob) -> tuple[CallControl, list[tuple[str, dict[str, Any]]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    control = CallControl(
        cast(Any, job), lambda t, d: events.append((t, d)), TransferPolicy(frozenset({DESK}))
    )
    return control, events


async def test_a_lost_refer_answer_followed_by_the_phone_leaving_is_a_transfer() -> None:
    job = FakeJob(RuntimeError(LOST))
    control, events = _control(job)
    asyncio.get_running_loop().call_later(0.1, job.room.leave, job.phone.identity)
    assert await control.transfer(DESK) is True
    assert events[0] == (
        "tool",
        {"name": "transfer", "to": DESK, "ok": True, "evidence": "the phone left the call after the REFER"},
    )
    assert events[1] == ("hangup", {"reason": "transferred"}) and job.deleted


async def test_a_lost_refer_answer_with_the_phone_still_there_is_a_failed_transfer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(agent, "REFER_FOLLOW_S", 0.3)
    job = FakeJob(RuntimeError(LOST))
    control, events = _control(job)
    assert await control.transfer(DESK) is False
    assert events == [("tool", {"name": "transfer", "to": DESK, "ok": False, "error": "RuntimeError"})]
    assert not control.ended and not job.deleted


async def test_a_refused_transfer_fails_at_once_whatever_the_phone_does() -> None:
    job = FakeJob(RuntimeError("ServerError(code=unavailable, message=486 Busy Here)"))
    control, events = _control(job)
    asyncio.get_running_loop().call_later(0.1, job.room.leave, job.phone.identity)
    assert await asyncio.wait_for(control.transfer(DESK), timeout=0.05) is False
    assert events[-1][1]["ok"] is False and not job.deleted


async def test_a_lost_refer_answer_after_the_caller_hung_up_is_not_a_transfer() -> None:
    job = FakeJob(RuntimeError(LOST))
    control, events = _control(job)

    async def hang_up_then_fail(phone: FakePhone, to: str) -> None:
        job.room.leave(phone.identity)  # the caller hung up while the REFER was on its way
        raise job.error

    job.transfer_sip_participant = hang_up_then_fail  # type: ignore[method-assign]
    assert await control.transfer(DESK) is False
    assert events == [("tool", {"name": "transfer", "to": DESK, "ok": False, "error": "RuntimeError"})]


async def test_a_transfer_is_reported_even_when_the_phone_following_it_ends_the_session_first() -> None:
    job = FakeJob(RuntimeError("unused"))
    control, events = _control(job)
    answered = asyncio.Event()

    async def slow_answer(phone: FakePhone, to: str) -> None:
        await answered.wait()  # livekit-sip's answer to the REFER comes after the phone left

    job.transfer_sip_participant = slow_answer  # type: ignore[method-assign]
    caller = asyncio.create_task(control.transfer(DESK))
    await asyncio.sleep(0.01)
    caller.cancel()  # the phone hung up this leg: the session closed, cancelling the agent's turn
    with pytest.raises(asyncio.CancelledError):
        await caller
    asyncio.get_running_loop().call_later(0.05, answered.set)
    await control.settle()  # the job's shutdown waits for the transfer in flight
    assert events == [
        ("tool", {"name": "transfer", "to": DESK, "ok": True}),
        ("hangup", {"reason": "transferred"}),
    ]
