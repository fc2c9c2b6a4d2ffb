"""The package works once installed: the wheel, built from this checkout and installed with its
extras into a fresh virtual environment outside it, migrates a database, brings the stack up,
answers a real SIP call with a worker and a control plane run from that environment, and takes the
stack down again. Nothing of the checkout is importable there: the migrations and the stack's config
templates must come from the wheel itself."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from phoneagent.config import Settings
from tests import REPO_ROOT
from tests.e2e.conftest import assert_greeting_heard, transcribe
from tests.peers.processes import LoggedProcess, assert_all_gone
from tests.peers.sip_phone import BaresipPhone, wait_until
from tests.stack_fixtures import PORT_OFFSET, PROFILE_GREETING, settings_env

# ports of their own (moved by PHONEAGENT_TEST_PORT_OFFSET like the suite's): the suite's session
# stack and `phoneagent dev`'s test may run at the same time
PORTS = {
    name: port + PORT_OFFSET
    for name, port in {
        "redis_port": 21389,
        "livekit_port": 21880,
        "livekit_rtc_tcp_port": 21881,
        "livekit_rtc_udp_start": 55100,
        "livekit_rtc_udp_end": 55119,
        "sip_port": 21060,
        "sip_rtp_start": 13600,
        "sip_rtp_end": 13619,
        "worker_http_port": 21081,
        "worker_metrics_port": 21082,
        "livekit_prometheus_port": 21789,
        "api_port": 21010,
    }.items()
}
PHONE_RTP = (42200 + PORT_OFFSET, 42219 + PORT_OFFSET)
# what the package needs besides its Python code
PACKAGE_DATA = (
    "phoneagent/db/migrations/env.py",
    "phoneagent/db/migrations/script.py.mako",
    "phoneagent/db/migrations/versions/0001_initial_schema.py",
    "phoneagent/stack/templates/redis.conf.tmpl",
    "phoneagent/stack/templates/livekit.yaml.tmpl",
    "phoneagent/stack/templates/livekit-sip.yaml.tmpl",
    "phoneagent/stack/templates/egress.yaml.tmpl",
    "phoneagent/review/templates/calls.html",
)


def _run(
    argv: list[str],
    *,
    what: str,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    ok: tuple[int, ...] = (0,),
) -> str:
    """Run a command to completion; a failure says what was being done and shows the output."""
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, env=env, cwd=cwd
    )
    if done.returncode not in ok:
        pytest.fail(
            f"{what} failed (exit {done.returncode}): {' '.join(argv)}\n"
            f"--- stdout ---\n{done.stdout[-3000:]}\n--- stderr ---\n{done.stderr[-5000:]}",
            pytrace=False,
        )
    return done.stdout


@dataclass(frozen=True)
class Installed:
    venv: Path
    wheel: Path

    @property
    def phoneagent(self) -> str:
        return str(self.venv / "bin" / "phoneagent")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel built from this checkout, installed with its extras (at the locked versions) into a
    new virtual environment in a temporary directory."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH: it builds the wheel and makes the virtual environment")
    root = tmp_path_factory.mktemp("wheel")
    _run([uv, "build", "--wheel", "-o", str(root / "dist"), str(REPO_ROOT)], what="uv build", timeout=300)
    (wheel,) = (root / "dist").glob("phoneagent-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        missing = sorted(set(PACKAGE_DATA) - set(zf.namelist()))
    assert not missing, f"the wheel {wheel.name} lacks package data: {missing}"

    constraints = root / "constraints.txt"
    _run(
        [uv, "export", "--frozen", "--no-hashes", "--no-dev", "--no-emit-project", "--extra", "local"]
        + ["--extra", "s3", "--project", str(REPO_ROOT), "-o", str(constraints)],
        what="uv export (the locked versions)",
        timeout=120,
    )
    venv = root / "venv"
    # a plain interpreter, not the checkout's .venv (whose site-packages hold the project)
    base = Path(sys.base_prefix) / "bin" / "python3.11"
    if not base.exists():
        base = Path(shutil.which("python3.11") or "python3.11")
    _run([uv, "venv", "--no-python-downloads", "--python", str(base), str(venv)], what="uv venv", timeout=120)
    _run(
        [uv, "pip", "install", "--python", str(venv / "bin" / "python"), "-c", str(constraints)]
        + [f"{wheel}[local,s3]"],
        what="installing the wheel with its extras",
        timeout=900,
        cwd=root,
    )
    return Installed(venv=venv, wheel=wheel)


def _outside_env(settings: Settings, venv: Path) -> dict[str, str]:
    """The suite's stack settings, and nothing that would let the checkout's code be imported."""
    env = settings_env(settings)
    for key in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"):
        env.pop(key, None)
    # neither the checkout nor the environment running the suite (whose .venv may be a link elsewhere)
    away = (REPO_ROOT, REPO_ROOT.resolve(), Path(sys.prefix), Path(sys.prefix).resolve())
    path = [
        p
        for p in env.get("PATH", "").split(os.pathsep)
        if p and not any(Path(p).is_relative_to(a) for a in away)
    ]
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    env["VIRTUAL_ENV"] = str(venv)
    # the control plane on plain http on loopback (as `phoneagent dev` has it), and quick to sweep
    env["PHONEAGENT_WORKER_LOST_AFTER_S"] = "6"
    env["PHONEAGENT_SWEEP_INTERVAL_S"] = "1"
    return env


def _stack_pids(status: str) -> set[int]:
    return {int(pid) for pid in re.findall(r"pid=(\d+)", status)}


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    """A working directory outside the checkout, with no phoneagent source in it."""
    work = tmp_path / "work"
    work.mkdir()
    assert not work.resolve().is_relative_to(REPO_ROOT.resolve())
    yield work


def test_the_installed_wheel_migrates_runs_the_stack_and_answers_a_call(
    installed: Installed, outside: Path, tmp_path: Path, whisper_tiny: object
) -> None:
    settings = Settings(
        state_dir=tmp_path / "state",
        agent_name="phoneagent-wheel-test",
        webhook_allowed_networks=["127.0.0.0/8"],
        webhook_require_https=False,
        trunk_allowed_networks=["127.0.0.0/8"],
        call_number_types_denied=["premium_rate", "shared_cost"],
        **PORTS,  # type: ignore[arg-type]
    )
    env = _outside_env(settings, installed.venv)
    bins = settings.cache_dir.expanduser() / "bin"
    built = {p: p.stat().st_mtime_ns for p in bins.glob("*/*") if p.is_file()}

    def phoneagent(*args: str, timeout: float = 120, ok: tuple[int, ...] = (0,)) -> str:
        what = f"`phoneagent {' '.join(args[:2])}` from the installed wheel"
        return _run([installed.phoneagent, *args], what=what, timeout=timeout, env=env, cwd=outside, ok=ok)

    where = _run(
        [str(installed.venv / "bin" / "python"), "-c", "import phoneagent; print(phoneagent.__file__)"],
        what="importing the installed package",
        timeout=60,
        env=env,
        cwd=outside,
    ).strip()
    assert Path(where).is_relative_to(installed.venv), f"phoneagent was imported from {where}, not the venv"

    assert "latest schema" in phoneagent("db", "upgrade")
    token = phoneagent("keys", "create", "--tenant", "wheel").strip()
    headers = {"Authorization": f"Bearer {token}"}

    seen: set[int] = set()
    procs: list[LoggedProcess] = []
    phone = BaresipPhone(tmp_path / "phone", rtp_ports=PHONE_RTP)
    stack_up = False
    try:
        stack_up = True  # from here on `stack down` runs, even if `up` fails half-way
        assert "stack ready" in phoneagent("stack", "up", timeout=600)
        seen |= _stack_pids(phoneagent("stack", "status"))
        assert len(seen) >= 4, f"expected redis, livekit-server, livekit-sip and egress running: {seen}"

        api = LoggedProcess(
            [installed.phoneagent, "api"], log_path=tmp_path / "api.log", env=env, cwd=outside
        )
        procs.append(api)
        api.wait_for(r"Uvicorn running", timeout=90)
        url = f"http://{settings.bind_host}:{settings.api_port}"
        with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
            agent = c.post("/agents", json={"name": "wheel", "greeting": PROFILE_GREETING})
            assert agent.status_code == 201, agent.text
            trunk = c.post(
                "/trunks/inbound",
                json={
                    "name": "wheel-in",
                    "numbers": [settings.dev_number],
                    "allowed_addresses": ["127.0.0.1"],
                },
            )
            assert trunk.status_code == 201, trunk.text
            rule = c.post(
                "/dispatch-rules",
                json={
                    "name": "wheel",
                    "inbound_trunk_id": trunk.json()["id"],
                    "agent_profile_id": agent.json()["id"],
                },
            )
            assert rule.status_code == 201, rule.text

        worker = LoggedProcess(
            [installed.phoneagent, "worker"], log_path=tmp_path / "worker.log", env=env, cwd=outside
        )
        procs.append(worker)
        worker.wait_for(r"registered worker", timeout=180)

        phone.start()
        phone.dial(f"sip:{settings.dev_number}@{settings.bind_host}:{settings.sip_port}", timeout=30)
        phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.5, timeout=90)
        mark = phone.hangup()
        assert phone.bye_confirmed(since=mark, timeout=15), "the hangup's BYE got no 200 OK"

        def ended() -> dict[str, object] | None:
            items = httpx.get(f"{url}/calls", headers=headers, timeout=10).json()["items"]
            return items[0] if items and items[0]["status"] == "ended" else None

        wait_until(lambda: ended() is not None, timeout=30, what="the call record to say ended")
        call = ended()
        assert call is not None
        assert (call["direction"], call["end_reason"], call["agent_profile_id"]) == (
            "inbound",
            "customer_hangup",
            agent.json()["id"],
        ), call
    finally:
        phone.close()
        for proc in reversed(procs):
            proc.stop()
            seen |= proc.seen_pids
        if stack_up:
            phoneagent("stack", "down", timeout=120)
    # exit 3: not every service is healthy (here: none runs)
    status = phoneagent("stack", "status", ok=(0, 3)) if stack_up else ""
    assert not _stack_pids(status), f"`phoneagent stack down` left services running:\n{status}"
    assert_all_gone(seen | ({phone.pid} if phone.pid else set()))

    assert_greeting_heard(transcribe(whisper_tiny, str(phone.received_wav())))
    rebuilt = [p.name for p, mtime in built.items() if p.exists() and p.stat().st_mtime_ns != mtime]
    assert not rebuilt, f"the installed package rebuilt LiveKit binaries instead of using {bins}: {rebuilt}"
