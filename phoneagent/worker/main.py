"""`phoneagent worker`: a livekit-agents worker under an explicit agent name.

Models load once per job process in prewarm, never per call.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

from livekit import rtc
from livekit.agents import AgentServer, AgentSession, JobContext, JobProcess, WorkerOptions, llm
from livekit.agents.ipc.job_executor import JobExecutor
from livekit.agents.voice import room_io
from livekit.plugins import silero

from phoneagent.config import Settings, get_settings
from phoneagent.errors import ConfigError
from phoneagent.log import mask_personal_in_handlers
from phoneagent.speech.audio import PHONE_RATE
from phoneagent.speech.fallbacks import report_fallbacks
from phoneagent.speech.piper_tts import PiperTTS, SpeechCache, load_piper_voice
from phoneagent.speech.plugins import preload as preload_plugins
from phoneagent.speech.profile_speech import SpeechChoice, stt_provider_of, tts_choice_of
from phoneagent.speech.providers import (
    IN_PROCESS_WHISPER,
    build_stt,
    build_tts,
    needs_local_piper,
    needs_local_whisper,
    session_conn_options,
)
from phoneagent.speech.providers import check as check_providers
from phoneagent.speech.providers import describe as describe_providers
from phoneagent.speech.shared import SharedModels
from phoneagent.speech.whisper_stt import WHISPER_RATE, WhisperOptions, load_whisper, turn_prompt
from phoneagent.telephony.client import livekit_credentials, worker_token
from phoneagent.worker import metrics, speech_host
from phoneagent.worker.agent import CallControl, PhoneAgent
from phoneagent.worker.brain import build_llm, describe_brain, instructions_for, transfer_policy
from phoneagent.worker.brain_spec import DEFAULT_INSTRUCTIONS, WarmTransferSpec, parse_brain
from phoneagent.worker.lead_in import EVENT as LEAD_IN_EVENT
from phoneagent.worker.lead_in import LeadIn
from phoneagent.worker.phone import (
    caller_heard,
    job_metadata,
    room_is_gone,
    sip_participant,
    wait_for_answer,
)
from phoneagent.worker.profiles import Profile, ProfileCache
from phoneagent.worker.reporter import EventReporter
from phoneagent.worker.runner import run_agent_server
from phoneagent.worker.scripted import (
    DEFAULT_SCRIPT_DATA,
    MESSAGE_ASK,
    MESSAGE_TAKEN,
    Script,
    ScriptedFlow,
    ScriptedLLM,
    ScriptError,
)
from phoneagent.worker.takeover import Handover, call_already_up, call_has_its_agent, mark_answered
from phoneagent.worker.timing import OutputTap, TurnClock, TurnSeq, after_rejoin, report_turns
from phoneagent.worker.turns import describe as describe_turns
from phoneagent.worker.turns import load_turn_detector, turn_handling
from phoneagent.worker.warm_transfer import EVENT as WARM_EVENT
from phoneagent.worker.warm_transfer import (
    WHY,
    ConsultClient,
    Tools,
    TransferResult,
    WarmTransfer,
    briefing_text,
    summarise,
)

log = logging.getLogger("phoneagent.worker")

# livekit-server gives up on an unanswered outbound call after 80 s at most
OUTBOUND_ANSWER_TIMEOUT_S = 90.0
# livekit-sip answers an inbound call within a second or two of hearing the agent's track
INBOUND_ANSWER_TIMEOUT_S = 30.0
# livekit-sip hangs up on an answer that gets no ACK (the caller's CANCEL crossed it) 4-5 s after it
# says active (a 3 s ACK wait, then a 3 s media timeout, from its 200 OK); a phone that is on the line
# sends audio at once, one that stays silent longer than this is greeted anyway
CALLER_AUDIO_WAIT_S = 8.0


def prewarm(proc: JobProcess) -> None:
    mask_personal_in_handlers()  # livekit-agents' own JSON logs carry the caller's words
    settings = get_settings()
    metrics.set_capacity(settings.call_capacity)  # from the job processes: see worker.metrics
    # only the local models this AGENT_MODE uses, and only when this worker has no shared models
    # (speech_host.py); a call's STT/TTS are built over them (providers.py)
    own = settings.speech_socket is None
    proc.userdata["piper_voice"] = (
        load_piper_voice(settings.piper_voice) if own and needs_local_piper(settings) else None
    )
    proc.userdata["speech_cache"] = SpeechCache()
    proc.userdata["whisper"] = (
        load_whisper(IN_PROCESS_WHISPER) if own and needs_local_whisper(settings) else None
    )
    # the ONNX model ships inside livekit-plugins-silero
    proc.userdata["vad"] = silero.VAD.load(min_silence_duration=settings.turn_timing.vad_silence_s)
    proc.userdata["turn_detector"] = load_turn_detector(settings)
    # provider plugins are imported here, never during a call (an import can block the loop seconds)
    preload_plugins(settings)
    # each job process says what answers calls (the worker's own start line comes before its logging)
    log.info(
        "worker process ready",
        extra={
            "agent_name": settings.agent_name,
            **describe_providers(settings),
            "turn_detection": describe_turns(settings, proc.userdata["turn_detector"]),
            "speculative_stt": settings.speculative_stt,
            "speech_models": f"shared ({settings.speech_socket})"
            if settings.speech_socket
            else "this process's",
        },
    )
    proc.userdata["profiles"] = ProfileCache(
        url=settings.events_url, token=worker_token(settings), default_greeting=settings.greeting
    )


def brain_for_call(settings: Settings, profile: Profile, flow: ScriptedFlow) -> tuple[llm.LLM[Any], str]:
    """The profile's brain and the instructions it gets; the scripted flow when the profile's is unusable
    (a call is never refused for its profile, and the log says why)."""
    try:
        brain = build_llm(settings, profile.llm, flow)
        instructions = instructions_for(parse_brain(profile.llm))
    except ConfigError as exc:
        log.warning(
            "agent profile brain unusable; the scripted flow answers",
            extra={"agent_profile_id": profile.id, "error": exc.message},
        )
        return ScriptedLLM(flow), DEFAULT_INSTRUCTIONS
    log.info(
        "call brain",
        extra={"agent_profile_id": profile.id, "brain": describe_brain(settings, profile.llm)},
    )
    return brain, instructions


async def entrypoint(ctx: JobContext) -> None:
    mask_personal_in_handlers()
    ctx.add_shutdown_callback(metrics.call_started())  # phoneagent_worker_active_calls, until the job ends
    settings = get_settings()
    await ctx.connect()
    room = ctx.room.name
    if await room_is_gone(ctx.room, ctx.job.room.sid):
        log.info("the call ended before the agent joined; the agent leaves", extra={"room": room})
        await ctx.delete_room()  # the empty room its joining made
        ctx.shutdown(reason="call already over")
        return
    log.info("agent joined the call", extra={"room": room})
    meta = job_metadata(ctx.job.metadata)
    reporter = EventReporter(
        url=settings.events_url,
        token=worker_token(settings),
        spool_dir=settings.state_dir.expanduser() / "spool",
        scope=meta,
    )
    reporter.start()
    ctx.add_shutdown_callback(reporter.aclose)
    # one agent per call when livekit-server restarted mid-call: see takeover.py
    handover = Handover(ctx.room, lambda: ctx.shutdown(reason="another agent took the call over"))
    turn_seq = TurnSeq()
    # an outbound agent is in the room before the phone rings: it greets only once it is answered
    outbound = meta.get("direction") == "outbound"
    if outbound:
        if not await wait_for_answer(ctx.room, within_s=OUTBOUND_ANSWER_TIMEOUT_S):
            log.info("outbound call not answered; the agent leaves", extra={"room": room})
            ctx.shutdown(reason="not answered")
            return
        reporter.report(room, "answered")
        ctx.add_shutdown_callback(cancel_on_exit(asyncio.create_task(mark_answered(ctx.api, ctx.room))))

    profiles: ProfileCache = ctx.proc.userdata["profiles"]
    profile = await profiles.get(ProfileCache.profile_id(ctx.job.metadata))
    log.info("agent profile", extra={"agent_profile_id": profile.id, "source": profile.source})
    flow = ScriptedFlow(load_script(profile))
    brain, instructions = brain_for_call(settings, profile, flow)
    vad = ctx.proc.userdata["vad"]
    shared = (
        SharedModels(settings.speech_socket, voice=settings.piper_voice) if settings.speech_socket else None
    )
    if shared is not None:
        ctx.add_shutdown_callback(shared.aclose)
    options, model = await whisper_for(ctx.proc, profile)
    speech = speech_for(settings, profile)
    scripted = isinstance(brain, ScriptedLLM)
    stt = build_stt(
        settings,
        vad=vad,
        whisper_model=model,
        whisper_options=options,
        transcriber=shared,
        # recognition leans toward what the scripted flow listens for at each turn
        whisper_prompt=(lambda: turn_prompt(options.initial_prompt, flow.vocabulary())) if scripted else None,
        profile=speech,
    )
    tts = build_tts(
        settings,
        piper_voice=ctx.proc.userdata["piper_voice"],
        speech_cache=ctx.proc.userdata["speech_cache"],
        synthesizer=shared,
        profile=speech,
    )
    report_fallbacks(functools.partial(reporter.report, room), stt, tts, brain)
    for component in (stt, tts, brain):
        ctx.add_shutdown_callback(component.aclose)
    transfers = transfer_policy(profile.llm, [i.transfer_to for i in flow.script.intents if i.transfer_to])
    control = CallControl(ctx, lambda type_, data: reporter.report(room, type_, data), transfers)
    ctx.add_shutdown_callback(control.settle)  # a transfer the phone followed is reported
    clock = TurnClock(on_barge_in=functools.partial(reporter.report, room, "barge_in"))
    # an inbound phone rings until livekit-sip hears the agent's track (session.start publishes it):
    # the agent greets once the call is up, and not at all when the caller gave up first
    answered = None if outbound else asyncio.create_task(inbound_answer(ctx, reporter, handover, turn_seq))
    if answered is not None:
        ctx.add_shutdown_callback(cancel_on_exit(answered))
    agent = PhoneAgent(
        flow=flow,
        control=control,
        outbound=outbound,
        detect_machine=outbound and "voicemail" in profile.tools,
        max_duration_s=float(profile.max_duration_s),
        silence_timeout_s=float(profile.silence_timeout_s),
        instructions=instructions,
        llm_tools=None if scripted else profile.tools,
        clock=clock,
        answered=answered,
    )
    session: AgentSession[None] = AgentSession(
        vad=vad,
        stt=stt,
        llm=brain,
        tts=tts,
        # the providers' own low retries are the only ones: a failure switches within the turn
        conn_options=session_conn_options(settings),
        turn_handling=turn_handling(
            settings,
            ctx.proc.userdata.get("turn_detector"),
            understood=agent.understood if scripted else None,
            heard=lambda: agent.last_heard,
        ),
        user_away_timeout=float(profile.silence_timeout_s),
        # livekit-agents mutes barge-in and feeds STT silence for the first 3 s of agent speech on SIP
        # calls while an echo canceller would adapt; a phone line's echo is the carrier's business
        aec_warmup_duration=None,
    )
    control.warm = warm_transfer_for(ctx, settings, meta, profile, reporter, control, flow, brain, session)
    report_turns(
        session, clock, functools.partial(reporter.report, room), turn_seq, on_caller_turn=agent.turn_numbered
    )
    # the caller hung up (or the agent did): the job leaves at once, freeing its place on this worker;
    # left alone it would sit in the empty room until LiveKit's departure timeout (20 s)
    session.on("close", lambda ev: ctx.shutdown(reason=f"call over: {ev.reason}"))
    await session.start(agent=agent, room=ctx.room, record=False, room_options=room_options())
    if session.output.audio is not None:
        # notes barge-ins; on a recorded call keeps the greeting for the recording (egress starts late)
        lead_in = (
            LeadIn(functools.partial(reporter.report, room, LEAD_IN_EVENT)) if profile.recording else None
        )
        if lead_in is not None:
            ctx.add_shutdown_callback(finish_on_exit(lead_in))
        session.output.audio = OutputTap(session.output.audio, clock, lead_in)
    if isinstance(tts, PiperTTS):
        # what the scripted flow may say next is made while the caller listens to the greeting
        ctx.add_shutdown_callback(cancel_on_exit(asyncio.create_task(tts.prepare(script_lines(flow.script)))))


def warm_transfer_for(
    ctx: JobContext,
    settings: Settings,
    meta: dict[str, Any],
    profile: Profile,
    reporter: EventReporter,
    control: CallControl,
    flow: ScriptedFlow,
    brain: llm.LLM[Any],
    session: AgentSession[None],
) -> Callable[[str], Coroutine[None, None, TransferResult]]:
    """The call's warm transfer (phoneagent.worker.warm_transfer), with the profile's settings."""
    try:
        spec = parse_brain(profile.llm).warm_transfer
    except ConfigError:
        spec = WarmTransferSpec()  # the brain is unusable: its destinations are not trusted either
    creds = livekit_credentials(settings)
    room = ctx.room.name
    warm = WarmTransfer(
        room=ctx.room,
        lk=ctx.api,
        settings_url=creds.url,
        credentials=(creds.api_key, creds.api_secret),
        client=ConsultClient(url=settings.events_url, token=worker_token(settings)),
        scope={k: str(meta[k]) for k in ("tenant_id", "call_id") if meta.get(k)},
        spec=spec,
        report=lambda data: reporter.report(room, WARM_EVENT, data),
        delete_caller_room=lambda: control.hang_up("transferred"),
    )

    async def brief() -> str:
        if not isinstance(brain, ScriptedLLM):
            return await summarise(brain, session.history)
        phone = sip_participant(ctx.room)
        said = [m.text_content or "" for m in session.history.messages() if m.role == "user"]
        return briefing_text(
            spec.briefing,
            caller=phone.attributes.get("sip.phoneNumber", "") if phone is not None else "",
            outcome=flow.outcome.to_dict(),
            last_words=said[-1] if said else "",
        )

    async def transfer(to: str) -> TransferResult:
        tts, stt = session.tts, session.stt
        if tts is None or stt is None:
            return TransferResult("failed", "the call has no speech to brief with")
        return await warm.run(to, Tools(session=session, tts=tts, stt=stt, brief=brief))

    return transfer


async def inbound_answer(
    ctx: JobContext, reporter: EventReporter, handover: Handover, turn_seq: TurnSeq
) -> bool:
    """True once an inbound call is up: livekit-sip says the phone is ``active`` and the caller is
    heard (or, silent, is still on the line a while later); reported as ``answered``. False when the
    caller hung up before (or the phone never became active): the job leaves without a word.

    The agent greets at once, also on a recorded call: the worker keeps the greeting for the recording
    (worker/lead_in.py), since egress starts recording the agent's track 1.3 to 2.3 s late."""
    room = ctx.room
    loop = asyncio.get_running_loop()
    start = loop.time()
    made = ctx.job.room.creation_time_ms / 1000 or float(ctx.job.room.creation_time)
    room_age_s = time.time() - made if made else 0.0
    # sent again to a live call: see takeover.py
    if call_already_up(room, room_age_s=room_age_s, room_metadata=ctx.job.room.metadata):
        turn_seq.start_at(after_rejoin(room_age_s))  # the call's first agent numbered its turns from 0
        if await call_has_its_agent(room):
            ctx.shutdown(reason="the call has its agent")
            return False
        await handover.take_over()
        reporter.report(room.name, "taken_over")  # answered long before: the record keeps that time
        return True
    # the phone joined the room before the agent was sent there: none in it means it left already
    if sip_participant(room) is not None and await wait_for_answer(room, within_s=INBOUND_ANSWER_TIMEOUT_S):
        active_ms = int((loop.time() - start) * 1000)
        heard = await caller_heard(room, within_s=CALLER_AUDIO_WAIT_S)
        phone = sip_participant(room)
        if heard or (phone is not None and phone.attributes.get("sip.callStatus") == "active"):
            log.info(
                "call answered",
                extra={
                    "room": room.name,
                    "active_after_ms": active_ms,
                    "up_after_ms": int((loop.time() - start) * 1000),
                    "caller_heard": heard,
                },
            )
            reporter.report(room.name, "answered")
            ctx.add_shutdown_callback(cancel_on_exit(asyncio.create_task(mark_answered(ctx.api, room))))
            return True
    log.info("the caller hung up before the call was answered; the agent leaves", extra={"room": room.name})
    ctx.shutdown(reason="caller gave up before answer")
    return False


def script_lines(script: Script) -> list[str]:
    warm = any(i.action == "warm_transfer" for i in script.intents)
    return [
        *(i.reply for i in script.intents),
        # what a warm transfer that nobody took says, at once (the caller has been holding)
        *([TransferResult(r).told_caller() for r in WHY] + [MESSAGE_ASK, MESSAGE_TAKEN] if warm else []),
        *(i.confirm for i in script.intents if i.confirm),
        script.fallback,
        script.goodbye,
        script.reprompt,
        script.silence_goodbye,
    ]


def finish_on_exit(lead_in: LeadIn) -> Callable[[], Coroutine[None, None, None]]:
    async def finish() -> None:  # the call ended during its first utterance: what was said is kept
        lead_in.finish()

    return finish


def cancel_on_exit(task: asyncio.Task[Any]) -> Callable[[], Coroutine[None, None, None]]:
    async def cancel() -> None:
        task.cancel()

    return cancel


def room_options() -> room_io.RoomOptions:
    """How the call's audio meets the room, with as little delay and resampling as possible.

    - The caller comes in at 16 kHz, what Silero and Whisper take (no second resampling step), in
      20 ms frames (livekit-agents' default 50 ms frames hold each sample up to 50 ms longer).
    - The agent goes out at the 8 kHz its speech is made at (no 8 -> 24 kHz step in the worker),
      without Opus DTX: egress v1.8.6 decodes a DTX track's silences onto the wrong timeline (speech
      shifted by up to 0.5 s in a recording); the phone line gains nothing from DTX either
      (livekit-sip sends the caller's side without it).
    """
    publish = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE, dtx=False)
    return room_io.RoomOptions(
        audio_input=room_io.AudioInputOptions(sample_rate=WHISPER_RATE, frame_size_ms=20),
        audio_output=room_io.AudioOutputOptions(sample_rate=PHONE_RATE, track_publish_options=publish),
    )


async def whisper_for(proc: JobProcess, profile: Profile) -> tuple[WhisperOptions, Any]:
    """The profile's Whisper options, and its model: the one prewarm loaded, or (a profile asking for
    another size) that one, loaded once per process; a profile whose settings cannot work gets the
    defaults, and the log says why."""
    try:
        options = WhisperOptions.from_profile(profile.stt)
    except ConfigError as exc:
        log.warning(
            "agent profile stt settings unusable; defaults",
            extra={"agent_profile_id": profile.id, "error": exc.message},
        )
        options = WhisperOptions()
    models: dict[str, Any] = proc.userdata.setdefault("whisper_models", {})
    if proc.userdata.get("whisper") is not None:
        models.setdefault(IN_PROCESS_WHISPER, proc.userdata["whisper"])
    if options.model not in models and proc.userdata.get("whisper") is not None:
        log.info("loading another Whisper model for this profile", extra={"model": options.model})
        models[options.model] = await asyncio.to_thread(load_whisper, options.model)
    return options, models.get(options.model, proc.userdata.get("whisper"))


def speech_for(settings: Settings, profile: Profile) -> SpeechChoice:
    """The profile's own STT and TTS providers; a section this worker's settings cannot honour (the
    control plane checked it against its own) leaves the operator's, and the log says why."""
    try:
        stt_provider = stt_provider_of(settings, profile.stt)
    except ConfigError as exc:
        log.warning(
            "agent profile stt provider unusable here; the operator's",
            extra={"agent_profile_id": profile.id, "error": exc.message},
        )
        stt_provider = ""
    try:
        tts_provider, tts_voice = tts_choice_of(settings, profile.tts)
    except ConfigError as exc:
        log.warning(
            "agent profile tts provider unusable here; the operator's",
            extra={"agent_profile_id": profile.id, "error": exc.message},
        )
        tts_provider, tts_voice = "", ""
    return SpeechChoice(stt_provider, tts_provider, tts_voice)


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


class CallSlots(AgentServer):
    """The agent server, counting a call accepted but not yet running as one call slot.

    livekit-agents estimates such a call as ``load_threshold / num_idle_processes`` of load while no
    call runs: with two job processes kept ready for four slots, two callers arriving together made
    the worker look full (0.5 each), and a third was refused with slots free. The load here is calls
    over capacity, so an accepted call is exactly one slot: ``1 / capacity``."""

    capacity: int = 1

    def _get_effective_load(self) -> float:
        return self._worker_load + self._reserved_slots / self.capacity

    async def _invoke_load_fnc(self) -> float:
        # on the event loop, which owns the job processes (livekit-agents runs load_fnc in a thread,
        # one more hop before a caller's availability answer on a loaded machine)
        return len(self.active_jobs) / self.capacity

    async def _update_job_status(self, proc: JobExecutor) -> None:
        await super()._update_job_status(proc)
        # a call started or ended: tell LiveKit the load now, not at the next 2.5 s status tick (a
        # full worker would look full that long after a call ended, and a caller would get busy)
        self._worker_load = await self._invoke_load_fnc()
        await self._update_worker_status()


def build_server(settings: Settings) -> AgentServer:
    creds = livekit_credentials(settings)
    server = CallSlots.from_server_options(
        WorkerOptions(
            entrypoint_fnc=entrypoint,
            prewarm_fnc=prewarm,
            agent_name=settings.agent_name,
            ws_url=creds.url,
            api_key=creds.api_key,
            api_secret=creds.api_secret,
            host=settings.listen_address,
            port=settings.worker_http_port,
            # prewarm loads Piper, Whisper and Silero: allow for a loaded 2-core machine
            initialize_process_timeout=60.0,
            # a job process is light with shared speech models: two wait ready for calls that come together
            num_idle_processes=2 if settings.speech_socket or settings.shared_models else 1,
            load_fnc=lambda server: len(server.active_jobs) / settings.call_capacity,
            load_threshold=1.0,
            # phoneagent's series and livekit-agents' own; job processes write to the directory the
            # worker command set (phoneagent.worker.multiproc), absent when run another way
            prometheus_port=settings.worker_metrics_port,
            prometheus_multiproc_dir=os.environ.get("PROMETHEUS_MULTIPROC_DIR"),
        )
    )
    if not isinstance(server, CallSlots):  # from_server_options builds its own class
        raise TypeError(f"expected CallSlots, got {type(server).__name__}")
    server.capacity = settings.call_capacity
    return server


def run_worker(settings: Settings, *, dev: bool = False) -> None:
    check_providers(settings)  # a mode without its key or model stops here, naming the variable
    host = speech_host.start_for(settings)
    try:
        run_agent_server(build_server(settings), log_level=settings.log_level, dev=dev)
    finally:
        if host is not None:
            host.stop()
