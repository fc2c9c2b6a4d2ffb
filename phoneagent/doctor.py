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


def run_doctor(settings: Settings) -> int:
    failures = 0

    def row(level: str, what: str, detail: str) -> None:
        nonlocal failures
        failures += level == BAD
        print(f"[{level}] {what:<28} {detail}")

    row(OK, "python", platform.python_version())
    for pkg in ("livekit-agents", "livekit-api", "fastapi", "sqlalchemy", "piper-tts", "faster-whisper"):
        v = _pkg_version(pkg)
        level = OK if v else (WARN if pkg in ("piper-tts", "faster-whisper") else BAD)
        row(level, pkg, v or "not installed (uv sync --all-extras)")

    gv = install.go_version()
    if gv is None:
        row(BAD, "go", f"not found: install Go >= {MIN_GO[0]}.{MIN_GO[1]} to build LiveKit")
    else:
        row(OK if gv >= MIN_GO else BAD, "go", f"{gv[0]}.{gv[1]}")

    for group, pkgs in (("runtime", APT_RUNTIME), ("build", APT_BUILD), ("tests", APT_TEST)):
        missing = install.missing_apt(pkgs)
        level = OK if not missing else (WARN if group == "tests" else BAD)
        row(
            level,
            f"debian packages ({group})",
            "all installed"
            if not missing
            else "missing: " + " ".join(missing) + "  (apt-get install " + " ".join(missing) + ")",
        )

    stack = Stack(settings)
    for spec in GO_BINARIES:
        path = stack.paths.binary(spec)
        row(
            OK if path.is_file() else WARN,
            spec.key,
            str(path) if path.is_file() else "not built yet (`phoneagent stack up` builds it)",
        )
    for spec in TEST_GO_BINARIES:
        path = stack.paths.binary(spec)
        missing = "not built yet (the recording storage tests build it)"
        row(OK if path.is_file() else WARN, spec.key, str(path) if path.is_file() else missing)

    for what, loader in (("piper voice", "piper_voice_files"), ("whisper model", "whisper_model_dir")):
        from phoneagent.speech import models

        try:
            found = getattr(models, loader)()
            row(OK, what, str(getattr(found, "model", getattr(found, "path", ""))))
        except PhoneagentError as exc:
            row(WARN, what, str(exc))

    from phoneagent.speech import providers

    try:
        providers.check(settings)
        shown = providers.describe(settings)
        row(OK, f"speech ({settings.agent_mode})", f"stt: {shown['stt']}; tts: {shown['tts']}")
    except PhoneagentError as exc:
        row(BAD, f"speech ({settings.agent_mode})", str(exc))

    if stack.paths.secrets.exists():
        mode = stat.S_IMODE(stack.paths.secrets.stat().st_mode)
        row(OK if mode == 0o600 else BAD, "stack secrets", f"{stack.paths.secrets} mode {mode:o}")

    states = stack.status()
    for st in states:
        if st.healthy:
            row(OK, st.name, f"healthy, pid {st.pid}")
        elif st.running:
            row(BAD, st.name, f"running but unhealthy, pid {st.pid}; see {st.log}")
        else:
            row(WARN, st.name, "stopped (`phoneagent stack up`)")
    pids = {st.name: st.pid for st in states}
    for svc in stack.services():
        for proto, plist in (("tcp", svc.tcp_ports), ("udp", svc.udp_ports[:1])):
            for port in plist:
                if ports.is_free(settings.bind_host, port, proto):
                    row(OK, f"{proto}/{port}", f"free ({svc.name})")
                    continue
                holder = ports.owner(port, proto)
                ours = pids[svc.name] is not None and holder.startswith(f"pid {pids[svc.name]} ")
                row(
                    OK if ours else BAD,
                    f"{proto}/{port}",
                    f"in use by {holder}" + ("" if ours else f": {svc.name} cannot start"),
                )

    baresip = shutil.which("baresip")
    if baresip:
        out = subprocess.run([baresip, "-h"], capture_output=True, text=True, check=False)
        first = (out.stdout or out.stderr).splitlines()[:1]
        row(OK, "baresip", first[0] if first else baresip)
    else:
        row(WARN, "baresip", "not installed (apt-get install baresip-core): needed to place test calls")
    if os.geteuid() != 0:
        row(WARN, "user", "not root: missing Debian packages must be installed with sudo")
    print("\n" + ("everything needed is in place" if failures == 0 else f"{failures} problem(s) above"))
    return 0 if failures == 0 else 1
