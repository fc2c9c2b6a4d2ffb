"""Voice-to-voice latency through the real SIP path, per end-of-turn mode, and how many simultaneous
calls one worker holds.

    uv run --frozen --no-sync python -m benchmarks.latency [--calls 4] [--turns 6]
        [--modes vad,turn-detector] [--concurrency 1,2,3,4]

A real stack (Redis, livekit-server, livekit-sip), a real control plane and a real worker in local
mode (faster-whisper tiny.en, Piper, Silero VAD, the scripted brain) on their own ports; baresip
phones call over UDP with PCMU 8 kHz and ask questions in the caller's voice
(phoneagent.testing.voices). Latency of a turn is the time from the end of the caller's speech, as
it left the SIP phone, to the first agent audio as it arrived at the SIP phone. Both moments are
read from baresip's own dumps of what it sent and what it received: a watcher polls both files
every 5 ms and maps each sample to the wall-clock time it was written, so the two files share one
clock (resolution about 10 ms). The split per stage comes from livekit-agents' own per-turn
metrics, reported by the worker to the control plane.

For each end-of-turn mode (``vad``: a fixed silence; ``turn-detector``: LiveKit's local v1-mini
model), ``--calls`` calls one after the other with ``--turns`` questions each; some questions hold a
pause in the middle of the sentence, and a reply that starts before the caller finished (inside
that pause, or over the caller's speech) is a cut-off, never a latency; a question the transcript
holds as two caller turns is a cut-off too. Then, in VAD mode, ``--concurrency`` levels, each
``--rounds`` times: that many phones call at once, asking only the questions without a pause, and
the p95 of each level says how many calls the worker holds under 1.5 s.

Results: benchmarks/results/latency-<stamp>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.calllog.report import git_state, machine
from phoneagent.config import Settings
from phoneagent.db.migrate import REPO_ROOT, upgrade
from phoneagent.speech.piper_tts import load_piper_voice
from phoneagent.speech.whisper_stt import WhisperOptions
from phoneagent.stack.services import Stack
from phoneagent.testing.processes import LoggedProcess
from phoneagent.testing.sip_phone import BaresipPhone, wait_until
from phoneagent.testing.voices import caller_speech
from phoneagent.testing.wav import read_growing_wav, rms_dbfs, silence, write_wav

PORTS = {
    "redis_port": 46389,
    "livekit_port": 47880,
    "livekit_rtc_tcp_port": 47881,
    "livekit_rtc_udp_start": 54000,
    "livekit_rtc_udp_end": 54099,
    "sip_port": 45060,
    "sip_rtp_start": 14000,
    "sip_rtp_end": 14499,
    "sip_health_port": 48089,
    "worker_http_port": 48081,
    "api_port": 48000,
}
# (first part, second part): a second part is said after a 0.7 s pause inside the sentence
QUESTIONS = [
    ("What are your opening hours?", None),
    ("I would like to book", "an appointment for next week."),
    ("Tuesday works for me.", None),
    ("When do you close", "on Saturday afternoon?"),
    ("Can I schedule a booking for Monday?", None),
    ("Thursday please.", None),
]
MID_PAUSE_S = 0.7
RATE = 8000
FRAME = RATE // 50
P95_CEILING_MS = 1500


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
                    self.points.append((time.monotonic(), n))
            time.sleep(0.005)

    def time_of(self, sample: int) -> float:
        """When ``sample`` was written: the first poll at which the file held it."""
        for t, n in self.points:
            if n > sample:
                return t
        raise ValueError("sample beyond what was seen")


def segments(
    audio: np.ndarray, *, threshold: float = -45.0, min_gap_s: float = 0.45
) -> list[tuple[int, int]]:
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


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def summary(values: list[float | None]) -> dict[str, Any]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"n": 0}
    return {
        "n": len(vals),
        "p50": round(pct(vals, 50), 1),
        "p95": round(pct(vals, 95), 1),
        "mean": round(statistics.mean(vals), 1),
        "max": round(max(vals), 1),
    }


def question_wavs(tmp: Path) -> list[Path]:
    voice = load_piper_voice()
    wavs = []
    for i, (first, second) in enumerate(QUESTIONS):
        parts = [silence(0.3), caller_speech(first, voice)]
        if second:
            parts += [silence(MID_PAUSE_S), caller_speech(second, voice)]
        wavs.append(write_wav(tmp / f"q{i}.wav", np.concatenate([*parts, silence(40)]), RATE))
    return wavs


def one_call(
    settings: Settings, tmp: Path, index: int, wavs: list[Path], turns: int, order: list[int] | None = None
) -> list[dict[str, Any]]:
    """One phone call with ``turns`` questions (cycling through ``order``, default all of them); the
    latency of each, and whether it cut the caller off."""
    order = order or list(range(len(wavs)))
    rtp = 44000 + 50 * (index % 20)
    phone = BaresipPhone(tmp / f"phone{index}-{time.monotonic_ns()}", rtp_ports=(rtp, rtp + 49)).start()
    sent = GrowthClock(lambda: next(iter(sorted(phone.workdir.glob("rec/dump-*-enc.wav"))), None))
    heard = GrowthClock(phone.received_wav)
    sent.start()
    heard.start()
    asked: list[int] = []
    try:
        phone.dial(f"sip:{settings.dev_number}@127.0.0.1:{PORTS['sip_port']}", timeout=60)
        phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.2, timeout=120)
        for t in range(turns):
            mark = phone.received_audio().size
            q = order[t % len(order)]
            asked.append(q)
            phone.play(wavs[q])

            def replied(mark: int = mark) -> bool:
                tail = phone.received_audio()[mark:]
                seg = segments(tail)
                return len(seg) >= 1 and (tail.size - seg[-1][1]) > 1.2 * RATE

            wait_until(replied, timeout=90, what="the agent's reply")
        phone.bye_confirmed(since=phone.hangup())
    finally:
        phone.close()
        sent.stop.set()
        heard.stop.set()
    enc = read_growing_wav(next(iter(sorted(phone.workdir.glob("rec/dump-*-enc.wav")))))
    dec = read_growing_wav(phone.received_wav())  # type: ignore[arg-type]
    # what the phone said, question by question: a mid-sentence pause is shorter than the gap joining
    said = segments(enc, min_gap_s=MID_PAUSE_S + 0.2)
    replies = segments(dec)
    out = []
    for q, (start, end) in zip(asked, said, strict=False):
        t_end = sent.time_of(end - 1)
        onset = next((s for s, _e in replies if heard.time_of(s) > sent.time_of(start)), None)
        if onset is None:
            continue
        t_onset = heard.time_of(onset)
        paused = QUESTIONS[q][1] is not None
        # a reply that starts before the caller finished cut the caller off, wherever it starts (in
        # the mid-sentence pause, or over the caller's speech): never a latency
        premature = t_onset < t_end
        out.append(
            {
                "call": index,
                "question": q,
                "mid_sentence_pause": paused,
                "premature_reply": premature,
                "latency_s": None if premature else round(t_onset - t_end, 4),
            }
        )
    return out


class Rig:
    """The stack, the control plane and one worker (restarted per end-of-turn mode)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.settings = Settings(state_dir=tmp / "state", agent_name="phoneagent-bench", **PORTS)  # type: ignore[arg-type]
        self.stack = Stack(self.settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PHONEAGENT_", "LIVEKIT_"))}
        env.update({f"PHONEAGENT_{k.upper()}": str(v) for k, v in PORTS.items()})
        env.update(
            PHONEAGENT_STATE_DIR=str(self.settings.state_dir),
            PHONEAGENT_AGENT_NAME=self.settings.agent_name,
            PHONEAGENT_DATABASE_URL=f"sqlite:///{tmp}/cp.db",
            PHONEAGENT_MAX_CONCURRENT_CALLS="8",
        )
        for knob in (
            "PHONEAGENT_ENDPOINTING_MIN_DELAY_S",
            "PHONEAGENT_ENDPOINTING_MAX_DELAY_S",
            "PHONEAGENT_VAD_MIN_SILENCE_S",
        ):
            if knob in os.environ:
                env[knob] = os.environ[knob]
        self.env = env
        self.worker: LoggedProcess | None = None

    def up(self) -> None:
        self.stack.up(progress=lambda m: print(f"[stack] {m}", flush=True))
        upgrade(f"sqlite:///{self.tmp}/cp.db")
        token = subprocess.run(
            [sys.executable, "-m", "phoneagent.cli", "keys", "create", "--tenant", "bench"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        self.api = LoggedProcess.phoneagent("api", log_path=self.tmp / "api.log", env=self.env)
        self.api.wait_for(r"Uvicorn running", timeout=60)
        self.cp = httpx.Client(
            base_url=f"http://127.0.0.1:{PORTS['api_port']}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        agent = self.cp.post("/agents", json={"name": "bench", "silence_timeout_s": 120}).json()
        trunk = self.cp.post(
            "/trunks/inbound",
            json={"name": "bench", "numbers": [self.settings.dev_number], "allowed_addresses": ["127.0.0.1"]},
        ).json()
        self.cp.post(
            "/dispatch-rules",
            json={"name": "bench", "inbound_trunk_id": trunk["id"], "agent_profile_id": agent["id"]},
        ).raise_for_status()

    def worker_for(self, mode: str) -> None:
        if self.worker is not None:
            self.worker.stop()
        env = {**self.env, "PHONEAGENT_TURN_DETECTION": mode}
        self.worker = LoggedProcess.phoneagent("worker", log_path=self.tmp / f"worker-{mode}.log", env=env)
        self.worker.wait_for(r"registered worker", timeout=180)

    def transcripts_since(self, since: str) -> list[list[dict[str, Any]]]:
        calls = self.cp.get("/calls", params={"limit": 200, "since": since}).json()["items"]
        return [self.cp.get(f"/calls/{c['id']}").json()["transcript"] for c in calls]

    def down(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.api.stop()
        self.stack.down(progress=lambda m: print(f"[stack] {m}", flush=True))


def measure_mode(rig: Rig, mode: str, calls: int, turns: int, wavs: list[Path]) -> dict[str, Any]:
    rig.worker_for(mode)
    # records take the second LiveKit stamped their first event with: a margin for the truncation
    since = (datetime.now(UTC) - timedelta(seconds=3)).isoformat()
    turns_out: list[dict[str, Any]] = []
    for c in range(calls):
        turns_out += one_call(rig.settings, rig.tmp, c, wavs, turns)
    transcripts = rig.transcripts_since(since)
    split = [
        {k: t[k] for k in ("stt_ms", "brain_ms", "tts_ms", "total_ms")}
        for tr in transcripts
        for t in tr
        if t["speaker"] == "agent" and t["total_ms"] is not None and t["seq"] > 0
    ]
    # a question the agent took as two turns (it answered the part before the pause) was cut off
    caller_turns = sum(1 for tr in transcripts for t in tr if t["speaker"] == "caller")
    lat = [t["latency_s"] * 1000 for t in turns_out if t["latency_s"] is not None]
    paused = [t for t in turns_out if t["mid_sentence_pause"]]
    row = {
        "turns": turns_out,
        "voice_to_voice_ms": summary(lat),
        "premature_replies": {
            "of_paused_questions": len(paused),
            "premature": max(sum(t["premature_reply"] for t in turns_out), caller_turns - calls * turns),
            "caller_turns_in_transcripts": caller_turns,
            "questions_asked": calls * turns,
        },
        "split_ms_from_worker": {
            k: summary([s[k] for s in split]) for k in ("stt_ms", "brain_ms", "tts_ms", "total_ms")
        },
    }
    print(
        f"[{mode}] voice-to-voice {row['voice_to_voice_ms']}  premature {row['premature_replies']}",
        flush=True,
    )
    return row


def measure_concurrency(
    rig: Rig, levels: list[int], turns: int, wavs: list[Path], rounds: int
) -> dict[str, Any]:
    """Each level ``rounds`` times; the calls ask only the questions without a pause, so that a cut-off
    (a separate measurement) does not shift the next turns of a call."""
    rig.worker_for("vad")
    whole = [q for q, (_first, second) in enumerate(QUESTIONS) if second is None]
    out: dict[str, Any] = {}
    for level in levels:
        results: list[list[dict[str, Any]]] = [[] for _ in range(level * rounds)]
        errors: list[str] = []

        def call(
            i: int,
            r: int,
            results: list[list[dict[str, Any]]] = results,
            errors: list[str] = errors,
            level: int = level,
        ) -> None:
            try:
                time.sleep(0.7 * i)  # calls arrive a moment apart, as they do
                index = 100 + level * 10 + i + 1000 * r
                results[r * level + i] = one_call(rig.settings, rig.tmp, index, wavs, turns, whole)
            except Exception as exc:  # noqa: BLE001 - a failed call is a result of this level
                errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")

        for r in range(rounds):
            threads = [threading.Thread(target=call, args=(i, r)) for i in range(level)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        lat = [r["latency_s"] * 1000 for rs in results for r in rs if r["latency_s"] is not None]
        out[str(level)] = {
            "rounds": rounds,
            "cut_offs": sum(r["premature_reply"] for rs in results for r in rs),
            "voice_to_voice_ms": summary(lat),
            "failed_calls": errors,
            "loadavg_after": os.getloadavg(),
        }
        print(
            f"[concurrency {level}] {out[str(level)]['voice_to_voice_ms']} failed={len(errors)}", flush=True
        )
    held = [
        int(k)
        for k, v in out.items()
        if not v["failed_calls"] and v["voice_to_voice_ms"].get("p95", 1e9) < P95_CEILING_MS
    ]
    return {"levels": out, "max_calls_with_p95_under_1500_ms": max(held) if held else 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--modes", default="vad,turn-detector")
    ap.add_argument("--concurrency", default="1,2,3,4", help="simultaneous calls per level ('' to skip)")
    ap.add_argument("--rounds", type=int, default=3, help="times each concurrency level is called")
    ap.add_argument("--out-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    started = datetime.now(UTC)
    tmp = Path(tempfile.mkdtemp(prefix="phoneagent-latency-"))
    rig = Rig(tmp)
    load_before = os.getloadavg()
    rig.up()
    try:
        wavs = question_wavs(tmp)
        modes = {m: measure_mode(rig, m, args.calls, args.turns, wavs) for m in args.modes.split(",") if m}
        levels = [int(x) for x in args.concurrency.split(",") if x]
        concurrency = measure_concurrency(rig, levels, args.turns, wavs, args.rounds) if levels else None
    finally:
        rig.down()
    doc = {
        "benchmark": "latency",
        "date": started.isoformat(timespec="seconds"),
        "command": "uv run --frozen --no-sync python -m benchmarks.latency " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "git": git_state(REPO_ROOT),
        "versions": {p: version(p) for p in ("livekit-agents", "faster-whisper", "piper-tts")}
        | {"livekit-server": "v1.13.5", "livekit-sip": "v1.8.0"},
        "mode": f"local: faster-whisper tiny.en int8 beam {WhisperOptions().beam_size}, Piper "
        "en_US-joe-medium at 8 kHz, Silero VAD, scripted brain",
        "settings": {
            k: v
            for k, v in rig.env.items()
            if k.startswith("PHONEAGENT_") and "PORT" not in k and "DIR" not in k and "URL" not in k
        },
        "endpointing": {
            "min_delay_s": rig.settings.endpointing_min_delay_s,
            "max_delay_s_turn_detector": rig.settings.endpointing_max_delay_s,
            "vad_min_silence_s": rig.settings.vad_min_silence_s,
        },
        "loadavg_before": load_before,
        "calls_per_mode": args.calls,
        "turns_per_call": args.turns,
        "modes": modes,
        "concurrency": concurrency,
        "goal": {"p50_ms": 800, "p95_ms": 1200, "concurrency_p95_ms": 1500},
    }
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / f"latency-{stamp}.json"
    path.write_text(json.dumps(doc, indent=2))
    lines = [
        "| mode | turns | p50 ms | p95 ms | callers cut off / questions (with a pause) "
        "| STT p50 | brain p50 | TTS p50 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m, row in modes.items():
        v, s, pr = row["voice_to_voice_ms"], row["split_ms_from_worker"], row["premature_replies"]
        lines.append(
            f"| {m} | {v.get('n', 0)} | {v.get('p50', '-')} | {v.get('p95', '-')} | "
            f"{pr['premature']}/{pr['questions_asked']} ({pr['of_paused_questions']}) | "
            f"{s['stt_ms'].get('p50', '-')} | "
            f"{s['brain_ms'].get('p50', '-')} | {s['tts_ms'].get('p50', '-')} |"
        )
    if concurrency:
        lines += [
            "",
            "| simultaneous calls | turns | p50 ms | p95 ms | cut-offs | failed calls |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for level, row in concurrency["levels"].items():
            v = row["voice_to_voice_ms"]
            lines.append(
                f"| {level} | {v.get('n', 0)} | {v.get('p50', '-')} | {v.get('p95', '-')} | "
                f"{row['cut_offs']} | {len(row['failed_calls'])} |"
            )
        lines.append(f"\nmax calls with p95 < 1.5 s: {concurrency['max_calls_with_p95_under_1500_ms']}")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
