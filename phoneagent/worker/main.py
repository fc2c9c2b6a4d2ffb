"""`phoneagent worker`: a livekit-agents worker under an explicit agent name.

Models load once per job process in prewarm, never per call.
"""

from __future__ import annotations

import itertools
import logging

from livekit import rtc
from livekit.agents import AgentServer, AgentSession, JobContext, JobProcess, WorkerOptions, llm
from livekit.agents.cli import proto
from livekit.agents.cli.cli import _run_worker
from livekit.agents.voice import room_io
from livekit.agents.voice.events import ConversationItemAddedEvent
from livekit.plugins import silero

from phoneagent.config import Settings, get_settings
from phoneagent.speech.piper_tts import PiperTTS, load_piper_voice
from phoneagent.speech.whisper_stt import WhisperSTT, load_whisper
from phoneagent.telephony.client import livekit_credentials, worker_token
from phoneagent.worker.agent import CallControl, PhoneAgent
from phoneagent.worker.phone import job_metadata, wait_for_answer
from phoneagent.worker.profiles import Profile, ProfileCache
from phoneagent.worker.reporter import EventReporter
from phoneagent.worker.scripted import DEFAULT_SCRIPT_DATA, Script, ScriptedFlow, ScriptedLLM, ScriptError
from phoneagent.worker.turns import describe as describe_turns
from phoneagent.worker.turns import load_turn_detector, turn_handling

log = logging.getLogger("phoneagent.worker")

# livekit-server gives up on an unanswered outbound call after 80 s at most
OUTBOUND_ANSWER_TIMEOUT_S = 90.0


def prewarm(proc: JobProcess) -> None:
    proc.userdata["piper_voice"] = load_piper_voice()
    proc.userdata["whisper"] = load_whisper("tiny.en")
    # the ONNX model ships inside livekit-plugins-silero
    proc.userdata["vad"] = silero.VAD.load(min_silence_duration=get_settings().vad_min_silence_s)
    settings = get_settings()
    proc.userdata["turn_detector"] = load_turn_detector(settings)
    proc.userdata["profiles"] = ProfileCache(
        url=settings.events_url, token=worker_token(settings), default_greeting=settings.greeting
    )


def report_turns(session: AgentSession, reporter: EventReporter, room: str) -> None:
    """Every caller and agent turn, with its timings and the latency split, to the control plane."""
    seq = itertools.count()
    last_stt: dict[str, float | None] = {"s": None}

    @session.on("conversation_item_added")
    def _on_item(ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if not isinstance(item, llm.ChatMessage) or item.role not in ("user", "assistant"):
            return
        m = item.metrics
        data: dict[str, object] = {
            "seq": next(seq),
            "speaker": "caller" if item.role == "user" else "agent",
            "text": item.text_content or "",
            "started_at": m.get("started_speaking_at"),
            "ended_at": m.get("stopped_speaking_at"),
        }
        if item.role == "user":
            last_stt["s"] = m.get("transcription_delay")
            data["stt_s"] = last_stt["s"]
        else:
            # end of caller speech -> final transcript -> first brain output -> first audio out
            data.update(
                stt_s=last_stt["s"],
                brain_s=m.get("llm_node_ttft"),
                tts_s=m.get("tts_node_ttfb"),
                total_s=m.get("e2e_latency"),
            )
            last_stt["s"] = None
        reporter.report(room, "turn", data)


async def entrypoint(ctx: JobContext) -> None:
    settings = get_settings()
    await ctx.connect()
    room = ctx.room.name
    log.info("call answered", extra={"room": room})
    reporter = EventReporter(
        url=settings.events_url,
        token=worker_token(settings),
        spool_dir=settings.state_dir.expanduser() / "spool",
    )
    reporter.start()
    ctx.add_shutdown_callback(reporter.aclose)
    meta = job_metadata(ctx.job.metadata)
    # an outbound agent is in the room before the phone rings: it greets only once it is answered
    outbound = meta.get("direction") == "outbound"
    if outbound and not await wait_for_answer(ctx.room, within_s=OUTBOUND_ANSWER_TIMEOUT_S):
        log.info("outbound call not answered; the agent leaves", extra={"room": room})
        ctx.shutdown(reason="not answered")
        return
    reporter.report(room, "answered")

    profiles: ProfileCache = ctx.proc.userdata["profiles"]
    profile = await profiles.get(ProfileCache.profile_id(ctx.job.metadata))
    log.info("agent profile", extra={"agent_profile_id": profile.id, "source": profile.source})
    flow = ScriptedFlow(load_script(profile))
    session: AgentSession = AgentSession(
        vad=ctx.proc.userdata["vad"],
        stt=WhisperSTT(model=ctx.proc.userdata["whisper"]),
        llm=ScriptedLLM(flow),
        tts=PiperTTS(voice=ctx.proc.userdata["piper_voice"]),
        turn_handling=turn_handling(settings, ctx.proc.userdata.get("turn_detector")),
        user_away_timeout=float(profile.silence_timeout_s),
    )
    report_turns(session, reporter, room)
    control = CallControl(ctx, lambda type_, data: reporter.report(room, type_, data))
    agent = PhoneAgent(
        flow=flow,
        control=control,
        outbound=outbound,
        detect_machine=outbound and "voicemail" in profile.tools,
        max_duration_s=float(profile.max_duration_s),
        silence_timeout_s=float(profile.silence_timeout_s),
    )
    await session.start(agent=agent, room=ctx.room, record=False, room_options=room_options())


def room_options() -> room_io.RoomOptions:
    """The agent's audio is published without Opus DTX: egress v1.8.6 decodes a DTX track's silences
    onto the wrong timeline (speech shifted by up to 0.5 s in a recording); the phone line gains
    nothing from DTX either (livekit-sip sends the caller's side without it)."""
    publish = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE, dtx=False)
    return room_io.RoomOptions(audio_output=room_io.AudioOutputOptions(track_publish_options=publish))


def load_script(profile: Profile) -> Script:
    """The profile's call flow; a flow that cannot work falls back to the built-in one, loudly."""
    try:
        return Script.from_dict(profile.script or DEFAULT_SCRIPT_DATA, greeting=profile.greeting)
    except ScriptError as exc:
        log.error(
            "the agent profile's script cannot work; using the built-in flow",
            extra={"agent_profile_id": profile.id, "error": str(exc)},
        )
        return Script.from_dict(DEFAULT_SCRIPT_DATA, greeting=profile.greeting)


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
            "turn_detection": describe_turns(settings, load_turn_detector(settings)),
        },
    )
    _run_worker(build_server(settings), proto.CliArgs(log_level=settings.log_level, dev=dev))
