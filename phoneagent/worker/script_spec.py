"""The scripted flow as the agent profile declares it (``llm.script``), read and checked.

No livekit import here: the control plane reads scripts too, and refuses one that cannot work (422,
with the message naming the field), while the worker falls back to the built-in flow, loudly.

- ``intents``: each with ``keywords`` (any word of the caller's turn) and/or a ``dtmf`` key, a
  ``reply``, and optionally ``confirm`` (asked first; the caller's yes gives the reply, a no the
  fallback), an ``action``: ``hangup``, ``transfer`` (to ``transfer_to``, a ``tel:`` or ``sip:``
  URI), ``warm_transfer`` (to ``transfer_to``, a ``tel:`` number, briefed first: see
  ``phoneagent.worker.warm_transfer``) or ``dtmf`` (send ``digits`` down the line), and
  ``collect``: the slots the intent gathers for the call's outcome (see :class:`Collect`);
- ``fallback``, ``goodbye_keywords``, ``goodbye``; ``reprompt`` and ``silence_goodbye`` (the silence
  timeout), ``max_duration_goodbye``, ``voicemail`` (the message left on an answering machine).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from phoneagent.worker import slots

ACTIONS = ("hangup", "transfer", "warm_transfer", "dtmf")
MAX_COLLECT = 10
MAX_DIGITS = 32
SLOT_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
COLLECT_FIELDS = frozenset({"slot", "kind", "count", "keywords", "ask", "reply"})
# said once a slot is filled when nothing else answers the turn and the slot declares no reply
SLOT_FILLED_REPLY = "Thank you."


class ScriptError(ValueError):
    """The agent profile's script cannot work; the message names the field."""


@dataclass(frozen=True)
class Collect:
    """A slot an intent gathers for the call's outcome, e.g. ``{"slot": "day", "kind": "day"}``.

    Once its intent is taken, the slot waits for the caller: each next turn (or, for ``digits``, key
    presses) that holds a value of its ``kind`` fills it (see ``phoneagent.worker.slots``). A turn that
    takes the intent fills its slots too when it holds their values ("book me in on Friday"), except
    a ``yes_no`` slot, whose answer must come after its question. ``count``: how many digits a
    ``digits`` slot takes (by voice exactly that many; by keys it is filled at the last one; without
    a count, keys end with ``#``). ``keywords``: what a ``keyword`` slot listens for (default: its
    intent's). ``ask``: said when the slot before it is filled, to ask for this one. ``reply``: said
    when the slot is filled and no intent answers the turn."""

    slot: str
    kind: str
    count: int | None = None
    keywords: tuple[str, ...] = ()
    ask: str | None = None
    reply: str | None = None

    @classmethod
    def from_dict(cls, c: Any, where: str, intent_keywords: tuple[str, ...]) -> Collect:
        if not isinstance(c, dict):
            raise ScriptError(f'{where}: must be an object like {{"slot": "day", "kind": "day"}}')
        unknown = sorted(set(c) - COLLECT_FIELDS)
        if unknown:
            raise ScriptError(
                f"{where}: unknown field {', '.join(unknown)} (known: {', '.join(sorted(COLLECT_FIELDS))})"
            )
        name, kind = c.get("slot"), c.get("kind")
        if not isinstance(name, str) or not SLOT_NAME.fullmatch(name):
            raise ScriptError(f"{where}.slot: a name of lowercase letters, digits and _, at most 40 long")
        if kind not in slots.KINDS:
            raise ScriptError(f"{where}.kind: one of {', '.join(slots.KINDS)}")
        count = c.get("count")
        if count is not None and (
            kind != "digits"
            or isinstance(count, bool)
            or not isinstance(count, int)
            or not 1 <= count <= MAX_DIGITS
        ):
            raise ScriptError(f"{where}.count: a number of digits from 1 to {MAX_DIGITS}, for a digits slot")
        keywords: tuple[str, ...] = ()
        if kind == "keyword":
            given = c.get("keywords", list(intent_keywords))
            if not isinstance(given, list) or not all(isinstance(k, str) and k.strip() for k in given):
                raise ScriptError(f"{where}.keywords: a list of words")
            keywords = tuple(k.strip().lower() for k in given)
            if not keywords:
                raise ScriptError(
                    f"{where}.keywords: a keyword slot needs keywords (its own or its intent's)"
                )
        elif "keywords" in c:
            raise ScriptError(f"{where}.keywords: only a keyword slot has keywords")
        for text in ("ask", "reply"):
            if text in c and (not isinstance(c[text], str) or not c[text].strip()):
                raise ScriptError(f"{where}.{text}: a sentence to say")
        return cls(
            slot=name,
            kind=str(kind),
            count=count,
            keywords=keywords,
            ask=c.get("ask"),
            reply=c.get("reply"),
        )

    def read(self, text: str) -> str | None:
        """This slot's value in the caller's ``text``, or None."""
        return slots.reader(self.kind, count=self.count, keywords=self.keywords)(text)


@dataclass(frozen=True)
class Intent:
    name: str
    keywords: tuple[str, ...]
    reply: str
    dtmf: str | None = None
    confirm: str | None = None
    action: str | None = None
    transfer_to: str | None = None
    digits: str | None = None
    collect: tuple[Collect, ...] = ()

    @classmethod
    def from_dict(cls, i: dict[str, Any], n: int) -> Intent:
        where = f"script.intents[{n}]"
        if not isinstance(i, dict) or not i.get("name") or not i.get("reply"):
            raise ScriptError(f"{where}: needs a name and a reply")
        keywords = tuple(str(k).lower() for k in i.get("keywords", []))
        intent = cls(
            name=str(i["name"]),
            keywords=keywords,
            reply=str(i["reply"]),
            dtmf=str(i["dtmf"]) if i.get("dtmf") is not None else None,
            confirm=str(i["confirm"]) if i.get("confirm") else None,
            action=i.get("action"),
            transfer_to=i.get("transfer_to"),
            digits=str(i["digits"]) if i.get("digits") is not None else None,
            collect=_collects(i.get("collect"), f"{where}.collect", keywords),
        )
        # what the call's outcome records of an intent (calls/outcome.py takes no more)
        if not re.fullmatch(r"[^\x00-\x1f\x7f]{1,200}", intent.name):
            raise ScriptError(f"{where}.name: 1 to 200 characters, no control characters")
        if intent.confirm is not None and not re.fullmatch(r"[^\x00-\x1f\x7f]{1,2000}", intent.confirm):
            raise ScriptError(f"{where}.confirm: at most 2000 characters, no control characters")
        if not intent.keywords and intent.dtmf is None:
            raise ScriptError(f"{where}: needs keywords or a dtmf key")
        if intent.dtmf is not None and not re.fullmatch(r"[0-9*#A-D]", intent.dtmf):
            raise ScriptError(f"{where}.dtmf: one key, 0-9, *, # or A-D")
        if intent.action is not None and intent.action not in ACTIONS:
            raise ScriptError(f"{where}.action: one of {', '.join(ACTIONS)}")
        if intent.action == "transfer" and not re.match(
            r"^(tel:\+?[0-9]+|sips?:\S+@\S+)$", intent.transfer_to or ""
        ):
            raise ScriptError(f"{where}.transfer_to: a tel:+<number> or sip:user@host URI")
        if intent.action == "warm_transfer" and not re.fullmatch(
            r"tel:\+[0-9]{7,15}", intent.transfer_to or ""
        ):
            raise ScriptError(
                f"{where}.transfer_to: a warm transfer dials through an outbound trunk: a tel:+<number>"
            )
        if intent.action == "dtmf" and not re.fullmatch(r"[0-9*#A-Dw]+", intent.digits or ""):
            raise ScriptError(f"{where}.digits: keys 0-9, *, #, A-D (w: a pause)")
        if intent.collect and intent.action in ("hangup", "transfer", "warm_transfer"):
            raise ScriptError(
                f"{where}.collect: an intent that ends the call ({intent.action}) cannot collect"
            )
        return intent


def _collects(given: Any, where: str, keywords: tuple[str, ...]) -> tuple[Collect, ...]:
    if given is None:
        return ()
    items = [given] if isinstance(given, dict) else given
    if not isinstance(items, list):
        raise ScriptError(f"{where}: a slot object, or a list of them")
    if len(items) > MAX_COLLECT:
        raise ScriptError(f"{where}: at most {MAX_COLLECT} slots")
    out = tuple(Collect.from_dict(c, f"{where}[{n}]", keywords) for n, c in enumerate(items))
    names = [c.slot for c in out]
    if len(names) != len(set(names)):
        raise ScriptError(f"{where}: each slot once")
    return out


@dataclass(frozen=True)
class Script:
    greeting: str
    intents: tuple[Intent, ...] = ()
    fallback: str = "Sorry, I did not catch that. Could you say it again?"
    goodbye_keywords: tuple[str, ...] = ("goodbye", "bye")
    goodbye: str = "Thank you for calling. Goodbye."
    reprompt: str = "Are you still there?"
    silence_goodbye: str = "I have not heard anything, so I will end the call now. Goodbye."
    max_duration_goodbye: str = "We have reached the time limit for this call. Thank you, goodbye."
    voicemail: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, greeting: str) -> Script:
        if not isinstance(data, dict):
            raise ScriptError("script: must be an object")
        if not isinstance(data.get("intents", []), list):
            raise ScriptError("script.intents: must be a list")
        intents = tuple(Intent.from_dict(i, n) for n, i in enumerate(data.get("intents", [])))
        keys = [i.dtmf for i in intents if i.dtmf is not None]
        if len(keys) != len(set(keys)):
            raise ScriptError("script.intents: each dtmf key may select one intent")
        names = ("fallback", "goodbye", "reprompt", "silence_goodbye", "max_duration_goodbye", "voicemail")
        texts = {name: str(data.get(name, getattr(cls, name))) for name in names}
        return cls(
            greeting=str(data.get("greeting") or greeting),
            intents=intents,
            goodbye_keywords=tuple(
                str(k).lower() for k in data.get("goodbye_keywords", cls.goodbye_keywords)
            ),
            **texts,
        )

    def slot_names(self) -> set[str]:
        return {c.slot for i in self.intents for c in i.collect}


DEFAULT_SCRIPT_DATA: dict[str, Any] = {
    "intents": [
        {
            "name": "hours",
            "keywords": ["hours", "open", "opening", "close", "closing"],
            "dtmf": "1",
            "reply": "We are open Monday to Friday from nine to five, and Saturday from ten to two.",
        },
        {
            "name": "appointment",
            "keywords": ["appointment", "book", "booking", "schedule"],
            "dtmf": "2",
            "reply": "I can book that for you. Which day works best?",
            # the day the caller names next (or in the same breath) is the booking's, in the outcome
            "collect": [{"slot": "day", "kind": "day", "reply": "Great, you are booked. Anything else?"}],
        },
        {
            "name": "day",
            "keywords": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "reply": "Great, you are booked. Anything else?",
        },
    ],
}
