"""The per-turn latency chart, as inline SVG made on the server: one stacked horizontal bar per agent turn
(speech-to-text, brain, text-to-speech, and whatever else the total holds: endpointing, transport)."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from markupsafe import Markup

from phoneagent.db.models import CallTurn

SEGMENTS = (  # (key, label, colour): colours tell apart for common colour blindness, labels say it too
    ("stt", "speech to text", "#1f6fb2"),
    ("brain", "brain", "#c2570c"),
    ("tts", "text to speech", "#2e7d32"),
    ("other", "other (endpointing, transport)", "#8a8f98"),
)

LABEL_W, PLOT_W, VALUE_W = 78, 470, 92
ROW_H, BAR_H, TOP, BOTTOM = 30, 18, 8, 34


@dataclass(frozen=True)
class LatencyRow:
    seq: int
    stt: int
    brain: int
    tts: int
    other: int
    total: int


def latency_rows(turns: list[CallTurn]) -> list[LatencyRow]:
    """Agent turns that carry any timing; ``other`` is what the total holds beyond the three parts."""
    rows = []
    for t in turns:
        if t.speaker != "agent" or all(v is None for v in (t.stt_ms, t.brain_ms, t.tts_ms, t.total_ms)):
            continue
        stt, brain, tts = t.stt_ms or 0, t.brain_ms or 0, t.tts_ms or 0
        parts = stt + brain + tts
        total = max(t.total_ms or 0, parts)
        rows.append(LatencyRow(t.seq, stt, brain, tts, total - parts, total))
    return rows


def _nice_max(value: int) -> int:
    """The axis end: 1, 2, 4 or 8 times a power of ten, so that quarter ticks are round numbers."""
    power = 10 ** (len(str(max(value, 1))) - 1)
    return next(int(f * power) for f in (1, 2, 4, 8, 10) if f * power >= value)


def latency_svg(rows: list[LatencyRow]) -> Markup:
    top = max((r.total for r in rows), default=0)
    scale = _nice_max(max(top, 1))
    height = TOP + ROW_H * len(rows) + BOTTOM
    width = LABEL_W + PLOT_W + VALUE_W

    def x(ms: float) -> float:
        return LABEL_W + ms / scale * PLOT_W

    out = [
        f'<svg class="latency-chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="latency-title latency-desc" xmlns="http://www.w3.org/2000/svg">',
        '<title id="latency-title">Latency per agent turn</title>',
        f'<desc id="latency-desc">Stacked bars of {len(rows)} agent turns: speech to text, brain, text to '
        f"speech and other time, in milliseconds; the same numbers are in the table below.</desc>",
    ]
    for i in range(5):
        ms = scale * i / 4
        gx = x(ms)
        out.append(
            f'<line x1="{gx:.1f}" y1="{TOP - 4}" x2="{gx:.1f}" y2="{height - BOTTOM + 4}" '
            f'stroke="#d0d4da" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{gx:.1f}" y="{height - BOTTOM + 20}" text-anchor="middle" font-size="12" '
            f'fill="#333">{ms:,.0f} ms</text>'
        )
    for i, r in enumerate(rows):
        y = TOP + i * ROW_H + (ROW_H - BAR_H) / 2
        out.append(
            f'<text x="{LABEL_W - 8}" y="{y + BAR_H - 4:.1f}" text-anchor="end" font-size="13" '
            f'fill="#111">Turn {r.seq}</text>'
        )
        start = 0
        for key, label, colour in SEGMENTS:
            ms = getattr(r, key)
            if ms <= 0:
                continue
            out.append(
                f'<rect class="seg seg-{key}" x="{x(start):.1f}" y="{y:.1f}" '
                f'width="{max(x(start + ms) - x(start), 1):.1f}" height="{BAR_H}" fill="{colour}">'
                f"<title>{escape(label)}: {ms:,} ms</title></rect>"
            )
            start += ms
        out.append(
            f'<text x="{x(r.total) + 6:.1f}" y="{y + BAR_H - 4:.1f}" font-size="12" '
            f'fill="#111">{r.total:,} ms</text>'
        )
    out.append("</svg>")
    return Markup("\n".join(out))  # noqa: S704 - every value in it is a number or went through escape()
