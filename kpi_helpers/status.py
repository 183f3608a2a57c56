"""A KPI's status against its target: one rule, one colour scale, one set of words.

The rule is :func:`kpi_helpers.kpis.kpi_status` (on track at the target; at risk at least 90% of the
way from the baseline to the target, or 90% of the target without a baseline; off track below). A
quarter in progress is judged on its projection, never on its part-quarter actual: the forecast's
P50 where the kit forecasts the KPI (:mod:`kpi_helpers.forecast`), else the run-rate projection
(:func:`projections`); a sum over part of a finished quarter is not judged. Every chart, table,
tile and sentence takes a KPI's status from :func:`judge` (or from the ``status`` that
``metrics.json`` rows already carry, which came from it), so the colours, the words and the table
agree.

>>> judge(93, 100, baseline=80), judge(93, 100)
('off track', 'at risk')
>>> projections({"leads": 900.0, "visits": 5e4}, {"leads": {"p50": 1010.0}})
{'leads': 1010.0, 'visits': 50000.0}
>>> COLOURS["at risk"], LABELS["off track"], CSS["on track"]
('#e0a100', 'Off track', 'good')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import kpis as K

#: the statuses, best first
STATUSES = ("on track", "at risk", "off track", "no data")
#: one colour scale (colour-blind safe enough with the words always next to it)
COLOURS = {"on track": "#2e7d32", "at risk": "#e0a100", "off track": "#c62828", "no data": "#9e9e9e"}
#: words on pages (the status is never told by colour alone)
LABELS = {"on track": "On track", "at risk": "At risk", "off track": "Off track", "no data": "No data"}
#: CSS classes of the index pages' tiles
CSS = {"on track": "good", "at risk": "warn", "off track": "bad", "no data": "none"}


def judge(
    actual: Any,
    target: Any,
    *,
    baseline: Any = None,
    higher_is_better: bool = True,
    projected: Any = None,
    partial: bool = False,
) -> str:
    """The status of a KPI: ``projected`` (a quarter in progress) is judged when given, else
    ``actual``; ``partial`` (a sum over part of a finished quarter) is not judged: ``no data``."""
    if partial and projected is None:
        return "no data"
    judged = actual if projected is None else projected
    return str(
        K.kpi_status(
            _nan(judged),
            _nan(target),
            baseline=None if baseline is None else _nan(baseline),
            higher_is_better=higher_is_better,
        )
    )


#: each forecast of :data:`kpi_helpers.forecast.METRICS` by the key its KPI rows project (a fact or a KPI)
FORECAST_KEYS = {
    "revenue": "revenue",
    "bookings": "lead_revenue",
    "won_deals": "lead_won_deals",
    "all_bookings": "won_revenue",
    "leads": "leads",
    "mqls": "mqls",
    "sqls": "sqls",
    "opportunities": "lead_opportunities",
}


def projections(run_rate: Mapping[str, Any] | None, forecast: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a quarter in progress is judged on, by KPI or fact key: the forecast's P50 (``metrics.json``
    ``forecast``) where there is one, else the run-rate projection (``pacing``)."""
    out = dict(run_rate or {})
    for name, f in (forecast or {}).items():
        p50 = f.get("p50") if isinstance(f, Mapping) else None
        if name in FORECAST_KEYS and p50 is not None:
            out[FORECAST_KEYS[name]] = p50
    return out


def of_row(row: Mapping[str, Any]) -> str:
    """A ``metrics.json`` KPI row's status (its own ``status`` key, which :func:`judge` set)."""
    status = str(row.get("status") or "no data")
    return status if status in STATUSES else "no data"


def _nan(value: Any) -> float:
    try:
        return float("nan") if value is None else float(value)
    except (TypeError, ValueError):
        return float("nan")
