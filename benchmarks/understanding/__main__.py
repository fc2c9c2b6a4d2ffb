"""Understanding at 8 kHz: does the agent's brain get the caller's intent from phone audio?

    uv run --frozen --no-sync python -m benchmarks.understanding [--voices all] [--limit N]

Held-out phrases a caller of the benchmark's call flow might say (none of them was used to write the
flow's keywords or the end-of-turn rules), each with the intent the flow should take, said by five
voices (the test caller, a neural voice, and four espeak-ng formant voices), through two lines:

- ``phone``: 8 kHz G.711 mu-law, what a SIP phone sends;
- ``noisy``: a handset's 300-3400 Hz band and line noise 15 dB under the speech, then G.711.

Each clip is transcribed twice by tiny.en (the worker's settings, 10 s window, beam 5) side by side:
without a prompt, and with the flow's vocabulary as Whisper's prompt (what the worker does per turn).
Each result is then read by the flow twice: as it matched before (the best transcript, exact
keyword words), and as it matches now (spoken numbers as numerals, plural and tense endings, and the
first of the beam's transcripts the flow understands when the best one means nothing to it).
Reported: intent accuracy and WER (of the best transcript) per cell, per voice and per line.

Results: benchmarks/results/understanding-<stamp>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.calllog.report import git_state, machine
from benchmarks.latency.calls import SCRIPT
from benchmarks.speech.voices import espeak_available, source
from phoneagent.speech.audio import PHONE_RATE, PhoneLineResampler
from phoneagent.speech.numbers import normalize_numbers
from phoneagent.speech.piper_tts import load_piper_voice
from phoneagent.speech.whisper_stt import (
    WhisperOptions,
    hypotheses_blocking,
    load_whisper,
    to_whisper_input,
    turn_prompt,
)
from phoneagent.worker.scripted import NO, YES, Script, ScriptedFlow
from tests.peers.voices import mu_law_roundtrip
from tests.peers.wer import Score, corpus_wer, score

REPO_ROOT = Path(__file__).resolve().parents[2]
VOICES = ("caller", "espeak:en-us", "espeak:en+f3", "espeak:en-gb-x-rp", "espeak:en-us+m3")
LINES = ("phone", "noisy")
NOISE_SNR_DB = 15.0

# the latency benchmark's flow, with a cancellation that asks for a yes first
FLOW = {
    **SCRIPT,
    "intents": [
        {
            "name": "cancel",
            "keywords": ["cancel"],
            "confirm": "Do you want to cancel your appointment?",
            "reply": "Your appointment is cancelled.",
        },
        *SCRIPT["intents"],
    ],
}

# (what the caller says, the intent the flow should take, whether the flow awaits a yes or no)
PHRASES: list[tuple[str, str, bool]] = [
    ("What time do you open tomorrow?", "hours", False),
    ("Are you open on Sundays?", "hours", False),
    ("When do you close today?", "hours", False),
    ("What are your hours this weekend?", "hours", False),
    ("How late are you open tonight?", "hours", False),
    ("Is the office open right now?", "hours", False),
    ("What time does the clinic close?", "hours", False),
    ("Are you closed on public holidays?", "hours", False),
    ("I wanted to ask about your opening times.", "hours", False),
    ("Do you open early on Mondays?", "hours", False),
    ("I'd like to schedule an appointment.", "appointment", False),
    ("Can I book a cleaning?", "appointment", False),
    ("I need to make a booking for next week.", "appointment", False),
    ("Do you have any appointments available?", "appointment", False),
    ("I want to book a checkup for my son.", "appointment", False),
    ("Could you schedule me in for a consultation?", "appointment", False),
    ("I'm calling to make an appointment.", "appointment", False),
    ("Is it possible to book a visit?", "appointment", False),
    ("I would like to move my appointment.", "appointment", False),
    ("Can I get booked in this week?", "appointment", False),
    ("Monday would be great.", "day", False),
    ("How about Wednesday?", "day", False),
    ("Friday works.", "day", False),
    ("Tuesday afternoon, please.", "day", False),
    ("Let's say Thursday.", "day", False),
    ("Wednesday morning is best for me.", "day", False),
    ("Could we do Friday instead?", "day", False),
    ("Thursday at ten, if possible.", "day", False),
    ("Please call me back later.", "callback", False),
    ("My phone number is five five five, zero one four two.", "callback", False),
    ("Can you call me on my cell?", "callback", False),
    ("Could someone give me a call?", "callback", False),
    ("Here is my number, eight oh one, two two three, four five six seven.", "callback", False),
    ("I'd like a call back tomorrow.", "callback", False),
    ("I need to cancel my appointment.", "confirm:cancel", False),
    ("Cancel my visit, please.", "confirm:cancel", False),
    ("I have to cancel.", "confirm:cancel", False),
    ("Please cancel my booking.", "confirm:cancel", False),
    ("Yes, please.", "cancel", True),
    ("Yeah, that's right.", "cancel", True),
    ("Sure, go ahead.", "cancel", True),
    ("Correct.", "cancel", True),
    ("No, thanks.", "no", True),
    ("Nope, keep it.", "no", True),
    ("No, don't cancel it.", "no", True),
    ("That's all, goodbye.", "goodbye", False),
    ("Okay, bye now.", "goodbye", False),
    ("Thanks so much, bye.", "goodbye", False),
    ("What's the weather like there?", "fallback", False),
    ("Do you sell gift cards?", "fallback", False),
]


def flow(awaiting_yes: bool) -> ScriptedFlow:
    f = ScriptedFlow(Script.from_dict(FLOW, greeting="Hello."))
    if awaiting_yes:
        f.pending_confirm = f.script.intents[0]
    return f


def intent_before(f: ScriptedFlow, text: str) -> str:
    """What the flow decided before: exact keyword words, numbers as transcribed."""
    words = set(re.findall(r"[a-z']+", text.lower()))
    if words & set(f.script.goodbye_keywords):
        return "goodbye"
    if f.pending_confirm is not None:
        if words & NO:
            return "no"
        if words & YES:
            return f.pending_confirm.name
    for intent in f.script.intents:
        if words & set(intent.keywords):
            return f"confirm:{intent.name}" if intent.confirm else intent.name
    return "fallback"


def intent_now(f: ScriptedFlow, hypotheses: list[str]) -> str:
    """What the flow decides now: numbers as numerals, word endings, and the first of Whisper's
    transcripts it understands when the best one means nothing to it (the worker's final_words)."""
    texts = [normalize_numbers(t) for t in hypotheses] or [""]
    text = next((t for t in texts if f.decide(t).intent != "fallback"), texts[0])
    decision = f.decide(text)
    if (
        f.pending_confirm is not None
        and decision.intent == "fallback"
        and decision.reply == f.script.fallback
    ):
        # the flow answers a "no" with its fallback line; tell the two apart here
        said = set(re.findall(r"[a-z']+", text.lower()))
        if said & NO:
            return "no"
    return decision.intent


def line(pcm: np.ndarray, rate: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """What reaches the worker: 8 kHz G.711, optionally through a handset band and a noisy line."""
    r = PhoneLineResampler(rate)
    narrow = np.frombuffer(r.push(pcm) + r.flush(), dtype=np.int16).astype(np.float64)
    if kind == "noisy":
        spectrum = np.fft.rfft(narrow)
        f = np.fft.rfftfreq(narrow.size, 1 / PHONE_RATE)
        band = (f >= 300) & (f <= 3400)
        narrow = np.fft.irfft(spectrum * band, n=narrow.size)
        noise = np.fft.irfft(np.fft.rfft(rng.standard_normal(narrow.size)) * band, n=narrow.size)
        voiced = narrow[np.abs(narrow) > 0.05 * np.abs(narrow).max()]
        speech_rms = float(np.sqrt(np.mean(voiced**2))) if voiced.size else 1.0
        noise *= speech_rms / max(float(np.sqrt(np.mean(noise**2))), 1e-9) * 10 ** (-NOISE_SNR_DB / 20)
        narrow = narrow + noise
    g711 = mu_law_roundtrip(np.clip(narrow, -32768, 32767).astype(np.int16))
    from livekit import rtc

    return to_whisper_input(rtc.AudioFrame(g711.tobytes(), PHONE_RATE, 1, g711.size))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voices", default=",".join(VOICES))
    ap.add_argument("--limit", type=int, default=0, help="only the first N phrases (a quick look)")
    ap.add_argument("--out-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    voices = [v for v in args.voices.split(",") if v]
    if any(v.startswith("espeak:") for v in voices) and not espeak_available():
        sys.exit("espeak-ng is not installed (scripts/setup.sh --tests installs it)")
    started = datetime.now(UTC)
    phrases = PHRASES[: args.limit or None]
    piper = load_piper_voice()
    model = load_whisper("tiny.en", threads=1, workers=1)
    options = WhisperOptions()
    rng = np.random.default_rng(7)
    rows: list[dict[str, Any]] = []
    for voice in voices:
        for i, (text, intent, awaiting) in enumerate(phrases):
            pcm, rate = source(voice, text, piper)
            pad = np.zeros(int(0.2 * rate), dtype=np.int16)
            pcm = np.concatenate([pad, pcm, pad])
            for kind in LINES:
                audio = line(pcm, rate, kind, rng)
                prompted = flow(awaiting)
                variants = {
                    "plain": options,
                    "prompted": WhisperOptions(initial_prompt=turn_prompt(None, prompted.vocabulary())),
                }
                for name, opts in variants.items():
                    t0 = time.perf_counter()
                    found = hypotheses_blocking(model, audio, opts)
                    seconds = time.perf_counter() - t0
                    heard = found[0] if found else ""
                    rows.append(
                        {
                            "voice": voice,
                            "phrase": i,
                            "line": kind,
                            "stt": name,
                            "heard": heard,
                            "expected": intent,
                            "intent_before": intent_before(flow(awaiting), heard),
                            "intent_now": intent_now(flow(awaiting), found),
                            "alternatives": found[1:],
                            "errors": score(text, heard).errors,
                            "words": score(text, heard).ref_words,
                            "seconds": round(seconds, 4),
                        }
                    )
            print(f"[{voice}] {i + 1}/{len(phrases)} {text!r}", flush=True)
    summary = summarize(rows)
    doc = {
        "benchmark": "understanding",
        "date": started.isoformat(timespec="seconds"),
        "command": "uv run --frozen --no-sync python -m benchmarks.understanding " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "git": git_state(REPO_ROOT),
        "stt": "faster-whisper tiny.en int8, 10 s window, beam 5, 1 thread",
        "noise_snr_db": NOISE_SNR_DB,
        "flow": FLOW,
        "phrases": phrases,
        "rows": rows,
        "summary": summary,
    }
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / f"understanding-{stamp}.json"
    path.write_text(json.dumps(doc, indent=2))
    table = markdown(summary)
    path.with_suffix(".md").write_text(table)
    print(table)
    print(f"results: {path}")


def cell(rows: list[dict[str, Any]], matcher: str) -> dict[str, Any]:
    right = sum(r[matcher] == r["expected"] for r in rows)
    return {
        "intent_accuracy": round(right / len(rows), 4) if rows else None,
        "right": right,
        "of": len(rows),
        "wer": round(corpus_wer([Score(r["errors"], r["words"]) for r in rows]), 4) if rows else None,
        "stt_p50_ms": round(statistics.median(r["seconds"] for r in rows) * 1000, 1) if rows else None,
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for stt in ("plain", "prompted"):
        for matcher in ("intent_before", "intent_now"):
            mine = [r for r in rows if r["stt"] == stt]
            key = f"{stt} / {'matched before' if matcher == 'intent_before' else 'matched now'}"
            out[key] = {
                "all": cell(mine, matcher),
                **{f"line {k}": cell([r for r in mine if r["line"] == k], matcher) for k in LINES},
                **{
                    f"voice {v}": cell([r for r in mine if r["voice"] == v], matcher)
                    for v in {r["voice"] for r in rows}
                },
            }
    return out


def markdown(summary: dict[str, Any]) -> str:
    keys = list(next(iter(summary.values())).keys())
    lines = [
        "| transcription / matching | " + " | ".join(keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    for name, cells in summary.items():
        lines.append(
            f"| {name} | "
            + " | ".join(
                f"{c['intent_accuracy'] * 100:.1f} % (WER {c['wer'] * 100:.1f} %)" for c in cells.values()
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
