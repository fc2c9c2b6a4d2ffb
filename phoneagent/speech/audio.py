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
