"""Reading a call recording back for checks: decoded samples per channel, loudness in time, where
speech starts and stops (20 ms frames against a loudness threshold)."""

from __future__ import annotations

import asyncio
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phoneagent.recording.merge import decode_wav
from tests.peers.wav import write_wav

FRAME_S = 0.02


@dataclass(frozen=True)
class Decoded:
    rate: int
    channels: np.ndarray  # float64, shape (channels, samples), full scale 1.0

    @property
    def duration_s(self) -> float:
        return float(self.channels.shape[1] / self.rate)

    def rms(self, channel: int, start_s: float, end_s: float) -> float:
        a, b = int(max(0.0, start_s) * self.rate), int(max(0.0, end_s) * self.rate)
        seg = self.channels[channel, a:b]
        return float(np.sqrt(np.mean(seg**2))) if seg.size else 0.0

    def loud_frames(self, channel: int, threshold_dbfs: float = -40.0) -> np.ndarray:
        """Per 20 ms frame: louder than the threshold."""
        n = int(self.rate * FRAME_S)
        x = self.channels[channel, : self.channels.shape[1] // n * n].reshape(-1, n)
        db = 20 * np.log10(np.maximum(np.sqrt(np.mean(x**2, axis=1)), 1e-9))
        loud: np.ndarray = db > threshold_dbfs
        return loud

    def speech_spans(
        self, channel: int, *, min_gap_s: float = 0.6, min_len_s: float = 0.3
    ) -> list[tuple[float, float]]:
        """(start, end) seconds of stretches of speech, gaps shorter than ``min_gap_s`` bridged."""
        loud = self.loud_frames(channel)
        spans: list[tuple[float, float]] = []
        for i in np.flatnonzero(loud):
            t = i * FRAME_S
            if spans and t - spans[-1][1] <= min_gap_s:
                spans[-1] = (spans[-1][0], t + FRAME_S)
            else:
                spans.append((t, t + FRAME_S))
        return [s for s in spans if s[1] - s[0] >= min_len_s]

    def channel_wav(
        self, channel: int, path: Path, *, start_s: float = 0.0, end_s: float | None = None
    ) -> Path:
        """One channel as a 16-bit WAV, optionally only from ``start_s`` to ``end_s``."""
        lo = max(0, int(start_s * self.rate))
        hi = None if end_s is None else max(lo, int(end_s * self.rate))
        pcm = np.clip(self.channels[channel][lo:hi] * 32767, -32768, 32767).astype("<i2")
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.rate)
            w.writeframes(pcm.tobytes())
        return path


def decode(path: Path, *, rate: int = 16_000) -> Decoded:
    """Decode an Ogg/Opus recording (with Debian's gst-launch-1.0)."""
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = asyncio.run(decode_wav(path, Path(tmp) / "decoded.wav", rate=rate))
        with wave.open(str(wav_path), "rb") as w:
            n, ch = w.getnframes(), w.getnchannels()
            data = np.frombuffer(w.readframes(n), dtype="<i2").astype(np.float64) / 32768.0
            got_rate = w.getframerate()
    return Decoded(got_rate, data.reshape(-1, ch).T.copy())


def tone_track(
    path: Path, *, freq: float, bursts: list[float], length_s: float, burst_s: float = 0.2
) -> Path:
    """An Ogg/Opus file like a track egress writes: silence with a tone burst starting at each of
    ``bursts`` (seconds into the file)."""
    rate = 48_000
    x = np.zeros(int(length_s * rate))
    t = np.arange(int(burst_s * rate)) / rate
    for start in bursts:
        a = int(start * rate)
        x[a : a + t.size] = 0.5 * np.sin(2 * np.pi * freq * t)[: max(0, x.size - a)]
    return opus_track(path, (x * 32767).astype(np.int16), rate)


def speechlike(seconds: float, rate: int, seed: int) -> np.ndarray:
    """Noise in syllable-long bursts (16-bit, fixed seed): like speech, and unlike itself a few ms away,
    for tests that find where one stretch of audio sits in another."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    envelope = np.clip(np.sin(np.arange(n) * 2 * np.pi * 4 / rate), 0, None) + 0.05
    return (rng.normal(0, 4000, n) * envelope).clip(-32000, 32000).astype(np.int16)


def opus_track(path: Path, samples: np.ndarray, rate: int) -> Path:
    """``samples`` (16-bit mono at ``rate``) as an Ogg/Opus file like a track egress writes (48 kHz),
    encoded with gst-launch-1.0 (opusenc, oggmux)."""
    import subprocess

    from phoneagent.recording.merge import gst_launch

    wav_path = write_wav(path.with_suffix(".wav"), samples, rate)
    subprocess.run(
        [
            gst_launch(),
            "-q",
            "-e",
            "filesrc",
            f"location={wav_path}",
            "!",
            "wavparse",
            "!",
            "audioconvert",
            "!",
            "audioresample",
            "!",
            "audio/x-raw,rate=48000",
            "!",
            "opusenc",
            "bitrate=64000",
            "!",
            "oggmux",
            "!",
            "filesink",
            f"location={path}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    wav_path.unlink()
    return path


def tone_share(
    decoded: Decoded, channel: int, freq: float, start_s: float = 0.0, end_s: float | None = None
) -> float:
    """The share of a channel's energy within 30 Hz of ``freq`` (0..1)."""
    a = int(start_s * decoded.rate)
    b = decoded.channels.shape[1] if end_s is None else int(end_s * decoded.rate)
    x = decoded.channels[channel, a:b]
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / decoded.rate)
    total = spectrum.sum()
    return float(spectrum[np.abs(freqs - freq) < 30].sum() / total) if total > 0 else 0.0


def onsets(decoded: Decoded, channel: int, *, threshold: float = 0.05, min_gap_s: float = 0.5) -> list[float]:
    """Times (s, 1 ms resolution) where a channel's amplitude first crosses ``threshold`` after quiet."""
    x = np.abs(decoded.channels[channel])
    step = decoded.rate // 1000
    env = x[: x.size // step * step].reshape(-1, step).max(axis=1)
    out: list[float] = []
    for i in np.flatnonzero(env > threshold):
        t = i / 1000
        if not out or t - out[-1] >= min_gap_s:
            out.append(t)
    return out


def onset(samples: np.ndarray, rate: int, *, threshold_dbfs: float = -45.0, frame_s: float = 0.005) -> int:
    """The first sample of the first loud ``frame_s`` (-1 when nothing is loud)."""
    n = int(frame_s * rate)
    frames = samples[: len(samples) // n * n].astype(np.float64).reshape(-1, n) / 32768.0
    loud = np.flatnonzero(20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-12) > threshold_dbfs)
    return int(loud[0]) * n if loud.size else -1


def head_missing_s(heard: np.ndarray, channel: np.ndarray, rate: int, *, min_overlap_s: float = 1.0) -> float:
    """How much of the start of ``heard`` (what a phone heard, from its first sound) a recording's
    ``channel`` lacks: 0 when the channel holds it from before its first sound. Found where ``heard``
    matches the channel best (normalised correlation over the overlap, FFT), including placements
    where its start falls before the channel's first sample (that much is missing)."""
    h, c = heard.astype(np.float64), channel.astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(h) + len(c))))
    full = np.fft.irfft(np.fft.rfft(c, size) * np.conj(np.fft.rfft(h, size)), size)
    lags = np.arange(-(len(h) - int(min_overlap_s * rate)), len(c) - int(min_overlap_s * rate))
    dots = full[lags % size]  # sum over n of h[n] * c[n + lag]
    h2, c2 = np.concatenate([[0.0], np.cumsum(h**2)]), np.concatenate([[0.0], np.cumsum(c**2)])
    lo, hi = np.maximum(0, -lags), np.minimum(len(h), len(c) - lags)  # the overlap, in h's samples
    energy = (h2[hi] - h2[lo]) * (c2[hi + lags] - c2[lo + lags])
    score = dots / np.sqrt(np.maximum(energy, 1e-9))
    best = int(lags[int(np.argmax(score))])
    return max(0.0, -best / rate)
