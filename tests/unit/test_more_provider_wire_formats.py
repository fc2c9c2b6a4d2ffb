"""ElevenLabs, Cartesia, AssemblyAI and Groq, each built from settings as the worker builds it and
run through the real livekit plugin against a local server that speaks the provider's wire format
(tests/peers/*_wire.py). What is proven: the plugin gets the key (only there), asks for the phone's
8 kHz where the provider makes it, and a transcript or 8 kHz audio comes out of the livekit-agents
interface."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest
from livekit.agents import stt, tts, utils

from phoneagent.config import Settings
from phoneagent.speech.providers import DEFAULT_VOICES, build_stt, build_tts
from tests.peers.assemblyai_wire import FakeAssemblyAI
from tests.peers.cartesia_wire import FakeCartesia
from tests.peers.elevenlabs_wire import FakeElevenLabs
from tests.peers.groq_wire import FakeGroq
from tests.peers.local_server import seconds_for, tone
from tests.peers.wav import dominant_hz, frames_pcm, pcm_frames

MakeSettings = Callable[..., Settings]
CALLER = "I would like to book an appointment for Tuesday."
AGENT = "Your appointment is on Tuesday at three."


@pytest.fixture(autouse=True)
async def http_session() -> AsyncIterator[None]:
    # in a worker the job provides the plugins' shared aiohttp session; here the test does
    async with utils.http_context.open():
        yield


async def spoken(speaker: tts.TTS, *texts: str) -> np.ndarray:  # type: ignore[type-arg]
    """What the session gets when it speaks ``texts`` through ``speaker``'s stream: 8 kHz mono PCM."""
    stream = speaker.stream()
    for text in texts:
        stream.push_text(text)
    stream.end_input()
    async with asyncio.timeout(10.0):
        frames = [a.frame async for a in stream]
    await stream.aclose()
    assert frames and all(f.sample_rate == 8000 and f.num_channels == 1 for f in frames)
    return frames_pcm(frames)


def assert_speaks(audio: np.ndarray, text: str) -> None:
    """The fakes' tone, as long as ``text`` takes to say, reached the phone's rate unbent."""
    assert abs(audio.size / 8000 - seconds_for(text)) < 0.1
    assert abs(dominant_hz(audio, 8000) - 440) < 5


async def final_of(stream: stt.RecognizeStream) -> list[stt.SpeechEvent]:
    events: list[stt.SpeechEvent] = []
    async with asyncio.timeout(10.0):
        async for ev in stream:
            events.append(ev)
            if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                break
    return events


async def test_elevenlabs_tts_against_a_local_server_speaking_its_websocket_wire_format(
    make_settings: MakeSettings,
) -> None:
    async with FakeElevenLabs(key="el-test") as el:
        settings = make_settings(
            AGENT_MODE="api",
            PHONEAGENT_TTS_PROVIDER="elevenlabs",
            ELEVENLABS_API_KEY="el-test",
            ELEVENLABS_BASE_URL=el.base_url,
        )
        speaker = build_tts(settings, piper_voice=None)
        assert speaker.capabilities.streaming and speaker.sample_rate == 8000
        audio = await spoken(speaker, AGENT)
        await speaker.aclose()

    assert_speaks(audio, AGENT)
    ws = el.requests[0]
    voice = DEFAULT_VOICES["elevenlabs"]
    assert (ws.method, ws.path) == ("GET", f"/v1/text-to-speech/{voice}/multi-stream-input")
    assert ws.headers["xi-api-key"] == "el-test"
    # raw PCM at the phone's rate, asked of ElevenLabs itself: nothing resampled on our side
    assert ws.query["output_format"] == "pcm_8000" and ws.query["model_id"] == "eleven_flash_v2_5"
    assert " ".join(ws.body["texts"]).split() == AGENT.split()


async def test_cartesia_tts_against_a_local_server_speaking_its_websocket_wire_format(
    make_settings: MakeSettings,
) -> None:
    async with FakeCartesia(key="ca-test") as ca:
        settings = make_settings(
            AGENT_MODE="api",
            PHONEAGENT_TTS_PROVIDER="cartesia",
            CARTESIA_API_KEY="ca-test",
            CARTESIA_BASE_URL=ca.base_url,
            PHONEAGENT_CARTESIA_VOICE="0a1b2c3d-voice",
        )
        speaker = build_tts(settings, piper_voice=None)
        audio = await spoken(speaker, AGENT)
        await speaker.aclose()

    assert_speaks(audio, AGENT)
    ws = ca.requests[0]
    assert (ws.method, ws.path, ws.headers["X-API-Key"]) == ("GET", "/tts/websocket", "ca-test")
    assert ws.query["cartesia_version"]
    first = ws.body["requests"][0]
    assert first["output_format"] == {"container": "raw", "encoding": "pcm_s16le", "sample_rate": 8000}
    assert (first["model_id"], first["voice"]) == ("sonic-3", {"mode": "id", "id": "0a1b2c3d-voice"})
    said = "".join(r["transcript"] for r in ws.body["requests"])
    assert said.split() == AGENT.split() and ws.body["requests"][-1]["continue"] is False


async def test_assemblyai_stt_against_a_local_server_speaking_its_v3_streaming_wire_format(
    make_settings: MakeSettings, silero_vad: object
) -> None:
    async with FakeAssemblyAI(key="aai-test", transcript=CALLER) as aai:
        settings = make_settings(
            AGENT_MODE="api",
            PHONEAGENT_STT_PROVIDER="assemblyai",
            ASSEMBLYAI_API_KEY="aai-test",
            ASSEMBLYAI_BASE_URL=aai.base_url,
        )
        recognizer = build_stt(settings, vad=silero_vad, whisper_model=None)  # type: ignore[arg-type]
        assert recognizer.capabilities.streaming
        stream = recognizer.stream()
        # the room's 16 kHz audio, one second of it; the plugin sends it at the phone's 8 kHz
        for frame in pcm_frames(tone(1.0, 16000), 16000):
            stream.push_frame(frame)
        stream.end_input()  # the plugin's Terminate: the turn's transcript, then the socket closes
        events = await final_of(stream)
        await stream.aclose()
        await recognizer.aclose()

    assert stt.SpeechEventType.START_OF_SPEECH in [e.type for e in events]
    assert events[-1].alternatives[0].text == CALLER
    ws = aai.requests[0]
    assert (ws.method, ws.path, ws.headers["Authorization"]) == ("GET", "/v3/ws", "aai-test")
    assert (ws.query["sample_rate"], ws.query["encoding"]) == ("8000", "pcm_s16le")
    assert ws.query["speech_model"] == "universal-3-6-pro"
    assert abs(ws.audio_bytes - 16000) <= 800  # one second of 8 kHz 16-bit audio
    assert ws.body["messages"][-1] == "Terminate"


async def test_groq_stt_against_a_local_server_speaking_its_openai_compatible_transcriptions_format(
    make_settings: MakeSettings, silero_vad: object
) -> None:
    async with FakeGroq(key="gsk-test", transcript=CALLER) as groq:
        settings = make_settings(
            AGENT_MODE="api",
            PHONEAGENT_STT_PROVIDER="groq",
            GROQ_API_KEY="gsk-test",
            GROQ_BASE_URL=groq.base_url,
        )
        recognizer = build_stt(settings, vad=silero_vad, whisper_model=None)  # type: ignore[arg-type]
        # request/response: the session's VAD cuts the utterance, the adapter sits inside
        assert isinstance(recognizer, stt.StreamAdapter)
        # the session's 16 kHz utterance goes as it is: Whisper's own rate
        event = await recognizer.recognize(pcm_frames(tone(1.5, 16000), 16000))
        await recognizer.aclose()

    assert event.alternatives[0].text == CALLER
    req = groq.requests[0]
    assert (req.path, req.headers["Authorization"]) == ("/openai/v1/audio/transcriptions", "Bearer gsk-test")
    assert req.body["model"] == "whisper-large-v3-turbo" and req.body["language"] == "en"
    assert req.body["wav_rate"] == 16000 and abs(req.audio_bytes - 48000) <= 640
