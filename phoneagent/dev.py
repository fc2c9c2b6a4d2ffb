"""`phoneagent dev`: the main job in one command.

Stack up (installing what is missing), the dev tenant's line (``dev_tenant``), the control plane and
a worker; then it prints the SIP URI to dial, a command that calls it from this machine with baresip,
and the review page with the key that signs in to it; after each call, one line: its id, length, end
reason and review link. Ctrl-C stops what it started.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import UTC, datetime
from types import FrameType

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from phoneagent.config import Settings
from phoneagent.db.engine import database_url, make_engine, session_factory
from phoneagent.db.migrate import upgrade
from phoneagent.db.models import Call
from phoneagent.dev_tenant import DevLine, ensure_dev_line
from phoneagent.errors import ServiceStartError
from phoneagent.stack.dev_phone import write_phone_config
from phoneagent.stack.processes import LoggedProcess
from phoneagent.stack.services import Stack


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


def _ended_since(
    sessions: sessionmaker[Session], tenant_id: str, since: datetime, seen: set[str]
) -> list[Call]:
    with sessions() as s:
        calls = s.scalars(
            select(Call)
            .where(Call.tenant_id == tenant_id, Call.status == "ended", Call.created_at >= since)
            .order_by(Call.ended_at)
        ).all()
    return [c for c in calls if c.id not in seen]


def _call_line(settings: Settings, call: Call) -> str:
    length = f"{call.duration_ms / 1000:.1f} s" if call.duration_ms is not None else "not answered"
    review = f"{settings.api_url}/review/calls/{call.id}"
    return f"call {call.id}: {length}, {call.end_reason or 'ended'}; review: {review}"


def _banner(settings: Settings, line: DevLine, phone_dir: object, logs: object) -> str:
    uri = f"sip:{settings.dev_number}@{settings.bind_host}:{settings.sip_port}"
    return f"""
phoneagent is answering calls (agent {settings.agent_name!r}, tenant 'dev', trunk {line.trunk_id}).

  Dial:           {uri}
  Call it now:    baresip -f {phone_dir} -e "/dial {uri}"
                  (sends silence, records what it hears to {phone_dir}/rec/dump-*-dec.wav; type /quit to end)
  Review calls:   {settings.api_url}/review   (sign in with the dev tenant's API key:)
  API key:        {line.api_key}   (kept in {line.key_file})
  Control plane:  {settings.api_url}/docs
  Logs:           phoneagent stack logs -f    worker: {logs}/worker.log

Each call gets a line here when it ends. Ctrl-C stops everything this command started."""


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
    engine = make_engine(database_url(settings))
    try:
        upgrade(database_url(settings))
        sessions = session_factory(engine)
        with sessions() as s:
            line = ensure_dev_line(s, settings)
        started = datetime.now(UTC)
        env = _child_env(settings)
        logs = stack.paths.logs
        api = LoggedProcess.phoneagent("api", log_path=logs / "api.log", env=env)
        children.append(api)
        worker = LoggedProcess.phoneagent("worker", log_path=logs / "worker.log", env=env)
        children.append(worker)
        api.wait_for(r"Uvicorn running", timeout=60)
        worker.wait_for(r"registered worker", timeout=120)

        phone_dir = write_phone_config(stack.paths.state / "phone", host=settings.bind_host)
        print(_banner(settings, line, phone_dir, logs), flush=True)
        seen: set[str] = set()
        next_look = 0.0
        while not stopping:
            for child in children:
                if child.proc.poll() is not None:
                    raise ServiceStartError(
                        f"{child.log_path.stem} exited with code {child.proc.returncode}; its last lines:\n"
                        f"{child.tail(15)}",
                        hint=f"full log: {child.log_path}",
                    )
            if time.monotonic() >= next_look:
                next_look = time.monotonic() + 1.0
                for call in _ended_since(sessions, line.tenant_id, started, seen):
                    seen.add(call.id)
                    print(_call_line(settings, call), flush=True)
            time.sleep(0.3)
        print("phoneagent dev: stopping", flush=True)
        return 0
    finally:
        for child in reversed(children):
            child.stop()
        engine.dispose()
        if not was_running:
            stack.down(progress=lambda msg: print(msg, file=sys.stderr))
