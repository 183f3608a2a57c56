"""Charts, tables and words for the notebooks: presentation only.

Every number comes from :mod:`kpi_helpers.metrics` and :mod:`kpi_helpers.facts`; this module formats,
draws and narrates it. Conventions:

- ``plot_<what>(data, *, ax=None, **kwargs) -> Axes`` draws only on ``ax`` (a new figure only when
  ``ax`` is None), never calls ``plt.show()``, and sets a title and axis labels with units.
- Nothing changes matplotlib's global state at import; notebooks call :func:`use_style` once.
- Text that comes from the data (channel, campaign, landing page, goal names: they come from ad
  platforms and web analytics) is escaped wherever it is shown: for HTML in :func:`styled_table`
  and :func:`status_badge`, for Markdown in the ``narrative_*`` functions (:func:`md_escape`) and
  for matplotlib's mathtext (``$``) in chart labels.
- Rates are fractions (0-1) everywhere; only the formatters turn them into percentages.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from . import kpis as K

__all__ = [
    "CATEGORICAL",
    "STATUS_COLORS",
    "change_words",
    "compact_money",
    "count_axis",
    "currency_axis",
    "explore",
    "format_value",
    "headline_frame",
    "kpi_frame",
    "md_escape",
    "model_label",
    "narrative_conversion",
    "narrative_goal",
    "narrative_pacing",
    "narrative_roi",
    "narrative_summary",
    "narrative_traffic",
    "new_figure",
    "percent_axis",
    "plot_attribution_comparison",
    "plot_bullets",
    "plot_channel_bars",
    "plot_device_split",
    "plot_funnel",
    "plot_goal_progress",
    "plot_goal_rates",
    "plot_kpi_progress",
    "plot_pacing",
    "plot_quarterly_targets",
    "plot_rank_chart",
    "plot_revenue_history",
    "plot_stacked_spend",
    "plot_trend",
    "record",
    "status_badge",
    "styled_table",
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
#: traffic-light colours of :func:`kpi_helpers.kpis.kpi_status`
STATUS_COLORS = {"on track": "#2e7d32", "at risk": "#e0a100", "off track": "#c62828", "no data": "#9e9e9e"}
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

_RC: dict[str, Any] = {
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

    sns.set_theme(context=context, style="whitegrid", palette=CATEGORICAL, font_scale=font_scale, rc=_RC)


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax`` itself, or the axes of a new figure when it is None."""
    if ax is not None:
        return ax
    _, new = plt.subplots(figsize=figsize, layout="constrained")
    return new


# -------------------------------------------------------------------------------------------------
# Formatting (numbers to text) and escaping

_MONEY = ("money", "money2", "money_compact")


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def compact_money(value: float, currency: str = "USD") -> str:
    """``USD 1.13M``, ``USD 980k``, ``USD 640``: short money for chart labels."""
    if _missing(value):
        return "n/a"
    return f"{currency} {_compact(float(value))}".strip()


def _compact(v: float) -> str:
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.2f}B"
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:.0f}k"
    if a >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:,.0f}"


def _tick(v: float) -> str:
    """Axis tick: ``1.5M``, ``800k``, ``250`` (no trailing zeros)."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= size:
            return f"{v / size:.2f}".rstrip("0").rstrip(".") + suffix
    return f"{v:,.0f}"


def _duration(seconds: float) -> str:
    s = round(float(seconds))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def format_value(value: Any, kind: str = "int", *, currency: str = "USD", na: str = "n/a") -> str:
    """Format one number for people.

    ``kind``: ``money`` (``USD 1,234``), ``money2`` (two decimals), ``money_compact``
    (``USD 1.23M``), ``int`` (``1,234``), ``pct`` (fraction -> ``12.3%``), ``ratio`` (``2.85``),
    ``days`` (``3.2 days``), ``duration`` (seconds -> ``1 min 57 s``), ``text``. Missing values
    (None, NaN, :class:`~kpi_helpers.kpis.Undefined`) give ``na``. The result is plain text; escape
    it for the place it goes (:func:`md_escape`, :func:`html.escape`).
    """
    if kind == "text":
        return na if _missing(value) else str(value)
    if _missing(value):
        return na
    v = float(value)
    if math.isinf(v):
        return na
    if kind == "money":
        return f"{currency} {v:,.0f}".strip()
    if kind == "money2":
        return f"{currency} {v:,.2f}".strip()
    if kind == "money_compact":
        return compact_money(v, currency)
    if kind == "pct":
        return f"{v:.1%}"
    if kind == "ratio":
        return f"{v:,.2f}"
    if kind == "days":
        return f"{v:,.1f} days"
    if kind == "duration":
        return _duration(v)
    if kind == "int":
        return f"{v:,.0f}"
    raise ValueError(
        f"unknown format kind {kind!r}; use money, money2, money_compact, int, pct, ratio, days, duration or text"
    )


def _short(value: Any, kind: str, currency: str) -> str:
    """Chart-label version of :func:`format_value` (compact money)."""
    return format_value(value, "money_compact" if kind in _MONEY else kind, currency=currency)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-!|~$])")


def md_escape(text: Any) -> str:
    """Text safe to insert into Markdown: HTML is escaped and Markdown/MathJax characters backslashed.

    >>> md_escape("<script>alert(1)</script> *bold* $x$")
    '&lt;script&gt;alert\\\\(1\\\\)&lt;/script&gt; \\\\*bold\\\\* \\\\$x\\\\$'
    """
    return html.escape(_MD_SPECIAL.sub(r"\\\1", str(text)), quote=False)


def _mpl(text: Any) -> str:
    """Text for a matplotlib label: ``$`` would start mathtext."""
    return str(text).replace("$", r"\$")


def _v(value: Any, kind: str, currency: str) -> str:
    """A formatted, Markdown-escaped number for the narratives."""
    return md_escape(format_value(value, kind, currency=currency))


def change_words(current: Any, previous: Any, kind: str = "int", *, currency: str = "USD") -> str:
    """``"up 5.2%"``, ``"down 0.4 pts"`` (rates change in percentage points), ``"unchanged"``, or ``""``.

    Plain text; escape it for Markdown with :func:`md_escape`.
    """
    if _missing(current) or _missing(previous):
        return ""
    cur, prev = float(current), float(previous)
    if kind == "pct":
        pts = (cur - prev) * 100
        if abs(pts) < 0.05:
            return "unchanged"
        return f"{'up' if pts > 0 else 'down'} {abs(pts):.1f} pts"
    g = K.growth(cur, prev)
    if _missing(g):
        return ""
    if abs(g) < 0.0005:
        return "unchanged"
    return f"{'up' if g > 0 else 'down'} {abs(g):.1%}"


# -------------------------------------------------------------------------------------------------
# Axis formatters


def currency_axis(ax: Axes, currency: str = "USD", *, axis: str = "y") -> Axes:
    """Format ``ax``'s ``axis`` ("x" or "y") as compact money (``USD 1.2M``)."""
    fmt = FuncFormatter(lambda v, _pos: _mpl(f"{currency} {_tick(v)}".strip()))
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)
    return ax


def percent_axis(ax: Axes, *, axis: str = "y", decimals: int | None = 0) -> Axes:
    """Format ``ax``'s ``axis`` as percentages of fractions (0.25 -> ``25%``)."""
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(PercentFormatter(xmax=1.0, decimals=decimals))
    return ax


def count_axis(ax: Axes, *, axis: str = "y") -> Axes:
    """Format ``ax``'s ``axis`` as whole numbers with thousands separators."""
    a = ax.yaxis if axis == "y" else ax.xaxis
    a.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    a.set_major_locator(MaxNLocator(integer=True, nbins="auto"))
    return ax


def _value_axis(ax: Axes, kind: str, currency: str, axis: str = "y") -> Axes:
    if axis == "x":  # horizontal bars: long tick labels, fewer ticks
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    if kind in _MONEY:
        return currency_axis(ax, currency, axis=axis)
    if kind == "pct":
        return percent_axis(ax, axis=axis, decimals=None)
    if kind == "int":
        return count_axis(ax, axis=axis)
    return ax


def _unit(kind: str, currency: str) -> str:
    return {
        "money": currency,
        "money2": currency,
        "money_compact": currency,
        "pct": "%",
        "days": "days",
        "duration": "seconds",
        "ratio": "ratio",
        "int": "count",
    }.get(kind, "")


def _hbar_labels(ax: Axes, labels: Sequence[Any]) -> None:
    """Category labels top to bottom on a horizontal bar chart."""
    ax.set_yticks(range(len(labels)), [_mpl(x) for x in labels])
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.grid(axis="y", visible=False)


# -------------------------------------------------------------------------------------------------
# Bullet charts: progress to targets (KPIs, revenue goal, pacing, reverse funnel)


def plot_bullets(
    rows: Sequence[Mapping[str, Any]],
    *,
    ax: Axes | None = None,
    title: str = "Progress to target",
    xlabel: str = "% of target",
    currency: str = "USD",
    cap: float = 1.5,
) -> Axes:
    """Bullet-style bars: each row's actual (and projection) as a share of its target.

    ``rows``: dicts with ``label``, ``actual``, ``target`` and optionally ``projected`` (drawn as a
    hatched extension: a projection, not a result), ``status`` (bar colour, see
    :data:`STATUS_COLORS`; default from the share of target), ``kind`` (format of the numbers, see
    :func:`format_value`), ``higher_is_better`` (default True; when False the bar is target /
    actual, so a cost above its target falls short of the line), ``baseline`` (a grey tick) and
    ``note`` (text after the numbers). The dashed line at 100% is the target; bars stop at ``cap``
    (the label keeps the true share).
    """
    ax = _axes(ax, (8.0, 0.55 * len(rows) + 1.4))
    for i, r in enumerate(rows):
        target, actual, proj = r.get("target"), r.get("actual"), r.get("projected")
        higher = r.get("higher_is_better", True)
        share, pshare = _share(actual, target, higher), _share(proj, target, higher)
        status = r.get("status") or K.kpi_status(pshare if not _missing(pshare) else share, 1.0)
        color = STATUS_COLORS.get(status, NAVY)
        ax.barh(i, 1.0, height=0.72, color=TRACK, zorder=1)
        if not _missing(pshare):
            ax.barh(
                i, min(pshare, cap), height=0.46, color="white", edgecolor=color, hatch="////", linewidth=1.0, zorder=2
            )
        if not _missing(share):
            ax.barh(i, min(share, cap), height=0.46, color=color, zorder=3)
        base = _share(r.get("baseline"), target, higher)
        if not _missing(base) and 0 <= base <= cap:
            ax.plot([base] * 2, [i - 0.3, i + 0.3], color=GREY, lw=2, zorder=4)
        kind = r.get("kind", "int")
        a, t = format_value(actual, kind, currency=currency), format_value(target, kind, currency=currency)
        t = t if higher else f"at most {t}"
        if not _missing(proj):
            text = f"{a} so far; projected {format_value(proj, kind, currency=currency)} of {t}"
            text += "" if _missing(pshare) else f" ({pshare:.0%})"
        elif _missing(actual):
            text = f"target {t}"
        else:
            text = f"{a} of {t}" + ("" if _missing(share) else f" ({share:.0%})")
        if r.get("note"):
            text += f"  ·  {r['note']}"
        ax.annotate(
            _mpl(text),
            xy=(1.0, i),
            xycoords=("axes fraction", "data"),
            xytext=(8, 0),
            textcoords="offset points",
            va="center",
            ha="left",
            fontsize=9,
            color="#333333",
        )
    ax.axvline(1.0, color=TARGET, lw=1.6, ls="--", zorder=5)
    ax.set_xlim(0, cap * 1.02)
    _hbar_labels(ax, [r["label"] for r in rows])
    percent_axis(ax, axis="x")
    ax.set_xlabel(xlabel)
    ax.set_title(_mpl(title))
    handles = [
        Patch(color=c, label=s) for s, c in STATUS_COLORS.items() if any((r.get("status") or "") == s for r in rows)
    ]
    if any(not _missing(r.get("projected")) for r in rows):
        handles.append(Patch(facecolor="white", edgecolor=GREY, hatch="////", label="projected to quarter end"))
    if any(not _missing(r.get("baseline")) for r in rows):
        handles.append(plt.Line2D([], [], color=GREY, lw=2, label="baseline"))
    if handles:
        ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(0.0, 0.0),
            ncol=len(handles),
            fontsize=8.5,
            borderaxespad=3.6,
        )
    return ax


def _share(value: Any, target: Any, higher_is_better: bool = True) -> float:
    """Attainment: value / target (target / value when lower is better); NaN when undefined."""
    if _missing(value) or _missing(target):
        return math.nan
    v, t = float(value), float(target)
    r = K.safe_divide(v, t) if higher_is_better else K.safe_divide(t, v)
    return math.nan if _missing(r) else float(r)


def plot_kpi_progress(
    kpis: Sequence[Mapping[str, Any]] | pd.DataFrame,
    *,
    ax: Axes | None = None,
    title: str = "KPIs against their targets",
    currency: str = "USD",
) -> Axes:
    """The ``kpis`` rows of ``QuarterKpis.metrics()`` as bullet bars coloured by status.

    Each label names the KPI and its owner; an in-progress quarter shows the projection hatched.
    The grey tick is the baseline the target was set from. A KPI where lower is better (its row's
    ``higher_is_better``, else a target below the baseline) is drawn as target / actual.
    """
    rows = kpis.to_dict("records") if isinstance(kpis, pd.DataFrame) else list(kpis)
    bullets = [
        {
            "label": f"{r['name']}\n{r.get('owner') or ''}".strip(),
            "actual": r.get("actual"),
            "target": r.get("target"),
            "projected": r.get("projected"),
            "status": r.get("status"),
            "baseline": r.get("baseline"),
            "kind": _metric_kind(r.get("metric")),
            "higher_is_better": _higher_is_better(r),
        }
        for r in rows
    ]
    return plot_bullets(bullets, ax=ax, title=title, xlabel="% of target (dashed line)", currency=currency)


def _higher_is_better(row: Mapping[str, Any]) -> bool:
    """A KPI row's direction: its ``higher_is_better`` key, else a target set below the baseline
    means lower is better (e.g. cost per lead)."""
    if "higher_is_better" in row:
        return bool(row["higher_is_better"])
    base, target = row.get("baseline"), row.get("target")
    return _missing(base) or _missing(target) or float(target) >= float(base)


def plot_goal_progress(
    rows: Sequence[Mapping[str, Any]],
    *,
    ax: Axes | None = None,
    title: str = "Revenue against the goal",
    currency: str = "USD",
) -> Axes:
    """Revenue bullets, e.g. the quarter against its target and the fiscal year to date against the
    annual target (rows as in :func:`plot_bullets`, numbers formatted as money)."""
    return plot_bullets([{"kind": "money", **r} for r in rows], ax=ax, title=title, currency=currency)


def plot_pacing(
    rows: Sequence[Mapping[str, Any]],
    *,
    ax: Axes | None = None,
    title: str = "Current quarter: run-rate projection",
    currency: str = "USD",
) -> Axes:
    """A quarter in progress: to date (solid) and the run-rate projection to its end (hatched)
    against the target. The projection assumes the rest of the quarter runs at the pace so far."""
    return plot_bullets(rows, ax=ax, title=title, xlabel="% of the quarter's target", currency=currency)


#: funnel stages top to bottom, with their labels
FUNNEL_LABELS = {
    "visits": "Visits",
    "leads": "Leads",
    "mqls": "MQLs",
    "sqls": "SQLs",
    "opportunities": "Opportunities",
    "won_deals": "Won deals (from leads)",
    "lead_revenue": "Lead revenue",
}


def plot_funnel(
    plan: pd.DataFrame,
    *,
    ax: Axes | None = None,
    title: str = "Reverse funnel: required vs actual",
    currency: str = "USD",
) -> Axes:
    """``QuarterKpis.funnel_plan`` (``required`` and ``actual`` per stage) as horizontal bullets,
    top of the funnel first; each bar is the actual as a share of what the revenue target requires."""
    order = [s for s in FUNNEL_LABELS if s in plan.index] + [s for s in plan.index if s not in FUNNEL_LABELS]
    rows = [
        {
            "label": FUNNEL_LABELS.get(s, str(s)),
            "actual": plan.loc[s, "actual"],
            "target": plan.loc[s, "required"],
            "kind": "money" if "revenue" in str(s) else "int",
        }
        for s in order
    ]
    return plot_bullets(rows, ax=ax, title=title, xlabel="actual as % of required (dashed line)", currency=currency)


def _metric_kind(metric: str | None) -> str:
    """How a ``metrics()`` key is formatted (:func:`kpi_helpers.metrics.metric_kind`)."""
    from .metrics import metric_kind  # lazy: plots stays importable without the engine stack

    return metric_kind(metric)


# -------------------------------------------------------------------------------------------------
# Goals


def plot_revenue_history(
    history: pd.Series,
    *,
    growth: pd.Series | None = None,
    target: float | None = None,
    target_year: int | None = None,
    currency: str = "USD",
    ax: Axes | None = None,
    title: str = "Revenue by fiscal year and the target",
) -> Axes:
    """Fiscal-year revenue bars with year-over-year growth labels and the target year's bar.

    ``history``: revenue indexed by fiscal year (int); ``growth``: YoY growth (fractions) on the same
    index, e.g. ``RevenueGoal.growth_history``; ``target`` / ``target_year``: the goal, drawn hatched.
    """
    ax = _axes(ax, (8.0, 4.2))
    years = [int(y) for y in history.index]
    values = [float(v) for v in history.values]
    bars = ax.bar(range(len(years)), values, color=NAVY, width=0.66, label="actual revenue")
    labels = []
    for y, v in zip(years, values, strict=True):
        g = growth.get(y) if growth is not None else None
        labels.append(compact_money(v, currency) + ("" if _missing(g) else f"\n{g:+.1%} YoY"))
    ax.bar_label(bars, [_mpl(x) for x in labels], padding=3, fontsize=8.5, color="#333333")
    ticks = [f"FY{y}" for y in years]
    if target is not None and not _missing(target):
        ty = target_year if target_year is not None else (years[-1] + 1 if years else 0)
        tb = ax.bar(
            len(years),
            float(target),
            color="white",
            edgecolor=TARGET,
            hatch="///",
            linewidth=1.5,
            width=0.66,
            label="target",
        )
        g = K.growth(float(target), values[-1]) if values else math.nan
        ax.bar_label(
            tb,
            [_mpl(compact_money(target, currency) + ("" if _missing(g) else f"\n{g:+.1%} target"))],
            padding=3,
            fontsize=8.5,
            color=TARGET,
            fontweight="bold",
        )
        ticks.append(f"FY{ty}\ntarget")
    ax.set_xticks(range(len(ticks)), ticks)
    ax.grid(axis="x", visible=False)
    ax.set_ylim(0, max([*values, float(target or 0)]) * 1.22 if values else 1)
    currency_axis(ax, currency)
    ax.set_ylabel(f"Revenue ({currency})")
    ax.set_xlabel("Fiscal year")
    ax.set_title(_mpl(title))
    ax.legend(loc="upper left")
    return ax


def plot_quarterly_targets(
    targets: pd.Series,
    *,
    actual: pd.Series | None = None,
    currency: str = "USD",
    ax: Axes | None = None,
    title: str = "Quarterly revenue targets (seasonality)",
) -> Axes:
    """Quarter targets (index 1-4) as outlined bars, with each quarter's share of the year under its
    label, and the actual revenue of the quarters done next to them (attainment % above)."""
    ax = _axes(ax, (8.0, 4.0))
    qs = [int(q) for q in targets.index]
    total = float(targets.sum())
    x = np.arange(len(qs))
    width = 0.38 if actual is not None else 0.6
    off = width / 2 if actual is not None else 0
    tb = ax.bar(x - off, targets.values, width=width, color=LIGHT, edgecolor=NAVY, linewidth=1.0, label="target")
    ax.bar_label(tb, [_mpl(compact_money(v, currency)) for v in targets.values], padding=3, fontsize=8.5)
    if actual is not None:
        vals = [float(actual.get(q, math.nan)) for q in qs]
        colors = [
            STATUS_COLORS[K.kpi_status(a, t)] if not _missing(a) else TRACK
            for a, t in zip(vals, targets.values, strict=True)
        ]
        ab = ax.bar(x + off, [0 if _missing(v) else v for v in vals], width=width, color=colors, label="actual")
        ax.bar_label(
            ab,
            ["" if _missing(a) else f"{a / t:.0%}" for a, t in zip(vals, targets.values, strict=True)],
            padding=3,
            fontsize=8.5,
            fontweight="bold",
        )
    ax.set_xticks(
        x, [f"Q{q}\n{v / total:.1%} of year" if total else f"Q{q}" for q, v in zip(qs, targets.values, strict=True)]
    )
    ax.grid(axis="x", visible=False)
    ax.set_ylim(0, float(max(targets.max(), (actual.max() if actual is not None and len(actual) else 0))) * 1.18)
    currency_axis(ax, currency)
    ax.set_ylabel(f"Revenue ({currency})")
    ax.set_xlabel("Fiscal quarter (share of the annual target)")
    ax.set_title(_mpl(title))
    handles = [Patch(facecolor=LIGHT, edgecolor=NAVY, label="target")]
    if actual is not None:
        handles += [Patch(color=c, label=f"actual: {s}") for s, c in STATUS_COLORS.items() if c in colors]
    ax.legend(handles=handles, loc="upper left", ncol=len(handles), fontsize=8.5)
    return ax


# -------------------------------------------------------------------------------------------------
# Trends and breakdowns


def plot_trend(
    trend: pd.DataFrame,
    metric: str | Sequence[str],
    *,
    kind: str = "int",
    target: float | None = None,
    target_label: str = "target",
    labels: Mapping[str, str] | None = None,
    currency: str = "USD",
    ax: Axes | None = None,
    title: str | None = None,
    ylabel: str | None = None,
) -> Axes:
    """One or more metrics over the quarters of ``trend`` (``QuarterKpis.trend``: quarter labels as
    index), the last value labelled, an optional dashed target line."""
    ax = _axes(ax, (8.0, 3.8))
    metrics = [metric] if isinstance(metric, str) else list(metric)
    labels = dict(labels or {})
    x = np.arange(len(trend.index))
    top = 0.0
    for i, name in enumerate(metrics):
        y = pd.to_numeric(trend[name], errors="coerce").astype(float)
        color = NAVY if len(metrics) == 1 else CATEGORICAL[i % len(CATEGORICAL)]
        ax.plot(x, y.values, marker="o", ms=5, lw=2.2, color=color, label=_mpl(labels.get(name, _words(name))))
        top = max(top, float(np.nanmax(y.values)) if y.notna().any() else 0.0)
        if len(y) and not _missing(y.iloc[-1]):
            ax.annotate(
                _mpl(_short(y.iloc[-1], kind, currency)),
                (x[-1], y.iloc[-1]),
                xytext=(6, 6),
                textcoords="offset points",
                fontsize=9,
                fontweight="bold",
                color=color,
            )
    if target is not None and not _missing(target):
        ax.axhline(
            float(target),
            color=TARGET,
            ls="--",
            lw=1.6,
            label=_mpl(f"{target_label}: {_short(target, kind, currency)}"),
        )
        top = max(top, float(target))
    ax.set_xticks(x, [str(q) for q in trend.index])
    ax.set_xlim(-0.4, len(x) - 0.4)
    ax.set_ylim(0, top * 1.18 if top > 0 else 1)
    _value_axis(ax, kind, currency)
    ax.grid(axis="x", visible=False)
    ax.set_xlabel("Quarter")
    name = labels.get(metrics[0], _words(metrics[0])) if len(metrics) == 1 else "Value"
    ax.set_ylabel(_mpl(ylabel or f"{name} ({_unit(kind, currency)})"))
    ax.set_title(_mpl(title or f"{name}, last {len(x)} quarters"))
    if len(metrics) > 1 or target is not None:
        ax.legend(loc="lower left", ncol=3)
    return ax


def plot_channel_bars(
    data: pd.DataFrame | pd.Series,
    column: str | None = None,
    *,
    kind: str = "money",
    currency: str = "USD",
    ax: Axes | None = None,
    title: str | None = None,
    xlabel: str | None = None,
    sort: bool = True,
    note: str | None = None,
) -> Axes:
    """One value per category (channel, campaign, asset type...) as horizontal bars, largest on top,
    negative values red, each bar labelled. ``data``: a frame (pick ``column``) or a Series."""
    s = (data[column] if column is not None else data).astype(float)
    s = s.dropna()
    if sort:
        s = s.sort_values(ascending=False)
    ax = _axes(ax, (8.0, 0.42 * len(s) + 1.3))
    colors = [NEGATIVE if v < 0 else NAVY for v in s.values]
    bars = ax.barh(range(len(s)), s.values, color=colors, height=0.66)
    ax.bar_label(bars, [_mpl(_short(v, kind, currency)) for v in s.values], padding=4, fontsize=8.5)
    _hbar_labels(ax, list(s.index))
    lo, hi = (float(s.min()), float(s.max())) if len(s) else (0.0, 1.0)
    span = (max(hi, 0) - min(lo, 0)) or 1.0
    ax.set_xlim(min(lo, 0) - (0.12 * span if lo < 0 else 0), max(hi, 0) + 0.15 * span)
    if lo < 0:
        ax.axvline(0, color="#555555", lw=0.8)
    _value_axis(ax, kind, currency, axis="x")
    name = _words(column or s.name or "value")
    ax.set_xlabel(_mpl(xlabel or f"{name} ({_unit(kind, currency)})"))
    ax.set_title(_mpl(title or name))
    if note:
        ax.annotate(
            _mpl(note),
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
    index: str = "channel",
    stack: str = "cost_type",
    value: str = "amount",
    currency: str = "USD",
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Spend per ``index`` (channel, campaign) stacked by ``stack`` (cost type) as horizontal bars,
    largest total on top, the total at the end of each bar. ``spend``: long rows as
    ``facts.spend_breakdown`` returns them."""
    wide = spend.pivot_table(index=index, columns=stack, values=value, aggfunc="sum", fill_value=0.0)
    wide = wide.loc[wide.sum(axis=1).sort_values(ascending=False).index]
    wide = wide[wide.sum().sort_values(ascending=False).index]
    ax = _axes(ax, (8.0, 0.45 * len(wide) + 1.8))
    left = np.zeros(len(wide))
    for i, col in enumerate(wide.columns):
        ax.barh(
            range(len(wide)),
            wide[col].values,
            left=left,
            height=0.66,
            label=_mpl(col),
            color=CATEGORICAL[i % len(CATEGORICAL)],
        )
        left += wide[col].values
    for i, total in enumerate(left):
        ax.annotate(
            _mpl(compact_money(total, currency)),
            (total, i),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=8.5,
        )
    _hbar_labels(ax, list(wide.index))
    ax.set_xlim(0, (left.max() if len(left) else 1) * 1.15)
    currency_axis(ax, currency, axis="x")
    ax.set_xlabel(f"Spend ({currency})")
    ax.set_title(_mpl(title or f"Spend by {_words(index).lower()} and {_words(stack).lower()}"))
    ax.legend(title=_words(stack), loc="lower right", fontsize=8.5)
    return ax


def plot_attribution_comparison(
    comparison: pd.DataFrame,
    *,
    highlight: str | None = None,
    currency: str = "USD",
    ax: Axes | None = None,
    title: str = "Revenue credited to each channel, by attribution model",
) -> Axes:
    """Channels x models (``QuarterKpis.attribution_comparison()``) as grouped horizontal bars: one
    group per channel, one bar per model; ``highlight`` (the report's model) drawn solid, the others
    lighter."""
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
            comp[m].values,
            height=h,
            color=CATEGORICAL[j % len(CATEGORICAL)],
            alpha=1.0 if strong else 0.55,
            edgecolor="black" if m == highlight else "none",
            linewidth=0.9,
            label=_mpl(model_label(m) + (" (this report)" if m == highlight else "")),
        )
    _hbar_labels(ax, list(comp.index))
    currency_axis(ax, currency, axis="x")
    ax.set_xlabel(f"Credited lead revenue ({currency})")
    ax.set_title(_mpl(title))
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
    ranking changes with the model. Channels in ``highlight`` (e.g. the biggest movers) are drawn
    bold, the others grey."""
    keep = set(highlight)
    ax = _axes(ax, (9.0, 0.4 * len(ranks) + 2.4))
    x = np.arange(len(ranks.columns))
    for i, (ch, row) in enumerate(ranks.iterrows()):
        bold = not keep or ch in keep
        color = CATEGORICAL[i % len(CATEGORICAL)] if bold else "#c4c8ce"
        ax.plot(
            x,
            row.values,
            marker="o",
            ms=6 if bold else 4,
            lw=2.4 if bold else 1.2,
            color=color,
            zorder=3 if bold else 2,
        )
        ax.annotate(
            _mpl(ch),
            (x[-1], row.values[-1]),
            xytext=(8, 0),
            textcoords="offset points",
            va="center",
            fontsize=8.5,
            color=color if bold else GREY,
            fontweight="bold" if bold else "normal",
        )
    ax.set_xticks(x, [_mpl(model_label(m)) for m in ranks.columns], rotation=30, ha="right")
    top = int(np.nanmax(ranks.values)) if ranks.size else 1
    ax.set_yticks(range(1, top + 1))
    ax.set_ylim(top + 0.5, 0.5)
    ax.grid(axis="x", visible=False)
    ax.set_ylabel("Rank (1 = most credited revenue)")
    ax.set_xlabel("Attribution model")
    ax.set_title(_mpl(title))
    return ax


def plot_device_split(
    web: pd.DataFrame,
    *,
    value: str = "sessions",
    ax: Axes | None = None,
    title: str = "Visits by device",
) -> Axes:
    """Share of ``value`` (sessions) per device as horizontal bars; labels add the bounce rate when
    ``web`` has a ``bounce_rate`` column (see ``metrics.web_table``)."""
    s = web[value].astype(float)
    total = float(s.sum())
    share = s / total if total else s * math.nan
    ax = _axes(ax, (8.0, 0.5 * len(s) + 1.3))
    bars = ax.barh(range(len(s)), share.values, color=CATEGORICAL[: len(s)], height=0.62)
    labels = []
    for dev, sh in share.items():
        text = f"{sh:.0%} · {s[dev]:,.0f} {value}"
        if "bounce_rate" in web and not _missing(web.loc[dev, "bounce_rate"]):
            text += f" · bounce {web.loc[dev, 'bounce_rate']:.0%}"
        labels.append(_mpl(text))
    ax.bar_label(bars, labels, padding=4, fontsize=8.5)
    _hbar_labels(ax, [str(d).capitalize() for d in s.index])
    ax.set_xlim(0, max(float(share.max()) * 1.6, 0.1) if len(share) else 1)
    percent_axis(ax, axis="x")
    ax.set_xlabel(f"Share of {value} (%)")
    ax.set_title(_mpl(title))
    return ax


def plot_goal_rates(
    goals: pd.DataFrame,
    *,
    rate: str = "conversion_rate",
    count: str = "completions",
    ax: Axes | None = None,
    title: str = "Site goal conversion rate",
    top: int | None = 12,
    min_count: int = 0,
) -> Axes:
    """Goal conversion rates (completions per session) as horizontal bars, highest first, each
    labelled with its rate and completions. ``goals``: indexed by goal (or goal / landing page);
    rows with fewer than ``min_count`` completions are left out (a rate on 1 completion is noise)."""
    df = goals[goals[count] >= min_count].sort_values(rate, ascending=False)
    if top:
        df = df.head(top)
    ax = _axes(ax, (8.0, 0.42 * len(df) + 1.3))
    bars = ax.barh(range(len(df)), df[rate].values, color=BLUE, height=0.62)
    ax.bar_label(
        bars, [f"{r:.2%} ({c:,.0f} {count})" for r, c in zip(df[rate], df[count], strict=True)], padding=4, fontsize=8.5
    )
    _hbar_labels(
        ax,
        [
            " · ".join(_words(p) if j == 0 else str(p) for j, p in enumerate(i)) if isinstance(i, tuple) else _words(i)
            for i in df.index
        ],
    )
    ax.set_xlim(0, float(df[rate].max()) * 1.45 if len(df) and df[rate].max() > 0 else 0.01)
    percent_axis(ax, axis="x", decimals=1)
    ax.set_xlabel("Completions per session (%)")
    ax.set_title(_mpl(title))
    return ax


# -------------------------------------------------------------------------------------------------
# Tables


def status_badge(status: Any) -> str:
    """HTML badge for a KPI status (on track / at risk / off track / no data); the text is escaped."""
    text = "no data" if _missing(status) else str(status)
    color = STATUS_COLORS.get(text, "#9e9e9e")
    fg = "#1a1a1a" if text == "at risk" else "#ffffff"
    return (
        f'<span style="background:{color};color:{fg};padding:1px 8px;border-radius:9px;'
        f'font-size:0.85em;white-space:nowrap">{html.escape(text)}</span>'
    )


def _words(identifier: Any) -> str:
    """``cost_per_lead`` -> ``Cost per lead`` (headers, legends); KPI acronyms kept upper case."""
    text = str(identifier).replace("_", " ").strip()
    if not text:
        return text
    text = text[:1].upper() + text[1:]
    for word in ("cac", "clv", "roi", "mql", "sql", "mqls", "sqls", "yoy"):
        text = re.sub(
            rf"\b{word}\b", word.upper().replace("MQLS", "MQLs").replace("SQLS", "SQLs"), text, flags=re.IGNORECASE
        )
    return text.replace("Clv to CAC", "CLV:CAC").replace("CLV to CAC", "CLV:CAC")


def styled_table(
    df: pd.DataFrame,
    formats: Mapping[str, str] | None = None,
    *,
    currency: str = "USD",
    labels: Mapping[str, str] | None = None,
    caption: str | None = None,
    max_rows: int | None = None,
    na: str = "–",
) -> Any:
    """A pandas Styler for the report: formatted numbers, escaped text, no index-name clutter.

    Parameters
    ----------
    df : DataFrame
        A named index (e.g. ``channel``) becomes the first column; a plain RangeIndex is hidden.
    formats : dict
        Column -> ``money``, ``money2``, ``int``, ``pct``, ``ratio``, ``days``, ``duration``,
        ``status`` (coloured badge, :func:`status_badge`) or ``text``; columns not named are text.
    currency : str
        Shown before money values.
    labels : dict
        Column headers; default: the column name in words (``cost_per_lead`` -> ``Cost per lead``).
    caption : str
        Table caption (escaped).
    max_rows : int
        Show the first rows only.
    na : str
        Shown for missing values.

    Every text cell, header and the caption are HTML-escaped, so a channel called
    ``<script>alert(1)</script>`` renders as that text.
    """
    formats = dict(formats or {})
    data = df.copy()
    if not isinstance(data.index, pd.RangeIndex) or any(n is not None for n in data.index.names):
        data = data.reset_index()
    if max_rows is not None:
        data = data.head(max_rows)
    data.columns = [str(c) if not isinstance(c, tuple) else " ".join(map(str, c)) for c in data.columns]
    data.columns.name = None
    labels = dict(labels or {})
    rename = {c: labels.get(c, _words(c) if c != "index" else "") for c in data.columns}
    if len(set(rename.values())) < len(rename):  # keep headers unique
        rename = {c: c for c in data.columns}
    kinds = {rename[c]: k for c, k in formats.items() if c in rename}
    data = data.rename(columns=rename)

    styler = data.style.format(na_rep=na, escape="html")
    numeric = []
    for col, kind in kinds.items():
        if kind == "status":
            styler = styler.format(status_badge, subset=[col], escape=None)
        elif kind != "text":
            styler = styler.format(_cell_formatter(kind, currency, na), subset=[col], na_rep=na, escape="html")
            numeric.append(col)
    styler = styler.hide(axis="index").format_index(escape="html", axis="columns")
    text_cols = [c for c in data.columns if c not in numeric]
    if numeric:
        styler = styler.set_properties(
            subset=numeric, **{"text-align": "right", "white-space": "nowrap", "font-variant-numeric": "tabular-nums"}
        )
    if text_cols:
        styler = styler.set_properties(subset=text_cols, **{"text-align": "left"})
    styler = styler.set_table_styles(
        [
            {"selector": "th", "props": "text-align: left; font-weight: 600; border-bottom: 1px solid #9aa0a6;"},
            {"selector": "td", "props": "padding: 3px 10px;"},
            {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: 600; color: #333;"},
        ],
        overwrite=False,
    )
    if caption:
        styler = styler.set_caption(html.escape(caption))
    # Styler's default id is random; one derived from the content makes a re-run's HTML identical.
    digest = hashlib.blake2b(f"{data.to_csv()}|{formats}|{caption}|{max_rows}".encode(), digest_size=4)
    return styler.set_uuid(digest.hexdigest())


#: the numbers leadership asks first: (label, ``metrics()`` key, format kind)
HEADLINE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("Revenue", "revenue", "money"),
    ("Lead revenue (won deals from marketing leads)", "lead_revenue", "money"),
    ("Leads", "leads", "int"),
    ("Cost per lead", "cost_per_lead", "money"),
    ("Customer acquisition cost (CAC)", "cac", "money"),
    ("CLV:CAC", "clv_to_cac", "ratio"),
    ("Marketing ROI", "marketing_roi", "pct"),
)


def headline_frame(
    m: Mapping[str, Any], rows: Sequence[tuple[str, str, str]] = HEADLINE_ROWS, *, na: str = "–"
) -> pd.DataFrame:
    """Text table of ``metrics()`` values: KPI, this quarter, the previous quarter, the change and the
    target where one exists (the quarter's revenue target, or a ``kpis`` row on that metric).

    The ROI label names the attribution model. Cells are plain text; show the frame with
    :func:`styled_table`, which escapes it.
    """
    cur = m.get("currency", "USD")
    prev, pq = _prev(m)
    targets = {k.get("metric"): k for k in m.get("kpis", []) if k.get("metric")}
    model = model_label(m.get("attribution_model", ""))
    out = []
    for label, key, kind in rows:
        if key == "marketing_roi" and model:
            label = f"{label} ({model} attribution)"
        t = m.get("revenue_target") if key == "revenue" else (targets.get(key) or {}).get("target")
        out.append(
            {
                "KPI": label,
                str(m.get("quarter", "this quarter")): format_value(m.get(key), kind, currency=cur, na=na),
                pq: format_value(prev.get(key), kind, currency=cur, na=na),
                "Change": change_words(m.get(key), prev.get(key), kind, currency=cur) or na,
                "Target": format_value(t, kind, currency=cur, na=na),
            }
        )
    return pd.DataFrame(out)


def kpi_frame(kpis: Sequence[Mapping[str, Any]], *, currency: str = "USD", na: str = "–") -> pd.DataFrame:
    """Text table of ``metrics()["kpis"]``: each KPI next to the goal it serves, its owner, baseline,
    target, actual (and projection for a quarter in progress) and status (format the ``Status``
    column as ``"status"`` in :func:`styled_table` for coloured badges)."""
    out = []
    for k in kpis:
        kind = _metric_kind(k.get("metric"))
        target = format_value(k.get("target"), kind, currency=currency, na=na)
        row = {
            "KPI": k.get("name", ""),
            "Serves goal": k.get("goal", ""),
            "Owner": k.get("owner", ""),
            "Baseline": format_value(k.get("baseline"), kind, currency=currency, na=na),
            "Target": target if _higher_is_better(k) or target == na else f"≤ {target}",
            "Actual": format_value(k.get("actual"), kind, currency=currency, na=na),
        }
        if any(not _missing(x.get("projected")) for x in kpis):
            row["Projected"] = format_value(k.get("projected"), kind, currency=currency, na=na)
        row["Status"] = k.get("status", "no data")
        out.append(row)
    return pd.DataFrame(out)


def _cell_formatter(kind: str, currency: str, na: str) -> Any:
    safe_currency = html.escape(currency)

    def fmt(value: Any) -> str:
        if isinstance(value, str):  # already escaped by Styler (escape="html")
            return value
        return format_value(value, kind, currency=safe_currency, na=na)

    return fmt


# -------------------------------------------------------------------------------------------------
# Narratives: the conclusions in words (Markdown, every inserted value escaped)

#: plain names of the attribution models (kpi_helpers.attribution.MODELS)
MODEL_LABELS = {
    "first_touch": "first-touch",
    "last_touch": "last-touch",
    "last_non_direct": "last non-direct",
    "linear": "linear",
    "time_decay": "time-decay",
    "position_based": "position-based",
    "w_shaped": "W-shaped",
    "full_path": "full-path",
    "markov": "Markov",
    "shapley": "Shapley",
}


def model_label(name: Any) -> str:
    """``position_based`` -> ``position-based``, ``markov`` -> ``Markov``; unknown names in words."""
    return MODEL_LABELS.get(str(name), _words(name).lower())


def _changed(cur: Any, prev: Any, kind: str, currency: str, prev_label: Any, unit: str = "") -> str:
    """``624 leads (down 5.7% from 662 in 2026Q2)`` in Markdown; no parenthesis without a previous value."""
    text = _v(cur, kind, currency) + (f" {unit}" if unit else "")
    words = change_words(cur, prev, kind, currency=currency)
    if words:
        text += f" ({md_escape(words)} from {_v(prev, kind, currency)} in {md_escape(prev_label)})"
    return text


def _attainment(actual: Any, target: Any, higher_is_better: bool = True) -> float:
    return _share(actual, target, higher_is_better)


def _kpi(m: Mapping[str, Any], metric: str) -> Mapping[str, Any] | None:
    """The ``kpis`` row tracking ``metric`` that has a target, if any."""
    return next((k for k in m.get("kpis", []) if k.get("metric") == metric and not _missing(k.get("target"))), None)


def _against(m: Mapping[str, Any], metric: str, currency: str) -> str:
    """`` against a target of 705 (off track)`` for a metric with a KPI target, else ``""``."""
    k = _kpi(m, metric)
    if k is None:
        return ""
    bound = "" if _higher_is_better(k) else "at most "
    return f" against a target of {bound}{_v(k['target'], _metric_kind(metric), currency)} ({md_escape(k['status'])})"


def _kpi_sentence(m: Mapping[str, Any], stages: Sequence[tuple[str, str]], currency: str, lead: str) -> str:
    """``lead`` + ``115 SQLs against a target of 123 (off track), ...`` for the stages with a target."""
    bits = []
    for metric, label in stages:
        k = _kpi(m, metric)
        if k is not None:
            bits.append(f"{_v(k.get('actual'), _metric_kind(metric), currency)} {label}{_against(m, metric, currency)}")
    return f"{lead} " + ", ".join(bits) + "." if bits else ""


def _prev(m: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    prev = m.get("previous_quarter") or {}
    return prev, str(prev.get("quarter") or "the previous quarter")


def narrative_summary(m: Mapping[str, Any]) -> str:
    """The quarter's story for leadership (Markdown) from ``QuarterKpis.metrics()``: revenue against
    the previous quarter and the targets, the fiscal year to date, leads, efficiency, ROI with its
    attribution model, and which KPIs are off track and whose they are."""
    cur = m.get("currency", "USD")
    prev, pq = _prev(m)
    out = []
    rev, target = m.get("revenue"), m.get("revenue_target")
    att = _attainment(rev, target)
    s = f"**{md_escape(m['quarter'])} revenue was {_changed(rev, prev.get('revenue'), 'money', cur, pq)}**"
    if not _missing(att):
        gap = float(rev) - float(target)
        s += (
            f"; that is {_v(att, 'pct', cur)} of the quarter's target of {_v(target, 'money', cur)}, "
            f"{_v(abs(gap), 'money', cur)} {'above' if gap >= 0 else 'short of'} it"
        )
    out.append(s + ".")
    ytd, annual = m.get("revenue_fiscal_year_to_date"), m.get("revenue_target_fiscal_year")
    if not _missing(annual):
        left = float(annual) - float(ytd or 0)
        out.append(
            f"Fiscal year {md_escape(m.get('fiscal_year', ''))} to date: {_v(ytd, 'money', cur)}, "
            f"{_v(_attainment(ytd, annual), 'pct', cur)} of the annual target of {_v(annual, 'money', cur)}; "
            + (f"{_v(left, 'money', cur)} still to go." if left > 0 else "the annual target is reached.")
        )
    kpis = list(m.get("kpis", []))
    lead_kpi = next((k for k in kpis if k.get("metric") == "leads"), None)
    s = f"Marketing brought {_changed(m.get('leads'), prev.get('leads'), 'int', cur, pq, 'leads')}"
    if lead_kpi and not _missing(lead_kpi.get("target")):
        s += f" against a target of {_v(lead_kpi['target'], 'int', cur)} ({md_escape(lead_kpi['status'])})"
    out.append(
        s + f", worth {_changed(m.get('lead_revenue'), prev.get('lead_revenue'), 'money', cur, pq)} in won deals."
    )
    out.append(
        f"Cost per lead was {_changed(m.get('cost_per_lead'), prev.get('cost_per_lead'), 'money', cur, pq)}. "
        f"Winning a new customer cost {_changed(m.get('cac'), prev.get('cac'), 'money', cur, pq)} "
        f"in marketing and sales (CAC), and a customer is worth {_v(m.get('clv'), 'money', cur)} over its "
        f"lifetime: {_v(m.get('clv_to_cac'), 'ratio', cur)} times what it cost to win (CLV:CAC)."
    )
    model = md_escape(model_label(m.get("attribution_model", "")))
    out.append(
        f"Marketing ROI was {_changed(m.get('marketing_roi'), prev.get('marketing_roi'), 'pct', cur, pq)} "
        f"under {model} attribution."
    )
    if kpis:
        counts = {s: sum(1 for k in kpis if k.get("status") == s) for s in STATUS_COLORS}
        s = f"**{counts['on track']} of {len(kpis)} KPIs are on track**"
        extra = [f"{counts[x]} {x}" for x in ("at risk", "off track", "no data") if counts[x]]
        if extra:
            s += " (" + ", ".join(extra) + ")"
        behind = [k for k in kpis if k.get("status") in ("off track", "at risk")]
        if behind:

            def att_of(k: Mapping[str, Any]) -> float:
                a = k.get("projected") if not _missing(k.get("projected")) else k.get("actual")
                v = _attainment(a, k.get("target"), _higher_is_better(k))
                return math.inf if _missing(v) else v

            worst = min(behind, key=att_of)
            s += (
                f". Furthest from target: {md_escape(worst['name'])}, at {_v(att_of(worst), 'pct', cur)} of it "
                f"(owner: {md_escape(worst.get('owner', ''))})"
            )
        out.append(s + ".")
    return "\n\n".join(out)


def narrative_pacing(m: Mapping[str, Any], pacing: Mapping[str, Any] | None) -> str:
    """Words for a quarter in progress: what the run rate projects for revenue and the funnel against
    the targets, said plainly to be a projection. ``m``: the in-progress quarter's metrics;
    ``pacing``: its ``QuarterKpis.pacing`` (NaNs there carry the reason)."""
    cur = m.get("currency", "USD")
    q = md_escape(m["quarter"])
    if not pacing:
        return f"{q} is complete; there is nothing to project."
    parts = [
        f"**{q} is in progress**: the data covers {m['days_covered']} of its {m['days_in_quarter']} days "
        f"(to {md_escape(m['data_end'])}). What follows is a **projection, not a result**: it assumes the rest "
        "of the quarter runs at the pace so far, and early in a quarter it can move a lot."
    ]
    rev = pacing.get("revenue")
    if _missing(rev):
        why = getattr(rev, "reason", None) or "not enough data yet"
        parts.append(f"Revenue cannot be projected yet ({md_escape(why)}).")
    else:
        parts.append(
            f"Revenue would reach {_v(rev, 'money', cur)} against the quarter's target of "
            f"{_v(m.get('revenue_target'), 'money', cur)} "
            f"({_v(_attainment(rev, m.get('revenue_target')), 'pct', cur)})."
        )
    kpis = {k.get("metric"): k for k in m.get("kpis", [])}
    bits = []
    for metric, label in (
        ("visits", "visits"),
        ("leads", "leads"),
        ("opportunities", "opportunities"),
        ("won_deals", "won deals from leads"),
    ):
        k = kpis.get(metric)
        if k and not _missing(k.get("projected")):
            bits.append(
                f"{_v(k['projected'], 'int', cur)} {label} against a target of "
                f"{_v(k.get('target'), 'int', cur)} ({md_escape(k['status'])})"
            )
    if bits:
        parts.append("At this pace the quarter would end with " + "; ".join(bits) + ".")
    if not _missing(pacing.get("lead_revenue")):
        parts.append(f"Won deals from leads would bring {_v(pacing['lead_revenue'], 'money', cur)} of lead revenue.")
    return "\n\n".join(parts)


def narrative_goal(goal: Any, m: Mapping[str, Any], kpis: Sequence[Mapping[str, Any]] = ()) -> str:
    """Words for the goal-setting notebook: how the target was set, where the quarter stands against
    it and what the KPIs serving it ask for. ``goal``: ``RevenueGoal``; ``m``: quarter metrics;
    ``kpis``: the ``kpis`` rows."""
    cur = m.get("currency", "USD")
    prev, pq = _prev(m)
    parts = [
        f"**The FY{goal.fiscal_year} revenue target is {_v(goal.target_revenue, 'money', cur)}**: last year's "
        f"{_v(goal.last_year_revenue, 'money', cur)} grown by {_v(goal.target_growth, 'pct', cur)}, the average "
        f"growth of recent years ({_v(goal.average_growth, 'pct', cur)}) plus an uplift of "
        f"{_v(goal.uplift, 'pct', cur)}.",
    ]
    rev, target = m.get("revenue"), m.get("revenue_target")
    s = (
        f"{md_escape(m['quarter'])} had a target of {_v(target, 'money', cur)} and brought "
        f"{_changed(rev, prev.get('revenue'), 'money', cur, pq)}"
    )
    if not _missing(_attainment(rev, target)):
        s += f": {_v(_attainment(rev, target), 'pct', cur)} of its target"
    parts.append(s + ".")
    rows = [k for k in kpis if not _missing(k.get("target"))]
    if rows:
        items = []
        for k in rows:
            kind = _metric_kind(k.get("metric"))
            base = k.get("baseline")
            frm = f"{_v(base, kind, cur)} → " if not _missing(base) else ""
            items.append(
                f"- **{md_escape(k['name'])}**: {frm}{_v(k['target'], kind, cur)}; actual "
                f"{_v(k.get('actual'), kind, cur)}, {md_escape(k.get('status', ''))} "
                f"(owner: {md_escape(k.get('owner', ''))})"
            )
        on = sum(1 for k in rows if k.get("status") == "on track")
        parts.append(
            f"The KPIs that serve the goal, baseline → target ({on} of {len(rows)} on track):\n\n" + "\n".join(items)
        )
    return "\n\n".join(parts)


def narrative_traffic(m: Mapping[str, Any], channels: pd.DataFrame | None = None) -> str:
    """Words for the traffic and lead value notebook: visits, leads and what a lead and a visit are
    worth against the previous quarter; the largest lead source (``channels``: a frame indexed by
    channel with a ``leads`` column)."""
    cur = m.get("currency", "USD")
    prev, pq = _prev(m)
    parts = [
        f"**{md_escape(m['quarter'])} brought {_changed(m.get('visits'), prev.get('visits'), 'int', cur, pq, 'visits')}"
        f"{_against(m, 'visits', cur)} and {_changed(m.get('leads'), prev.get('leads'), 'int', cur, pq, 'leads')}"
        f"{_against(m, 'leads', cur)}.** It took {_v(m.get('visits_per_lead'), 'ratio', cur)} visits to get one "
        "lead; the visit-to-lead rate was "
        f"{_changed(m.get('visit_to_lead_rate'), prev.get('visit_to_lead_rate'), 'pct', cur, pq)}"
        f"{_against(m, 'visit_to_lead_rate', cur)}.",
        f"A lead was worth {_changed(m.get('value_per_lead'), prev.get('value_per_lead'), 'money', cur, pq)} and a "
        f"visit {_changed(m.get('value_per_visit'), prev.get('value_per_visit'), 'money2', cur, pq)}: lead revenue "
        "divided by leads and by visits.",
        f"Bounce rate was {_changed(m.get('bounce_rate'), prev.get('bounce_rate'), 'pct', cur, pq)}; "
        f"{_v(m.get('new_user_share'), 'pct', cur)} of users were new; organic search brought "
        f"{_changed(m.get('organic_visits'), prev.get('organic_visits'), 'int', cur, pq, 'visits')}.",
    ]
    if channels is not None and len(channels) and "leads" in channels:
        leads = channels["leads"].astype(float)
        total = float(leads.sum())
        if total:
            top = leads.idxmax()
            parts.append(
                f"The largest lead source was {md_escape(top)} with {_v(leads[top], 'int', cur)} leads "
                f"({_v(leads[top] / total, 'pct', cur)} of the quarter's leads)."
            )
    return "\n\n".join(parts)


def narrative_conversion(
    m: Mapping[str, Any], funnel: pd.DataFrame, comparison: pd.DataFrame, *, model: str | None = None
) -> str:
    """Words for the channel conversion notebook: the ratios against the previous quarter, the best
    and weakest converting channel, and how much channel credit depends on the attribution model.
    ``funnel``: ``metrics.channel_funnel`` rows; ``comparison``: channels x models."""
    cur = m.get("currency", "USD")
    prev, pq = _prev(m)
    parts = [
        f"**{md_escape(m['quarter'])}: the visit-to-lead ratio was {md_escape(m.get('visit_to_lead_ratio', 'n/a'))} "
        "and the lead-to-customer rate "
        f"{_changed(m.get('lead_to_customer_rate'), prev.get('lead_to_customer_rate'), 'pct', cur, pq)}.** "
        f"The visit-to-lead rate was "
        f"{_changed(m.get('visit_to_lead_rate'), prev.get('visit_to_lead_rate'), 'pct', cur, pq)}"
        f"{_against(m, 'visit_to_lead_rate', cur)}."
    ]
    stages = _kpi_sentence(
        m,
        (
            ("mqls", "MQLs"),
            ("sqls", "SQLs"),
            ("opportunities", "opportunities from leads"),
            ("won_deals", "won deals from leads"),
        ),
        cur,
        "Down the funnel the quarter had",
    )
    if stages:
        parts.append(stages)
    f = funnel.drop(index=[i for i in funnel.index if str(i).startswith("All ")], errors="ignore")
    if len(f) and "lead_to_sql_rate" in f:
        f = f[f["leads"] >= 10] if (f["leads"] >= 10).any() else f
        rate = f["lead_to_sql_rate"].dropna()
        if len(rate):
            best, worst = rate.idxmax(), rate.idxmin()
            parts.append(
                f"Of the quarter's leads, {md_escape(best)} leads turned into SQLs most often "
                f"({_v(rate[best], 'pct', cur)}) and {md_escape(worst)} leads least often "
                f"({_v(rate[worst], 'pct', cur)}; channels with at least 10 leads)."
            )
    if len(comparison):
        spread = comparison.max(axis=1) - comparison.min(axis=1)
        ch = spread.idxmax()
        hi_m, lo_m = comparison.loc[ch].idxmax(), comparison.loc[ch].idxmin()
        s = (
            f"The attribution model matters most for {md_escape(ch)}: its credit ranges from "
            f"{_v(comparison.loc[ch, lo_m], 'money', cur)} ({md_escape(model_label(lo_m))}) to "
            f"{_v(comparison.loc[ch, hi_m], 'money', cur)} ({md_escape(model_label(hi_m))})."
        )
        if model and model in comparison:
            top = comparison[model].idxmax()
            s += (
                f" Under the report's {md_escape(model_label(model))} model, {md_escape(top)} is credited most "
                f"({_v(comparison.loc[top, model], 'money', cur)})."
            )
        parts.append(s)
    return "\n\n".join(parts)


def narrative_roi(m: Mapping[str, Any], economics: pd.DataFrame, ranks: pd.DataFrame, *, model: str) -> str:
    """Words for the ROI notebook: totals against the previous quarter, the best and worst channel by
    ROI under ``model`` (named), and which channels' ranks move most across models.
    ``economics``: ``metrics.channel_economics``; ``ranks``: ``metrics.attribution_ranks``."""
    cur = m.get("currency", "USD")
    prev, pq = _prev(m)
    mname = md_escape(model_label(model))
    parts = [
        f"**{md_escape(m['quarter'])}: marketing cost "
        f"{_changed(m.get('marketing_cost'), prev.get('marketing_cost'), 'money', cur, pq)}; marketing ROI under "
        f"{mname} attribution {_changed(m.get('marketing_roi'), prev.get('marketing_roi'), 'pct', cur, pq)}.** "
        f"CAC was {_changed(m.get('cac'), prev.get('cac'), 'money', cur, pq)} against a customer lifetime value of "
        f"{_v(m.get('clv'), 'money', cur)} (CLV:CAC {_v(m.get('clv_to_cac'), 'ratio', cur)})."
    ]
    targets = [
        f"{label} {_v(m.get(metric), _metric_kind(metric), cur)}{_against(m, metric, cur)}"
        for metric, label in (
            ("cost_per_lead", "cost per lead"),
            ("clv_to_cac", "CLV:CAC"),
            ("marketing_roi", "marketing ROI"),
        )
        if _kpi(m, metric)
    ]
    parts.append(
        "Against the targets in goals.yml: " + "; ".join(targets) + "."
        if targets
        else "goals.yml sets no target for cost per lead, CLV:CAC or ROI."
    )
    roi = economics["roi"].dropna() if "roi" in economics else pd.Series(dtype=float)
    if len(roi):
        best, worst = roi.idxmax(), roi.idxmin()
        parts.append(
            f"Under {mname} attribution the best return came from {md_escape(best)} "
            f"(ROI {_v(roi[best], 'pct', cur)} on {_v(economics.loc[best, 'marketing_cost'], 'money', cur)} "
            f"of cost) and the weakest from {md_escape(worst)} (ROI {_v(roi[worst], 'pct', cur)} on "
            f"{_v(economics.loc[worst, 'marketing_cost'], 'money', cur)})."
        )
    if len(ranks) and "spread" in ranks:
        top = int(ranks["spread"].max())
        if top == 0:
            parts.append("Every model ranks the channels the same way: the ranking does not depend on the model.")
        else:
            movers = ranks[ranks["spread"] == top]
            names = ", ".join(
                f"{md_escape(ch)} (from rank {int(r.best)} to {int(r.worst)})" for ch, r in movers.iterrows()
            )
            stable = [md_escape(c) for c in ranks[ranks["spread"] == 0].index]
            s = f"The channel ranking depends on the model: {names} move{'s' if len(movers) == 1 else ''} the most"
            if stable:
                s += f"; {', '.join(stable)} keep{'s' if len(stable) == 1 else ''} the same rank under every model"
            parts.append(s + ". A budget decision based on a channel's rank should name the model it uses.")
    return "\n\n".join(parts)


# -------------------------------------------------------------------------------------------------
# Interactive views (the notebooks' `widgets` cells)


def new_figure(figsize: tuple[float, float] = (9.0, 4.0), ncols: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """``(figure, axes)`` outside pyplot, for :func:`explore` views: never shown automatically at the
    end of a cell and not kept by pyplot once the view drops it."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(1, ncols, **kwargs)


def explore(render: Any, **controls: Any) -> None:
    """Show ipywidgets ``controls`` and what ``render(**values)`` returns (a list of displayable
    objects: Stylers, :func:`new_figure` figures, Markdown), redrawn in place when a control changes.

    The view is updated through display handles, not an ``Output`` widget: nbclient (papermill,
    nbconvert) mimics a frontend for ``Output`` widgets by sending messages on the shell channel while
    it waits for the cell's reply there, which intermittently stalls headless execution until the cell
    timeout (or forever without one). ``render`` should return the same number of objects each time.
    """
    import ipywidgets as widgets
    from IPython.display import display

    def values() -> dict[str, Any]:
        return {name: w.value for name, w in controls.items()}

    display(widgets.HBox(list(controls.values())))
    handles = [display(obj, display_id=True) for obj in render(**values())]

    def redraw(_change: Any = None) -> None:
        for handle, obj in zip(handles, render(**values()), strict=False):
            handle.update(obj)

    for w in controls.values():
        w.observe(redraw, names="value")


# -------------------------------------------------------------------------------------------------
# Record: the values a notebook shows, for tests


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy/pandas scalars to Python, NaN/inf to None, keys to str."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, pd.Series):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray | pd.Index):
        return [_plain(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(value, Decimal):  # engine sums of integers can come back as decimals
        return int(value) if value.is_finite() and value == value.to_integral_value() else _plain(float(value))
    if value is None or isinstance(value, str):
        return value
    return str(value)


def record(values: Mapping[str, Any]) -> None:
    """Display ``values`` as an ``application/json`` output (the notebook's ``record`` cell); NaN
    becomes null. Tests read it to compare the notebook's numbers with the helpers'."""
    from IPython.display import display

    display({"application/json": _plain(values)}, raw=True)
