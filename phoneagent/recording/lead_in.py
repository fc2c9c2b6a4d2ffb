"""The agent's first utterance as the worker sent it, joined in front of egress's recording of the
agent's track (egress v1.8.6 starts a track 1.3 to 2.3 s after it appears: without this the greeting
is cut; see ``phoneagent.worker.lead_in``).

The worker's event carries the audio (16-bit mono) and the wall-clock time its first frame went into
the room. ``keep`` writes it under ``<recordings dir>/.lead-ins/`` when the event arrives (the call's
record keeps only what it was); the recorder, when it merges the call, finds where egress's first
sample sits in it (``align``) and joins the part before that in front of the agent's track.

Where: the two clocks (the worker's, egress's ``FileInfo.started_at``) agree to within about 0.1 s
(the frame's time in the worker's audio source queue, then 25-95 ms of transport). The audio decides:
egress's first second is matched against the lead-in within ``SEARCH_S`` of where the clocks put it,
and the best match is taken when it is clear (normalised correlation of at least ``MIN_MATCH``). When
the overlap is silent or too short, the clocks decide.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

log = logging.getLogger("phoneagent.recording")

EVENT = "recording_lead_in"  # the worker event that carries it
LEAD_IN_DIR = ".lead-ins"
JOINED_NAME = "agent-lead-in.wav"  # the part joined, beside the call's track files
SEARCH_S = 0.4
MATCH_S = 1.0  # how much of egress's recording is matched against the lead-in
MIN_OVERLAP_S = 0.3
MIN_MATCH = 0.5
_SILENT_RMS = 100.0  # 16-bit: quieter than this is no speech to match on


def keep(root: Path, event_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Write the lead-in's audio to ``root/.lead-ins/<event id>.wav``; returns the event's data
    without the audio (what the call's record keeps)."""
    pcm = base64.b64decode(data["pcm16"], validate=True)
    rate = int(data["sample_rate"])
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", event_id)[:120] + ".wav"
    folder = root / LEAD_IN_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    # a resent batch may write the same event while the first write runs: each writes its own file
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _write_wav(tmp, pcm[: len(pcm) // 2 * 2], rate)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return {
        "started_at": data["started_at"],
        "sample_rate": rate,
        "samples": len(pcm) // 2,
        "file": f"{LEAD_IN_DIR}/{name}",
    }


@dataclass(frozen=True)
class Joined:
    """The part of the lead-in that goes in front of egress's agent track."""

    path: Path  # a WAV file
    started_ns: int  # on egress's clock: its first sample
    samples: int
    rate: int
    how: str  # "audio" (matched) or "clock"
    clock_error_ms: int  # where the audio put egress's first sample, minus where the clocks did


def _write_wav(path: Path, pcm: bytes, rate: int) -> None:
    """16-bit mono WAV."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16), w.getframerate()


def decode_head(path: Path, seconds: float, rate: int) -> np.ndarray:
    """The first ``seconds`` of an Ogg/Opus file, mono 16-bit at ``rate``."""
    want = int(seconds * rate)
    out: list[np.ndarray] = []
    got = 0
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for piece in resampler.resample(frame):
                samples = piece.to_ndarray().reshape(-1)
                out.append(samples)
                got += len(samples)
            if got >= want:
                break
    return np.concatenate(out)[:want].astype(np.int16) if out else np.zeros(0, dtype=np.int16)


def align(lead: np.ndarray, head: np.ndarray, by_clock: int, rate: int) -> tuple[int, str]:
    """The sample of ``lead`` that egress's first sample (``head[0]``) is, and how it was found.
    ``by_clock``: where the two clocks put it."""
    search, need = int(SEARCH_S * rate), int(MIN_OVERLAP_S * rate)
    lo = max(0, by_clock - search)
    width = min(len(head), int(MATCH_S * rate), len(lead) - lo)
    if width < need:
        return by_clock, "clock"
    h = head[:width].astype(np.float64)
    if np.sqrt(np.mean(h**2)) < _SILENT_RMS:
        return by_clock, "clock"
    hi = min(len(lead) - width, by_clock + search)
    if hi < lo:
        return by_clock, "clock"
    region = lead[lo : hi + width].astype(np.float64)
    dots = np.correlate(region, h, mode="valid")
    energy = np.convolve(region**2, np.ones(width), mode="valid")
    score = dots / (np.sqrt(np.maximum(energy, 1e-9)) * np.linalg.norm(h))
    best = int(np.argmax(score))
    if score[best] < MIN_MATCH:
        return by_clock, "clock"
    return lo + best, "audio"


def join(
    lead_file: Path, lead_started_ns: int, agent_ogg: Path, agent_started_ns: int, out: Path
) -> Joined | None:
    """Write the part of the lead-in before egress's first agent sample to ``out``; None when egress
    missed nothing of it (it started before the lead-in did)."""
    lead, rate = read_wav(lead_file)
    by_clock = round((agent_started_ns - lead_started_ns) * rate / 1e9)
    head = decode_head(agent_ogg, MATCH_S, rate)
    at, how = align(lead, head, by_clock, rate)  # past the lead-in's end: egress started after it
    if at <= 0:
        return None
    kept = lead[:at]
    _write_wav(out, kept.tobytes(), rate)
    return Joined(
        path=out,
        started_ns=agent_started_ns - round(at * 1e9 / rate),
        samples=len(kept),
        rate=rate,
        how=how,
        clock_error_ms=round((at - by_clock) * 1000 / rate),
    )
