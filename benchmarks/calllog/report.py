"""Machine/version facts, the results JSON, a hand-written SVG chart (no plotting dependency) and a
Markdown table."""

from __future__ import annotations

import json
import math
import os
import platform
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

ENGINE_LABEL = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu_model": cpu or platform.processor(),
        "nproc": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _os_name(),
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def versions() -> dict[str, str]:
    import alembic
    import psycopg
    import sqlalchemy

    return {
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "alembic": alembic.__version__,
        "psycopg": f"{psycopg.__version__} ({psycopg.pq.__impl__})",
    }


def git_state(repo: Path) -> dict[str, Any]:
    """Read-only: the commit measured, and whether the files the benchmark exercises differ from it."""

    def run(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    paths = ["phoneagent/calls/query.py", "phoneagent/db"]  # the migrations are in phoneagent/db
    return {
        "commit": run("rev-parse", "HEAD"),
        "query_code_modified_vs_commit": bool(run("status", "--porcelain", "--", *paths)),
    }


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str) + "\n")
    tmp.replace(path)


# ----------------------------------------------------------------------------------------------------


def _fmt(ms: float) -> str:
    if ms >= 100:
        return f"{ms:,.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def markdown_table(results: dict[str, Any]) -> str:
    engines = [e for e in ("sqlite", "postgresql") if e in results["engines"]]
    goal = results["goal"]["p99_ms"]
    head = ["query"]
    for e in engines:
        head += [f"{ENGINE_LABEL[e]} p50", f"{ENGINE_LABEL[e]} p99"]
    if "sqlite" in engines:
        head.append(f"SQLite p99 < {goal:g} ms")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    names = list(results["engines"][engines[0]]["queries"])
    for name in names:
        q0 = results["engines"][engines[0]]["queries"][name]
        row = [f"`{name}`" + (" (extra)" if q0.get("extra") else "")]
        for e in engines:
            q = results["engines"][e]["queries"].get(name)
            row += [_fmt(q["p50_ms"]), _fmt(q["p99_ms"])] if q else ["", ""]
        if "sqlite" in engines:
            met = results["engines"]["sqlite"]["queries"][name].get("meets_goal")
            row.append("yes" if met else "**no**")
        lines.append("| " + " | ".join(row) + " |")
    seed = ["seed (s)"]
    for e in engines:
        s = results["engines"][e]["seed"]
        seed += [f"{s['seed_seconds']:.0f}", f"+{s['analyze_seconds']:.0f} analyze"]
    if "sqlite" in engines:
        seed.append("")
    lines.append("| " + " | ".join(seed) + " |")
    return "\n".join(lines) + "\n"


def svg_chart(results: dict[str, Any]) -> str:
    """Horizontal grouped bars, log scale: p50 and p99 per query, SQLite and PostgreSQL side by side."""
    engines = [e for e in ("sqlite", "postgresql") if e in results["engines"]]
    names = list(results["engines"][engines[0]]["queries"])
    series = []  # (engine, stat, colour)
    colours = {
        ("sqlite", "p50_ms"): "#9ecae1",
        ("sqlite", "p99_ms"): "#2171b5",
        ("postgresql", "p50_ms"): "#fdae6b",
        ("postgresql", "p99_ms"): "#d94801",
    }
    for e in engines:
        for stat in ("p50_ms", "p99_ms"):
            series.append((e, stat, colours[(e, stat)]))
    values = [
        results["engines"][e]["queries"][n][s]
        for n in names
        for e, s, _ in series
        if n in results["engines"][e]["queries"]
    ]
    lo_dec = math.floor(math.log10(max(min(values), 1e-3)))
    hi_dec = math.ceil(math.log10(max(values) * 1.05))
    lo_dec = min(lo_dec, -1)
    hi_dec = max(hi_dec, 2)
    goal = results["goal"]["p99_ms"]

    label_w, plot_w, right = 250, 640, 70
    bar_h, gap = 9, 16
    top = 92
    group_h = bar_h * len(series) + gap
    height = top + group_h * len(names) + 50
    width = label_w + plot_w + right

    def x(ms: float) -> float:
        v = min(max(ms, 10**lo_dec), 10**hi_dec)
        return label_w + (math.log10(v) - lo_dec) / (hi_dec - lo_dec) * plot_w

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">'
        f"Call log at {results['rows']:,} rows: latency per query (ms, log scale)</text>",
        f'<text x="{width / 2}" y="40" text-anchor="middle" fill="#555">'
        f"{escape(results['machine']['cpu_model'])}, {results['machine']['nproc']} cores, "
        f"{results['machine']['memory_gib']} GiB; {escape(results['date'])}</text>",
    ]
    # legend
    lx = label_w
    for e, s, col in series:
        out.append(f'<rect x="{lx}" y="52" width="14" height="10" fill="{col}"/>')
        lbl = f"{ENGINE_LABEL[e]} {s[:3]}"
        out.append(f'<text x="{lx + 18}" y="61">{lbl}</text>')
        lx += 30 + 7 * len(lbl)
    out.append(
        f'<line x1="{lx + 4}" y1="57" x2="{lx + 26}" y2="57" stroke="#c00" stroke-width="2" '
        f'stroke-dasharray="5,3"/>'
    )
    out.append(f'<text x="{lx + 30}" y="61" fill="#c00">goal: p99 &lt; {goal:g} ms</text>')
    # grid
    plot_bottom = top + group_h * len(names) - gap / 2
    for d in range(lo_dec, hi_dec + 1):
        for m in (1, 2, 5) if d < hi_dec else (1,):
            v = m * 10**d
            gx = x(v)
            major = m == 1
            out.append(
                f'<line x1="{gx:.1f}" y1="{top - 8}" x2="{gx:.1f}" y2="{plot_bottom:.1f}" '
                f'stroke="{"#bbb" if major else "#e6e6e6"}" stroke-width="1"/>'
            )
            if major or d >= 0:
                txt = f"{v:g}" if v < 1000 else f"{v / 1000:g} s"
                out.append(
                    f'<text x="{gx:.1f}" y="{plot_bottom + 16:.1f}" text-anchor="middle" '
                    f'fill="#444" font-size="11">{txt}</text>'
                )
    out.append(
        f'<text x="{label_w + plot_w / 2}" y="{plot_bottom + 34:.1f}" text-anchor="middle" '
        f'fill="#444">milliseconds</text>'
    )
    gx = x(goal)
    out.append(
        f'<line x1="{gx:.1f}" y1="{top - 10}" x2="{gx:.1f}" y2="{plot_bottom:.1f}" stroke="#c00" '
        f'stroke-width="2" stroke-dasharray="5,3"/>'
    )
    # bars
    for i, n in enumerate(names):
        y0 = top + i * group_h
        extra = results["engines"][engines[0]]["queries"][n].get("extra")
        out.append(
            f'<text x="{label_w - 8}" y="{y0 + bar_h * len(series) / 2 + 4:.1f}" text-anchor="end">'
            f"{escape(n)}{' *' if extra else ''}</text>"
        )
        for j, (e, s, col) in enumerate(series):
            q = results["engines"][e]["queries"].get(n)
            if not q:
                continue
            by = y0 + j * bar_h
            bx = x(q[s])
            out.append(
                f'<rect x="{label_w}" y="{by}" width="{max(bx - label_w, 1):.1f}" '
                f'height="{bar_h - 1}" fill="{col}"/>'
            )
            out.append(
                f'<text x="{bx + 3:.1f}" y="{by + bar_h - 1.5:.1f}" font-size="9" '
                f'fill="#333">{_fmt(q[s])}</text>'
            )
    out.append(
        f'<text x="{label_w}" y="{height - 8}" fill="#555" font-size="11">* extra case (not a '
        f"goal case in the brief, added to show a behaviour); bars: p50 then p99 per engine</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"
