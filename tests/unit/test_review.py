"""Review building blocks without a server: signed sessions, redirects, origins, the filter form, event
summaries, the latency chart, recording paths, the session secret file."""

from __future__ import annotations

import base64
import stat
import string
from datetime import UTC, datetime
from pathlib import Path

import pytest

from phoneagent.calls.recordings import recording_path
from phoneagent.calls.timeline import summarize_event
from phoneagent.db.models import Call, CallTurn
from phoneagent.errors import NotFound
from phoneagent.review import charts, views
from phoneagent.review.formats import clock, duration
from phoneagent.review.session import (
    Signer,
    decode_session,
    encode_session,
    new_session,
    new_sign_in_token,
    safe_next,
    same_origin,
    sign_in_token_matches,
    tokens_match,
)
from phoneagent.stack.secrets import load_or_create_token


def _same_bytes_spellings(b64: str) -> list[str]:
    """Other URL-safe base64 spellings of the bytes ``b64`` holds (they differ in unused bits only)."""

    def decode(s: str) -> bytes:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

    alphabet = string.ascii_letters + string.digits + "-_"
    return [b64[:-1] + c for c in alphabet if c != b64[-1] and decode(b64[:-1] + c) == decode(b64)]


def test_a_mac_has_other_spellings_of_the_same_bytes() -> None:
    # a 20-byte MAC is 27 characters (162 bits): the last one carries 2 unused bits, 3 other spellings
    assert len(_same_bytes_spellings("A" * 27)) == 3


def test_session_cookie_round_trips_and_refuses_tampering_expiry_and_other_purposes() -> None:
    signer = Signer(b"k" * 32)
    s = new_session("ten_1", "key_1")
    value = encode_session(signer, s)
    assert decode_session(signer, value) == s
    body, _, mac = value.rpartition(".")
    assert decode_session(signer, f"{body}x.{mac}") is None
    flipped = ("B" if mac[0] == "A" else "A") + mac[1:]  # always other bytes: every bit of it is used
    assert decode_session(signer, f"{body}.{flipped}") is None
    for spelling in _same_bytes_spellings(mac):  # the last character's unused bits set otherwise
        assert decode_session(signer, f"{body}.{spelling}") is None
    assert decode_session(Signer(b"other" * 8), value) is None
    assert decode_session(signer, "garbage") is None
    token, cookie = new_sign_in_token(signer)
    assert decode_session(signer, cookie) is None  # a sign-in cookie is not a session
    assert sign_in_token_matches(signer, cookie, token)
    assert not sign_in_token_matches(signer, cookie, token + "x")
    assert not sign_in_token_matches(signer, None, token)
    assert signer.loads("session", value, now=s.expires + 1) is None


@pytest.mark.parametrize("junk", ["é", "\udc80", "Ω.Ω", "\x00"])
def test_non_ascii_cookies_and_tokens_are_refused_not_raised(junk: str) -> None:
    signer = Signer(b"k" * 32)
    value = encode_session(signer, new_session("ten_1", "key_1"))
    for forged in (junk, value + junk, junk + value):
        assert decode_session(signer, forged) is None
    token, cookie = new_sign_in_token(signer)
    assert not sign_in_token_matches(signer, cookie, token + junk)
    assert not sign_in_token_matches(signer, cookie + junk, token)
    assert not tokens_match(token, junk)


def test_next_after_sign_in_stays_on_the_review_pages() -> None:
    assert safe_next("/review/calls/call_1?x=1") == "/review/calls/call_1?x=1"
    for bad in ("https://evil.example/", "//evil.example/review/", "/calls", "/review\\..\\x", "", None):
        assert safe_next(bad) == "/review/calls", bad


def test_origin_must_be_the_host_when_given() -> None:
    assert same_origin(None, "127.0.0.1:8000")
    assert same_origin("http://127.0.0.1:8000", "127.0.0.1:8000")
    assert not same_origin("http://127.0.0.1:8001", "127.0.0.1:8000")
    assert not same_origin("null", "127.0.0.1:8000")


def _parse(**params: str) -> views.ListQuery:
    return views.parse_list_query(
        params, statuses=["ended"], end_reasons=["busy"], directions=["inbound"], agent_ids=["agt_1"]
    )


def test_filter_form_empty_fields_mean_any_and_bad_fields_get_messages() -> None:
    lq = _parse(status="", q="  ", number="")
    assert not lq.errors and lq.filter.status is None and lq.filter.q is None
    lq = _parse(**{"from": "2026-11-20", "to": "2026-11-20", "number": "+1 415 555 0100", "agent": "agt_1"})
    assert lq.filter.since == datetime(2026, 11, 20, tzinfo=UTC)
    assert lq.filter.until == datetime(2026, 11, 21, tzinfo=UTC)  # the "to" day is included
    assert lq.filter.number == "+14155550100" and lq.filter.agent_profile_id == "agt_1"
    lq = _parse(**{"from": "2026-11-21", "to": "2026-11-20", "status": "x", "agent": "agt_2", "q": "a" * 201})
    assert set(lq.errors) == {"to", "status", "agent", "q"}
    assert lq.link(cursor="c1") == "from=2026-11-21&to=2026-11-20&status=x&agent=agt_2&cursor=c1"
    lq = _parse(intent="appointment", success="no")
    assert lq.filter.outcome is not None
    assert (lq.filter.outcome.intent, lq.filter.outcome.success) == ("appointment", False)
    assert _parse(intent="", success="").filter.outcome is None
    assert set(_parse(success="maybe").errors) == {"success"}


def test_event_summaries_name_fallbacks_tools_and_anything_new() -> None:
    fb = {"data": {"kind": "stt", "from": "deepgram", "to": "whisper", "reason": "timeout"}}
    assert summarize_event("worker", "fallback", fb) == "stt: deepgram → whisper (reason=timeout)"
    assert summarize_event("worker", "tool", {"data": {"name": "transfer", "arguments": {"to": "+1"}}}) == (
        "transfer(to=+1)"
    )
    turn = {"data": {"seq": 3, "speaker": "agent", "text": "secret words", "total_s": 0.81}}
    assert summarize_event("worker", "turn", turn) == "agent turn 3, 810 ms to first audio"
    assert "secret" not in summarize_event("worker", "whatever", {"data": {"text": "secret", "n": 2}})
    lk = {"participant": {"identity": "sip_1", "kind": "SIP", "disconnectReason": "CLIENT_INITIATED"}}
    assert summarize_event("livekit", "participant_left", lk) == (
        "participant sip_1, kind SIP, disconnect CLIENT_INITIATED"
    )
    assert summarize_event("worker", "odd", {"data": "not a dict"}) == ""
    outcome = {
        "data": {
            "intent": "bill",
            "intents": [{"name": "bill", "via": "dtmf", "keys": "3"}],
            "slots": {"account": {"value": "4015", "via": "dtmf", "keys": "4015"}},
        }
    }
    line = summarize_event("worker", "outcome", outcome)
    assert line == "intent bill (1 taken), slots: account" and "4015" not in line


def test_latency_rows_stack_the_parts_and_the_rest() -> None:
    turns = [
        CallTurn(seq=0, speaker="agent", text=""),  # greeting: no timings
        CallTurn(seq=1, speaker="caller", text="", stt_ms=200),
        CallTurn(seq=2, speaker="agent", text="", stt_ms=300, brain_ms=5, tts_ms=95, total_ms=820),
        CallTurn(seq=3, speaker="agent", text="", stt_ms=300, brain_ms=None, tts_ms=90, total_ms=None),
    ]
    rows = charts.latency_rows(turns)
    assert [(r.seq, r.other, r.total) for r in rows] == [(2, 420, 820), (3, 0, 390)]
    svg = str(charts.latency_svg(rows))
    assert svg.count("<rect") == 4 + 2 and 'role="img"' in svg and "820 ms" in svg
    assert [charts._nice_max(v) for v in (1, 820, 1234, 5001)] == [1, 1000, 2000, 8000]


def test_formats() -> None:
    assert [duration(v) for v in (None, 900, 61_000, 3_720_000)] == ["—", "1 s", "1 min 01 s", "1 h 02 min"]
    assert [clock(v) for v in (None, 6.5, 3725)] == ["—", "00:06", "1:02:05"]


def test_recording_paths_stay_inside_the_directory(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.ogg").write_bytes(b"OggS")
    (tmp_path / "outside.ogg").write_bytes(b"OggS")
    (root / "out.ogg").symlink_to(tmp_path / "outside.ogg")
    ok = Call(id="c", recording_location="a/x.ogg")
    assert recording_path(root, ok) == root / "a" / "x.ogg"
    assert (
        recording_path(root, Call(id="c", recording_location=str(root / "a" / "x.ogg")))
        == root / "a" / "x.ogg"
    )
    for location in (
        None,
        "",
        "../outside.ogg",
        str(tmp_path / "outside.ogg"),
        "out.ogg",
        "a",
        "no.ogg",
        "a/\x00.ogg",
        "s3://bucket/x.ogg",
    ):
        with pytest.raises(NotFound):
            recording_path(root, Call(id="c", recording_location=location))


def test_session_secret_is_generated_once_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "review-secret"
    first = load_or_create_token(path)
    assert len(first) >= 40 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(path) == first
    assert [p.name for p in path.parent.iterdir()] == ["review-secret"]
