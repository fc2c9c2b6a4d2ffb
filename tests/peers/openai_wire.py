"""OpenAI's wire format on 127.0.0.1, as livekit-plugins-openai (and the openai SDK under it) use it.

One fake serves both kinds of server the worker talks to this way: OpenAI itself, and an
OpenAI-compatible server (faster-whisper-server, a Piper speech server, Ollama, vLLM).

- ``POST /v1/audio/transcriptions``: multipart (``file`` WAV, ``model``, ``language``,
  ``response_format``) → ``{"text"}``, or the ``verbose_json`` shape (``language``, ``duration``).
- ``POST /v1/audio/speech``: ``{"input", "model", "voice", "response_format", "stream_format"}`` →
  with ``sse=True`` (OpenAI) ``speech.audio.delta`` / ``speech.audio.done`` events of base64 24 kHz
  PCM; with ``sse=False`` (a compatible server, which ignores ``stream_format``) the audio itself:
  raw 24 kHz ``pcm``, or ``wav`` at the server's own rate (``wav_rate``, 22.05 kHz like Piper).
- ``POST /v1/chat/completions`` with ``stream: true``: ``chat.completion.chunk`` events, one per word
  of the reply, then a usage chunk and ``data: [DONE]``; or, while ``tool_calls`` holds one, that
  function call (``delta.tool_calls``, ``finish_reason: tool_calls``).
- ``POST /v1/chat/completions`` without ``stream`` (structured output: ``response_format``
  ``json_schema``, as the post-call extraction asks): one ``chat.completion``, whose message content
  is the next of ``answers`` (a string; or an int, answered as that HTTP status with OpenAI's error
  body), or ``reply`` when none is queued.

``key`` None accepts any key (local servers); otherwise a wrong ``Authorization: Bearer`` gets a 401.
"""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
import wave
from typing import Any

from aiohttp import web

from tests.peers.local_server import LocalServer, seconds_for, tone

OPENAI_PCM_RATE = 24000


def _wav(samples: bytes, rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples)
    return buf.getvalue()


class FakeOpenAI(LocalServer):
    def __init__(
        self,
        *,
        key: str | None = None,
        transcript: str = "",
        reply: str = "",
        sse: bool = True,
        wav_rate: int = 22050,
    ) -> None:
        super().__init__()
        self.key = key
        self.transcript = transcript
        self.reply = reply
        # queued tool calls: each chat request answers the next one, then text again
        self.tool_calls: list[tuple[str, dict[str, Any]]] = []
        # queued answers to non-streaming chat requests: content, or an HTTP status to fail with
        self.answers: list[str | int] = []
        self.sse = sse
        self.wav_rate = wav_rate
        self.app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        self.app.router.add_post("/v1/audio/speech", self._speech)
        self.app.router.add_post("/v1/chat/completions", self._chat)

    @property
    def base_url(self) -> str:
        """What OPENAI_BASE_URL, WHISPER_LOCAL_URL, PIPER_URL or LOCAL_LLM_URL is set to."""
        return f"{self.url}/v1"

    async def _refusal(self, request: web.Request) -> web.StreamResponse | None:
        if self.key is not None and request.headers.get("Authorization") != f"Bearer {self.key}":
            return web.json_response(
                {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}},
                status=401,
            )
        return await self.failure(request)

    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        with wave.open(io.BytesIO(upload.file.read())) as w:
            rate, frames = w.getframerate(), w.getnframes()
        fields = {k: str(v) for k, v in form.items() if k != "file"}
        self.record(request, body={**fields, "wav_rate": rate}, audio_bytes=frames * 2)
        refused = await self._refusal(request)
        if refused is not None:
            return refused
        if fields.get("response_format") == "verbose_json":
            return web.json_response(
                {
                    "task": "transcribe",
                    "language": "english",
                    "duration": frames / rate,
                    "text": self.transcript,
                    "segments": [],
                }
            )
        return web.json_response({"text": self.transcript})

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.record(request, body=body)
        refused = await self._refusal(request)
        if refused is not None:
            return refused
        seconds = seconds_for(body["input"])
        fmt = body.get("response_format", "mp3")
        if self.sse and body.get("stream_format") == "sse":
            assert fmt == "pcm", "the fake streams pcm only"
            pcm = tone(seconds, OPENAI_PCM_RATE).tobytes()
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for i in range(0, len(pcm), 4800):
                event = {"type": "speech.audio.delta", "audio": base64.b64encode(pcm[i : i + 4800]).decode()}
                await resp.write(f"data: {json.dumps(event)}\n\n".encode())
            done = {"type": "speech.audio.done", "usage": {"input_tokens": 5, "output_tokens": 50}}
            await resp.write(f"data: {json.dumps(done)}\n\n".encode())
            await resp.write_eof()
            return resp
        if fmt == "pcm":
            return web.Response(body=tone(seconds, OPENAI_PCM_RATE).tobytes(), content_type="audio/pcm")
        if fmt == "wav":
            audio = _wav(tone(seconds, self.wav_rate).tobytes(), self.wav_rate)
            return web.Response(body=audio, content_type="audio/wav")
        return web.json_response({"error": {"message": f"the fake has no {fmt}"}}, status=400)

    def _chunk(self, cid: str, model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def _completion(self, body: dict[str, Any]) -> web.StreamResponse:
        answer = self.answers.pop(0) if self.answers else self.reply
        if isinstance(answer, int):
            kind = "server_error" if answer >= 500 else "invalid_request_error"
            return web.json_response(
                {"error": {"message": f"HTTP {answer} (fake)", "type": kind}}, status=answer
            )
        return web.json_response(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer, "refusal": None},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30},
            }
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.record(request, body=body)
        refused = await self._refusal(request)
        if refused is not None:
            return refused
        if body.get("stream") is not True:
            return self._completion(body)
        cid, model = f"chatcmpl-{uuid.uuid4().hex[:12]}", body["model"]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def send(data: object) -> None:
            await resp.write(f"data: {json.dumps(data)}\n\n".encode())

        if self.tool_calls:  # the model calls a tool instead of answering (once per queued call)
            name, args = self.tool_calls.pop(0)
            call = {
                "index": 0,
                "id": f"call_{uuid.uuid4().hex[:8]}",
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            await send(
                self._chunk(cid, model, {"role": "assistant", "content": None, "tool_calls": [call]}, None)
            )
            await send(
                self._chunk(
                    cid,
                    model,
                    {"tool_calls": [{"index": 0, "function": {"arguments": json.dumps(args)}}]},
                    None,
                )
            )
            await send(self._chunk(cid, model, {}, "tool_calls"))
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            return resp
        await send(self._chunk(cid, model, {"role": "assistant", "content": ""}, None))
        words = self.reply.split(" ")
        for i, word in enumerate(words):
            await send(self._chunk(cid, model, {"content": word if i == 0 else f" {word}"}, None))
        await send(self._chunk(cid, model, {}, "stop"))
        usage = {"prompt_tokens": 20, "completion_tokens": len(words), "total_tokens": 20 + len(words)}
        await send(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [],
                "usage": usage,
            }
        )
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
