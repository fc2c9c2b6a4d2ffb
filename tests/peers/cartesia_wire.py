"""Cartesia's text-to-speech wire format on 127.0.0.1, as livekit-plugins-cartesia uses it.

- ``GET /tts/websocket?cartesia_version=<date>`` (websocket, ``X-API-Key: <key>``): generation
  requests ``{"context_id", "transcript", "continue", "model_id", "voice": {"mode": "id", "id"},
  "output_format": {"container": "raw", "encoding": "pcm_s16le", "sample_rate"}, "language"}``;
  each transcript is spoken as ``{"type": "chunk", "data": <base64>, "done": false, "context_id"}``
  messages, and ``{"type": "done", "done": true, "context_id"}`` follows ``"continue": false``.
- ``POST /tts/bytes`` (``X-API-Key``, ``Cartesia-Version``): the same options and ``transcript`` in,
  the raw PCM out.

Failing on demand: ``http_500`` refuses the request (the websocket's upgrade too); ``close`` takes the
request and drops the connection in the middle of it (a websocket once the first words have come).
The audio is a tone as long as the text would take to say.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import WSMsgType, web

from tests.peers.local_server import LocalServer, seconds_for, tone


def _speech(options: dict[str, Any], text: str) -> bytes:
    fmt = options["output_format"]
    assert (fmt["container"], fmt["encoding"]) == ("raw", "pcm_s16le"), "the fake speaks raw pcm only"
    return tone(seconds_for(text.strip()), int(fmt["sample_rate"])).tobytes()


class FakeCartesia(LocalServer):
    def __init__(self, *, key: str) -> None:
        super().__init__()
        self.key = key
        self.app.router.add_get("/tts/websocket", self._websocket)
        self.app.router.add_post("/tts/bytes", self._bytes)

    @property
    def base_url(self) -> str:
        """What CARTESIA_BASE_URL is set to."""
        return self.url

    async def _refusal(self, request: web.Request) -> web.StreamResponse | None:
        if request.headers.get("X-API-Key") != self.key:
            return web.json_response({"error": "invalid API key"}, status=401)
        if self.fail == "http_500":
            return await self.failure(request)
        return None

    async def _bytes(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.record(request, body=body)
        refused = await self._refusal(request) or await self.failure(request)
        if refused is not None:
            return refused
        return web.Response(body=_speech(body, body["transcript"]), content_type="audio/pcm")

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        rec = self.record(request)
        refused = await self._refusal(request)
        if refused is not None:
            return refused
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            ctx, text = data["context_id"], data.get("transcript", "")
            rec.body.setdefault("requests", []).append(data)
            if text.strip():
                if self.fail == "close":  # a sentence in flight, and the provider goes away
                    await ws.close(code=1011, message=b"fake provider failure")
                    break
                audio = _speech(data, text)
                for i in range(0, len(audio), 3200):
                    chunk = base64.b64encode(audio[i : i + 3200]).decode()
                    await ws.send_json({"type": "chunk", "data": chunk, "done": False, "context_id": ctx})
            if data.get("continue") is False:
                await ws.send_json({"type": "done", "done": True, "status_code": 206, "context_id": ctx})
        await ws.close()
        return ws
