"""`phoneagent doctor`: the state of every part, one line each, and what to do about what is wrong."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import stat
import subprocess

from phoneagent.config import Settings
from phoneagent.errors import PhoneagentError
from phoneagent.stack import install, ports
from phoneagent.stack.services import Stack
from phoneagent.stack.versions import APT_BUILD, APT_RUNTIME, APT_TEST, GO_BINARIES, MIN_GO, TEST_GO_BINARIES

OK, WARN, BAD = "ok  ", "warn", "FAIL"


def _pkg_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


class Report:
    """The doctor's lines, one per part, and how many of them are failures."""

    def __init__(self) -> None:
        self.failures = 0

    def row(self, level: str, what: str, detail: str) -> None:
        self.failures += level == BAD
        print(f"[{level}] {what:<28} {detail}")


def run_doctor(settings: Settings) -> int:
    report = Report()
    stack = Stack(settings)
    _check_python(report)
    _check_build_tools(report)
    _check_binaries(report, stack)
    _check_speech(report, settings)
    _check_stack(report, settings, stack)
    _check_host(report)
    failures = report.failures
    print("\n" + ("everything needed is in place" if failures == 0 else f"{failures} problem(s) above"))
    return 0 if failures == 0 else 1


def _check_python(report: Report) -> None:
    report.row(OK, "python", platform.python_version())
    for pkg in ("livekit-agents", "livekit-api", "fastapi", "sqlalchemy", "piper-tts", "faster-whisper"):
        v = _pkg_version(pkg)
        level = OK if v else (WARN if pkg in ("piper-tts", "faster-whisper") else BAD)
        report.row(level, pkg, v or "not installed (uv sync --all-extras)")


def _check_build_tools(report: Report) -> None:
    gv = install.go_version()
    if gv is None:
        report.row(BAD, "go", f"not found: install Go >= {MIN_GO[0]}.{MIN_GO[1]} to build LiveKit")
    else:
        report.row(OK if gv >= MIN_GO else BAD, "go", f"{gv[0]}.{gv[1]}")
    for group, pkgs in (("runtime", APT_RUNTIME), ("build", APT_BUILD), ("tests", APT_TEST)):
        missing = install.missing_apt(pkgs)
        level = OK if not missing else (WARN if group == "tests" else BAD)
        report.row(
            level,
            f"debian packages ({group})",
            "all installed"
            if not missing
            else "missing: " + " ".join(missing) + "  (apt-get install " + " ".join(missing) + ")",
        )


def _check_binaries(report: Report, stack: Stack) -> None:
    for spec in GO_BINARIES:
        path = stack.paths.binary(spec)
        report.row(
            OK if path.is_file() else WARN,
            spec.key,
            str(path) if path.is_file() else "not built yet (`phoneagent stack up` builds it)",
        )
    for spec in TEST_GO_BINARIES:
        path = stack.paths.binary(spec)
        missing = "not built yet (the tests that use it build it: MinIO, Helm, promtool, Prometheus)"
        report.row(OK if path.is_file() else WARN, spec.key, str(path) if path.is_file() else missing)


def _check_speech(report: Report, settings: Settings) -> None:
    from phoneagent.speech import models, providers

    for what, loader in (("piper voice", "piper_voice_files"), ("whisper model", "whisper_model_dir")):
        try:
            found = getattr(models, loader)()
            report.row(OK, what, str(getattr(found, "model", getattr(found, "path", ""))))
        except PhoneagentError as exc:
            report.row(WARN, what, str(exc))
    try:
        providers.check(settings)
        shown = providers.describe(settings)
        report.row(OK, f"speech ({settings.agent_mode})", f"stt: {shown['stt']}; tts: {shown['tts']}")
    except PhoneagentError as exc:
        report.row(BAD, f"speech ({settings.agent_mode})", str(exc))


def _check_stack(report: Report, settings: Settings, stack: Stack) -> None:
    if stack.paths.secrets.exists():
        mode = stat.S_IMODE(stack.paths.secrets.stat().st_mode)
        report.row(OK if mode == 0o600 else BAD, "stack secrets", f"{stack.paths.secrets} mode {mode:o}")
    states = stack.status()
    for st in states:
        if st.healthy:
            report.row(OK, st.name, f"healthy, pid {st.pid}")
        elif st.running:
            report.row(BAD, st.name, f"running but unhealthy, pid {st.pid}; see {st.log}")
        else:
            report.row(WARN, st.name, "stopped (`phoneagent stack up`)")
    pids = {st.name: st.pid for st in states}
    for svc in stack.services():
        for proto, plist in (("tcp", svc.tcp_ports), ("udp", svc.udp_ports)):
            for port in plist:
                _check_port(report, settings, svc.name, pids[svc.name], proto, port)
        for pool in svc.udp_pools:
            _check_pool(report, settings, svc.name, pool)


def _check_port(
    report: Report, settings: Settings, service: str, pid: int | None, proto: str, port: int
) -> None:
    if ports.is_free(settings.bind_host, port, proto):
        report.row(OK, f"{proto}/{port}", f"free ({service})")
        return
    holder = ports.owner(port, proto)
    ours = pid is not None and holder.startswith(f"pid {pid} ")
    report.row(
        OK if ours else BAD,
        f"{proto}/{port}",
        f"in use by {holder}" + ("" if ours else f": {service} cannot start"),
    )


def _check_pool(report: Report, settings: Settings, service: str, pool: range) -> None:
    """A per-call UDP range: held ports are calls of the service or other processes' sockets; it
    cannot take a call only when every one is held."""
    held = len(ports.held(settings.bind_host, pool))
    level = BAD if held == len(pool) else OK
    span = f"udp/{pool.start}-{pool.stop - 1}"
    report.row(level, span, f"{len(pool) - held} of {len(pool)} free ({service})")


def _check_host(report: Report) -> None:
    baresip = shutil.which("baresip")
    if baresip:
        out = subprocess.run([baresip, "-h"], capture_output=True, text=True, check=False)
        first = (out.stdout or out.stderr).splitlines()[:1]
        report.row(OK, "baresip", first[0] if first else baresip)
    else:
        missing = "not installed (apt-get install baresip-core): needed to place test calls"
        report.row(WARN, "baresip", missing)
    if os.geteuid() != 0:
        report.row(WARN, "user", "not root: missing Debian packages must be installed with sudo")
