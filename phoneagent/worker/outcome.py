"""The call's outcome as the worker builds it: what the caller came for and what they gave, each with
where it came from. The control plane keeps the latest one the worker reported on the call record.

    {"intent": "appointment",                       the first intent taken: why they called
     "intents": [{"name": "appointment", "via": "dtmf", "turn": null, "keys": "2"}, ...],
     "confirmations": [{"intent": "cancel", "question": "...", "answer": "yes",
                        "via": "voice", "turn": 3}],
     "slots": {"day": {"value": "friday", "via": "voice", "turn": 3}}}

``turn`` is the ``seq`` of the caller's turn as the worker reports turns (the transcript's); it is
null for key presses, which say their ``keys`` instead. A turn is numbered only once the pipeline
adds it to the conversation, after the flow decided on it: entries from a turn wait, keyed by its
words, until :meth:`Outcome.numbered` gives the number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Via = Literal["voice", "dtmf"]


@dataclass(frozen=True)
class Source:
    """Where an entry came from: the caller's words (``text``) or key presses (``keys``)."""

    via: Via
    text: str = ""
    keys: str = ""
    seq: int | None = None  # the caller's turn, when it is known already (an LLM's tool call)

    @classmethod
    def voice(cls, text: str) -> Source:
        return cls("voice", text=text)

    @classmethod
    def turn(cls, seq: int | None) -> Source:
        return cls("voice", seq=seq)

    @classmethod
    def dtmf(cls, keys: str) -> Source:
        return cls("dtmf", keys=keys)


@dataclass
class Outcome:
    intents: list[dict[str, Any]] = field(default_factory=list)
    confirmations: list[dict[str, Any]] = field(default_factory=list)
    slots: dict[str, dict[str, Any]] = field(default_factory=dict)
    # entries of voice turns not numbered yet, with the words of their turn
    _waiting: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def _entry(self, source: Source, **values: Any) -> dict[str, Any]:
        entry = {**values, "via": source.via, "turn": source.seq}
        if source.via == "dtmf":
            entry["keys"] = source.keys
        elif source.seq is None:
            self._waiting.append((source.text, entry))
        return entry

    def took(self, intent: str, source: Source) -> None:
        self.intents.append(self._entry(source, name=intent))

    def confirmed(self, intent: str, question: str, answer: str, source: Source) -> None:
        self.confirmations.append(self._entry(source, intent=intent, question=question, answer=answer))

    def filled(self, slot: str, value: str, source: Source) -> None:
        self.slots[slot] = self._entry(source, value=value)

    def numbered(self, seq: int, text: str) -> bool:
        """The caller's turn with these words is turn ``seq``; True when an entry got its number."""
        mine = [entry for words, entry in self._waiting if words == text]
        for entry in mine:
            entry["turn"] = seq
        self._waiting = [(w, e) for w, e in self._waiting if e["turn"] is None]
        return bool(mine)

    def empty(self) -> bool:
        return not (self.intents or self.confirmations or self.slots)

    def to_dict(self) -> dict[str, Any]:
        return {
            "intent": self.intents[0]["name"] if self.intents else None,
            "intents": [dict(i) for i in self.intents],
            "confirmations": [dict(c) for c in self.confirmations],
            "slots": {name: dict(s) for name, s in self.slots.items()},
        }
