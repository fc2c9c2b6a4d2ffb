"""What `trunks test` makes of a test call's observations: the steps, the cause of a failure and the
troubleshooting section it points to (which must exist), and the tone detector on real samples."""

from __future__ import annotations

import re

import numpy as np
import pytest

from phoneagent.calls.trunk_test import NO_MEDIA, SIP_CAUSES, TrunkTestPlan, report
from phoneagent.telephony.calls import DialOutcome
from phoneagent.telephony.trunk_probe import FRAME, PhoneAudio, ProbeResult, frame_levels, tone_frame
from tests import REPO_ROOT

PLAN = TrunkTestPlan("otr_1", "out", "lk_1", "sip.example.com", "udp", "+15550142", "+15550100", 10)


def _anchors() -> set[str]:
    text = (REPO_ROOT / "sip" / "troubleshooting.md").read_text()
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    return {"".join(c for c in h.lower() if c.isalnum() or c in " -").replace(" ", "-") for h in headings}


def _probe(outcome: DialOutcome, *statuses: str, **kw: object) -> ProbeResult:
    p = ProbeResult(room="trunk-test-x", outcome=outcome, ended_s=1.0, **kw)  # type: ignore[arg-type]
    p.statuses = [(0.01 * i, s) for i, s in enumerate(statuses)]
    return p


def test_every_cause_points_to_a_section_of_the_troubleshooting_page() -> None:
    sections = {section for _, section in SIP_CAUSES.values()} | {NO_MEDIA[1]}
    assert sections <= _anchors()
    for code in (401, 403, 404, 486, 503, 599, 488):
        r = report(_probe(DialOutcome("sip_final", code, "Why"), "dialing"), PLAN)
        assert r.see and r.see.split("#")[1] in _anchors()


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (403, "caller ID"),
        (404, "number's format"),
        (486, "the trunk works"),
        (503, "cannot serve the call now"),
        (502, "cannot serve the call now"),
        (488, "codec"),
        (407, "credentials"),
    ],
)
def test_a_refusal_is_a_failure_with_its_sip_status_and_cause(code: int, words: str) -> None:
    r = report(_probe(DialOutcome("sip_final", code, "Reason"), "dialing"), PLAN)
    assert not r.passed and (r.sip_status_code, r.sip_status_reason) == (code, "Reason")
    assert r.cause and words in r.cause
    assert [(s.name, s.result) for s in r.steps] == [
        ("invite", "ok"),
        ("ringing", "not_seen"),
        ("answer", "failed"),
    ]
    assert r.steps[0].detail == "sent to sip.example.com over udp"


def test_silence_after_the_invite_is_not_the_same_as_ringing_unanswered() -> None:
    silent = report(_probe(DialOutcome("no_answer", detail="x"), "dialing"), PLAN)
    rang = report(_probe(DialOutcome("no_answer", detail="x"), "dialing", "ringing"), PLAN)
    assert silent.see and silent.see.endswith("#no-response-to-the-invite")
    assert "no response within 10 s" in silent.steps[-1].detail
    assert rang.see and rang.see.endswith("#busy-declined-or-unavailable")
    assert "rang, not answered" in rang.steps[-1].detail


def test_a_call_livekit_never_placed_says_so() -> None:
    r = report(_probe(DialOutcome("failed", detail="not_found: trunk not found")), PLAN)
    assert not r.passed and r.steps[0].result == "failed" and "not_found" in (r.cause or "")


def test_answered_with_audio_passes_and_echo_and_dtmf_are_reported_not_required() -> None:
    heard = PhoneAudio(frames=150, heard=140, tone=0, peak_dbfs=-20.0, first_heard_s=0.5)
    p = _probe(DialOutcome("answered"), "dialing", "ringing", "active", audio=heard, phone_track=True)
    p.answered_s, p.tone_sent_s, p.dtmf_sent = 0.1, 3.0, "159"
    r = report(p, PLAN)
    assert r.passed and r.cause is None
    results = {s.name: s.result for s in r.steps}
    assert results == {
        "invite": "ok",
        "ringing": "ok",
        "answer": "ok",
        "audio_from_phone": "ok",
        "audio_to_phone": "not_echoed",
        "dtmf": "not_echoed",
        "hangup": "ok",
    }
    p.audio.tone, p.dtmf_back = 120, "159"
    both = {s.name: s for s in report(p, PLAN).steps}
    assert both["audio_to_phone"].result == both["dtmf"].result == "ok"


def test_answered_without_audio_fails_as_no_media() -> None:
    p = _probe(DialOutcome("answered"), "dialing", "active", audio=PhoneAudio(frames=200), phone_track=True)
    r = report(p, PLAN)
    assert not r.passed and r.cause == NO_MEDIA[0]
    assert {s.name: s.result for s in r.steps}["audio_from_phone"] == "failed"


def test_the_tone_is_told_apart_from_silence_and_from_speech_like_noise() -> None:
    dbfs, share = frame_levels(tone_frame(3))
    assert -15 < dbfs < -10 and share > 0.95
    assert frame_levels(np.zeros(FRAME, dtype=np.int16)) == (-120.0, 0.0)
    noise = (np.random.default_rng(1).normal(0, 3000, FRAME)).astype(np.int16)
    dbfs, share = frame_levels(noise)
    assert dbfs > -50 and share < 0.2
