r"""The weekly data a marketing mix model is fitted to, aggregated in the engine.

A marketing mix model (:mod:`kpi_helpers.mmm`) relates a weekly **target** to each channel's weekly
**activity cost**. Everything here filters and groups in the engine; only weekly rows (weeks x
channels at most) and per-channel totals reach pandas through :meth:`DataSource.fetch`.

Definitions (a week runs Monday to Sunday and is named by its Monday):

- **target** ``leads``: leads created in the week (every channel; a lead is new business by nature).
  ``pipeline``: the amount of new-business opportunities (``type`` new or empty) created in the week,
  in the source's currency.
- **activity cost** of a channel in a week: the ``spend`` rows of the channel dated in the week whose
  ``cost_type`` is one of :data:`~kpi_helpers.schema.ACTIVITY_COST_TYPES` (media and production: cost
  that varies with activity). Labour, software, overhead and sales cost are fixed and left out, as is
  cost not tied to a channel (``(unallocated)``). A channel is modelled when it has activity cost in
  the window. A week the spend table covers without a row for a channel is a real zero; a week it
  does not cover (a gap, before its first month, after its last) is never read as zero: the window
  starts after the last such week.
- **window**: the last ``weeks`` complete weeks that end on or before ``end`` and that both the
  target's table and ``spend`` cover (:mod:`kpi_helpers.coverage`). Fewer than ``min_weeks`` (a year:
  :data:`MIN_WEEKS`) is refused, as one season cannot be told from a channel's effect.
- **experiments** (optional table): lift tests as PyMC-Marketing's calibration takes them (``x`` and
  ``delta_x`` in weekly activity cost, ``delta_y`` and ``sigma`` in leads a week). They calibrate a
  model of leads only, only for channels the model has, and only when the measured change has the
  sign of the change in spend (the model's curves never fall with spend).

Funnel values per channel, over the same window (:func:`funnel_values`), turn target units into
revenue:

.. math::

    v_c = \frac{W_c}{n_c}

with :math:`W_c` the amount of new-business deals won and closed in the window whose lead came from
channel :math:`c`, and :math:`n_c` the leads of :math:`c` created in the window (target ``leads``:
revenue per lead, i.e. the lead-to-won rate times the average won amount, the flow definition of the
kit's ``lead_to_customer_rate``) or the new-business pipeline amount of :math:`c`'s leads created in the
window (target ``pipeline``: won revenue per unit of pipeline). Deals close months after their lead,
so both use deals closed in the window over leads (or pipeline) created in it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import ibis.expr.types as ir
import numpy as np
import pandas as pd

from .exceptions import KpiInputError
from .facts import _between, is_new_business
from .registry import HOW_TO_ADD
from .schema import ACTIVITY_COST_TYPES, UNALLOCATED
from .source import DataSource

__all__ = [
    "MIN_WEEKS",
    "TARGETS",
    "WeeklyData",
    "attributed_revenue",
    "funnel_values",
    "weekly_data",
]

#: what a model may be fitted to: target -> (the table it is counted from, its unit)
TARGETS: dict[str, tuple[str, str]] = {"leads": ("leads", "leads"), "pipeline": ("opportunities", "currency")}
#: fewest weeks a model is fitted to: one year, so a season is not read as a channel's effect
MIN_WEEKS = 52
DAY = dt.timedelta(days=1)
WEEK = dt.timedelta(days=7)
#: experiments columns, in the order PyMC-Marketing's lift-test calibration reads them
EXPERIMENT_COLUMNS = ("channel", "start", "end", "x", "delta_x", "delta_y", "sigma")


@dataclass(frozen=True)
class WeeklyData:
    """The weekly data of a window: the target and each channel's activity cost, plus the lift tests.

    ``y`` (the target a week: leads, or pipeline in currency) and ``spend`` (one column per channel in
    :attr:`channels`: activity cost a week, currency) share their index ``week`` (the Monday,
    ``datetime64[ns]``); all floats. ``experiments`` holds the usable lift tests
    (:data:`EXPERIMENT_COLUMNS`); ``notes`` says in words what was left out and why.
    """

    target: str
    y: pd.Series
    spend: pd.DataFrame
    channels: tuple[str, ...]
    experiments: pd.DataFrame
    notes: tuple[str, ...] = field(default=())

    @property
    def start(self) -> dt.date:
        """The window's first day (a Monday)."""
        return pd.Timestamp(self.y.index[0]).date()

    @property
    def end(self) -> dt.date:
        """The window's last day (a Sunday)."""
        return pd.Timestamp(self.y.index[-1]).date() + 6 * DAY

    @property
    def weeks(self) -> int:
        return len(self.y)

    @property
    def cost(self) -> pd.Series:
        """Activity cost per channel over the window (currency)."""
        return self.spend[list(self.channels)].sum()


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _week(col: ir.Value) -> ir.Value:
    """The Monday of ``col``'s week, as a date (ISO weeks: every engine truncates to Monday)."""
    return col.cast("timestamp").truncate("W").cast("date")


def _require(src: DataSource, table: str, why: str) -> None:
    if table not in src.present:
        raise KpiInputError(f"{why} needs `{table}`: {HOW_TO_ADD.get(table, f'add {table}.csv')}")


def _window(src: DataSource, end: dt.date, tables: tuple[str, ...], weeks: int, min_weeks: int) -> tuple[dt.date, int]:
    """First Monday and number of weeks of the window (see the module docstring)."""
    cov = src.coverage
    last = end
    for t in tables:
        tc = cov.tables[t]
        if not tc.covers_anything:
            raise KpiInputError(f"a marketing mix model needs dated rows in `{t}`; it has none")
        assert tc.last_date is not None
        last = min(last, tc.last_date)
    last_sunday = last - dt.timedelta(days=(last.weekday() + 1) % 7)
    first = last_sunday - dt.timedelta(days=7 * weeks - 1)
    start = first
    gaps: list[str] = []
    for t in tables:
        for span in cov.tables[t].missing(first, last_sunday):
            # the window starts after the last week this table does not cover
            start = max(start, _monday(span.end) + WEEK)
            gaps.append(f"`{t}` does not cover {span}")
    n = max(0, ((last_sunday - start).days + 1) // 7)
    if n < min_weeks:
        have = f"{n} complete week{'s' if n != 1 else ''} ({start} to {last_sunday})" if n else "no complete week"
        why = f" ({'; '.join(gaps[-3:])})" if gaps else ""
        raise KpiInputError(
            f"a marketing mix model needs at least {min_weeks} complete weeks that both "
            f"{' and '.join(f'`{t}`' for t in tables)} cover, ending by {end}; the data has {have}{why}: "
            "export more history (a year or more of weekly spend and target), or fill the gaps"
        )
    return start, n


def weekly_data(
    src: DataSource,
    end: dt.date,
    *,
    target: str = "leads",
    weeks: int = 104,
    min_weeks: int = MIN_WEEKS,
) -> WeeklyData:
    """The weekly target and activity cost per channel of the window ending by ``end``.

    Parameters
    ----------
    src : DataSource
        The validated data; needs ``spend`` and the target's table (``leads``, or ``opportunities``
        for ``pipeline``).
    end : date
        Last day the window may hold (a report passes its quarter's window end); the window ends on
        the last Sunday on or before it that the tables cover.
    target : {"leads", "pipeline"}
        Leads created a week, or new-business pipeline created a week (currency).
    weeks : int
        Weeks of history at most (default 104, two years).
    min_weeks : int
        Fewest weeks accepted (default :data:`MIN_WEEKS`).

    Returns
    -------
    WeeklyData

    Raises
    ------
    KpiInputError
        When a table is missing, the window has fewer than ``min_weeks`` covered weeks, no channel has
        activity cost, or a channel's activity cost does not vary (the message says what to do).
    """
    if target not in TARGETS:
        raise KpiInputError(
            f"unknown target {target!r}; a marketing mix model is fitted to one of {', '.join(TARGETS)}"
        )
    if isinstance(weeks, bool) or not isinstance(weeks, int) or weeks < 1:
        raise KpiInputError(f"`weeks` must be a whole number of weeks >= 1, got {weeks!r}")
    if weeks < min_weeks:
        raise KpiInputError(f"`weeks` ({weeks}) is fewer than the {min_weeks} weeks a mix model needs; ask for more")
    table = TARGETS[target][0]
    _require(src, "spend", "a marketing mix model (activity cost per channel and week)")
    _require(src, table, f"a marketing mix model of {target}")
    start, n = _window(src, end, ("spend", table), weeks, min_weeks)
    stop = start + n * WEEK  # exclusive
    index = pd.DatetimeIndex(pd.date_range(pd.Timestamp(start), periods=n, freq="7D").as_unit("ns"), name="week")

    y = _weekly_target(src, target, start, stop).reindex(index, fill_value=0.0)
    cost = _weekly_cost(src, start, stop)
    channels = tuple(sorted(c for c in cost.columns if cost[c].sum() > 0))
    if not channels:
        raise KpiInputError(
            f"no channel has activity cost ({', '.join(ACTIVITY_COST_TYPES)}) in `spend` from {start} to "
            f"{stop - DAY}: a mix model relates each channel's media and production cost to {target}; add those "
            "rows (cost types labor, software, overhead and sales are fixed cost and not modelled)"
        )
    cost = cost.reindex(index, fill_value=0.0)[list(channels)].astype(float)
    flat = [c for c in channels if np.ptp(cost[c].to_numpy()) <= 1e-9 * max(1.0, float(cost[c].abs().max()))]
    if flat:
        raise KpiInputError(
            f"the activity cost of {', '.join(f'`{c}`' for c in flat)} is the same every week from {start} to "
            f"{stop - DAY}; a mix model learns a channel's effect from changes in its spend, so a constant one "
            "cannot be told from the baseline: book its cost by the day or week it was spent, or leave its rows "
            "out of `spend`"
        )
    y = y.astype(float).rename(target)
    y.index.name = cost.index.name = "week"
    experiments, notes = _experiments(src, target, channels)
    return WeeklyData(target, y, cost, channels, experiments, tuple(notes))


def _weekly_target(src: DataSource, target: str, start: dt.date, stop: dt.date) -> pd.Series:
    if target == "leads":
        t = src.table("leads")
        t = t.filter(_between(t.created_at, start, stop))
        agg = t.group_by(week=_week(t.created_at)).aggregate(value=t.count().cast("float64"))
    else:
        o = src.table("opportunities")
        o = o.filter(is_new_business(o) & _between(o.created_at, start, stop))
        agg = o.group_by(week=_week(o.created_at)).aggregate(value=o.amount.sum().cast("float64"))
    df = src.fetch(agg, label=f"weekly {target}")
    return pd.Series(df["value"].to_numpy(float), index=pd.to_datetime(df["week"]).astype("datetime64[ns]"))


def _activity(src: DataSource, start: dt.date, stop: dt.date) -> ir.Table:
    s = src.table("spend")
    return s.filter(
        s.cost_type.isin(list(ACTIVITY_COST_TYPES)) & (s.channel != UNALLOCATED) & _between(s.date, start, stop)
    )


def _weekly_cost(src: DataSource, start: dt.date, stop: dt.date) -> pd.DataFrame:
    s = _activity(src, start, stop)
    agg = s.group_by(week=_week(s.date), channel=s.channel).aggregate(amount=s.amount.sum().cast("float64"))
    df = src.fetch(agg, label="weekly activity cost")
    if df.empty:
        return pd.DataFrame(index=pd.DatetimeIndex([], dtype="datetime64[ns]"))
    df["week"] = pd.to_datetime(df["week"]).astype("datetime64[ns]")
    df["channel"] = df["channel"].astype(str)
    out = df.pivot_table(index="week", columns="channel", values="amount", aggfunc="sum", fill_value=0.0)
    out.columns = [str(c) for c in out.columns]
    return out


def _experiments(src: DataSource, target: str, channels: tuple[str, ...]) -> tuple[pd.DataFrame, list[str]]:
    empty = pd.DataFrame(
        {c: pd.Series(dtype=object if c in ("channel", "start", "end") else float) for c in EXPERIMENT_COLUMNS}
    )
    if "experiments" not in src.present:
        return empty, []
    e = src.table("experiments")
    df = src.fetch(e.select(*EXPERIMENT_COLUMNS).order_by(["start", "channel"]), label="experiments")
    if df.empty:
        return empty, []
    df = df.astype({"channel": str})
    df["start"] = [pd.Timestamp(d).date() for d in df["start"]]
    df["end"] = [pd.Timestamp(d).date() for d in df["end"]]
    for c in ("x", "delta_x", "delta_y", "sigma"):
        df[c] = df[c].astype(float)
    notes = []
    if target != "leads":
        notes.append(
            f"the {len(df)} lift test(s) in `experiments` measure leads a week and do not calibrate a model of {target}"
        )
        return empty, notes
    other = sorted(set(df["channel"]) - set(channels))
    if other:
        notes.append(
            f"lift tests of {', '.join(f'`{c}`' for c in other)} are left out: the channel has no activity cost "
            "in the window"
        )
    kept = df[df["channel"].isin(channels)]
    # PyMC-Marketing's calibration assumes more spend never lowers the target (and a lift it can fit):
    # a test whose measured change has the other sign (noise around a small lift) or none cannot enter it
    against = kept["delta_x"] * kept["delta_y"] <= 0
    for _, r in kept[against].iterrows():
        notes.append(
            f"the lift test of `{r['channel']}` from {r['start']} measured {r['delta_y']:+g} leads a week for "
            f"{r['delta_x']:+g} of weekly cost: a change of the other sign (or none) cannot calibrate a model in "
            "which more spend never lowers the target, so it is left out"
        )
    return kept[~against].reset_index(drop=True)[list(EXPERIMENT_COLUMNS)], notes


def funnel_values(src: DataSource, start: dt.date, stop: dt.date, *, target: str = "leads") -> pd.DataFrame:
    r"""Revenue per target unit per channel over ``[start, stop)`` (see the module docstring).

    Returns
    -------
    DataFrame
        Indexed by channel (the lead's channel): ``units`` (leads created, or new-business pipeline of
        the channel's leads created, in the window), ``won_deals`` and ``won_amount`` (new-business deals
        of the channel's leads won and closed in the window, and their amount), ``won_amount_sq`` (sum of
        squared amounts, for the average's standard error) and ``value_per_unit``
        (:math:`v_c = W_c / n_c`, currency per lead or per currency unit of pipeline; NaN without units).
    """
    leads = src.table("leads").select(l_id="lead_id", l_channel="channel", l_created="created_at")
    if target == "leads":
        lw = leads.filter(_between(leads.l_created, start, stop))
        units = src.fetch(lw.group_by(channel=lw.l_channel).aggregate(units=lw.count().cast("float64")), label="leads")
    if "opportunities" in src.present:
        o = src.table("opportunities")
        o = o.filter(is_new_business(o) & o.lead_id.notnull())
        j = o.join(leads, o.lead_id == leads.l_id)
        won = j.filter((j.stage == "won") & _between(j.closed_at, start, stop))
        wonagg = src.fetch(
            won.group_by(channel=won.l_channel).aggregate(
                won_deals=won.count().cast("float64"),
                won_amount=won.amount.sum().cast("float64"),
                won_amount_sq=(won.amount * won.amount).sum().cast("float64"),
            ),
            label="won by lead channel",
        )
        if target != "leads":
            pj = j.filter(_between(j.created_at, start, stop))
            units = src.fetch(
                pj.group_by(channel=pj.l_channel).aggregate(units=pj.amount.sum().cast("float64")), label="pipeline"
            )
    else:
        wonagg = pd.DataFrame(columns=["channel", "won_deals", "won_amount", "won_amount_sq"])
        if target != "leads":
            units = pd.DataFrame(columns=["channel", "units"])
    out = (
        units.astype({"channel": str})
        .set_index("channel")
        .join(wonagg.astype({"channel": str}).set_index("channel"), how="outer")
    )
    out = out.astype(float).fillna(0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["value_per_unit"] = np.where(
            out["units"] > 0, out["won_amount"] / out["units"].where(out["units"] > 0), np.nan
        )
    if "opportunities" not in src.present:
        out["value_per_unit"] = np.nan
    out.index.name = "channel"
    return out.sort_index()


def attributed_revenue(src: DataSource, start: dt.date, stop: dt.date, *, model: str) -> pd.Series:
    """New-business lead revenue won and closed in ``[start, stop)`` credited to channels by ``model``.

    The kit's attribution (:func:`kpi_helpers.attribution.attribute` on
    :func:`~kpi_helpers.attribution.touch_journeys`, the own-channel rule for leads without touches), as
    :class:`~kpi_helpers.metrics.QuarterKpis` computes it for a quarter, here for the model's window.
    Empty without leads or opportunities.
    """
    from .attribution import NEED_NULLS, attribute, touch_journeys

    if not {"leads", "opportunities"} <= src.present:
        return pd.Series(dtype=float, name="attributed_revenue")
    opps = src.table("opportunities")
    journeys = touch_journeys(
        src.table("touchpoints") if "touchpoints" in src.present else None,
        src.table("leads"),
        opps.filter(is_new_business(opps)),
        start=start,
        end=stop,
        include_nulls=model in NEED_NULLS,
    )
    credit = attribute(journeys, model)
    return credit["value"].astype(float).rename("attributed_revenue")
