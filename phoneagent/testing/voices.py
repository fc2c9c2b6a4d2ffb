"""A caller's voice for tests and benchmarks, different from the agent's, made offline.

The only neural voice available offline is the agent's own Piper voice, so the caller speaks with
that voice pitched up 18 % and sped up by resampling (a higher, quicker speaker), then goes through
the phone line: 8 kHz and G.711 mu-law, exactly what a SIP phone sends.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from phoneagent.speech.audio import PHONE_RATE, PhoneLineResampler
from phoneagent.testing.wav import silence, write_wav

PITCH = 1.18


def mu_law_roundtrip(pcm: np.ndarray) -> np.ndarray:
    """Encode to G.711 mu-law and decode again (what the line does to the caller's voice)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop  # G.711 exactly; in the standard library up to Python 3.12 (we pin 3.11)

    data = np.ascontiguousarray(pcm, dtype=np.int16).tobytes()
    return np.frombuffer(audioop.ulaw2lin(audioop.lin2ulaw(data, 2), 2), dtype=np.int16)


def caller_source(text: str, voice: object) -> tuple[np.ndarray, int]:
    """The caller's voice before the phone line: int16 samples and their (pitched) sample rate."""
    from piper import SynthesisConfig

    chunks = voice.synthesize(text, SynthesisConfig(length_scale=1.1, noise_scale=0.8))  # type: ignore[attr-defined]
    raw = np.concatenate([c.audio_int16_array for c in chunks])
    rate = voice.config.sample_rate  # type: ignore[attr-defined]
    return raw, int(rate * PITCH)  # samples played faster than made: higher and quicker


def phone_line(pcm: np.ndarray, rate: int) -> np.ndarray:
    """What a SIP phone sends of ``pcm``: one resampling step to 8 kHz, then G.711 mu-law."""
    r = PhoneLineResampler(rate)
    return mu_law_roundtrip(np.frombuffer(r.push(pcm) + r.flush(), dtype=np.int16))


def caller_speech(text: str, voice: object) -> np.ndarray:
    """8 kHz int16 samples of ``text`` in the caller's voice, after G.711."""
    return phone_line(*caller_source(text, voice))


def caller_wav(path: Path, text: str, voice: object, *, lead_s: float = 0.3, pad_s: float = 60.0) -> Path:
    """A WAV for the phone's microphone: a short lead-in, the utterance, then silence for ``pad_s``."""
    speech = caller_speech(text, voice)
    return write_wav(path, np.concatenate([silence(lead_s), speech, silence(pad_s)]), PHONE_RATE)
