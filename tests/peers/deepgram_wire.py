"""Deepgram's wire format on 127.0.0.1, as livekit-plugins-deepgram uses it.

- ``GET /v1/listen`` (websocket, ``Authorization: Token <key>``): binary linear16 audio in;
  ``SpeechStarted`` on the first audio, and a final ``Results`` (``is_final``, ``speech_final``) for
  what came so far on ``{"type": "Finalize"}``; ``CloseStream`` ends it. ``KeepAlive`` is ignored.
- ``POST /v1/listen`` (pre-recorded): a WAV body in, ``{"metadata", "results": {"channels": ...}}`` out.
- ``GET /v1/speak`` (websocket): ``Speak`` text messages, then ``Flush`` → binary audio at the
  requested ``sample_rate`` and ``{"type": "Flushed"}``; ``Close`` ends it.
- ``POST /v1/speak`` (REST): ``{"text"}`` in, raw linear16 audio out.

The transcript is the one the fake is given (it recognises nothing); the audio it speaks is a tone,
about as long as the text would take to say.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from tests.peers.local_server import LocalServer, seconds_for, tone


def _words(transcript: str) -> list[dict[str, Any]]:
    out = []
    for i, w in enumerate(transcript.split()):
        bare = w.strip(".,?!").lower()
        out.append(
            {"word": bare, "punctuated_word": w, "start": 0.3 * i, "end": 0.3 * i + 0.25, "confidence": 0.98}
        )
    return out


def _alternative(transcript: str) -> dict[str, Any]:
    return {"transcript": transcript, "confidence": 0.98, "words": _words(transcript)}


class FakeDeepgram(LocalServer):
    def __init__(self, *, key: str, transcript: str = "") -> None:
        super().__init__()
        self.key = key
        self.transcript = transcript
        self.app.router.add_get("/v1/listen", self._listen_ws)
        self.app.router.add_post("/v1/listen", self._listen_rest)
        self.app.router.add_get("/v1/speak", self._speak_ws)
        self.app.router.add_post("/v1/speak", self._speak_rest)

    @property
    def base_url(self) -> str:
        """What DEEPGRAM_BASE_URL is set to (the plugins add /listen and /speak)."""
        return f"{self.url}/v1"

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Token {self.key}"

    async def _refusal(self, request: web.Request, *, websocket: bool) -> web.StreamResponse | None:
        """401 for a wrong key; else the failure asked for (a websocket fails after its upgrade)."""
        if not self._authorized(request):
            return web.json_response({"err_code": "INVALID_AUTH"}, status=401)
        if websocket and self.fail == "close":
            return None
        return await self.failure(request)

    async def _open_ws(self, request: web.Request) -> web.StreamResponse:
        """The refusal, or the upgraded socket (already closed when asked to fail by closing)."""
        refused = await self._refusal(request, websocket=True)
        if refused is not None:
            return refused
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if self.fail == "close":
            await ws.close(code=1011, message=b"fake provider failure")
        return ws

    async def _listen_ws(self, request: web.Request) -> web.StreamResponse:
        rec = self.record(request)
        ws = await self._open_ws(request)
        if not isinstance(ws, web.WebSocketResponse) or ws.closed:
            return ws
        started = False
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                rec.audio_bytes += len(msg.data)
                if not started:
                    started = True
                    await ws.send_json({"type": "SpeechStarted", "channel": [0], "timestamp": 0.0})
            elif msg.type == WSMsgType.TEXT:
                kind = json.loads(msg.data).get("type")
                if kind == "Finalize" and started:
                    await ws.send_json(self._live_result(rec))
                elif kind == "CloseStream":
                    await ws.send_json({"type": "Metadata", "request_id": uuid.uuid4().hex})
                    break
        await ws.close()
        return ws

    def _live_result(self, rec: Any) -> dict[str, Any]:
        rate = int(rec.query.get("sample_rate", "16000"))
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "start": 0.0,
            "duration": rec.audio_bytes / 2 / rate,
            "is_final": True,
            "speech_final": True,
            "from_finalize": True,
            "channel": {"alternatives": [_alternative(self.transcript)]},
            "metadata": {"request_id": uuid.uuid4().hex, "model_info": {"name": rec.query.get("model")}},
        }

    async def _listen_rest(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.record(request, audio_bytes=len(body))
        refused = await self._refusal(request, websocket=False)
        if refused is not None:
            return refused
        return web.json_response(
            {
                "metadata": {"request_id": uuid.uuid4().hex},
                "results": {"channels": [{"alternatives": [_alternative(self.transcript)]}]},
            }
        )

    def _speech(self, request: web.Request, text: str) -> bytes:
        assert request.query.get("encoding", "linear16") == "linear16", "the fake speaks linear16 only"
        rate = int(request.query.get("sample_rate", "24000"))
        return tone(seconds_for(text), rate).tobytes()

    async def _speak_rest(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.record(request, body=body)
        refused = await self._refusal(request, websocket=False)
        if refused is not None:
            return refused
        return web.Response(body=self._speech(request, body["text"]), content_type="audio/l16")

    async def _speak_ws(self, request: web.Request) -> web.StreamResponse:
        rec = self.record(request)
        ws = await self._open_ws(request)
        if not isinstance(ws, web.WebSocketResponse) or ws.closed:
            return ws
        await ws.send_json({"type": "Metadata", "request_id": uuid.uuid4().hex})
        text, sequence = "", 0
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if data.get("type") == "Speak":
                text += data["text"]
            elif data.get("type") == "Flush":
                rec.body.setdefault("texts", []).append(text)
                audio = self._speech(request, text) if text.strip() else b""
                for i in range(0, len(audio), 3200):
                    await ws.send_bytes(audio[i : i + 3200])
                await ws.send_json({"type": "Flushed", "sequence_id": sequence})
                text, sequence = "", sequence + 1
            elif data.get("type") == "Close":
                break
        await ws.close()
        return ws
