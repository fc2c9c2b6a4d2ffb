"""API providers falling back to API providers within one turn: ElevenLabs, Cartesia, AssemblyAI
and Groq each fail in the middle of a request (against a local server speaking its wire format), and
the FallbackAdapter hands the same sentence or the rest of the caller's turn to the next provider of
``PHONEAGENT_{STT,TTS}_FALLBACK_PROVIDERS``: audio and a transcript still come out, and the change
reaches the worker's ``report`` function as a fallback event."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
from livekit.agents import stt, utils

from phoneagent.config import Settings
from phoneagent.speech.fallbacks import report_fallbacks
from phoneagent.speech.providers import build_stt, build_tts
from tests.peers.assemblyai_wire import FakeAssemblyAI
from tests.peers.cartesia_wire import FakeCartesia
from tests.peers.elevenlabs_wire import FakeElevenLabs
from tests.peers.groq_wire import FakeGroq
from tests.peers.openai_wire import FakeOpenAI
from tests.peers.voices import caller_speech
from tests.peers.wav import pcm_frames, silence
from tests.unit.test_more_provider_wire_formats import AGENT, CALLER, assert_speaks, final_of, spoken
from tests.unit.test_provider_fallback import Reports

MakeSettings = Callable[..., Settings]


@pytest.fixture(autouse=True)
async def http_session() -> AsyncIterator[None]:
    async with utils.http_context.open():
        yield


@pytest.fixture(scope="module")
def utterance(piper_voice: Any) -> Any:
    return caller_speech("I would like to book an appointment for Tuesday.", piper_voice)


def down(component: str, provider: str, model: str) -> tuple[str, dict[str, Any]]:
    return ("fallback", {"component": component, "provider": provider, "model": model, "available": False})


def _tts_settings(make_settings: MakeSettings, el: FakeElevenLabs, ca: FakeCartesia, order: str) -> Settings:
    first, then = order.split(",")
    return make_settings(
        AGENT_MODE="api",
        PHONEAGENT_TTS_PROVIDER=first,
        PHONEAGENT_TTS_FALLBACK_PROVIDERS=then,
        ELEVENLABS_API_KEY="el-test",
        ELEVENLABS_BASE_URL=el.base_url,
        CARTESIA_API_KEY="ca-test",
        CARTESIA_BASE_URL=ca.base_url,
    )


async def test_elevenlabs_dropping_its_socket_mid_sentence_hands_the_sentence_to_cartesia_in_the_same_turn(
    make_settings: MakeSettings,
) -> None:
    reports = Reports()
    async with FakeElevenLabs(key="el-test") as el, FakeCartesia(key="ca-test") as ca:
        el.fail = "close"
        speaker = build_tts(_tts_settings(make_settings, el, ca, "elevenlabs,cartesia"), piper_voice=None)
        assert report_fallbacks(reports, speaker) == 1
        audio = await spoken(speaker, AGENT)  # one reply, as the session speaks it
        await speaker.aclose()

    assert_speaks(audio, AGENT)  # the whole sentence, in Cartesia's voice
    # ElevenLabs had the sentence when its socket went: the failure was in the middle of the request
    assert " ".join(el.requests[0].body["texts"]).split() == AGENT.split()
    said = "".join(r["transcript"] for r in ca.requests[0].body["requests"])
    assert said.split() == AGENT.split()
    assert reports.calls == [down("tts", "elevenlabs", "eleven_flash_v2_5")]


async def test_cartesia_dropping_its_socket_mid_sentence_hands_the_sentence_to_elevenlabs_in_the_same_turn(
    make_settings: MakeSettings,
) -> None:
    reports = Reports()
    async with FakeElevenLabs(key="el-test") as el, FakeCartesia(key="ca-test") as ca:
        ca.fail = "close"
        speaker = build_tts(_tts_settings(make_settings, el, ca, "cartesia,elevenlabs"), piper_voice=None)
        report_fallbacks(reports, speaker)
        audio = await spoken(speaker, AGENT)
        await speaker.aclose()

    assert_speaks(audio, AGENT)
    assert ca.requests[0].body["requests"][0]["transcript"].strip()  # it had words when it went
    assert " ".join(el.requests[0].body["texts"]).split() == AGENT.split()
    assert reports.calls == [down("tts", "cartesia", "sonic-3")]


async def test_assemblyai_dropping_its_stream_mid_turn_hands_the_rest_of_the_turn_to_groq(
    make_settings: MakeSettings, silero_vad: object, utterance: np.ndarray
) -> None:
    reports = Reports()
    async with (
        FakeAssemblyAI(key="aai-test", transcript="never heard") as aai,
        FakeGroq(key="gsk-test", transcript=CALLER) as groq,
    ):
        aai.fail = "close"
        settings = make_settings(
            AGENT_MODE="api",
            PHONEAGENT_STT_PROVIDER="assemblyai",
            PHONEAGENT_STT_FALLBACK_PROVIDERS="groq",
            ASSEMBLYAI_API_KEY="aai-test",
            ASSEMBLYAI_BASE_URL=aai.base_url,
            GROQ_API_KEY="gsk-test",
            GROQ_BASE_URL=groq.base_url,
        )
        recognizer = build_stt(settings, vad=silero_vad, whisper_model=None)  # type: ignore[arg-type]
        report_fallbacks(reports, recognizer)
        stream = recognizer.stream()  # what the session holds for the whole call
        # the caller's turn begins; AssemblyAI takes its first audio and drops the stream
        for frame in pcm_frames(silence(0.3)):
            stream.push_frame(frame)
        await reports.wait_for(down("stt", "assemblyai", "universal-3-6-pro")[1])
        # the rest of the turn reaches Groq in the same stream (the VAD cuts it for the request)
        for frame in pcm_frames(np.concatenate([utterance, silence(1.0)])):
            stream.push_frame(frame)
        finals = [e for e in await final_of(stream) if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT]
        await stream.aclose()
        await recognizer.aclose()

    assert finals[0].alternatives[0].text == CALLER  # Groq's, not AssemblyAI's "never heard"
    assert aai.requests[0].audio_bytes > 0  # the stream failed after its audio began
    utterance_s = utterance.size / 8000
    heard_s = groq.requests[0].audio_bytes / 2 / groq.requests[0].body["wav_rate"]
    assert heard_s > utterance_s * 0.8  # the turn's speech, whole enough, went to Groq


async def test_groq_answering_500_hands_the_same_utterance_to_openai_in_the_same_turn(
    make_settings: MakeSettings, silero_vad: object, utterance: np.ndarray
) -> None:
    # request/response STTs share one VAD cut: the utterance Groq failed on goes to OpenAI as is
    reports = Reports()
    async with (
        FakeGroq(key="gsk-test", transcript="never heard") as groq,
        FakeOpenAI(key="sk-test", transcript=CALLER) as oai,
    ):
        groq.fail = "http_500"
        settings = make_settings(
            AGENT_MODE="api",
            PHONEAGENT_STT_PROVIDER="groq",
            PHONEAGENT_STT_FALLBACK_PROVIDERS="openai",
            GROQ_API_KEY="gsk-test",
            GROQ_BASE_URL=groq.base_url,
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=oai.base_url,
        )
        recognizer = build_stt(settings, vad=silero_vad, whisper_model=None)  # type: ignore[arg-type]
        assert isinstance(recognizer, stt.StreamAdapter)
        report_fallbacks(reports, recognizer)
        stream = recognizer.stream()
        for frame in pcm_frames(np.concatenate([silence(0.3), utterance, silence(1.0)])):
            stream.push_frame(frame)
        finals = [e for e in await final_of(stream) if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT]
        await stream.aclose()
        await recognizer.aclose()

    assert finals[0].alternatives[0].text == CALLER
    # one utterance, the same audio to both: the caller says nothing twice
    assert groq.requests[0].audio_bytes == oai.requests[0].audio_bytes > 0
    assert reports.calls[0] == down("stt", "groq", "whisper-large-v3-turbo")
