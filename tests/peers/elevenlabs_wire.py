"""ElevenLabs' text-to-speech wire format on 127.0.0.1, as livekit-plugins-elevenlabs uses it.

- ``GET /v1/text-to-speech/{voice_id}/multi-stream-input`` (websocket, ``xi-api-key: <key>``,
  ``model_id`` and ``output_format`` in the query): per ``context_id``, an opening ``{"text": " "}``,
  then ``{"text", "context_id", "flush"?}`` messages and ``{"context_id", "close_context": true}``.
  On a flush or the close, the text so far is spoken: ``{"audio": <base64>, "contextId"}`` messages
  of raw PCM at the ``pcm_<rate>`` asked for; after the close, ``{"isFinal": true, "contextId"}``.
- ``POST /v1/text-to-speech/{voice_id}/stream?output_format=pcm_<rate>``: ``{"text", "model_id"}`` in,
  the raw PCM out (``audio/pcm``).

Failing on demand: ``http_500`` refuses the request (the websocket's upgrade too); ``close`` takes the
request and drops the connection in the middle of it (a websocket once the first words have come, so
the plugin has a sentence in flight). The audio is a tone as long as the text would take to say.
"""

from __future__ import annotations

import base64
import json

from aiohttp import WSMsgType, web

from tests.peers.local_server import LocalServer, Recorded, seconds_for, tone


def pcm_rate(output_format: str) -> int:
    kind, _, rate = output_format.partition("_")
    assert kind == "pcm", f"the fake speaks raw pcm only, not {output_format}"
    return int(rate)


class FakeElevenLabs(LocalServer):
    def __init__(self, *, key: str) -> None:
        super().__init__()
        self.key = key
        self.app.router.add_get("/v1/text-to-speech/{voice}/multi-stream-input", self._multi_stream)
        self.app.router.add_post("/v1/text-to-speech/{voice}/stream", self._stream_rest)

    @property
    def base_url(self) -> str:
        """What ELEVENLABS_BASE_URL is set to."""
        return f"{self.url}/v1"

    async def _refusal(self, request: web.Request) -> web.StreamResponse | None:
        if request.headers.get("xi-api-key") != self.key:
            return web.json_response({"detail": {"status": "invalid_api_key"}}, status=401)
        if self.fail == "http_500":
            return await self.failure(request)
        return None

    def _speech(self, rec: Recorded, text: str) -> bytes:
        return tone(seconds_for(text.strip()), pcm_rate(rec.query["output_format"])).tobytes()

    async def _stream_rest(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        rec = self.record(request, body=body)
        refused = await self._refusal(request) or await self.failure(request)
        if refused is not None:
            return refused
        return web.Response(body=self._speech(rec, body["text"]), content_type="audio/pcm")

    async def _multi_stream(self, request: web.Request) -> web.StreamResponse:
        rec = self.record(request)
        refused = await self._refusal(request)
        if refused is not None:
            return refused
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        texts: dict[str, str] = {}
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            ctx = data["context_id"]
            if data.get("close_context"):
                await self._speak(ws, rec, ctx, texts.pop(ctx, ""))
                await ws.send_json({"isFinal": True, "contextId": ctx})
                continue
            texts[ctx] = texts.get(ctx, "") + data.get("text", "")
            if texts[ctx].strip():
                rec.body.setdefault("texts", []).append(data["text"])
                if self.fail == "close":  # a sentence in flight, and the provider goes away
                    await ws.close(code=1011, message=b"fake provider failure")
                    break
            if data.get("flush"):
                await self._speak(ws, rec, ctx, texts.pop(ctx, ""))
        await ws.close()
        return ws

    async def _speak(self, ws: web.WebSocketResponse, rec: Recorded, ctx: str, text: str) -> None:
        if not text.strip():
            return
        audio = self._speech(rec, text)
        for i in range(0, len(audio), 3200):
            chunk = base64.b64encode(audio[i : i + 3200]).decode()
            await ws.send_json({"audio": chunk, "contextId": ctx, "isFinal": None})
