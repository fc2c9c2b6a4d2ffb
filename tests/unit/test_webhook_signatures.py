"""Outgoing webhook signatures: what a receiver checks with phoneagent.webhooks.verify."""

from __future__ import annotations

import pytest

from phoneagent.calls.outbox import RetryPolicy
from phoneagent.signing import same_secret
from phoneagent.webhooks import TOLERANCE_S, BadSignature, sign, verify

BODY = b'{"id":"evt_1","type":"call.ended"}'


def test_a_signature_verifies_and_returns_its_timestamp() -> None:
    header = sign("whsec_a", BODY, now=1_800_000_000)
    assert verify("whsec_a", header, BODY, now=1_800_000_010) == 1_800_000_000


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        ("whsec_b", BODY, 1_800_000_000),  # another endpoint's secret
        ("whsec_a", BODY + b" ", 1_800_000_000),  # the body was changed
        ("whsec_a", BODY, 1_800_000_000 + TOLERANCE_S + 1),  # replayed after the tolerance
        ("whsec_a", BODY, 1_800_000_000 - TOLERANCE_S - 1),  # from the future
    ],
)
def test_wrong_secret_changed_body_and_replays_are_refused(secret: str, body: bytes, now: int) -> None:
    header = sign("whsec_a", BODY, now=1_800_000_000)
    with pytest.raises(BadSignature):
        verify(secret, header, body, now=now)


@pytest.mark.parametrize("header", ["", "t=abc,v1=00", "v1=00", "t=1800000000"])
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(BadSignature):
        verify("whsec_a", header, BODY, now=1_800_000_000)


def test_retries_back_off_exponentially_and_span_more_than_an_hour() -> None:
    policy = RetryPolicy()  # the defaults: 8 attempts, 10 s then 3x each time, +-20 % jitter
    low = [policy.backoff(n, rnd=lambda: 0.0).total_seconds() for n in range(1, policy.max_attempts)]
    high = [policy.backoff(n, rnd=lambda: 1.0).total_seconds() for n in range(1, policy.max_attempts)]
    assert low == pytest.approx([8, 24, 72, 216, 648, 1944, 5832])
    assert high == pytest.approx([12, 36, 108, 324, 972, 2916, 8748])
    assert sum(low) > 3600  # even the shortest schedule keeps trying for over an hour


def test_the_wire_format_is_hmac_sha256_hex_over_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    mac = hmac.new(b"whsec_a", b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert sign("whsec_a", BODY, now=1_800_000_000) == f"t=1800000000,v1={mac}"


@pytest.mark.parametrize("given", ["é" * 64, "\udc80", "Ω"])
def test_a_non_ascii_signature_is_refused_not_raised(given: str) -> None:
    with pytest.raises(BadSignature):
        verify("whsec_a", f"t=1800000000,v1={given}", BODY, now=1_800_000_000)


@pytest.mark.parametrize(
    ("expected", "given", "same"),
    [("abc", "abc", True), ("abc", "abd", False), ("abc", "é", False), ("é", "é", True), ("", "", False)],
)
def test_secrets_compare_as_bytes(expected: str, given: str, same: bool) -> None:
    assert same_secret(expected, given) is same
    assert same_secret(expected, None) is False
