"""The benchmark's callers and the two ways their speech reaches Whisper.

Voices (none is the agent's own voice as it sounds on a call):
- ``caller``: the project's test caller (tests.peers.voices: Piper en_US-joe-medium pitched up
  18 % and sped up by resampling);
- ``espeak:<voice>``: espeak-ng (Debian package), a formant synthesizer, much harder for Whisper.

Conditions:
- ``16k``: the synthesized samples, resampled in one step to 16 kHz (no phone line);
- ``8k``: one resampling step to 8 kHz, G.711 mu-law encode/decode (what a SIP phone sends), then the
  worker's own one step to 16 kHz (phoneagent.speech.whisper_stt.to_whisper_input).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from dataclasses import dataclass

import numpy as np
from livekit import rtc

from phoneagent.speech.audio import PHONE_RATE
from phoneagent.speech.whisper_stt import WHISPER_RATE, to_whisper_input
from tests.peers.voices import caller_source, phone_line

ESPEAK_VOICES = ("en-us", "en+f3", "en-gb-x-rp")
PAD_S = 0.2  # silence either side, as a VAD-cut utterance has


@dataclass(frozen=True)
class Clip:
    voice: str
    index: int
    audio_s: float
    wide: np.ndarray  # 16 kHz float32, no phone line
    narrow: np.ndarray  # 16 kHz float32, after 8 kHz G.711


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def espeak_version() -> str:
    if not espeak_available():
        return ""
    done = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def espeak_source(text: str, voice: str) -> tuple[np.ndarray, int]:
    done = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "155", "--stdout", text], capture_output=True, check=True
    )
    with wave.open(io.BytesIO(done.stdout)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return pcm, rate


def source(voice: str, text: str, piper: object) -> tuple[np.ndarray, int]:
    if voice == "caller":
        return caller_source(text, piper)
    if voice.startswith("espeak:"):
        return espeak_source(text, voice.split(":", 1)[1])
    raise ValueError(f"unknown benchmark voice {voice!r}")


def _to_whisper(pcm: np.ndarray, rate: int) -> np.ndarray:
    return to_whisper_input(rtc.AudioFrame(np.ascontiguousarray(pcm).tobytes(), rate, 1, len(pcm)))


def make_clip(voice: str, index: int, text: str, piper: object) -> Clip:
    pcm, rate = source(voice, text, piper)
    pad = np.zeros(int(PAD_S * rate), dtype=np.int16)
    pcm = np.concatenate([pad, pcm, pad])
    line = phone_line(pcm, rate)
    return Clip(
        voice=voice,
        index=index,
        audio_s=round(len(pcm) / rate, 3),
        wide=_to_whisper(pcm, rate),
        narrow=_to_whisper(line, PHONE_RATE),
    )


def telephone_band(audio: np.ndarray, low: float = 300.0, high: float = 3400.0) -> np.ndarray:
    """300-3400 Hz band-pass of 16 kHz audio (FFT mask with 100 Hz raised-cosine edges)."""
    spectrum = np.fft.rfft(audio)
    f = np.fft.rfftfreq(audio.size, 1 / WHISPER_RATE)
    mask = np.clip((f - (low - 50)) / 100, 0, 1) * np.clip(((high + 50) - f) / 100, 0, 1)
    mask = 0.5 - 0.5 * np.cos(np.pi * mask)
    return np.fft.irfft(spectrum * mask, n=audio.size).astype(np.float32)


def non_speech_clips(seed: int = 5) -> dict[str, np.ndarray]:
    """Sounds a VAD may pass that hold no words, after the phone line, at 16 kHz: Whisper should say
    nothing. Used to see what the no-speech threshold does."""
    rng = np.random.default_rng(seed)
    n = int(1.5 * PHONE_RATE)
    t = np.arange(n) / PHONE_RATE

    def at_dbfs(x: np.ndarray, dbfs: float) -> np.ndarray:
        x = x / max(float(np.sqrt(np.mean(x**2))), 1e-9)
        return (x * 32768 * 10 ** (dbfs / 20)).clip(-32768, 32767).astype(np.int16)

    breath_env = np.sin(np.pi * t / t[-1]) ** 2
    brown = np.cumsum(rng.standard_normal(n))
    brown -= np.convolve(brown, np.ones(400) / 400, mode="same")
    raw = {
        "silence": np.zeros(n, dtype=np.int16),
        "line_noise_-50dbfs": at_dbfs(rng.standard_normal(n), -50),
        "room_noise_-35dbfs": at_dbfs(brown, -35),
        "hum_60hz_-30dbfs": at_dbfs(np.sin(2 * np.pi * 60 * t) + 0.3 * np.sin(2 * np.pi * 180 * t), -30),
        "breath_-30dbfs": at_dbfs(rng.standard_normal(n) * breath_env, -30),
    }
    return {name: _to_whisper(phone_line(x, PHONE_RATE), PHONE_RATE) for name, x in raw.items()}
