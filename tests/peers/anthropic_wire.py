"""Anthropic's Messages API wire format on 127.0.0.1, as livekit-plugins-anthropic uses it.

``POST /v1/messages`` with ``stream: true`` and ``x-api-key``: server-sent events ``message_start``,
``content_block_start``, one ``content_block_delta`` (``text_delta``) per word of the reply,
``content_block_stop``, ``message_delta`` (stop reason, usage) and ``message_stop``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from tests.peers.local_server import LocalServer


class FakeAnthropic(LocalServer):
    def __init__(self, *, key: str, reply: str = "") -> None:
        super().__init__()
        self.key = key
        self.reply = reply
        self.app.router.add_post("/v1/messages", self._messages)

    @property
    def base_url(self) -> str:
        """What ANTHROPIC_BASE_URL is set to (the SDK adds /v1/messages)."""
        return self.url

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.record(request, body=body)
        if request.headers.get("x-api-key") != self.key:
            return web.json_response(
                {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
                status=401,
            )
        refused = await self.failure(request)
        if refused is not None:
            return refused
        assert body.get("stream") is True, "the plugin always streams"
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def send(event: str, data: dict[str, Any]) -> None:
            await resp.write(f"event: {event}\ndata: {json.dumps({'type': event, **data})}\n\n".encode())

        message = {
            "id": f"msg_{uuid.uuid4().hex[:12]}",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": body["model"],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 20, "output_tokens": 1},
        }
        await send("message_start", {"message": message})
        await send("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        for i, word in enumerate(self.reply.split(" ")):
            text = word if i == 0 else f" {word}"
            await send("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text}})
        await send("content_block_stop", {"index": 0})
        await send(
            "message_delta",
            {"delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 12}},
        )
        await send("message_stop", {})
        await resp.write_eof()
        return resp
