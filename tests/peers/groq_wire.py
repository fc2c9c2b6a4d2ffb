"""Groq's speech-to-text wire format on 127.0.0.1, as livekit-plugins-groq uses it.

Groq serves OpenAI's transcriptions API under ``/openai/v1``: ``POST /openai/v1/audio/transcriptions``
(multipart ``file`` WAV, ``model``, ``language``, ``response_format`` json; ``Authorization: Bearer
<key>``) → ``{"text", "x_groq": {"id"}}``. The fake is :class:`FakeOpenAI`'s transcriptions at that
path (with its failures on demand: ``http_500``, ``close``).
"""

from __future__ import annotations

import json
import uuid

from aiohttp import web

from tests.peers.openai_wire import FakeOpenAI


class FakeGroq(FakeOpenAI):
    def __init__(self, *, key: str, transcript: str = "") -> None:
        super().__init__(key=key, transcript=transcript)
        self.app.router.add_post("/openai/v1/audio/transcriptions", self._groq_transcriptions)

    @property
    def base_url(self) -> str:
        """What GROQ_BASE_URL is set to."""
        return f"{self.url}/openai/v1"

    async def _groq_transcriptions(self, request: web.Request) -> web.StreamResponse:
        resp = await self._transcriptions(request)
        if resp.status != 200 or not isinstance(resp, web.Response) or resp.body is None:
            return resp
        assert isinstance(resp.body, bytes)
        return web.json_response({**json.loads(resp.body), "x_groq": {"id": f"req_{uuid.uuid4().hex}"}})
