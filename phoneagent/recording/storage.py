"""Where finished recordings live: a local directory or an S3-compatible bucket.

A recording's *location* says which: a path relative to the recordings directory
(``<tenant>/<call>.ogg``), or ``s3://<bucket>/<key>``. Locations are kept as written, so a recording
made before the storage setting changed is still served (and deleted) from where it is.

S3 goes through the ``minio`` client (install extra ``s3``); its errors become phoneagent errors here
and nowhere else, without the credentials.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from phoneagent.config import Settings
from phoneagent.errors import ConfigError, NotFound, StorageError

log = logging.getLogger("phoneagent.recordings")

S3_SCHEME = "s3://"


def is_s3(location: str) -> bool:
    return location.startswith(S3_SCHEME)


def object_name(tenant_id: str, call_id: str, suffix: str = ".ogg") -> str:
    """The recording's name inside its store: one folder per tenant."""
    return f"{tenant_id}/{call_id}{suffix}"


@dataclass(frozen=True)
class ObjectRange:
    """An object's bytes (all, or one range) as the S3 server answered them."""

    status: int  # 200 or 206
    size: int  # the whole object
    start: int
    end: int  # inclusive
    chunks: Iterator[bytes]
    content_type: str


class S3Store:
    """Recordings in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, ...)."""

    def __init__(self, settings: Settings) -> None:
        try:
            from minio import Minio
        except ImportError:
            raise ConfigError(
                "recording_storage=s3 needs the S3 client (minio)",
                hint="install the extra: uv sync --extra s3 (or pip install 'phoneagent[s3]')",
            ) from None
        endpoint = settings.s3_endpoint or f"https://s3.{settings.s3_region}.amazonaws.com"
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"s3_endpoint {endpoint!r} is not http(s)://host[:port]")
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix.strip("/")
        self._client = Minio(
            parts.netloc,
            access_key=settings.s3_access_key or None,
            secret_key=settings.s3_secret_key.get_secret_value() or None,
            secure=parts.scheme == "https",
            region=settings.s3_region,
        )

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _split(self, location: str) -> tuple[str, str]:
        bucket, _, key = location.removeprefix(S3_SCHEME).partition("/")
        if not bucket or not key:
            raise NotFound("this call has no recording")
        return bucket, key

    def put(self, src: Path, name: str, content_type: str = "audio/ogg") -> str:
        key = self._key(name)
        try:
            self._client.fput_object(self.bucket, key, str(src), content_type=content_type)
        except Exception as exc:  # noqa: BLE001 - minio raises S3Error, urllib3 and OS errors alike
            raise StorageError(f"upload to s3://{self.bucket}/{key} failed: {_describe(exc)}") from None
        return f"{S3_SCHEME}{self.bucket}/{key}"

    def size(self, location: str) -> int | None:
        """The object's size, or None when there is no such object."""
        from minio.error import S3Error

        bucket, key = self._split(location)
        try:
            return int(self._client.stat_object(bucket, key).size or 0)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NoSuchBucket"):
                return None
            raise StorageError(f"cannot read {location}: {_describe(exc)}") from None
        except Exception as exc:  # noqa: BLE001
            raise StorageError(f"cannot read {location}: {_describe(exc)}") from None

    def read(self, location: str, byte_range: tuple[int, int] | None) -> ObjectRange:
        """The object's bytes, or the inclusive range ``(start, end)`` of them (already checked)."""
        size = self.size(location)
        if size is None:
            raise NotFound("this call's recording is gone from storage")
        bucket, key = self._split(location)
        start, end = byte_range or (0, size - 1)
        kwargs: dict[str, Any] = {"offset": start, "length": end - start + 1} if byte_range else {}
        try:
            resp = self._client.get_object(bucket, key, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise StorageError(f"cannot read {location}: {_describe(exc)}") from None

        def chunks() -> Iterator[bytes]:
            try:
                yield from resp.stream(64 * 1024)
            finally:
                resp.close()
                resp.release_conn()

        ctype = resp.headers.get("content-type") or "audio/ogg"
        return ObjectRange(206 if byte_range else 200, size, start, end, chunks(), ctype)

    def delete(self, location: str) -> None:
        """Remove the object; one that is not there any more is fine."""
        bucket, key = self._split(location)
        try:
            self._client.remove_object(bucket, key)
        except Exception as exc:  # noqa: BLE001
            raise StorageError(f"cannot delete {location}: {_describe(exc)}") from None


def _describe(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    text = f"{code}: {getattr(exc, 'message', '')}" if code else type(exc).__name__
    return re.sub(r"\s+", " ", text)[:200]


class LocalStore:
    """Recordings as files under the recordings directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, src: Path, name: str) -> str:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.resolve() != target.resolve():
            shutil.move(src, target)
        return name

    def delete(self, location: str) -> None:
        path = Path(location)
        path = path if path.is_absolute() else self.root / path
        if path.resolve().is_relative_to(self.root.resolve()):
            path.unlink(missing_ok=True)


def store_for(settings: Settings) -> S3Store | LocalStore:
    """The store new recordings go to."""
    if settings.recording_storage == "s3":
        return S3Store(settings)
    return LocalStore(settings.recordings_path)


def delete_location(settings: Settings, location: str) -> None:
    """Delete a recording wherever its location says it is."""
    if is_s3(location):
        if not settings.s3_bucket:
            raise StorageError(f"{location} is in S3 storage, which is not set up (PHONEAGENT_S3_*)")
        S3Store(settings).delete(location)
    else:
        LocalStore(settings.recordings_path).delete(location)
