"""The worker's agent profile: from job metadata, with a clear fallback when the control plane is down."""

from __future__ import annotations

import logging
import socket

import pytest
from aiohttp import web

from phoneagent.worker.profiles import ProfileCache
from tests.peers.local_server import LocalServer


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens here once the socket is closed


def test_profile_id_comes_from_job_metadata() -> None:
    assert ProfileCache.profile_id('{"agent_profile_id": "agt_1", "tenant_id": "t"}') == "agt_1"
    assert ProfileCache.profile_id("") is None
    assert ProfileCache.profile_id("not json") is None


async def test_control_plane_down_falls_back_to_defaults_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = ProfileCache(url=f"http://127.0.0.1:{_closed_port()}", token="t", default_greeting="Hi there.")
    with caplog.at_level(logging.WARNING, logger="phoneagent.worker"):
        profile = await cache.get("agt_1")
    assert (profile.greeting, profile.source) == ("Hi there.", "defaults")
    assert "agent profile unavailable from the control plane; using defaults" in caplog.text


async def test_no_profile_id_uses_defaults_without_asking() -> None:
    cache = ProfileCache(url="http://127.0.0.1:9", token="t", default_greeting="Hi.")
    assert (await cache.get(None)).source == "defaults"


async def test_the_profiles_llm_dict_reaches_the_worker_whole() -> None:
    brain = {"brain": "llm", "provider": "local", "script": {"intents": []}}
    server = LocalServer()

    async def agent(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer t"
        return web.json_response({"greeting": "Hi.", "llm": brain})

    server.app.router.add_get("/webhooks/worker/agents/agt_1", agent)
    async with server:
        profile = await ProfileCache(url=server.url, token="t", default_greeting="x").get("agt_1")
    assert (profile.llm, profile.script, profile.source) == (brain, {"intents": []}, "control-plane")
