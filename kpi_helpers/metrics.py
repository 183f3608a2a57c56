"""A quarter's KPIs, computed once: what ``metrics.json``, ``kpi summary`` and the notebooks show.

:class:`QuarterKpis` gathers the facts of a quarter from the engine (each fact once, cached) and
applies the KPI formulas of :mod:`kpi_helpers.kpis`, the goal setting of :mod:`kpi_helpers.goals`
and the attribution of :mod:`kpi_helpers.attribution`. :func:`quarter_metrics` returns the
machine-readable dict; the notebooks read the same object, so a number in the HTML and in
``metrics.json`` come from one computation.

Definitions that need a choice (documented in docs/kpis.md):

- ``lead_to_customer_rate`` = won deals with a lead closed in the quarter / leads created in it.
- ``clv`` = average yearly revenue per customer (won revenue of the trailing 4 quarters / accounts
  it came from) x ``gross_margin`` x ``customer_lifetime_years`` (``goals.yml``).
- ``marketing_roi`` = (attributed lead revenue - marketing cost) / marketing cost; attribution
  redistributes lead revenue across channels, so the total equals ``lead_revenue`` whatever the
  model, and the per-channel figures depend on ``attribution_model``.
- Trailing rates for the reverse funnel come from the fiscal year before the goal's year.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd

from . import __version__, facts
from . import goals as G
from . import kpis as K
from .attribution import MODELS, NEED_NULLS, attribute, compare_models, touch_journeys
from .config import KpiTarget
from .exceptions import KpiError
from .periods import Quarter
from .schema import SALES_SOURCED, UNALLOCATED
from .source import DataSource

TREND_QUARTERS = 8
#: KPIs derived from the reverse funnel when goals.yml names none: metric -> (name, owner)
DEFAULT_KPIS = {
    "visits": ("Visits per quarter", "Web & SEO"),
    "leads": ("Leads per quarter", "Demand generation"),
    "mqls": ("MQLs per quarter", "Marketing operations"),
    "sqls": ("SQLs per quarter", "Sales development"),
    "opportunities": ("Opportunities per quarter", "Sales"),
    "won_deals": ("Won deals from leads per quarter", "Sales"),
}
#: pacing projects these daily-grain sums to the quarter's end by days covered; company revenue
#: is monthly and is projected by closed months instead; cost (often booked monthly) is not projected.
PACED = (
    "visits",
    "leads",
    "mqls",
    "sqls",
    "opportunities",
    "won_deals",
    "won_revenue",
    "lead_revenue",
    "lead_won_deals",
    "lead_opportunities",
)


def _num(x: Any) -> float | None:
    """JSON-friendly number: NaN and Undefined become None."""
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else f


@dataclass
class Undefineds:
    """Collects why values are missing, for the ``undefined`` section of metrics.json."""

    reasons: dict[str, str]

    def note(self, key: str, value: Any) -> Any:
        if isinstance(value, K.Undefined):
            self.reasons[key] = value.reason
        elif isinstance(value, float) and math.isnan(value):
            self.reasons.setdefault(key, "not computable from the data")
        return value


class QuarterKpis:
    """Everything the quarterly report shows for one quarter, computed lazily and once.

    Parameters
    ----------
    source : DataSource
        The validated data.
    quarter : str or Quarter
        ``2026Q3``, ``FY2026Q1``, ``latest`` or ``current``.
    attribution_model : str
        Model used for channel ROI (see :data:`kpi_helpers.attribution.MODELS`).
    """

    def __init__(
        self,
        source: DataSource,
        quarter: str | Quarter = "latest",
        *,
        attribution_model: str = "position_based",
        today: Any = None,
    ) -> None:
        if attribution_model not in MODELS:
            raise KpiError(f"unknown attribution model {attribution_model!r}; choose one of {', '.join(MODELS)}")
        self.source = source
        self.settings = source.settings
        self.quarter = source.quarter(quarter, today=today)
        self.attribution_model = attribution_model

    # -- facts -----------------------------------------------------------------------------------
    @cached_property
    def trend(self) -> pd.DataFrame:
        """Facts of the last :data:`TREND_QUARTERS` quarters up to this one, plus the KPIs on them."""
        q = self.quarter
        df = facts.quarterly_facts(self.source, q.shift(-(TREND_QUARTERS - 1)), q)
        return df.join(self._rates(df))

    @staticmethod
    def _rates(df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "visits_per_lead": K.visits_per_lead(df.visits, df.leads),
                "value_per_lead": K.value_per_lead(df.lead_revenue, df.leads),
                "value_per_visit": K.value_per_visit(df.lead_revenue, df.visits),
                "visit_to_lead_rate": K.visit_to_lead_rate(df.visits, df.leads),
                "lead_to_customer_rate": K.lead_to_customer_rate(df.lead_won_deals, df.leads),
                "bounce_rate": K.bounce_rate(df.engaged_sessions, df.visits),
                "avg_session_duration_s": K.avg_session_duration(df.session_duration_s, df.visits),
                "new_user_share": K.new_user_share(df.new_users, df.users),
                "cost_per_lead": K.cost_per_lead(df.marketing_cost, df.leads),
                "cac": K.customer_acquisition_cost(df.marketing_cost, df.sales_cost, df.new_customers),
                "marketing_roi": K.marketing_roi(df.lead_revenue, df.marketing_cost),
                "email_open_rate": K.email_open_rate(df.email_opens, df.email_sends),
            },
            index=df.index,
        )

    @property
    def row(self) -> pd.Series:
        return self.trend.loc[self.quarter.label]

    @cached_property
    def channels(self) -> pd.DataFrame:
        """Per-channel facts of the quarter with attributed revenue, cost per lead and ROI."""
        df = facts.channel_facts(self.source, self.quarter)
        credit = self.attribution.rename(
            columns={"value": "attributed_revenue", "conversions": "attributed_conversions"}
        )
        df = df.join(credit, how="outer").fillna(0)
        for c in ("visits", "leads", "mqls", "sqls", "opportunities", "won_deals"):
            df[c] = df[c].astype("int64")
        df["cost_per_lead"] = K.cost_per_lead(df.marketing_cost, df.leads)
        df["roi"] = K.marketing_roi(df.attributed_revenue, df.marketing_cost)
        # Unallocated cost and sales-sourced deals are not channels one can invest in.
        df.loc[df.index.isin([UNALLOCATED, SALES_SOURCED]), ["cost_per_lead", "roi"]] = float("nan")
        df.index.name = "channel"
        return df.sort_values(["attributed_revenue", "leads"], ascending=False)

    @cached_property
    def converting_journeys(self) -> Any:
        """The journeys of the deals won in the quarter, without the non-converting ones (lazy:
        one model's query builds them): all that models other than ``markov`` read."""
        s = self.source
        return touch_journeys(
            s.table("touchpoints"),
            s.table("leads"),
            s.table("opportunities"),
            start=self.quarter.start,
            end=self.quarter.end,
            include_nulls=False,
        )

    def _journeys_for(self, model: str) -> Any:
        return self.journeys if model in NEED_NULLS else self.converting_journeys

    @cached_property
    def journeys(self) -> Any:
        s = self.source
        journeys = touch_journeys(
            s.table("touchpoints"),
            s.table("leads"),
            s.table("opportunities"),
            start=self.quarter.start,
            end=self.quarter.end,
        )
        # Built once into a temporary table: otherwise every model (ten in a comparison) rebuilds them.
        try:
            return journeys.materialize()
        except NotImplementedError:  # ibis's PySpark backend has no temporary tables: stay lazy
            return journeys

    def _memo(self, *key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` memoised for this quarter's dates and this data (:meth:`DataSource.memo`):
        attribution runs its own queries on the journeys, so it is memoised as a whole; the
        journeys are built only when a result is not memoised yet."""
        return self.source.memo(("quarter", self.quarter.start, self.quarter.end, *key), compute)

    @cached_property
    def attribution(self) -> pd.DataFrame:
        """Lead revenue won in the quarter credited to channels by :attr:`attribution_model`."""
        model = self.attribution_model
        return self._memo("attribution", model, "channel", compute=lambda: attribute(self._journeys_for(model), model))

    def attribution_by_campaign(self) -> pd.DataFrame:
        model = self.attribution_model
        return self._memo(
            "attribution", model, "campaign", compute=lambda: attribute(self._journeys_for(model), model, by="campaign")
        )

    def attribution_comparison(self, models: tuple[str, ...] = MODELS) -> pd.DataFrame:
        """Revenue credited per channel under every model (channels x models)."""
        models = tuple(models)
        return self._memo("comparison", models, compute=lambda: compare_models(self.journeys, models=models))

    # -- goals -----------------------------------------------------------------------------------
    @cached_property
    def revenue_history(self) -> pd.Series:
        return facts.revenue_by_fiscal_year(self.source, complete_only=True)

    @cached_property
    def revenue_quarters(self) -> pd.DataFrame:
        return facts.revenue_by_quarter(self.source)

    @cached_property
    def goal(self) -> G.RevenueGoal:
        """The fiscal year's revenue goal, from the completed fiscal years before it."""
        fy = self.quarter.fiscal_year
        hist = self.revenue_quarters
        complete = hist[(hist.fiscal_year < fy)]
        full_years = complete.groupby("fiscal_year")["months"].transform("sum") == 12
        shares = G.seasonality(complete[full_years][["fiscal_year", "q", "revenue"]])
        return G.revenue_goal(
            self.revenue_history,
            fiscal_year=fy,
            uplift=self.settings.growth_uplift,
            lookback_years=self.settings.growth_lookback_years,
            quarter_shares=shares,
        )

    @cached_property
    def trailing(self) -> pd.Series:
        """Conversion rates, deal size and lead share of the fiscal year before the goal's year."""
        prev = self.quarter.fiscal.quarters[0].shift(-4)
        # The 8-quarter trend always reaches back to the previous fiscal year's first quarter.
        f = self.trend.loc[[prev.shift(i).label for i in range(4)]].sum()
        return pd.Series(
            {
                "lead_revenue_share": K.safe_divide(f.lead_revenue, f.revenue, reason="no revenue last year"),
                "avg_deal_size": K.safe_divide(f.lead_revenue, f.lead_won_deals, reason="no won deals from leads"),
                "win_rate": K.safe_divide(f.lead_won_deals, f.lead_opportunities, reason="no opportunities"),
                "sql_to_opportunity_rate": K.safe_divide(f.lead_opportunities, f.sqls, reason="no SQLs"),
                "mql_to_sql_rate": K.safe_divide(f.sqls, f.mqls, reason="no MQLs"),
                "lead_to_mql_rate": K.safe_divide(f.mqls, f.leads, reason="no leads"),
                "visit_to_lead_rate": K.safe_divide(f.leads, f.visits, reason="no visits"),
            },
            dtype=float,
            name=f"FY{prev.fiscal_year}",
        )

    @cached_property
    def funnel_plan(self) -> pd.DataFrame:
        """Reverse funnel for the quarter's revenue target next to the quarter's actuals.

        Rates above 1 (possible with period counts, e.g. more SQLs than MQLs in a year) are
        capped at 1 for planning.
        """
        rates = {
            k: min(float(v), 1.0) if k != "avg_deal_size" and not math.isnan(v) else float(v)
            for k, v in self.trailing.items()
        }
        if any(math.isnan(v) for v in rates.values()):
            required = pd.Series(
                float("nan"), index=["lead_revenue", "won_deals", "opportunities", "sqls", "mqls", "leads", "visits"]
            )
        else:
            required = G.reverse_funnel(self.revenue_target, **rates)
        r = self.row
        actual = pd.Series(
            {
                "lead_revenue": r.lead_revenue,
                "won_deals": r.lead_won_deals,
                "opportunities": r.lead_opportunities,
                "sqls": r.sqls,
                "mqls": r.mqls,
                "leads": r.leads,
                "visits": r.visits,
            }
        )
        return pd.DataFrame({"required": required, "actual": actual.astype(float)})

    @property
    def revenue_target(self) -> float:
        return float(self.goal.quarterly[self.quarter.q])

    # -- pacing ----------------------------------------------------------------------------------
    @property
    def days_covered(self) -> int:
        return facts.days_covered(self.source, self.quarter)

    @property
    def complete(self) -> bool:
        return self.days_covered >= self.quarter.days

    @cached_property
    def pacing(self) -> dict[str, float] | None:
        """Run-rate projection to the quarter's end, for a quarter still in progress.

        Daily-grain counts are projected by days: value x days in quarter / days covered.
        Company revenue (monthly) is projected by closed months: revenue x 3 / months closed,
        undefined until the first month of the quarter has closed.
        """
        if self.complete:
            return None
        r = self.row
        out = {
            k: K.run_rate_projection(float(r[k]), days_elapsed=self.days_covered, days_in_period=self.quarter.days)
            for k in PACED
        }
        hist = self.revenue_quarters
        months = hist.loc[hist.quarter == self.quarter.label, "months"].sum()
        out["revenue"] = (
            K.run_rate_projection(float(r.revenue), days_elapsed=float(months), days_in_period=3.0)
            if months
            else K.Undefined("no month of the quarter has closed in the revenue table yet")
        )
        return out

    # -- KPI targets -----------------------------------------------------------------------------
    def kpi_table(self, metrics: dict[str, Any]) -> list[dict[str, Any]]:
        """Each KPI target next to its actual and status (projected when the quarter is in progress).

        Targets come from ``goals.yml``; ``target: funnel`` takes the reverse funnel's requirement
        and ``baseline: year_ago`` / ``previous_quarter`` that quarter's actual. Without KPIs in
        ``goals.yml``, the funnel metrics are tracked against the funnel with last year's baseline.
        """
        q = self.quarter
        targets = [t for t in self.settings.kpis if t.applies_to(q.label, q.fiscal.label)] or [
            KpiTarget(name=name, owner=owner, baseline="year_ago", target="funnel", metric=metric)
            for metric, (name, owner) in DEFAULT_KPIS.items()
        ]
        plan = self.funnel_plan
        # The goal itself leads the table: the quarter's revenue against its target.
        rows = [
            self._kpi_row(
                "Revenue",
                "revenue",
                "Leadership team",
                "revenue",
                self._actual(q.year_ago(), "revenue"),
                metrics.get("revenue_target"),
                metrics.get("revenue"),
                (self.pacing or {}).get("revenue"),
                True,
            )
        ]
        for t in targets:
            # the funnel plans won deals *from leads*; judge them on the same count
            plan_key = t.metric if t.metric in plan.index else None
            actual = plan.loc[plan_key, "actual"] if plan_key else (metrics.get(t.metric) if t.metric else None)
            target = plan.loc[plan_key, "required"] if t.target == "funnel" and plan_key else t.target
            baseline = t.baseline
            if isinstance(baseline, str):
                other = q.year_ago() if baseline == "year_ago" else q.previous()
                baseline = self._actual(other, plan_key or t.metric)
            projected = None
            if self.pacing is not None and (plan_key or t.metric) in _PLAN_FACT:
                projected = self.pacing[_PLAN_FACT[plan_key or t.metric]]
            rows.append(
                self._kpi_row(
                    t.name, t.metric, t.owner, t.goal, baseline, target, actual, projected, t.higher_is_better
                )
            )
        return rows

    def _actual(self, quarter: Quarter, metric: str | None) -> float | None:
        """A metric's actual in an earlier quarter of the trend (None when outside it)."""
        if metric is None or quarter.label not in self.trend.index:
            return None
        return _num(self.trend.loc[quarter.label].get(_PLAN_FACT.get(metric, metric)))

    @staticmethod
    def _kpi_row(
        name: str,
        metric: str | None,
        owner: str,
        goal: str,
        baseline: Any,
        target: Any,
        actual: Any,
        projected: Any,
        higher: bool,
    ) -> dict[str, Any]:
        # An unfinished quarter is judged on its run-rate projection, not on its part-quarter actual.
        judged = actual if projected is None else projected
        base = None if baseline is None else _nan(baseline)
        kind = metric_kind(metric)
        return {
            "name": name,
            "metric": metric,
            "owner": owner,
            "goal": goal,
            "baseline": _num(baseline),
            "target": _num(target),
            "actual": _num(actual),
            "projected": _num(projected),
            "higher_is_better": higher,
            "format": {"money": "currency", "pct": "percent"}.get(kind, "number"),
            "status": K.kpi_status(_nan(judged), _nan(target), baseline=base, higher_is_better=higher),
            "progress": _num(K.progress(_nan(judged), _nan(target), base)),
        }

    # -- the dict ----------------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        """The quarter's metrics as a JSON-ready dict (see docs/metrics.md for every key)."""
        q, r, s = self.quarter, self.row, self.settings
        und = Undefineds({})
        m: dict[str, Any] = {
            "kit_version": __version__,
            "data_fingerprint": self.source.fingerprint,
            "data_end": str(self.source.data_end),
            "quarter": q.label,
            "quarter_start": q.start.isoformat(),
            "quarter_end": q.last_day.isoformat(),
            "fiscal_year": q.fiscal.label,
            "complete": self.complete,
            "days_covered": self.days_covered,
            "days_in_quarter": q.days,
            "currency": s.currency,
            "attribution_model": self.attribution_model,
        }
        try:
            goal = self.goal
            m.update(
                revenue_target=self.revenue_target,
                revenue_target_fiscal_year=goal.target_revenue,
                target_growth=goal.target_growth,
                average_growth=goal.average_growth,
                growth_uplift=goal.uplift,
                revenue_goal_formula=goal.formula(),
            )
        except G.GoalError as exc:
            m.update(revenue_target=None, revenue_target_fiscal_year=None)
            und.reasons["revenue_target"] = str(exc)
        counts = (
            "leads",
            "visits",
            "mqls",
            "sqls",
            "opportunities",
            "won_deals",
            "new_customers",
            "users",
            "new_users",
            "organic_visits",
            "goal_completions",
            "content_views",
            "email_sends",
            "email_opens",
            "attendees",
        )
        for k in counts:
            m[k] = int(r[k])
        m["returning_users"] = int(K.returning_users(r.users, r.new_users))
        for k in ("revenue", "lead_revenue", "won_revenue", "marketing_cost", "sales_cost"):
            m[k] = float(r[k])
        fy_quarters = [x.label for x in q.fiscal.quarters if x.key <= q.key]
        m["revenue_fiscal_year_to_date"] = float(self.trend.loc[fy_quarters, "revenue"].sum())
        scalar = {
            "visits_per_lead": K.visits_per_lead(r.visits, r.leads),
            "value_per_lead": K.value_per_lead(r.lead_revenue, r.leads),
            "value_per_visit": K.value_per_visit(r.lead_revenue, r.visits),
            "visit_to_lead_rate": K.visit_to_lead_rate(r.visits, r.leads),
            "lead_to_customer_rate": K.lead_to_customer_rate(r.lead_won_deals, r.leads),
            "cost_per_lead": K.cost_per_lead(r.marketing_cost, r.leads),
            "cac": K.customer_acquisition_cost(r.marketing_cost, r.sales_cost, r.new_customers),
            "marketing_roi": K.marketing_roi(float(self.attribution["value"].sum()), r.marketing_cost),
            "bounce_rate": K.bounce_rate(r.engaged_sessions, r.visits),
            "avg_session_duration_s": K.avg_session_duration(r.session_duration_s, r.visits),
            "new_user_share": K.new_user_share(r.new_users, r.users),
            "email_open_rate": K.email_open_rate(r.email_opens, r.email_sends),
            "goal_conversion_rate": K.goal_conversion_rate(r.goal_completions, r.visits),
        }
        scalar["visit_to_lead_ratio"] = K.ratio_label(r.visits, r.leads)
        yearly_rev, customers = facts.customer_revenue(self.source, q.shift(-3).start, q.end)
        arpc = K.average_yearly_revenue_per_customer(yearly_rev, customers, 1.0)
        clv = K.customer_lifetime_value(arpc, gross_margin=s.gross_margin, lifetime_years=s.customer_lifetime_years)
        scalar.update(clv=clv, clv_to_cac=K.clv_to_cac(clv, scalar["cac"]), average_yearly_revenue_per_customer=arpc)
        m.update(gross_margin=s.gross_margin, customer_lifetime_years=s.customer_lifetime_years)
        for k, v in scalar.items():
            m[k] = v if isinstance(v, str) else _num(und.note(k, v))
        m["attributed_lead_revenue"] = float(self.attribution["value"].sum())
        pace = self.pacing
        m["pacing"] = None if pace is None else {k: _num(v) for k, v in pace.items()}
        m["previous_quarter"] = self._compare(q.previous())
        m["year_ago"] = self._compare(q.year_ago())
        m["funnel_plan"] = {
            k: {"required": _num(v.required), "actual": _num(v.actual)} for k, v in self.funnel_plan.iterrows()
        }
        m["by_channel"] = {
            str(ch): {
                "visits": int(row.visits),
                "leads": int(row.leads),
                "opportunities": int(row.opportunities),
                "won_deals": int(row.won_deals),
                "lead_revenue": float(row.lead_revenue),
                "attributed_revenue": float(row.attributed_revenue),
                "cost": float(row.marketing_cost),
                "cost_per_lead": _num(row.cost_per_lead),
                "roi": _num(row.roi),
            }
            for ch, row in self.channels.iterrows()
        }
        m["kpis"] = self.kpi_table(m)
        m["undefined"] = und.reasons
        return m

    def _compare(self, other: Quarter) -> dict[str, Any] | None:
        """Facts and KPIs of an earlier quarter (None when it precedes the trend window)."""
        if other.label not in self.trend.index:
            return None
        row = self.trend.loc[other.label]
        return {"quarter": other.label, **{k: _num(v) for k, v in row.items()}}


#: funnel-plan metric -> the fact it is judged on (the plan counts deals that came from leads)
_PLAN_FACT = {
    "won_deals": "lead_won_deals",
    "opportunities": "lead_opportunities",
    "visits": "visits",
    "leads": "leads",
    "mqls": "mqls",
    "sqls": "sqls",
    "lead_revenue": "lead_revenue",
}


def _nan(x: Any) -> float:
    v = _num(x)
    return float("nan") if v is None else v


def quarter_metrics(
    source: DataSource,
    quarter: str | Quarter = "latest",
    *,
    attribution_model: str = "position_based",
    today: Any = None,
) -> dict[str, Any]:
    """The quarter's metrics dict (what ``metrics.json`` holds)."""
    return QuarterKpis(source, quarter, attribution_model=attribution_model, today=today).metrics()


def to_json(metrics: dict[str, Any]) -> str:
    """Serialise metrics: NaN becomes null, keys keep their order, dates become ISO text."""

    def default(o: Any) -> Any:
        if isinstance(o, dt.date):
            return o.isoformat()
        if hasattr(o, "item"):
            return o.item()
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    def clean(o: Any) -> Any:
        if isinstance(o, float):
            return _num(o)
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        return o

    return json.dumps(clean(metrics), indent=2, default=default, allow_nan=False, ensure_ascii=False)


def _fmt(value: Any, kind: str, currency: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if kind == "money":
        return f"{currency} {value:,.0f}"
    if kind == "money2":
        return f"{currency} {value:,.2f}"
    if kind == "pct":
        return f"{value:.1%}"
    if kind == "ratio":
        return f"{value:,.2f}"
    return f"{value:,.0f}"


SUMMARY_ROWS = (
    ("Revenue", "revenue", "money"),
    ("Revenue target (quarter)", "revenue_target", "money"),
    ("Visits", "visits", "int"),
    ("Leads", "leads", "int"),
    ("Visits per lead", "visits_per_lead", "ratio"),
    ("Visit-to-lead rate", "visit_to_lead_rate", "pct"),
    ("MQLs", "mqls", "int"),
    ("SQLs", "sqls", "int"),
    ("Opportunities", "opportunities", "int"),
    ("Won deals", "won_deals", "int"),
    ("Won revenue", "won_revenue", "money"),
    ("Lead revenue", "lead_revenue", "money"),
    ("Value per lead", "value_per_lead", "money"),
    ("Value per visit", "value_per_visit", "money2"),
    ("Lead-to-customer rate", "lead_to_customer_rate", "pct"),
    ("Bounce rate", "bounce_rate", "pct"),
    ("Marketing cost", "marketing_cost", "money"),
    ("Cost per lead", "cost_per_lead", "money"),
    ("New customers", "new_customers", "int"),
    ("CAC", "cac", "money"),
    ("CLV", "clv", "money"),
    ("CLV:CAC", "clv_to_cac", "ratio"),
    ("Marketing ROI", "marketing_roi", "pct"),
    ("Email open rate", "email_open_rate", "pct"),
)


def metric_kind(metric: str | None) -> str:
    """How a metric is shown: ``money``, ``pct``, ``ratio`` or ``int``."""
    name = metric or ""
    if name.endswith("_rate") or name in ("marketing_roi", "roi", "new_user_share", "target_growth", "average_growth"):
        return "pct"
    if name in ("clv_to_cac", "visits_per_lead"):
        return "ratio"
    if (
        name.startswith(("cost", "value_"))
        or name.endswith(("revenue", "_cost", "cac", "clv", "_target"))
        or name in ("cac", "clv", "cost_per_lead")
    ):
        return "money"
    return "int"


def format_summary(m: dict[str, Any]) -> str:
    """A plain-text KPI table for the terminal (``kpi summary``)."""
    cur = m["currency"]
    prev = m.get("previous_quarter") or {}
    state = "complete" if m["complete"] else f"in progress, {m['days_covered']} of {m['days_in_quarter']} days"
    lines = [
        f"{m['quarter']} ({m['quarter_start']} to {m['quarter_end']}, {state}); data to {m['data_end']}",
        f"{'KPI':<26}{'value':>18}{'previous':>18}",
    ]
    for label, key, kind in SUMMARY_ROWS:
        lines.append(f"{label:<26}{_fmt(m.get(key), kind, cur):>18}{_fmt(prev.get(key), kind, cur):>18}")
    lines.append(f"ROI by channel ({m['attribution_model']} attribution):")
    for ch, c in m["by_channel"].items():
        lines.append(
            f"  {ch:<24}{_fmt(c['attributed_revenue'], 'money', cur):>18}  cost "
            f"{_fmt(c['cost'], 'money', cur):>14}  ROI {_fmt(c['roi'], 'pct', cur):>8}"
        )
    if m["kpis"]:
        lines.append("KPI targets:")
        for k in m["kpis"]:
            kind = metric_kind(k["metric"])
            proj = f" (projected {_fmt(k['projected'], kind, cur)})" if k.get("projected") is not None else ""
            lines.append(
                f"  {k['name']:<38}{_fmt(k['actual'], kind, cur):>12}{proj} of {_fmt(k['target'], kind, cur)}"
                f"  {k['status']} ({k['owner']})"
            )
    for key, why in m.get("undefined", {}).items():
        lines.append(f"  note: {key} is undefined: {why}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Notebook tables. Added for notebooks 01-04 (plots/notebooks owner): additive only, nothing above
# changed. Each builds one table a notebook shows, from the facts and the KPI formulas, so the
# notebooks select and format but do not compute. Candidates for QuarterKpis methods.

#: label of the all-channels row of :func:`channel_funnel`
ALL_CHANNELS = "All channels"
_COHORT_STAGES = ("leads", "mqls", "sqls", "opportunities", "won")


def goal_scenario(kq: QuarterKpis, *, uplift: float) -> QuarterKpis:
    """``kq`` with another growth uplift (what-if): ``goal`` and ``funnel_plan`` are recomputed,
    the facts already fetched stay cached, so a scenario runs no engine query."""
    import copy
    import dataclasses

    alt = copy.copy(kq)
    for key in ("goal", "funnel_plan"):
        alt.__dict__.pop(key, None)
    alt.settings = dataclasses.replace(kq.settings, growth_uplift=float(uplift))
    return alt


def channel_funnel(kq: QuarterKpis, *, by: str = "channel") -> pd.DataFrame:
    """Funnel of the leads created in the quarter per ``by`` (channel or campaign), followed to the
    data's end (:func:`facts.cohort_funnel`), with stage conversion rates (fractions) and median days
    between stages. The last row, :data:`ALL_CHANNELS`, sums the counts (its medians are NaN:
    ``facts.cohort_funnel(by=None)`` fails on ibis 12, see the notebooks' report)."""
    q = kq.quarter
    f = facts.cohort_funnel(kq.source, q.start, q.end, by=by)
    total = f[list(_COHORT_STAGES)].sum().to_frame(ALL_CHANNELS).T
    f = pd.concat([f, total]) if len(f) else total
    f.index.name = by
    f[list(_COHORT_STAGES)] = f[list(_COHORT_STAGES)].astype("int64")
    for a, b, name in (
        ("leads", "mqls", "lead_to_mql"),
        ("mqls", "sqls", "mql_to_sql"),
        ("sqls", "opportunities", "sql_to_opportunity"),
        ("opportunities", "won", "opportunity_to_won"),
        ("leads", "sqls", "lead_to_sql"),
        ("leads", "won", "lead_to_won"),
    ):
        f[f"{name}_rate"] = K.conversion_rate(f[b].astype(float), f[a].astype(float))
    return f


def web_table(kq: QuarterKpis, by: str = "device") -> pd.DataFrame:
    """Web metrics of the quarter per ``by`` (device, channel, landing_page, ...): sessions and their
    share, users new and returning, bounce rate, average session duration (seconds)."""
    w = facts.web_breakdown(kq.source, kq.quarter, by)
    w["share"] = K.safe_divide(w.sessions.astype(float), float(w.sessions.sum()), reason="no sessions")
    w["returning_users"] = K.returning_users(w.users, w.new_users)
    w["new_user_share"] = K.new_user_share(w.new_users, w.users)
    w["bounce_rate"] = K.bounce_rate(w.engaged_sessions, w.sessions)
    w["avg_session_duration_s"] = K.avg_session_duration(w.session_duration_s, w.sessions)
    return w


def goal_conversion(kq: QuarterKpis, *, by_landing_page: bool = False) -> pd.DataFrame:
    """Site goal completions of the quarter per goal (and landing page) with the goal conversion rate
    (completions per session of that landing page, or of the site)."""
    g = facts.goal_facts(kq.source, kq.quarter, by_landing_page=by_landing_page)
    g["conversion_rate"] = K.goal_conversion_rate(g.completions.astype(float), g.sessions.astype(float))
    return g.set_index(["goal", "landing_page"]) if by_landing_page else g


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
    c = kq.channels
    out = c[["marketing_cost", "leads", "cost_per_lead", "attributed_conversions", "attributed_revenue"]].copy()
    out = out.join(_acquisition(out.marketing_cost, out.attributed_conversions, clv)).join(c["roi"])
    out.loc[out.index.isin([UNALLOCATED, SALES_SOURCED]), ["cac", "clv_to_cac", "roi"]] = float("nan")
    out.attrs["attribution_model"] = kq.attribution_model
    return out


def campaign_economics(kq: QuarterKpis, *, clv: float | None = None) -> pd.DataFrame:
    """Per campaign under ``kq.attribution_model``: channel, marketing spend booked on it (cost types
    other than ``sales``), leads created, cost per lead, attributed won deals and revenue, CAC,
    CLV:CAC and ROI; campaigns with spend, leads or credit in the quarter, most spend first.

    Spend without a campaign, leads and touches without one are the row ``(not set)``; it gets no
    ratios (it mixes channel overheads with untagged traffic). Ratios are NaN without spend.
    """
    from .attribution import NOT_SET

    sp = facts.spend_breakdown(kq.source, kq.quarter)
    sp = sp[sp.cost_type != "sales"].replace({"campaign": {"(none)": NOT_SET}})
    spend = sp.groupby("campaign").agg(
        channel=("channel", lambda s: s.iloc[0] if s.nunique() == 1 else "(several)"), marketing_cost=("amount", "sum")
    )
    leads = channel_funnel(kq, by="campaign")["leads"].drop(ALL_CHANNELS)
    leads = leads.groupby(leads.index.to_series().fillna(NOT_SET).replace({"nan": NOT_SET}).values).sum()
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
    of ``comparison`` (channels x models), plus ``best``, ``worst`` and ``spread`` (worst - best),
    the channels whose rank moves most first."""
    ranks = comparison.rank(axis=0, ascending=False, method="min").astype("int64")
    ranks.columns.name = None
    out = ranks.assign(best=ranks.min(axis=1), worst=ranks.max(axis=1))
    out["spread"] = out["worst"] - out["best"]
    return out.sort_values(["spread", "best"], ascending=[False, True])
