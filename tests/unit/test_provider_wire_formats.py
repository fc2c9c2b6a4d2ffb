"""Each API provider path, built from settings as the worker builds it, against a local server that
speaks that provider's wire format (phoneagent/testing/*_wire.py). No real Deepgram or OpenAI is
reached: what is proven is that our assembly and the livekit plugin produce a transcript or audio
through the livekit-agents interface, with the requests the provider expects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest
from livekit.agents import stt, tts, utils

from phoneagent.config import Settings
from phoneagent.speech.providers import build_stt, build_tts
from tests.peers.deepgram_wire import FakeDeepgram
from tests.peers.local_server import seconds_for, tone
from tests.peers.openai_wire import FakeOpenAI
from tests.peers.wav import dominant_hz, frames_pcm, pcm_frames

MakeSettings = Callable[..., Settings]
CALLER = "I would like to book an appointment for Tuesday."
AGENT = "Your appointment is on Tuesday at three."


@pytest.fixture(autouse=True)
async def http_session() -> AsyncIterator[None]:
    # in a worker the job provides the plugins' shared aiohttp session; here the test does
    async with utils.http_context.open():
        yield


async def _until_final(stream: stt.RecognizeStream) -> list[stt.SpeechEvent]:
    events: list[stt.SpeechEvent] = []
    async with asyncio.timeout(5.0):
        async for ev in stream:
            events.append(ev)
            if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                break
    return events


def _audio(frames: list[tts.SynthesizedAudio]) -> np.ndarray:
    assert frames and all(a.frame.sample_rate == 8000 and a.frame.num_channels == 1 for a in frames)
    return frames_pcm([a.frame for a in frames])


async def test_deepgram_stt_streams_to_a_local_server_speaking_deepgrams_websocket_format(
    make_settings: MakeSettings, silero_vad: object
) -> None:
    async with FakeDeepgram(key="dg-test", transcript=CALLER) as dg:
        settings = make_settings(AGENT_MODE="api", DEEPGRAM_API_KEY="dg-test", DEEPGRAM_BASE_URL=dg.base_url)
        recognizer = build_stt(settings, vad=silero_vad, whisper_model=None)  # type: ignore[arg-type]
        stream = recognizer.stream()
        # the room's 16 kHz audio, one second of it; the plugin sends it at the phone's 8 kHz
        for frame in pcm_frames(tone(1.0, 16000), 16000):
            stream.push_frame(frame)
        stream.flush()  # Deepgram's Finalize: the transcript of what was sent
        events = await _until_final(stream)
        await stream.aclose()
        await recognizer.aclose()

    kinds = [e.type for e in events]
    assert stt.SpeechEventType.START_OF_SPEECH in kinds
    assert events[-1].alternatives[0].text == CALLER
    ws = dg.requests[0]
    assert (ws.method, ws.path, ws.headers["Authorization"]) == ("GET", "/v1/listen", "Token dg-test")
    assert ws.query["model"] == "nova-3" and ws.query["encoding"] == "linear16"
    assert ws.query["sample_rate"] == "8000"
    assert abs(ws.audio_bytes - 16000) <= 800  # one second of 8 kHz 16-bit audio


async def test_deepgram_tts_streams_8khz_audio_from_a_local_server_speaking_deepgrams_websocket_format(
    make_settings: MakeSettings,
) -> None:
    async with FakeDeepgram(key="dg-test") as dg:
        settings = make_settings(AGENT_MODE="api", DEEPGRAM_API_KEY="dg-test", DEEPGRAM_BASE_URL=dg.base_url)
        speaker = build_tts(settings, piper_voice=None)
        assert speaker.capabilities.streaming and speaker.sample_rate == 8000
        stream = speaker.stream()
        stream.push_text(AGENT)
        stream.end_input()
        frames = [a async for a in stream]
        await stream.aclose()
        await speaker.aclose()

    audio = _audio(frames)
    assert abs(audio.size / 8000 - seconds_for(AGENT)) < 0.1
    assert abs(dominant_hz(audio, 8000) - 440) < 5
    ws = dg.requests[0]
    assert ws.path == "/v1/speak" and ws.query["sample_rate"] == "8000"
    assert ws.query["model"] == "aura-2-andromeda-en"
    assert " ".join(ws.body["texts"]).split() == AGENT.split()


async def test_openai_stt_against_a_local_server_speaking_openais_transcriptions_format(
    make_settings: MakeSettings, silero_vad: object
) -> None:
    async with FakeOpenAI(key="sk-test", transcript=CALLER) as oai:
        settings = make_settings(
            AGENT_MODE="api",
            PHONEAGENT_STT_PROVIDER="openai",
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=oai.base_url,
        )
        recognizer = build_stt(settings, vad=silero_vad, whisper_model=None)  # type: ignore[arg-type]
        # request/response: the session's VAD cuts the utterance, the adapter sits inside
        assert isinstance(recognizer, stt.StreamAdapter)
        event = await recognizer.recognize(pcm_frames(tone(1.5, 8000)))
        await recognizer.aclose()

    assert event.alternatives[0].text == CALLER
    req = oai.requests[0]
    assert (req.path, req.headers["Authorization"]) == ("/v1/audio/transcriptions", "Bearer sk-test")
    assert req.body["model"] == "gpt-4o-mini-transcribe" and req.body["language"] == "en"
    assert req.body["wav_rate"] == 8000 and abs(req.audio_bytes - 24000) <= 320


async def test_openai_tts_against_a_local_server_speaking_openais_speech_sse_format(
    make_settings: MakeSettings,
) -> None:
    async with FakeOpenAI(key="sk-test", sse=True) as oai:
        settings = make_settings(
            AGENT_MODE="api",
            PHONEAGENT_TTS_PROVIDER="openai",
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=oai.base_url,
        )
        speaker = build_tts(settings, piper_voice=None)
        frames = [a async for a in speaker.synthesize(AGENT)]
        await speaker.aclose()

    # OpenAI's 24 kHz PCM, resampled once to the phone's 8 kHz by the adapter
    audio = _audio(frames)
    assert abs(audio.size / 8000 - seconds_for(AGENT)) < 0.1
    assert abs(dominant_hz(audio, 8000) - 440) < 5
    req = oai.requests[0]
    assert (req.path, req.headers["Authorization"]) == ("/v1/audio/speech", "Bearer sk-test")
    assert req.body["response_format"] == "pcm" and req.body["stream_format"] == "sse"
    assert (req.body["model"], req.body["voice"]) == ("gpt-4o-mini-tts", "ash")


async def test_whisper_server_by_url_against_a_local_server_speaking_the_openai_compatible_format(
    make_settings: MakeSettings, silero_vad: object
) -> None:
    async with FakeOpenAI(transcript=CALLER) as server:
        settings = make_settings(AGENT_MODE="local", WHISPER_LOCAL_URL=server.base_url)
        recognizer = build_stt(settings, vad=silero_vad, whisper_model=None)  # type: ignore[arg-type]
        event = await recognizer.recognize(pcm_frames(tone(1.0, 8000)))
        await recognizer.aclose()

    assert event.alternatives[0].text == CALLER
    req = server.requests[0]
    assert req.body["model"] == "whisper-1" and req.body["response_format"] == "verbose_json"
    # a local server gets a placeholder, never a key
    assert req.headers["Authorization"] == "Bearer no-key"


async def test_piper_server_by_url_against_a_local_server_speaking_the_openai_compatible_format(
    make_settings: MakeSettings,
) -> None:
    # a compatible server ignores stream_format and answers WAV at its voice's own 22.05 kHz
    async with FakeOpenAI(sse=False, wav_rate=22050) as server:
        settings = make_settings(AGENT_MODE="local", PIPER_URL=server.base_url)
        speaker = build_tts(settings, piper_voice=None)
        frames = [a async for a in speaker.synthesize(AGENT)]
        await speaker.aclose()

    audio = _audio(frames)
    # had the 22.05 kHz WAV been read as OpenAI's 24 kHz, the tone would be 9 % high and short
    assert abs(dominant_hz(audio, 8000) - 440) < 5
    assert abs(audio.size / 8000 - seconds_for(AGENT)) < 0.1
    req = server.requests[0]
    assert (req.body["model"], req.body["voice"], req.body["response_format"]) == (
        "piper",
        "en_US-joe-medium",
        "wav",
    )
    assert req.headers["Authorization"] == "Bearer no-key"
