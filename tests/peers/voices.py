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
from tests.peers.wav import silence, write_wav

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


def load_caller_voice() -> object:
    """The Piper voice with phoneme alignments (the ``onnx`` package patches the model in memory), for
    :func:`paused_caller_speech`."""
    from piper import PiperVoice

    from phoneagent.speech.models import piper_voice_files

    files = piper_voice_files("en_US-joe-medium")
    return PiperVoice.load(files.model, config_path=files.config, include_alignments=True)


def paused_caller_speech(before: str, after: str, voice: object, pause_s: float) -> np.ndarray:
    """``before after`` said as one sentence in the caller's voice, with ``pause_s`` of silence inserted
    where ``before`` ends: the words before the pause keep the sentence's running intonation, as a
    caller's do who stops to think, not the falling end of a sentence said alone.

    ``voice`` comes from :func:`load_caller_voice`. The pause goes at the start of the word gap after
    ``before``'s last phoneme (Piper's alignments give each phoneme's samples)."""
    from piper import SynthesisConfig

    chunks = list(
        voice.synthesize(  # type: ignore[attr-defined]
            f"{before} {after}", SynthesisConfig(length_scale=1.1, noise_scale=0.8), include_alignments=True
        )
    )
    if len(chunks) != 1 or not chunks[0].phoneme_alignments:
        raise ValueError(f"one sentence with alignments expected for {before!r} + {after!r}")
    chunk = chunks[0]
    gaps = " ".join(before.split()).count(" ")  # word gaps inside ``before``
    seen, at = 0, 0
    for a in chunk.phoneme_alignments:
        if a.phoneme == " " and at > 0:
            if seen == gaps:
                break
            seen += 1
        at += int(a.num_samples)
    else:
        raise ValueError(f"no word gap after {before!r}")
    raw = chunk.audio_int16_array
    rate = int(voice.config.sample_rate * PITCH)  # type: ignore[attr-defined]
    pause = np.zeros(int(pause_s * rate), dtype=np.int16)
    return phone_line(np.concatenate([raw[:at], pause, raw[at:]]), rate)
