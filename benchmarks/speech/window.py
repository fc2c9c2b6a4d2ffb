"""Whisper's encoder window side by side: its own 30 s against the 10 s the worker uses for an
utterance that fits, on the speech benchmark's 60 phone utterances (8 kHz G.711) in every voice, and
on its non-speech clips (nothing should be heard). Each utterance is decoded with both windows back
to back, in alternating order, so that the machine's load hits both alike.

    uv run --frozen --no-sync python -m benchmarks.speech.window [--voices caller,espeak:en-us]

Results: benchmarks/results/speech-window-<stamp>.json and .md.
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
from benchmarks.speech.corpus import UTTERANCES
from benchmarks.speech.measure import latency_summary
from benchmarks.speech.run import REPO_ROOT, _git, log, versions
from benchmarks.speech.voices import ESPEAK_VOICES, espeak_available, make_clip, non_speech_clips
from phoneagent.speech.piper_tts import load_piper_voice
from phoneagent.speech.whisper_stt import WhisperOptions, load_whisper, transcribe_blocking
from tests.peers.wer import Score, corpus_wer, score

WINDOWS = {"30 s": False, "10 s": True}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.speech.window", description=__doc__)
    p.add_argument("--voices", default=",".join(["caller", *(f"espeak:{v}" for v in ESPEAK_VOICES)]))
    p.add_argument("--threads", type=int, default=1, help="CTranslate2 threads (the shared models' 1)")
    p.add_argument("--out-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    voices = [v for v in args.voices.split(",") if v]
    if any(v.startswith("espeak:") for v in voices) and not espeak_available():
        sys.exit("espeak-ng is not installed (scripts/setup.sh --tests installs it)")
    started = datetime.now(UTC)
    loadavg_start = [round(x, 2) for x in os.getloadavg()]
    piper = load_piper_voice()
    models = {w: load_whisper("tiny.en", threads=args.threads, short=short) for w, short in WINDOWS.items()}
    options = WhisperOptions()
    rows: list[dict[str, Any]] = []
    for voice in voices:
        for i, (_category, text) in enumerate(UTTERANCES):
            clip = make_clip(voice, i, text, piper)
            order = list(WINDOWS) if i % 2 == 0 else list(reversed(WINDOWS))
            for window in order:
                t0 = time.perf_counter()
                heard = transcribe_blocking(models[window], clip.narrow, options)
                seconds = time.perf_counter() - t0
                s = score(text, heard)
                rows.append(
                    {
                        "voice": voice,
                        "utterance": i,
                        "window": window,
                        "heard": heard,
                        "errors": s.errors,
                        "ref_words": s.ref_words,
                        "audio_s": clip.audio_s,
                        "seconds": round(seconds, 4),
                    }
                )
        log(f"  {voice}: done")
    noise = {
        window: {
            name: transcribe_blocking(models[window], audio, options)
            for name, audio in non_speech_clips().items()
        }
        for window in WINDOWS
    }
    summary: dict[str, Any] = {}
    for window in WINDOWS:
        sel = [r for r in rows if r["window"] == window]
        summary[window] = {
            "wer_8k_all_voices": round(corpus_wer(Score(r["errors"], r["ref_words"]) for r in sel), 4),
            **{
                f"wer_8k_{v}": round(
                    corpus_wer(Score(r["errors"], r["ref_words"]) for r in sel if r["voice"] == v), 4
                )
                for v in voices
            },
            "latency": latency_summary([r["seconds"] for r in sel], [r["audio_s"] for r in sel]),
            "non_speech_heard": {k: v for k, v in noise[window].items() if v},
        }
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    out = args.out_dir / f"speech-window-{stamp}"
    results = {
        "benchmark": "speech-window",
        "date": started.isoformat(timespec="seconds"),
        "command": "uv run --frozen --no-sync python -m benchmarks.speech.window " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "versions": versions(),
        "git": {"commit": _git("rev-parse", "HEAD")},
        "load": {"loadavg_start": loadavg_start, "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
        "method": {
            "model": "tiny.en int8",
            "beam_size": options.beam_size,
            "threads": args.threads,
            "condition": "8 kHz G.711",
            "utterances": len(UTTERANCES),
            "voices": voices,
        },
        "rows": rows,
        "summary": summary,
    }
    write_json(out.with_suffix(".json"), results)
    lines = [
        "| window | WER, all voices | "
        + " | ".join(f"WER {v}" for v in voices)
        + " | p50 | p95 | non-speech clips with words |",
        "|---|---:|" + "---:|" * len(voices) + "---:|---:|---:|",
    ]
    for window, s in summary.items():
        lat = s["latency"]
        lines.append(
            f"| {window} | {100 * s['wer_8k_all_voices']:.1f} % | "
            + " | ".join(f"{100 * s[f'wer_8k_{v}']:.1f} %" for v in voices)
            + f" | {lat['p50_s'] * 1000:.0f} ms | {lat['p95_s'] * 1000:.0f} ms | "
            + f"{len(s['non_speech_heard'])} of 5 |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    log(f"wrote {out}.json, .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
