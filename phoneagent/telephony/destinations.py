"""Where a tenant's calls may go: no premium-rate, shared-cost or unknown numbers, only the countries
allowed, and transfers only to the destinations the agent profile lists.

Toll fraud runs through an operator's trunks: a tenant (or a caller who talks an LLM agent into a
transfer) dials a premium number that pays the fraudster per minute. Every way out is checked here,
with one validator: ``POST /calls``, campaign contacts, and the agent's transfers (the scripted flow's
and the LLM's ``transfer_call`` alike).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType

# number types refused unless the operator allows them (PHONEAGENT_CALL_NUMBER_TYPES_DENIED)
TYPE_NAMES = {
    "premium_rate": PhoneNumberType.PREMIUM_RATE,
    "shared_cost": PhoneNumberType.SHARED_COST,
    "unknown": PhoneNumberType.UNKNOWN,
    "personal_number": PhoneNumberType.PERSONAL_NUMBER,
    "uan": PhoneNumberType.UAN,
    "voip": PhoneNumberType.VOIP,
    "pager": PhoneNumberType.PAGER,
}
DENIED_BY_DEFAULT = ("premium_rate", "shared_cost", "unknown")
_SAID = {
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.UNKNOWN: "not a number of any known type",
}


@dataclass(frozen=True)
class NumberPolicy:
    denied_types: tuple[str, ...] = DENIED_BY_DEFAULT
    countries: tuple[str, ...] = ()  # ISO 3166 codes; empty: any

    def why_refused(self, e164: str) -> str | None:
        """None when ``e164`` may be called; else why not."""
        try:
            parsed = phonenumbers.parse(e164)
        except phonenumbers.NumberParseException:
            return "not a phone number"
        kind = phonenumbers.number_type(parsed)
        if any(TYPE_NAMES[name] == kind for name in self.denied_types):
            return f"{e164} is {_SAID.get(kind, kind_name(kind))}, which this service does not call"
        region = phonenumbers.region_code_for_number(parsed) or "unknown"
        if self.countries and region not in self.countries:
            return f"{e164} is in {region}, and calls go to {', '.join(self.countries)} only"
        return None


def kind_name(kind: int) -> str:
    names = {v: k for k, v in TYPE_NAMES.items()}
    return "a " + names.get(kind, "restricted").replace("_", " ") + " number"


def normalize_destination(destination: str) -> str | None:
    """``tel:+E164`` or a lower-cased ``sip:``/``sips:`` URI; None if it is neither."""
    d = destination.strip().replace(" ", "").replace("-", "")
    number = d[4:] if d.startswith("tel:") else d
    if number.startswith("+") and number[1:].isdigit() and 7 <= len(number) <= 16:
        return f"tel:{number}"
    if d.lower().startswith(("sip:", "sips:")) and "@" in d:
        return d.lower()
    return None


@dataclass(frozen=True)
class TransferPolicy:
    """The destinations an agent may transfer a call to: those its profile lists, nothing else."""

    allowed: frozenset[str]

    @classmethod
    def from_profile(cls, destinations: Iterable[str]) -> TransferPolicy:
        return cls(frozenset(n for d in destinations if (n := normalize_destination(d)) is not None))

    def check(self, destination: str) -> str:
        """The destination, normalized, when the profile lists it; ValueError saying so otherwise."""
        uri = normalize_destination(destination)
        if uri is None:
            raise ValueError(
                "not a phone number like +14155550100 or a SIP address like sip:desk@example.com"
            )
        if uri not in self.allowed:
            listed = ", ".join(sorted(self.allowed)) or "none"
            raise ValueError(f"{uri} is not one of the destinations this agent may transfer to ({listed})")
        return uri


def check_destinations(destinations: Sequence[str], numbers: NumberPolicy) -> list[str]:
    """Each destination normalized; ValueError naming the first that is malformed or refused."""
    out = []
    for d in destinations:
        uri = normalize_destination(d)
        if uri is None:
            raise ValueError(f"{d!r}: not a tel:+<number> or sip:user@host destination")
        if uri.startswith("tel:") and (why := numbers.why_refused(uri[4:])) is not None:
            raise ValueError(why)
        out.append(uri)
    return out
