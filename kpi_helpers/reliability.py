"""How sure a quarter's numbers are: 90% intervals on its KPIs, and whether its changes are real.

This module gathers, for one :class:`~kpi_helpers.metrics.QuarterKpis`, the few aggregates each
interval needs (in the engine, memoised like every fact) and hands them to the statistics of
:mod:`kpi_helpers.uncertainty` and :mod:`kpi_helpers.changes`; :func:`metrics_entries` is what
``metrics.json`` gains.

**Intervals** (90%, seeded per KPI, so a report is reproducible and two engines agree):

===================================================  =================================================
KPI                                                  interval
===================================================  =================================================
``bounce_rate``, ``email_open_rate``                 binomial (Wilson): bounced sessions of sessions,
                                                     opens of sends
``visits_per_lead``, ``visit_to_lead_rate``,         bootstrap over the quarter's days (each day's
``avg_session_duration_s``, ``new_user_share``,      numerator and denominator resampled together, so
``goal_conversion_rate``                             day-to-day variation counts, not Poisson alone)
``value_per_lead``, ``value_per_visit``,             the won deals from leads resampled, and the leads
``lead_to_customer_rate``                            (visits) apart: the deals mostly come from
                                                     earlier leads (the rate: both counts Poisson)
``cost_per_lead``, ``cac``                           the leads (new customers) resampled, cost fixed
``marketing_roi``                                    the won deals from leads resampled, cost fixed
``average_yearly_revenue_per_customer``, ``clv``,    the year's customers resampled, and the new
``clv_to_cac``                                       customers behind CAC apart
per channel ``attributed_revenue``, ``roi``          the converting journeys resampled, each keeping
                                                     the credit the report's model gave it (every
                                                     model but Markov, whose credit is not per
                                                     journey); ``cost_per_lead``: the channel's leads
===================================================  =================================================

Counts and amounts (leads, revenue, cost) are what happened, not estimates: they get no interval.

**Changes** (:func:`kpi_changes`): each KPI's value per quarter over :data:`HISTORY_QUARTERS`
quarters (NaN where its data does not cover a quarter fully) goes to
:func:`kpi_helpers.changes.judge_changes`, which judges the quarter-on-quarter and year-on-year
change against the variation the KPI shows once its season is taken out, with the false-discovery
rate controlled across every KPI and comparison of the report.
"""

from __future__ import annotations

import datetime as dt
import math
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from . import facts
from . import uncertainty as U
from .attribution import SEPARATOR, Journeys, attribute
from .changes import ALPHA, judge_changes
from .facts import _between as between
from .formats import finite_number
from .registry import KPIS
from .schema import SALES_SOURCED, UNALLOCATED

if TYPE_CHECKING:
    from .metrics import QuarterKpis

__all__ = [
    "CHANNEL_KEYS",
    "HISTORY_QUARTERS",
    "INTERVAL_KPIS",
    "channel_intervals",
    "journey_credit",
    "kpi_changes",
    "kpi_history",
    "kpi_intervals",
    "metrics_entries",
]

#: quarters of history each change is judged against (the quarter itself included)
HISTORY_QUARTERS = 20
#: joins a journey's id to a channel in a label no channel name contains (see :func:`journey_credit`)
_JOIN = "\x1f"
#: per-channel numbers with an interval, in the order ``by_channel`` lists them
CHANNEL_KEYS = ("attributed_revenue", "cost_per_lead", "roi")
#: the KPIs with an interval (module docstring): ``metrics.json`` always carries their bounds, null
#: where the KPI is n/a
INTERVAL_KPIS = (
    "visits_per_lead",
    "visit_to_lead_rate",
    "value_per_lead",
    "value_per_visit",
    "lead_to_customer_rate",
    "bounce_rate",
    "avg_session_duration_s",
    "new_user_share",
    "goal_conversion_rate",
    "cost_per_lead",
    "cac",
    "average_yearly_revenue_per_customer",
    "clv",
    "clv_to_cac",
    "marketing_roi",
    "email_open_rate",
)


def _seed(key: str) -> int:
    """A KPI's own seed: stable across runs and engines, different between KPIs."""
    return zlib.crc32(key.encode())


# -------------------------------------------------------------------------------------------------
# What the intervals resample, from the engine


def daily(kq: QuarterKpis) -> pd.DataFrame:
    """The quarter's days so far (one row each, days without rows 0) with the sums the ratio KPIs are
    made of: ``visits``, ``engaged_sessions``, ``session_duration_s``, ``users``, ``new_users`` (from
    ``web_sessions``), ``leads`` (created that day), ``goal_completions``; a table the source lacks
    is left out."""
    src = kq.source
    start, end = facts.so_far(src, kq.quarter)
    index = pd.date_range(start, end - dt.timedelta(days=1), freq="D", name="day")
    out = pd.DataFrame(index=index)

    def add(table: str, date_col: str, **aggs: Any) -> None:
        if not kq.has(table):
            return
        t = src.table(table)
        t = t.filter(between(t[date_col], start, end))
        t = t.mutate(day=t[date_col].cast("date"))
        df = src.fetch(t.group_by("day").aggregate(**{k: f(t) for k, f in aggs.items()}), label=f"{table} by day")
        df["day"] = pd.to_datetime(df["day"])
        for col in aggs:
            out[col] = pd.to_numeric(df.set_index("day")[col], errors="coerce").reindex(index).fillna(0.0)

    add(
        "web_sessions",
        "date",
        visits=lambda t: t.sessions.sum(),
        engaged_sessions=lambda t: t.engaged_sessions.sum(),
        session_duration_s=lambda t: t.session_duration_s.sum(),
        users=lambda t: t.users.sum(),
        new_users=lambda t: t.new_users.sum(),
    )
    add("leads", "created_at", leads=lambda t: t.count())
    add("web_goals", "date", goal_completions=lambda t: t.completions.sum())
    return out.astype(float)


#: resampling units per bootstrap: the deals (customers) are dealt round-robin, in id order, into this many
#: groups, summed in the engine and returned as one row, so what reaches pandas does not grow with the data.
#: Up to this many units each group holds one (the plain bootstrap); beyond, each group is a random cluster
#: of units and the Poisson bootstrap over groups is the cluster bootstrap of the same total.
GROUPS = 64


def _grouped_sums(src: Any, t: Any, key: str, value: str, *, label: str) -> np.ndarray:
    """``(sum of value, units)`` of each non-empty group of :data:`GROUPS` (rows of ``t`` dealt round-robin
    in ``key`` order): a ``k x 2`` array, one engine row fetched whatever the rows of ``t``."""
    import ibis

    g = t.mutate(_g=(ibis.row_number().over(order_by=t[key]) % GROUPS).cast("int64"))
    aggs = {}
    for i in range(GROUPS):
        hit = g._g == i
        aggs[f"s{i}"] = hit.ifelse(g[value].cast("float64"), 0.0).sum()
        aggs[f"n{i}"] = hit.ifelse(1, 0).sum()
    row = src.fetch(g.aggregate(**aggs), label=label).iloc[0]
    sums = np.array([[float(row[f"s{i}"] or 0.0), float(row[f"n{i}"] or 0)] for i in range(GROUPS)])
    return sums[sums[:, 1] > 0]


def lead_deal_amounts(kq: QuarterKpis) -> np.ndarray:
    """Amounts of the new-business deals from leads won in the quarter (so far), the deals behind
    ``lead_revenue``, summed per resampling group (:data:`GROUPS`; one deal a group up to 64 deals)."""
    src = kq.source
    start, end = facts.so_far(src, kq.quarter)
    o = src.table("opportunities")
    won = o.filter(
        (o.stage == "won") & facts.is_new_business(o) & o.lead_id.notnull() & between(o.closed_at, start, end)
    )
    return _grouped_sums(src, won, "opportunity_id", "amount", label="won deals from leads")[:, 0]


def customer_revenues(kq: QuarterKpis) -> np.ndarray:
    """Won revenue (every deal type) of the accounts over the 4 quarters ending with the quarter, the
    customers behind the average yearly revenue per customer: ``(revenue, customers)`` per resampling
    group (:data:`GROUPS`), a ``k x 2`` array."""
    src = kq.source
    q = kq.quarter
    o = src.table("opportunities")
    w = o.filter((o.stage == "won") & between(o.closed_at, q.shift(-3).start, facts.so_far(src, q)[1]))
    per_account = w.group_by("account_id").aggregate(revenue=w.amount.sum())
    return _grouped_sums(src, per_account, "account_id", "revenue", label="revenue by customer")


def journey_credit(kq: QuarterKpis) -> tuple[pd.DataFrame, np.ndarray] | None:
    """The credit the report's model gives each channel from the converting journeys: a frame of one
    row per group of journeys (:data:`GROUPS`, dealt round-robin in journey order: one journey a group
    up to 64 journeys) or per distinct path of a path export, one column per channel (money), and the
    journeys each row of a path export stands for (1 for a group, resampled as one cluster). None under
    ``markov`` (its credit is not a sum over journeys).

    Computed by the model itself, in one query: each touch's channel is renamed to its group and
    channel together, so the model credits group-channel pairs, which are then split apart. Rule
    models credit each journey on its own and Shapley is additive over journeys, so the pairs add up
    to the channels' credit.
    """
    model = kq.attribution_model
    if model == "markov" or not kq._credited:
        return None

    def compute() -> pd.DataFrame:
        if kq.attribution_source == "paths":
            return _path_pair_credit(kq.source.fetch(kq.source.table("paths"), label="paths"), model)
        import ibis

        j = kq.converting_journeys
        t = j.table
        # Journeys dealt round-robin into GROUPS groups (as the deals are): the model credits group-channel
        # pairs, so the result does not grow with the journeys; each group is resampled as one cluster.
        group = (ibis.dense_rank().over(order_by=t.journey_id) % GROUPS).cast("string")
        # credited "by campaign" so that `channel` keeps the real names (last non-direct reads them)
        relabelled = Journeys(
            t.mutate(campaign=ibis.literal("g").concat(group, _JOIN, t.channel)), j.unattributed, j.has_nulls
        )
        pairs = attribute(relabelled, model, by="campaign")["value"]
        return pd.DataFrame({"pair": pairs.index.astype(str), "value": pairs.to_numpy(dtype=float), "count": 1.0})

    pairs = kq._memo("journey credit", model, kq.attribution_source, compute=compute)
    if pairs.empty:
        return pd.DataFrame(), np.zeros(0)
    split = pairs["pair"].str.split(_JOIN, n=1, expand=True)
    frame = pairs.assign(journey=split[0], channel=split[1])
    wide = frame.pivot_table(index="journey", columns="channel", values="value", aggfunc="sum", fill_value=0.0)
    wide = wide.sort_index().sort_index(axis=1)  # the same rows whatever the engine's order
    counts = frame.groupby("journey")["count"].first().reindex(wide.index).to_numpy(dtype=float)
    return wide / counts[:, None], counts


def _path_pair_credit(paths: pd.DataFrame, model: str) -> pd.DataFrame:
    """:func:`journey_credit` of a conversion-path export: each row's channels renamed to the row and
    channel together (the row stands for its ``conversions`` journeys)."""
    p = paths[pd.to_numeric(paths["conversions"], errors="coerce").fillna(0) > 0].reset_index(drop=True)
    if p.empty:
        return pd.DataFrame(columns=["pair", "value", "count"])
    rows = [f"p{i:09d}" for i in range(len(p))]
    relabelled = pd.DataFrame(
        {
            "path": [
                SEPARATOR.join(f"{r}{_JOIN}{c.strip()}" for c in str(path).split(">"))
                for r, path in zip(rows, p["path"], strict=True)
            ],
            "conversions": p["conversions"].astype(float),
            "value": pd.to_numeric(p["value"], errors="coerce").fillna(0.0) if "value" in p else 0.0,
        }
    )
    opts = {"direct": [f"{r}{_JOIN}Direct" for r in rows]} if model == "last_non_direct" else {}
    pairs = attribute(relabelled, model, **opts)["value"]
    counts = dict(zip(rows, p["conversions"].astype(float), strict=True))
    return pd.DataFrame(
        {
            "pair": pairs.index.astype(str),
            "value": pairs.to_numpy(dtype=float),
            "count": [counts[x.split(_JOIN, 1)[0]] for x in pairs.index.astype(str)],
        }
    )


# -------------------------------------------------------------------------------------------------
# Intervals


def kpi_intervals(kq: QuarterKpis, m: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """The 90% interval of each KPI of ``m`` (the quarter's metrics) that has one (module docstring);
    a KPI that is n/a in ``m`` gets none."""

    def defined(*keys: str) -> bool:
        return all(m.get(k) is not None for k in keys)

    out: dict[str, tuple[float, float]] = {}
    r = kq.row
    wanted = [k for k in KPIS if defined(k)]
    if not wanted:
        return out
    day = daily(kq) if any(k in wanted for k in _DAILY) else pd.DataFrame()
    for key, (num, den) in _DAILY.items():
        if key in wanted and num in day and den in day:
            out[key] = U.ratio_interval(day[num], day[den], seed=_seed(key))
    if "visits_per_lead" in wanted and "leads" in day and "visits" in day:
        low, high = U.ratio_interval(day["leads"], day["visits"], seed=_seed("visit_to_lead_rate"))
        out["visits_per_lead"] = (1 / high if high > 0 else math.nan, 1 / low if low > 0 else math.nan)
    if "bounce_rate" in wanted and 0 <= float(r.engaged_sessions) <= float(r.visits):
        visits, engaged = float(r.visits), float(r.engaged_sessions)
        out["bounce_rate"] = U.proportion_interval(visits - engaged, visits)
    if "email_open_rate" in wanted and 0 <= float(r.email_opens) <= float(r.email_sends):
        out["email_open_rate"] = U.proportion_interval(float(r.email_opens), float(r.email_sends))
    if "cost_per_lead" in wanted:
        out["cost_per_lead"] = U.cost_per_unit_interval(float(r.marketing_cost), float(r.leads), seed=_seed("cpl"))
    if "cac" in wanted:
        cost = float(r.marketing_cost) + float(r.sales_cost)
        out["cac"] = U.cost_per_unit_interval(cost, float(r.new_customers), seed=_seed("cac"))
    if any(k in wanted for k in ("marketing_roi", "value_per_lead", "value_per_visit", "lead_to_customer_rate")):
        deals = lead_deal_amounts(kq)
        if "marketing_roi" in wanted:
            out["marketing_roi"] = U.roi_interval(deals, float(r.marketing_cost), seed=_seed("roi"))
        for key, units in (("value_per_lead", "leads"), ("value_per_visit", "visits")):
            if key in wanted:
                out[key] = U.amount_per_unit_interval(deals, float(r[units]), seed=_seed(key))
        if "lead_to_customer_rate" in wanted:
            out["lead_to_customer_rate"] = U.count_ratio_interval(
                float(r.lead_won_deals), float(r.leads), seed=_seed("lead_to_customer_rate")
            )
    if defined("average_yearly_revenue_per_customer"):
        s = kq.settings
        cost = float(r.marketing_cost) + float(r.sales_cost) if defined("cac") else 0.0
        groups = customer_revenues(kq)
        out.update(
            U.clv_to_cac_interval(
                groups[:, 0],
                customers=groups[:, 1],
                factor=s.gross_margin * s.customer_lifetime_years,
                cost=cost,
                new_customers=float(r.new_customers) if defined("cac") else 0.0,
                seed=_seed("clv"),
            )
        )
    return {k: v for k, v in out.items() if defined(k)}


#: ratio KPIs bootstrapped over the quarter's days: KPI -> (numerator, denominator) of :func:`daily`
_DAILY = {
    "visit_to_lead_rate": ("leads", "visits"),
    "avg_session_duration_s": ("session_duration_s", "visits"),
    "new_user_share": ("new_users", "users"),
    "goal_conversion_rate": ("goal_completions", "visits"),
}


def channel_intervals(kq: QuarterKpis) -> pd.DataFrame:
    """Per channel (``kq.channels``' rows): ``attributed_revenue_low/high`` and ``roi_low/high``
    (journeys resampled, :func:`journey_credit`; none under Markov), ``cost_per_lead_low/high``
    (the channel's leads resampled). NaN where there is no interval: no cost, the ``(unallocated)``
    and ``(sales-sourced)`` rows, which are no channel one invests in. Memoised per quarter and model."""
    return kq._memo("channel intervals", kq.attribution_model, kq.attribution_source, compute=lambda: _channels(kq))


def _channels(kq: QuarterKpis) -> pd.DataFrame:
    ch = kq.channels
    out = pd.DataFrame(index=ch.index, columns=[f"{k}_{b}" for k in CHANNEL_KEYS for b in ("low", "high")], dtype=float)
    invest = ~ch.index.isin([UNALLOCATED, SALES_SOURCED])
    for name, row in ch[invest].iterrows():
        if not math.isnan(row.cost_per_lead):
            out.loc[name, ["cost_per_lead_low", "cost_per_lead_high"]] = U.cost_per_unit_interval(
                float(row.marketing_cost), float(row.leads), seed=_seed(f"cpl:{name}")
            )
    credit = journey_credit(kq)
    if credit is None or credit[0].empty:
        return out
    frame, counts = credit
    ci = U.credit_intervals(frame, counts=counts, seed=_seed("credit"))
    for name in ch.index:
        low, high = ci.loc[name, ["low", "high"]] if name in ci.index else (0.0, 0.0)
        out.loc[name, ["attributed_revenue_low", "attributed_revenue_high"]] = (low, high)
        cost = float(ch.loc[name, "marketing_cost"])
        if invest[ch.index.get_loc(name)] and not math.isnan(ch.loc[name, "roi"]) and cost > 0:
            out.loc[name, ["roi_low", "roi_high"]] = ((low - cost) / cost, (high - cost) / cost)
    return out


# -------------------------------------------------------------------------------------------------
# Changes


def kpi_history(kq: QuarterKpis, quarters: int = HISTORY_QUARTERS) -> pd.DataFrame:
    """Each registry KPI (those computed from quarter facts) per quarter, the ``quarters`` ending with
    ``kq``'s, oldest first; NaN where the KPI's data does not cover a quarter fully (n/a or partial:
    a part of a quarter is not compared with whole ones)."""
    q = kq.quarter
    quarters_ = [q.shift(-i) for i in reversed(range(quarters))]
    df = facts.quarterly_facts(kq.source, quarters_[0], q)
    out = {}
    for key, kpi in KPIS.items():
        if kpi.compute is None:
            continue
        values = df[key] if key in df else pd.Series(kpi.compute(cast(Mapping[str, Any], df)), index=df.index)
        ok = np.array([kq.availability(kpi, x)[0] == "ok" for x in quarters_])
        out[key] = pd.to_numeric(values, errors="coerce").astype("float64").where(ok)
    return pd.DataFrame(out, index=df.index)


def kpi_changes(kq: QuarterKpis, *, alpha: float = ALPHA) -> pd.DataFrame:
    """The quarter's changes judged against history (:func:`kpi_helpers.changes.judge_changes`) for
    every KPI whose data covers the quarter fully; ``real`` is None (not False) where there is too
    little history to judge."""
    history = kpi_history(kq)
    now = history.iloc[-1]
    history = history.loc[:, now.notna()]
    if history.empty:
        return pd.DataFrame()
    out = judge_changes(history, alpha=alpha)
    out["real"] = [bool(r) if pd.notna(p) else None for r, p in zip(out["real"], out["p_value"], strict=True)]
    return out


def _changes_entry(kq: QuarterKpis, changes: pd.DataFrame, alpha: float) -> dict[str, Any]:
    q = kq.quarter
    reference = {"quarter_on_quarter": q.previous().label, "year_on_year": q.year_ago().label}
    kpis: dict[str, dict[str, Any]] = {}
    for index, row in changes.iterrows():
        key, comparison = cast(tuple[str, str], index)
        kpis.setdefault(str(key), {})[str(comparison)] = {
            "reference": reference[str(comparison)],
            "value": finite_number(row["current"]),
            "reference_value": finite_number(row["reference"]),
            "change": finite_number(row["change"]),
            "scale": row["scale"],
            "p_adjusted": finite_number(row["p_adjusted"]),
            "real": row["real"],
            "words": row["words"],
        }
    return {"alpha": alpha, "history_quarters": HISTORY_QUARTERS, "kpis": kpis}


# -------------------------------------------------------------------------------------------------
# What metrics.json gains


def metrics_entries(kq: QuarterKpis, m: dict[str, Any]) -> dict[str, Any]:
    """What ``metrics.json`` gains for the quarter: ``intervals`` (``{<kpi>_low, <kpi>_high}`` of every
    KPI of :data:`INTERVAL_KPIS`, None where it is n/a), ``by_channel`` (per channel, the ``_low``/``_high`` of
    :data:`CHANNEL_KEYS`) and ``changes`` (``{"alpha", "history_quarters", "kpis": {kpi:
    {"quarter_on_quarter": {...}, "year_on_year": {...}}}}``, each with ``reference`` (the quarter
    compared with), ``value`` and ``reference_value``, ``change`` (relative, or a difference when
    ``scale`` is ``difference``), ``p_adjusted``, ``real`` (None: not judged) and ``words``).
    Memoised per quarter, model and data, so the report's notebooks compute it once."""

    def compute() -> dict[str, Any]:
        intervals = kpi_intervals(kq, m)
        entries: dict[str, float | None] = {}
        for key in INTERVAL_KPIS:
            entries.update(U.interval_entries(key, intervals.get(key)))
        per_channel = channel_intervals(kq)
        by_channel = {
            str(ch): {c: finite_number(v) for c, v in row.items()} for ch, row in per_channel.iterrows() if str(ch)
        }
        return {
            "intervals": entries,
            "by_channel": by_channel,
            "changes": _changes_entry(kq, kpi_changes(kq), ALPHA),
        }

    return kq._memo("uncertainty", kq.attribution_model, kq.quarter.label, compute=compute)
