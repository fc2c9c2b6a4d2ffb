"""Paired latency check of the decoding settings that lowered WER in the sweep.

The sweep runs one setting after another, so a change in the machine's load between settings shows
up as a latency difference. Here every caller utterance (8 kHz G.711) is decoded with each setting
back to back, in a rotating order, so load drift hits all settings alike. Run:
``uv run --frozen --no-sync python -m benchmarks.speech.paired``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.calllog.report import machine, write_json
from benchmarks.speech.corpus import UTTERANCES, VOCABULARY
from benchmarks.speech.measure import BASELINE, Variant, latency_summary, stt_for, transcribe
from benchmarks.speech.run import REPO_ROOT, Quiet, _git, log, versions
from benchmarks.speech.voices import make_clip
from phoneagent.speech.piper_tts import load_piper_voice
from phoneagent.speech.whisper_stt import load_whisper, vocabulary_prompt
from tests.peers.wer import Score, corpus_wer, score

VARIANTS = [
    BASELINE,
    Variant("beam5", beam_size=5),
    Variant("vocabulary_prompt", prompt=True),
    Variant("beam5_prompt", beam_size=5, prompt=True),
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.speech.paired", description=__doc__)
    p.add_argument("--models", default="tiny.en,base")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-wait", action="store_true")
    p.add_argument("--out-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    started = datetime.now(UTC)
    quiet = Quiet(enabled=not args.no_wait)
    loadavg_start = [round(x, 2) for x in os.getloadavg()]
    piper = load_piper_voice()
    clips = [make_clip("caller", i, text, piper) for i, (_, text) in enumerate(UTTERANCES)]
    prompt = vocabulary_prompt(VOCABULARY)
    rows: list[dict[str, Any]] = []
    for name in args.models.split(","):
        model = load_whisper(name, threads=args.threads)
        stts = {v.name: stt_for(model, v, prompt) for v in VARIANTS}
        for v in VARIANTS:
            transcribe(stts[v.name], clips[0].narrow, v)  # warm-up
        quiet.wait(f"paired {name}")
        t0 = time.monotonic()
        for k, clip in enumerate(clips):
            order = VARIANTS[k % len(VARIANTS) :] + VARIANTS[: k % len(VARIANTS)]
            for v in order:
                hyp, seconds = transcribe(stts[v.name], clip.narrow, v)
                s = score(UTTERANCES[clip.index][1], hyp)
                rows.append(
                    {
                        "model": name,
                        "variant": v.name,
                        "utterance": clip.index,
                        "hyp": hyp,
                        "errors": s.errors,
                        "ref_words": s.ref_words,
                        "audio_s": clip.audio_s,
                        "seconds": round(seconds, 4),
                    }
                )
        quiet.done(f"paired {name}")
        log(f"  {name}: {time.monotonic() - t0:.0f} s")
    summary: dict[str, Any] = {}
    for name in args.models.split(","):
        summary[name] = {}
        for v in VARIANTS:
            sel = [r for r in rows if r["model"] == name and r["variant"] == v.name]
            base = {
                r["utterance"]: r["seconds"]
                for r in rows
                if r["model"] == name and r["variant"] == "baseline"
            }
            extra = sorted(r["seconds"] - base[r["utterance"]] for r in sel)
            summary[name][v.name] = {
                "wer_8k_caller": round(corpus_wer(Score(r["errors"], r["ref_words"]) for r in sel), 4),
                "latency": latency_summary([r["seconds"] for r in sel], [r["audio_s"] for r in sel]),
                "extra_vs_baseline_p50_s": round(extra[len(extra) // 2], 4),
            }
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    out = args.out_dir / f"speech-paired-{stamp}"
    results = {
        "benchmark": "speech-paired",
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "git": {"commit": _git("rev-parse", "HEAD")},
        "load": {
            "loadavg_start": loadavg_start,
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "phases": quiet.log,
        },
        "method": {
            "voice": "caller",
            "condition": "8k",
            "utterances": len(clips),
            "threads": args.threads,
            "variants": [v.__dict__ for v in VARIANTS],
            "order": "rotating per utterance",
        },
        "rows": rows,
        "summary": summary,
    }
    write_json(out.with_suffix(".json"), results)
    lines = [
        "| model | variant | WER 8 kHz (caller) | p50 | p95 | RTF | extra vs beam 1 (p50) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, variants in summary.items():
        for v, s in variants.items():
            lat = s["latency"]
            lines.append(
                f"| {name} | {v} | {100 * s['wer_8k_caller']:.1f} % | {lat['p50_s'] * 1000:.0f} ms | "
                f"{lat['p95_s'] * 1000:.0f} ms | {lat['rtf']:.3f} | "
                f"{s['extra_vs_baseline_p50_s'] * 1000:+.0f} ms |"
            )
    head = f"# Paired decoding latency {results['date']}\n\nload {results['load']}\n\n"
    out.with_suffix(".md").write_text(head + "\n".join(lines) + "\n")
    log(f"wrote {out}.json, .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
