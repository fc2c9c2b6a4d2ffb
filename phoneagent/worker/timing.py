"""Where each turn's time goes, as the worker sees it, and the turns reported to the control plane.

For every reply, wall-clock instants (``time.time()``, the clock a packet capture on the same host
uses) from the caller's last sound reaching the worker to the reply's first sound leaving it:

    heard       the last loud 5 ms of the caller's audio arrived at the worker (an energy tap on the
                audio the room delivers, before VAD and STT)
    eos         the VAD called the end of speech (after its silence)
    transcript  the final transcript arrived
    committed   the turn was taken as over (transcript in hand, end-of-turn wait done)
    brain       the brain's first words
    tts         the first synthesized audio
    out         the first frame went into the room's audio source

``split_ms`` turns them into consecutive slices that add up to ``out - heard`` (a slice whose
instant came earlier than the one before it, e.g. a transcript ready before the VAD was sure, is 0).
What happens before ``heard`` (the phone, livekit-sip, LiveKit) and after ``out`` (back out to the
phone) is transport, which only a capture at the wire sees (benchmarks/latency).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import AgentSession, llm
from livekit.agents.voice import io
from livekit.agents.voice.events import (
    ConversationItemAddedEvent,
    UserInputTranscribedEvent,
    UserStateChangedEvent,
)

from phoneagent.worker.lead_in import LeadIn

MARKS = ("heard", "eos", "transcript", "committed", "brain", "tts", "out")
# consecutive slices of heard -> out, each named for what the worker waited on
SLICES = ("vad", "transcript", "end_of_turn", "brain", "tts", "playout")
SPEECH_DBFS = -45.0
WINDOW_S = 0.005
# a caller's sound after this much quiet is an onset; an agent cut short within BARGE_IN_WINDOW_S of
# one was cut short by it
QUIET_BEFORE_ONSET_S = 0.3
BARGE_IN_WINDOW_S = 2.0


def last_loud_end(frame: rtc.AudioFrame) -> float | None:
    """Seconds from the end of ``frame`` back to the end of its last loud 5 ms (None: all quiet)."""
    pcm = np.frombuffer(frame.data, dtype=np.int16)
    if frame.num_channels > 1:
        pcm = pcm[:: frame.num_channels]
    step = max(1, int(frame.sample_rate * WINDOW_S))
    n = pcm.size // step
    if n == 0:
        return None
    w = pcm[: n * step].astype(np.float64).reshape(n, step)
    loud = 20 * np.log10(np.maximum(np.sqrt(np.mean(w**2, axis=1)), 1e-9) / 32768.0) > SPEECH_DBFS
    if not loud.any():
        return None
    last = n - 1 - int(np.argmax(loud[::-1]))
    return (pcm.size - (last + 1) * step) / frame.sample_rate


def split_ms(marks: dict[str, float]) -> dict[str, int] | None:
    """The slices of ``heard -> out`` in ms, or None when the turn lacks its ends."""
    if "heard" not in marks or "out" not in marks:
        return None
    out: dict[str, int] = {}
    prev = marks["heard"]
    for name, mark in zip(SLICES, MARKS[1:], strict=True):
        at = max(prev, marks.get(mark, prev))
        if mark == "out":
            at = marks["out"]
        out[name] = int(round((at - prev) * 1000))
        prev = at
    return out


class TurnClock:
    """Collects the instants of the turn in progress; :meth:`committed` closes the caller's part, and
    the reply's instants go to that turn until :meth:`take` hands it over."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        on_barge_in: Callable[[dict[str, float]], object] | None = None,
    ) -> None:
        self._clock = clock
        self._heard: float | None = None
        self._onset: float | None = None  # the caller's latest first sound after a quiet spell
        self._onset_told = True
        self._open: dict[str, float] = {}
        self._turn: dict[str, float] | None = None
        self._on_barge_in = on_barge_in

    # ---- the caller ------------------------------------------------------------------------------

    async def tap(self, audio: AsyncIterable[rtc.AudioFrame]) -> AsyncIterator[rtc.AudioFrame]:
        """Pass the room's audio through, noting when the caller's sound started and last arrived."""
        async for frame in audio:
            back = last_loud_end(frame)
            if back is not None:
                now = self._clock()
                if self._heard is None or now - self._heard > QUIET_BEFORE_ONSET_S:
                    # the frame's sound began no later than its start
                    self._onset, self._onset_told = now - frame.duration, False
                self._heard = now - back
            yield frame

    def agent_cut_off(self) -> None:
        """The agent's speech was paused or cleared: a barge-in when the caller had just started."""
        now = self._clock()
        if self._onset is None or self._onset_told or now - self._onset > BARGE_IN_WINDOW_S:
            return
        self._onset_told = True
        if self._on_barge_in is not None:
            self._on_barge_in(
                {
                    "caller_started_at": round(self._onset, 4),
                    "agent_stopped_at": round(now, 4),
                    "ms": int(round((now - self._onset) * 1000)),
                }
            )

    def on_user_state(self, ev: UserStateChangedEvent) -> None:
        # now, not ev.created_at: livekit-agents dates the event back to where it thinks speech ended
        if ev.old_state == "speaking" and ev.new_state != "speaking":
            self._open["eos"] = self._clock()

    def on_transcript(self, ev: UserInputTranscribedEvent) -> None:
        if ev.is_final:
            self._open["transcript"] = self._clock()

    def committed(self) -> None:
        turn = dict(self._open, committed=self._clock())
        if self._heard is not None:
            turn["heard"] = self._heard
        self._turn, self._open = turn, {}

    # ---- the reply -------------------------------------------------------------------------------

    def mark(self, name: str) -> None:
        """The first ``brain`` or ``tts`` instant of the reply being made."""
        if self._turn is not None:
            self._turn.setdefault(name, self._clock())

    async def first_item(self, name: str, stream: AsyncIterable[Any]) -> AsyncIterator[Any]:
        """Pass ``stream`` through, marking ``name`` at its first item."""
        async for item in stream:
            self.mark(name)
            yield item

    def take(self, out_at: float | None) -> dict[str, float] | None:
        """The finished turn's instants, with the reply's first frame out at ``out_at``."""
        turn, self._turn = self._turn, None
        if turn is None:
            return None
        if out_at is not None:
            turn["out"] = out_at
        return turn


class OutputTap(io.AudioOutput):
    """The agent's audio on its way to the room, unchanged; tells ``clock`` when it is cut short
    (paused or cleared while it plays: the caller barged in)."""

    def __init__(
        self, next_in_chain: io.AudioOutput, clock: TurnClock, lead_in: LeadIn | None = None
    ) -> None:
        super().__init__(
            label="PhoneOutputTap",
            next_in_chain=next_in_chain,
            capabilities=io.AudioOutputCapabilities(pause=True),
        )
        self._clock = clock
        self._playing = False
        self._lead_in = lead_in  # keeps the first utterance for the recording (worker/lead_in.py)

    @property
    def sample_rate(self) -> int | None:
        return self.next_in_chain.sample_rate if self.next_in_chain else None

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        if self._lead_in is not None:
            self._lead_in.add(frame)
        if self.next_in_chain:
            await self.next_in_chain.capture_frame(frame)
        await super().capture_frame(frame)
        self._playing = True

    def flush(self) -> None:
        super().flush()
        if self.next_in_chain:
            self.next_in_chain.flush()

    def clear_buffer(self) -> None:
        self._cut()
        if self.next_in_chain:
            self.next_in_chain.clear_buffer()

    def pause(self) -> None:
        self._cut()
        super().pause()

    def on_playback_finished(
        self, *, playback_position: float, interrupted: bool, synchronized_transcript: str | None = None
    ) -> None:
        super().on_playback_finished(
            playback_position=playback_position,
            interrupted=interrupted,
            synchronized_transcript=synchronized_transcript,
        )
        self._playing = False
        if self._lead_in is not None:
            self._lead_in.finish()  # the first utterance is over

    def _cut(self) -> None:
        if self._lead_in is not None:
            self._lead_in.finish()
        if self._playing:
            self._clock.agent_cut_off()


class TurnSeq:
    """The numbers of a job's turns on the call's record: 0, 1, 2, ... A job sent to a call already
    going on (after a livekit-server restart, worker/takeover.py) numbers its turns after the ones the
    call's first agent reported, which it cannot know: from ``after_rejoin``."""

    def __init__(self) -> None:
        self._next = 0

    def take(self) -> int:
        n, self._next = self._next, self._next + 1
        return n

    def start_at(self, first: int) -> None:
        self._next = max(self._next, first)


def after_rejoin(call_age_s: float) -> int:
    """The first turn number of a job sent to a call ``call_age_s`` old: past any first agent's (a call
    has far fewer than 10 000 turns), and past any job sent before it (a tenth of a second apart)."""
    return 10_000 + min(int(call_age_s * 10), 89_000)


def report_turns(
    session: AgentSession[Any],
    clock: TurnClock,
    report: Callable[[str, dict[str, Any]], object],
    seq: TurnSeq | None = None,
    on_caller_turn: Callable[[int, str], object] | None = None,
) -> None:
    """Every caller and agent turn, with its timings and the latency split, to the control plane;
    ``on_caller_turn`` hears each caller turn's number and words once it is reported."""
    seq = seq or TurnSeq()
    last_stt: dict[str, float | None] = {"s": None}
    session.on("user_state_changed", clock.on_user_state)
    session.on("user_input_transcribed", clock.on_transcript)

    @session.on("conversation_item_added")
    def _on_item(ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if not isinstance(item, llm.ChatMessage) or item.role not in ("user", "assistant"):
            return
        m = item.metrics
        n = seq.take()
        data: dict[str, object] = {
            "seq": n,
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
            marks = clock.take(m.get("started_speaking_at"))
            if marks is not None:
                data["marks"] = {k: round(v, 4) for k, v in marks.items()}
                data["split_ms"] = split_ms(marks)
            if item.interrupted:
                data["interrupted"] = True
        report("turn", data)
        if item.role == "user" and on_caller_turn is not None:
            on_caller_turn(n, item.text_content or "")
