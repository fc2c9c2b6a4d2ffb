"""A real S3-compatible server for tests: MinIO built from its Go module (cached by pinned version,
like the stack's binaries), run on loopback with a throwaway data directory, stopped afterwards."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from phoneagent.stack import install
from phoneagent.stack.paths import StackPaths
from phoneagent.stack.versions import MINIO


class TempMinio:
    def __init__(self, paths: StackPaths, workdir: Path, port: int, host: str = "127.0.0.1") -> None:
        self.binary = install.ensure_go_binary(MINIO, paths)
        self.workdir, self.host, self.port = workdir, host, port
        self.access_key = "phoneagent-test"
        self.secret_key = secrets.token_urlsafe(24)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> TempMinio:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
            "HOME": str(self.workdir),  # its config and certs dir (~/.minio)
        }
        log = (self.workdir / "minio.log").open("wb")
        # the console gets an ephemeral loopback port: it is off (MINIO_BROWSER) but still binds one
        self.proc = subprocess.Popen(
            [
                str(self.binary),
                "server",
                str(data),
                "--address",
                f"{self.host}:{self.port}",
                "--console-address",
                f"{self.host}:0",
                "--quiet",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"minio exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/minio/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"minio not ready within {timeout} s: {self.log_tail()}")

    def log_tail(self) -> str:
        return (self.workdir / "minio.log").read_text(errors="replace")[-2000:]

    def make_bucket(self, name: str) -> None:
        from minio import Minio

        client = Minio(f"{self.host}:{self.port}", self.access_key, self.secret_key, secure=False)
        if not client.bucket_exists(name):
            client.make_bucket(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
