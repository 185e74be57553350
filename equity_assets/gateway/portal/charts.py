"""Server-rendered SVG charts (no script, no external asset); each has a title and a text table twin."""

from __future__ import annotations

from datetime import date
from html import escape

from markupsafe import Markup

WIDTH = 640
BAR_H = 28
GAP = 10
LABEL_W = 120


def funnel_svg(stages: list[tuple[str, int]]) -> Markup:
    """Horizontal bars, one per funnel stage, each labelled with its count and % of the first stage."""
    top = max((n for _, n in stages), default=0) or 1
    first = stages[0][1] if stages else 0
    height = len(stages) * (BAR_H + GAP) + GAP
    parts = [f'<svg role="img" aria-labelledby="funnel-title" viewBox="0 0 {WIDTH} {height}" width="100%" '
             f'xmlns="http://www.w3.org/2000/svg"><title id="funnel-title">Lead funnel</title>']
    for i, (label, n) in enumerate(stages):
        y = GAP + i * (BAR_H + GAP)
        w = round((WIDTH - LABEL_W - 140) * n / top)
        pct = f"{100 * n / first:.1f}%" if first else "–"
        parts.append(f'<text x="0" y="{y + 19}" font-size="14">{escape(label)}</text>'
                     f'<rect x="{LABEL_W}" y="{y}" width="{max(w, 1)}" height="{BAR_H}" fill="#0b5394" rx="3"/>'
                     f'<text x="{LABEL_W + max(w, 1) + 8}" y="{y + 19}" font-size="14">{n} ({pct})</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def conversion_svg(weeks: list[tuple[date, int, int]]) -> Markup:
    """Weekly appointment conversion (% of the week's new leads) as a line with labelled points."""
    height, pad = 240, 40
    rates = [(w, (100 * appts / leads) if leads else 0.0) for w, leads, appts in weeks]
    top = max((r for _, r in rates), default=0) or 1
    step = (WIDTH - 2 * pad) / max(len(rates) - 1, 1)
    points = [(pad + i * step, height - pad - (height - 2 * pad) * r / top) for i, (_, r) in enumerate(rates)]
    parts = [f'<svg role="img" aria-labelledby="conv-title" viewBox="0 0 {WIDTH} {height}" width="100%" '
             f'xmlns="http://www.w3.org/2000/svg"><title id="conv-title">Appointments per new lead, by week</title>',
             f'<line x1="{pad}" y1="{height - pad}" x2="{WIDTH - pad}" y2="{height - pad}" stroke="#5a6570"/>']
    if points:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#0b5394" stroke-width="3"/>')
    for (x, y), (week, rate) in zip(points, rates, strict=True):
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#0b5394"/>'
                     f'<text x="{x:.1f}" y="{height - pad + 18}" font-size="11" text-anchor="middle">'
                     f'{week:%m/%d}</text>'
                     f'<text x="{x:.1f}" y="{y - 8:.1f}" font-size="11" text-anchor="middle">{rate:.0f}%</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
