"""The one-page brief: the quarter for leadership on one A4 or Letter page (``OUT/<quarter>/brief.html``).

What it shows, all from the quarter's ``metrics.json`` and the summary page's own words:

- the quarter, its dates and how much of it the data covers;
- revenue against target (:func:`revenue_outlook`): the sentence and a chart. While the quarter is
  in progress it shows where revenue is heading: the forecast (``metrics["forecast"]["revenue"]``:
  ``{p10, p50, p90, target, probability_to_hit, as_of}``) when the metrics hold one, else the
  run-rate projection (``metrics["pacing"]["revenue"]``);
- the headline tiles, as the quarter's index shows them (:func:`kpi_helpers.pages.headline_tiles`);
- the three largest movements on the previous quarter (:func:`movements`);
- the summary notebook's conclusion (:func:`kpi_helpers.pages.conclusion_html`), links removed;
- when the data behind a published quarter moved, how many KPIs changed since which report.

The page is one self-contained HTML file: the chart is an embedded PNG (the mail replaces it by an
inline attachment, :mod:`kpi_helpers.mail`), layout is tables with inline colours (mail clients
ignore much of CSS), and its print styles fit one page. Names from the data render as text
(autoescaped; the conclusion was escaped by mistune). No personal data: only aggregates reach it.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import fileio
from .formats import finite_number
from .outdir import KIT_NAME
from .planning import Job, clip

__all__ = ["BRIEF", "Brief", "Movement", "build_brief", "movements", "revenue_outlook", "write_brief"]

#: the brief's file in a quarter folder
BRIEF = "brief.html"
#: movements the brief lists
MOVEMENTS = 3
#: headline tiles per row (23 on the sample: four rows)
TILES_PER_ROW = 6
TEMPLATES = Path(__file__).with_name("templates") / "share"


@dataclass(frozen=True)
class Movement:
    """A headline KPI's change on the previous quarter, as the brief lists it."""

    key: str
    label: str
    before: str
    after: str
    change: str
    #: ``better``, ``worse`` or ``""`` (a KPI with no better direction, such as marketing cost)
    verdict: str
    #: the quarter is in progress and ``after`` is its run-rate projection
    projected: bool
    #: the relative change, which ranks the movements
    size: float


@dataclass(frozen=True)
class Brief:
    """The brief's content: the template's context and the chart's PNG (None without revenue)."""

    context: dict[str, Any]
    chart: bytes | None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _money(value: Any, currency: str, *, compact: bool = False) -> str:
    from .formats import format_value

    return format_value(finite_number(value), "money", currency=currency, compact=compact)


def movements(metrics: Mapping[str, Any], limit: int = MOVEMENTS) -> list[Movement]:
    """The headline KPIs that moved most on the previous quarter, largest relative change first.

    .. math::

        \\text{size} = \\left| \\frac{\\text{now}}{\\text{before}} - 1 \\right|

    Ranked by the relative change (points for a percentage are shown, but the rank is relative, so a
    rate that went from 2% to 3% counts as +50%); a KPI missing in either quarter, or 0 before, is
    left out. While the quarter is in progress a sum (leads, revenue) is compared by its run-rate
    projection, never by its part-quarter total; rates are compared as they are. Ties keep the
    registry's order.

    >>> m = {"currency": "USD", "leads": 90, "revenue": 1.2e6, "bounce_rate": 0.52,
    ...      "previous_quarter": {"quarter": "2026Q2", "leads": 100, "revenue": 1.0e6, "bounce_rate": 0.5}}
    >>> [(x.label, x.change, x.verdict) for x in movements(m)]
    [('Revenue', '+20.0%', 'better'), ('Leads', '-10.0%', 'worse'), ('Bounce rate', '+2.0 pts', 'worse')]
    """
    from . import formats
    from .registry import KPIS

    previous = _mapping(metrics.get("previous_quarter"))
    pacing = _mapping(metrics.get("pacing") if metrics.get("in_progress") else None)
    currency = str(metrics.get("currency") or "")
    found = []
    for key, kpi in KPIS.items():
        if not kpi.headline:
            continue
        projected = bool(pacing) and kpi.additive
        now = finite_number(pacing.get(key) if projected else metrics.get(key))
        before = finite_number(previous.get(key))
        if now is None or before is None or before == 0:
            continue
        size = abs(now / before - 1)
        better = kpi.higher_is_better
        verdict = "" if better is None or now == before else ("better" if (now > before) == better else "worse")
        found.append(
            Movement(
                key,
                kpi.label,
                formats.format_value(before, kpi.unit, currency=currency, compact=True),
                formats.format_value(now, kpi.unit, currency=currency, compact=True),
                formats.format_change(now, before, kpi.unit),
                verdict,
                projected,
                size,
            )
        )
    found.sort(key=lambda m: -m.size)  # stable: ties keep the registry's order
    return found[:limit]


def _revenue_status(metrics: Mapping[str, Any]) -> str | None:
    """The revenue KPI row's own status (``metrics["kpis"]``), else judged by the one rule."""
    from . import status as S

    for row in metrics.get("kpis") or []:
        if isinstance(row, Mapping) and row.get("metric") == "revenue":
            return S.of_row(dict(row))
    revenue, target = finite_number(metrics.get("revenue")), finite_number(metrics.get("revenue_target"))
    if revenue is None or target is None:
        return None
    return S.judge(revenue, target, projected=finite_number((metrics.get("pacing") or {}).get("revenue")))


def _forecast(metrics: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The revenue forecast while the quarter is in progress, when the metrics hold a usable one."""
    if not metrics.get("in_progress"):
        return None
    forecast = metrics.get("forecast")
    revenue = forecast.get("revenue") if isinstance(forecast, Mapping) else None
    if not isinstance(revenue, Mapping) or any(finite_number(revenue.get(k)) is None for k in ("p10", "p50", "p90")):
        return None
    return revenue


def revenue_outlook(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Revenue against target in words (``lines``) and what the chart draws.

    A finished quarter: its revenue as a share of the target, with the status. A quarter in
    progress: revenue so far, then the forecast (P50, the P10-P90 range and the chance of reaching
    the target) when the metrics hold one, else the run-rate projection. Then the fiscal year to
    date against the annual target. A missing number says why (``metrics["undefined"]``).

    >>> o = revenue_outlook({"currency": "USD", "revenue": 900.0, "revenue_target": 1000.0})
    >>> o["lines"]
    ['Revenue $900 is 90% of the quarter’s target of $1,000 (at risk).']
    """
    from .labels import status_word

    currency = str(metrics.get("currency") or "")
    undefined = _mapping(metrics.get("undefined"))
    revenue, target = finite_number(metrics.get("revenue")), finite_number(metrics.get("revenue_target"))
    status = _revenue_status(metrics)
    forecast = _forecast(metrics)
    in_progress = bool(metrics.get("in_progress"))
    pacing = _mapping(metrics.get("pacing"))
    projected = None if forecast or not in_progress else finite_number(pacing.get("revenue"))
    lines: list[str] = []
    word = f" ({status_word(status)})" if status and status != "no data" else ""

    def of_target(value: float) -> str:
        return f"{value / target:.0%} of the quarter’s target of {_money(target, currency)}" if target else ""

    if revenue is None:
        lines.append(f"Revenue: n/a ({clip(str(undefined.get('revenue') or 'not in the data'), 140)}).")
    elif not in_progress:
        share = of_target(revenue)
        lines.append(f"Revenue {_money(revenue, currency)}" + (f" is {share}{word}." if share else "."))
    else:
        end = metrics.get("data_end") or "the data's last day"
        lines.append(f"Revenue so far {_money(revenue, currency)} (data to {end}).")
        if forecast is not None:
            p10, p50, p90 = (_money(forecast[k], currency, compact=True) for k in ("p10", "p50", "p90"))
            text = f"Forecast for the quarter: {p50} (P10 {p10} to P90 {p90})"
            chance = finite_number(forecast.get("probability_to_hit"))
            if chance is not None and target:
                text += f"; {chance:.0%} chance of reaching the target of {_money(target, currency)}"
            as_of = forecast.get("as_of")
            lines.append(text + (f", as of {as_of}." if as_of else "."))
        elif projected is not None:
            share = of_target(projected)
            lines.append(
                f"At the run-rate of the months closed the quarter ends at {_money(projected, currency)}"
                + (f": {share}{word}." if share else ".")
            )
        else:
            lines.append("No run-rate projection yet: no month of the quarter has closed in the revenue data.")
    if target is None and revenue is not None:
        why = undefined.get("revenue_target")
        lines.append("No revenue target" + (f": {clip(str(why), 140)}." if why else "."))
    fytd = finite_number(metrics.get("revenue_fiscal_year_to_date"))
    annual = finite_number(metrics.get("revenue_target_fiscal_year"))
    if fytd is not None and annual:
        year = metrics.get("fiscal_year") or "the fiscal year"
        lines.append(
            f"{year} to date: {_money(fytd, currency)}, {fytd / annual:.0%} of the annual target of "
            f"{_money(annual, currency)}."
        )
    return {
        "lines": lines,
        "revenue": revenue,
        "target": target,
        "status": status,
        "projected": projected,
        "forecast": forecast,
        "currency": currency,
    }


def chart_png(outlook: Mapping[str, Any]) -> bytes | None:
    """The revenue chart (:func:`kpi_helpers.charts.plot_revenue_outlook`) as PNG bytes; None without
    revenue and target. Drawn on its own figure with the kit's style, nothing global changed; the PNG
    carries no software version, so the bytes depend only on the numbers and the fonts."""
    if outlook["revenue"] is None and outlook["target"] is None:
        return None
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from . import charts

    style: Any = charts.RC  # matplotlib's stubs want literal keys
    with matplotlib.rc_context(style):
        fig = Figure(figsize=(7.2, 1.1), layout="constrained")
        FigureCanvasAgg(fig)
        charts.plot_revenue_outlook(
            outlook["revenue"],
            outlook["target"],
            status=outlook["status"],
            projected=outlook["projected"],
            forecast=outlook["forecast"],
            ax=fig.subplots(),
            title="",  # the brief's heading says it
            currency=outlook["currency"],
        )
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=150, metadata={"Software": None})
    return buffer.getvalue()


def _tiles(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The index's headline tiles, each with its status colours (inline: mail clients drop classes)."""
    from .pages import headline_tiles, palette

    colours = palette()
    previous = metrics.get("previous_quarter")
    when = previous.get("quarter") if isinstance(previous, Mapping) else None
    out = []
    for tile in headline_tiles(metrics):
        parts = tile.attainment.split("; ")
        change = next((p for p in parts if when and p.endswith(f" on {when}")), "")
        share = next((p.removesuffix(" of target") for p in parts if p.endswith(" of target")), "")
        target = f"Target {tile.target}" + (f" · {share}" if share else "") if tile.target else ""
        out.append(
            {
                "label": tile.label,
                "value": tile.value,
                "target": target,
                "change": change,
                "status": tile.status_text,
                "note": clip(tile.note, 70),
                "colours": colours.get(tile.status, colours["none"]),
            }
        )
    return out


def _rows(items: Sequence[Any], per_row: int) -> list[list[Any]]:
    return [list(items[i : i + per_row]) for i in range(0, len(items), per_row)]


def _unlinked(conclusion: str) -> str:
    """The conclusion's HTML without its links (they point at sibling pages a mail or the one file lacks)."""
    if "<a" not in conclusion:
        return conclusion
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(conclusion, "html.parser")
    for link in soup.find_all("a"):
        link.unwrap()
    return str(soup)


def build_brief(
    label: str, metrics: Mapping[str, Any], conclusion: str = "", changes: Mapping[str, Any] | None = None
) -> Brief:
    """The brief's context for its template, and its chart.

    ``conclusion`` is the summary page's conclusion as (escaped) HTML; ``changes`` the run's
    ``changes.json`` (:func:`kpi_helpers.history.changes`).
    """
    from . import status as S
    from .pages import palette

    outlook = revenue_outlook(metrics)
    previous = metrics.get("previous_quarter")
    changed = list((changes or {}).get("changes") or [])
    start, end = metrics.get("quarter_start"), metrics.get("quarter_end")
    period = [f"{start} to {end}" if start and end else "", str(metrics.get("fiscal_year") or "")]
    if metrics.get("in_progress") and metrics.get("days_covered") and metrics.get("days_in_quarter"):
        period.append(f"in progress: {metrics['days_covered']} of {metrics['days_in_quarter']} days")
    if metrics.get("data_end"):
        period.append(f"data to {metrics['data_end']}")
    if metrics.get("currency"):
        period.append(f"money in {metrics['currency']}")
    fingerprint = str(metrics.get("data_fingerprint") or "")
    status = outlook["status"]
    context = {
        "kit": KIT_NAME,
        "quarter": label,
        "title": f"{label} in brief",
        "period": " · ".join(p for p in period if p),
        "outlook": outlook["lines"],
        # The summary's conclusion says a finished quarter's revenue against target in its first lines.
        "outlook_shown": bool(metrics.get("in_progress")) or not conclusion,
        "outlook_status": S.LABELS.get(status, "") if status and status != "no data" else "",
        "outlook_colours": palette().get(S.CSS.get(status or "", "none"), palette()["none"]),
        "tile_rows": _rows(_tiles(metrics), TILES_PER_ROW),
        "per_row": TILES_PER_ROW,
        "verdict_ink": {"better": palette()["good"]["ink"], "worse": palette()["bad"]["ink"]},
        "movements": movements(metrics),
        "previous": previous.get("quarter") if isinstance(previous, Mapping) else "",
        "conclusion": _unlinked(conclusion),
        "changed": len(changed),
        "changed_since": str((changes or {}).get("since") or "")[:10],
        "fingerprint": fingerprint.replace("sha256:", "sha256 ")[:19],
    }
    return Brief(context, chart_png(outlook))


def _env() -> Any:
    from jinja2 import Environment, FileSystemLoader

    # autoescape for every template: channel names and reasons come from the data.
    return Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, trim_blocks=True, lstrip_blocks=True)


def render(brief: Brief, *, standalone: bool = True) -> str:
    """The brief as a page (``standalone``) or as the section of the one file (:mod:`kpi_helpers.onefile`)."""
    from markupsafe import Markup

    chart = ""
    if brief.chart is not None:
        chart = "data:image/png;base64," + base64.b64encode(brief.chart).decode("ascii")
    context = {**brief.context, "conclusion": Markup(brief.context["conclusion"]), "chart": chart}
    template = "brief.html.j2" if standalone else "_brief.html.j2"
    return str(_env().get_template(template).render(**context))


def write_brief(
    folder: Path,
    label: str,
    metrics: Mapping[str, Any],
    plan: list[Job],
    changes: Mapping[str, Any] | None = None,
) -> Brief:
    """Write ``folder/brief.html`` (atomically) and return the brief for the one file."""
    from .pages import conclusion_html

    brief = build_brief(label, metrics, conclusion_html(folder, plan), changes)
    fileio.write_atomic(folder / BRIEF, render(brief))
    return brief
