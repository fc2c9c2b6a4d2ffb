"""`phoneagent worker`: a livekit-agents worker under an explicit agent name.

Models load once per job process in prewarm, never per call.
"""

from __future__ import annotations

import logging

from livekit.agents import AgentServer, AgentSession, JobContext, JobProcess, WorkerOptions
from livekit.agents.cli import proto
from livekit.agents.cli.cli import _run_worker
from livekit.plugins import silero

from phoneagent.config import Settings, get_settings
from phoneagent.speech.piper_tts import PiperTTS, load_piper_voice
from phoneagent.speech.whisper_stt import WhisperSTT, load_whisper
from phoneagent.telephony.client import livekit_credentials
from phoneagent.worker.agent import PhoneAgent
from phoneagent.worker.scripted import DEFAULT_SCRIPT_DATA, Script, ScriptedFlow, ScriptedLLM

log = logging.getLogger("phoneagent.worker")


def prewarm(proc: JobProcess) -> None:
    proc.userdata["piper_voice"] = load_piper_voice()
    proc.userdata["whisper"] = load_whisper("tiny.en")
    proc.userdata["vad"] = silero.VAD.load()  # the ONNX model ships inside livekit-plugins-silero


async def entrypoint(ctx: JobContext) -> None:
    settings = get_settings()
    await ctx.connect()
    log.info("call answered", extra={"room": ctx.room.name})
    flow = ScriptedFlow(Script.from_dict(DEFAULT_SCRIPT_DATA, greeting=settings.greeting))
    session: AgentSession = AgentSession(
        vad=ctx.proc.userdata["vad"],
        stt=WhisperSTT(model=ctx.proc.userdata["whisper"]),
        llm=ScriptedLLM(flow),
        tts=PiperTTS(voice=ctx.proc.userdata["piper_voice"]),
        turn_handling={
            "turn_detection": "vad",
            "endpointing": {"min_delay": settings.endpointing_min_delay_s},
        },
    )
    await session.start(agent=PhoneAgent(flow=flow, hang_up=ctx.delete_room), room=ctx.room, record=False)


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
            # prewarm loads Piper, Whisper and Silero: allow for a loaded 2-core machine
            initialize_process_timeout=60.0,
            num_idle_processes=1,
            load_fnc=lambda server: len(server.active_jobs) / settings.max_concurrent_calls,
            load_threshold=1.0,
        )
    )


def run_worker(settings: Settings, *, dev: bool = False) -> None:
    log.info(
        "worker starting",
        extra={
            "agent_name": settings.agent_name,
            "agent_mode": settings.agent_mode,
            "stt": "faster-whisper tiny.en (local)",
            "tts": "piper en_US-joe-medium",
            "turn_detection": f"VAD endpointing, min {settings.endpointing_min_delay_s} s",
        },
    )
    _run_worker(build_server(settings), proto.CliArgs(log_level=settings.log_level, dev=dev))
