"""What notebook 05 shows of a fitted mix model: its tables, charts and sentences.

The numbers come from :class:`kpi_helpers.mmm.IncrementalityResult` (computed, with their 90% intervals,
in :mod:`kpi_helpers.mmm`); this module only arranges and words them, formatted by
:mod:`kpi_helpers.formats` like every other page. Channel names are data: every sentence escapes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .formats import finite_number, format_value
from .markup import bullets, md_escape

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .mmm import IncrementalityResult

__all__ = [
    "ROI_LABELS",
    "budget_gain",
    "budget_table",
    "calibration_table",
    "caused_last_quarter",
    "conclusion",
    "diagnostics_text",
    "marginal_at",
    "notes_text",
    "plot_response_curves",
    "plot_roi_comparison",
    "plot_weekly_fit",
    "roi_table",
    "target_words",
    "unavailable",
]

#: the columns of :func:`roi_table` and their headers
ROI_LABELS = {
    "activity_cost": "Activity cost",
    "incremental": "Incremental",
    "incremental_per_cost": "Incremental per 1,000 of cost",
    "incremental_roi": "Incremental ROI",
    "attribution_roi_activity_cost": "Attribution ROI",
    "attribution_to_incremental": "Attribution / incremental",
}


def target_words(result: IncrementalityResult) -> str:
    """What the model explains, in words: ``leads`` or ``pipeline``."""
    return "leads" if result.target == "leads" else "pipeline"


def marginal_at(result: IncrementalityResult, channel: str, level: float, *, currency: str) -> str:
    """The expected weekly incremental target and the marginal ROI of ``channel`` at ``level`` times
    today's weekly cost, read off its response curve (Markdown): the revenue the next unit of cost brings."""
    curves = result.response_curves[result.response_curves["channel"] == channel]
    now = (
        finite_number(result.marginal.loc[channel, "current_weekly_cost"]) if channel in result.marginal.index else None
    )
    if now is None or curves.empty:
        return f"No response curve for **{md_escape(channel)}**."
    x = np.asarray(curves["weekly_cost"], dtype=float)
    y = np.asarray(curves["incremental"], dtype=float)
    cost = now * level
    step = max(cost * 0.01, 1e-9)
    slope = (np.interp(cost + step, x, y) - np.interp(cost, x, y)) / step
    value = finite_number(result.channels.loc[channel, "value_per_unit"]) if channel in result.channels.index else None
    text = (
        f"At {format_value(cost, 'money', currency=currency)} a week, **{md_escape(channel)}** brings about "
        f"{float(np.interp(cost, x, y)):,.1f} incremental {target_words(result)} a week"
    )
    if value is not None:
        text += f"; the next unit of cost returns {slope * value:.2f} in revenue through the funnel (marginal ROI)"
    return text + "."


def roi_table(result: IncrementalityResult) -> tuple[pd.DataFrame, dict[str, str], dict[str, str]]:
    """Per channel: activity cost, incremental target, incremental target per 1,000 of cost and
    incremental ROI (each with its 90% interval), attribution ROI on the same activity cost and the
    ratio of the two ROIs. Returns the frame, its units and its headers (for ``Page.table``)."""
    c = result.channels
    frame = pd.DataFrame(index=c.index)
    frame["activity_cost"] = c["activity_cost"]
    money_target = result.target != "leads"
    for key, scale in (("incremental", 1.0), ("incremental_per_cost", 1000.0)):
        for suffix in ("", "_low", "_high"):
            frame[key + suffix] = c[key + suffix] * scale
    for suffix in ("", "_low", "_high"):
        frame["incremental_roi" + suffix] = c["incremental_roi" + suffix]
    frame["attribution_roi_activity_cost"] = c["attribution_roi_activity_cost"]
    frame["attribution_to_incremental"] = c["attribution_to_incremental"]
    units = {
        "activity_cost": "money",
        "incremental": "money" if money_target else "count",
        "incremental_per_cost": "money" if money_target else "ratio",
        "incremental_roi": "ratio",
        "attribution_roi_activity_cost": "ratio",
        "attribution_to_incremental": "ratio",
    }
    labels = dict(ROI_LABELS)
    labels["incremental"] = f"Incremental {target_words(result)}"
    labels["incremental_per_cost"] = f"Incremental {target_words(result)} per 1,000 of cost"
    return frame, units, labels


def calibration_table(calibrated: IncrementalityResult, plain: IncrementalityResult) -> pd.DataFrame:
    """Incremental target per 1,000 of cost with and without the lift tests, per channel (90% intervals)."""
    out = pd.DataFrame(index=calibrated.channels.index)
    for name, r in (("with_lift_tests", calibrated), ("without_lift_tests", plain)):
        for suffix in ("", "_low", "_high"):
            out[name + suffix] = r.channels["incremental_per_cost" + suffix].reindex(out.index) * 1000.0
    return out


def budget_table(result: IncrementalityResult) -> tuple[pd.DataFrame, dict[str, str], dict[str, str]] | None:
    """The budget scenario per channel (today's split and the optimiser's, with the expected incremental
    target and revenue of each, 90% intervals), its units and headers; None without a scenario."""
    if result.budget is None or result.budget.empty:
        return None
    b = result.budget.copy()
    units: dict[str, str] = {}
    labels: dict[str, str] = {}
    target = target_words(result)
    for col in b.columns:
        base = col.removesuffix("_low").removesuffix("_high")
        kind, _, split = base.rpartition("_")
        if base.endswith("_budget"):
            units[base], labels[base] = "money", f"Budget, {base.removesuffix('_budget')} split"
            continue
        money = kind == "revenue" or result.target != "leads"
        units[base] = "money" if money else "count"
        labels[base] = f"{'Revenue' if kind == 'revenue' else 'Incremental ' + target}, {split} split"
    return b, units, labels


def budget_gain(result: IncrementalityResult, currency: str, revenue_target: float | None = None) -> str:
    """The budget scenario's expected gain over today's split in a sentence (Markdown), with its 90%
    interval and, given ``revenue_target``, its share of it; "" without a scenario."""
    s = result.budget_summary or {}
    gain = finite_number(s.get("revenue_gain"))
    if gain is None:
        return ""
    low, high = finite_number(s.get("revenue_gain_low")), finite_number(s.get("revenue_gain_high"))

    def money(value: object) -> str:
        return format_value(value, "money", currency=currency)

    text = (
        f"Spreading next quarter's {money(s.get('budget'))} as the optimiser suggests "
        f"would add about {money(gain)} of expected revenue through the funnel "
        f"({money(low)} to {money(high)}, 90%) over today's split"
    )
    if revenue_target:
        target = money(revenue_target)
        text += f": {gain / revenue_target:.1%} of the quarter's revenue target ({target})"
    return text + "."


def diagnostics_text(result: IncrementalityResult) -> str:
    """The fit's diagnostics in plain words with their numbers, and a visible warning for each that
    failed (Markdown). No timing: the same data and kit give the same page."""
    d = result.diagnostics
    rhat, ess = finite_number(d.get("rhat_max")), finite_number(d.get("ess_min"))
    div, mape = finite_number(d.get("divergences")), finite_number(d.get("holdout_mape"))
    lines = [
        f"The model was fitted to {result.weeks - result.holdout_weeks} weeks ({result.start} to {result.end}, "
        f"the last {result.holdout_weeks} held out and predicted).",
        "",
        f"- **Convergence**: the largest R-hat is {_num(rhat, 3)} (1.01 or less means the chains agree).",
        f"- **Effective sample size**: at least {_num(ess, 0)} independent draws for every parameter.",
        f"- **Divergences**: {_num(div, 0)} (any divergence means parts of the posterior were not explored).",
        f"- **Held-out weeks**: the model predicted the last {result.holdout_weeks} weeks with a mean absolute "
        f"percentage error of {format_value(mape, 'percent')}.",
    ]
    if result.warnings:
        lines += ["", "**Warning: this fit did not pass every check; read its numbers with care.**", ""]
        lines += [f"- {md_escape(w)}" for w in result.warnings]
    else:
        lines += ["", "Every check passed."]
    return "\n".join(lines)


def _num(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def unavailable(problem: str) -> str:
    """Why the page has no mix model, as a plain sentence (for ``Page.say``, which escapes it)."""
    return f"The mix model cannot run on this data: {problem.rstrip('.')}."


def notes_text(notes: Sequence[str]) -> str:
    """What a reader should know about a fit, as a Markdown list (escaped)."""
    return bullets(notes)


def caused_last_quarter(result: IncrementalityResult) -> tuple[float, float | None]:
    """The target (leads or pipeline) the channels' activity caused in the window's last 13 weeks, and its
    revenue through the funnel (None where a channel's revenue per unit is unknown): the model's mean
    weekly contributions, summed, times each channel's revenue per unit."""
    recent = result.contributions.tail(13).sum()
    units = float(recent.sum())
    value = result.channels["value_per_unit"].reindex(recent.index)
    revenue = None if value.isna().any() else float((recent * value).sum())
    return units, revenue


def conclusion(result: IncrementalityResult, currency: str, revenue_target: float | None = None) -> str:
    """What marketing caused, in a few sentences (Markdown): what the activity of the window's last quarter
    caused against the quarter's revenue target, the channels with the highest and lowest incremental
    ROI, where attribution credits most beyond what a channel caused, and the budget scenario's gain."""
    c = result.channels.dropna(subset=["incremental_roi"])
    if c.empty:
        return "The mix model gives no incremental ROI for this window: " + "; ".join(map(md_escape, result.notes))
    best, worst = str(c["incremental_roi"].idxmax()), str(c["incremental_roi"].idxmin())
    units, revenue = caused_last_quarter(result)
    caused = f"In the window's last 13 weeks the channels' activity caused about {units:,.0f} {target_words(result)}"
    if revenue is not None:
        caused += f", worth {format_value(revenue, 'money', currency=currency)} of revenue through the funnel"
        if revenue_target:
            target = format_value(revenue_target, "money", currency=currency)
            caused += f" ({revenue / revenue_target:.0%} of the quarter's revenue target of {target})"
    parts = [
        caused + ".",
        f"Over the weeks from {result.start} to {result.end}, **{md_escape(best)}** returned the most revenue per "
        f"unit of activity cost that it caused: {_roi(c.loc[best])}; **{md_escape(worst)}** the least: "
        f"{_roi(c.loc[worst])}.",
    ]
    ratio = c["attribution_to_incremental"].replace([np.inf, -np.inf], np.nan).dropna()
    if len(ratio):
        over = str(ratio.idxmax())
        if ratio.max() > 1:
            parts.append(
                f"Attribution credits **{md_escape(over)}** with {ratio.max():.1f} times the revenue its spend "
                "caused: it captures demand other channels created."
            )
    gain = budget_gain(result, currency)
    if gain:
        parts.append(gain)
    if result.warnings:
        parts.append("The fit did not pass every diagnostic check (above): treat these numbers as indicative.")
    return " ".join(parts)


def _roi(row: pd.Series | pd.DataFrame) -> str:
    return (
        f"{row['incremental_roi']:.2f} ({row['incremental_roi_low']:.2f}-{row['incremental_roi_high']:.2f}) "
        "of revenue per unit of cost"
    )


# -- charts -------------------------------------------------------------------------------------------


def plot_weekly_fit(result: IncrementalityResult, *, ax: Axes, title: str = "") -> Axes:
    """The target a week, the model's prediction with its 90% interval, and the held-out weeks shaded."""
    w = result.weekly
    x = pd.to_datetime(w.index)
    ax.fill_between(x, w["predicted_low"], w["predicted_high"], color="#9ecae1", alpha=0.5, label="90% interval")
    ax.plot(x, w["predicted"], color="#3182bd", lw=1.5, label="model")
    ax.plot(x, w["target"], color="#222222", lw=1.0, marker=".", ms=3, label="actual")
    held = w[w["holdout"].astype(bool)] if "holdout" in w else w.iloc[0:0]
    if len(held):
        ax.axvspan(pd.to_datetime(held.index[0]), pd.to_datetime(held.index[-1]), color="#eeeeee", label="held out")
    ax.set_ylabel(f"{target_words(result)} a week")
    ax.set_title(title or f"Weekly {target_words(result)}: actual and model")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return ax


def plot_roi_comparison(result: IncrementalityResult, *, ax: Axes, title: str = "") -> Axes:
    """Incremental ROI per channel with its 90% interval, beside attribution ROI on the same cost."""
    c = result.channels.sort_values("incremental_roi", na_position="first")
    y = np.arange(len(c))
    mid = c["incremental_roi"].to_numpy(float)
    err = np.vstack([mid - c["incremental_roi_low"].to_numpy(float), c["incremental_roi_high"].to_numpy(float) - mid])
    ax.barh(y, np.nan_to_num(mid), color="#3182bd", height=0.5, label="incremental ROI (90% interval)")
    ax.errorbar(np.nan_to_num(mid), y, xerr=np.nan_to_num(err), fmt="none", ecolor="#222222", capsize=3, lw=1)
    ax.scatter(c["attribution_roi_activity_cost"], y, marker="D", color="#e6550d", zorder=3, label="attribution ROI")
    ax.set_yticks(y, [str(ch) for ch in c.index])
    ax.axvline(0, color="#888888", lw=0.8)
    ax.set_xlabel("revenue per unit of activity cost")
    ax.set_title(title or "What each channel caused, and what attribution credits it with")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return ax


def plot_response_curves(
    result: IncrementalityResult, *, ax: Axes, currency: str, channels: Sequence[str] | None = None, title: str = ""
) -> Axes:
    """Expected incremental target a week against a constant weekly cost, per channel, with the current
    weekly cost marked."""
    curves = result.response_curves
    marginal = result.marginal
    names = list(channels) if channels is not None else list(dict.fromkeys(curves["channel"]))
    for name in names:
        part = curves[curves["channel"] == name]
        (line,) = ax.plot(part["weekly_cost"], part["incremental"], lw=1.5, label=str(name))
        if name in marginal.index:
            now = finite_number(marginal.loc[name, "current_weekly_cost"])
            if now is not None and len(part):
                y_now = float(np.interp(now, part["weekly_cost"], part["incremental"]))
                ax.plot([now], [y_now], marker="o", color=line.get_color())
    ax.set_xlabel(f"weekly activity cost ({currency})" if currency else "weekly activity cost")
    ax.set_ylabel(f"incremental {target_words(result)} a week")
    ax.set_title(title or "Response curves (dots: today's weekly cost)")
    ax.legend(fontsize=8, frameon=False)
    return ax
