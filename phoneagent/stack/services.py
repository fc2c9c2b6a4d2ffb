"""Start, watch and stop the stack's processes: Redis, livekit-server, livekit-sip, egress.

``up`` starts only what is not already running, checks every port first (a taken port names the
process holding it), and waits for each service's health check with a deadline (also for one that
runs already: after Redis was restarted, egress takes a moment to subscribe again); a service that
dies during start raises with its own last log lines. ``down`` stops only processes whose pid file
``up`` wrote, after checking the pid still belongs to that program. A service that died is started
again by the next ``up`` (its stale pid file is removed first).

egress re-executes itself (``egress run-handler``, found on PATH) for every recording, in a session of
its own: stopping it sends SIGINT (finish the recordings now, then exit) and afterwards ends any
handler the service left behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from phoneagent.config import Settings
from phoneagent.errors import PortInUseError, ServiceStartError
from phoneagent.private import private_dir
from phoneagent.stack import install, ports, public
from phoneagent.stack.paths import StackPaths, template
from phoneagent.stack.secrets import StackSecrets, load_or_create
from phoneagent.stack.versions import APT_BUILD, APT_RUNTIME, EGRESS, LIVEKIT_SERVER, LIVEKIT_SIP

log = logging.getLogger("phoneagent.stack")

Progress = Callable[[str], None]


@dataclass
class Service:
    name: str
    argv: list[str]
    health: Callable[[], bool]
    tcp_ports: list[int] = field(default_factory=list)
    udp_ports: list[int] = field(default_factory=list)
    # UDP ranges it takes a port from per call (WebRTC, RTP), trying the next one when a port is
    # held: it cannot start only when another process holds every port of one
    udp_pools: list[range] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # added to the environment it starts with
    stop_signal: int = signal.SIGTERM
    prepare: Callable[[], None] | None = None  # runs before each start (e.g. clear a scratch dir)
    after_stop: Callable[[], None] | None = None  # runs after it was stopped
    host: str = ""  # where its ports are checked; empty: the stack's bind_host


@dataclass
class ServiceState:
    name: str
    pid: int | None
    running: bool
    healthy: bool
    log: Path


def _fresh_dir(path: Path, link: Path | None = None) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    if link is not None:
        link.unlink(missing_ok=True)
        link.symlink_to(path, target_is_directory=True)


def _drop_dir(path: Path, link: Path | None = None) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if link is not None and link.is_symlink():
        link.unlink(missing_ok=True)


# egress binds Unix sockets at $TMPDIR/<NE_ or EGH_ id>/<name>_ipc.sock; a socket path has at most 107
# bytes, so a scratch dir deep in the file system is reached through a short symlink in /tmp
_SOCKET_ROOM = len("/EGH_xxxxxxxxxxxx/handler_ipc.sock") + 8


def _egress_tmpdir(scratch: Path) -> Path | None:
    """A short name for egress's scratch dir when its own path leaves no room for socket names."""
    if len(str(scratch)) + _SOCKET_ROOM <= 107:
        return None
    tag = hashlib.sha256(str(scratch).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"phoneagent-egress-{tag}"


def _http_ok(url: str) -> bool:
    try:
        status = httpx.get(url, timeout=2, trust_env=False).status_code
    except httpx.HTTPError:
        return False
    return status == 200


def sip_options_ok(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether a SIP server answers an OPTIONS on ``host:port`` (UDP) with 200 OK: livekit-sip's
    health, asked on its own signalling port (its HTTP health server would bind every interface)."""
    tag = uuid.uuid4().hex
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect((host, port))
            local_host, local_port = sock.getsockname()[:2]
            request = (
                f"OPTIONS sip:health@{host}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {local_host}:{local_port};branch=z9hG4bK{tag[:16]};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:stack@{local_host}>;tag={tag[16:24]}\r\n"
                f"To: <sip:health@{host}:{port}>\r\n"
                f"Call-ID: {tag}@phoneagent\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            sock.send(request.encode())
            answer = sock.recv(4096)
    except OSError:  # nothing listening (ICMP refused), or no answer in time
        return False
    return answer.startswith(b"SIP/2.0 200") and tag.encode() in answer


def _redis(host: str, port: int, password: str) -> redis.Redis:
    # short timeouts and no retries: a health check asks once, and the caller polls
    return redis.Redis(
        host=host,
        port=port,
        password=password,
        socket_timeout=2,
        socket_connect_timeout=2,
        retry=Retry(NoBackoff(), retries=0),
    )


def _redis_ok(host: str, port: int, password: str) -> bool:
    try:
        with _redis(host, port, password) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def _redis_subscribed(host: str, port: int, password: str, pattern: str) -> bool:
    """Whether some client is subscribed to a Redis channel matching ``pattern`` (PUBSUB CHANNELS)."""
    try:
        with _redis(host, port, password) as client:
            return len(client.pubsub_channels(pattern)) > 0
    except redis.RedisError:
        return False


# egress subscribes to this psrpc channel on the Redis bus once it takes recording requests (and
# only while it runs: Redis drops the subscription when its connection closes)
EGRESS_TOPIC = "EgressInternal|StartEgress|REQ"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def _end_strays(procs: list[psutil.Process], grace_s: float = 5.0) -> None:
    """End what is left of a stopped service's children: SIGTERM, then SIGKILL after ``grace_s``."""
    alive = [p for p in procs if p.is_running()]
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _gone, left = psutil.wait_procs(alive, timeout=grace_s)
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()


def loopback_values(settings: Settings) -> dict[str, str]:
    """The local stack's values for the template placeholders that a production render sets otherwise
    (:mod:`phoneagent.stack.deploy_render`): every address is ``bind_host``, no public-IP lookup."""
    host = settings.bind_host
    return {
        "listen_host": host,  # where livekit-server, livekit-sip and Redis listen
        "livekit_ws_url": settings.livekit_url,  # how livekit-sip and egress reach livekit-server
        "redis_host": host,
        "livekit_use_external_ip": "false",
        "livekit_loopback_candidate": "true",
        "livekit_stun_server": f"{host}:{settings.livekit_rtc_tcp_port}",
    }


EMPTY_LINE = re.compile(r"^\$\{(\w+)\}\n", re.MULTILINE)


def _on(port: int) -> list[int]:
    """An optional port (0: off) as a list of the ports to check before a start."""
    return [port] if port else []


class Stack:
    """The stack on one machine. ``only`` names the services this instance runs (all by default): a
    second node of a cluster runs livekit-server and livekit-sip against the first node's Redis."""

    def __init__(self, settings: Settings, *, only: Collection[str] | None = None) -> None:
        self.settings = settings
        self.paths = StackPaths.from_settings(settings)
        self.only = frozenset(only) if only is not None else None

    # ---- configuration -------------------------------------------------------------------------

    def secrets(self) -> StackSecrets:
        """The stack's generated secrets, each replaced by one read from its file (a secret store)."""
        generated = load_or_create(self.paths.secrets)
        given = {
            name: value
            for name in ("livekit_api_key", "livekit_api_secret", "redis_password")
            if (value := self.settings.file_secret(name)) is not None
        }
        return dataclasses.replace(generated, **given)

    def _render(self, name: str, out_name: str, secrets: StackSecrets) -> Path:
        urls = [
            f"http://{self.settings.bind_host}:{self.settings.api_port}/webhooks/livekit",
            *self.settings.extra_webhook_urls,
        ]
        values = {
            **{k: str(v) for k, v in self.settings.model_dump().items()},
            **secrets.__dict__,
            **loopback_values(self.settings),
            "state_dir": str(self.paths.state),
            "webhook_urls": "\n".join(f"    - {u}" for u in urls),
            **public.render_values(self.settings),
        }
        # a line holding only a placeholder that is empty (an optional block left out) is dropped
        source = EMPTY_LINE.sub(lambda m: "" if values.get(m[1]) == "" else m[0], template(name).read_text())
        text = string.Template(source).substitute(values)
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
            egress_bin = install.ensure_go_binary(EGRESS, self.paths)
        else:
            lk_bin, sip_bin = self.paths.binary(LIVEKIT_SERVER), self.paths.binary(LIVEKIT_SIP)
            egress_bin = self.paths.binary(EGRESS)
        egress_tmp = self.paths.state / "egress"
        egress_link = _egress_tmpdir(egress_tmp)
        redis_conf = self._render("redis.conf.tmpl", "redis.conf", sec)
        lk_conf = self._render("livekit.yaml.tmpl", "livekit.yaml", sec)
        public.check_tls_files(s)
        sip_conf = self._render("livekit-sip.yaml.tmpl", "livekit-sip.yaml", sec)
        egress_conf = self._render("egress.yaml.tmpl", "egress.yaml", sec)
        host, sip_host = s.bind_host, public.sip_reach_host(s)
        every = [
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
                tcp_ports=[s.livekit_port, *_on(s.livekit_prometheus_port)],
                udp_pools=[range(s.livekit_rtc_udp_start, s.livekit_rtc_udp_end + 1)],
            ),
            Service(
                name="livekit-sip",
                argv=[str(sip_bin), "--config", str(sip_conf)],
                health=lambda: sip_options_ok(sip_host, s.sip_port),
                tcp_ports=[s.sip_port, *([s.sip_tls_port] if s.sip_tls else []), *_on(s.sip_prometheus_port)],
                udp_ports=[s.sip_port],
                udp_pools=[range(s.sip_rtp_start, s.sip_rtp_end + 1)],
                env=public.sip_env(s),
                host=sip_host,
            ),
            Service(
                name="egress",
                argv=[str(egress_bin), "--config", str(egress_conf)],
                health=lambda: _redis_subscribed(host, s.redis_port, sec.redis_password, EGRESS_TOPIC),
                # the service runs `egress run-handler` from PATH; TMPDIR holds its IPC sockets and
                # per-recording scratch dirs (egress never removes them: cleared before each start)
                env={
                    "PATH": f"{egress_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}",
                    "TMPDIR": str(egress_link or egress_tmp),
                },
                tcp_ports=_on(s.egress_prometheus_port),
                stop_signal=signal.SIGINT,
                prepare=lambda: _fresh_dir(egress_tmp, egress_link),
                after_stop=lambda: _drop_dir(egress_tmp, egress_link),
            ),
        ]
        if self.only is None:
            return every
        unknown = self.only - {svc.name for svc in every}
        if unknown:
            raise ValueError(f"no stack service {', '.join(sorted(unknown))}")
        return [svc for svc in every if svc.name in self.only]

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

    def _check_ports(self, svc: Service, progress: Progress) -> None:
        host = svc.host or self.settings.bind_host
        for proto, port_list in (("tcp", svc.tcp_ports), ("udp", svc.udp_ports)):
            for port in port_list:
                if not ports.is_free(host, port, proto):
                    raise PortInUseError(
                        f"{svc.name} needs {proto.upper()} port {port}, held by {ports.owner(port, proto)}",
                        hint=f"stop that process, or give {svc.name} another port (PHONEAGENT_* settings)",
                    )
        for pool in svc.udp_pools:
            held = ports.held(host, pool)
            if not held:
                continue
            span = f"UDP ports {pool.start}-{pool.stop - 1}"
            # the range is inside Linux's ephemeral ports (32768-60999 by default): any process's
            # outgoing UDP socket may sit on one of them for a while
            owners = ", ".join(sorted({ports.owner(port, "udp") for port in held[:5]}))
            if len(held) == len(pool):
                raise PortInUseError(
                    f"{svc.name} needs one of its {span}, every one is held (by {owners})",
                    hint=f"stop that process, or give {svc.name} another port range (PHONEAGENT_* settings)",
                )
            progress(f"{svc.name}: {len(held)} of its {span} held by {owners}; it uses the others")

    def _start(self, svc: Service, progress: Progress) -> None:
        self._check_ports(svc, progress)
        logfile = self.paths.logfile(svc.name)
        logfile.parent.mkdir(parents=True, exist_ok=True)
        self.paths.run.mkdir(parents=True, exist_ok=True)
        if svc.prepare is not None:
            svc.prepare()
        with logfile.open("ab") as out:
            proc = subprocess.Popen(
                svc.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.paths.state,
                start_new_session=True,
                env={**os.environ, **svc.env},
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
        # keys, configs with secrets, logs: the owner's only (also narrows an older install's 0755)
        private_dir(self.paths.state)
        try:
            for svc in self.services(install_missing=True):
                self._clear_stale(svc, progress)
                pid = self._read_pid(svc)
                if pid is not None:
                    self._wait_healthy(svc, pid)
                    progress(f"{svc.name}: already running (pid {pid})")
                    continue
                self._start(svc, progress)
                started.append(svc)
        except BaseException:
            for svc in reversed(started):  # leave nothing half-started behind
                self._stop(svc, progress)
            raise

    def _wait_healthy(self, svc: Service, pid: int) -> None:
        """A running service gets the health timeout to become healthy: one that lost a dependency
        this ``up`` just started again (egress after Redis) is reconnecting."""
        deadline = time.monotonic() + self.settings.health_timeout_s
        while not svc.health():
            if time.monotonic() > deadline:
                raise ServiceStartError(
                    f"{svc.name} is running (pid {pid}) but not healthy",
                    hint="run `phoneagent stack down` then `phoneagent stack up`",
                )
            time.sleep(0.2)

    @staticmethod
    def _stop_pid(pid: int, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
        # children that left the process group (egress's handlers run in sessions of their own)
        strays = _descendants(pid)
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            _end_strays(strays)
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            # reap it if it is our child, so it does not linger as a zombie
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            except ChildProcessError:
                pass
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        _end_strays(strays)

    def _stop(self, svc: Service, progress: Progress) -> None:
        pid = self._read_pid(svc)
        if pid is not None:
            self._stop_pid(pid, sig=svc.stop_signal)
            progress(f"{svc.name}: stopped (pid {pid})")
            if svc.after_stop is not None:
                svc.after_stop()
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
