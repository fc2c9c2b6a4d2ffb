"""Start, watch and stop the stack's processes: Redis, livekit-server, livekit-sip.

``up`` starts only what is not already running, checks every port first (a taken port names the
process holding it), and waits for each service's health check with a deadline; a service that
dies during start raises with its own last log lines. ``down`` stops only processes whose pid file
``up`` wrote, after checking the pid still belongs to that program.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import string
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from phoneagent.config import Settings
from phoneagent.errors import PortInUseError, ServiceStartError
from phoneagent.stack import install, ports
from phoneagent.stack.paths import StackPaths, template
from phoneagent.stack.secrets import StackSecrets, load_or_create
from phoneagent.stack.versions import APT_BUILD, APT_RUNTIME, LIVEKIT_SERVER, LIVEKIT_SIP

log = logging.getLogger("phoneagent.stack")

Progress = Callable[[str], None]


@dataclass
class Service:
    name: str
    argv: list[str]
    health: Callable[[], bool]
    tcp_ports: list[int] = field(default_factory=list)
    udp_ports: list[int] = field(default_factory=list)


@dataclass
class ServiceState:
    name: str
    pid: int | None
    running: bool
    healthy: bool
    log: Path


def _http_ok(url: str, *, also: tuple[int, ...] = ()) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except urllib.error.HTTPError as exc:
        return exc.code in also
    except (urllib.error.URLError, OSError):
        return False


def _redis_ok(host: str, port: int, password: str) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            data = b""
            deadline = time.monotonic() + 2
            while b"PONG" not in data and time.monotonic() < deadline:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            return b"+PONG" in data
    except OSError:
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = StackPaths.from_settings(settings)

    # ---- configuration -------------------------------------------------------------------------

    def secrets(self) -> StackSecrets:
        return load_or_create(self.paths.secrets)

    def _render(self, relative: str, out_name: str, secrets: StackSecrets) -> Path:
        urls = [f"http://{self.settings.bind_host}:{self.settings.api_port}/webhooks/livekit",
                *self.settings.extra_webhook_urls]  # fmt: skip
        values = {
            **{k: str(v) for k, v in self.settings.model_dump().items()},
            **secrets.__dict__,
            "state_dir": str(self.paths.state),
            "webhook_urls": "\n".join(f"    - {u}" for u in urls),
        }
        text = string.Template(template(relative).read_text()).substitute(values)
        out = self.paths.conf / out_name
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # configs hold secrets
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return out

    def services(self, *, install_missing: bool = False) -> list[Service]:
        s = self.settings
        sec = self.secrets()
        if install_missing:
            install.ensure_apt({**APT_RUNTIME, **APT_BUILD})
            lk_bin = install.ensure_go_binary(LIVEKIT_SERVER, self.paths)
            sip_bin = install.ensure_go_binary(LIVEKIT_SIP, self.paths)
        else:
            lk_bin, sip_bin = self.paths.binary(LIVEKIT_SERVER), self.paths.binary(LIVEKIT_SIP)
        redis_conf = self._render("deploy/redis.conf.tmpl", "redis.conf", sec)
        lk_conf = self._render("deploy/livekit.yaml.tmpl", "livekit.yaml", sec)
        sip_conf = self._render("sip/livekit-sip.yaml.tmpl", "livekit-sip.yaml", sec)
        host = s.bind_host
        return [
            Service(
                name="redis",
                argv=["/usr/bin/redis-server", str(redis_conf)],
                health=lambda: _redis_ok(host, s.redis_port, sec.redis_password),
                tcp_ports=[s.redis_port],
            ),
            Service(
                name="livekit-server",
                argv=[str(lk_bin), "--config", str(lk_conf)],
                health=lambda: _http_ok(f"http://{host}:{s.livekit_port}/"),
                tcp_ports=[s.livekit_port, s.livekit_rtc_tcp_port],
                udp_ports=list(range(s.livekit_rtc_udp_start, s.livekit_rtc_udp_end + 1)),
            ),
            Service(
                name="livekit-sip",
                argv=[str(sip_bin), "--config", str(sip_conf)],
                # 429 is "up, but the machine's CPU is busy" (livekit-sip's own load report)
                health=lambda: _http_ok(f"http://{host}:{s.sip_health_port}/", also=(429,)),
                tcp_ports=[s.sip_port, s.sip_health_port],
                udp_ports=[s.sip_port, *range(s.sip_rtp_start, s.sip_rtp_end + 1)],
            ),
        ]

    # ---- pid files -----------------------------------------------------------------------------

    def _read_pid(self, svc: Service) -> int | None:
        """The pid from the service's pid file if that process is alive and is still our program."""
        pidfile = self.paths.pidfile(svc.name)
        try:
            data = json.loads(pidfile.read_text())
            pid = int(data["pid"])
            # compare executables, not command lines: redis rewrites its process title
            exe = os.readlink(f"/proc/{pid}/exe")
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            return None
        if exe != os.path.realpath(data.get("exe", "")):
            return None
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return None if state == "Z" else pid

    def _clear_stale(self, svc: Service, progress: Progress) -> None:
        pidfile = self.paths.pidfile(svc.name)
        if pidfile.exists() and self._read_pid(svc) is None:
            pidfile.unlink()
            progress(f"{svc.name}: removed a stale pid file (its process is gone)")

    # ---- lifecycle -----------------------------------------------------------------------------

    def _check_ports(self, svc: Service) -> None:
        host = self.settings.bind_host
        for proto, port_list in (("tcp", svc.tcp_ports), ("udp", svc.udp_ports)):
            for port in port_list:
                if not ports.is_free(host, port, proto):
                    raise PortInUseError(
                        f"{svc.name} needs {proto.upper()} port {port}, held by {ports.owner(port, proto)}",
                        hint=f"stop that process, or give {svc.name} another port (PHONEAGENT_* settings)",
                    )

    def _start(self, svc: Service, progress: Progress) -> None:
        self._check_ports(svc)
        logfile = self.paths.logfile(svc.name)
        logfile.parent.mkdir(parents=True, exist_ok=True)
        self.paths.run.mkdir(parents=True, exist_ok=True)
        with logfile.open("ab") as out:
            proc = subprocess.Popen(
                svc.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.paths.state,
                start_new_session=True,
            )
        self.paths.pidfile(svc.name).write_text(json.dumps({"pid": proc.pid, "exe": svc.argv[0]}))
        deadline = time.monotonic() + self.settings.health_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.paths.pidfile(svc.name).unlink(missing_ok=True)
                raise ServiceStartError(
                    f"{svc.name} exited with code {proc.returncode} during start; its last log lines:\n"
                    f"{_tail(logfile)}",
                    hint=f"full log: {logfile}",
                )
            if svc.health():
                progress(f"{svc.name}: up (pid {proc.pid})")
                return
            time.sleep(0.2)
        self._stop_pid(proc.pid)
        self.paths.pidfile(svc.name).unlink(missing_ok=True)
        raise ServiceStartError(
            f"{svc.name} did not become healthy within {self.settings.health_timeout_s:.0f} s; "
            f"its last log lines:\n{_tail(logfile)}",
            hint=f"full log: {logfile}",
        )

    def up(self, progress: Progress = print) -> None:
        started: list[Service] = []
        try:
            for svc in self.services(install_missing=True):
                self._clear_stale(svc, progress)
                pid = self._read_pid(svc)
                if pid is not None:
                    if not svc.health():
                        raise ServiceStartError(
                            f"{svc.name} is running (pid {pid}) but not healthy",
                            hint="run `phoneagent stack down` then `phoneagent stack up`",
                        )
                    progress(f"{svc.name}: already running (pid {pid})")
                    continue
                self._start(svc, progress)
                started.append(svc)
        except BaseException:
            for svc in reversed(started):  # leave nothing half-started behind
                self._stop(svc, progress)
            raise

    @staticmethod
    def _stop_pid(pid: int, timeout: float = 10.0) -> None:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            # reap it if it is our child, so it does not linger as a zombie
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:
                pass
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)

    def _stop(self, svc: Service, progress: Progress) -> None:
        pid = self._read_pid(svc)
        if pid is not None:
            self._stop_pid(pid)
            progress(f"{svc.name}: stopped (pid {pid})")
        self.paths.pidfile(svc.name).unlink(missing_ok=True)

    def down(self, progress: Progress = print) -> None:
        for svc in reversed(self.services()):
            self._stop(svc, progress)

    def status(self) -> list[ServiceState]:
        out = []
        for svc in self.services():
            pid = self._read_pid(svc)
            out.append(
                ServiceState(
                    name=svc.name,
                    pid=pid,
                    running=pid is not None,
                    healthy=pid is not None and svc.health(),
                    log=self.paths.logfile(svc.name),
                )
            )
        return out
