"""Summaries of a speech run, its Markdown tables and a hand-written SVG chart (no plotting library)."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any
from xml.sax.saxutils import escape

from benchmarks.speech.measure import latency_summary, percentile

TARGET_RATIO = 1.2
BIG = 1e9  # stands for "no finite ratio": WER at 16 kHz was 0 and at 8 kHz was not (None in the JSON)


def _wer(rows: list[dict[str, Any]]) -> float:
    words = sum(r["ref_words"] for r in rows)
    return sum(r["errors"] for r in rows) / words if words else float("nan")


def _voice_sets(voices: list[str]) -> dict[str, list[str]]:
    sets = {v: [v] for v in voices}
    espeak = [v for v in voices if v.startswith("espeak:")]
    if len(espeak) > 1:
        sets["espeak (all)"] = espeak
    return sets


def _ratio_interval(
    pairs: list[tuple[dict[str, Any], dict[str, Any]]], seed: int = 7, n: int = 1000
) -> list[float | None]:
    """95 % paired bootstrap interval (over utterances) of WER(8k) / WER(16k)."""
    rng = random.Random(seed)
    ratios = []
    for _ in range(n):
        pick = [pairs[rng.randrange(len(pairs))] for _ in pairs]
        w16 = _wer([p[0] for p in pick])
        w8 = _wer([p[1] for p in pick])
        ratios.append(_ratio(w8, w16, cap=BIG))
    lo, hi = percentile(ratios, 0.025), percentile(ratios, 0.975)
    return [round(lo, 2) if lo < BIG else None, round(hi, 2) if hi < BIG else None]


def _ratio(w8: float, w16: float, *, cap: float) -> float:
    """WER(8k) / WER(16k); 1 when both are 0; ``cap`` when only the 16 kHz WER is 0."""
    if w16:
        return w8 / w16
    return 1.0 if w8 == 0 else cap


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    stt = results["stt"]
    models = results["method"]["models"]
    sets = _voice_sets(results["method"]["voices"])
    base = [r for r in stt if r["variant"] == "baseline"]
    out: dict[str, Any] = {"wer": {}, "latency": {}, "by_category": {}, "sweep": {}}
    for m in models:
        rows = [r for r in base if r["model"] == m]
        out["wer"][m] = {}
        for name, voices in sets.items():
            sel = [r for r in rows if r["voice"] in voices]
            by_key = {(r["voice"], r["utterance"], r["condition"]): r for r in sel}
            pairs = [(by_key[(v, u, "16k")], by_key[(v, u, "8k")]) for (v, u, c) in by_key if c == "16k"]
            w16 = _wer([p[0] for p in pairs])
            w8 = _wer([p[1] for p in pairs])
            ratio = _ratio(w8, w16, cap=BIG)
            out["wer"][m][name] = {
                "wer_16k": round(w16, 4),
                "wer_8k": round(w8, 4),
                "ratio": round(ratio, 3) if ratio < BIG else None,
                "ratio_95ci": _ratio_interval(pairs),
                "target_holds": w8 <= TARGET_RATIO * w16,
                "utterances": len(pairs),
                "ref_words": sum(p[0]["ref_words"] for p in pairs),
            }
        out["latency"][m] = {
            c: latency_summary(
                [r["seconds"] for r in rows if r["condition"] == c],
                [r["audio_s"] for r in rows if r["condition"] == c],
            )
            for c in ("16k", "8k")
        }
        cats: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for r in rows:
            cats[r["condition"]][r["category"]].append(r)
        out["by_category"][m] = {
            c: {cat: round(_wer(v), 4) for cat, v in sorted(cats[c].items())} for c in ("16k", "8k")
        }
        out["sweep"][m] = {}
        variants = dict.fromkeys(r["variant"] for r in stt if r["model"] == m)
        for variant in variants:
            sel = [r for r in stt if r["model"] == m and r["variant"] == variant and r["condition"] == "8k"]
            silent = [s for s in results["non_speech"] if s["model"] == m and s["variant"] == variant]
            out["sweep"][m][variant] = {
                "wer_8k": {
                    name: round(_wer([r for r in sel if r["voice"] in vs]), 4) for name, vs in sets.items()
                },
                "wer_8k_all_voices": round(_wer(sel), 4),
                "wer_8k_yesno": round(_wer([r for r in sel if r["category"] == "yesno"]), 4),
                "empty_transcripts": sum(1 for r in sel if not r["hyp"].strip()),
                "latency": latency_summary([r["seconds"] for r in sel], [r["audio_s"] for r in sel]),
                "non_speech_words": sum(s["words"] for s in silent),
                "non_speech_clips_with_words": sum(1 for s in silent if s["words"]),
                "non_speech_clips": len(silent),
            }
    tts = results["tts"]
    ttfa = [t["ttfa_s"] for t in tts]
    out["tts"] = {
        "sentences": len({t["index"] for t in tts}),
        "runs": len(tts),
        "ttfa_p50_s": round(percentile(ttfa, 0.5), 4),
        "ttfa_p95_s": round(percentile(ttfa, 0.95), 4),
        "rtf": round(sum(t["total_s"] for t in tts) / sum(t["audio_s"] for t in tts), 4),
        "total_p50_s": round(percentile([t["total_s"] for t in tts], 0.5), 4),
        "audio_p50_s": round(percentile([t["audio_s"] for t in tts], 0.5), 3),
        "sample_rate": tts[0]["sample_rate"] if tts else 0,
    }
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _num(x: float | None) -> str:
    return "∞" if x is None else f"{x:.2f}"


def markdown_tables(results: dict[str, Any], *, chart: str) -> str:
    s = results["summary"]
    m = results["machine"]
    beam = results["method"]["baseline"]["beam_size"]
    lines = [
        f"# Speech benchmark {results['date']}",
        "",
        f"{m['cpu_model']}, {m['nproc']} cores; faster-whisper {results['versions']['faster-whisper']} "
        f"int8, {results['method']['threads']} threads; load average at start "
        f"{results['load']['loadavg_start']}, at end {results['load']['loadavg_end']}. "
        f"{results['method']['utterances']} utterances per voice. Chart: [{chart}]({chart})",
        "",
        f"## WER, 16 kHz vs 8 kHz G.711 (baseline decoding, beam {beam})",
        "",
        "| model | voice | WER 16 kHz | WER 8 kHz | ratio (95 % CI) | 8k <= 1.2 x 16k |",
        "|---|---|---:|---:|---:|---|",
    ]
    for model, sets in s["wer"].items():
        for voice, w in sets.items():
            lo, hi = (_num(x) for x in w["ratio_95ci"])
            lines.append(
                f"| {model} | {voice} | {_pct(w['wer_16k'])} | {_pct(w['wer_8k'])} | "
                f"{_num(w['ratio'])} ({lo}-{hi}) | {'yes' if w['target_holds'] else '**no**'} |"
            )
    lines += [
        "",
        f"## Transcription time per utterance (all voices, baseline decoding, beam {beam})",
        "",
        "| model | input | p50 | p95 | RTF | utterance p50 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for model, conds in s["latency"].items():
        for cond, lat in conds.items():
            lines.append(
                f"| {model} | {cond} | {lat['p50_s'] * 1000:.0f} ms | {lat['p95_s'] * 1000:.0f} ms | "
                f"{lat['rtf']:.3f} | {lat['audio_p50_s']:.1f} s |"
            )
    lines += ["", "## Tuning sweep at 8 kHz", ""]
    sets = list(next(iter(s["sweep"].values()))["baseline"]["wer_8k"])
    head = ["model", "variant", *sets, "all voices", "yes/no", "p50", "p95", "non-speech words (clips)"]
    lines += ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for model, variants in s["sweep"].items():
        for name, v in variants.items():
            cells = [_pct(v["wer_8k"][x]) for x in sets]
            lines.append(
                f"| {model} | {name} | " + " | ".join(cells) + f" | {_pct(v['wer_8k_all_voices'])} | "
                f"{_pct(v['wer_8k_yesno'])} | {v['latency']['p50_s'] * 1000:.0f} ms | "
                f"{v['latency']['p95_s'] * 1000:.0f} ms | {v['non_speech_words']} "
                f"({v['non_speech_clips_with_words']}/{v['non_speech_clips']}) |"
            )
    t = s["tts"]
    lines += [
        "",
        "## Piper TTS (en_US-joe-medium -> 8 kHz frames, streaming sentence by sentence)",
        "",
        "| sentences x runs | TTFA p50 | TTFA p95 | RTF | total p50 | audio p50 |",
        "|---|---:|---:|---:|---:|---:|",
        f"| {t['sentences']} x {t['runs'] // max(t['sentences'], 1)} | {t['ttfa_p50_s'] * 1000:.0f} ms | "
        f"{t['ttfa_p95_s'] * 1000:.0f} ms | {t['rtf']:.3f} | {t['total_p50_s'] * 1000:.0f} ms | "
        f"{t['audio_p50_s']:.1f} s |",
        "",
    ]
    return "\n".join(lines)


def svg_chart(results: dict[str, Any]) -> str:
    """Two panels of horizontal bars: WER at 16 vs 8 kHz per model and voice; the 8 kHz sweep."""
    s = results["summary"]
    rows_a = [
        (f"{m} · {v}", [(w["wer_16k"], "#9ecae1"), (w["wer_8k"], "#2171b5")])
        for m, sets in s["wer"].items()
        for v, w in sets.items()
    ]
    rows_b = [
        (f"{m} · {name}", [(v["wer_8k_all_voices"], "#fd8d3c")])
        for m, variants in s["sweep"].items()
        for name, v in variants.items()
    ]
    # the axis ends at 100 %: a longer bar (repetition loops) is cut there and keeps its number
    top_wer = min(max([x for _, bars in rows_a + rows_b for x, _ in bars] + [0.05]), 1.0)
    label_w, plot_w, bar_h = 230, 520, 10
    width = label_w + plot_w + 80
    out: list[str] = []
    y = 30

    def panel(
        title: str, rows: list[tuple[str, list[tuple[float, str]]]], legend: list[tuple[str, str]]
    ) -> None:
        nonlocal y
        out.append(f'<text x="10" y="{y}" font-size="14" font-weight="bold">{escape(title)}</text>')
        lx = label_w
        for text, col in legend:
            out.append(f'<rect x="{lx}" y="{y + 8}" width="12" height="10" fill="{col}"/>')
            out.append(f'<text x="{lx + 16}" y="{y + 17}">{escape(text)}</text>')
            lx += 30 + 7 * len(text)
        y += 30
        y0 = y
        for label, bars in rows:
            out.append(
                f'<text x="{label_w - 6}" y="{y + bar_h * len(bars) / 2 + 4}" text-anchor="end">'
                f"{escape(label)}</text>"
            )
            for value, col in bars:
                w = max(plot_w * min(value, top_wer) / top_wer, 1)
                out.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 1}" fill="{col}"/>')
                out.append(
                    f'<text x="{label_w + w + 3:.1f}" y="{y + bar_h - 1.5}" font-size="9">'
                    f"{100 * value:.1f}</text>"
                )
                y += bar_h
            y += 6
        for k in range(0, 6):
            gx = label_w + plot_w * k / 5
            out.append(f'<line x1="{gx:.1f}" y1="{y0 - 4}" x2="{gx:.1f}" y2="{y}" stroke="#ddd"/>')
            out.append(
                f'<text x="{gx:.1f}" y="{y + 12}" text-anchor="middle" font-size="10" fill="#555">'
                f"{100 * top_wer * k / 5:.0f} %</text>"
            )
        y += 40

    m = results["machine"]
    out.append(
        f'<text x="10" y="14" fill="#555">Speech benchmark {escape(results["date"])}: '
        f"{escape(m['cpu_model'])}, {m['nproc']} cores. WER after the normalizer (lower is better)</text>"
    )
    panel("WER: 16 kHz vs 8 kHz G.711", rows_a, [("16 kHz", "#9ecae1"), ("8 kHz G.711", "#2171b5")])
    panel("Tuning sweep at 8 kHz (all voices)", rows_b, [("WER 8 kHz", "#fd8d3c")])
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" viewBox="0 0 {width} {y}" '
        f'font-family="Helvetica, Arial, sans-serif" font-size="11">'
        f'<rect width="{width}" height="{y}" fill="white"/>'
    )
    return "\n".join([head, *out, "</svg>"]) + "\n"
