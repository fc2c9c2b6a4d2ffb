"""hybrid: when the API provider fails, the FallbackAdapter hands the same request to the local model
within one call (one recognize, one synthesize, one stream), and the availability change reaches the
worker's ``report`` function. The API side is a local server speaking Deepgram's wire format, told
to answer 500, to close its socket, or not to listen at all; the local side is the real in-process
Whisper and Piper."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
from livekit.agents import stt, utils

from phoneagent.config import Settings
from phoneagent.speech.fallbacks import report_fallbacks
from phoneagent.speech.providers import build_stt, build_tts
from tests.peers.deepgram_wire import FakeDeepgram
from tests.peers.local_server import closed_port_url
from tests.peers.openai_wire import FakeOpenAI
from tests.peers.voices import caller_speech
from tests.peers.wav import frames_pcm, pcm_frames, silence, speech_seconds

MakeSettings = Callable[..., Settings]
DEEPGRAM_STT_DOWN = {"component": "stt", "provider": "deepgram", "model": "nova-3", "available": False}
DEEPGRAM_TTS_DOWN = {**DEEPGRAM_STT_DOWN, "component": "tts", "model": "aura-2-andromeda-en"}


@pytest.fixture(autouse=True)
async def http_session() -> AsyncIterator[None]:
    async with utils.http_context.open():
        yield


@pytest.fixture(scope="module")
def utterance(piper_voice: Any) -> Any:
    return caller_speech("I would like to book an appointment for Tuesday.", piper_voice)


class Reports:
    """Stands in for ``EventReporter.report`` bound to the call's room."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.changed = asyncio.Event()

    def __call__(self, type_: str, data: dict[str, Any]) -> None:
        self.calls.append((type_, data))
        self.changed.set()

    async def wait_for(self, data: dict[str, Any]) -> None:
        async with asyncio.timeout(5.0):
            while ("fallback", data) not in self.calls:
                self.changed.clear()
                await self.changed.wait()


def _hybrid(make_settings: MakeSettings, dg_url: str, **more: str) -> Settings:
    return make_settings(AGENT_MODE="hybrid", DEEPGRAM_API_KEY="dg-test", DEEPGRAM_BASE_URL=dg_url, **more)


async def test_hybrid_stt_switches_to_local_whisper_within_one_recognize_when_deepgram_answers_500(
    make_settings: MakeSettings, silero_vad: Any, whisper_model: Any, utterance: Any
) -> None:
    reports = Reports()
    async with FakeDeepgram(key="dg-test", transcript="never heard") as dg:
        dg.fail = "http_500"
        settings = _hybrid(make_settings, dg.base_url)
        recognizer = build_stt(settings, vad=silero_vad, whisper_model=whisper_model)
        assert report_fallbacks(reports, recognizer) == 1
        event = await recognizer.recognize(pcm_frames(utterance))
        await recognizer.aclose()

    words = event.alternatives[0].text.lower()
    assert "appointment" in words and "tuesday" in words  # Whisper's, not the fake's "never heard"
    assert dg.requests[0].path == "/v1/listen" and dg.requests[0].method == "POST"
    assert reports.calls[0] == ("fallback", DEEPGRAM_STT_DOWN)


async def test_hybrid_stt_stream_switches_to_local_whisper_when_deepgrams_websocket_closes(
    make_settings: MakeSettings, silero_vad: Any, whisper_model: Any, utterance: Any
) -> None:
    reports = Reports()
    async with FakeDeepgram(key="dg-test", transcript="never heard") as dg:
        dg.fail = "close"
        settings = _hybrid(make_settings, dg.base_url)
        recognizer = build_stt(settings, vad=silero_vad, whisper_model=whisper_model)
        report_fallbacks(reports, recognizer)
        stream = recognizer.stream()  # what the session holds for the whole call
        await reports.wait_for(DEEPGRAM_STT_DOWN)
        # the caller speaks once the socket is gone: the utterance reaches Whisper in the same stream
        for frame in pcm_frames(np.concatenate([silence(0.3), utterance, silence(1.0)])):
            stream.push_frame(frame)
        finals = []
        async with asyncio.timeout(10):
            async for ev in stream:
                if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                    finals.append(ev.alternatives[0].text.lower())
                    break
        await stream.aclose()
        await recognizer.aclose()

    assert "appointment" in finals[0] and "tuesday" in finals[0]
    assert dg.requests[0].path == "/v1/listen" and dg.requests[0].method == "GET"


async def test_hybrid_openai_stt_hands_the_same_utterance_to_local_whisper_when_openai_answers_500(
    make_settings: MakeSettings, silero_vad: Any, whisper_model: Any, utterance: Any
) -> None:
    # request/response STTs share one VAD cut: the utterance OpenAI failed on goes to Whisper as is
    reports = Reports()
    async with FakeOpenAI(key="sk-test", transcript="never heard") as oai:
        oai.fail = "http_500"
        settings = make_settings(
            AGENT_MODE="hybrid",
            PHONEAGENT_STT_PROVIDER="openai",
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=oai.base_url,
        )
        recognizer = build_stt(settings, vad=silero_vad, whisper_model=whisper_model)
        report_fallbacks(reports, recognizer)
        stream = recognizer.stream()
        for frame in pcm_frames(np.concatenate([silence(0.3), utterance, silence(1.0)])):
            stream.push_frame(frame)
        async with asyncio.timeout(10):
            async for ev in stream:
                if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                    final = ev.alternatives[0].text.lower()
                    break
        await stream.aclose()
        await recognizer.aclose()

    assert "appointment" in final and "tuesday" in final
    assert oai.requests[0].path == "/v1/audio/transcriptions"
    assert reports.calls[0] == (
        "fallback",
        {"component": "stt", "provider": "openai", "model": "gpt-4o-mini-transcribe", "available": False},
    )


async def test_hybrid_tts_switches_to_local_piper_within_one_synthesize_when_deepgram_is_down(
    make_settings: MakeSettings, piper_voice: Any
) -> None:
    reports = Reports()
    speaker = build_tts(_hybrid(make_settings, f"{closed_port_url()}/v1"), piper_voice=piper_voice)
    report_fallbacks(reports, speaker)
    frames = [a.frame async for a in speaker.synthesize("Your appointment is on Tuesday at three.")]
    await speaker.aclose()

    assert frames and all(f.sample_rate == 8000 for f in frames)
    assert speech_seconds(frames_pcm(frames)) > 1.0  # Piper's voice
    assert reports.calls == [("fallback", DEEPGRAM_TTS_DOWN)]


async def test_hybrid_tts_stream_switches_to_local_piper_when_deepgram_answers_500(
    make_settings: MakeSettings, piper_voice: Any
) -> None:
    reports = Reports()
    async with FakeDeepgram(key="dg-test") as dg:
        dg.fail = "http_500"
        speaker = build_tts(_hybrid(make_settings, dg.base_url), piper_voice=piper_voice)
        report_fallbacks(reports, speaker)
        stream = speaker.stream()  # as the session speaks an LLM's reply, sentence by sentence
        stream.push_text("Your appointment is on Tuesday at three. ")
        stream.push_text("Anything else?")
        stream.end_input()
        frames = [a.frame async for a in stream]
        await stream.aclose()
        await speaker.aclose()

    assert frames and all(f.sample_rate == 8000 for f in frames)
    assert speech_seconds(frames_pcm(frames)) > 1.5
    assert dg.requests[0].path == "/v1/speak" and dg.requests[0].method == "GET"
    assert reports.calls[0] == ("fallback", DEEPGRAM_TTS_DOWN)


async def test_local_first_serves_from_local_whisper_and_never_calls_the_api(
    make_settings: MakeSettings, silero_vad: Any, whisper_model: Any, utterance: Any
) -> None:
    reports = Reports()
    async with FakeDeepgram(key="dg-test", transcript="never heard") as dg:
        settings = _hybrid(make_settings, dg.base_url, PHONEAGENT_FALLBACK_ORDER="local_first")
        recognizer = build_stt(settings, vad=silero_vad, whisper_model=whisper_model)
        report_fallbacks(reports, recognizer)
        event = await recognizer.recognize(pcm_frames(utterance))
        await recognizer.aclose()

    assert "appointment" in event.alternatives[0].text.lower()
    assert dg.requests == [] and reports.calls == []


async def test_a_provider_that_recovers_is_reported_available_again(
    make_settings: MakeSettings, silero_vad: Any, whisper_model: Any, utterance: Any
) -> None:
    reports = Reports()
    async with FakeDeepgram(key="dg-test", transcript="booked for tuesday") as dg:
        dg.fail = "http_500"
        settings = _hybrid(make_settings, dg.base_url)
        recognizer = build_stt(settings, vad=silero_vad, whisper_model=whisper_model)
        report_fallbacks(reports, recognizer)
        await recognizer.recognize(pcm_frames(utterance))
        dg.fail = None
        # the next turn is still served locally while a probe finds Deepgram back in the background
        await recognizer.recognize(pcm_frames(utterance))
        await reports.wait_for({**DEEPGRAM_STT_DOWN, "available": True})
        event = await recognizer.recognize(pcm_frames(utterance))
        await recognizer.aclose()

    assert [d["available"] for _, d in reports.calls] == [False, True]
    assert event.alternatives[0].text == "booked for tuesday"  # Deepgram serves again
