"""AssemblyAI's streaming speech-to-text wire format (v3) on 127.0.0.1, as livekit-plugins-assemblyai
uses it.

- ``GET /v3/ws?sample_rate=<hz>&encoding=pcm_s16le&speech_model=<model>&...`` (websocket,
  ``Authorization: <key>``, the key itself): ``{"type": "Begin", "id", "expires_at"}`` first; binary
  audio in; ``{"type": "SpeechStarted", "timestamp"}`` on the first audio; the turn's
  ``{"type": "Turn", "end_of_turn": true, "transcript", "words"}`` on ``{"type": "ForceEndpoint"}``
  or ``{"type": "Terminate"}`` (the latter then ``{"type": "Termination"}``, and the socket closes).

The transcript is the one the fake is given (it recognises nothing). Failing on demand:
``http_500`` refuses the upgrade; ``close`` takes the stream and drops it once audio has come (the
caller's turn is under way).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from tests.peers.local_server import LocalServer, Recorded


class FakeAssemblyAI(LocalServer):
    def __init__(self, *, key: str, transcript: str = "") -> None:
        super().__init__()
        self.key = key
        self.transcript = transcript
        self.app.router.add_get("/v3/ws", self._stream)

    @property
    def base_url(self) -> str:
        """What ASSEMBLYAI_BASE_URL is set to (the worker gives the plugin its ws:// form)."""
        return self.url

    def _turn(self, rec: Recorded) -> dict[str, Any]:
        words = [
            {"text": w, "start": 300 * i, "end": 300 * i + 250, "confidence": 0.97, "word_is_final": True}
            for i, w in enumerate(self.transcript.split())
        ]
        return {
            "type": "Turn",
            "turn_order": 0,
            "end_of_turn": True,
            "end_of_turn_confidence": 0.9,
            "turn_is_formatted": False,
            "transcript": self.transcript,
            "utterance": "",
            "words": words,
        }

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        rec = self.record(request)
        if request.headers.get("Authorization") != self.key:
            return web.json_response({"error": "Unauthorized"}, status=401)
        if self.fail == "http_500":
            return await self.failure(request) or web.Response(status=500)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "Begin", "id": str(uuid.uuid4()), "expires_at": int(time.time()) + 600})
        started = False
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                rec.audio_bytes += len(msg.data)
                if self.fail == "close":  # the turn is under way, and the provider goes away
                    await ws.close(code=1011, message=b"fake provider failure")
                    break
                if not started:
                    started = True
                    await ws.send_json({"type": "SpeechStarted", "timestamp": 0})
            elif msg.type == WSMsgType.TEXT:
                kind = json.loads(msg.data).get("type")
                rec.body.setdefault("messages", []).append(kind)
                if kind in ("ForceEndpoint", "Terminate") and started:
                    await ws.send_json(self._turn(rec))
                if kind == "Terminate":
                    seconds = rec.audio_bytes / 2 / int(rec.query["sample_rate"])
                    await ws.send_json(
                        {
                            "type": "Termination",
                            "audio_duration_seconds": seconds,
                            "session_duration_seconds": seconds,
                        }
                    )
                    break
        await ws.close()
        return ws
