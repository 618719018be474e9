"""Inline SVG charts of a report: time per stage per run (stacked bars), durations per stage (box).

Plain SVG strings, so the HTML page is one self-contained file that any browser draws without
scripts or network access. Every mark has a ``<title>`` with its figures (a hover tooltip).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
)  # fmt: skip

WIDTH = 960
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 16, 44
MAX_OUTLIER_MARKS = 60


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def fmt_seconds(s: float) -> str:
    """Seconds for people: ``850 µs``, ``12.3 ms``, ``4.56 s``, ``2.5 min``."""
    if s == 0:
        return "0 s"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    if s < 120:
        return f"{s:.2f} s"
    return f"{s / 60:.1f} min"


def nice_ticks(vmax: float, n: int = 5) -> list[float]:
    """0 and multiples of a 1-2-5 step that cover ``vmax`` with about ``n`` intervals."""
    if vmax <= 0 or not math.isfinite(vmax):
        return [0.0, 1.0]
    raw = vmax / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    count = math.ceil(vmax / step - 1e-9)
    return [i * step for i in range(count + 1)]


def _y_axis(ticks: Sequence[float], y: Any, plot_w: float) -> list[str]:
    out = []
    for t in ticks:
        yy = y(t)
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w:.1f}" y1="{yy:.1f}" y2="{yy:.1f}" '
            'stroke="#e3e3e3"/>'
            f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end">{fmt_seconds(t)}</text>'
        )
    return out


def _legend(names: Sequence[str], y0: float) -> tuple[list[str], float]:
    out, x, y = [], float(LEFT), y0
    for i, name in enumerate(names):
        label = escape(name)
        w = 22 + 7 * len(name)
        if x + w > WIDTH - RIGHT:
            x, y = float(LEFT), y + 18
        out.append(
            f'<rect x="{x:.1f}" y="{y - 10:.1f}" width="12" height="12" fill="{color(i)}"/>'
            f'<text x="{x + 16:.1f}" y="{y:.1f}">{label}</text>'
        )
        x += w
    return out, y + 10


def stacked_bars(runs: Sequence[dict[str, Any]], stages: Sequence[str], *, label: str) -> str:
    """One bar per run (oldest on the left), one coloured segment per stage, height in seconds.

    ``runs`` are the report's ``recent_runs`` entries (``job_id``, ``stages``: name -> seconds).
    """
    plot_h = 240.0
    plot_w = WIDTH - LEFT - RIGHT
    totals = [sum(r["stages"].get(s, 0.0) for s in stages) for r in runs]
    ticks = nice_ticks(max(totals, default=0.0))
    top = ticks[-1] or 1.0

    def y(v: float) -> float:
        return TOP + plot_h - v / top * plot_h

    slot = plot_w / max(len(runs), 1)
    bar_w = min(max(slot * 0.8, 1.0), 48.0)
    parts = _y_axis(ticks, y, plot_w)
    label_every = max(1, math.ceil(len(runs) / 12))
    for i, run in enumerate(runs):
        x = LEFT + i * slot + (slot - bar_w) / 2
        base = 0.0
        for j, stage in enumerate(stages):
            d = float(run["stages"].get(stage, 0.0))
            if d <= 0:
                continue
            y_top, y_bottom = y(base + d), y(base)
            tip = escape(f"job {run['job_id']} · {stage}: {fmt_seconds(d)}")
            parts.append(
                f'<rect class="seg" x="{x:.2f}" y="{y_top:.2f}" width="{bar_w:.2f}" '
                f'height="{max(y_bottom - y_top, 0.5):.2f}" fill="{color(j)}">'
                f"<title>{tip}</title></rect>"
            )
            base += d
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{TOP + plot_h + 14:.1f}" '
                f'text-anchor="middle">{run["job_id"]}</text>'
            )
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h + 32:.1f}" text-anchor="middle" '
        'class="axis">job id, oldest to newest</text>'
    )
    legend, bottom = _legend(stages, TOP + plot_h + BOTTOM + 8)
    parts += legend
    return _svg(parts, bottom + 8, "stacked", label)


def box_plot(stages: Sequence[dict[str, Any]], *, label: str) -> str:
    """One Tukey box per stage: quartile box, median line, whiskers, outlier dots (seconds).

    ``stages`` are the report's stage sections (``stage``, ``box``, ``outliers``).
    """
    plot_h = 240.0
    plot_w = WIDTH - LEFT - RIGHT
    highs = [s["box"]["whisker_high_s"] for s in stages]
    highs += [o["duration_s"] for s in stages for o in s["outliers"]["runs"]]
    ticks = nice_ticks(max(highs, default=0.0))
    top = ticks[-1] or 1.0

    def y(v: float) -> float:
        return TOP + plot_h - v / top * plot_h

    slot = plot_w / max(len(stages), 1)
    box_w = min(slot * 0.5, 80.0)
    parts = _y_axis(ticks, y, plot_w)
    for i, s in enumerate(stages):
        b = s["box"]
        cx = LEFT + i * slot + slot / 2
        x0 = cx - box_w / 2
        tip = escape(
            f"{s['stage']}: median {fmt_seconds(b['median_s'])}, q1 {fmt_seconds(b['q1_s'])}, "
            f"q3 {fmt_seconds(b['q3_s'])}, p95 {fmt_seconds(s['p95_s'])}, n={s['samples']}"
        )
        q1y, q3y = y(b["q1_s"]), y(b["q3_s"])
        parts.append(
            f'<g class="box"><title>{tip}</title>'
            f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(b["whisker_low_s"]):.1f}" '
            f'y2="{y(b["whisker_high_s"]):.1f}" stroke="#555"/>'
            f'<line x1="{cx - box_w / 4:.1f}" x2="{cx + box_w / 4:.1f}" '
            f'y1="{y(b["whisker_low_s"]):.1f}" y2="{y(b["whisker_low_s"]):.1f}" stroke="#555"/>'
            f'<line x1="{cx - box_w / 4:.1f}" x2="{cx + box_w / 4:.1f}" '
            f'y1="{y(b["whisker_high_s"]):.1f}" y2="{y(b["whisker_high_s"]):.1f}" stroke="#555"/>'
            f'<rect x="{x0:.1f}" y="{q3y:.1f}" width="{box_w:.1f}" '
            f'height="{max(q1y - q3y, 1.0):.1f}" fill="{color(i)}" fill-opacity="0.75" '
            'stroke="#333"/>'
            f'<line x1="{x0:.1f}" x2="{x0 + box_w:.1f}" y1="{y(b["median_s"]):.1f}" '
            f'y2="{y(b["median_s"]):.1f}" stroke="#111" stroke-width="2"/></g>'
        )
        for o in s["outliers"]["runs"][:MAX_OUTLIER_MARKS]:
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{y(o["duration_s"]):.1f}" r="3" fill="none" '
                f'stroke="{color(i)}"><title>job {o["job_id"]}: '
                f"{fmt_seconds(o['duration_s'])}</title></circle>"
            )
        parts.append(
            f'<text x="{cx:.1f}" y="{TOP + plot_h + 16:.1f}" text-anchor="middle">'
            f"{escape(s['stage'])}</text>"
        )
    return _svg(parts, TOP + plot_h + BOTTOM, "box", label)


def _svg(parts: list[str], height: float, kind: str, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" '
        f'data-chart="{kind}" role="img" aria-label="{escape(label)}" width="{WIDTH}" '
        f'height="{height:.0f}" viewBox="0 0 {WIDTH} {height:.0f}" '
        'font-family="sans-serif" font-size="11">' + "".join(parts) + "</svg>"
    )
