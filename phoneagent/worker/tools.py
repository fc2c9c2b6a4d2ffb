"""The phone tools an LLM brain can call: end the call, transfer it (cold, or warm with a briefing),
press keys, record the call's outcome. Their docstrings are
what the model reads, so they say what each does and when to use it. The scripted brain does the
same things from its flow (phoneagent.worker.scripted), without tools.

A tool that ends the call does not end it at once: the call ends after the reply the model makes
next (the goodbye, the "transferring you now") has been heard.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from livekit.agents import RunContext, ToolError, function_tool

from phoneagent.worker.scripted import Decision

if TYPE_CHECKING:
    from phoneagent.worker.agent import CallControl

# profile tool names -> the LLM tools they enable
TOOL_NAMES = {
    "end_call": "end_call",
    "transfer": "transfer_call",
    "warm_transfer": "warm_transfer_call",
    "dtmf": "send_dtmf",
    "outcome": "record_outcome",
}
_SLOT = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_TEXT = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SIP = re.compile(r"^sips?:[^@\s]+@[^\s]+$")
_KEYS = re.compile(r"^[0-9*#A-D]{1,32}$")


def transfer_uri(destination: str) -> str:
    """``tel:+E164`` or a ``sip:`` URI, as LiveKit's transfer wants it; ToolError otherwise."""
    d = destination.strip().replace(" ", "").replace("-", "")
    if _E164.match(d):
        return f"tel:{d}"
    if d.startswith("tel:") and _E164.match(d[4:]):
        return d
    if _SIP.match(d):
        return d
    raise ToolError(
        "destination must be a phone number like +14155550100 or a SIP address like sip:desk@example.com"
    )


def phone_tools(
    control: CallControl,
    after_reply: Callable[[Decision], None],
    enabled: Sequence[str],
    record: Callable[[str | None, str | None, str | None], None] | None = None,
) -> list[Any]:
    """The LLM tools the profile enables; ``record`` takes what ``record_outcome`` is given
    (intent, slot, value), already checked."""

    @function_tool
    async def end_call(context: RunContext[Any]) -> str:
        """End the phone call. Use it when the caller says goodbye, asks you to hang up, or the
        conversation is finished. After calling it, say one short goodbye sentence: the line closes
        once it has been heard."""
        after_reply(Decision("end_call", "", hang_up=True))
        return "The call ends after your next sentence: say a short goodbye now."

    @function_tool
    async def transfer_call(context: RunContext[Any], destination: str) -> str:
        """Transfer the caller to a person or another line (a cold transfer: you leave the call).
        Use it when the caller asks for a human or for a department you cannot help with.

        Args:
            destination: where the call goes: a phone number in international form such as
                +14155550100, or a SIP address such as sip:desk@example.com.
        """
        try:
            uri = control.transfers.check(transfer_uri(destination))
        except ValueError as exc:
            raise ToolError(f"{exc}; tell the caller you cannot transfer them there") from None
        after_reply(Decision("transfer", "", transfer_to=uri))
        return "Tell the caller, in one short sentence, that you are transferring them now."

    @function_tool
    async def warm_transfer_call(context: RunContext[Any], destination: str) -> str:
        """Put the caller on hold, call a person, tell them what the call is about, and connect the
        caller once they accept (a warm transfer). Use it when the caller needs a person who should
        know the call's story first. If nobody takes the call, you come back to the caller.

        Args:
            destination: the person's phone number in international form, such as +14155550100.
        """
        try:
            uri = control.transfers.check(transfer_uri(destination))
        except ValueError as exc:
            raise ToolError(f"{exc}; tell the caller you cannot transfer them there") from None
        if not uri.startswith("tel:"):
            raise ToolError("a warm transfer needs a phone number; use transfer_call for a SIP address")
        after_reply(Decision("warm_transfer", "", warm_transfer_to=uri))
        return (
            "Tell the caller, in one short sentence, that you will put them on hold while you reach someone."
        )

    @function_tool
    async def send_dtmf(context: RunContext[Any], digits: str) -> str:
        """Press keys on the phone line, for example to answer another company's phone menu
        ("press 1 for sales").

        Args:
            digits: the keys to press, in order: 0-9, * and #.
        """
        if not _KEYS.match(digits):
            raise ToolError("digits may only be 0-9, *, # and A-D")
        await control.send_digits(digits)
        return f"Pressed {digits}."

    @function_tool
    async def record_outcome(
        context: RunContext[Any], intent: str | None = None, slot: str | None = None, value: str | None = None
    ) -> str:
        """Write down what the caller wants and what they told you, for the business to act on after
        the call. Call it as soon as you know: the caller's reason for calling (intent), and each
        detail they give (a slot and its value). Do not tell the caller about it.

        Args:
            intent: the caller's reason for calling, as one lowercase word or two joined by _, for
                example appointment, cancel, billing_question.
            slot: the name of a detail the caller gave, lowercase with _, for example day, time,
                callback_number, name.
            value: that detail's value as the caller gave it, normalized: a weekday in lowercase, a
                time as HH:MM (24-hour), a number as its digits only.
        """
        if intent is None and slot is None:
            raise ToolError("give an intent, or a slot and its value")
        if intent is not None and not _SLOT.fullmatch(intent):
            raise ToolError("intent must be lowercase letters, digits and _, at most 40 long")
        if slot is not None and (not _SLOT.fullmatch(slot) or value is None or not _TEXT.fullmatch(value)):
            raise ToolError(
                "a slot needs a lowercase name (letters, digits, _) and a value of 1-200 characters"
            )
        if record is not None:
            record(intent, slot, value)
        return "Recorded."

    available = {
        "end_call": end_call,
        "transfer_call": transfer_call,
        "warm_transfer_call": warm_transfer_call,
        "send_dtmf": send_dtmf,
        "record_outcome": record_outcome,
    }
    return [available[TOOL_NAMES[name]] for name in enabled if name in TOOL_NAMES]
