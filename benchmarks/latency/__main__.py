"""Voice-to-voice latency through the real SIP path, measured at the wire and split hop by hop; end of
turn (cut-offs); correct replies; how many simultaneous calls one worker holds. Arms answer side by
side in one run, so that settings (or this checkout and an earlier commit) are compared on the same
machine under the same load.

    uv run --frozen --no-sync python -m benchmarks.latency [--arms new,old@fc435de] [--calls 4]
        [--concurrency 1,2,3,4] [--rounds 2] [--questions all|whole]

A real stack (Redis, livekit-server, livekit-sip) and, per arm, a control plane and a worker in local
mode (faster-whisper tiny.en, Piper, Silero VAD, the scripted brain); see ``rig.py`` for arms.
baresip phones call over UDP with PCMU 8 kHz and ask questions in the caller's voice (``calls.py``).

**At the wire**: every RTP packet on loopback is captured with its kernel time (``wire.py``); the
time from the caller's last sound leaving the phone to the agent's first sound reaching it is the
voice-to-voice latency. A reply that starts before the caller finished (in a pause inside the
sentence, or over the caller) is a cut-off, never a latency.

**Hop by hop**: the worker reports, per reply, when the caller's last sound reached it, when the VAD
called the end of speech, when the transcript arrived, when the turn was taken, when the brain and
the TTS gave their first output, and when the first frame left for the room
(``phoneagent.worker.timing``); on the same clock as the capture, these cut the wire time into:
inbound (phone -> livekit-sip -> LiveKit -> worker), the worker's slices, and outbound (worker ->
LiveKit -> livekit-sip -> phone).

**Simultaneous calls**: ``--concurrency`` levels, each ``--rounds`` times per arm (the arms take
turns round by round): that many phones call at once, asking the questions without a pause.

Results: benchmarks/results/latency-<stamp>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from benchmarks import REPO_ROOT
from benchmarks.calllog.report import git_state, machine
from benchmarks.latency.calls import (
    QUESTIONS,
    REPLIES,
    SCRIPT,
    CallResult,
    QuestionWav,
    one_call,
    question_wavs,
)
from benchmarks.latency.rig import Arm, ArmSpec, Rig
from benchmarks.latency.wire import RtpCapture
from tests.peers.voices import load_caller_voice

GOAL = {"p50_ms": 600, "p95_ms": 900, "concurrency_p95_ms": 1200, "cut_offs_per_paused": 1 / 20}
HOPS = ("inbound", "vad", "transcript", "end_of_turn", "brain", "tts", "playout", "outbound")


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


def agent_turns(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The agent's turns after the greeting, with the instants the worker reported for each."""
    marks = {
        e["payload"]["data"]["seq"]: e["payload"]["data"]
        for e in record.get("events", [])
        if e["type"] == "turn" and e["source"] == "worker"
    }
    out = []
    for t in record["transcript"]:
        if t["speaker"] != "agent" or t["seq"] == 0:
            continue
        m = marks.get(t["seq"], {}).get("marks")
        # a worker that reports no instants (an earlier commit): when its audio started, by its metrics
        out_at = m["out"] if m and "out" in m else _epoch(t.get("started_at"))
        out.append({**t, "marks": m, "out_at": out_at})
    return out


def _epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


def hops(wire: dict[str, Any], marks: dict[str, float] | None) -> dict[str, float] | None:
    """The wire time of one reply cut at the worker's instants (ms); None without them."""
    if not marks or "heard" not in marks or "out" not in marks or wire["reply_at"] is None:
        return None
    order = [
        ("inbound", marks["heard"]),
        ("vad", marks.get("eos")),
        ("transcript", marks.get("transcript")),
        ("end_of_turn", marks.get("committed")),
        ("brain", marks.get("brain")),
        ("tts", marks.get("tts")),
        ("playout", marks["out"]),
        ("outbound", wire["reply_at"]),
    ]
    out: dict[str, float] = {}
    prev = wire["said_to"]
    for name, at in order:
        if name not in ("inbound", "playout", "outbound"):
            # a worker instant that came before the one before it (a transcript ready before the VAD
            # was sure) makes its slice 0
            at = prev if at is None else max(prev, at)
        out[name] = round((at - prev) * 1000, 1)
        prev = at
    return out


def judge(call: CallResult, record: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per question: wire and phone latency, cut-off, whether the one reply was the right one, hops."""
    turns = agent_turns(record) if record else []
    rows = []
    for i, (q, wire) in enumerate(zip(call.asked, call.wire, strict=False)):
        question = QUESTIONS[q]
        start = wire["said_from"]
        end = call.wire[i + 1]["said_from"] if i + 1 < len(call.wire) else float("inf")
        # the agent's replies between this question and the next (by when their audio left the worker)
        answered = [t for t in turns if t["out_at"] is not None and start <= t["out_at"] < end]
        first = answered[0] if answered else None
        # a reply to the words before a pause cuts the caller off too, even when it comes out late
        premature = wire["cut_off"] or len(answered) > 1
        rows.append(
            {
                "call": call.index,
                "question": q,
                "kind": question.kind,
                **wire,
                "phone_latency_ms": call.phone[i] if i < len(call.phone) else None,
                "replies": len(answered),
                "correct": record is not None
                and len(answered) == 1
                and answered[0]["text"] == REPLIES[question.intent],
                "premature": premature,
                "hops_ms": None if premature or first is None else hops(wire, first["marks"]),
                "worker_total_ms": first["total_ms"] if first else None,
            }
        )
    return rows


def record_of(arm: Arm, call: CallResult, since: str) -> dict[str, Any] | None:
    """The arm's call record of ``call`` (its caller's number), once its last turn is in."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for rec in arm.calls_since(since):
            agent = [t for t in rec["transcript"] if t["speaker"] == "agent"]
            mine = rec["from_number"].endswith(call.caller) and rec["status"] == "ended"
            if mine and len(agent) > len(call.asked):
                return rec
        time.sleep(0.5)
    return None


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_kind = {k: [r for r in rows if r["kind"] == k] for k in ("whole", "unfinished", "clause")}
    # a latency is a reply to a whole question: not one to the words before a pause
    rows = [{**r, "latency_ms": None if r["premature"] else r["latency_ms"]} for r in rows]
    split = [r["hops_ms"] for r in rows if r["hops_ms"]]
    return {
        "voice_to_voice_wire_ms": summary([r["latency_ms"] for r in rows]),
        "voice_to_voice_wire_ms_by_kind": {
            k: summary([r["latency_ms"] for r in v]) for k, v in by_kind.items()
        },
        "voice_to_voice_phone_ms": summary([r["phone_latency_ms"] for r in rows]),
        "worker_total_ms": summary([r["worker_total_ms"] for r in rows if not r["cut_off"]]),
        "cut_offs": {
            k: {"cut_off": sum(r["cut_off"] for r in v), "asked": len(v)} for k, v in by_kind.items()
        },
        "correct_replies": {"correct": sum(r["correct"] for r in rows), "asked": len(rows)},
        "hops_ms": {h: summary([s[h] for s in split]) for h in HOPS},
    }


def run_calls(
    rig: Rig, tmp: Path, wavs: list[QuestionWav], calls: int, order: list[int], capture: RtpCapture
) -> dict[str, Any]:
    """``calls`` calls per arm, one at a time, the arms taking turns call by call."""
    rows: dict[str, list[dict[str, Any]]] = {a.spec.label: [] for a in rig.arms}
    index = 0
    for c in range(calls):
        for arm in rig.arms:
            since = (datetime.now(UTC) - timedelta(seconds=3)).isoformat()
            # each call asks the questions in another order, so that no question always comes first
            turn = order[c % len(order) :] + order[: c % len(order)]
            result = one_call(
                tmp, index, f"sip:{arm.number}@127.0.0.1:{rig.settings.sip_port}", wavs, turn, capture
            )
            index += 1
            got = judge(result, record_of(arm, result, since))
            rows[arm.spec.label] += got
            lat = [r["latency_ms"] for r in got if r["latency_ms"] is not None]
            for r in got:
                print(
                    f"  q{r['question']} {r['kind']}: wire {r['latency_ms']} ms, premature {r['premature']}, "
                    f"replies {r['replies']}, correct {r['correct']}, hops {r['hops_ms']}",
                    flush=True,
                )
            cut, ok = sum(r["premature"] for r in got), sum(r["correct"] for r in got)
            print(
                f"[{arm.spec.label} call {c + 1}/{calls}] wire p50 {summary(lat).get('p50')} ms, "
                f"cut-offs {cut}, correct {ok}/{len(got)}",
                flush=True,
            )
    return {label: {"turns": r, **aggregate(r)} for label, r in rows.items()}


def run_concurrency(
    rig: Rig, tmp: Path, wavs: list[QuestionWav], levels: list[int], rounds: int, capture: RtpCapture
) -> dict[str, Any]:
    whole = [i for i, q in enumerate(QUESTIONS) if q.after is None]
    out: dict[str, Any] = {a.spec.label: {} for a in rig.arms}
    for level in levels:
        for r in range(rounds):
            for arm in rig.arms:
                since = (datetime.now(UTC) - timedelta(seconds=3)).isoformat()
                results: list[CallResult | None] = [None] * level
                errors: list[str] = []

                def call(
                    i: int,
                    arm: Arm = arm,
                    r: int = r,
                    results: list[CallResult | None] = results,
                    errors: list[str] = errors,
                ) -> None:
                    try:
                        time.sleep(0.7 * i)  # calls arrive a moment apart, as they do
                        index = 300 + i  # its own RTP ports among the simultaneous calls
                        turn = whole[i % len(whole) :] + whole[: i % len(whole)]
                        uri = f"sip:{arm.number}@127.0.0.1:{rig.settings.sip_port}"
                        results[i] = one_call(tmp, index, uri, wavs, turn, capture)
                    except Exception as exc:  # noqa: BLE001 - a failed call is a result of this level
                        errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")

                idle_pss = arm.idle_pss_mb() if r == 0 else None
                usage = arm.usage()
                threads = [threading.Thread(target=call, args=(i,)) for i in range(level)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                used = usage.finish()
                rows: list[dict[str, Any]] = []
                for res in results:
                    if res is not None:
                        rows += judge(res, record_of(arm, res, since))
                slot = out[arm.spec.label].setdefault(
                    str(level), {"rows": [], "failed_calls": [], "loadavg": [], "usage": []}
                )
                slot["rows"] += rows
                slot["failed_calls"] += errors
                slot["loadavg"].append(os.getloadavg())
                if idle_pss is not None:
                    slot["idle_pss_mb"] = idle_pss
                slot["usage"].append(used)
                lat = [x["latency_ms"] for x in rows if x["latency_ms"] is not None]
                print(
                    f"[{arm.spec.label} x{level} round {r + 1}] wire {summary(lat)} failed={len(errors)}",
                    flush=True,
                )
    for levels_of_arm in out.values():
        for level, slot in levels_of_arm.items():
            slot.update(aggregate(slot["rows"]))
            slot["turns"] = slot.pop("rows")
            n = int(level)
            pss = statistics.median(u["pss_mb_median"] for u in slot["usage"])
            busy = sum(u["cpu_s"] for u in slot["usage"]) / sum(u["seconds"] for u in slot["usage"])
            slot["resources"] = {
                "pss_mb_median": round(pss, 1),
                "pss_mb_per_call_over_idle": round((pss - slot["idle_pss_mb"]) / n, 1),
                "cores_busy": round(busy, 3),
                "cores_per_call": round(busy / n, 3),
            }
    return out


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        "| arm | turns | wire p50 ms | wire p95 ms | phone p50 ms | cut off: unfinished | clause | whole "
        "| correct replies |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, row in (doc.get("calls") or {}).items():
        v, c, ok = row["voice_to_voice_wire_ms"], row["cut_offs"], row["correct_replies"]
        lines.append(
            f"| {label} | {v.get('n', 0)} | {v.get('p50', '-')} | {v.get('p95', '-')} | "
            f"{row['voice_to_voice_phone_ms'].get('p50', '-')} | "
            + " | ".join(f"{c[k]['cut_off']}/{c[k]['asked']}" for k in ("unfinished", "clause", "whole"))
            + f" | {ok['correct']}/{ok['asked']} |"
        )
    if doc.get("calls"):
        lines += ["", "| arm | " + " | ".join(f"{h} p50" for h in HOPS) + " |", "|---|" + "---:|" * len(HOPS)]
        for label, row in doc["calls"].items():
            lines.append(
                f"| {label} | " + " | ".join(str(row["hops_ms"][h].get("p50", "-")) for h in HOPS) + " |"
            )
    if doc.get("concurrency"):
        lines += [
            "",
            "| arm | simultaneous calls | turns | wire p50 ms | wire p95 ms | cut-offs | correct "
            "| failed calls | PSS MB per call | cores per call |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for label, levels in doc["concurrency"].items():
            for level, row in levels.items():
                v = row["voice_to_voice_wire_ms"]
                cut = sum(k["cut_off"] for k in row["cut_offs"].values())
                lines.append(
                    f"| {label} | {level} | {v.get('n', 0)} | {v.get('p50', '-')} | {v.get('p95', '-')} "
                    f"| {cut} | "
                    f"{row['correct_replies']['correct']}/{row['correct_replies']['asked']} | "
                    f"{len(row['failed_calls'])} | {row['resources']['pss_mb_per_call_over_idle']} | "
                    f"{row['resources']['cores_per_call']} |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arms", default="new", help="comma-separated arms: label[@gitref][:KEY=VALUE;...]")
    ap.add_argument("--calls", type=int, default=4, help="calls per arm, one at a time")
    ap.add_argument("--questions", default="all", choices=["all", "whole"])
    ap.add_argument("--concurrency", default="1,2,3,4", help="simultaneous calls per level ('' to skip)")
    ap.add_argument("--rounds", type=int, default=2, help="times each level is called, per arm")
    ap.add_argument("--out-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("the wire capture needs root (a packet socket on lo)")
    started = datetime.now(UTC)
    specs = [ArmSpec.parse(a) for a in args.arms.split(",") if a]
    tmp = Path(tempfile.mkdtemp(prefix="phoneagent-latency-"))
    rig = Rig(tmp, specs)
    capture = RtpCapture(range(44000, 46000))
    capture.start()
    load_before = os.getloadavg()
    order = [i for i, q in enumerate(QUESTIONS) if args.questions == "all" or q.after is None]
    rig.up({"silence_timeout_s": 120, "llm": {"script": SCRIPT}})
    try:
        wavs = question_wavs(tmp, load_caller_voice(), QUESTIONS)
        calls = run_calls(rig, tmp, wavs, args.calls, order, capture) if args.calls else None
        levels = [int(x) for x in args.concurrency.split(",") if x]
        concurrency = run_concurrency(rig, tmp, wavs, levels, args.rounds, capture) if levels else None
    finally:
        capture.close()
        rig.down()
    doc = {
        "benchmark": "latency",
        "date": started.isoformat(timespec="seconds"),
        "command": "uv run --frozen --no-sync python -m benchmarks.latency " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "git": git_state(REPO_ROOT),
        "versions": {p: version(p) for p in ("livekit-agents", "faster-whisper", "piper-tts")}
        | {"livekit-server": "v1.13.5", "livekit-sip": "v1.8.0"},
        "arms": {str(a.spec.label): {"spec": str(a.spec), "code": a.revision} for a in rig.arms},
        "questions": [q.__dict__ for q in QUESTIONS],
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "calls": calls,
        "concurrency": concurrency,
        "goal": GOAL,
    }
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / f"latency-{stamp}.json"
    path.write_text(json.dumps(doc, indent=2))
    table = markdown(doc)
    path.with_suffix(".md").write_text(table)
    print(table)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
