"""Secrets mounted as files (Kubernetes and Docker secrets): PHONEAGENT_<NAME>_FILE gives the value,
a bad file stops the start naming the setting, and the stack renders LiveKit's keys and the Redis
password from them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from phoneagent.config import Settings, get_settings
from phoneagent.errors import ConfigError
from phoneagent.stack.services import Stack
from phoneagent.telephony.client import livekit_credentials, worker_token

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PHONEAGENT_") or name.startswith("LIVEKIT_"):
            monkeypatch.delenv(name)


def _secret(tmp_path: Path, name: str, value: str) -> Path:
    path = tmp_path / "run-secrets" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(value)
    return path


def test_secrets_come_from_files_without_their_trailing_newline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = "postgresql://phoneagent:pw@db.internal/phoneagent"
    monkeypatch.setenv("PHONEAGENT_WORKER_SECRET_FILE", str(_secret(tmp_path, "worker", "w" * 40 + "\n")))
    monkeypatch.setenv("PHONEAGENT_SESSION_SECRET_FILE", str(_secret(tmp_path, "session", "s" * 40 + "\n")))
    monkeypatch.setenv("PHONEAGENT_DATABASE_URL_FILE", str(_secret(tmp_path, "db", db + "\n")))
    monkeypatch.setenv("PHONEAGENT_S3_SECRET_KEY_FILE", str(_secret(tmp_path, "s3", "minio-secret\n")))
    monkeypatch.setenv("PHONEAGENT_STATE_DIR", str(tmp_path / "state"))
    s = Settings(_env_file=None)
    assert s.worker_secret.get_secret_value() == "w" * 40
    assert s.session_secret.get_secret_value() == "s" * 40
    assert s.database_url == db
    assert s.s3_secret_key.get_secret_value() == "minio-secret"
    assert worker_token(s) == "w" * 40  # what workers send and the control plane expects
    assert not (tmp_path / "state" / "worker-secret").exists()  # no generated one beside it


def test_livekit_keys_from_files_are_what_clients_use_and_the_stack_renders(tmp_path: Path) -> None:
    s = Settings(
        _env_file=None,
        state_dir=tmp_path / "state",
        cache_dir=tmp_path / "cache",
        livekit_api_key_file=_secret(tmp_path, "lk-key", "APIfromstore\n"),
        livekit_api_secret_file=_secret(tmp_path, "lk-secret", "x" * 44 + "\n"),
        redis_password_file=_secret(tmp_path, "redis", "redis-from-store\n"),
    )
    creds = livekit_credentials(s)
    assert (creds.api_key, creds.api_secret) == ("APIfromstore", "x" * 44)
    stack = Stack(s)
    stack.services()
    lk = yaml.safe_load((stack.paths.conf / "livekit.yaml").read_text())
    sip = yaml.safe_load((stack.paths.conf / "livekit-sip.yaml").read_text())
    egress = yaml.safe_load((stack.paths.conf / "egress.yaml").read_text())
    assert lk["keys"] == {"APIfromstore": "x" * 44}
    for conf in (sip, egress):
        assert (conf["api_key"], conf["api_secret"]) == ("APIfromstore", "x" * 44)
    for conf in (lk, sip, egress):
        assert conf["redis"]["password"] == "redis-from-store"
    assert "requirepass redis-from-store" in (stack.paths.conf / "redis.conf").read_text()


def test_without_files_the_stack_generates_its_own_and_every_service_gets_them(tmp_path: Path) -> None:
    stack = Stack(Settings(_env_file=None, state_dir=tmp_path / "state", cache_dir=tmp_path / "cache"))
    stack.services()
    sec = stack.secrets()
    assert len(sec.redis_password) >= 24  # Redis AUTH is always on
    for name in ("livekit.yaml", "livekit-sip.yaml", "egress.yaml"):
        assert (
            yaml.safe_load((stack.paths.conf / name).read_text())["redis"]["password"] == sec.redis_password
        )


def test_a_missing_file_names_the_setting_and_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHONEAGENT_LIVEKIT_API_SECRET_FILE", str(tmp_path / "nowhere"))
    monkeypatch.setenv("PHONEAGENT_LIVEKIT_API_KEY_FILE", str(_secret(tmp_path, "k", "APIk")))
    get_settings.cache_clear()
    try:
        with pytest.raises(
            ConfigError, match=r"PHONEAGENT_LIVEKIT_API_SECRET_FILE: \S*nowhere does not exist"
        ):
            get_settings()
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    ("kind", "message"),
    [("empty", "is empty"), ("directory", "is a directory"), ("binary", "is not UTF-8 text")],
)
def test_an_unusable_file_is_refused(tmp_path: Path, kind: str, message: str) -> None:
    path = {
        "empty": _secret(tmp_path, "empty", "\n"),
        "directory": tmp_path,
        "binary": _secret(tmp_path, "bin", ""),
    }[kind]
    if kind == "binary":
        path.write_bytes(b"\xff\xfe\x00secret")
    with pytest.raises(ValueError, match=f"PHONEAGENT_WORKER_SECRET_FILE: .*{message}"):
        Settings(_env_file=None, worker_secret_file=path)


def test_a_value_and_its_file_at_once_are_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match="PHONEAGENT_WORKER_SECRET and PHONEAGENT_WORKER_SECRET_FILE are both set"
    ):
        Settings(_env_file=None, worker_secret="a" * 40, worker_secret_file=_secret(tmp_path, "w", "b" * 40))


def test_a_short_session_secret_from_a_file_is_refused_as_one_set_directly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        Settings(_env_file=None, session_secret_file=_secret(tmp_path, "s", "short"))


def test_a_livekit_key_file_without_its_secret_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        Settings(_env_file=None, livekit_api_key_file=_secret(tmp_path, "k", "APIk"))


def test_livekit_files_and_livekit_variables_at_once_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVEKIT_API_KEY", "APIenv")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "e" * 40)
    s = Settings(
        _env_file=None,
        state_dir=tmp_path,
        livekit_api_key_file=_secret(tmp_path, "k", "APIfile"),
        livekit_api_secret_file=_secret(tmp_path, "s", "f" * 40),
    )
    with pytest.raises(ConfigError, match="both set"):
        livekit_credentials(s)


def test_the_start_error_never_shows_the_secrets_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a model check's input is every setting given: the message must carry its reason only
    monkeypatch.setenv("PHONEAGENT_WORKER_SECRET", "visible-secret-value-" + "v" * 20)
    monkeypatch.setenv("PHONEAGENT_WORKER_SECRET_FILE", str(_secret(tmp_path, "w", "b" * 40)))
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError) as caught:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert "both set" in str(caught.value) and "visible-secret-value" not in str(caught.value)
