"""Piper from its PyPI package, through the livekit-agents TTS interface, at the phone's 8 kHz."""

from __future__ import annotations

import numpy as np
import pytest

from phoneagent.speech.piper_tts import PiperTTS, load_piper_voice
from tests.peers.wav import speech_seconds


@pytest.fixture(scope="module")
def tts() -> PiperTTS:
    return PiperTTS(voice=load_piper_voice())


async def test_synthesizes_speech_at_8khz_in_frames_of_at_most_20ms(tts: PiperTTS) -> None:
    frames = [ev.frame async for ev in tts.synthesize("Your appointment is on Tuesday at three.")]
    assert frames and all(f.sample_rate == 8000 and f.num_channels == 1 for f in frames)
    sizes = [f.samples_per_channel for f in frames]
    # livekit-agents may cut a shorter frame at the start and end of a segment; none is over 20 ms
    assert max(sizes) == 160 and sizes.count(160) >= 0.9 * len(sizes)
    audio = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
    assert 1.0 < audio.size / 8000 < 6.0
    assert speech_seconds(audio) > 0.8


async def test_each_sentence_is_streamed(tts: PiperTTS) -> None:
    one = [ev async for ev in tts.synthesize("Hello there.")]
    two = [ev async for ev in tts.synthesize("Hello there. Goodbye now.")]
    assert len(two) > len(one)


async def test_a_sentence_said_before_comes_from_the_cache_with_the_same_audio() -> None:
    from phoneagent.speech.piper_tts import PiperTTS, SpeechCache, load_piper_voice

    cache = SpeechCache()
    tts = PiperTTS(voice=load_piper_voice(), cache=cache)

    async def say(text: str) -> bytes:
        frames = [ev.frame async for ev in tts.synthesize(text)]
        return b"".join(bytes(f.data) for f in frames)

    first = await say("We are open Monday to Friday.")
    await tts.prepare(["Thank you for calling. Goodbye."])
    assert cache.hits == 0
    again = await say("We are open Monday to Friday.")
    prepared = await say("Thank you for calling. Goodbye.")
    assert cache.hits == 2
    assert again == first and len(prepared) > 8000 * 2  # more than a second of 8 kHz speech


def test_the_cache_keeps_within_its_size_dropping_the_oldest() -> None:
    from phoneagent.speech.piper_tts import SpeechCache

    cache = SpeechCache(max_bytes=10)
    cache.put("a", b"12345")
    cache.put("b", b"67890")
    assert cache.get("a") == b"12345"  # a is now the most recent
    cache.put("c", b"xyz")
    assert cache.get("b") is None and cache.get("a") == b"12345" and cache.get("c") == b"xyz"


def test_speech_starts_with_its_first_sound_not_with_piper_s_silence(tts: PiperTTS) -> None:
    import numpy as np

    from phoneagent.speech.audio import LeadTrimmer
    from phoneagent.speech.piper_tts import synthesize_phone_audio

    pcm = np.frombuffer(
        synthesize_phone_audio(tts.synthesizer.voice, "Great, you are booked."),  # type: ignore[attr-defined]
        dtype=np.int16,
    )
    windows = pcm[: pcm.size // 40 * 40].astype(np.float64).reshape(-1, 40)  # 5 ms each
    dbfs = 20 * np.log10(np.maximum(np.sqrt(np.mean(windows**2, axis=1)), 1e-9) / 32768)
    assert int(np.argmax(dbfs > -45)) <= 2  # the first sound within 10 ms (5 ms kept before it)
    trim = LeadTrimmer(keep_s=0.0)
    quiet, loud = np.zeros(400, dtype=np.int16), np.full(80, 3000, dtype=np.int16)
    assert trim.push(quiet.tobytes()) == b""  # all quiet so far: nothing goes out
    out = trim.push(np.concatenate([quiet[:80], loud]).tobytes())
    assert out == loud.tobytes()
    assert trim.push(quiet.tobytes()) == quiet.tobytes()  # after the first sound, everything passes
