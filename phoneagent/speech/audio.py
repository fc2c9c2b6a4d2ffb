"""Audio for the phone line: one resampling step to what G.711 carries (8 kHz, 300-3400 Hz band)."""

from __future__ import annotations

import numpy as np
from livekit import rtc

PHONE_RATE = 8000


class PhoneLineResampler:
    """Resample int16 mono PCM to 8 kHz in one soxr step (its anti-alias filter band-limits to < 4 kHz)."""

    def __init__(self, input_rate: int) -> None:
        self.input_rate = input_rate
        self._resampler = (
            None
            if input_rate == PHONE_RATE
            else rtc.AudioResampler(
                input_rate=input_rate,
                output_rate=PHONE_RATE,
                num_channels=1,
                quality=rtc.AudioResamplerQuality.HIGH,
            )
        )

    def push(self, pcm: np.ndarray) -> bytes:
        data = np.ascontiguousarray(pcm, dtype=np.int16)
        if self._resampler is None:
            return data.tobytes()
        frames = self._resampler.push(bytearray(data.tobytes()))
        return b"".join(bytes(f.data) for f in frames)

    def flush(self) -> bytes:
        if self._resampler is None:
            return b""
        return b"".join(bytes(f.data) for f in self._resampler.flush())


class LeadTrimmer:
    """Drops the quiet start of synthesized speech (Piper opens each sentence with 10 to 70 ms of
    silence): a caller hears the reply that much sooner. Keeps ``keep_s`` before the first sound."""

    def __init__(
        self, rate: int = PHONE_RATE, *, keep_s: float = 0.005, threshold_dbfs: float = -45.0
    ) -> None:
        self._keep = int(rate * keep_s)
        self._window = max(1, rate // 200)  # 5 ms
        self._floor = 32768.0 * 10 ** (threshold_dbfs / 20)
        self._held = np.zeros(0, dtype=np.int16)
        self.done = False

    def push(self, pcm: bytes) -> bytes:
        if self.done:
            return pcm
        audio = np.concatenate([self._held, np.frombuffer(pcm, dtype=np.int16)])
        n = audio.size // self._window
        if n:
            rms = np.sqrt(np.mean(audio[: n * self._window].astype(np.float64).reshape(n, -1) ** 2, axis=1))
            loud = np.flatnonzero(rms > self._floor)
            if loud.size:
                self.done = True
                return audio[max(0, int(loud[0]) * self._window - self._keep) :].tobytes()
        # all quiet so far: keep only what may precede the first sound
        self._held = audio[-(self._keep + self._window) :]
        return b""

    def flush(self) -> bytes:
        """Whatever is held when nothing loud ever came (a silent sentence stays silent, but short)."""
        self.done = True
        held, self._held = self._held, np.zeros(0, dtype=np.int16)
        return held.tobytes()
