"""A webhook receiver for tests: a real HTTP server on loopback that keeps every request it gets,
checks each signature with the receiver helper users get (``phoneagent.webhooks.verify``), and
answers what the test tells it to (e.g. 503 until it is told to accept)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from phoneagent.webhooks import BadSignature, verify
from tests.peers.sip_phone import wait_until


@dataclass(frozen=True)
class Received:
    event_id: str
    event_type: str
    body: dict[str, Any]
    signature_ok: bool
    answered: int


class WebhookReceiver:
    def __init__(self, *, secret: str = "", host: str = "127.0.0.1") -> None:
        self.secret = secret
        self.status = 200  # what the next requests are answered
        self.received: list[Received] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                try:
                    verify(owner.secret, self.headers.get("phoneagent-signature", ""), raw)
                    ok = True
                except BadSignature:
                    ok = False
                status = owner.status
                with owner._lock:
                    owner.received.append(
                        Received(
                            self.headers.get("phoneagent-event-id", ""),
                            self.headers.get("phoneagent-event-type", ""),
                            json.loads(raw or b"{}"),
                            ok,
                            status,
                        )
                    )
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="webhooks")

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hooks"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if 200 <= r.answered < 300]

    def of_type(self, event_type: str) -> list[Received]:
        return [r for r in self.accepted() if r.event_type == event_type]

    def of_call(self, call_id: str, *, until: str = "call.ended", timeout: float = 30) -> dict[str, Any]:
        """The call's webhooks by type (each signed), once its ``until`` webhook has arrived."""

        def got() -> bool:
            return any(r.event_type == until and r.body["data"]["id"] == call_id for r in self.accepted())

        wait_until(got, timeout=timeout, what=f"the {until} webhook")
        mine = [r for r in self.accepted() if r.body["data"]["id"] == call_id]
        assert all(r.signature_ok for r in mine)
        return {r.event_type: r.body["data"] for r in mine}
