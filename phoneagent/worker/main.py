"""`phoneagent worker`: a livekit-agents worker under an explicit agent name.

Models load once per job process in prewarm, never per call.
"""

from __future__ import annotations

import logging

from livekit.agents import AgentServer, AgentSession, JobContext, JobProcess, WorkerOptions
from livekit.agents.cli import proto
from livekit.agents.cli.cli import _run_worker

from phoneagent.config import Settings, get_settings
from phoneagent.speech.piper_tts import PiperTTS, load_piper_voice
from phoneagent.telephony.client import livekit_credentials
from phoneagent.worker.greeting import GreetingAgent

log = logging.getLogger("phoneagent.worker")


def prewarm(proc: JobProcess) -> None:
    proc.userdata["piper_voice"] = load_piper_voice()


async def entrypoint(ctx: JobContext) -> None:
    settings = get_settings()
    await ctx.connect()
    log.info("call answered", extra={"room": ctx.room.name})
    session: AgentSession = AgentSession(tts=PiperTTS(voice=ctx.proc.userdata["piper_voice"]))
    await session.start(agent=GreetingAgent(greeting=settings.greeting), room=ctx.room, record=False)


def build_server(settings: Settings) -> AgentServer:
    creds = livekit_credentials(settings)
    return AgentServer.from_server_options(
        WorkerOptions(
            entrypoint_fnc=entrypoint,
            prewarm_fnc=prewarm,
            agent_name=settings.agent_name,
            ws_url=creds.url,
            api_key=creds.api_key,
            api_secret=creds.api_secret,
            host=settings.bind_host,
            port=settings.worker_http_port,
            # prewarm loads Piper: allow for a loaded 2-core machine
            initialize_process_timeout=60.0,
            num_idle_processes=1,
        )
    )


def run_worker(settings: Settings, *, dev: bool = False) -> None:
    log.info("worker starting", extra={"agent_name": settings.agent_name, "agent_mode": settings.agent_mode})
    _run_worker(build_server(settings), proto.CliArgs(log_level=settings.log_level, dev=dev))
