"""The tables the report pages show, computed: a quarter broken down by channel, campaign, device,
goal, landing page, funnel stage, fiscal quarter and cost type.

Each function builds one table from the facts (:mod:`kpi_helpers.facts`), the KPI formulas
(:mod:`kpi_helpers.kpis`) and a quarter's :class:`~kpi_helpers.metrics.QuarterKpis`, so the notebooks
select and show but never compute. Rates are fractions (0-1), money is in the source's currency,
counts are counts; the registry (:mod:`kpi_helpers.registry`) names each column's label and unit,
and :mod:`kpi_helpers.tables` and :mod:`kpi_helpers.charts` present them. A value the data does not
give is NaN (shown as n/a), never 0.

Statuses are :mod:`kpi_helpers.status`'s: a row that is a KPI of ``metrics()["kpis"]`` takes that
row's status (:func:`kpi_helpers.status.of_row`); any other row against a target is judged by
:func:`kpi_helpers.status.judge`, from the baseline its target was set from.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from . import facts
from . import goals as G
from . import kpis as K
from .attribution import NOT_SET
from .formats import is_missing
from .metrics import _PLAN_FACT as PLAN_FACTS  # reverse-funnel stage -> the fact it is judged on
from .schema import SALES_SOURCED, UNALLOCATED
from .status import judge, of_row

if TYPE_CHECKING:
    from .metrics import QuarterKpis

__all__ = [
    "ALL_CHANNELS",
    "LANDING_PAGES",
    "MIN_COMPLETIONS",
    "PLAN_FACTS",
    "attribution_ranks",
    "campaign_economics",
    "channel_economics",
    "channel_funnel",
    "channels_only",
    "content_table",
    "funnel_requirements",
    "goal_conversion",
    "goal_scenario",
    "growth_years",
    "has_credit",
    "landing_pages",
    "marketing_spend",
    "pacing_rows",
    "quarterly_targets",
    "rank_movers",
    "revenue_by_year",
    "revenue_progress",
    "spend_by_cost_type",
    "visit_to_lead_by_channel",
    "web_table",
    "with_spend",
]

#: label of the all-channels row of :func:`channel_funnel`
ALL_CHANNELS = "All channels"
#: landing pages a page shows, best conversion rate first (table and chart alike)
LANDING_PAGES = 10
#: completions a landing page needs before its conversion rate is shown (a rate on 1 or 2 says little)
MIN_COMPLETIONS = 5
#: reverse-funnel stage -> the trailing rate that leads from it to the stage below (see QuarterKpis.funnel_plan)
_STAGE_RATES = {
    "lead_revenue": "lead_revenue_share",
    "won_deals": "avg_deal_size",
    "opportunities": "win_rate",
    "sqls": "sql_to_opportunity_rate",
    "mqls": "mql_to_sql_rate",
    "leads": "lead_to_mql_rate",
    "visits": "visit_to_lead_rate",
}
_COHORT_STAGES = ("leads", "mqls", "sqls", "opportunities", "won")


# -------------------------------------------------------------------------------------------------
# Goals (01-goal-setting, 00-quarterly-summary)


def goal_scenario(kq: QuarterKpis, *, uplift: float) -> QuarterKpis:
    """``kq`` with another growth uplift (what-if): ``goal`` and ``funnel_plan`` are recomputed,
    the facts already fetched stay cached, so a scenario runs no engine query."""
    alt = copy.copy(kq)
    for key in ("goal", "funnel_plan"):
        alt.__dict__.pop(key, None)
    alt.settings = dataclasses.replace(kq.settings, growth_uplift=float(uplift))
    return alt


def revenue_by_year(kq: QuarterKpis) -> pd.DataFrame:
    r"""Revenue of each complete fiscal year (money) and its growth on the year before (a fraction),
    indexed by ``FY2025`` labels.

    .. math:: g_y = R_y / R_{y-1} - 1

    Growth is NaN for the first year and after a year the `revenue` table lacks (never 0).
    """
    history = kq.revenue_history.astype(float)
    out = history.to_frame("revenue")
    out["yoy_growth"] = G.yoy_growth(history).reindex(history.index) if len(history) else []
    out.index = pd.Index([f"FY{y}" for y in history.index], name="fiscal_year")
    return out


def growth_years(kq: QuarterKpis) -> int:
    """How many years of growth the goal's average growth is taken over (the lookback of
    ``goals.yml``, or fewer when the revenue history is shorter); 0 without a goal."""
    if kq.goal_problem:
        return 0
    return len(kq.goal.growth_history.dropna().tail(kq.settings.growth_lookback_years))


def revenue_progress(kq: QuarterKpis, m: Mapping[str, Any]) -> pd.DataFrame:
    r"""The quarter and the fiscal year so far against the revenue goal (money).

    Rows: ``revenue`` (the quarter against its target: the ``revenue`` KPI row of ``m["kpis"]``, its
    baseline and status), ``revenue_fiscal_year_to_date`` (the fiscal year's quarters up to this one
    against the sum of their targets, judged from the same quarters a year earlier, as the quarter is
    from the quarter a year earlier) and ``revenue_target_fiscal_year`` (the year so far against the
    whole year's target: progress through the year, not judged). Columns ``actual``, ``target``,
    ``baseline``, ``status`` (None where not judged).

    .. math::

        T_{\text{to date}} = \sum_{q \le q_0} T_q, \qquad B_{\text{to date}} = \sum_{q \le q_0} R_q^{\text{before}}

    Empty when there is no goal (``kq.goal_problem`` says why).
    """
    cols = ["actual", "target", "baseline", "status"]
    if kq.goal_problem:
        return pd.DataFrame(columns=cols, dtype=object)
    q = kq.quarter
    goal = kq.goal
    row = _kpi_row(m, "revenue") or {}
    to_date = float(goal.quarterly[goal.quarterly.index <= q.q].sum())
    ytd = m.get("revenue_fiscal_year_to_date")
    before = _year_before_to_date(kq)
    rows = {
        "revenue": [m.get("revenue"), m.get("revenue_target"), row.get("baseline"), of_row(row)],
        "revenue_fiscal_year_to_date": [ytd, to_date, before, judge(ytd, to_date, baseline=before)],
        "revenue_target_fiscal_year": [ytd, m.get("revenue_target_fiscal_year"), None, None],
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols)


def _year_before_to_date(kq: QuarterKpis) -> float | None:
    """Revenue of the previous fiscal year's quarters up to this quarter's number; None unless each
    of them has all its months in the `revenue` table."""
    q = kq.quarter
    hist = kq.revenue_quarters
    rows = hist[(hist["fiscal_year"] == q.fiscal_year - 1) & (hist["q"] <= q.q)]
    if len(rows) < q.q or (rows["months"] < 3).any():
        return None
    return float(rows["revenue"].sum())


def quarterly_targets(kq: QuarterKpis, m: Mapping[str, Any]) -> pd.DataFrame:
    r"""The fiscal year's quarters: target, share of the year, actual revenue, attainment and status.

    .. math:: \text{share of year}_q = T_q / T_{\text{year}}, \qquad \text{attainment}_q = R_q / T_q

    ``actual`` is NaN for a quarter not done or with months missing in the `revenue` table (no bar,
    never 0). Each done quarter is judged (:func:`kpi_helpers.status.judge`) from the same quarter a
    year earlier, as the ``revenue`` KPI is; the report's quarter takes its KPI row's status, so the
    chart, the table and the KPI table agree. Indexed by quarter label (``2026Q3``); empty without a goal.
    """
    cols = ["target", "share_of_year", "actual", "attainment", "baseline", "status"]
    if kq.goal_problem:
        return pd.DataFrame(columns=cols)
    goal, q = kq.goal, kq.quarter
    hist = kq.revenue_quarters.set_index(["fiscal_year", "q"])
    out = goal.quarterly.astype(float).to_frame("target")
    out["share_of_year"] = K.safe_divide(out["target"], float(goal.target_revenue))
    out["actual"] = [_complete_quarter(hist, goal.fiscal_year, x) for x in out.index]
    out["attainment"] = K.progress(out["actual"], out["target"])
    out["baseline"] = [_complete_quarter(hist, goal.fiscal_year - 1, x) for x in out.index]
    out["status"] = [
        judge(a, t, baseline=b) if not is_missing(a) else None
        for a, t, b in zip(out["actual"], out["target"], out["baseline"], strict=True)
    ]
    if q.q in out.index and not is_missing(out.loc[q.q, "actual"]):
        out.loc[q.q, "status"] = of_row(_kpi_row(m, "revenue") or {})
    out.index = pd.Index([q.fiscal.quarters[x - 1].label for x in out.index], name="quarter")
    return out[cols]


def _complete_quarter(hist: pd.DataFrame, fiscal_year: int, q: int) -> float:
    if (fiscal_year, q) not in hist.index:
        return math.nan
    r = cast(pd.Series, hist.loc[(fiscal_year, q)])  # one row: (fiscal year, quarter) is unique
    return float(r["revenue"]) if r["months"] >= 3 else math.nan


def funnel_requirements(kq: QuarterKpis, m: Mapping[str, Any]) -> pd.DataFrame:
    r"""The reverse funnel stage by stage, top of the funnel first: the trailing rate each stage's
    requirement was divided by, what the quarter's revenue target requires, the actual, and a status.

    .. math:: \text{required}_{s} = \text{required}_{s+1} / r_s \quad (\text{see QuarterKpis.funnel\_plan})

    Columns: ``fact`` (what the stage counts: ``lead_won_deals`` for won deals from leads), ``rate``
    (the rate's key, e.g. ``mql_to_sql_rate``), ``rate_value`` (a fraction; money for
    ``avg_deal_size``), ``required``, ``actual`` (money for ``lead_revenue``, else counts),
    ``baseline``, ``kpi`` (True when a KPI row of ``m["kpis"]`` tracks the stage against this very
    requirement: the row's baseline and status are taken, so the chart and the KPI table agree), and
    ``status`` (otherwise judged from the stage's actual a year earlier, as the default KPIs are).
    ``attrs["year"]`` names the year the rates come from, ``attrs["reasons"]`` why a stage has no
    requirement.
    """
    plan = kq.funnel_plan
    rates = kq.trailing
    year_ago = kq.quarter.year_ago()
    rows = []
    for stage in reversed(plan.index):
        required, actual = plan.loc[stage, "required"], plan.loc[stage, "actual"]
        row = _kpi_row(m, stage)
        tracked = row is not None and _same(row.get("target"), required)
        baseline = row.get("baseline") if tracked and row else kq._actual(year_ago, stage)
        rows.append(
            {
                "stage": stage,
                "fact": PLAN_FACTS[stage],
                "rate": _STAGE_RATES[stage],
                "rate_value": float(rates[_STAGE_RATES[stage]]),
                "required": float(required),
                "actual": float(actual),
                "baseline": math.nan if baseline is None else float(baseline),
                "kpi": tracked,
                "status": of_row(row) if tracked and row else judge(actual, required, baseline=baseline),
            }
        )
    out = pd.DataFrame(rows).set_index("stage")
    out.attrs.update(year=str(rates.name), reasons=dict(plan.attrs.get("reasons", {})))
    return out


def _same(a: Any, b: Any) -> bool:
    return not is_missing(a) and not is_missing(b) and math.isclose(float(a), float(b), rel_tol=1e-9)


def _kpi_row(m: Mapping[str, Any], metric: str) -> dict[str, Any] | None:
    """The first KPI row of ``m["kpis"]`` on ``metric``."""
    return next((k for k in m.get("kpis", []) if k.get("metric") == metric), None)


def pacing_rows(kq: QuarterKpis, m: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The KPI rows of a quarter in progress (``m`` its metrics, ``kq`` its QuarterKpis) that have a
    run-rate projection and a target, revenue first; each row as ``metrics()`` gives it (status
    included), plus a ``note`` when its projection is missing (why, from :attr:`QuarterKpis.pacing`).
    Empty for a complete quarter."""
    pace = kq.pacing
    if not pace:
        return []
    out = []
    for row in m.get("kpis", []):
        metric = row.get("metric")
        fact = PLAN_FACTS.get(metric or "", metric)
        if fact not in pace or is_missing(row.get("target")):
            continue
        note = "" if not is_missing(pace[fact]) else getattr(pace[fact], "reason", "") or "no projection yet"
        if note and metric != "revenue":
            continue  # nothing to draw; only the goal itself is shown without a projection
        out.append({**row, "note": note})
    return sorted(out, key=lambda r: r.get("metric") != "revenue")


# -------------------------------------------------------------------------------------------------
# Channels, funnel, web, content (02-traffic-and-lead-value, 03-channel-conversion)


def channel_funnel(kq: QuarterKpis, *, by: str = "channel") -> pd.DataFrame:
    """Funnel of the leads created in the quarter per ``by`` (channel or campaign), followed to the
    data's end (:func:`facts.cohort_funnel`), with stage conversion rates (fractions) and median days
    between stages. The last row, :data:`ALL_CHANNELS`, sums the counts (its medians are NaN:
    ``facts.cohort_funnel(by=None)`` fails on ibis 12). A stage the export does not record (no SQL
    dates, no deals) is NaN, never 0 leads reaching it."""
    q = kq.quarter
    f = facts.cohort_funnel(kq.source, *facts.so_far(kq.source, q), by=by)
    total = f[list(_COHORT_STAGES)].sum().to_frame(ALL_CHANNELS).T
    f = pd.concat([f, total]) if len(f) else total
    f.index.name = by
    f[list(_COHORT_STAGES)] = f[list(_COHORT_STAGES)].astype(float)
    filled = kq.coverage.filled.get("leads", frozenset())
    unknown = {"mqls": "mql_at" not in filled, "sqls": "sql_at" not in filled}
    unknown |= dict.fromkeys(("opportunities", "won"), not kq.has("opportunities"))
    timing = {
        "mqls": ("days_lead_to_mql", "days_mql_to_sql"),
        "sqls": ("days_mql_to_sql", "days_sql_to_opportunity"),
        "opportunities": ("days_sql_to_opportunity", "days_opportunity_to_won"),
        "won": ("days_opportunity_to_won",),
    }
    for stage, missing in unknown.items():
        if missing:
            f[stage] = float("nan")
            f.loc[:, [c for c in timing[stage] if c in f.columns]] = float("nan")
    for a, b, name in (
        ("leads", "mqls", "lead_to_mql"),
        ("mqls", "sqls", "mql_to_sql"),
        ("sqls", "opportunities", "sql_to_opportunity"),
        ("opportunities", "won", "opportunity_to_won"),
        ("leads", "sqls", "lead_to_sql"),
        ("leads", "won", "lead_to_won"),
    ):
        f[f"{name}_rate"] = K.conversion_rate(f[b].astype(float), f[a].astype(float))
        _set_bounds(f, f"{name}_rate", _wilson(f[b], f[a]))
    return f


def _set_bounds(frame: pd.DataFrame, key: str, bounds: list[tuple[float, float]]) -> None:
    """Set ``frame``'s columns ``key_low`` and ``key_high`` (in place) from one ``(low, high)`` per row."""
    frame[f"{key}_low"] = [float(lo) for lo, _ in bounds]
    frame[f"{key}_high"] = [float(hi) for _, hi in bounds]


def _wilson(successes: pd.Series, trials: pd.Series) -> list[tuple[float, float]]:
    """The 90% Wilson interval (:func:`kpi_helpers.uncertainty.proportion_interval`) of each row's
    ``successes / trials``: a stage rate is the share of a stage's leads that reached the next, a
    proportion of a subset. NaN where a count is unknown or not nested (more successes than trials)."""
    from .uncertainty import NAN_PAIR, proportion_interval

    return [
        proportion_interval(float(k), float(n)) if not (is_missing(k) or is_missing(n)) and 0 <= k <= n else NAN_PAIR
        for k, n in zip(successes, trials, strict=True)
    ]


def channels_only(funnel: pd.DataFrame) -> pd.DataFrame:
    """``funnel`` without its :data:`ALL_CHANNELS` row."""
    return funnel.drop(index=ALL_CHANNELS, errors="ignore")


def web_table(kq: QuarterKpis, by: str = "device") -> pd.DataFrame:
    """Web metrics of the quarter per ``by`` (device, channel, landing_page, ...): sessions and their
    share, user-days new and returning, bounce rate, average session duration (seconds)."""
    w = facts.web_breakdown(kq.source, kq.quarter, by)
    w["share"] = K.safe_divide(w.sessions.astype(float), float(w.sessions.sum()), reason="no sessions")
    w["returning_users"] = K.returning_users(w.users, w.new_users)
    w["new_user_share"] = K.new_user_share(w.new_users, w.users)
    w["bounce_rate"] = K.bounce_rate(w.engaged_sessions, w.sessions)
    w["avg_session_duration_s"] = K.avg_session_duration(w.session_duration_s, w.sessions)
    return w


def content_table(kq: QuarterKpis) -> pd.DataFrame:
    r"""Content reach of the quarter per asset type: assets, views, e-mails sent and opened, attendees
    (counts) and the e-mail open rate (a fraction).

    .. math:: \text{e-mail open rate} = \text{opens} / \text{sends}

    A column the `content` export leaves empty in every row (no e-mail columns, say) is NaN, and so
    is the open rate that needs it: n/a, never 0. No sends gives an open rate of NaN as well.
    """
    c = facts.content_breakdown(kq.source, kq.quarter).astype(float)
    filled = kq.coverage.filled.get("content")
    if filled is not None:
        for col in ("views", "email_sends", "email_opens", "attendees"):
            if col in c and col not in filled:
                c[col] = math.nan
    c["email_open_rate"] = K.email_open_rate(c["email_opens"], c["email_sends"])
    return c


def visit_to_lead_by_channel(kq: QuarterKpis) -> pd.DataFrame:
    r"""Visits and leads of the quarter per channel with visits, the visit-to-lead ratio (``39:1``,
    text) and rate (a fraction), best rate first.

    .. math:: \text{visit-to-lead rate} = \text{leads} / \text{visits}

    Leads are those the channel brought and visits its sessions; channels without visits (offline
    events, sales-sourced) have no rate and are left out.
    """
    ch = kq.channels
    ch = ch[ch["visits"] > 0][["visits", "leads"]].astype(float)
    ch["visit_to_lead_ratio"] = K.ratio_label(ch["visits"], ch["leads"])
    ch["visit_to_lead_rate"] = K.visit_to_lead_rate(ch["visits"], ch["leads"])
    _set_bounds(ch, "visit_to_lead_rate", _count_ratios(ch["leads"], ch["visits"], "visit_to_lead"))
    return ch.sort_values("visit_to_lead_rate", ascending=False, kind="stable")


def _count_ratios(numerator: pd.Series, denominator: pd.Series, name: str) -> list[tuple[float, float]]:
    """The 90% interval of each row's ratio of two counts counted apart
    (:func:`kpi_helpers.uncertainty.count_ratio_interval`, seeded per row label)."""
    import zlib

    from .uncertainty import NAN_PAIR, count_ratio_interval

    return [
        count_ratio_interval(float(k), float(n), seed=zlib.crc32(f"{name}:{label}".encode()))
        if not (is_missing(k) or is_missing(n))
        else NAN_PAIR
        for label, k, n in zip(numerator.index, numerator, denominator, strict=True)
    ]


def goal_conversion(
    kq: QuarterKpis,
    *,
    by_landing_page: bool = False,
    top: int = LANDING_PAGES,
    min_completions: int = MIN_COMPLETIONS,
) -> pd.DataFrame:
    r"""Site goal completions of the quarter per goal (and landing page) with the goal conversion rate.

    .. math:: \text{conversion rate} = \text{completions} / \text{sessions}

    ``sessions`` are the sessions of that landing page (of the site, per goal only). Per landing page,
    only pages with at least ``min_completions`` count and the ``top`` of them by rate are kept (the
    engine filters: a big site has tens of thousands of landing pages).
    """
    g = facts.goal_facts(
        kq.source, kq.quarter, by_landing_page=by_landing_page, min_completions=min_completions, top=top
    )
    g["conversion_rate"] = K.goal_conversion_rate(g.completions.astype(float), g.sessions.astype(float))
    labels = (g["goal"].astype(str) + "|" + g["landing_page"].astype(str)) if by_landing_page else g.index.astype(str)
    completions, sessions = g["completions"].set_axis(labels), g["sessions"].set_axis(labels)
    _set_bounds(g, "conversion_rate", _count_ratios(completions, sessions, "goal"))
    return g.set_index(["goal", "landing_page"]) if by_landing_page else g


def landing_pages(kq: QuarterKpis, *, top: int = LANDING_PAGES, min_completions: int = MIN_COMPLETIONS) -> pd.DataFrame:
    """The ``top`` landing pages by goal conversion rate among those with at least
    ``min_completions`` (:func:`goal_conversion` per landing page), best first: one table for the
    page's chart and its table alike."""
    g = goal_conversion(kq, by_landing_page=True, top=top, min_completions=min_completions)
    return g.sort_values(["conversion_rate", "completions"], ascending=False, kind="stable")


# -------------------------------------------------------------------------------------------------
# Spend, economics and attribution (04-roi, 03-channel-conversion)


def marketing_spend(kq: QuarterKpis) -> pd.DataFrame:
    """Marketing spend of the quarter (every cost type but ``sales``, which counts towards CAC only)
    per channel, campaign and cost type (``amount``, money), as :func:`facts.spend_breakdown` gives it."""
    spend = facts.spend_breakdown(kq.source, kq.quarter)
    return spend[spend["cost_type"] != "sales"].reset_index(drop=True)


def spend_by_cost_type(spend: pd.DataFrame, *, index: str = "channel") -> pd.DataFrame:
    """``spend`` (long rows of :func:`marketing_spend`) as one row per ``index`` (channel or campaign)
    and one money column per cost type, the cost types with most spend first, and ``total`` last; the
    largest total first.

    >>> rows = pd.DataFrame({"channel": ["Email", "Email", "Paid"], "cost_type": ["labor", "media", "media"],
    ...                      "amount": [50.0, 100.0, 300.0]})
    >>> spend_by_cost_type(rows).to_dict("index")
    {'Paid': {'media': 300.0, 'labor': 0.0, 'total': 300.0}, 'Email': {'media': 100.0, 'labor': 50.0, 'total': 150.0}}
    """
    wide = spend.pivot_table(index=index, columns="cost_type", values="amount", aggfunc="sum", fill_value=0.0)
    wide = wide[wide.sum().sort_values(ascending=False, kind="stable").index]
    wide["total"] = wide.sum(axis=1)
    wide = wide.sort_values("total", ascending=False, kind="stable")
    wide.columns.name = None
    return wide.astype(float)


def _acquisition(cost: pd.Series, conversions: pd.Series, clv: float | None) -> pd.DataFrame:
    """CAC on attributed won deals and CLV:CAC; NaN where no cost was recorded."""
    cac = K.safe_divide(cost, conversions, reason="no attributed won deals").where(cost > 0)
    clv_ = float("nan") if clv is None else float(clv)
    return pd.DataFrame({"cac": cac, "clv": clv_, "clv_to_cac": K.clv_to_cac(clv_, cac)}, index=cost.index)


def channel_economics(kq: QuarterKpis, *, clv: float | None = None) -> pd.DataFrame:
    """Per channel under ``kq.attribution_model``: marketing cost, leads, cost per lead, attributed
    won deals and revenue, CAC, CLV:CAC and ROI.

    Channel CAC = the channel's marketing cost / won deals attributed to it (sales cost and
    new-vs-returning customers are not split by channel, so this is the marketing part of CAC on
    attributed deals); ``clv`` is the company's CLV (``metrics()["clv"]``) for every channel.
    ``(unallocated)`` and ``(sales-sourced)`` get no per-channel ratios.
    """
    from .reliability import channel_intervals  # lazy: it reads the attribution stack

    c = kq.channels
    out = c[["marketing_cost", "leads", "cost_per_lead", "attributed_conversions", "attributed_revenue"]].copy()
    out = out.join(_acquisition(out.marketing_cost, out.attributed_conversions, clv)).join(c["roi"])
    out.loc[out.index.isin([UNALLOCATED, SALES_SOURCED]), ["cac", "clv_to_cac", "roi"]] = float("nan")
    out = _beside(out, channel_intervals(kq))
    out.attrs["attribution_model"] = kq.attribution_model
    return out


def _beside(frame: pd.DataFrame, bounds: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each ``x_low`` and ``x_high`` of ``bounds`` right after its column ``x`` (rows
    aligned on the index; a column ``frame`` lacks is left out)."""
    cols: list[str] = []
    for col in frame.columns:
        cols.append(col)
        cols += [f"{col}{b}" for b in ("_low", "_high") if f"{col}{b}" in bounds]
    joined = frame.join(bounds[[c for c in cols if c in bounds and c not in frame]])
    return joined[cols]


def campaign_economics(kq: QuarterKpis, *, clv: float | None = None) -> pd.DataFrame:
    """Per campaign under ``kq.attribution_model``: channel, marketing spend booked on it (cost types
    other than ``sales``), leads created, cost per lead, attributed won deals and revenue, CAC,
    CLV:CAC and ROI; campaigns with spend, leads or credit in the quarter, most spend first.

    Spend without a campaign, leads and touches without one are the row ``(not set)``; it gets no
    ratios (it mixes channel overheads with untagged traffic). Ratios are NaN without spend.
    """
    sp = marketing_spend(kq).replace({"campaign": {"(none)": NOT_SET}})
    spend = sp.groupby("campaign").agg(
        channel=("channel", lambda s: s.iloc[0] if s.nunique() == 1 else "(several)"), marketing_cost=("amount", "sum")
    )
    leads = channels_only(channel_funnel(kq, by="campaign"))["leads"]
    # the keys are a string ExtensionArray, which pandas groups by and pandas-stubs does not list
    leads = leads.groupby(leads.index.to_series().fillna(NOT_SET).replace({"nan": NOT_SET}).values).sum()  # type: ignore[arg-type]
    credit = kq.attribution_by_campaign().rename(
        columns={"conversions": "attributed_conversions", "value": "attributed_revenue"}
    )
    cols = ["marketing_cost", "leads", "attributed_conversions", "attributed_revenue"]
    out = spend.join(leads.rename("leads"), how="outer").join(credit, how="outer")
    out[cols] = out[cols].fillna(0.0)
    out = out[(out.marketing_cost > 0) | (out.leads > 0) | (out.attributed_revenue > 0)].copy()
    out["leads"] = out["leads"].astype("int64")
    out["cost_per_lead"] = K.cost_per_lead(out.marketing_cost, out.leads).where(out.marketing_cost > 0)
    out = out.join(_acquisition(out.marketing_cost, out.attributed_conversions, clv))
    out["roi"] = K.marketing_roi(out.attributed_revenue, out.marketing_cost)
    out.loc[out.index == NOT_SET, ["cost_per_lead", "cac", "clv_to_cac", "roi"]] = float("nan")
    out.index.name = "campaign"
    out.attrs["attribution_model"] = kq.attribution_model
    return out.sort_values(["marketing_cost", "attributed_revenue"], ascending=False)


def attribution_ranks(comparison: pd.DataFrame) -> pd.DataFrame:
    """Rank of each channel (1 = most credited revenue; ties share the best rank) under every model
    of ``comparison`` (channels x models), plus ``best_rank``, ``worst_rank`` and ``places_moved``
    (worst - best), the channels whose rank moves most first.

    >>> credit = pd.DataFrame({"first_touch": [100.0, 50.0, 10.0], "linear": [60.0, 70.0, 10.0]},
    ...                       index=["Email", "Paid", "Social"])
    >>> attribution_ranks(credit).to_dict("index")["Email"]
    {'first_touch': 1, 'linear': 2, 'best_rank': 1, 'worst_rank': 2, 'places_moved': 1}
    """
    ranks = comparison.rank(axis=0, ascending=False, method="min").astype("int64")
    ranks.columns.name = None
    out = ranks.assign(best_rank=ranks.min(axis=1), worst_rank=ranks.max(axis=1))
    out["places_moved"] = out["worst_rank"] - out["best_rank"]
    return out.sort_values(["places_moved", "best_rank"], ascending=[False, True])


def rank_movers(ranks: pd.DataFrame) -> list[str]:
    """The channels of :func:`attribution_ranks` whose rank moves most across the models (none when
    every model ranks the channels the same way).

    >>> rank_movers(pd.DataFrame({"places_moved": [2, 2, 0]}, index=["Email", "Paid", "Social"]))
    ['Email', 'Paid']
    >>> rank_movers(pd.DataFrame({"places_moved": [0, 0]}, index=["Email", "Paid"]))
    []
    """
    if not len(ranks) or int(ranks["places_moved"].max()) == 0:
        return []
    return [str(c) for c in ranks.index[ranks["places_moved"] == ranks["places_moved"].max()]]


def has_credit(comparison: pd.DataFrame) -> bool:
    """Some revenue is credited to some channel in ``comparison`` (channels x models)."""
    return bool(comparison.fillna(0.0).abs().to_numpy().sum() > 0)


def with_spend(economics: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``economics`` with marketing cost booked (a cost per lead on no spend says nothing)."""
    return economics[economics["marketing_cost"] > 0]
