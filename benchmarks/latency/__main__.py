"""Voice-to-voice latency through the real SIP path.

    uv run --frozen --no-sync python -m benchmarks.latency [--calls 4] [--turns 6]

A real stack (Redis, livekit-server, livekit-sip) and a real worker in local mode (faster-whisper
tiny.en, Piper, Silero VAD, scripted brain) on their own ports; baresip calls over UDP with PCMU
8 kHz and asks questions in the caller's voice (phoneagent.testing.voices). Latency of a turn is the
time from the end of the caller's speech, as it left the SIP phone, to the first agent audio as it
arrived at the SIP phone. Both moments are read from baresip's own dumps of what it sent and what it
received: a watcher polls both files every 5 ms and maps each sample to the wall-clock time it was
written, so the two files share one clock (resolution about 10 ms). The split per stage comes from
livekit-agents' own per-turn metrics, reported by the worker to the control plane.

Results: benchmarks/results/latency-<stamp>.json (and a row in BENCHMARKS.md, by hand).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import httpx
import numpy as np

from phoneagent.config import Settings
from phoneagent.db.migrate import upgrade
from phoneagent.speech.piper_tts import load_piper_voice
from phoneagent.stack.services import Stack
from phoneagent.testing.processes import LoggedProcess
from phoneagent.testing.sip_phone import BaresipPhone, wait_until
from phoneagent.testing.voices import caller_wav
from phoneagent.testing.wav import read_growing_wav, rms_dbfs

PORTS = {
    "redis_port": 46389,
    "livekit_port": 47880,
    "livekit_rtc_tcp_port": 47881,
    "livekit_rtc_udp_start": 54000,
    "livekit_rtc_udp_end": 54049,
    "sip_port": 45060,
    "sip_rtp_start": 14000,
    "sip_rtp_end": 14049,
    "sip_health_port": 48089,
    "worker_http_port": 48081,
    "api_port": 48000,
}
QUESTIONS = [
    "What are your opening hours?",
    "I would like to book an appointment.",
    "Tuesday works for me.",
    "When do you close on Saturday?",
    "Can I schedule a booking for Monday?",
    "Thursday please.",
]
RATE = 8000
FRAME = RATE // 50


class GrowthClock(threading.Thread):
    """Maps sample indexes of a WAV being written in real time to the wall-clock time they appeared."""

    def __init__(self, find: callable) -> None:  # type: ignore[valid-type]
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
    """Speech segments (start, end) in samples; pauses shorter than ``min_gap_s`` join two segments."""
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


def run(calls: int, turns: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="phoneagent-latency-"))
    settings = Settings(state_dir=tmp / "state", agent_name="phoneagent-bench", **PORTS)  # type: ignore[arg-type]
    stack = Stack(settings)
    stack.up(progress=lambda m: print(f"[stack] {m}"))
    keep = ("PHONEAGENT_ENDPOINTING_MIN_DELAY_S", "PHONEAGENT_VAD_MIN_SILENCE_S")  # the knobs under test
    env = {k: v for k, v in os.environ.items() if k in keep or not k.startswith(("PHONEAGENT_", "LIVEKIT_"))}
    env.update({f"PHONEAGENT_{k.upper()}": str(v) for k, v in PORTS.items()})
    env.update(
        PHONEAGENT_STATE_DIR=str(settings.state_dir),
        PHONEAGENT_AGENT_NAME=settings.agent_name,
        PHONEAGENT_DATABASE_URL=f"sqlite:///{tmp}/cp.db",
    )
    upgrade(f"sqlite:///{tmp}/cp.db")
    token = subprocess.run(
        [sys.executable, "-m", "phoneagent.cli", "keys", "create", "--tenant", "bench"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    api = LoggedProcess.phoneagent("api", log_path=tmp / "api.log", env=env)
    worker = LoggedProcess.phoneagent("worker", log_path=tmp / "worker.log", env=env)
    voice = load_piper_voice()
    wavs = [caller_wav(tmp / f"q{i}.wav", q, voice, pad_s=40) for i, q in enumerate(QUESTIONS)]
    results: list[dict] = []
    try:
        api.wait_for(r"Uvicorn running", timeout=60)
        cp = httpx.Client(
            base_url=f"http://127.0.0.1:{PORTS['api_port']}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        agent = cp.post("/agents", json={"name": "bench"}).json()
        trunk = cp.post(
            "/trunks/inbound",
            json={"name": "bench", "numbers": [settings.dev_number], "allowed_addresses": ["127.0.0.1"]},
        ).json()
        cp.post(
            "/dispatch-rules",
            json={"name": "bench", "inbound_trunk_id": trunk["id"], "agent_profile_id": agent["id"]},
        ).raise_for_status()
        worker.wait_for(r"registered worker", timeout=120)
        for c in range(calls):
            phone = BaresipPhone(tmp / f"phone{c}", rtp_ports=(44000, 44049)).start()
            sent = GrowthClock(lambda p=phone: next(iter(sorted(p.workdir.glob("rec/dump-*-enc.wav"))), None))
            heard = GrowthClock(phone.received_wav)
            sent.start()
            heard.start()
            try:
                phone.dial(f"sip:{settings.dev_number}@127.0.0.1:{PORTS['sip_port']}")
                phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.2, timeout=90)
                for t in range(turns):
                    mark = phone.received_audio().size
                    phone.play(wavs[t % len(wavs)])

                    def replied(mark: int = mark, phone: BaresipPhone = phone) -> bool:
                        tail = phone.received_audio()[mark:]
                        return len(segments(tail)) >= 1 and (tail.size - segments(tail)[-1][1]) > 1.2 * RATE

                    wait_until(replied, timeout=60, what="the agent's reply")
                phone.bye_confirmed(since=phone.hangup())
            finally:
                phone.close()
                sent.stop.set()
                heard.stop.set()
            enc = read_growing_wav(next(iter(sorted(phone.workdir.glob("rec/dump-*-enc.wav")))))
            dec = read_growing_wav(phone.received_wav())  # type: ignore[arg-type]
            said = segments(enc)
            replies = segments(dec)
            for start, end in said:
                t_end = sent.time_of(end - 1)
                onset = next((s for s, _e in replies if heard.time_of(s) > t_end), None)
                if onset is None:
                    continue
                results.append(
                    {
                        "call": c,
                        "caller_speech_s": (end - start) / RATE,
                        "latency_s": heard.time_of(onset) - t_end,
                    }
                )
        # the per-stage split, from the worker's turn reports
        calls_json = cp.get("/calls", params={"limit": 50}).json()["items"]
        split = []
        for call in calls_json:
            for turn in cp.get(f"/calls/{call['id']}").json()["transcript"]:
                if turn["speaker"] == "agent" and turn["total_ms"] is not None:
                    split.append({k: turn[k] for k in ("stt_ms", "brain_ms", "tts_ms", "total_ms")})
    finally:
        worker.stop()
        api.stop()
        stack.down(progress=lambda m: print(f"[stack] {m}"))
    lat = [r["latency_s"] * 1000 for r in results]

    def summary(values: list[float]) -> dict:
        values = [v for v in values if v is not None]
        return (
            {
                "n": len(values),
                "p50": round(pct(values, 50), 1),
                "p95": round(pct(values, 95), 1),
                "mean": round(statistics.mean(values), 1),
                "max": round(max(values), 1),
            }
            if values
            else {"n": 0}
        )

    return {
        "benchmark": "latency",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": _cpu(),
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
        },
        "versions": {p: version(p) for p in ("livekit-agents", "faster-whisper", "piper-tts")}
        | {"livekit-server": "v1.13.5", "livekit-sip": "v1.8.0"},
        "mode": "local: faster-whisper tiny.en int8 beam 1, Piper en_US-joe-medium, Silero VAD, "
        "scripted brain",
        "endpointing_min_delay_s": float(
            os.environ.get("PHONEAGENT_ENDPOINTING_MIN_DELAY_S", settings.endpointing_min_delay_s)
        ),
        "vad_min_silence_s": float(
            os.environ.get("PHONEAGENT_VAD_MIN_SILENCE_S", settings.vad_min_silence_s)
        ),
        "calls": calls,
        "turns": results,
        "voice_to_voice_ms": summary(lat),
        "split_ms_from_worker": {
            k: summary([s[k] for s in split]) for k in ("stt_ms", "brain_ms", "tts_ms", "total_ms")
        },
        "goal": {"p50_ms": 800, "p95_ms": 1200},
    }


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--turns", type=int, default=6)
    args = ap.parse_args()
    out = run(args.calls, args.turns)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = Path(__file__).resolve().parents[1] / "results" / f"latency-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps({k: out[k] for k in ("voice_to_voice_ms", "split_ms_from_worker")}, indent=2))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
