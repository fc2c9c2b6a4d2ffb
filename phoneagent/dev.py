"""`phoneagent dev`: the main job in one command.

Stack up (installing what is missing), the dev SIP routing, the control plane and a worker; then it
prints the SIP URI to dial and a command that calls it from this machine with baresip. Ctrl-C stops
what it started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from types import FrameType

from phoneagent.config import Settings
from phoneagent.db.engine import database_url
from phoneagent.db.migrate import upgrade
from phoneagent.errors import ServiceStartError
from phoneagent.stack.dev_phone import write_phone_config
from phoneagent.stack.processes import LoggedProcess
from phoneagent.stack.services import Stack
from phoneagent.telephony.dev_routing import ensure_dev_routing


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["PHONEAGENT_STATE_DIR"] = str(settings.state_dir)
    env["PHONEAGENT_CACHE_DIR"] = str(settings.cache_dir)
    # a developer's webhook receiver runs on this machine over plain http: allowed here, unless the
    # environment says otherwise (a deployment keeps the defaults: https, public addresses only)
    env.setdefault("PHONEAGENT_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
    env.setdefault("PHONEAGENT_WEBHOOK_REQUIRE_HTTPS", "false")
    # and its test callees (a SIP phone on this machine) are trunks on loopback
    env.setdefault("PHONEAGENT_TRUNK_ALLOWED_NETWORKS", "127.0.0.0/8")
    # test phones on this machine answer made-up numbers (of no known type); premium ones stay refused
    env.setdefault("PHONEAGENT_CALL_NUMBER_TYPES_DENIED", "premium_rate,shared_cost")
    return env


def run_dev(settings: Settings) -> int:
    stack = Stack(settings)
    was_running = {s.name for s in stack.status() if s.running}
    print(
        "phoneagent dev: starting the local stack (the first run builds LiveKit: a few minutes)", flush=True
    )
    stack.up()
    children: list[LoggedProcess] = []

    stopping = False

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        routing = asyncio.run(ensure_dev_routing(settings))
        upgrade(database_url(settings))
        env = _child_env(settings)
        logs = stack.paths.logs
        api = LoggedProcess.phoneagent("api", log_path=logs / "api.log", env=env)
        children.append(api)
        worker = LoggedProcess.phoneagent("worker", log_path=logs / "worker.log", env=env)
        children.append(worker)
        api.wait_for(r"Uvicorn running", timeout=60)
        worker.wait_for(r"registered worker", timeout=120)

        phone_dir = write_phone_config(stack.paths.state / "phone", host=settings.bind_host)
        uri = f"sip:{settings.dev_number}@{settings.bind_host}:{settings.sip_port}"
        print(
            f"""
phoneagent is answering calls (agent {settings.agent_name!r}, trunk {routing.trunk_id}).

  Dial:           {uri}
  Call it now:    baresip -f {phone_dir} -e "/dial {uri}"
                  (sends silence, records what it hears to {phone_dir}/rec/dump-*-dec.wav; type /quit to end)
  Control plane:  http://{settings.bind_host}:{settings.api_port}/docs
  Logs:           phoneagent stack logs -f    worker: {logs / "worker.log"}

Ctrl-C stops everything this command started.""",
            flush=True,
        )
        while not stopping:
            for child in children:
                if child.proc.poll() is not None:
                    raise ServiceStartError(
                        f"{child.log_path.stem} exited with code {child.proc.returncode}; its last lines:\n"
                        f"{child.tail(15)}",
                        hint=f"full log: {child.log_path}",
                    )
            time.sleep(0.3)
        print("phoneagent dev: stopping", flush=True)
        return 0
    finally:
        for child in reversed(children):
            child.stop()
        if not was_running:
            stack.down(progress=lambda msg: print(msg, file=sys.stderr))
