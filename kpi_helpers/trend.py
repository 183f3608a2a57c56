"""Each headline KPI across the rendered quarters, for the report index ``OUT/index.html``.

One row per headline KPI of the registry (:mod:`kpi_helpers.registry`, ``headline=True``) that a
rendered quarter holds: its value in each quarter (formatted by its unit, compact, ``n/a`` where a
quarter's data does not give it), the change of the newest quarter on the one before it, and a
sparkline (inline SVG: no script, no request; a gap where a value is missing). The values are the
ones each quarter's own ``metrics.json`` recorded when it was rendered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from .formats import finite_number

__all__ = ["SHOWN", "Trend", "TrendRow", "headline_trend", "sparkline"]

#: quarters shown as columns (the newest); the sparkline draws them all
SHOWN = 8
_W, _H, _PAD = 96, 24, 3


@dataclass(frozen=True)
class TrendRow:
    """One headline KPI across the quarters (oldest first)."""

    key: str
    label: str
    values: list[str]
    change: str
    sparkline: Markup


@dataclass(frozen=True)
class Trend:
    """The headline KPIs' trend: the quarters shown (oldest first) and one row per KPI."""

    quarters: list[str]
    rows: list[TrendRow]


def sparkline(values: Sequence[float | None], label: str) -> Markup:
    """A small line chart of ``values`` (oldest first) as inline SVG; a gap at each missing value.

    The vertical scale runs from the smallest to the largest value (a flat line when they are equal);
    the newest value is marked with a dot. ``label`` is the chart's accessible name (escaped).

    >>> svg = sparkline([1.0, None, 3.0, 2.0], "Leads <x>")
    >>> svg.count("<polyline"), 'aria-label="Leads &lt;x&gt;"' in svg
    (1, True)
    """
    numbers = [v for v in values if v is not None]
    if len(numbers) < 2:
        return Markup("")
    low, high = min(numbers), max(numbers)
    n = len(values)

    def point(i: int, v: float) -> str:
        x = _PAD + i * (_W - 2 * _PAD) / (n - 1)
        share = 0.5 if high == low else (v - low) / (high - low)
        y = _H - _PAD - share * (_H - 2 * _PAD)
        return f"{x:.1f},{y:.1f}"

    runs: list[list[str]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            runs.append([])
        else:
            runs[-1].append(point(i, v))
    lines = "".join(
        f'<polyline points="{" ".join(run)}" fill="none" stroke="#1f4e79" stroke-width="1.5"/>'
        for run in runs
        if len(run) >= 2
    )
    last = next((i, v) for i, v in reversed(list(enumerate(values))) if v is not None)
    x, y = point(*last).split(",")
    dot = f'<circle cx="{x}" cy="{y}" r="2.2" fill="#1f4e79"/>'
    return Markup(
        f'<svg class="spark" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{escape(label)}">{lines}{dot}</svg>'
    )


def headline_trend(quarters: Sequence[tuple[str, Mapping[str, Any]]], *, shown: int = SHOWN) -> Trend | None:
    """The headline KPIs across ``quarters`` (``(label, metrics)``, oldest first); None for fewer than two.

    >>> t = headline_trend([("2026Q1", {"leads": 500, "currency": "USD"}), ("2026Q2", {"leads": 550})])
    >>> t.quarters, [(r.label, r.values, r.change) for r in t.rows]
    (['2026Q1', '2026Q2'], [('Leads', ['500', '550'], '+10.0%')])
    """
    from . import formats
    from .registry import KPIS

    if len(quarters) < 2:
        return None
    currency = next((str(m["currency"]) for _, m in reversed(quarters) if m.get("currency")), "")
    labels = [label for label, _ in quarters]
    rows = []
    for key, kpi in KPIS.items():
        if not kpi.headline or not any(key in m for _, m in quarters):
            continue
        values = [finite_number(m.get(key)) for _, m in quarters]
        shown_values = [formats.format_value(v, kpi.unit, currency=currency, compact=True) for v in values[-shown:]]
        change = formats.format_change(values[-1], values[-2], kpi.unit)
        words = ", ".join(f"{q} {v}" for q, v in zip(labels[-shown:], shown_values, strict=True))
        rows.append(TrendRow(key, kpi.label, shown_values, change, sparkline(values, f"{kpi.label}: {words}")))
    return Trend(labels[-shown:], rows)
