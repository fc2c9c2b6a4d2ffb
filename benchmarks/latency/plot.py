"""A plot of latency results: voice-to-voice p50 (bar) and p95 (tick) per case, against the goal.

    uv run --frozen --no-sync python -m benchmarks.latency.plot \
        RESULTS.json[:modes|:concurrency] ... --out FILE.svg

Each file's end-of-turn modes and simultaneous-call levels (or only one of the two, after a colon)
become one row each, labelled with the results file they come from; the worker's own share (end of
speech to first audio out, p50) is drawn inside the p50 bar.
"""

from __future__ import annotations

import argparse
import json
from html import escape
from pathlib import Path
from typing import Any

GOAL_P50_MS, GOAL_P95_MS = 800, 1200


def rows(doc: dict[str, Any], source: str, part: str = "") -> list[tuple[str, dict[str, Any], float | None]]:
    """(label, voice-to-voice summary, worker p50 ms) per mode and per concurrency level."""
    out = []
    if part == "concurrency":
        doc = {**doc, "modes": None}
    if part == "modes":
        doc = {**doc, "concurrency": None}
    for mode, row in (doc.get("modes") or {}).items():
        worker = row["split_ms_from_worker"]["total_ms"].get("p50")
        out.append((f"{mode}, one call ({source})", row["voice_to_voice_ms"], worker))
    for level, row in ((doc.get("concurrency") or {}).get("levels") or {}).items():
        calls = "call" if level == "1" else "calls"
        out.append((f"{level} simultaneous {calls} ({source})", row["voice_to_voice_ms"], None))
    return out


def svg(data: list[tuple[str, dict[str, Any], float | None]]) -> str:
    label_w, plot_w, right, bar_h, gap, top = 330, 520, 140, 14, 12, 70
    hi = max(max(v.get("p95", 0) for _, v, _ in data), GOAL_P95_MS) * 1.1
    x = lambda ms: label_w + plot_w * ms / hi  # noqa: E731
    height = top + (bar_h + gap) * len(data) + 60
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + right}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="10" y="22" font-size="15">Voice to voice at the phone (ms): p50 bar, p95 tick; '
        "dark: the worker's own part (p50)</text>",
        '<text x="10" y="42" fill="#555">benchmarks/latency, 2 cores, local mode, scripted brain; '
        f"dashed: the goal (p50 {GOAL_P50_MS}, p95 {GOAL_P95_MS})</text>",
    ]
    for ms in range(0, int(hi) + 1, 500):
        out.append(
            f'<line x1="{x(ms):.1f}" y1="{top - 8}" x2="{x(ms):.1f}" y2="{height - 45}" stroke="#eee"/>'
        )
        out.append(f'<text x="{x(ms):.1f}" y="{height - 30}" text-anchor="middle" fill="#555">{ms}</text>')
    for goal in (GOAL_P50_MS, GOAL_P95_MS):
        out.append(
            f'<line x1="{x(goal):.1f}" y1="{top - 8}" x2="{x(goal):.1f}" y2="{height - 45}" '
            'stroke="#c00" stroke-dasharray="4 3"/>'
        )
    for i, (label, v, worker) in enumerate(data):
        y = top + i * (bar_h + gap)
        out.append(f'<text x="{label_w - 8}" y="{y + bar_h - 3}" text-anchor="end">{escape(label)}</text>')
        if "p50" not in v:
            continue
        bar = f'<rect x="{label_w}" y="{y}" height="{bar_h}"'
        out.append(f'{bar} width="{x(v["p50"]) - label_w:.1f}" fill="#9ecae1"/>')
        if worker:
            out.append(f'{bar} width="{x(worker) - label_w:.1f}" fill="#2171b5"/>')
        px = x(v["p95"])
        tick = f'x1="{px:.1f}" y1="{y - 2}" x2="{px:.1f}" y2="{y + bar_h + 2}"'
        out.append(f'<line {tick} stroke="#000" stroke-width="2"/>')
        out.append(
            f'<text x="{px + 5:.1f}" y="{y + bar_h - 3}" fill="#333">{v["p50"]:.0f} / {v["p95"]:.0f} '
            f"(n={v['n']})</text>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    data = []
    for arg in args.results:
        name, _, part = arg.partition(":")
        path = Path(name)
        data += rows(json.loads(path.read_text()), path.stem.removeprefix("latency-"), part)
    args.out.write_text(svg(data))
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
