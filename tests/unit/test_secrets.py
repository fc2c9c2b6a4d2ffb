from __future__ import annotations

import stat
from pathlib import Path

from phoneagent.stack.secrets import load_or_create
from phoneagent.telephony.client import LiveKitCredentials


def test_secrets_are_generated_once_with_owner_only_permissions(tmp_path: Path) -> None:
    path = tmp_path / "state" / "secrets.json"
    first = load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create(path) == first
    assert first.livekit_api_key.startswith("API") and len(first.livekit_api_secret) >= 32
    assert first.redis_password != first.livekit_api_secret


def test_credentials_never_print_the_secret() -> None:
    creds = LiveKitCredentials(url="ws://127.0.0.1:7880", api_key="APIx", api_secret="s3cr3t-value")
    assert "s3cr3t-value" not in repr(creds)
