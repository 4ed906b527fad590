"""Server-side SVG charts (no chart library, nothing loaded from elsewhere). Every chart
is paired, in the page, with a table holding the same numbers.

The bars are horizontal, one line per month: a 24-month trend then stays legible on a
390 px phone (the viewBox is narrow, so its 13-unit text is never drawn under 11 px), each
bar carries its value, and the title and the partial-month marks live inside the image,
so a screenshot of the chart alone still says what it shows.
"""

from __future__ import annotations

import html
import math

WIDTH = 400
ROW = 24
LABEL_W = 112
VALUE_W = 46
FONT = 13


def _wrap(title: str, limit: int = 52) -> list[str]:
    lines: list[str] = []
    for word in title.split():
        if lines and len(lines[-1]) + 1 + len(word) <= limit:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def share_trend(
    points: list[tuple[str, float | None, float | None, float | None]],
    title: str,
    marks: dict[str, str] | None = None,
) -> str:
    """Monthly share with no way to book (0–1) and its 95 % interval, one horizontal bar
    per month. `points` are (month label as shown, share, low, high); `marks` maps a
    label to a short note drawn after it ("partiel", "en cours")."""
    marks = marks or {}
    title_lines = _wrap(title)
    top = 8 + (FONT + 5) * len(title_lines) + 22
    plot_x = LABEL_W
    plot_w = WIDTH - LABEL_W - VALUE_W
    notes = [f"* {label} : {marks[label]}" for label, *_ in points if marks.get(label)]
    plot_end = top + ROW * max(1, len(points))
    height = plot_end + 8 + (FONT + 5) * len(notes)

    def x(v: float) -> float:
        return plot_x + plot_w * max(0.0, min(1.0, v))

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{html.escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{html.escape(title)}</title>",
    ]
    for i, line in enumerate(title_lines):
        parts.append(
            f'<text class="chart-title" x="0" y="{8 + FONT + i * (FONT + 5)}">'
            f"{html.escape(line)}</text>"
        )
    axis_y = top - 6
    for tick in (0, 0.5, 1):
        parts.append(
            f'<line class="grid" x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{axis_y:.1f}" '
            f'y2="{plot_end}"/><text class="axis" x="{x(tick):.1f}" y="{axis_y - 3:.1f}" '
            f'text-anchor="{"start" if tick == 0 else "end" if tick == 1 else "middle"}">'
            f"{int(tick * 100)} %</text>"
        )
    for i, (label, share, low, high) in enumerate(points):
        y = top + i * ROW
        mark = marks.get(label, "")
        name = f"{label}{' *' if mark else ''}"
        parts.append(
            f'<text class="axis{" partial" if mark else ""}" x="0" y="{y + 16}">'
            f"{html.escape(name)}</text>"
        )
        if share is None or math.isnan(share):
            parts.append(
                f'<text class="axis" x="{plot_x + 4}" y="{y + 16}">pas de mesure valide</text>'
            )
            continue
        parts.append(
            f'<rect class="bar{" partial" if mark else ""}" x="{plot_x}" y="{y + 4}" '
            f'width="{max(0.5, x(share) - plot_x):.1f}" height="{ROW - 8}"/>'
        )
        if low is not None and high is not None and not math.isnan(low):
            cy = y + ROW / 2
            parts.append(
                f'<line class="ci" x1="{x(low):.1f}" x2="{x(high):.1f}" y1="{cy:.1f}" '
                f'y2="{cy:.1f}"/>'
            )
        value = f"{100 * share:.0f} %"
        parts.append(
            f'<text class="value" x="{WIDTH}" y="{y + 16}" text-anchor="end">{value}</text>'
        )
    for i, note in enumerate(notes):
        parts.append(
            f'<text class="axis" x="0" y="{plot_end + 4 + FONT + i * (FONT + 5)}">'
            f"{html.escape(note)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
