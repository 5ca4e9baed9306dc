"""Charts as SVG drawn on the server: no chart library, no script, no third-party request."""
from __future__ import annotations

from typing import Callable

from markupsafe import Markup, escape

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 220, 72, 28, 12
COLOURS = ("#0b5cad", "#c0392b")


def bars(title: str, points: list[tuple[str, int]], fmt: Callable[[int], str] = str,
         second: list[tuple[str, int]] | None = None, legend: tuple[str, str] | None = None) -> Markup:
    """A bar chart (two series side by side when ``second`` is given), with a text alternative."""
    series = [points] + ([second] if second is not None else [])
    fmt = _once(fmt)  # each value is written twice (the text alternative and the bar's title)
    top = max([value for s in series for _, value in s] + [1])
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(points), 1)
    bar_w = max(slot * 0.8 / len(series), 1)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<desc>{escape("; ".join(f"{label}: {fmt(value)}" for label, value in points))}</desc>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 8}" y2="{TOP + plot_h}" stroke="#9a968c"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end" font-size="11">{escape(fmt(top))}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end" font-size="11">{escape(fmt(0))}</text>',
    ]
    step = max(1, len(points) // 8)
    for index, (label, _) in enumerate(points):
        x = LEFT + index * slot
        for n, data in enumerate(series):
            value = data[index][1]
            h = plot_h * value / top
            parts.append(
                f'<rect x="{x + slot * 0.1 + n * bar_w:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{COLOURS[n]}"><title>{escape(label)}: {escape(fmt(value))}</title></rect>')
        if index % step == 0:
            parts.append(f'<text x="{x + slot / 2:.1f}" y="{HEIGHT - 10}" text-anchor="middle" '
                         f'font-size="10">{escape(label)}</text>')
    if legend:
        for n, name in enumerate(legend):
            parts.append(f'<rect x="{LEFT + 8 + n * 110}" y="2" width="10" height="10" fill="{COLOURS[n]}"/>'
                         f'<text x="{LEFT + 22 + n * 110}" y="11" font-size="11">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup(f'<figure class="chart"><figcaption>{escape(title)}</figcaption>{"".join(parts)}</figure>')


def _once(fmt: Callable[[int], str]) -> Callable[[int], str]:
    """``fmt``, formatting each value once (formatting money through Babel is the slow part of a chart)."""
    done: dict[int, str] = {}

    def formatted(value: int) -> str:
        if value not in done:
            done[value] = fmt(value)
        return done[value]
    return formatted
