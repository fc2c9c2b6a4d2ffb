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


def load_or_create_token(path: Path, nbytes: int = 32) -> str:
    """A random token generated once into ``path`` (0600). Written to a temporary file and linked into
    place, so a process starting at the same moment reads either nothing or the whole token."""
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(nbytes))
    try:
        os.link(tmp, path)  # fails if another process got there first: theirs wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()
