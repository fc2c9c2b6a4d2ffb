"""The stack's secrets: LiveKit API key/secret and the Redis password, generated once, stored 0600."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StackSecrets:
    livekit_api_key: str
    livekit_api_secret: str
    redis_password: str


def load_or_create(path: Path) -> StackSecrets:
    if path.is_file():
        data = json.loads(path.read_text())
        return StackSecrets(**data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = StackSecrets(
        livekit_api_key="API" + secrets.token_hex(6),
        livekit_api_secret=secrets.token_urlsafe(32),
        redis_password=secrets.token_urlsafe(24),
    )
    # create with 0600 from the start: never a moment where the file is world-readable
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(fresh.__dict__, fh)
    return fresh
