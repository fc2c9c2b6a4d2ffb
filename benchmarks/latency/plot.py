"""Plots of latency results (SVG, no plotting library):

    uv run --frozen --no-sync python -m benchmarks.latency.plot RESULTS.json [RESULTS.json ...] --out FILE.svg

- one stacked bar per arm of each file's one-call section: where the voice-to-voice time at the wire
  went, hop by hop (p50 of each hop, stacked; the p50 and p95 of the whole at the wire as ticks);
- one bar per simultaneous-call level and arm: p50 and p95 at the wire.
The goal (p50 600 ms, p95 900 ms for one call; p95 1200 ms for simultaneous calls) is dashed.
"""

from __future__ import annotations

import argparse
import json
from html import escape
from pathlib import Path
from typing import Any

HOPS = ("inbound", "vad", "transcript", "end_of_turn", "brain", "tts", "playout", "outbound")
COLORS = {
    "inbound": "#bdbdbd",
    "vad": "#2171b5",
    "transcript": "#6baed6",
    "end_of_turn": "#fd8d3c",
    "brain": "#74c476",
    "tts": "#31a354",
    "playout": "#9e9ac8",
    "outbound": "#969696",
}
GOAL_P50_MS, GOAL_P95_MS, GOAL_CONCURRENT_P95_MS = 600, 900, 1200


def rows(doc: dict[str, Any], source: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, label, data) per one-call arm and per simultaneous-call level."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    for arm, row in (doc.get("calls") or {}).items():
        out.append(("split", f"{arm}, one call ({source})", row))
    for arm, levels in (doc.get("concurrency") or {}).items():
        for level, row in levels.items():
            calls = "call" if level == "1" else "calls"
            out.append(("level", f"{arm}, {level} {calls} at once ({source})", row))
    return out


def svg(data: list[tuple[str, str, dict[str, Any]]]) -> str:
    label_w, plot_w, right, bar_h, gap, top = 360, 560, 150, 16, 12, 92
    wire = [d["voice_to_voice_wire_ms"] for _k, _l, d in data]
    hi: float = max([v.get("p95", 0) for v in wire] + [GOAL_CONCURRENT_P95_MS]) * 1.08

    def x(ms: float) -> float:
        return label_w + plot_w * ms / hi

    height = top + (bar_h + gap) * len(data) + 60
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + right}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="10" y="22" font-size="15">Voice to voice at the wire (ms): where the time goes, '
        "p50 of each hop stacked; ticks: p50 and p95 of the whole</text>",
        '<text x="10" y="42" fill="#555">benchmarks/latency, 2 cores, local mode, scripted brain; '
        f"dashed: the goal (one call p50 {GOAL_P50_MS}, p95 {GOAL_P95_MS}; simultaneous calls p95 "
        f"{GOAL_CONCURRENT_P95_MS})</text>",
    ]
    lx = 10
    for hop in HOPS:
        out.append(f'<rect x="{lx}" y="54" width="12" height="12" fill="{COLORS[hop]}"/>')
        out.append(f'<text x="{lx + 16}" y="64">{hop}</text>')
        lx += 24 + 8 * len(hop)
    for ms in range(0, int(hi) + 1, 250 if hi < 2500 else 500):
        out.append(
            f'<line x1="{x(ms):.1f}" y1="{top - 8}" x2="{x(ms):.1f}" y2="{height - 45}" stroke="#eee"/>'
        )
        out.append(f'<text x="{x(ms):.1f}" y="{height - 30}" text-anchor="middle" fill="#555">{ms}</text>')
    for goal in (GOAL_P50_MS, GOAL_P95_MS, GOAL_CONCURRENT_P95_MS):
        out.append(
            f'<line x1="{x(goal):.1f}" y1="{top - 8}" x2="{x(goal):.1f}" y2="{height - 45}" '
            'stroke="#c00" stroke-dasharray="4 3"/>'
        )
    for i, (_kind, label, row) in enumerate(data):
        y = top + i * (bar_h + gap)
        v = row["voice_to_voice_wire_ms"]
        out.append(f'<text x="{label_w - 8}" y="{y + bar_h - 3}" text-anchor="end">{escape(label)}</text>')
        if "p50" not in v:
            continue
        # a worker from before the timing marks reports no hops: one plain bar
        if (row.get("hops_ms") or {}).get("inbound", {}).get("p50") is not None:
            at = 0.0
            for hop in HOPS:
                ms = max(0.0, row["hops_ms"][hop].get("p50", 0.0))
                out.append(
                    f'<rect x="{x(at):.1f}" y="{y}" width="{x(at + ms) - x(at):.1f}" height="{bar_h}" '
                    f'fill="{COLORS[hop]}"><title>{hop} {ms:.0f} ms</title></rect>'
                )
                at += ms
        else:
            width = x(v["p50"]) - label_w
            out.append(f'<rect x="{label_w}" y="{y}" width="{width:.1f}" height="{bar_h}" fill="#9ecae1"/>')
        for p, w in (("p50", 1), ("p95", 2)):
            px = x(v[p])
            out.append(
                f'<line x1="{px:.1f}" y1="{y - 2}" x2="{px:.1f}" y2="{y + bar_h + 2}" '
                f'stroke="#000" stroke-width="{w}"/>'
            )
        tx = x(v["p95"]) + 5
        figures = f"{v['p50']:.0f} / {v['p95']:.0f} (n={v['n']})"
        out.append(f'<text x="{tx:.1f}" y="{y + bar_h - 3}" fill="#333">{figures}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    data = []
    for path in args.results:
        data += rows(json.loads(path.read_text()), path.stem.removeprefix("latency-"))
    args.out.write_text(svg(data))
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
