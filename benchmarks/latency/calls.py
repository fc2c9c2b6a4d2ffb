"""One benchmark call: a baresip phone asks questions in the caller's voice and waits for each reply;
every turn is timed at the wire (RTP on loopback), at the phone (baresip's own recordings) and, from
the worker's reported instants, hop by hop.

The questions fit the benchmark's call flow (the built-in one plus a callback intent). Some hold a
0.7 s pause inside the sentence, said as one sentence with the silence inserted at a word boundary
(``paused_caller_speech``), so the words before the pause carry a running intonation:

- ``unfinished``: the words before the pause are plainly not a whole request ("I would like to book
  an ...", "And do you ...", a phone number half said); a reply inside the pause cuts the caller off;
- ``clause``: the words before the pause are a whole question by themselves ("When do you close ...
  on Saturday afternoon?"): reported apart, since no text rule can tell it from a finished one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.latency.wire import RtpCapture, Stream
from tests.peers.sip_phone import BaresipPhone, wait_until
from tests.peers.voices import caller_speech, paused_caller_speech
from tests.peers.wav import read_growing_wav, rms_dbfs, silence, write_wav

MID_PAUSE_S = 0.7
RATE = 8000
FRAME = RATE // 50
# a question's parts are joined across its pause; questions are further apart than this
QUESTION_GAP_S = MID_PAUSE_S + 0.3
REPLY_GAP_S = 0.45
# the phone asks its next question once the reply has been followed by this much silence
REPLY_DONE_SILENCE_S = 1.2
PHONE_RTP_BASE = 44000
PHONE_RTP_SPAN = 50


@dataclass(frozen=True)
class Question:
    before: str
    after: str | None  # said after the pause; None: no pause
    kind: str  # whole | unfinished | clause
    intent: str  # what the benchmark's flow should answer

    @property
    def text(self) -> str:
        return self.before + (f" {self.after}" if self.after else "")


QUESTIONS = [
    Question("What are your opening hours?", None, "whole", "hours"),
    Question("I would like to book an", "appointment for next week.", "unfinished", "appointment"),
    Question("Tuesday works for me.", None, "whole", "day"),
    Question("And do you", "close early on Fridays?", "unfinished", "hours"),
    Question("Can I schedule a booking for Monday?", None, "whole", "appointment"),
    Question("My number is four one five", "five five five one two three four.", "unfinished", "callback"),
    Question("Thursday please.", None, "whole", "day"),
    Question("Could I make an appointment for", "Wednesday morning?", "unfinished", "appointment"),
    Question("Are you open on Saturday?", None, "whole", "hours"),
    Question("When do you close", "on Saturday afternoon?", "clause", "hours"),
]

REPLIES = {
    "hours": "We are open Monday to Friday from nine to five, and Saturday from ten to two.",
    "appointment": "I can book that for you. Which day works best?",
    "day": "Great, you are booked. Anything else?",
    "callback": "Thank you, we will call you back on that number.",
}
SCRIPT = {
    "intents": [
        {
            "name": "hours",
            "keywords": ["hours", "open", "opening", "close", "closing"],
            "reply": REPLIES["hours"],
        },
        {
            "name": "appointment",
            "keywords": ["appointment", "book", "booking", "schedule"],
            "reply": REPLIES["appointment"],
        },
        {
            "name": "day",
            "keywords": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "reply": REPLIES["day"],
        },
        {"name": "callback", "keywords": ["number", "call"], "reply": REPLIES["callback"]},
    ]
}


@dataclass(frozen=True)
class QuestionWav:
    path: Path
    speech_ends_s: float  # after the start of playback


def question_wavs(tmp: Path, voice: object, questions: list[Question]) -> list[QuestionWav]:
    wavs = []
    for i, q in enumerate(questions):
        if q.after is None:
            speech = caller_speech(q.before, voice)
        else:
            speech = paused_caller_speech(q.before, q.after, voice, MID_PAUSE_S)
        lead = silence(0.3)
        path = write_wav(tmp / f"q{i}.wav", np.concatenate([lead, speech, silence(40)]), RATE)
        wavs.append(QuestionWav(path, (lead.size + speech.size) / RATE))
    return wavs


class GrowthClock(threading.Thread):
    """Maps sample indexes of a WAV being written in real time to the wall-clock time they appeared."""

    def __init__(self, find: Callable[[], Path | None]) -> None:
        super().__init__(daemon=True)
        self._find = find
        self.points: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            path = self._find()
            if path is not None and path.exists():
                n = max(0, (path.stat().st_size - 44) // 2)
                if not self.points or n != self.points[-1][1]:
                    self.points.append((time.time(), n))
            time.sleep(0.005)

    def time_of(self, sample: int) -> float:
        """When ``sample`` was written: the first poll at which the file held it."""
        for t, n in self.points:
            if n > sample:
                return t
        raise ValueError("sample beyond what was seen")


def segments(audio: np.ndarray, *, threshold: float = -45.0, min_gap_s: float) -> list[tuple[int, int]]:
    """Loud stretches of ``audio`` as (start, end) samples; gaps shorter than ``min_gap_s`` are joined."""
    n = audio.size // FRAME
    loud = [rms_dbfs(audio[i * FRAME : (i + 1) * FRAME]) > threshold for i in range(n)]
    out: list[tuple[int, int]] = []
    i = 0
    while i < n:
        if not loud[i]:
            i += 1
            continue
        j = i
        while j < n and loud[j]:
            j += 1
        if out and (i * FRAME - out[-1][1]) < min_gap_s * RATE:
            out[-1] = (out[-1][0], j * FRAME)
        else:
            out.append((i * FRAME, j * FRAME))
        i = j
    return out


@dataclass
class CallResult:
    index: int
    caller: str  # the phone's SIP user: the call record's from number
    asked: list[int]
    wire: list[dict[str, Any]]  # per question: at the wire
    phone: list[float | None]  # per question: latency at the phone (None: cut off or not heard)


def phone_ports(index: int) -> tuple[int, int]:
    start = PHONE_RTP_BASE + PHONE_RTP_SPAN * (index % 20)
    return start, start + PHONE_RTP_SPAN - 1


def one_call(
    tmp: Path, index: int, uri: str, wavs: list[QuestionWav], order: list[int], capture: RtpCapture
) -> CallResult:
    """One phone call asking the questions ``order`` names, each once, waiting for each reply."""
    ports = phone_ports(index)
    caller = f"bench{index}"
    phone = BaresipPhone(tmp / f"phone{index}-{time.monotonic_ns()}", rtp_ports=ports, user=caller).start()
    began = time.time()
    sent = GrowthClock(lambda: next(iter(sorted(phone.workdir.glob("rec/dump-*-enc.wav"))), None))
    heard = GrowthClock(phone.received_wav)
    sent.start()
    heard.start()
    try:
        phone.dial(uri, timeout=60)
        phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=REPLY_DONE_SILENCE_S, timeout=120)
        for q in order:
            mark = phone.received_audio().size
            phone.play(wavs[q].path)
            # the phone says all of its question, whatever the agent does meanwhile
            said = time.monotonic() + wavs[q].speech_ends_s

            def replied(mark: int = mark, said: float = said) -> bool:
                if time.monotonic() < said + REPLY_DONE_SILENCE_S:
                    return False
                tail = phone.received_audio()[mark:]
                seg = segments(tail, min_gap_s=REPLY_GAP_S)
                return len(seg) >= 1 and (tail.size - seg[-1][1]) > REPLY_DONE_SILENCE_S * RATE

            wait_until(replied, timeout=90, what="the agent's reply")
        phone.bye_confirmed(since=phone.hangup())
    finally:
        phone.close()
        sent.stop.set()
        heard.stop.set()
    wire = at_the_wire(capture, ports, len(order), since=began, until=time.time())
    return CallResult(index, caller, order, wire, at_the_phone(phone, sent, heard))


def at_the_wire(
    capture: RtpCapture, ports: tuple[int, int], n: int, *, since: float, until: float
) -> list[dict[str, Any]]:
    """Each question's end and its reply's onset, from the RTP packets of this phone's ports while
    its call lasted (another call may use the same ports before or after)."""
    mine = [
        p
        for p in capture.packets()
        if since <= p.at <= until and (ports[0] <= p.src <= ports[1] or ports[0] <= p.dst <= ports[1])
    ]
    port = next((p.src for p in mine if ports[0] <= p.src <= ports[1]), None)
    if port is None:
        return []
    # a sender's packet time is when its 20 ms ended: its audio spans the 20 ms before
    said = Stream([p for p in mine if p.src == port]).shifted(-0.02).speech(min_gap_s=QUESTION_GAP_S)
    replies = Stream([p for p in mine if p.dst == port]).speech(min_gap_s=REPLY_GAP_S)
    # the greeting came first; the questions are the phone's last n loud stretches
    out = []
    for start, end in said[-n:]:
        onset = next((s for s, _e in replies if s > start), None)
        out.append(
            {
                "said_from": round(start, 4),
                "said_to": round(end, 4),
                "reply_at": None if onset is None else round(onset, 4),
                "cut_off": onset is not None and onset < end,
                "latency_ms": None if onset is None or onset < end else round((onset - end) * 1000, 1),
            }
        )
    return out


def at_the_phone(phone: BaresipPhone, sent: GrowthClock, heard: GrowthClock) -> list[float | None]:
    """The figure the benchmark gave before the wire capture: baresip's recordings, time-stamped as
    they grew (about 10 ms resolution)."""
    enc = read_growing_wav(next(iter(sorted(phone.workdir.glob("rec/dump-*-enc.wav")))))
    received = phone.received_wav()
    assert received is not None, f"baresip wrote no received-audio recording in {phone.workdir}/rec"
    dec = read_growing_wav(received)
    said = segments(enc, min_gap_s=QUESTION_GAP_S)
    replies = segments(dec, min_gap_s=REPLY_GAP_S)
    out: list[float | None] = []
    for start, end in said:
        onset = next((s for s, _e in replies if heard.time_of(s) > sent.time_of(start)), None)
        if onset is None or heard.time_of(onset) < sent.time_of(end - 1):
            out.append(None)
            continue
        out.append(round((heard.time_of(onset) - sent.time_of(end - 1)) * 1000, 1))
    return out
