"""The agent's first utterance kept for the recording: the worker keeps its frames and reports them
once; the control plane keeps the audio aside and finds where egress's first sample sits in it (by the
audio when it can, by the clocks when the overlap is silent or short)."""

from __future__ import annotations

import base64
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit import rtc

from phoneagent.recording import lead_in as cp
from phoneagent.worker.lead_in import LeadIn
from tests.peers.recording import speechlike

pytestmark = pytest.mark.unit

RATE = 8000


def _frame(samples: np.ndarray, *, rate: int = RATE, channels: int = 1) -> rtc.AudioFrame:
    data = samples.astype(np.int16)
    return rtc.AudioFrame(data.tobytes(), rate, channels, len(data) // channels)


def _speechlike(seconds: float, seed: int = 7) -> np.ndarray:
    return speechlike(seconds, RATE, seed)


def test_the_worker_keeps_its_first_utterance_and_reports_it_once() -> None:
    reports: list[dict[str, Any]] = []
    clock = iter([1_800_000_000.25, 99.0, 99.0])
    lead = LeadIn(reports.append, max_s=1.0, clock=lambda: next(clock))
    speech = _speechlike(0.6)
    for chunk in np.split(speech, 3):  # three 200 ms frames
        lead.add(_frame(chunk))
    lead.finish()
    lead.finish()
    lead.add(_frame(speech))  # after the first utterance: not kept
    assert len(reports) == 1
    got = reports[0]
    assert (got["started_at"], got["sample_rate"]) == (1_800_000_000.25, RATE)
    assert np.array_equal(np.frombuffer(base64.b64decode(got["pcm16"]), dtype=np.int16), speech)


def test_the_worker_keeps_at_most_its_limit_and_stops_at_a_change_of_format() -> None:
    capped: list[dict[str, Any]] = []
    lead = LeadIn(capped.append, max_s=0.5, clock=lambda: 1_800_000_000.0)
    lead.add(_frame(_speechlike(0.4)))
    lead.add(_frame(_speechlike(0.4, seed=8)))  # reaches 0.5 s: reported at once
    assert len(capped) == 1 and len(base64.b64decode(capped[0]["pcm16"])) == 2 * int(0.5 * RATE)
    changed: list[dict[str, Any]] = []
    lead = LeadIn(changed.append, clock=lambda: 1_800_000_000.0)
    lead.add(_frame(_speechlike(0.2)))
    lead.add(_frame(_speechlike(0.2), rate=16000))  # not the same stream: what came before is kept
    assert len(base64.b64decode(changed[0]["pcm16"])) == 2 * int(0.2 * RATE)
    nothing: list[dict[str, Any]] = []
    LeadIn(nothing.append).finish()  # the call ended before the agent said anything
    assert nothing == []


def test_egress_first_sample_is_found_by_the_audio_whatever_the_clocks_say() -> None:
    lead = _speechlike(3.0)
    true = int(1.7 * RATE)  # egress's first sample is the lead-in's sample at 1.7 s
    head = lead[true : true + RATE]
    for clock_error_ms in (-350, -120, 0, 80, 390):
        by_clock = true + clock_error_ms * RATE // 1000
        assert cp.align(lead, head, by_clock, RATE) == (true, "audio"), clock_error_ms
    # egress's copy went through a codec: some noise on it, still found
    rng = np.random.default_rng(3)
    noisy = (head + rng.normal(0, 800, head.size)).astype(np.int16)
    assert cp.align(lead, noisy, true + 400, RATE) == (true, "audio")


def test_the_clocks_decide_when_the_audio_cannot() -> None:
    lead = _speechlike(3.0)
    true = int(1.7 * RATE)
    silent = np.zeros(RATE, dtype=np.int16)
    assert cp.align(lead, silent, true + 100, RATE) == (true + 100, "clock")
    other = _speechlike(1.0, seed=99)  # not this lead-in's audio
    assert cp.align(lead, other, true + 100, RATE) == (true + 100, "clock")
    late = int(2.9 * RATE)  # egress started 0.1 s before the lead-in ended: too little to match on
    assert cp.align(lead, lead[late:], late, RATE) == (late, "clock")
    after = int(4.0 * RATE)  # egress started after the lead-in ended
    assert cp.align(lead, _speechlike(1.0, seed=5), after, RATE) == (after, "clock")


def test_the_control_plane_keeps_the_audio_aside_and_the_record_what_it_was(tmp_path: Path) -> None:
    speech = _speechlike(0.5)
    data = {
        "started_at": 1_800_000_000.5,
        "sample_rate": RATE,
        "pcm16": base64.b64encode(speech.tobytes()).decode(),
    }
    kept = cp.keep(tmp_path, "ev/../1", data)
    assert kept == {
        "started_at": 1_800_000_000.5,
        "sample_rate": RATE,
        "samples": speech.size,
        "file": ".lead-ins/ev_.._1.wav",
    }
    with wave.open(str(tmp_path / kept["file"]), "rb") as w:
        assert (w.getframerate(), w.getnchannels()) == (RATE, 1)
        assert np.array_equal(np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16), speech)
    with pytest.raises(ValueError):
        cp.keep(tmp_path, "ev2", {**data, "pcm16": "abc"})  # not base64 of whole bytes
    assert sorted(p.name for p in (tmp_path / ".lead-ins").iterdir()) == ["ev_.._1.wav"]
