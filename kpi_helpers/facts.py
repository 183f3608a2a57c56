"""Facts: the aggregated counts and sums the KPIs are computed from, built in the engine.

Every function here filters, joins and groups in the engine (DuckDB, Spark, a warehouse) and
fetches only aggregated rows through :meth:`DataSource.fetch`. The KPI arithmetic on top of these
facts lives in :mod:`kpi_helpers.kpis` and :mod:`kpi_helpers.goals`.

Period definitions (a quarter Q, fiscal calendar from ``goals.yml``):

- ``visits``: sessions on days in Q; ``leads``: leads created in Q; ``mqls`` / ``sqls``: leads whose
  ``mql_at`` / ``sql_at`` falls in Q; ``opportunities``: new-business deals created in Q
  (``lead_opportunities``: those with a lead); ``won_deals``: new-business deals won and closed in Q
  (all sources); ``won_revenue`` (bookings): the amount of every deal won and closed in Q, renewals
  and expansions included; ``lead_won_deals`` / ``lead_revenue``: new-business deals with a lead won
  in Q, and their amount; ``new_customers``: accounts whose first won new-business deal closed in Q;
  ``marketing_cost``: every cost type but ``sales``; ``sales_cost``: cost type ``sales``.

**New business.** ``opportunities.type`` (optional) tells new business (``new``, or empty) from
renewals and expansions of existing customers. New customers, CAC, the funnel (opportunities, won
deals, win rates, the cohort funnel) and attribution (lead revenue) count new business only;
bookings (``won_revenue``), the revenue per customer behind CLV (:func:`customer_revenue`) and
recognised revenue count every type. Without the column every deal is new business.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd
from ibis import _

from .attribution import NOT_SET
from .periods import Quarter, quarter_key_expr, quarter_of
from .registry import FACT_ALSO_NEEDS, FACTS
from .schema import MARKETING_COST_TYPES, SALES_SOURCED
from .source import DataSource

QUARTER_FACTS = (
    "revenue",
    "visits",
    "users",
    "new_users",
    "engaged_sessions",
    "session_duration_s",
    "pageviews",
    "organic_visits",
    "goal_completions",
    "leads",
    "mqls",
    "sqls",
    "opportunities",
    "lead_opportunities",
    "won_deals",
    "won_revenue",
    "lead_won_deals",
    "lead_revenue",
    "new_customers",
    "marketing_cost",
    "sales_cost",
    "content_views",
    "email_sends",
    "email_opens",
    "attendees",
)
CHANNEL_FACTS = (
    "visits",
    "leads",
    "mqls",
    "sqls",
    "opportunities",
    "won_deals",
    "lead_revenue",
    "marketing_cost",
)
ORGANIC = "Organic Search"


def _between(col: ir.Value, start: dt.date, end: dt.date) -> ir.BooleanValue:
    """``start <= col < end``; compares as timestamps so date and timestamp columns both work."""
    return (col.cast("timestamp") >= ibis.timestamp(start.isoformat())) & (
        col.cast("timestamp") < ibis.timestamp(end.isoformat())
    )


def so_far(src: DataSource, quarter: Quarter) -> tuple[dt.date, dt.date]:
    """``quarter``'s days ``[start, end)`` a report counts: the whole quarter, or its days up to the
    data's end while it is in progress (rows dated later belong to no judged window)."""
    end = src.data_end
    if end is not None and quarter.start <= end < quarter.last_day:
        return quarter.start, dt.date.fromordinal(end.toordinal() + 1)
    return quarter.start, quarter.end


def _grouped(
    src: DataSource,
    table: ir.Table,
    date_col: str,
    aggs: dict[str, Any],
    first: Quarter | None,
    last: Quarter | None,
    by: Sequence[str] = (),
    label: str = "",
    fy: int = 1,
) -> pd.DataFrame:
    """Aggregate ``table`` per quarter key (and ``by`` columns) over ``first``..``last``; every
    quarter of the data when they are None (``fy``: first month of the fiscal year)."""
    t = table
    if first is not None and last is not None:
        fy = first.fy_start_month
        t = t.filter(_between(t[date_col], first.start, last.end))
    t = t.filter(t[date_col].notnull())
    end = src.data_end
    if end is not None:
        # The quarter in progress is judged on its days so far: rows dated after the data's end (a
        # deals export that runs later than the leads) would mix periods and break the run rate.
        current = quarter_of(end, fy)
        after = dt.date.fromordinal(end.toordinal() + 1)
        t = t.filter(~_between(t[date_col], after, current.end))
    t = t.mutate(qkey=quarter_key_expr(t[date_col], fy))
    out = src.fetch(t.group_by(["qkey", *by]).aggregate(**aggs), label=label)
    return out


def quarterly_facts(src: DataSource, first: Quarter, last: Quarter) -> pd.DataFrame:
    """One row per quarter from ``first`` to ``last`` (inclusive), float columns :data:`QUARTER_FACTS`.

    A fact is a real zero in a quarter its table covers and has no rows for (no lead that quarter),
    and NaN where its table is absent or does not cover the quarter at all (before the data starts,
    after it ends): missing data is never a 0. A quarter its table covers only in part gets the sum
    over the days covered; :meth:`kpi_helpers.coverage.Coverage.status` says which days those are.
    """
    fy = first.fy_start_month
    keys = list(range(first.key, last.key + 1))
    # Every quarter of the data, then the window in pandas (a row per quarter either way): the same
    # queries serve any window, so the latest and the current quarter, and a notebook's quarter
    # picker, share one memoised result (DataSource.memo) instead of scanning the tables again.
    parts = _facts_parts(src, None, None, by=(), fy=fy)
    df = pd.DataFrame({"qkey": keys})
    for p in parts:
        df = df.merge(p, on="qkey", how="left")
    quarters = [Quarter.from_key(k, fy) for k in keys]
    df.index = pd.Index([q.label for q in quarters], name="quarter")
    out = pd.DataFrame(index=df.index)
    for fact in QUARTER_FACTS:
        values = (
            pd.to_numeric(df[fact], errors="coerce").astype(float)
            if fact in df
            else pd.Series(float("nan"), index=df.index)
        )
        covered = pd.Series([fact_covered(src, fact, q) for q in quarters], index=df.index)
        out[fact] = values.fillna(0.0).where(covered, float("nan"))
    return out


def fact_covered(src: DataSource, fact: str, q: Quarter) -> bool:
    """The fact's tables all cover some of ``q`` (so no rows there is a real zero), and its column,
    when it reads an optional one, is not empty in every row of the export."""
    column = FACTS[fact].column
    table = FACTS[fact].table
    if column and table in src.present and column not in src.coverage.filled.get(table, frozenset()):
        return False
    return all(src.coverage.status(t, q).status in ("full", "partial") for t in fact_tables(fact))


def fact_tables(fact: str) -> tuple[str, ...]:
    """The tables a fact is computed from (see :mod:`kpi_helpers.registry`)."""
    return (FACTS[fact].table, *FACT_ALSO_NEEDS.get(fact, ()))


def _facts_parts(
    src: DataSource, first: Quarter | None, last: Quarter | None, by: Sequence[str], fy: int = 1
) -> list[pd.DataFrame]:
    """Aggregates per quarter (and channel when ``by`` is ("channel",)); all quarters when
    ``first`` and ``last`` are None."""
    per_channel = bool(by)
    parts: list[pd.DataFrame] = []

    def add(table: ir.Table, date_col: str, aggs: dict[str, Any], label: str, keys: Sequence[str] = by) -> None:
        parts.append(_grouped(src, table, date_col, aggs, first, last, keys, label, fy))

    web: dict[str, Any] = {"visits": _.sessions.sum()}
    if not per_channel:
        web.update(
            users=_.users.sum(),
            new_users=_.new_users.sum(),
            engaged_sessions=_.engaged_sessions.sum(),
            session_duration_s=_.session_duration_s.sum(),
            pageviews=_.pageviews.sum(),
            organic_visits=(_.channel == ORGANIC).ifelse(_.sessions, 0).sum(),
        )
    add(src.table("web_sessions"), "date", web, "web_sessions by quarter")

    leads = src.table("leads")
    add(leads, "created_at", {"leads": _.count()}, "leads")
    add(leads, "mql_at", {"mqls": _.count()}, "mqls")
    add(leads, "sql_at", {"sqls": _.count()}, "sqls")

    opps = _opportunities_with_channel(src)
    new = is_new_business(opps)
    opp: dict[str, Any] = {"opportunities": new.cast("int64").sum()}
    if not per_channel:
        opp["lead_opportunities"] = (new & opps.lead_id.notnull()).cast("int64").sum()
    add(opps, "created_at", opp, "opportunities")

    won = opps.filter(opps.stage == "won")
    won_new = is_new_business(won)
    won_aggs: dict[str, Any] = {
        "won_deals": won_new.cast("int64").sum(),
        "lead_revenue": (won_new & won.lead_id.notnull()).ifelse(won.amount, 0.0).sum(),
    }
    if not per_channel:
        won_aggs.update(
            won_revenue=won.amount.sum(), lead_won_deals=(won_new & won.lead_id.notnull()).cast("int64").sum()
        )
    add(won, "closed_at", won_aggs, "won deals")

    spend: dict[str, Any] = {"marketing_cost": _.cost_type.isin(MARKETING_COST_TYPES).ifelse(_.amount, 0.0).sum()}
    if not per_channel:
        spend["sales_cost"] = (_.cost_type == "sales").ifelse(_.amount, 0.0).sum()
    add(src.table("spend"), "date", spend, "spend")

    if not per_channel:
        won_new_only = won.filter(won_new)
        firsts = won_new_only.group_by("account_id").aggregate(first_won=won_new_only.closed_at.min())
        add(firsts, "first_won", {"new_customers": _.count()}, "new customers")
        add(src.table("revenue"), "month", {"revenue": _.revenue.sum()}, "revenue")
        add(src.table("web_goals"), "date", {"goal_completions": _.completions.sum()}, "goal completions")
        add(
            src.table("content"),
            "date",
            {
                "content_views": _.views.sum(),
                "email_sends": _.email_sends.sum(),
                "email_opens": _.email_opens.sum(),
                "attendees": _.attendees.sum(),
            },
            "content",
        )
    return parts


def is_new_business(opps: ir.Table) -> ir.BooleanValue:
    """True for new-business deals: ``type`` is ``new`` or empty (the column is optional; typed values
    are lower case), False for renewals and expansions."""
    return opps.type.isnull() | (opps.type == "new")


def _opportunities_with_channel(src: DataSource) -> ir.Table:
    """Opportunities with the channel of their lead (``(sales-sourced)`` when there is no lead)."""
    opps = src.table("opportunities")
    leads = src.table("leads").select(lead_id_l="lead_id", lead_channel="channel")
    j = opps.left_join(leads, opps.lead_id == leads.lead_id_l)
    # An explicit column list: `drop` orders the rest by a set, so the SQL (a memo key) would depend
    # on the process's hash seed and parallel kernels would miss each other's cached results.
    return j.select(*opps.columns, channel=j.lead_channel.fill_null(SALES_SOURCED))


def channel_facts(src: DataSource, quarter: Quarter) -> pd.DataFrame:
    """One row per channel for ``quarter``, float columns :data:`CHANNEL_FACTS`.

    Opportunities and revenue take the channel of their lead; deals without a lead are
    ``(sales-sourced)``; cost not tied to a channel is ``(unallocated)``. The rows therefore add up
    to the quarter's totals. A fact whose table does not cover the quarter is NaN in every row.
    """
    parts = _facts_parts(src, quarter, quarter, by=("channel",))
    df = pd.DataFrame(columns=["qkey", "channel"])
    for p in parts:
        p = p.astype({"channel": object})
        df = p if df.empty else df.merge(p, on=["qkey", "channel"], how="outer")
    df = df.drop(columns="qkey").set_index("channel").sort_index()
    out = pd.DataFrame(index=df.index.astype(str))
    for c in CHANNEL_FACTS:
        values = pd.to_numeric(df[c], errors="coerce").astype(float).to_numpy() if c in df else float("nan")
        out[c] = values
        out[c] = out[c].fillna(0.0) if fact_covered(src, c, quarter) else float("nan")
    out.index.name = "channel"
    return out


def revenue_by_fiscal_year(src: DataSource, *, complete_only: bool = True) -> pd.Series:
    """Company revenue per fiscal year (from ``revenue``); with ``complete_only`` only years with 12 months."""
    fy = src.settings.fiscal_year_start_month
    rev = src.table("revenue")
    t = rev.mutate(qkey=quarter_key_expr(rev.month, fy))
    t = t.mutate(fiscal_year=t.qkey // 4)
    out = src.fetch(
        t.group_by("fiscal_year").aggregate(revenue=t.revenue.sum(), months=t.count()), label="revenue by fiscal year"
    )
    out = out.sort_values("fiscal_year")
    if complete_only:
        out = out[out["months"] == 12]
    s = out.set_index("fiscal_year")["revenue"].astype(float)
    s.index = s.index.astype(int)
    s.index.name = "fiscal_year"
    return s


def revenue_by_quarter(src: DataSource) -> pd.DataFrame:
    """Company revenue per fiscal quarter: columns fiscal_year, q, revenue, months (complete when 3)."""
    fy = src.settings.fiscal_year_start_month
    rev = src.table("revenue")
    t = rev.mutate(qkey=quarter_key_expr(rev.month, fy))
    out = src.fetch(
        t.group_by("qkey").aggregate(revenue=t.revenue.sum(), months=t.count()), label="revenue by quarter"
    ).sort_values("qkey")
    out["fiscal_year"] = (out["qkey"] // 4).astype(int)
    out["q"] = (out["qkey"] % 4 + 1).astype(int)
    out["quarter"] = [Quarter.from_key(k, fy).label for k in out["qkey"]]
    return out[["quarter", "fiscal_year", "q", "revenue", "months"]].reset_index(drop=True)


def cohort_funnel(src: DataSource, start: dt.date, end: dt.date, *, by: str | None = "channel") -> pd.DataFrame:
    """Funnel of the leads *created* in ``[start, end)``, followed to the data's end.

    Columns: leads, mqls, sqls, opportunities, won (leads reaching each stage; nested, so rates
    stay in [0, 1]) and median days lead->MQL, MQL->SQL, SQL->opportunity, opportunity->won.
    One row per ``by`` value (channel) or a single ``all`` row; no rows when no lead was created.
    Stages out of order (``mql_at`` before ``created_at``, as CRM lifecycle resets make) count as
    reached but are left out of the stage's timing, never shifted. Only new-business deals count.
    """
    leads = src.table("leads")
    leads = leads.filter(_between(leads.created_at, start, end))
    opps = src.table("opportunities").filter(lambda o: o.lead_id.notnull() & is_new_business(o))
    per_lead = (
        opps.group_by("lead_id")
        .aggregate(
            opp_at=opps.created_at.min(),
            won_at=(opps.stage == "won").ifelse(opps.closed_at, ibis.null("timestamp")).min(),
        )
        .rename(o_lead_id="lead_id")
    )
    j = leads.left_join(per_lead, leads.lead_id == per_lead.o_lead_id)

    def days(a: ir.Value, b: ir.Value) -> ir.Value:
        d = (b.epoch_seconds() - a.epoch_seconds()) / 86400.0
        return ibis.ifelse(d >= 0, d, ibis.null("float64"))

    grouped = j.group_by(by) if by else j  # ibis rejects an empty group_by
    agg = grouped.aggregate(
        leads=j.count(),
        mqls=j.mql_at.notnull().cast("int64").sum(),
        sqls=j.sql_at.notnull().cast("int64").sum(),
        opportunities=j.opp_at.notnull().cast("int64").sum(),
        won=j.won_at.notnull().cast("int64").sum(),
        days_lead_to_mql=days(j.created_at, j.mql_at).median(),
        days_mql_to_sql=days(j.mql_at, j.sql_at).median(),
        days_sql_to_opportunity=days(j.sql_at, j.opp_at).median(),
        days_opportunity_to_won=days(j.opp_at, j.won_at).median(),
    )
    out = src.fetch(agg, label="cohort funnel")
    if by:
        out[by] = out[by].astype(object).fillna(NOT_SET).astype(str)
        out = out.set_index(by).sort_index()
    else:
        out.index = ["all"][: len(out)]
    return out


def web_breakdown(src: DataSource, quarter: Quarter, by: str) -> pd.DataFrame:
    """Web metrics of ``quarter`` per ``by`` (device, channel, landing_page, source, medium)."""
    ws = src.table("web_sessions").filter(lambda t: _between(t.date, *so_far(src, quarter)))
    agg = ws.group_by(by).aggregate(
        sessions=ws.sessions.sum(),
        users=ws.users.sum(),
        new_users=ws.new_users.sum(),
        engaged_sessions=ws.engaged_sessions.sum(),
        session_duration_s=ws.session_duration_s.sum(),
    )
    out = src.fetch(agg, label=f"web by {by}")
    out[by] = out[by].astype(object).fillna("(not set)").astype(str)
    return out.set_index(by).sort_values("sessions", ascending=False)


def goal_facts(
    src: DataSource, quarter: Quarter, *, by_landing_page: bool = True, min_completions: int = 5, top: int = 15
) -> pd.DataFrame:
    """Goal completions of ``quarter`` per goal (and landing page), with the sessions they come from.

    ``sessions`` is the quarter's sessions on that landing page (all sessions when per goal only),
    so ``completions / sessions`` is the goal conversion rate. Per landing page, only pages with
    at least ``min_completions`` are kept and the ``top`` of them by conversion rate returned,
    filtered in the engine: a big site has tens of thousands of landing pages.
    """
    goals = src.table("web_goals").filter(lambda t: _between(t.date, *so_far(src, quarter)))
    ws = src.table("web_sessions").filter(lambda t: _between(t.date, *so_far(src, quarter)))
    if by_landing_page:
        g = goals.group_by(["goal", "landing_page"]).aggregate(completions=goals.completions.sum())
        s = ws.group_by("landing_page").aggregate(sessions=ws.sessions.sum()).rename(lp="landing_page")
        g = g.filter(g.completions >= min_completions)
        j = g.left_join(s, g.landing_page == s.lp).drop("lp")
        j = j.mutate(sessions=j.sessions.fill_null(0))
        # best pages first by conversion rate (the rate itself is computed by kpis, on these rows)
        rate = j.completions.cast("float64") / j.sessions.nullif(0).cast("float64")
        j = j.order_by([rate.desc(nulls_first=False), ibis.desc("completions"), "goal", "landing_page"]).limit(top)
        out = src.fetch(j, label="goals by landing page")
        out = out.astype({"goal": object, "landing_page": object})
        return out.sort_values(["goal", "completions"], ascending=[True, False]).reset_index(drop=True)
    g = src.fetch(goals.group_by("goal").aggregate(completions=goals.completions.sum()), label="goals")
    total = src.fetch(ws.sessions.sum(), label="sessions total")
    g["sessions"] = 0 if total is None or pd.isna(total) else int(total)
    return g.astype({"goal": object}).sort_values("goal").set_index("goal")


def spend_breakdown(src: DataSource, quarter: Quarter) -> pd.DataFrame:
    """Cost of ``quarter`` per channel, campaign and cost type (``amount``)."""
    sp = src.table("spend").filter(lambda t: _between(t.date, *so_far(src, quarter)))
    out = src.fetch(
        sp.group_by(["channel", "campaign", "cost_type"]).aggregate(amount=sp.amount.sum()), label="spend breakdown"
    )
    out = out.astype({"channel": object, "campaign": object, "cost_type": object})
    out["campaign"] = out["campaign"].fillna("(none)")
    return out.sort_values(["channel", "campaign", "cost_type"]).reset_index(drop=True)


def content_breakdown(src: DataSource, quarter: Quarter) -> pd.DataFrame:
    """Content reach of ``quarter`` per asset type: views, email sends/opens, attendees, assets."""
    c = src.table("content").filter(lambda t: _between(t.date, *so_far(src, quarter)))
    out = src.fetch(
        c.group_by("asset_type").aggregate(
            assets=c.asset.nunique(),
            views=c.views.sum().cast("int64"),
            email_sends=c.email_sends.sum().cast("int64"),
            email_opens=c.email_opens.sum().cast("int64"),
            attendees=c.attendees.sum().cast("int64"),
        ),
        label="content breakdown",
    )
    out = out.astype({"asset_type": object}).set_index("asset_type").sort_index()
    return out.fillna(0).astype("int64")


def customer_revenue(src: DataSource, start: dt.date, end: dt.date) -> tuple[float, int]:
    """Won revenue closed in ``[start, end)`` and the number of distinct accounts it came from; every
    deal type counts (renewals and expansions are revenue from the customer)."""
    o = src.table("opportunities")
    w = o.filter((o.stage == "won") & _between(o.closed_at, start, end))
    row = src.fetch(
        w.aggregate(revenue=w.amount.sum(), customers=w.account_id.nunique()), label="customer revenue"
    ).iloc[0]
    rev = 0.0 if pd.isna(row["revenue"]) else float(row["revenue"])
    return rev, 0 if pd.isna(row["customers"]) else int(row["customers"])


def days_covered(src: DataSource, quarter: Quarter) -> int:
    """Days of ``quarter`` up to the data's end (the whole quarter once it has ended)."""
    end = src.data_end
    if end is None or end < quarter.start:
        return 0
    return min((end - quarter.start).days + 1, quarter.days)
