"""The worker's shared speech models over their Unix socket: one host, many job processes' requests
at once; words and speech come back as in-process models give them, a repeated line from the cache,
a cancelled request that has not started is dropped, and a host that is gone is a clear error."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from phoneagent.errors import SharedModelsError
from phoneagent.speech.shared import ModelHost, SharedModels, read_frame, send_frame
from phoneagent.speech.whisper_stt import WhisperOptions, hypotheses_blocking
from tests.peers.voices import caller_speech
from tests.peers.wer import score

pytestmark = pytest.mark.unit


@pytest.fixture
async def host() -> AsyncIterator[tuple[ModelHost, Path]]:
    path = Path(tempfile.mkdtemp(prefix="pa-")) / "speech.sock"  # short: a Unix socket path is 108 bytes
    models = ModelHost(whisper_workers=1)
    await models.load(["tiny.en"], ["en_US-joe-medium"])
    serving = asyncio.create_task(models.serve(path))
    await asyncio.wait_for(models.listening.wait(), 10)
    yield models, path
    serving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await serving


def _utterance(text: str, piper_voice: object) -> np.ndarray:
    pcm = caller_speech(text, piper_voice)  # 8 kHz G.711, as a phone sends it
    return np.repeat(pcm, 2).astype(np.float32) / 32768.0  # crude 16 kHz is enough for Whisper here


async def test_two_calls_get_their_words_and_speech(
    host: tuple[ModelHost, Path], piper_voice: object
) -> None:
    models, path = host
    a, b = SharedModels(path), SharedModels(path)
    said = ["What are your opening hours?", "I would like to book an appointment."]
    # the caller's voice varies from one synthesis to the next (Piper's noise): tiny.en misheard
    # "appointment" in about 1 of 40 of them, so the words are checked against the model's own
    audio = [_utterance(text, piper_voice) for text in said]
    try:
        heard = await asyncio.gather(
            a.transcribe(audio[0], WhisperOptions()), b.transcribe(audio[1], WhisperOptions())
        )
        model = await models._whisper_model(WhisperOptions().model)  # the host's model, in this process
        assert list(heard) == [hypotheses_blocking(model, x, WhisperOptions()) for x in audio]  # none swapped
        for text, texts in zip(said, heard, strict=True):
            assert score(text, texts[0]).wer <= 0.5, (text, texts)
        first = b"".join([pcm async for pcm in a.stream("Thank you for calling.")])
        again = b"".join([pcm async for pcm in b.stream("Thank you for calling.")])
        assert len(first) > 8000 * 2 // 2 and again == first  # over half a second of 8 kHz speech
        stats = await a.stats()
        assert stats["served"]["cache_hits"] == 1 and stats["served"]["transcribe"] == 2
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_cancelled_request_that_waits_is_dropped(
    host: tuple[ModelHost, Path], piper_voice: object
) -> None:
    models, path = host
    audio = _utterance("Can I schedule a booking for Monday?", piper_voice).tobytes()
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        # one Whisper thread: the second waits behind the first when its cancel arrives
        options = asdict(WhisperOptions())
        for rid in (1, 2):
            await send_frame(writer, {"id": rid, "op": "transcribe", "options": options}, audio)
        await send_frame(writer, {"op": "cancel", "target": 2})
        await send_frame(writer, {"id": 3, "op": "stats"})
        replies = {}
        for _ in range(3):
            header, _payload = await asyncio.wait_for(read_frame(reader), 30)
            replies[header["id"]] = header
        assert replies[2] == {"id": 2, "ok": False, "error": "cancelled"}
        assert "monday" in replies[1]["texts"][0].lower()
        assert replies[3]["served"]["cancelled"] == 1
        assert models.served["transcribe"] == 1
    finally:
        writer.close()


async def test_a_host_that_is_not_there_is_a_clear_error(tmp_path: Path) -> None:
    client = SharedModels(Path(tempfile.mkdtemp(prefix="pa-")) / "nobody.sock")
    with pytest.raises(SharedModelsError, match="not answering"):
        await client.transcribe(np.zeros(16000, dtype=np.float32), WhisperOptions())
