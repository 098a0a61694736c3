"""Consumption charts drawn on the server as small inline SVG: nothing to download on a slow phone, no
chart library, and the numbers stay exact (integer paise and litres until the last pixel).

Each chart carries a `<title>`/`<desc>` and one `<title>` per bar for screen readers; the page also
offers the same figures as a table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from html import escape
from typing import Protocol

from markupsafe import Markup

from citygas.platform.money import format_inr, format_scm
from citygas.web.i18n import format_day, format_month, translate

WIDTH = 340
HEIGHT = 180
LEFT = 8
BOTTOM = 22
TOP = 18


class Point(Protocol):
    @property
    def period_end(self) -> date: ...
    @property
    def litres(self) -> int: ...
    @property
    def paise(self) -> int: ...


def value_of(point: Point, unit: str) -> int:
    return point.paise if unit == "inr" else point.litres


def label_of(value: int, unit: str) -> str:
    return format_inr(value) if unit == "inr" else format_scm(value)


def period_label(lang: str, point: Point, view: str) -> str:
    return format_month(lang, point.period_end) if view == "monthly" else format_day(lang, point.period_end)


def bar_chart_svg(points: Sequence[Point], *, unit: str, view: str, lang: str) -> Markup:
    """Bars oldest → newest; the tallest bar fills the height; the largest value is written at the top."""
    values = [max(0, value_of(p, unit)) for p in points]
    peak = max(values, default=0) or 1
    slot = (WIDTH - 2 * LEFT) / max(1, len(points))
    bar = max(2.0, slot * 0.7)
    usable = HEIGHT - TOP - BOTTOM
    title = translate(lang, "Monthly use" if view == "monthly" else "Daily use")
    total = sum(values)
    desc = translate(
        lang, "%(count)s periods, total %(total)s", count=len(points), total=label_of(total, unit)
    )
    axis_y = HEIGHT - BOTTOM
    peak_text = f"{translate(lang, 'max')} {label_of(max(values, default=0), unit)}"
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        ' aria-labelledby="chart-title chart-desc" data-testid="usage-chart">',
        f'<title id="chart-title">{escape(title)}</title><desc id="chart-desc">{escape(desc)}</desc>',
        f'<line class="axis" x1="{LEFT}" y1="{axis_y}" x2="{WIDTH - LEFT}" y2="{axis_y}"/>',
        f'<text x="{LEFT}" y="12">{escape(peak_text)}</text>',
    ]
    for index, (point, value) in enumerate(zip(points, values, strict=True)):
        height = usable * value / peak
        x = LEFT + index * slot + (slot - bar) / 2
        y = HEIGHT - BOTTOM - height
        tip = f"{period_label(lang, point, view)}: {label_of(value, unit)}"
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}">'
            f"<title>{escape(tip)}</title></rect>"
        )
    if points:
        first, last = points[0], points[-1]
        parts.append(f'<text x="{LEFT}" y="{HEIGHT - 6}">{escape(period_label(lang, first, view))}</text>')
        parts.append(
            f'<text x="{WIDTH - LEFT}" y="{HEIGHT - 6}" text-anchor="end">'
            f"{escape(period_label(lang, last, view))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text above is escaped
