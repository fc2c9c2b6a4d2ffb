"""Merging two track recordings (Ogg/Opus, as egress writes them) into one call recording with Debian's
gst-launch-1.0: the later track is placed by its start time, each side keeps its own channel, the
file ends where the call ended; and the Ogg/Opus length reader agrees with the decoder."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from phoneagent.recording import lead_in
from phoneagent.recording.merge import MergeError, TrackFile, merge_tracks, offsets_ns
from phoneagent.recording.ogg import NotOggOpus, opus_duration_s
from tests.peers.recording import decode, onsets, opus_track, speechlike, tone_share, tone_track
from tests.peers.wav import write_wav

T0 = 1_795_600_000_000_000_000  # a wall-clock time in ns, like FileInfo.started_at
CALLER_HZ, AGENT_HZ = 440.0, 1000.0


def _tracks(tmp_path: Path, agent_later_s: float) -> tuple[TrackFile, TrackFile]:
    # caller: bursts at 0.5, 1.5, ... 7.5 s of its file (8 s); agent: at 0.3, 1.3, ... 5.3 s of its file
    caller = tone_track(
        tmp_path / "caller.ogg", freq=CALLER_HZ, bursts=[0.5 + i for i in range(8)], length_s=8
    )
    agent = tone_track(tmp_path / "agent.ogg", freq=AGENT_HZ, bursts=[0.3 + i for i in range(6)], length_s=6)
    return TrackFile(caller, T0), TrackFile(agent, T0 + int(agent_later_s * 1e9))


def test_dual_merge_places_the_later_track_by_its_start_time_caller_left_agent_right(tmp_path: Path) -> None:
    caller, agent = _tracks(tmp_path, agent_later_s=1.2345)
    out = asyncio.run(merge_tracks(caller, agent, tmp_path / "call.ogg"))
    rec = decode(out, rate=48_000)
    assert rec.channels.shape[0] == 2
    # as long as the later end of the two: the caller's 8 s (the agent's 6 s file ends 7.2345 s in)
    assert abs(rec.duration_s - 8.0) < 0.03, rec.duration_s
    assert abs(opus_duration_s(out) - rec.duration_s) < 0.03
    # each side on its own channel, nothing of the other in it
    assert tone_share(rec, 0, CALLER_HZ) > 0.9 and tone_share(rec, 0, AGENT_HZ) < 0.01
    assert tone_share(rec, 1, AGENT_HZ) > 0.9 and tone_share(rec, 1, CALLER_HZ) < 0.01
    # in time: the caller's bursts where they were, the agent's shifted by exactly its later start
    caller_on, agent_on = onsets(rec, 0), onsets(rec, 1)
    assert len(caller_on) == 8 and len(agent_on) == 6, (caller_on, agent_on)
    for i, t in enumerate(caller_on):
        assert abs(t - (0.5 + i)) <= 0.005, (i, t)
    for i, t in enumerate(agent_on):
        assert abs(t - (1.2345 + 0.3 + i)) <= 0.005, (i, t)


def test_the_caller_may_start_later_too(tmp_path: Path) -> None:
    caller, agent = _tracks(tmp_path, agent_later_s=0.0)
    caller = TrackFile(caller.path, T0 + 700_000_000)  # the caller's egress started 0.7 s after the agent's
    rec = decode(asyncio.run(merge_tracks(caller, agent, tmp_path / "call.ogg")), rate=48_000)
    assert [round(t, 2) for t in onsets(rec, 0)] == [round(1.2 + i, 2) for i in range(8)]
    assert [round(t, 2) for t in onsets(rec, 1)] == [round(0.3 + i, 2) for i in range(6)]


def test_the_recording_ends_where_the_call_ended(tmp_path: Path) -> None:
    # the agent's egress was stopped after the call: egress wrote on after it (its drain); cut at 6.5 s
    caller, agent = _tracks(tmp_path, agent_later_s=3.0)
    out = asyncio.run(merge_tracks(caller, agent, tmp_path / "call.ogg", end_ns=T0 + 6_500_000_000))
    rec = decode(out, rate=48_000)
    assert abs(rec.duration_s - 6.5) <= 0.02, rec.duration_s
    assert abs(opus_duration_s(out) - 6.5) <= 0.02
    assert len(onsets(rec, 0)) == 6 and len(onsets(rec, 1)) == 4  # 0.5..5.5 and 3.3..6.3


def test_mixed_layout_is_one_channel_with_both_sides_in_time(tmp_path: Path) -> None:
    caller, agent = _tracks(tmp_path, agent_later_s=1.0)
    rec = decode(asyncio.run(merge_tracks(caller, agent, tmp_path / "call.ogg", layout="mixed")), rate=48_000)
    assert rec.channels.shape[0] == 1 and abs(rec.duration_s - 8.0) < 0.03
    assert tone_share(rec, 0, CALLER_HZ) > 0.3 and tone_share(rec, 0, AGENT_HZ) > 0.3
    assert tone_share(rec, 0, AGENT_HZ, 1.3, 1.5) > 0.9  # the agent's first burst, 1.3 s in
    assert tone_share(rec, 0, CALLER_HZ, 0.5, 0.7) > 0.9  # the caller's first burst


def test_a_missing_or_empty_track_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    caller, agent = _tracks(tmp_path, agent_later_s=0.5)
    empty = tmp_path / "empty.ogg"
    empty.write_bytes(b"")
    for bad in (TrackFile(tmp_path / "nope.ogg", T0), TrackFile(empty, T0)):
        with pytest.raises(MergeError, match="missing or empty"):
            asyncio.run(merge_tracks(caller, bad, tmp_path / "call.ogg"))
    assert not (tmp_path / "call.ogg").exists()


def test_offsets_are_whole_samples_from_the_earliest_start() -> None:
    a = TrackFile(Path("a"), T0 + 2_504_509_703)
    b = TrackFile(Path("b"), T0)
    assert offsets_ns([a, b]) == [round(2_504_509_703 * 48_000 / 1e9) * 1_000_000_000 // 48_000, 0]


def test_ogg_length_reader_refuses_other_files(tmp_path: Path) -> None:
    f = tmp_path / "x.ogg"
    f.write_bytes(b"RIFF....WAVEfmt ")
    with pytest.raises(NotOggOpus):
        opus_duration_s(f)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.size, b.size)
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def test_the_agents_first_words_kept_by_the_worker_go_in_front_of_its_track_aligned_on_the_audio(
    tmp_path: Path,
) -> None:
    # what the agent said: 6 s at 8 kHz; the worker kept its first 3 s (from wall time T0); egress
    # recorded the track from 1.7 s on, and its clock puts that start 120 ms later than it was
    rate = 8000
    said = speechlike(6.0, rate, seed=11)
    kept = write_wav(tmp_path / "kept.wav", said[: 3 * rate], rate)
    egress_from = int(1.7 * rate)
    agent = TrackFile(opus_track(tmp_path / "agent.ogg", said[egress_from:], rate), T0 + 1_820_000_000)
    caller = TrackFile(tone_track(tmp_path / "caller.ogg", freq=CALLER_HZ, bursts=[0.5, 3.5], length_s=6), T0)

    joined = lead_in.join(kept, T0, agent.path, agent.started_ns, tmp_path / "agent-lead-in.wav")
    assert joined is not None and joined.how == "audio"
    assert abs(joined.samples - egress_from) <= 8, joined  # within 1 ms, through Opus
    assert abs(joined.clock_error_ms + 120) <= 1, joined
    assert joined.started_ns == agent.started_ns - round(joined.samples * 1e9 / rate)

    lead = TrackFile(joined.path, joined.started_ns)
    out = asyncio.run(merge_tracks(caller, agent, tmp_path / "call.ogg", lead=lead))
    rec = decode(out, rate=rate)
    assert rec.channels.shape[0] == 2
    # the agent's channel holds what it said, from its first word, once: the kept part and egress's
    # recording meet without a gap or a repeat (each stretch matches the words said there)
    start = round((joined.started_ns - T0) / 1e9 * rate)
    channel = np.round(rec.channels[1] * 32768)
    for a, b in ((0.0, 1.5), (1.5, 1.9), (1.9, 5.5)):
        got = channel[start + int(a * rate) : start + int(b * rate)]
        assert _ncc(got, said[int(a * rate) : int(b * rate)].astype(np.float64)) > 0.8, (a, b)
    assert rec.rms(0, 1.0, 3.0) < 1e-3  # the agent's words stay on its side (the caller is silent then)
    assert [round(t, 2) for t in onsets(rec, 0)] == [0.5, 3.5]


def test_nothing_is_joined_when_egress_started_before_the_agent_spoke(tmp_path: Path) -> None:
    rate = 8000
    said = speechlike(2.0, rate, seed=11)
    kept = write_wav(tmp_path / "kept.wav", said, rate)
    agent = opus_track(tmp_path / "agent.ogg", np.concatenate([np.zeros(rate, np.int16), said]), rate)
    assert lead_in.join(kept, T0 + 1_000_000_000, agent, T0, tmp_path / "x.wav") is None
    assert not (tmp_path / "x.wav").exists()
