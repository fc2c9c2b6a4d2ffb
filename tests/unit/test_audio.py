"""The phone-line resampler keeps the telephone band and removes what G.711 cannot carry."""

from __future__ import annotations

import numpy as np

from phoneagent.speech.audio import PHONE_RATE, PhoneLineResampler


def _tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _resample(x: np.ndarray, rate: int) -> np.ndarray:
    r = PhoneLineResampler(rate)
    out = r.push(x) + r.flush()
    return np.frombuffer(out, dtype=np.int16)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def test_output_is_8khz_and_keeps_duration() -> None:
    y = _resample(_tone(1000, 22050), 22050)
    assert abs(y.size - PHONE_RATE) <= 160  # one second, within a 20 ms frame


def test_speech_band_passes_and_out_of_band_is_removed() -> None:
    in_band = _resample(_tone(1000, 22050), 22050)
    above_nyquist = _resample(_tone(6000, 22050), 22050)
    # 1 kHz keeps its level; 6 kHz (beyond 8 kHz's 4 kHz limit) must not alias into the band
    assert _rms(in_band) > 0.3 * 32767 * 0.5
    assert 20 * np.log10(_rms(in_band) / max(_rms(above_nyquist), 1e-9)) > 40
    spectrum = np.abs(np.fft.rfft(in_band[1000:7000]))
    peak_hz = np.argmax(spectrum) * PHONE_RATE / 6000
    assert abs(peak_hz - 1000) < 5


def test_8khz_input_passes_through_unchanged() -> None:
    x = _tone(440, 8000)
    assert np.array_equal(_resample(x, 8000), x)
