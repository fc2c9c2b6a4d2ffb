"""The agent profile for a call, fetched from the control plane at job start.

The dispatch rule puts ``{"agent_profile_id": ...}`` in the job's metadata. Profiles are cached per
process for a minute. When the control plane cannot be reached, the worker uses the last copy it has,
or else the built-in defaults, and says so in the log: a call is never refused for this.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger("phoneagent.worker")

TTL_S = 60.0


@dataclass(frozen=True)
class Profile:
    id: str | None
    greeting: str
    script: dict[str, Any] = field(default_factory=dict)
    source: str = "defaults"  # control-plane | cache | defaults
    max_duration_s: int = 1800
    silence_timeout_s: int = 20
    tools: tuple[str, ...] = ("end_call",)
    llm: dict[str, Any] = field(default_factory=dict)
    stt: dict[str, Any] = field(default_factory=dict)
    tts: dict[str, Any] = field(default_factory=dict)
    language: str = "en"
    recording: bool = False


class ProfileCache:
    def __init__(self, *, url: str, token: str, default_greeting: str) -> None:
        self._url = url.rstrip("/")
        self._token = token
        self._default = Profile(id=None, greeting=default_greeting)
        self._cache: dict[str, tuple[float, Profile]] = {}

    @staticmethod
    def profile_id(job_metadata: str) -> str | None:
        try:
            value = json.loads(job_metadata or "{}").get("agent_profile_id")
        except (ValueError, AttributeError):
            return None
        return str(value) if value else None

    async def get(self, profile_id: str | None) -> Profile:
        if profile_id is None:
            return self._default
        cached = self._cache.get(profile_id)
        if cached and time.monotonic() - cached[0] < TTL_S:
            return cached[1]
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                resp = await client.get(
                    f"{self._url}/webhooks/worker/agents/{profile_id}",
                    headers={"Authorization": f"Bearer {self._token}"},
                )
                resp.raise_for_status()
                data = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            fallback = Profile(**{**cached[1].__dict__, "source": "cache"}) if cached else self._default
            log.warning(
                "agent profile unavailable from the control plane; using %s",
                fallback.source,
                extra={"agent_profile_id": profile_id, "error": type(exc).__name__},
            )
            return fallback
        llm = data.get("llm") or {}
        profile = Profile(
            id=profile_id,
            greeting=data.get("greeting") or self._default.greeting,
            script=llm.get("script") or {},
            source="control-plane",
            max_duration_s=int(data.get("max_duration_s") or Profile.max_duration_s),
            silence_timeout_s=int(data.get("silence_timeout_s") or Profile.silence_timeout_s),
            tools=tuple(data.get("tools") or ()),
            llm=llm,
            stt=data.get("stt") or {},
            tts=data.get("tts") or {},
            language=data.get("language") or "en",
            recording=bool(data.get("recording")),
        )
        self._cache[profile_id] = (time.monotonic(), profile)
        return profile
