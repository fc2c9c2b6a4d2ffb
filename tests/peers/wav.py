"""Small WAV helpers: write 16-bit mono files, read a file that is still being written."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from livekit import rtc


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(samples, dtype=np.int16).tobytes())
    return path


def silence(seconds: float, rate: int = 8000) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.int16)


def read_growing_wav(path: Path) -> np.ndarray:
    """The int16 samples written so far to a mono 16-bit WAV whose header sizes are not final yet."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return np.zeros(0, dtype=np.int16)
    pos = raw.find(b"data")
    if pos < 0:
        return np.zeros(0, dtype=np.int16)
    body = raw[pos + 8 :]
    return np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2")


def rms_dbfs(samples: np.ndarray) -> float:
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    return float(20 * np.log10(max(rms, 1e-9) / 32768.0))


def speech_seconds(samples: np.ndarray, rate: int = 8000, threshold_dbfs: float = -45.0) -> float:
    """How many seconds of 20 ms frames are louder than the threshold (a crude, robust speech meter)."""
    frame = rate // 50
    n = samples.size // frame
    if n == 0:
        return 0.0
    frames = samples[: n * frame].reshape(n, frame)
    loud = sum(1 for f in frames if rms_dbfs(f) > threshold_dbfs)
    return loud * 0.02


def trailing_silence_seconds(samples: np.ndarray, rate: int = 8000, threshold_dbfs: float = -45.0) -> float:
    """Seconds of quiet 20 ms frames at the end of ``samples``."""
    frame = rate // 50
    n = samples.size // frame
    quiet = 0
    for i in range(n - 1, -1, -1):
        if rms_dbfs(samples[i * frame : (i + 1) * frame]) > threshold_dbfs:
            break
        quiet += 1
    return quiet * 0.02


def pcm_frames(samples: np.ndarray, rate: int = 8000, frame_ms: int = 20) -> list[rtc.AudioFrame]:
    """Mono int16 samples as the room delivers them: frames of ``frame_ms`` (the tail is dropped)."""
    step = rate * frame_ms // 1000
    return [
        rtc.AudioFrame(samples[i : i + step].tobytes(), rate, 1, step)
        for i in range(0, samples.size - step + 1, step)
    ]


def frames_pcm(frames: list[rtc.AudioFrame]) -> np.ndarray:
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames]) if frames else np.zeros(0)


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency in ``samples`` (a tone comes out at its pitch only at the right rate)."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])
