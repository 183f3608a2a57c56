"""Charts for the report pages: presentation only.

- ``plot_<what>(data, *, ax=None, **kwargs) -> Axes`` draws only on ``ax`` (a new figure only when
  ``ax`` is None), never calls ``plt.show()``, and sets a title and axis labels with units.
- Nothing changes matplotlib's global state at import; notebooks call :func:`use_style` once.
- Every number on a chart (bar labels, ticks, annotations) is formatted by
  :func:`kpi_helpers.formats.format_value` with the unit the registry gives its key
  (:func:`kpi_helpers.registry.unit_of`); a key the registry does not know needs an explicit
  ``unit=`` (never a guess from its name). Labels come from :func:`kpi_helpers.registry.label_of`.
- A bar about a KPI's status is coloured by :data:`kpi_helpers.status.COLOURS` with the status the
  KPI row carries (or :func:`kpi_helpers.status.judge` gives), said in words next to it, and tagged so
  that :func:`drawn_statuses` can read back which status each bar was drawn with.
- Text from the data (channel, campaign, landing page, goal names) is escaped for mathtext (``$``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, cast

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .formats import format_value, is_missing
from .labels import model_label, status_word, way_to_target
from .markup import mathtext
from .registry import label_of, unit_of
from .status import COLOURS, LABELS, judge, of_row

__all__ = [
    "CATEGORICAL",
    "INTERVAL_LABEL",
    "axis_unit",
    "drawn_statuses",
    "plot_attribution_comparison",
    "plot_bullets",
    "plot_channel_bars",
    "plot_device_split",
    "plot_forecasts",
    "plot_funnel",
    "plot_goal_progress",
    "plot_goal_rates",
    "plot_kpi_progress",
    "plot_pacing",
    "plot_quarterly_targets",
    "plot_rank_chart",
    "plot_revenue_history",
    "plot_revenue_outlook",
    "plot_stacked_spend",
    "plot_trend",
    "unit_axis",
    "use_style",
]

# -------------------------------------------------------------------------------------------------
# Colours and style

NAVY = "#1f3b73"
BLUE = "#4a7fc1"
LIGHT = "#d5dfee"
TRACK = "#eceff3"
GREY = "#8a8f98"
TARGET = "#d9730d"
NEGATIVE = "#c0392b"
#: categories (channels, models, cost types): seaborn's colour-blind-safe palette
CATEGORICAL = [
    "#0173b2",
    "#de8f05",
    "#029e73",
    "#d55e00",
    "#cc78bc",
    "#ca9161",
    "#fbafe4",
    "#949494",
    "#ece133",
    "#56b4e9",
]
#: the share of the way to a target from which a KPI is at risk (kpi_helpers.kpis.kpi_status)
AT_RISK_FROM = 0.9
#: gid prefix of a bar drawn in a status colour (see :func:`drawn_statuses`)
STATUS_GID = "kpi-status:"

#: the kit's chart settings: :func:`use_style` applies them globally (notebooks); ``matplotlib.rc_context(RC)``
#: applies them to one figure (the brief, drawn inside the runner's process)
RC: dict[str, Any] = {
    "figure.figsize": (8.0, 4.2),
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "figure.constrained_layout.use": True,
    "font.family": "DejaVu Sans",
    "axes.titlesize": 12.5,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.titlepad": 12,
    "axes.labelsize": 10,
    "axes.labelcolor": "#333333",
    "axes.edgecolor": "#9aa0a6",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": plt.cycler(color=CATEGORICAL),
    "xtick.labelsize": 9.5,
    "ytick.labelsize": 9.5,
    "xtick.color": "#444444",
    "ytick.color": "#444444",
    "grid.color": "#e6e8eb",
    "grid.linewidth": 0.8,
    "legend.frameon": False,
    "legend.fontsize": 9,
}


def use_style(*, context: str = "notebook", font_scale: float = 1.0) -> None:
    """Apply the kit's chart style (seaborn ``whitegrid`` with the kit's fonts and colours).

    Call once at the top of a notebook; importing this module changes nothing global.
    """
    import seaborn as sns

    sns.set_theme(context=context, style="whitegrid", palette=CATEGORICAL, font_scale=font_scale, rc=RC)


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax`` itself, or the axes of a new figure when it is None."""
    if ax is not None:
        return ax
    _, new = plt.subplots(figsize=figsize, layout="constrained")
    return new


# -------------------------------------------------------------------------------------------------
# Numbers on charts: the one formatter, the registry's units


def _unit(key: Any, unit: str | None) -> str:
    """``unit``, else the registry's unit of ``key``; a key the registry does not know is an error."""
    found = unit or unit_of(str(key))
    if found is None:
        raise ValueError(
            f"no unit for `{key}`: the registry does not know it; pass `unit=` "
            "(count, money, money_small, percent, ratio, seconds, days)"
        )
    return found


def _text(value: Any, unit: str, currency: str) -> str:
    """A chart label: the value formatted by its unit, compact, escaped for mathtext."""
    return mathtext(format_value(value, unit, currency=currency, compact=True))


_TRAILING_ZEROS = re.compile(r"\.(\d*?)0+(?=\D*$)")


def _tick(value: float, unit: str, currency: str) -> str:
    """An axis tick: :func:`_text` without trailing zeros after the decimal point (``25%``, ``39``)."""
    text = format_value(value, unit, currency=currency, compact=True)
    text = _TRAILING_ZEROS.sub(lambda m: f".{m.group(1)}" if m.group(1) else "", text)
    return mathtext(text)


def axis_unit(unit: str, currency: str = "") -> str:
    """What an axis label says in parentheses for ``unit``: the currency's code for money, ``%`` for
    percentages, ``seconds``, ``days``, ``count``; ``""`` for a ratio (its label says what it is).

    >>> axis_unit("money", "EUR"), axis_unit("percent"), axis_unit("ratio")
    ('EUR', '%', '')
    """
    return {
        "money": currency,
        "money_small": currency,
        "percent": "%",
        "seconds": "seconds",
        "days": "days",
        "count": "count",
    }.get(unit, "")


def _titled(name: str, unit: str, currency: str) -> str:
    """``Leads (count)``, ``Value per visit (USD)``, ``Visits per lead``."""
    suffix = axis_unit(unit, currency)
    return f"{name} ({suffix})" if suffix else name


def unit_axis(ax: Axes, unit: str, *, currency: str = "", axis: str = "y") -> Axes:
    """Format ``ax``'s ``axis`` ("x" or "y") ticks by ``unit`` (:func:`kpi_helpers.formats.format_value`,
    compact): ``$1.5M``, ``25%``, ``24k``; counts get whole-number ticks."""
    a = ax.yaxis if axis == "y" else ax.xaxis
    a.set_major_formatter(FuncFormatter(lambda v, _pos: _tick(v, unit, currency)))
    if unit == "count":
        a.set_major_locator(MaxNLocator(integer=True, nbins="auto"))
    return ax


def _hbar_labels(ax: Axes, labels: Sequence[Any]) -> None:
    """Category labels top to bottom on a horizontal bar chart."""
    ax.set_yticks(range(len(labels)), [mathtext(x) for x in labels])
    ax.set_ylim(max(len(labels), 1) - 0.5, -0.5)  # no bars: a frame of one row, not a zero-height axis
    ax.grid(axis="y", visible=False)
    if not labels:
        ax.text(0.5, 0.5, "nothing to show", transform=ax.transAxes, ha="center", color=GREY)


# -------------------------------------------------------------------------------------------------
# Intervals: error bars where the data carries a number's 90% interval (``x_low``, ``x_high``)

#: what an error bar means, said once per chart
INTERVAL_LABEL = "90% interval"


def _bounds(data: Any, key: str, index: pd.Index) -> tuple[np.ndarray, np.ndarray] | None:
    """``key``'s interval bounds from the columns ``key_low`` and ``key_high`` of ``data`` (a frame),
    in the order of ``index``; None when ``data`` has none or every bound is missing."""
    if not isinstance(data, pd.DataFrame) or f"{key}_low" not in data or f"{key}_high" not in data:
        return None
    low = pd.to_numeric(data[f"{key}_low"], errors="coerce").reindex(index).to_numpy(dtype=float)
    high = pd.to_numeric(data[f"{key}_high"], errors="coerce").reindex(index).to_numpy(dtype=float)
    return None if np.isnan(low).all() and np.isnan(high).all() else (low, high)


def _errors(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Error-bar lengths (2 x n, never negative; 0 where a bound is missing) from the bounds."""
    below = np.where(np.isnan(low), 0.0, np.clip(values - low, 0.0, None))
    above = np.where(np.isnan(high), 0.0, np.clip(high - values, 0.0, None))
    return np.vstack([below, above])


def _interval_legend(ax: Axes, **kwargs: Any) -> None:
    """Say what the whiskers are, in the legend (merged with any other handles of ``ax``)."""
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    whisker = Line2D([], [], color=GREY, marker="|", markersize=9, lw=1.2, label=INTERVAL_LABEL)
    ax.legend(handles=[*handles, whisker], labels=[*labels, INTERVAL_LABEL], **kwargs)


# -------------------------------------------------------------------------------------------------
# Statuses drawn


def _tag(patch: Any, key: Any) -> None:
    """Mark ``patch`` as the bar that shows ``key``'s status (read back by :func:`drawn_statuses`)."""
    patch.set_gid(f"{STATUS_GID}{key}")


def drawn_statuses(figure: Figure | Axes) -> dict[str, str]:
    """The status each status-coloured bar of ``figure`` shows, read from the bar's colour: ``{key:
    status}`` where ``key`` is what the chart was given (a KPI's metric, ``revenue@2026Q3``).

    Read before the figure is shown (a report page keeps only its picture); a test compares these
    with ``metrics.json``.
    """
    axes = figure.get_axes() if isinstance(figure, Figure) else [figure]
    by_colour = {to_hex(c): s for s, c in COLOURS.items()}
    out: dict[str, str] = {}
    for ax in axes:
        for patch in ax.patches:
            gid = patch.get_gid() or ""
            if not gid.startswith(STATUS_GID):
                continue
            face = to_hex(patch.get_facecolor())
            colour = to_hex(patch.get_edgecolor()) if face == "#ffffff" else face
            out[gid.removeprefix(STATUS_GID)] = by_colour.get(colour, f"unknown colour {colour}")
    return out


# -------------------------------------------------------------------------------------------------
# Bullet charts: how far each KPI has come to its target


def plot_bullets(
    rows: Sequence[Mapping[str, Any]],
    *,
    ax: Axes | None = None,
    title: str = "Progress to target",
    xlabel: str | None = None,
    currency: str = "",
    cap: float = 1.5,
) -> Axes:
    """Bullet bars: how far each row has come to its target, coloured and worded by its status.

    A bar is the share of the way from the row's baseline (the left edge, 0%) to its target (the
    dashed line, 100%), or of the target itself without a baseline (target / actual when lower is
    better): :func:`kpi_helpers.labels.way_to_target`, the very number the status rule compares with
    90%. So a bar in the shaded band (90-100%) is *at risk*, one short of it *off track*, one past
    the line *on track*, and a bar's colour always matches its length. Bars stop at ``cap`` (the
    label keeps the true share); a projection (a quarter in progress) is drawn hatched.

    ``rows``: dicts with ``label``, ``actual``, ``target`` and optionally ``key`` (what
    :func:`drawn_statuses` reports the bar under; a KPI's metric), ``projected``, ``baseline``,
    ``unit`` (a registry unit, default ``count``), ``higher_is_better`` (default True), ``status``
    (a KPI row's own status; otherwise :func:`kpi_helpers.status.judge` decides), ``judged``
    (False: progress only, drawn blue without a status) and ``note`` (text after the numbers).
    """
    ax = _axes(ax, (8.0, 0.55 * len(rows) + 1.4))
    shown: list[str] = []
    for i, r in enumerate(rows):
        target, actual, proj, base = r.get("target"), r.get("actual"), r.get("projected"), r.get("baseline")
        higher = bool(r.get("higher_is_better", True))
        unit = r.get("unit") or "count"
        judged = r.get("judged", True)
        status = None
        if judged:
            status = r.get("status") or judge(actual, target, baseline=base, higher_is_better=higher, projected=proj)
            shown.append(status)
        color = COLOURS[status] if status else BLUE
        share = way_to_target(actual, target, base, higher_is_better=higher)
        pshare = way_to_target(proj, target, base, higher_is_better=higher)
        ax.barh(i, 1.0, height=0.72, color=TRACK, zorder=1)
        if not is_missing(pshare):  # a quarter in progress is judged on its projection: draw that
            bar = ax.barh(
                i, _clip(pshare, cap), height=0.46, color="white", edgecolor=color, hatch="////", lw=1.0, zorder=3
            )[0]
        else:  # the actual; width 0 when there is none (the bar still carries the status)
            bar = ax.barh(i, 0.0 if is_missing(share) else _clip(share, cap), height=0.46, color=color, zorder=3)[0]
        if status and r.get("key"):
            _tag(bar, r["key"])
        text = _bullet_text(r, share, pshare, unit, currency, higher)
        if status:
            text += f"  ·  {status_word(status)}"
        _row_note(ax, i, text)
    _target_band(ax, shaded=bool(shown))
    ax.set_xlim(0, cap * 1.02)
    _hbar_labels(ax, [r["label"] for r in rows])
    unit_axis(ax, "percent", axis="x")
    baselines = any(not is_missing(r.get("baseline")) for r in rows)
    ax.set_xlabel(
        xlabel
        or (
            "% of the way from baseline to target (dashed line); at risk from 90%"
            if baselines
            else "% of target (dashed line); at risk from 90%"
        )
    )
    ax.set_title(mathtext(title))
    _bullet_legend(ax, rows, shown)
    return ax


def _clip(share: float, cap: float) -> float:
    return min(max(share, 0.0), cap)


def _row_note(ax: Axes, i: int, text: str) -> None:
    """``text`` right of the plot, level with row ``i`` of a horizontal bar chart."""
    ax.annotate(
        text,
        xy=(1.0, i),
        xycoords=("axes fraction", "data"),
        xytext=(8, 0),
        textcoords="offset points",
        va="center",
        ha="left",
        fontsize=9,
        color="#333333",
    )


def _target_band(ax: Axes, *, shaded: bool) -> None:
    """The target line at 100% and, when statuses are shown, the *at risk* band below it."""
    if shaded:
        ax.axvspan(AT_RISK_FROM, 1.0, color=COLOURS["at risk"], alpha=0.3, zorder=2, lw=0)
    ax.axvline(1.0, color=TARGET, lw=1.6, ls="--", zorder=5)


def _bullet_text(r: Mapping[str, Any], share: float, pshare: float, unit: str, currency: str, higher: bool) -> str:
    """``624 of 705, from 481 (63.8%)``, ``$342 of at most $325 (95.0%)``, ``212 so far, 975 projected of
    732, from 579 (258.2%)``: the share in parentheses is the bar's length."""
    actual, target, proj, base = r.get("actual"), r.get("target"), r.get("projected"), r.get("baseline")
    a, t = _text(actual, unit, currency), _text(target, unit, currency)
    t = t if higher else f"at most {t}"
    frm = "" if is_missing(base) else f", from {_text(base, unit, currency)}"

    def share_of(s: float) -> str:
        return "" if is_missing(s) else f" ({format_value(s, 'percent')})"

    if not is_missing(proj):
        text = f"{a} so far, {_text(proj, unit, currency)} projected of {t}{frm}{share_of(pshare)}"
    elif is_missing(actual):
        text = f"target {t}"
    else:
        text = f"{a} of {t}{frm}{share_of(share)}"
    if r.get("note"):
        text += f"  ·  {mathtext(r['note'])}"
    return text


def _bullet_legend(ax: Axes, rows: Sequence[Mapping[str, Any]], statuses: Sequence[str]) -> None:
    handles: list[Any] = [Patch(color=c, label=LABELS[s]) for s, c in COLOURS.items() if s in statuses]
    if any(r.get("judged") is False for r in rows):
        handles.append(Patch(color=BLUE, label="progress (not judged)"))
    if any(not is_missing(r.get("projected")) for r in rows):
        handles.append(Patch(facecolor="white", edgecolor=GREY, hatch="////", label="projected to quarter end"))
    if handles:
        ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(0.0, 0.0),
            ncol=len(handles),
            fontsize=8.5,
            borderaxespad=3.6,
        )


def _as_float(value: Any) -> float:
    """``float(value)`` for a value already checked with ``is_missing`` (which mypy cannot narrow)."""
    return float(value)


def plot_revenue_outlook(
    revenue: float | None,
    target: float | None,
    *,
    status: str | None = None,
    projected: float | None = None,
    forecast: Mapping[str, Any] | None = None,
    ax: Axes | None = None,
    title: str = "Revenue against target",
    currency: str = "",
) -> Axes:
    """The quarter's revenue against its target on a money axis, for the one-page brief.

    The bar is the revenue (so far, for a quarter in progress) in its status colour; the dashed line
    the target. A quarter in progress shows where it is heading: the forecast's P10-P90 range as a
    band with its P50 as a tick (``forecast``: ``{p10, p50, p90}`` as ``metrics.json`` holds it), or
    without a forecast the run-rate projection (``projected``) as a hatched bar. Every number is
    written next to what it labels, formatted as money.
    """
    ax = _axes(ax, (7.2, 1.5))
    p10, p50, p90 = ((forecast or {}).get(k) for k in ("p10", "p50", "p90"))
    band = not any(is_missing(v) for v in (p10, p50, p90))
    shown = [v for v in (revenue, target, projected, p90 if band else None) if not is_missing(v)]
    top = max([_as_float(v) for v in shown] + [1.0]) * 1.12
    color = COLOURS.get(status or "", BLUE)
    ax.barh(0, top, height=0.8, color=TRACK, zorder=1)
    labels: list[tuple[float, str, str]] = []  # (x, text, where)
    if band:
        ax.barh(0, _as_float(p90) - _as_float(p10), left=_as_float(p10), height=0.8, color=LIGHT, zorder=2)
        ax.plot([_as_float(p50)] * 2, [-0.4, 0.4], color=NAVY, lw=2.4, zorder=5)
        labels.append((_as_float(p50), f"forecast {_text(p50, 'money', currency)} (P10-P90 shaded)", "above"))
    elif not is_missing(projected):
        ax.barh(0, _as_float(projected), height=0.44, color="white", edgecolor=color, hatch="////", lw=1.0, zorder=3)
        labels.append((_as_float(projected), f"run-rate {_text(projected, 'money', currency)}", "above"))
    if not is_missing(revenue):
        bar = ax.barh(0, _as_float(revenue), height=0.44, color=color, zorder=4)[0]
        _tag(bar, "revenue")
        so_far = "so far " if band or not is_missing(projected) else ""
        labels.append((_as_float(revenue), f"{so_far}{_text(revenue, 'money', currency)}", "below"))
    if not is_missing(target):
        ax.axvline(_as_float(target), color=TARGET, lw=1.8, ls="--", zorder=6)
        labels.append((_as_float(target), f"target {_text(target, 'money', currency)}", "top"))
    for x, text, where in labels:
        y, va = {"above": (0.42, "bottom"), "below": (-0.42, "top"), "top": (1.0, "bottom")}[where]
        ha = "right" if x > top * 0.6 else "left"
        ax.annotate(text, xy=(x, y), xytext=(-3 if ha == "right" else 3, 0), textcoords="offset points",
                    ha=ha, va=va, fontsize=8.5, color="#333333", zorder=7)  # fmt: skip
    ax.set_xlim(0, top)
    ax.set_ylim(-0.95, 1.55)  # three rows of labels: the target's, the forecast's, the revenue's
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    ax.grid(False)
    unit_axis(ax, "money", currency=currency, axis="x")
    if title:
        ax.set_title(mathtext(title), fontsize=10.5)
    return ax


def plot_kpi_progress(
    kpis: Sequence[Mapping[str, Any]] | pd.DataFrame,
    *,
    ax: Axes | None = None,
    title: str = "KPIs against their targets",
    currency: str = "",
) -> Axes:
    """The ``kpis`` rows of ``QuarterKpis.metrics()`` as bullet bars (:func:`plot_bullets`), each in its
    row's own status; a label names the KPI and its owner, a quarter in progress shows its projection."""
    rows = cast("list[Mapping[str, Any]]", kpis.to_dict("records")) if isinstance(kpis, pd.DataFrame) else list(kpis)
    bullets = [
        {
            "label": f"{r['name']}\n{r.get('owner') or ''}".strip(),
            "key": r.get("metric") or r["name"],
            "actual": r.get("actual"),
            "target": r.get("target"),
            "projected": r.get("projected"),
            "status": of_row(r),
            "baseline": r.get("baseline"),
            "unit": unit_of(r.get("metric") or "") or r.get("unit") or "count",
            "higher_is_better": r.get("higher_is_better", True),
            "note": r.get("note", "") if is_missing(r.get("actual")) and is_missing(r.get("projected")) else "",
        }
        for r in rows
    ]
    return plot_bullets(bullets, ax=ax, title=title, currency=currency)


def plot_pacing(
    rows: Sequence[Mapping[str, Any]],
    *,
    ax: Axes | None = None,
    title: str = "Current quarter: run-rate projection",
    currency: str = "",
) -> Axes:
    """A quarter in progress (``breakdowns.pacing_rows``: KPI rows with their projection): to date
    (solid) and the run-rate projection to its end (hatched) against the target, each row in its own
    status. The projection assumes the rest of the quarter runs at the pace so far."""
    return plot_kpi_progress(rows, ax=ax, title=title, currency=currency)


def plot_forecasts(
    rows: Sequence[Mapping[str, Any]],
    *,
    ax: Axes | None = None,
    title: str = "Forecasts of the quarter in progress",
    currency: str = "",
    cap: float = 1.5,
    floor: float = -1.0,
) -> Axes:
    """Each forecast's range against its target (``forecast.forecast_rows``): the P10-P90 range (a
    band in the KPI's status, which judges the P50) and the P50 (a dark tick), on the bullet charts'
    scale (:func:`plot_bullets`: the way from the baseline, 0%, to the target, the dashed line; at
    risk from 90%); a forecast below its baseline reaches left of 0% (down to ``floor``). The label
    gives the numbers, the value so far and the probability of reaching the target."""
    ax = _axes(ax, (8.0, 0.55 * len(rows) + 1.4))
    shown: list[str] = []
    left = 0.0
    for i, r in enumerate(rows):
        target, base, unit = r["target"], r.get("baseline"), r.get("unit") or "count"
        higher = bool(r.get("higher_is_better", True))
        way = {k: way_to_target(r[k], target, base, higher_is_better=higher) for k in ("p10", "p50", "p90")}
        if any(is_missing(w) for w in way.values()):
            continue
        status = str(r["status"])
        shown.append(status)
        lo, mid, hi = (min(max(way[k], floor), cap) for k in ("p10", "p50", "p90"))
        lo, hi = min(lo, hi), max(lo, hi)
        left = min(left, lo)
        ax.barh(i, 1.0, height=0.72, color=TRACK, zorder=1)
        band = ax.barh(i, max(hi - lo, 0.004), left=lo, height=0.5, color=COLOURS[status], alpha=0.6, zorder=3)[0]
        _tag(band, r["key"])
        ax.plot([mid, mid], [i - 0.3, i + 0.3], color="#222222", lw=2.0, zorder=4, solid_capstyle="butt")
        p10, p50, p90, so_far, t = (_text(r.get(k), unit, currency) for k in ("p10", "p50", "p90", "so_far", "target"))
        prob = r.get("probability_to_hit")
        bits = [
            f"P50 {p50} of {t if higher else 'at most ' + t}",
            f"P10-P90 {p10}-{p90}",
            "" if is_missing(r.get("so_far")) else f"{so_far} so far",
            "" if is_missing(prob) else f"{_as_float(prob):.0%} chance",
            status_word(status),
        ]
        _row_note(ax, i, "  ·  ".join(b for b in bits if b))
    _target_band(ax, shaded=bool(shown))
    if left < 0:
        ax.axvline(0.0, color=GREY, lw=0.8, zorder=5)
    ax.set_xlim(left - 0.02 if left < 0 else 0, cap * 1.02)
    _hbar_labels(ax, [r["label"] for r in rows])
    unit_axis(ax, "percent", axis="x")
    baselines = any(not is_missing(r.get("baseline")) for r in rows)
    ax.set_xlabel(
        "% of the way from baseline (0%) to target (dashed line); at risk from 90%"
        if baselines
        else "% of target (dashed line); at risk from 90%"
    )
    ax.set_title(mathtext(title))
    handles: list[Any] = [
        Patch(color=c, alpha=0.6, label=f"P10-P90, {LABELS[s].lower()}") for s, c in COLOURS.items() if s in shown
    ]
    handles.append(plt.Line2D([], [], color="#222222", lw=2.0, label="P50"))
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(0.0, 0.0), ncol=len(handles), fontsize=8.5, borderaxespad=3.6
    )
    return ax


def plot_goal_progress(
    progress: pd.DataFrame,
    *,
    quarter: str,
    fiscal_year: str,
    ax: Axes | None = None,
    title: str = "Revenue against the goal",
    currency: str = "",
) -> Axes:
    """Revenue bullets from ``breakdowns.revenue_progress``: the quarter against its target (the
    revenue KPI's status), the fiscal year to date against the targets of its quarters so far
    (judged from a year earlier) and against the whole year's target (progress, not judged)."""
    names: dict[Hashable, tuple[str, str]] = {
        "revenue": (f"{quarter} revenue", "quarter target"),
        "revenue_fiscal_year_to_date": (f"{fiscal_year} to date", "targets of the quarters so far"),
        "revenue_target_fiscal_year": (f"{fiscal_year} to date", "annual target"),
    }
    rows = [
        {
            "label": names[key][0],
            "note": names[key][1],
            "key": key,
            "actual": r["actual"],
            "target": r["target"],
            "baseline": r["baseline"],
            "status": None if is_missing(r["status"]) else r["status"],
            "judged": not is_missing(r["status"]),
            "unit": "money",
        }
        for key, r in progress.iterrows()
    ]
    return plot_bullets(rows, ax=ax, title=title, currency=currency)


def plot_funnel(
    requirements: pd.DataFrame,
    *,
    ax: Axes | None = None,
    title: str = "Reverse funnel: required vs actual",
    currency: str = "",
) -> Axes:
    """``breakdowns.funnel_requirements`` as bullets, top of the funnel first: each stage's actual on
    the way from its baseline to what the revenue target requires, in the stage's status (a stage a
    KPI tracks shows that KPI's status). Stages without a requirement are left out."""
    req = requirements.dropna(subset=["required"])
    rows = [
        {
            "label": label_of(r["fact"]),
            "key": stage if r["kpi"] else f"{stage} (required)",
            "actual": r["actual"],
            "target": r["required"],
            "baseline": r["baseline"],
            "status": r["status"],
            "unit": _unit(r["fact"], None),
        }
        for stage, r in req.iterrows()
    ]
    return plot_bullets(rows, ax=ax, title=title, currency=currency)


# -------------------------------------------------------------------------------------------------
# Goals


def plot_revenue_history(
    history: pd.DataFrame,
    *,
    target: float | None = None,
    target_label: str = "",
    currency: str = "",
    ax: Axes | None = None,
    title: str = "Revenue by fiscal year and the target",
) -> Axes:
    """Fiscal-year revenue bars with year-over-year growth labels, and the target year's bar hatched.

    ``history``: ``breakdowns.revenue_by_year`` (``revenue`` and ``yoy_growth`` by ``FY2025`` label);
    ``target`` / ``target_label`` (``FY2026``): the goal.
    """
    ax = _axes(ax, (8.0, 4.2))
    values = [float(v) for v in history["revenue"]]
    bars = ax.bar(range(len(values)), values, color=NAVY, width=0.66, label="actual revenue")
    labels = [
        _text(v, "money", currency) + ("" if is_missing(g) else f"\n{_signed(g)} YoY")
        for v, g in zip(values, history["yoy_growth"], strict=True)
    ]
    ax.bar_label(bars, labels, padding=3, fontsize=8.5, color="#333333")
    ticks = [str(y) for y in history.index]
    if target is not None and not is_missing(target):
        tb = ax.bar(
            len(values), float(target), color="white", edgecolor=TARGET, hatch="///", lw=1.5, width=0.66, label="target"
        )
        growth = float(target) / values[-1] - 1 if values and values[-1] else math.nan
        text = _text(target, "money", currency) + ("" if is_missing(growth) else f"\n{_signed(growth)} target")
        ax.bar_label(tb, [text], padding=3, fontsize=8.5, color=TARGET, fontweight="bold")
        ticks.append(f"{target_label}\ntarget")
    ax.set_xticks(range(len(ticks)), [mathtext(t) for t in ticks])
    ax.grid(axis="x", visible=False)
    top = max([*values, 0.0 if target is None or is_missing(target) else float(target)])
    ax.set_ylim(0, top * 1.22 if top > 0 else 1)
    unit_axis(ax, "money", currency=currency)
    ax.set_ylabel(_titled("Revenue", "money", currency))
    ax.set_xlabel("Fiscal year")
    ax.set_title(mathtext(title))
    ax.legend(loc="upper left")
    return ax


def _signed(share: float) -> str:
    """``+29.0%`` (a growth with its sign)."""
    text = format_value(share, "percent")
    return text if text.startswith("-") else f"+{text}"


def plot_quarterly_targets(
    quarters: pd.DataFrame,
    *,
    currency: str = "",
    ax: Axes | None = None,
    title: str = "Quarterly revenue targets (seasonality)",
) -> Axes:
    """``breakdowns.quarterly_targets``: each quarter's target as an outlined bar with its share of the
    year under its label, and the actual revenue of the quarters done next to it, in its status
    (attainment above). A quarter not done has no actual bar, never one of height 0."""
    ax = _axes(ax, (8.0, 4.0))
    x = np.arange(len(quarters))
    width, off = 0.38, 0.19
    targets = quarters["target"].astype(float)
    tb = ax.bar(x - off, targets.to_numpy(), width=width, color=LIGHT, edgecolor=NAVY, lw=1.0, label="target")
    ax.bar_label(tb, [_text(v, "money", currency) for v in targets], padding=3, fontsize=8.5)
    actual = quarters["actual"].astype(float)
    statuses = [None if is_missing(s) else str(s) for s in quarters["status"]]
    colours = [COLOURS[s] if s else TRACK for s in statuses]
    ab = ax.bar(x + off, actual.to_numpy(), width=width, color=colours, label="actual")
    for patch, label, status in zip(ab.patches, quarters.index, statuses, strict=True):
        if status:
            _tag(patch, f"revenue@{label}")
    ax.bar_label(
        ab,
        [
            "" if is_missing(a) else f"{format_value(p, 'percent')}\n{status_word(s)}"
            for a, p, s in zip(actual, quarters["attainment"], statuses, strict=True)
        ],
        padding=3,
        fontsize=8.5,
        fontweight="bold",
    )
    ax.set_xticks(
        x,
        [
            f"{q}\n{format_value(s, 'percent')} of year"
            for q, s in zip(quarters.index, quarters["share_of_year"], strict=True)
        ],
    )
    ax.grid(axis="x", visible=False)
    top = float(np.nanmax([targets.max(), actual.max() if actual.notna().any() else 0.0])) if len(x) else 1.0
    ax.set_ylim(0, top * 1.25 if top > 0 else 1)
    unit_axis(ax, "money", currency=currency)
    ax.set_ylabel(_titled("Revenue", "money", currency))
    ax.set_xlabel("Fiscal quarter (share of the annual target)")
    ax.set_title(mathtext(title))
    handles = [Patch(facecolor=LIGHT, edgecolor=NAVY, label="target")]
    handles += [Patch(color=c, label=f"actual: {LABELS[s].lower()}") for s, c in COLOURS.items() if s in statuses]
    ax.legend(handles=handles, loc="upper left", ncol=len(handles), fontsize=8.5)
    return ax


# -------------------------------------------------------------------------------------------------
# Trends and breakdowns


def plot_trend(
    trend: pd.DataFrame,
    metric: str | Sequence[str],
    *,
    unit: str | None = None,
    target: float | None = None,
    target_label: str = "target",
    labels: Mapping[str, str] | None = None,
    currency: str = "",
    ax: Axes | None = None,
    title: str | None = None,
    ylabel: str | None = None,
) -> Axes:
    """One or more metrics over the quarters of ``trend`` (``QuarterKpis.trend``: quarter labels as
    index), the last value labelled, an optional dashed target line. The unit is the registry's for
    the metrics (they must share one; ``unit=`` for keys it does not know). A NaN (a quarter its
    table does not cover) is a gap in the line, never a 0."""
    ax = _axes(ax, (8.0, 3.8))
    metrics = [metric] if isinstance(metric, str) else list(metric)
    units = {_unit(name, unit) for name in metrics}
    whiskers = False
    if len(units) > 1:
        raise ValueError(f"one chart, one unit: {', '.join(metrics)} have units {', '.join(sorted(units))}")
    (u,) = units
    labels = dict(labels or {})
    x = np.arange(len(trend.index))
    top = 0.0
    for i, name in enumerate(metrics):
        y = pd.to_numeric(trend[name], errors="coerce").astype(float)
        color = NAVY if len(metrics) == 1 else CATEGORICAL[i % len(CATEGORICAL)]
        label = mathtext(labels.get(name, label_of(name)))
        ax.plot(x, y.to_numpy(), marker="o", ms=5, lw=2.2, color=color, label=label)
        top = max(top, float(np.nanmax(y.to_numpy())) if y.notna().any() else 0.0)
        bounds = _bounds(trend, name, trend.index)
        if bounds is not None:  # a quarter with an interval gets its whisker
            ax.errorbar(
                x,
                y.to_numpy(),
                yerr=_errors(y.to_numpy(dtype=float), *bounds),
                fmt="none",
                ecolor=color,
                capsize=3,
                lw=1.0,
                alpha=0.8,
            )
            top = max(top, float(np.nanmax(bounds[1])) if not np.isnan(bounds[1]).all() else 0.0)
            whiskers = True
        if len(y) and not is_missing(y.iloc[-1]):
            ax.annotate(
                _text(y.iloc[-1], u, currency),
                (x[-1], y.iloc[-1]),
                xytext=(6, 6),
                textcoords="offset points",
                fontsize=9,
                fontweight="bold",
                color=color,
            )
    if not any(pd.to_numeric(trend[name], errors="coerce").notna().any() for name in metrics):
        # nothing to draw: say so on the chart rather than leave an empty frame that reads as zeros
        ax.text(0.5, 0.5, "no data in these quarters", transform=ax.transAxes, ha="center", color=GREY)
    if target is not None and not is_missing(target):
        ax.axhline(
            float(target),
            color=TARGET,
            ls="--",
            lw=1.6,
            label=mathtext(f"{target_label}: ") + _text(target, u, currency),
        )
        top = max(top, float(target))
    ax.set_xticks(x, [str(q) for q in trend.index])
    ax.set_xlim(-0.4, len(x) - 0.4)
    ax.set_ylim(0, top * 1.18 if top > 0 else 1)
    unit_axis(ax, u, currency=currency)
    ax.grid(axis="x", visible=False)
    ax.set_xlabel("Quarter")
    name = labels.get(metrics[0], label_of(metrics[0])) if len(metrics) == 1 else "Value"
    ax.set_ylabel(mathtext(ylabel or _titled(name, u, currency)))
    ax.set_title(mathtext(title or f"{name}, last {len(x)} quarters"))
    if whiskers:
        _interval_legend(ax, loc="lower left", ncol=4)
    elif len(metrics) > 1 or not is_missing(target):
        ax.legend(loc="lower left", ncol=3)
    return ax


def plot_channel_bars(
    data: pd.DataFrame | pd.Series,
    column: str | None = None,
    *,
    unit: str | None = None,
    currency: str = "",
    ax: Axes | None = None,
    title: str | None = None,
    xlabel: str | None = None,
    sort: bool = True,
    note: str | None = None,
) -> Axes:
    """One value per category (channel, campaign, asset type...) as horizontal bars, largest on top,
    negative values red, each bar labelled. ``data``: a frame (pick ``column``) or a Series; the unit is
    the registry's for ``column`` (or the Series' name), ``unit=`` for a key it does not know."""
    s = cast("pd.Series[float]", (data[column] if column is not None else data).astype(float).dropna())
    key = column if column is not None else str(s.name)
    u = _unit(key, unit)
    if sort:
        s = s.sort_values(ascending=False)
    ax = _axes(ax, (8.0, 0.42 * len(s) + 1.3))
    colors = [NEGATIVE if v < 0 else NAVY for v in s.values]
    bars = ax.barh(range(len(s)), s.to_numpy(), color=colors, height=0.66)
    bounds = _bounds(data, key, s.index) if len(s) else None
    if bounds is None:
        ax.bar_label(bars, [_text(v, u, currency) for v in s.to_numpy()], padding=4, fontsize=8.5)
        ends = s.to_numpy()
    else:  # whiskers, and each label past its whisker so that neither hides the other
        low, high = bounds
        ax.errorbar(
            s.to_numpy(),
            range(len(s)),
            xerr=_errors(s.to_numpy(), low, high),
            fmt="none",
            ecolor=GREY,
            capsize=3,
            lw=1.1,
            zorder=4,
        )
        ends = np.where(s.to_numpy() < 0, np.fmin(s.to_numpy(), low), np.fmax(s.to_numpy(), high))
        for i, (v, end) in enumerate(zip(s.to_numpy(), ends, strict=True)):
            ax.annotate(
                _text(v, u, currency),
                (end, i),
                xytext=(-4 if v < 0 else 4, 0),
                textcoords="offset points",
                va="center",
                ha="right" if v < 0 else "left",
                fontsize=8.5,
            )
        _interval_legend(ax, loc="lower right", fontsize=8.5)
    _hbar_labels(ax, list(s.index))
    lo, hi = (float(np.nanmin(ends)), float(np.nanmax(ends))) if len(s) else (0.0, 1.0)
    span = (max(hi, 0) - min(lo, 0)) or 1.0
    ax.set_xlim(min(lo, 0) - (0.12 * span if lo < 0 else 0), max(hi, 0) + 0.15 * span)
    if lo < 0:
        ax.axvline(0, color="#555555", lw=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # horizontal bars: long tick labels, fewer ticks
    unit_axis(ax, u, currency=currency, axis="x")
    name = label_of(key)
    ax.set_xlabel(mathtext(xlabel or _titled(name, u, currency)))
    ax.set_title(mathtext(title or name))
    if note:
        ax.annotate(
            mathtext(note),
            xy=(0, 0),
            xycoords="axes fraction",
            xytext=(0, -34),
            textcoords="offset points",
            fontsize=8.5,
            color=GREY,
            va="top",
        )
    return ax


def plot_stacked_spend(
    spend: pd.DataFrame,
    *,
    currency: str = "",
    ax: Axes | None = None,
    title: str = "Marketing spend by channel and cost type",
) -> Axes:
    """Spend per row (channel or campaign) stacked by cost type as horizontal bars, the total at the
    end of each bar. ``spend``: ``breakdowns.spend_by_cost_type`` (its ``total`` column is the label,
    not a segment), drawn in its order."""
    wide = spend.drop(columns="total", errors="ignore")
    ax = _axes(ax, (8.0, 0.45 * len(wide) + 1.8))
    left = np.zeros(len(wide))
    for i, col in enumerate(wide.columns):
        ax.barh(
            range(len(wide)),
            wide[col].to_numpy(),
            left=left,
            height=0.66,
            label=mathtext(col),
            color=CATEGORICAL[i % len(CATEGORICAL)],
        )
        left += wide[col].to_numpy()
    for i, total in enumerate(left):
        ax.annotate(
            _text(total, "money", currency),
            (total, i),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=8.5,
        )
    _hbar_labels(ax, list(wide.index))
    ax.set_xlim(0, (left.max() if len(left) else 1) * 1.15 or 1)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    unit_axis(ax, "money", currency=currency, axis="x")
    ax.set_xlabel(_titled("Spend", "money", currency))
    ax.set_title(mathtext(title))
    if len(wide.columns):
        ax.legend(title="Cost type", loc="lower right", fontsize=8.5)
    return ax


def plot_attribution_comparison(
    comparison: pd.DataFrame,
    *,
    highlight: str | None = None,
    currency: str = "",
    ax: Axes | None = None,
    title: str = "Revenue credited to each channel, by attribution model",
) -> Axes:
    """Channels x models (``QuarterKpis.attribution_comparison()``, money) as grouped horizontal bars:
    one group per channel, one bar per model; ``highlight`` (the report's model) outlined."""
    order = comparison.mean(axis=1).sort_values(ascending=False).index
    comp = comparison.loc[order]
    models = list(comp.columns)
    n = max(len(models), 1)
    ax = _axes(ax, (9.0, 0.9 * len(comp) + 1.8))
    h = 0.84 / n
    for j, m in enumerate(models):
        y = np.arange(len(comp)) - 0.42 + h * (j + 0.5)
        strong = highlight is None or m == highlight
        ax.barh(
            y,
            comp[m].to_numpy(),
            height=h,
            color=CATEGORICAL[j % len(CATEGORICAL)],
            alpha=1.0 if strong else 0.55,
            edgecolor="black" if m == highlight else "none",
            linewidth=0.9,
            label=mathtext(model_label(m) + (" (this report)" if m == highlight else "")),
        )
    _hbar_labels(ax, list(comp.index))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    unit_axis(ax, "money", currency=currency, axis="x")
    ax.set_xlabel(_titled("Credited lead revenue", "money", currency))
    ax.set_title(mathtext(title))
    ax.legend(title="Model", loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8.5)
    return ax


def plot_rank_chart(
    ranks: pd.DataFrame,
    *,
    highlight: Iterable[str] = (),
    ax: Axes | None = None,
    title: str = "Channel rank by attribution model (1 = most revenue credited)",
) -> Axes:
    """Bump chart of channel ranks (rows: channels; columns: models; values 1 = best): how the
    ranking changes with the model. Channels in ``highlight`` (``breakdowns.rank_movers``) are drawn
    bold, the others grey."""
    keep = set(highlight)
    ax = _axes(ax, (9.0, 0.4 * len(ranks) + 2.4))
    x = np.arange(len(ranks.columns))
    for i, (ch, row) in enumerate(ranks.iterrows()):
        bold = not keep or ch in keep
        color = CATEGORICAL[i % len(CATEGORICAL)] if bold else "#c4c8ce"
        ax.plot(
            x,
            row.to_numpy(),
            marker="o",
            ms=6 if bold else 4,
            lw=2.4 if bold else 1.2,
            color=color,
            zorder=3 if bold else 2,
        )
        ax.annotate(
            mathtext(ch),
            (x[-1], row.values[-1]),
            xytext=(8, 0),
            textcoords="offset points",
            va="center",
            fontsize=8.5,
            color=color if bold else GREY,
            fontweight="bold" if bold else "normal",
        )
    ax.set_xticks(x, [mathtext(model_label(m)) for m in ranks.columns], rotation=30, ha="right")
    top = int(np.nanmax(ranks.values)) if ranks.size else 1
    ax.set_yticks(range(1, top + 1))
    ax.set_ylim(top + 0.5, 0.5)
    ax.grid(axis="x", visible=False)
    ax.set_ylabel("Rank (1 = most credited revenue)")
    ax.set_xlabel("Attribution model")
    ax.set_title(mathtext(title))
    return ax


def plot_device_split(
    web: pd.DataFrame,
    *,
    value: str = "sessions",
    ax: Axes | None = None,
    title: str = "Visits by device",
) -> Axes:
    """Share of ``value`` (sessions) per device as horizontal bars; labels add the bounce rate when
    ``web`` has a ``bounce_rate`` column (``breakdowns.web_table``)."""
    s = web[value].astype(float)
    total = float(s.sum())
    share = s / total if total else s * math.nan
    ax = _axes(ax, (8.0, 0.5 * len(s) + 1.3))
    bars = ax.barh(range(len(s)), share.to_numpy(), color=CATEGORICAL[: len(s)], height=0.62)
    labels = []
    for dev, sh in cast("Iterable[tuple[str, float]]", share.items()):  # indexed by device name
        text = f"{format_value(sh, 'percent')} · {format_value(s[dev], _unit(value, None))} {label_of(value).lower()}"
        if "bounce_rate" in web and not is_missing(web.loc[dev, "bounce_rate"]):
            text += f" · bounce rate {format_value(web.loc[dev, 'bounce_rate'], 'percent')}"
        labels.append(mathtext(text))
    ax.bar_label(bars, labels, padding=4, fontsize=8.5)
    _hbar_labels(ax, [str(d).capitalize() for d in s.index])
    ax.set_xlim(0, max(float(share.max()) * 1.6, 0.1) if len(share) else 1)
    unit_axis(ax, "percent", axis="x")
    ax.set_xlabel(f"Share of {label_of(value).lower()} (%)")
    ax.set_title(mathtext(title))
    return ax


def plot_goal_rates(
    goals: pd.DataFrame,
    *,
    rate: str = "conversion_rate",
    count: str = "completions",
    ax: Axes | None = None,
    title: str = "Site goal conversion rate",
) -> Axes:
    """Goal conversion rates (completions per session) as horizontal bars, highest first, each
    labelled with its rate and completions. ``goals``: indexed by goal (or goal and landing page), as
    ``breakdowns.goal_conversion`` or ``breakdowns.landing_pages`` give it; every row is drawn."""
    df = goals.sort_values(rate, ascending=False, kind="stable")
    ax = _axes(ax, (8.0, 0.42 * len(df) + 1.3))
    values = df[rate].to_numpy(dtype=float)
    bars = ax.barh(range(len(df)), values, color=BLUE, height=0.62)
    texts = [
        mathtext(f"{format_value(r, 'percent')} ({format_value(c, _unit(count, None))} {label_of(count).lower()})")
        for r, c in zip(df[rate], df[count], strict=True)
    ]
    bounds = _bounds(df.reset_index(drop=True), rate, pd.RangeIndex(len(df))) if len(df) else None
    ends = values
    if bounds is None:
        ax.bar_label(bars, texts, padding=4, fontsize=8.5)
    else:
        ax.errorbar(values, range(len(df)), xerr=_errors(values, *bounds), fmt="none", ecolor=GREY, capsize=3, lw=1.1)
        ends = np.fmax(values, bounds[1])
        for i, (end, text) in enumerate(zip(ends, texts, strict=True)):
            ax.annotate(text, (end, i), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8.5)
        _interval_legend(ax, loc="lower right", fontsize=8.5)
    _hbar_labels(
        ax,
        [
            " · ".join(label_of(str(p)) if j == 0 else str(p) for j, p in enumerate(i))
            if isinstance(i, tuple)
            else label_of(str(i))
            for i in df.index
        ],
    )
    top = float(np.nanmax(ends)) if len(df) else 0.0
    ax.set_xlim(0, top * 1.45 if top > 0 else 0.01)
    unit_axis(ax, "percent", axis="x")
    ax.set_xlabel("Completions per session (%)")
    ax.set_title(mathtext(title))
    return ax
