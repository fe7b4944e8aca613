"""Bar chart geometry for inline SVG: categories along x, one or more series stacked or side by side. The
template draws the rectangles; every bar carries a ``<title>`` with its exact value, and each chart has a data
table beside it, so nothing is conveyed by the drawing alone."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 46


@dataclass(frozen=True, slots=True)
class Bar:
    """One drawn rectangle and its accessible description."""

    x: float
    y: float
    width: float
    height: float
    series: int
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    """A labelled horizontal grid line."""

    y: float
    label: str


@dataclass(frozen=True, slots=True)
class Label:
    """A category label under the x axis."""

    x: float
    text: str


@dataclass(slots=True)
class BarChart:
    """A chart ready to draw: bars, y ticks, x labels and the series names for the legend."""

    title: str
    series: list[str]
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    baseline: int = HEIGHT - BOTTOM


def _nice_top(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (1 for an empty chart)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def bar_chart(title: str, categories: list[str], series: list[tuple[str, list[float | None]]], *,
              stacked: bool, unit: str = "") -> BarChart:
    """Lay out ``series`` (name, one value per category; None for no value) over ``categories``."""
    chart = BarChart(title, [name for name, _ in series])
    totals = [sum(v or 0 for _, values in series for v in [values[i]]) if stacked
              else max((values[i] or 0 for _, values in series), default=0) for i in range(len(categories))]
    top = _nice_top(max(totals, default=0))
    plot_height = chart.baseline - TOP
    chart.ticks = [Tick(chart.baseline - plot_height * k / 4, _number(top * k / 4)) for k in range(5)]
    slot = (chart.plot_right - chart.plot_left) / max(1, len(categories))
    bar_width = slot * 0.7 if stacked else slot * 0.8 / max(1, len(series))
    for index, category in enumerate(categories):
        left = chart.plot_left + slot * index + slot * (0.15 if stacked else 0.1)
        chart.labels.append(Label(chart.plot_left + slot * (index + 0.5), category))
        bottom = float(chart.baseline)
        for number, (name, values) in enumerate(series):
            value = values[index]
            if value is None:
                continue
            height = plot_height * value / top
            x = left if stacked else left + bar_width * number
            y = bottom - height
            chart.bars.append(Bar(round(x, 1), round(y, 1), round(bar_width, 1), round(height, 1), number,
                                  f"{category}, {name}: {_number(value)}{unit}"))
            if stacked:
                bottom = y
    return chart
