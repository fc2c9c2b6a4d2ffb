"""The conversation loop on real SIP calls: a caller who pauses in mid-sentence is answered once,
after finishing; a caller who speaks over the agent stops it, and what it had not said is not
recorded as said; four callers at once all get the right answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from phoneagent.config import Settings
from phoneagent.stack.services import Stack
from tests.peers.sip_phone import BaresipPhone, wait_until
from tests.peers.voices import caller_speech, load_caller_voice, paused_caller_speech
from tests.peers.wav import (
    read_growing_wav,
    silence,
    speech_seconds,
    trailing_silence_seconds,
    write_wav,
)
from tests.stack_fixtures import ApiProcess, ControlPlane, WorkerProcess

RATE = 8000
NUMBER = "+15550141"
REPLIES = {
    "hours": "We are open Monday to Friday from nine to five, and Saturday from ten to two.",
    "appointment": "I can book that for you. Which day works best?",
    "day": "Great, you are booked. Anything else?",
}
SCRIPT = {
    "intents": [
        {"name": "hours", "keywords": ["hours", "open", "close"], "reply": REPLIES["hours"]},
        {
            "name": "appointment",
            "keywords": ["appointment", "book", "schedule"],
            "reply": REPLIES["appointment"],
        },
        {"name": "day", "keywords": ["monday", "tuesday", "thursday"], "reply": REPLIES["day"]},
    ]
}


@dataclass
class Line:
    c: httpx.Client
    uri: str
    settings: Settings


@contextmanager
def _line_on(c: httpx.Client, settings: Settings, number: str, **profile: object) -> Iterator[Line]:
    """``number`` answered by the scripted agent, provisioned through the control plane ``c`` talks to."""
    host = settings.bind_host
    agent = c.post("/agents", json={"name": "loop", "llm": {"script": SCRIPT}, **profile})
    trunk = c.post("/trunks/inbound", json={"name": "loop", "numbers": [number], "allowed_addresses": [host]})
    rule = c.post(
        "/dispatch-rules",
        json={"name": "loop", "inbound_trunk_id": trunk.json()["id"], "agent_profile_id": agent.json()["id"]},
    )
    for r in (agent, trunk, rule):
        assert r.status_code == 201, r.text
    try:
        yield Line(c, f"sip:{number}@{host}:{settings.sip_port}", settings)
    finally:
        c.delete(f"/dispatch-rules/{rule.json()['id']}")
        c.delete(f"/trunks/inbound/{trunk.json()['id']}")


@pytest.fixture(scope="module")
def line(stack: Stack, control_plane: ControlPlane, worker: WorkerProcess) -> Iterator[Line]:
    with (
        httpx.Client(base_url=control_plane.url, headers=control_plane.headers, timeout=30) as c,
        _line_on(c, stack.settings, NUMBER, silence_timeout_s=60) as line,
    ):
        yield line


def _wav(path: Path, speech: np.ndarray) -> tuple[Path, float]:
    """The phone's microphone: 0.3 s, the speech, then silence; and when the speech ends (s)."""
    lead = silence(0.3)
    return write_wav(path, np.concatenate([lead, speech, silence(60)]), RATE), (
        lead.size + speech.size
    ) / RATE


def _loud(audio: np.ndarray) -> np.ndarray:
    """Which 20 ms frames of 8 kHz audio are louder than -45 dBFS."""
    n = audio.size // 160
    frames = audio[: n * 160].astype(np.float64).reshape(n, 160)
    loud: np.ndarray = 20 * np.log10(np.maximum(np.sqrt(np.mean(frames**2, axis=1)), 1e-9) / 32768) > -45
    return loud


def _sent(phone: BaresipPhone) -> np.ndarray:
    return read_growing_wav(next(iter(sorted(phone.workdir.glob("rec/dump-*-enc.wav")))))


def _record(line: Line, caller: str, *, agent_turns: int) -> dict[str, Any]:
    """The call record of ``caller`` (its SIP user), once ended with ``agent_turns`` agent turns."""
    found: dict[str, Any] = {}

    def ready() -> bool:
        for item in line.c.get("/calls", params={"limit": 50}).json()["items"]:
            if item["from_number"].endswith(caller) and item["status"] == "ended":
                rec = line.c.get(f"/calls/{item['id']}").json()
                if sum(t["speaker"] == "agent" for t in rec["transcript"]) >= agent_turns:
                    found.update(rec)
                    return True
        return False

    wait_until(ready, timeout=60, what=f"the call record of {caller} with {agent_turns} agent turns")
    return found


def _wait_reply(phone: BaresipPhone, mark: int, *, after_s: float = 0.0, timeout: float = 60) -> None:
    """Until a reply (after sample ``mark`` of what the phone heard) is followed by 1.2 s of silence."""

    def done() -> bool:
        tail = phone.received_audio()[mark:]
        heard_enough = tail.size / RATE >= after_s
        return heard_enough and speech_seconds(tail) >= 0.8 and trailing_silence_seconds(tail) >= 1.2

    wait_until(done, timeout=timeout, what="the agent's reply at the caller")


def test_a_caller_pausing_in_mid_sentence_is_answered_once_after_finishing(
    line: Line, tmp_path: Path
) -> None:
    wav, speech_ends_s = _wav(
        tmp_path / "q.wav",
        paused_caller_speech(
            "I would like to book an", "appointment for next week.", load_caller_voice(), 0.7
        ),
    )
    phone = BaresipPhone(tmp_path / "phone", rtp_ports=(43100, 43149), user="pauser").start()
    try:
        phone.dial(line.uri, timeout=30)
        phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.2, timeout=90)  # the greeting
        mark = phone.received_audio().size
        phone.play(wav)
        _wait_reply(phone, mark, after_s=speech_ends_s + 1.2)
        heard = phone.received_audio()[mark:]
        phone.bye_confirmed(since=phone.hangup())
    finally:
        phone.close()
    # at the phone: nothing from the agent until the caller had said the whole sentence (both
    # recordings start with the call; 60 ms of slack for the phone's own buffering)
    loud = _loud(heard)
    first_reply_frame = int(np.argmax(loud))
    assert loud.any() and first_reply_frame * 0.02 > speech_ends_s - 0.06, (first_reply_frame, speech_ends_s)
    rec = _record(line, "pauser", agent_turns=2)
    turns = [(t["speaker"], t["text"]) for t in rec["transcript"]]
    print("turns:", turns)
    callers = [text for who, text in turns if who == "caller"]
    agents = [text for who, text in turns[1:] if who == "agent"]
    assert len(callers) == 1 and "appointment" in callers[0].lower(), turns
    assert agents == [REPLIES["appointment"]], turns
    _reply_counted_in_worker_metrics(line)


def _reply_counted_in_worker_metrics(line: Line) -> None:
    """The worker's /metrics (its job processes' series summed, and livekit-agents' own) counted the
    reply: scraped and parsed as Prometheus would."""
    port = line.settings.worker_metrics_port
    text = httpx.get(f"http://{line.settings.bind_host}:{port}/metrics", timeout=10).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples.get(("phoneagent_reply_latency_seconds_count", ())), text[:2000]
    assert samples.get(("phoneagent_reply_stage_seconds_count", (("stage", "tts"),))), text[:2000]
    assert samples.get(("phoneagent_worker_call_capacity", ())) == line.settings.call_capacity
    assert any(name.startswith("lk_agents_") for name, _ in samples), sorted(samples)[:20]


def test_barge_in_stops_the_agent_within_300_ms_and_the_unsaid_part_is_not_recorded(
    line: Line, voice: object, tmp_path: Path
) -> None:
    ask, _ = _wav(tmp_path / "ask.wav", caller_speech("What are your opening hours?", voice))
    interrupt, _ = _wav(tmp_path / "int.wav", caller_speech("Can I book an appointment?", voice))
    phone = BaresipPhone(tmp_path / "phone", rtp_ports=(43150, 43199), user="barger").start()
    try:
        phone.dial(line.uri, timeout=30)
        phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.2, timeout=90)
        mark = phone.received_audio().size
        phone.play(ask)
        # the hours reply (about 4.5 s) has played for a second: the caller speaks over it
        wait_until(
            lambda: speech_seconds(phone.received_audio()[mark:]) >= 1.0,
            timeout=60,
            what="a second of the agent's reply",
        )
        cut = phone.received_audio().size
        sent_mark = _sent(phone).size
        phone.play(interrupt)
        _wait_reply(phone, cut, after_s=3.0)
        phone.bye_confirmed(since=phone.hangup())
    finally:
        phone.close()
    # at the phone (its recordings of what it sent and heard both start with the call): from the
    # caller's first sound to the agent's last before it fell silent, transport both ways included
    onset = sent_mark + int(np.argmax(_loud(_sent(phone)[sent_mark:]))) * 160
    heard = _loud(phone.received_audio()[onset:])
    quiet = np.flatnonzero(np.convolve(~heard, np.ones(15, dtype=int), mode="valid") == 15)  # 300 ms
    print(f"at the phone the agent stopped {quiet[0] * 20 if quiet.size else None} ms after the caller began")
    rec = _record(line, "barger", agent_turns=3)
    barge = [e["payload"]["data"] for e in rec["events"] if e["type"] == "barge_in"]
    agent = [t for t in rec["transcript"] if t["speaker"] == "agent"]
    print("barge-ins:", barge, "agent turns:", [(t["text"], t["interrupted"]) for t in agent])
    assert barge, "no barge-in reported"
    # from the caller's first sound reaching the worker to the agent's audio stopped at the worker
    assert barge[0]["ms"] <= 300, barge
    hours = agent[1]
    assert hours["interrupted"] is True
    # what was said before the cut, not the whole reply
    assert REPLIES["hours"].startswith(hours["text"].rstrip(".")) and len(hours["text"]) < len(
        REPLIES["hours"]
    )
    assert agent[2]["text"] == REPLIES["appointment"]


def _worker_idle(settings: Settings) -> bool:
    """The worker runs no job and has told LiveKit so (its load, reported every few seconds, is 0): a
    call that just ended elsewhere no longer holds one of its four places."""
    info = httpx.get(f"http://{settings.bind_host}:{settings.worker_http_port}/worker", timeout=5).json()
    return int(info.get("active_jobs", 0)) == 0 and float(info.get("worker_load", 0.0)) == 0.0


def test_four_callers_at_once_all_get_the_right_answers(
    stack: Stack, line: Line, voice: object, tmp_path: Path
) -> None:
    # four callers fill the 2-core worker's four places: the previous test's call must have left
    wait_until(lambda: _worker_idle(stack.settings), timeout=60, what="the worker to be idle")
    questions = [
        ("What are your opening hours?", "hours"),
        ("Can I schedule an appointment?", "appointment"),
        ("Tuesday works for me.", "day"),
    ]
    wavs = [
        _wav(tmp_path / f"q{i}.wav", caller_speech(text, voice))
        for i, (text, _intent) in enumerate(questions)
    ]
    errors: list[str] = []
    answered = [threading.Event() for _ in range(4)]

    def call(i: int) -> None:
        phone = BaresipPhone(
            tmp_path / f"phone{i}", rtp_ports=(43200 + 50 * i, 43249 + 50 * i), user=f"four{i}"
        )
        try:
            phone.start()
            phone.dial(line.uri, timeout=60)
            answered[i].set()
            phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.2, timeout=120)
            for k in range(len(questions)):
                wav, speech_ends_s = wavs[(i + k) % len(questions)]
                mark = phone.received_audio().size
                phone.play(wav)
                _wait_reply(phone, mark, after_s=speech_ends_s + 1.2, timeout=90)
            phone.bye_confirmed(since=phone.hangup())
        except Exception as exc:  # noqa: BLE001 - each caller's failure is reported with the others'
            errors.append(f"caller {i}: {type(exc).__name__}: {exc}")
        finally:
            answered[i].set()
            phone.close()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for i, t in enumerate(threads):
        t.start()
        answered[i].wait(90)  # the next caller dials once this one is answered, as calls come in
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(4):
        rec = _record(line, f"four{i}", agent_turns=4)
        said = [t["text"] for t in rec["transcript"] if t["speaker"] == "agent"][1:]
        expected = [REPLIES[questions[(i + k) % len(questions)][1]] for k in range(len(questions))]
        assert said == expected, (i, said, [t["text"] for t in rec["transcript"] if t["speaker"] == "caller"])


@contextmanager
def _worker_env(worker: WorkerProcess, **env: str) -> Iterator[None]:
    """The worker restarted with ``env`` on top of its own, then restarted as it was."""
    saved = worker.env
    worker.env = {**saved, **env}
    try:
        worker.start()
        yield
    finally:
        worker.env = saved
        worker.start()


def test_a_caller_beyond_capacity_hears_busy_at_once_and_the_record_says_over_capacity(
    stack: Stack, line: Line, worker: WorkerProcess, tmp_path: Path
) -> None:
    wait_until(lambda: _worker_idle(stack.settings), timeout=60, what="the worker to be idle")
    with _worker_env(worker, PHONEAGENT_MAX_CONCURRENT_CALLS="1"):
        first = BaresipPhone(tmp_path / "first", rtp_ports=(43600, 43649), user="slotholder")
        extra = BaresipPhone(tmp_path / "extra", rtp_ports=(43650, 43699), user="overflow")
        try:
            first.start().dial(line.uri, timeout=60)  # takes the worker's one call slot
            extra.start()
            started = time.monotonic()
            extra.wait_for(r"session closed: 486", timeout=30, start=extra.start_dial(line.uri))
            busy_after_s = time.monotonic() - started
            print(f"[over capacity] the extra caller heard 486 Busy Here {busy_after_s:.2f} s after dialing")
            assert not any("Call established" in ln for ln in extra.output)
            # a busy signal, not the 17 s of ringing until the sweeper gave up on a lost worker
            assert busy_after_s < 6.0, busy_after_s
            first.bye_confirmed(since=first.hangup())
        finally:
            first.close()
            extra.close()
    refused = _record(line, "overflow", agent_turns=0)
    assert refused["end_reason"] == "over_capacity", refused
    assert refused["answered_at"] is None and refused["duration_ms"] is None, refused  # never answered
    assert not [t for t in refused["transcript"] if t["speaker"] == "agent"]
    served = _record(line, "slotholder", agent_turns=0)
    assert served["end_reason"] == "customer_hangup", served


OUTAGE_S = 60.0


def test_the_control_plane_down_60_s_mid_call_the_call_goes_on_and_its_record_is_whole_afterwards(
    stack: Stack, worker: WorkerProcess, voice: object, tmp_path: Path
) -> None:
    """The worker's spool keeps every turn, latency and event while the control plane is down, and
    delivers them afterwards, in order, once."""
    questions = [
        ("What are your opening hours?", "hours"),
        ("Can I schedule an appointment?", "appointment"),
        ("Tuesday works for me.", "day"),
    ]
    wavs = [_wav(tmp_path / f"q{i}.wav", caller_speech(text, voice)) for i, (text, _) in enumerate(questions)]
    api = ApiProcess.create(stack.settings, f"sqlite:///{tmp_path / 'cp.db'}", tmp_path / "api")
    (tmp_path / "api").mkdir()
    api.start()
    with (
        httpx.Client(base_url=api.url, headers=api.headers, timeout=30) as c,
        _line_on(c, stack.settings, "+15550142", silence_timeout_s=120) as line,
        _worker_env(worker, PHONEAGENT_CONTROL_PLANE_URL=api.url),
    ):
        phone = BaresipPhone(tmp_path / "phone", rtp_ports=(43700, 43749), user="outage").start()
        try:
            phone.dial(line.uri, timeout=60)
            phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.2, timeout=90)  # the greeting
            api.kill()
            down_at = time.monotonic()
            for wav, speech_ends_s in wavs:
                mark = phone.received_audio().size
                phone.play(wav)
                _wait_reply(phone, mark, after_s=speech_ends_s + 1.2, timeout=90)
            # the fault lasts its full length (not a wait for an event): the call stays up meanwhile
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
            assert phone.output and not any("session closed" in ln for ln in phone.output)
            api.start()
            print(f"[outage] control plane down {time.monotonic() - down_at:.1f} s during the call")
            phone.bye_confirmed(since=phone.hangup())
        finally:
            phone.close()
        rec = _record(line, "outage", agent_turns=4)
    api.stop()
    turns = rec["transcript"]
    said = [t["text"] for t in turns if t["speaker"] == "agent"]
    assert said[1:] == [REPLIES[intent] for _text, intent in questions], turns
    assert [t["seq"] for t in turns] == sorted({t["seq"] for t in turns}), turns  # in order, once
    assert [t["speaker"] for t in turns] == ["agent", "caller", "agent", "caller", "agent", "caller", "agent"]
    assert all(t["total_ms"] for t in turns[2::2]), turns  # every reply's latency reached the record
    worker_events = [(e["type"], e["event_id"]) for e in rec["events"] if e["source"] == "worker"]
    assert len(worker_events) == len(set(worker_events)), worker_events
    assert rec["end_reason"] == "customer_hangup", rec
