"""Phone numbers: validate and normalize to E.164 with `phonenumbers`."""

from __future__ import annotations

import phonenumbers


def to_e164(raw: str, default_region: str | None = None) -> str:
    """'+1 (555) 010-0100' -> '+15550100100'; raises ValueError with a reason for anything else."""
    text = raw.strip()
    if not text:
        raise ValueError("empty phone number")
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number ({exc._msg}); use E.164, e.g. +14155550100") from None
    if not phonenumbers.is_possible_number(parsed):
        raise ValueError("not a possible phone number for its country; use E.164, e.g. +14155550100")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
