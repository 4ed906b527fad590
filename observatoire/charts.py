"""Server-side SVG charts (no chart library, nothing loaded from elsewhere). Every chart
is paired, in the page, with a table holding the same numbers."""

from __future__ import annotations

import html
import math


def share_trend(
    points: list[tuple[str, float | None, float | None, float | None]], title: str
) -> str:
    """Monthly share with no way to book (0–1) and its 95 % interval, as bars."""
    width, height, left, bottom, top = 640, 220, 44, 36, 12
    n = max(1, len(points))
    step = (width - left - 8) / n
    bar = max(4.0, step * 0.6)
    plot_h = height - bottom - top

    def y(v: float) -> float:
        return top + plot_h * (1 - v)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{html.escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{html.escape(title)}</title>",
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - 4}" y1="{y(tick):.1f}" '
            f'y2="{y(tick):.1f}"/><text class="axis" x="{left - 6}" '
            f'y="{y(tick) + 4:.1f}" text-anchor="end">{int(tick * 100)} %</text>'
        )
    for i, (label, share, low, high) in enumerate(points):
        x = left + i * step + (step - bar) / 2
        if share is not None and not math.isnan(share):
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y(share):.1f}" width="{bar:.1f}" '
                f'height="{plot_h * share:.1f}"/>'
            )
            if low is not None and high is not None and not math.isnan(low):
                cx = x + bar / 2
                parts.append(
                    f'<line class="ci" x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(high):.1f}" '
                    f'y2="{y(low):.1f}"/>'
                )
        if n <= 12 or i % max(1, n // 12) == 0:
            parts.append(
                f'<text class="axis" x="{x + bar / 2:.1f}" y="{height - 14}" '
                f'text-anchor="middle">{html.escape(label[2:])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
