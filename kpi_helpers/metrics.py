"""A quarter's KPIs, computed once: what ``metrics.json``, ``kpi summary`` and the notebooks show.

:class:`QuarterKpis` gathers the facts of a quarter from the engine (each fact once, cached) and
applies the KPI formulas of :mod:`kpi_helpers.kpis` through the registry (:mod:`kpi_helpers.registry`),
the goal setting of :mod:`kpi_helpers.goals` and the attribution of :mod:`kpi_helpers.attribution`.
:func:`quarter_metrics` returns the machine-readable dict; the notebooks read the same object, so
a number in the HTML and in ``metrics.json`` come from one computation.

Missing data is never a 0. Each KPI is computed only where the tables it needs are present and
cover the quarter (:mod:`kpi_helpers.coverage`); otherwise it is null in ``metrics.json`` and
``undefined`` says why in words a person can act on ("needs spend: add spend.csv ..."). A KPI
computed on part of a quarter (a gap in the web sessions, a table that starts mid-quarter) is
listed under ``partial`` with the days it lacks and is not judged against a full-quarter target.

Definitions that need a choice (documented in docs/kpis.md):

- ``lead_to_customer_rate`` = won deals with a lead closed in the quarter / leads created in it.
- ``clv`` = average yearly revenue per customer (won revenue of the trailing 4 quarters / accounts
  it came from) x ``gross_margin`` x ``customer_lifetime_years`` (``goals.yml``).
- ``marketing_roi`` = (attributed lead revenue - marketing cost) / marketing cost; attribution
  redistributes lead revenue across channels (a lead without touches is credited to its own
  channel), so the total equals ``lead_revenue`` whatever the model, and only the per-channel
  figures depend on ``attribution_model``.
- Trailing rates for the reverse funnel come from the fiscal year before the goal's year.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cached_property
from typing import Any, cast

import pandas as pd

from . import __version__, facts, jsonio
from . import goals as G
from . import kpis as K
from .attribution import MODELS, NEED_NULLS, attribute, compare_models, touch_journeys
from .config import KpiTarget
from .coverage import Coverage
from .exceptions import KpiError
from .formats import finite_number, format_value
from .periods import Quarter
from .registry import KPIS, Kpi, label_of, missing_reason, unit_of
from .schema import SALES_SOURCED, UNALLOCATED
from .source import DataSource
from .status import judge, projections

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
#: reverse-funnel stages and the rate that leads from each stage to the one below it
FUNNEL_STAGES = ("lead_revenue", "won_deals", "opportunities", "sqls", "mqls", "leads", "visits")
_FUNNEL_RATES = (
    "lead_revenue_share",
    "avg_deal_size",
    "win_rate",
    "sql_to_opportunity_rate",
    "mql_to_sql_rate",
    "lead_to_mql_rate",
    "visit_to_lead_rate",
)
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
#: KPIs whose value needs more than one quarter's facts (computed in `_special`)
_SPECIAL = ("average_yearly_revenue_per_customer", "clv", "clv_to_cac")


def _nan(x: Any) -> float:
    v = finite_number(x)
    return float("nan") if v is None else v


def _json_value(key: str, value: Any) -> Any:
    """A KPI value as metrics.json holds it: whole numbers for counts, None when undefined."""
    v = finite_number(value)
    if v is not None and unit_of(key) == "count":
        return round(v)
    return v


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

    @property
    def coverage(self) -> Coverage:
        return self.source.coverage

    def has(self, *tables: str) -> bool:
        """The source has every one of ``tables`` (a notebook section checks before it draws)."""
        return all(t in self.source.present for t in tables)

    def missing_note(self, *tables: str) -> str:
        """One line naming the first table of ``tables`` the source lacks and how to add it ('' when none)."""
        from .registry import HOW_TO_ADD

        for t in tables:
            if t not in self.source.present:
                return f"This section needs `{t}`: {HOW_TO_ADD.get(t, f'add {t}.csv')}."
        return ""

    # -- facts -----------------------------------------------------------------------------------
    @cached_property
    def trend(self) -> pd.DataFrame:
        """Facts of the last :data:`TREND_QUARTERS` quarters up to this one, plus every registry KPI on
        them (NaN where a quarter's data does not allow it, see :meth:`value`)."""
        q = self.quarter
        df = facts.quarterly_facts(self.source, q.shift(-(TREND_QUARTERS - 1)), q)
        rates = {}
        for key, kpi in KPIS.items():
            if kpi.compute is None or key in df:
                continue
            rates[key] = pd.Series(kpi.compute(df), index=df.index, dtype=float)
        return df.join(pd.DataFrame(rates, index=df.index))

    @property
    def row(self) -> pd.Series:
        return cast(pd.Series, self.trend.loc[self.quarter.label])  # quarter labels are unique

    def availability(self, kpi: Kpi, quarter: Quarter | None = None) -> tuple[str, str]:
        """``("ok" | "partial" | "na", reason)`` for ``kpi`` in ``quarter`` (default: this one).

        n/a when a table it needs is absent or has no data in the quarter; partial when its tables
        cover only part of the quarter (a sum then counts those days only; a ratio whose inputs
        cover different days is n/a, as it would compare unlike periods).
        """
        q = quarter or self.quarter
        why = missing_reason(kpi, present=self.source.present, filled=self.coverage.filled)
        if why:
            return "na", why
        sts = self.coverage.statuses(kpi.needs, q)
        for st in sts.values():
            if st.status == "none":
                return "na", st.reason
        partial = [st for st in sts.values() if st.status == "partial"]
        if not partial:
            return "ok", ""
        reasons = "; ".join(st.reason for st in partial)
        if kpi.additive or len({st.missing for st in sts.values()}) == 1:
            return "partial", reasons
        return "na", f"its inputs cover different days of {q.label}: {reasons}"

    def value(self, key: str, quarter: Quarter | None = None) -> Any:
        """A KPI's value in a quarter of the trend: a number, or :class:`~kpi_helpers.kpis.Undefined`
        with the reason it cannot be given."""
        q = quarter or self.quarter
        kpi = KPIS[key]
        state, why = self.availability(kpi, q)
        if state == "na":
            return K.Undefined(why)
        if key in _SPECIAL:
            return self._special(key, q)
        if q.label not in self.trend.index:
            return K.Undefined(f"{q.label} is outside the {TREND_QUARTERS} quarters the report reads")
        v = cast(float, self.trend.loc[q.label, key])  # KPI columns hold floats
        if pd.isna(v):
            reason = self.trend[key].attrs.get("nan_reason") or "not computable from the data"
            return K.Undefined(_why_nan(key, cast(pd.Series, self.trend.loc[q.label]), reason))
        return float(v)

    def _special(self, key: str, q: Quarter) -> Any:
        """CLV and its parts: a year of won deals per customer, not one quarter's facts."""
        first = q.shift(-3)
        if self.coverage.status("opportunities", first).status in ("none", "absent"):
            return K.Undefined(f"needs a year of won deals ({first.label} to {q.label}); `opportunities` starts later")
        yearly_rev, customers = facts.customer_revenue(self.source, first.start, facts.so_far(self.source, q)[1])
        arpc = K.average_yearly_revenue_per_customer(yearly_rev, customers, 1.0)
        if key == "average_yearly_revenue_per_customer":
            return arpc
        s = self.settings
        clv = K.customer_lifetime_value(arpc, gross_margin=s.gross_margin, lifetime_years=s.customer_lifetime_years)
        if key == "clv":
            return clv
        return K.clv_to_cac(clv, self.value("cac", q))

    # -- channels and attribution -------------------------------------------------------------
    @cached_property
    def channels(self) -> pd.DataFrame:
        """Per-channel facts of the quarter with attributed revenue, cost per lead and ROI."""
        df = facts.channel_facts(self.source, self.quarter)
        credit = self.attribution.rename(
            columns={"value": "attributed_revenue", "conversions": "attributed_conversions"}
        )
        df = df.join(credit, how="outer")
        for c in ("attributed_revenue", "attributed_conversions"):
            df[c] = df[c].fillna(0.0) if self._credited else float("nan")
        for c in facts.CHANNEL_FACTS:
            # a channel that only appears in another table had none of this fact (where the fact is known)
            df[c] = df[c].fillna(0.0) if facts.fact_covered(self.source, c, self.quarter) else float("nan")
        df["cost_per_lead"] = K.cost_per_lead(df.marketing_cost, df.leads)
        df["roi"] = K.marketing_roi(df.attributed_revenue, df.marketing_cost)
        # Unallocated cost and sales-sourced deals are not channels one can invest in.
        df.loc[df.index.isin([UNALLOCATED, SALES_SOURCED]), ["cost_per_lead", "roi"]] = float("nan")
        df.index.name = "channel"
        return df.sort_values(["attributed_revenue", "leads"], ascending=False)

    @property
    def _credited(self) -> bool:
        """Lead revenue is known for the quarter, so attribution's credit is a number (else n/a)."""
        return facts.fact_covered(self.source, "lead_revenue", self.quarter)

    @cached_property
    def attribution_source(self) -> str:
        """Where the quarter's channel credit comes from: ``touchpoints`` (the leads' touches, a lead
        without any credited to its own channel), ``paths`` (a conversion-path export whose period is
        the quarter, when there are no touchpoints) or ``own_channel`` (no touches: each lead's own
        channel and campaign)."""
        q = self.quarter
        if self.coverage.status("touchpoints", q).status in ("full", "partial"):
            return "touchpoints"
        period = self.coverage.tables.get("paths")
        if period is not None and (period.first_date, period.last_date) == (q.start, q.last_day):
            return "paths"
        return "own_channel"

    def _touches(self) -> Any:
        return self.source.table("touchpoints") if self.has("touchpoints") else None

    @cached_property
    def converting_journeys(self) -> Any:
        """The journeys of the deals won in the quarter, without the non-converting ones (lazy:
        one model's query builds them): all that models other than ``markov`` read."""
        s = self.source
        return touch_journeys(
            self._touches(),
            s.table("leads"),
            self._new_business(),
            start=self.quarter.start,
            end=self.quarter.end,
            include_nulls=False,
        )

    def _new_business(self) -> Any:
        """The opportunities attribution credits: new business (renewals and expansions are the customer's,
        not marketing's), so every model's credit sums to the quarter's lead revenue."""
        opps = self.source.table("opportunities")
        return opps.filter(facts.is_new_business(opps))

    def _journeys_for(self, model: str) -> Any:
        if self.attribution_source == "paths":
            return self.source.table("paths")
        return self.journeys if model in NEED_NULLS else self.converting_journeys

    @cached_property
    def journeys(self) -> Any:
        s = self.source
        journeys = touch_journeys(
            self._touches(), s.table("leads"), self._new_business(), start=self.quarter.start, end=self.quarter.end
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
    def converters_only(self) -> bool:
        """Markov runs in its converters-only mode: the credit's input has no non-converting journeys
        (a GA conversion-path export holds converting paths only). The report says so."""
        if self.attribution_model != "markov":
            return False
        if self.attribution_source == "paths":
            paths = self.source.table("paths")
            return not self.source.fetch(paths.nulls.fill_null(0).sum(), label="paths nulls") > 0
        return False

    def _attribute(self, model: str, by: str = "channel") -> pd.DataFrame:
        opts: dict[str, Any] = {"converters_only": True} if model == "markov" and self.converters_only else {}
        if by != "channel":
            opts["by"] = by  # a path table names channels only (campaigns: see attribution_by_campaign)
        return self._memo(
            "attribution",
            model,
            by,
            self.attribution_source,
            tuple(sorted(opts.items())),
            compute=lambda: attribute(self._journeys_for(model), model, **opts),
        )

    @cached_property
    def attribution(self) -> pd.DataFrame:
        """Lead revenue won in the quarter credited to channels by :attr:`attribution_model`."""
        return self._attribute(self.attribution_model)

    def attribution_by_campaign(self) -> pd.DataFrame:
        if self.attribution_source == "paths":
            # a path export names channels only: campaigns come from the leads' own campaigns
            return self._memo(
                "attribution",
                self.attribution_model,
                "campaign",
                "own_channel",
                compute=lambda: attribute(self.converting_journeys, "last_touch", by="campaign"),
            )
        return self._attribute(self.attribution_model, "campaign")

    def attribution_comparison(self, models: tuple[str, ...] | None = None) -> pd.DataFrame:
        """Revenue credited per channel under every model that applies (channels x models); a model
        left out (Markov without non-converting journeys, touch-level models on a path export) is
        named with the reason in ``attrs["skipped"]``."""
        source = self._journeys_for("markov")
        key = tuple(models) if models is not None else None
        return self._memo(
            "comparison", key, self.attribution_source, compute=lambda: compare_models(source, models=models)
        )

    @cached_property
    def credit_sources(self) -> dict[str, float | None] | None:
        """Shares (0-1) of the quarter's attributed lead revenue that came from touch journeys and from
        the leads' own channels; None when credit comes from a conversion-path export."""
        if self.attribution_source == "paths" or not self._credited:
            return None
        shares = self._memo("credit sources", compute=lambda: self.converting_journeys.credit_sources())
        return {
            k: finite_number(shares.loc[k, "value_share"])
            for k in ("touch_journeys", "own_channel")
            if k in shares.index
        }

    # -- goals -----------------------------------------------------------------------------------
    @cached_property
    def revenue_history(self) -> pd.Series:
        if not self.has("revenue"):
            return pd.Series(dtype=float, name="revenue")
        return facts.revenue_by_fiscal_year(self.source, complete_only=True)

    @cached_property
    def revenue_quarters(self) -> pd.DataFrame:
        if not self.has("revenue"):
            return pd.DataFrame(columns=["quarter", "fiscal_year", "q", "revenue", "months"])
        return facts.revenue_by_quarter(self.source)

    @cached_property
    def goal(self) -> G.RevenueGoal:
        """The fiscal year's revenue goal, from the completed fiscal years before it.

        Raises :class:`~kpi_helpers.exceptions.GoalError` (with a reason to show) when there is no
        target to set: no `revenue` table, or no complete fiscal year before this one.
        """
        if not self.has("revenue"):
            raise G.GoalError(f"no revenue target: {missing_reason(KPIS['revenue'], present=self.source.present)}")
        fy = self.quarter.fiscal_year
        hist = self.revenue_quarters
        before = hist[hist.fiscal_year < fy]
        months = before.groupby("fiscal_year")["months"].sum()
        if fy - 1 in months.index and months.loc[fy - 1] < 12:
            raise G.GoalError(
                f"no revenue target for FY{fy}: FY{fy - 1} has {int(months.loc[fy - 1])} of 12 months in the `revenue` "
                "table; the target is built on the last complete fiscal year (add the missing months)"
            )
        full_years = before.groupby("fiscal_year")["months"].transform("sum") == 12
        shares = G.seasonality(before[full_years][["fiscal_year", "q", "revenue"]]) if full_years.any() else None
        return G.revenue_goal(
            self.revenue_history,
            fiscal_year=fy,
            uplift=self.settings.growth_uplift,
            lookback_years=self.settings.growth_lookback_years,
            quarter_shares=shares,
        )

    @cached_property
    def goal_problem(self) -> str:
        """Why there is no revenue target ('' when there is one)."""
        try:
            _ = self.goal
        except G.GoalError as exc:
            return str(exc)
        return ""

    @property
    def revenue_target(self) -> float:
        if self.goal_problem:
            return K.Undefined(self.goal_problem)
        return float(self.goal.quarterly[self.quarter.q])

    @cached_property
    def trailing(self) -> pd.Series:
        """Conversion rates, deal size and lead share of the fiscal year before the goal's year
        (NaN with the reason in ``attrs`` where that year's data does not give them)."""
        prev = self.quarter.fiscal.quarters[0].shift(-4)
        # The 8-quarter trend always reaches back to the previous fiscal year's first quarter.
        # min_count: a year with a quarter of missing data gives no rate (never a rate on 0).
        f = self.trend.loc[[prev.shift(i).label for i in range(4)]].sum(min_count=4)
        year = f"FY{prev.fiscal_year}"
        out = pd.Series(
            {
                "lead_revenue_share": K.safe_divide(f.lead_revenue, f.revenue, reason=f"no revenue in {year}"),
                "avg_deal_size": K.safe_divide(
                    f.lead_revenue, f.lead_won_deals, reason=f"no won deals from leads in {year}"
                ),
                "win_rate": K.safe_divide(f.lead_won_deals, f.lead_opportunities, reason=f"no opportunities in {year}"),
                "sql_to_opportunity_rate": K.safe_divide(f.lead_opportunities, f.sqls, reason=f"no SQLs in {year}"),
                "mql_to_sql_rate": K.safe_divide(f.sqls, f.mqls, reason=f"no MQLs in {year}"),
                "lead_to_mql_rate": K.safe_divide(f.mqls, f.leads, reason=f"no leads in {year}"),
                "visit_to_lead_rate": K.safe_divide(f.leads, f.visits, reason=f"no visits in {year}"),
            },
            dtype=float,
            name=year,
        )
        return out

    @cached_property
    def funnel_plan(self) -> pd.DataFrame:
        """Reverse funnel for the quarter's revenue target next to the quarter's actuals.

        Rates above 1 (possible with period counts, e.g. more SQLs than MQLs in a year) are capped at
        1 for planning. A stage whose rate (or a rate below it) is unknown has no requirement; the
        reasons are in ``attrs["reasons"]``.
        """
        rates = self.trailing
        reasons: dict[str, str] = {}
        required: dict[str, float] = {}
        target = self.revenue_target
        value = float(target)
        why = self.goal_problem
        for stage, rate_name in zip(FUNNEL_STAGES, _FUNNEL_RATES, strict=True):
            rate = float(rates[rate_name])
            if math.isnan(rate) and not why:
                why = f"{rate_name.replace('_', ' ')} of {rates.name} unknown: {_trailing_reason(self, rate_name)}"
            if why:
                required[stage], reasons[stage] = float("nan"), why
                continue
            if rate_name == "avg_deal_size":
                value = value / rate if rate > 0 else float("nan")
            elif rate_name == "lead_revenue_share":
                value = value * min(rate, 1.0)
            else:
                value = value / min(rate, 1.0) if rate > 0 else float("nan")
            required[stage] = value
        r = self.row
        actual = {stage: self._plan_actual(stage, r) for stage in FUNNEL_STAGES}
        out = pd.DataFrame({"required": pd.Series(required), "actual": pd.Series(actual, dtype=float)})
        out.attrs["reasons"] = reasons
        return out

    def _plan_actual(self, stage: str, r: pd.Series) -> float:
        fact = _PLAN_FACT[stage]
        return float(r[fact]) if fact in r and not pd.isna(r[fact]) else float("nan")

    # -- pacing ----------------------------------------------------------------------------------
    @property
    def in_progress(self) -> bool:
        return self.coverage.in_progress(self.quarter)

    @property
    def days_covered(self) -> int:
        """Days of the quarter the activity tables cover (the days so far while it is in progress)."""
        w = self.coverage.window(self.quarter)
        days = [self.coverage.status(t, self.quarter).covered_days for t in self.coverage.activity]
        return min(days) if days else w.days if self.source.present else 0

    @property
    def complete(self) -> bool:
        return self.coverage.complete(self.quarter)

    @cached_property
    def pacing(self) -> dict[str, float] | None:
        """Run-rate projection to the quarter's end, for a quarter still in progress.

        Each additive KPI is projected by the days its tables cover so far: value x days in quarter /
        days covered. Company revenue (monthly) is projected by closed months: revenue x 3 / months
        closed, undefined until the first month of the quarter has closed.
        """
        if not self.in_progress:
            return None
        q = self.quarter
        out: dict[str, Any] = {}
        for key, kpi in KPIS.items():
            if not kpi.additive or key == "revenue":
                continue
            state, why = self.availability(kpi)
            if state == "na":
                out[key] = K.Undefined(why)
                continue
            days = min(self.coverage.status(t, q).covered_days for t in kpi.needs)
            out[key] = K.run_rate_projection(float(self.row[key]), days_elapsed=days, days_in_period=q.days)
        for fact in ("lead_won_deals", "lead_opportunities"):
            days = min(self.coverage.status(t, q).covered_days for t in facts.fact_tables(fact))
            v = self.row[fact]
            out[fact] = (
                K.Undefined("no data")
                if pd.isna(v)
                else K.run_rate_projection(float(v), days_elapsed=days, days_in_period=q.days)
            )
        hist = self.revenue_quarters
        months = hist.loc[hist.quarter == q.label, "months"].sum() if len(hist) else 0
        if not self.has("revenue"):
            out["revenue"] = K.Undefined(cast(str, missing_reason(KPIS["revenue"], present=self.source.present)))
        elif months:
            out["revenue"] = K.run_rate_projection(
                float(self.row.revenue), days_elapsed=float(months), days_in_period=3.0
            )
        else:
            out["revenue"] = K.Undefined("no month of the quarter has closed in the revenue table yet")
        return out

    # -- KPI targets -----------------------------------------------------------------------------
    def kpi_table(self, metrics: dict[str, Any]) -> list[dict[str, Any]]:
        """Each KPI target next to its actual and status (projected when the quarter is in progress).

        Targets come from ``goals.yml``; ``target: funnel`` takes the reverse funnel's requirement
        and ``baseline: year_ago`` / ``previous_quarter`` that quarter's actual. Without KPIs in
        ``goals.yml``, the funnel metrics are tracked against the funnel with last year's baseline.
        A KPI whose data is missing or partial gets status ``no data`` and a ``note`` saying why.
        """
        q = self.quarter
        targets = [t for t in self.settings.kpis if t.applies_to(q.label, q.fiscal.label)] or [
            KpiTarget(name=name, owner=owner, baseline="year_ago", target="funnel", metric=metric)
            for metric, (name, owner) in DEFAULT_KPIS.items()
        ]
        plan = self.funnel_plan
        pace = projections(self.pacing, metrics.get("forecast"))
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
                pace.get("revenue"),
                True,
                self._note("revenue", metrics) or (self.goal_problem if metrics.get("revenue_target") is None else ""),
            )
        ]
        for t in targets:
            # the funnel plans won deals *from leads*; judge them on the same count
            plan_key = t.metric if t.metric in plan.index else None
            fact = _PLAN_FACT.get(plan_key or "", t.metric)
            actual = plan.loc[plan_key, "actual"] if plan_key else (metrics.get(t.metric) if t.metric else None)
            target = cast(float, plan.loc[plan_key, "required"]) if t.target == "funnel" and plan_key else t.target
            baseline = t.baseline
            if isinstance(baseline, str):
                other = q.year_ago() if baseline == "year_ago" else q.previous()
                baseline = self._actual(other, plan_key or t.metric)
            projected = pace.get(fact) if fact else None
            note = self._note(t.metric, metrics) if t.metric else ""
            if not note and t.target == "funnel" and plan_key and pd.isna(target):
                note = plan.attrs["reasons"].get(plan_key, "")
            rows.append(
                self._kpi_row(
                    t.name, t.metric, t.owner, t.goal, baseline, target, actual, projected, t.higher_is_better, note
                )
            )
        return rows

    def _note(self, metric: str | None, metrics: dict[str, Any]) -> str:
        if not metric:
            return ""
        return metrics.get("undefined", {}).get(metric) or metrics.get("partial", {}).get(metric) or ""

    def _actual(self, quarter: Quarter, metric: str | None) -> float | None:
        """A metric's actual in an earlier quarter of the trend (None when outside it or not covered)."""
        if metric is None or quarter.label not in self.trend.index:
            return None
        key = _PLAN_FACT.get(metric, metric)
        if key in KPIS:
            return finite_number(self.value(key, quarter))
        return finite_number(self.trend.loc[quarter.label].get(key))

    def _kpi_row(
        self,
        name: str,
        metric: str | None,
        owner: str,
        goal: str,
        baseline: Any,
        target: Any,
        actual: Any,
        projected: Any,
        higher: bool,
        note: str = "",
    ) -> dict[str, Any]:
        # An unfinished quarter is judged on its run-rate projection, not on its part-quarter actual;
        # a finished quarter with missing days is not judged at all (its sum is short of the quarter).
        judged = actual if projected is None else projected
        partial = bool(metric) and metric in self._partial_keys and projected is None
        base = None if baseline is None else _nan(baseline)
        unit = unit_of(metric or "") or "count"
        status = judge(actual, target, baseline=base, higher_is_better=higher, projected=projected, partial=partial)
        return {
            "name": name,
            "metric": metric,
            "owner": owner,
            "goal": goal,
            "baseline": finite_number(baseline),
            "target": finite_number(target),
            "actual": finite_number(actual),
            "projected": finite_number(projected),
            "higher_is_better": higher,
            "unit": unit,
            "format": {"money": "currency", "money_small": "currency", "percent": "percent"}.get(unit, "number"),
            "status": status,
            "progress": None if partial else finite_number(K.progress(_nan(judged), _nan(target), base)),
            "note": note,
        }

    @cached_property
    def _partial_keys(self) -> set[str]:
        return {k for k, kpi in KPIS.items() if self.availability(kpi)[0] == "partial"}

    # -- the dict ----------------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        """The quarter's metrics as a JSON-ready dict (see docs/metrics.md for every key)."""
        q, s = self.quarter, self.settings
        m: dict[str, Any] = {
            "kit_version": __version__,
            "data_fingerprint": self.source.fingerprint,
            "data_end": str(self.source.data_end) if self.source.data_end else None,
            "quarter": q.label,
            "quarter_start": q.start.isoformat(),
            "quarter_end": q.last_day.isoformat(),
            "fiscal_year": q.fiscal.label,
            "complete": self.complete,
            "in_progress": self.in_progress,
            "days_covered": self.days_covered,
            "days_in_quarter": q.days,
            "currency": s.currency,
            "attribution_model": self.attribution_model,
            "tables": sorted(self.source.present),
        }
        undefined: dict[str, str] = {}
        partial: dict[str, str] = {}
        if self.goal_problem:
            m.update(revenue_target=None, revenue_target_fiscal_year=None)
            undefined["revenue_target"] = self.goal_problem
        else:
            goal = self.goal
            m.update(
                revenue_target=self.revenue_target,
                revenue_target_fiscal_year=goal.target_revenue,
                target_growth=goal.target_growth,
                average_growth=goal.average_growth,
                growth_uplift=goal.uplift,
                revenue_goal_formula=goal.formula(),
                revenue_goal_note=goal.note,
            )
        for key, kpi in KPIS.items():
            v = self.value(key)
            if isinstance(v, K.Undefined) or (isinstance(v, float) and math.isnan(v)):
                undefined[key] = getattr(v, "reason", "not computable from the data")
            else:
                state, why = self.availability(kpi)
                if state == "partial":
                    partial[key] = why
            m[key] = _json_value(key, v)
        m["revenue_fiscal_year_to_date"] = self._fiscal_year_to_date(undefined)
        m["visit_to_lead_ratio"] = K.ratio_label(m["visits"], m["leads"]) if m["visits"] and m["leads"] else None
        m.update(gross_margin=s.gross_margin, customer_lifetime_years=s.customer_lifetime_years)
        m["attributed_lead_revenue"] = float(self.attribution["value"].sum()) if self._credited else None
        m["attribution_source"] = self.attribution_source
        m["credit_sources"] = self.credit_sources
        m["markov_mode"] = self.attribution.attrs.get("markov_mode")
        pace = self.pacing
        m["pacing"] = None if pace is None else {k: finite_number(v) for k, v in pace.items()}
        m["previous_quarter"] = self._compare(q.previous())
        m["year_ago"] = self._compare(q.year_ago())
        plan = self.funnel_plan
        m["funnel_plan"] = {
            k: {"required": finite_number(v.required), "actual": finite_number(v.actual)} for k, v in plan.iterrows()
        }
        m["by_channel"] = self._by_channel()
        m["coverage"] = self.coverage.as_dict(q)
        m["partial"] = partial
        m["undefined"] = undefined
        m["warnings"] = list(self.source.warnings)
        m["forecast"] = self._forecast(undefined)
        m["kpis"] = self.kpi_table(m)
        return self._with_uncertainty(m)

    def _with_uncertainty(self, m: dict[str, Any]) -> dict[str, Any]:
        """``m`` with how sure its numbers are (:func:`kpi_helpers.reliability.metrics_entries`):
        ``<kpi>_low`` and ``<kpi>_high`` (90%) right after each KPI that has an interval, the same
        beside each channel's numbers in ``by_channel``, and ``changes`` (is each change beyond normal
        variation?) after ``year_ago``."""
        from .reliability import metrics_entries

        extra = metrics_entries(self, m)
        out: dict[str, Any] = {}
        for key, value in m.items():
            out[key] = value
            if f"{key}_low" in extra["intervals"]:
                out[f"{key}_low"] = extra["intervals"][f"{key}_low"]
                out[f"{key}_high"] = extra["intervals"][f"{key}_high"]
            if key == "year_ago":
                out["changes"] = extra["changes"]
        by_channel: dict[str, dict[str, Any]] = {}
        for ch, row in m["by_channel"].items():
            bounds = extra["by_channel"].get(ch, {})
            by_channel[ch] = {}
            for key, value in row.items():
                by_channel[ch][key] = value
                by_channel[ch].update(
                    {f"{key}{b}": bounds[f"{key}{b}"] for b in ("_low", "_high") if f"{key}{b}" in bounds}
                )
        out["by_channel"] = by_channel
        return out

    def _forecast(self, undefined: dict[str, str]) -> dict[str, Any] | None:
        """The quarter in progress's forecasts, each ``{p10, p50, p90, target, probability_to_hit,
        as_of, so_far, unit, method}`` (:func:`kpi_helpers.forecast.metrics_block`); None for a
        quarter not in progress, with the reason in ``undefined["forecast"]``."""
        from .forecast import metrics_block

        block, why = metrics_block(self)
        if why:
            undefined["forecast"] = why
        return block

    def _fiscal_year_to_date(self, undefined: dict[str, str]) -> float | None:
        q = self.quarter
        parts = [self.value("revenue", x) for x in q.fiscal.quarters if x.key <= q.key]
        bad = next((p for p in parts if isinstance(p, K.Undefined) or pd.isna(p)), None)
        if bad is not None:
            undefined["revenue_fiscal_year_to_date"] = getattr(bad, "reason", "not computable")
            return None
        return float(sum(parts))

    def _by_channel(self) -> dict[str, dict[str, Any]]:
        out = {}
        for ch, row in self.channels.iterrows():
            out[str(ch)] = {
                "visits": _json_value("visits", row.visits),
                "leads": _json_value("leads", row.leads),
                "opportunities": _json_value("opportunities", row.opportunities),
                "won_deals": _json_value("won_deals", row.won_deals),
                "lead_revenue": finite_number(row.lead_revenue),
                "attributed_revenue": finite_number(row.attributed_revenue),
                "cost": finite_number(row.marketing_cost),
                "cost_per_lead": finite_number(row.cost_per_lead),
                "roi": finite_number(row.roi),
            }
        return out

    def _compare(self, other: Quarter) -> dict[str, Any] | None:
        """Every KPI of an earlier quarter (None when it precedes the trend window); null where that
        quarter's data does not give it (not covered, or partial for a ratio)."""
        if other.label not in self.trend.index:
            return None
        out: dict[str, Any] = {"quarter": other.label}
        for key in KPIS:
            out[key] = _json_value(key, self.value(key, other))
        return out


def _why_nan(key: str, row: pd.Series, reason: str) -> str:
    """A KPI is NaN on covered data: its denominator was zero (say which fact)."""
    kpi = KPIS[key]
    zero = [f for f in kpi.facts if f in row and row[f] == 0]
    if zero:
        return f"no {zero[-1].replace('_', ' ')} in the quarter ({reason})"
    return reason


def _trailing_reason(kq: QuarterKpis, rate_name: str) -> str:
    needs = {
        "lead_revenue_share": ("revenue", "opportunities", "leads"),
        "avg_deal_size": ("opportunities", "leads"),
        "win_rate": ("opportunities", "leads"),
        "sql_to_opportunity_rate": ("opportunities", "leads"),
        "mql_to_sql_rate": ("leads",),
        "lead_to_mql_rate": ("leads",),
        "visit_to_lead_rate": ("web_sessions", "leads"),
    }[rate_name]
    note = kq.missing_note(*needs)
    if note:
        return note.removeprefix("This section needs ").rstrip(".")
    prev = kq.quarter.fiscal.quarters[0].shift(-4)
    for t in needs:
        for i in range(4):
            st = kq.coverage.status(t, prev.shift(i))
            if st.status != "full":
                return st.reason or f"`{t}` does not cover {prev.shift(i).label}"
    return kq.trailing.attrs.get("nan_reason", "no data in that year")


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
    """Serialise metrics (:func:`kpi_helpers.jsonio.dumps`): NaN becomes null, keys keep their
    order, dates become ISO text."""
    return jsonio.dumps(metrics, what="metrics.json")


def format_summary(m: dict[str, Any]) -> str:
    """A plain-text KPI table for the terminal (``kpi summary``): every headline KPI of the registry,
    formatted by its unit (:mod:`kpi_helpers.formats`), with n/a and the reason where the data does
    not give it and ``*`` on a value counted over part of the quarter."""
    cur = m["currency"]
    prev = m.get("previous_quarter") or {}

    def fmt(key: str | None, value: Any) -> str:
        return format_value(value, unit_of(key or "") or "count", currency=cur)

    if m.get("in_progress"):
        state = f"in progress, {m['days_covered']} of {m['days_in_quarter']} days"
    elif m["complete"]:
        state = "complete"
    else:
        state = f"partial: {m['days_covered']} of {m['days_in_quarter']} days have data"
    lines = [
        f"{m['quarter']} ({m['quarter_start']} to {m['quarter_end']}, {state}); data to {m['data_end']}",
        f"tables: {', '.join(m.get('tables') or []) or 'none'}",
        f"{'KPI':<28}{'value':>18}{'previous':>18}",
    ]
    rows = [("revenue_target", label_of("revenue_target"))] + [(k.key, k.label) for k in KPIS.values() if k.headline]
    for key, label in rows:
        value = fmt(key, m.get(key)) + ("*" if key in m.get("partial", {}) else "")
        lines.append(f"{label:<28}{value:>18}{fmt(key, prev.get(key)):>18}")
    if m["by_channel"]:
        lines.append(f"ROI by channel ({m['attribution_model']} attribution):")
        for ch, c in m["by_channel"].items():
            lines.append(
                f"  {ch:<24}{fmt('attributed_revenue', c['attributed_revenue']):>18}  cost "
                f"{fmt('cost', c['cost']):>14}  ROI {fmt('roi', c['roi']):>8}"
            )
    if m["kpis"]:
        lines.append("KPI targets:")
        for k in m["kpis"]:
            proj = f" (projected {fmt(k['metric'], k['projected'])})" if k.get("projected") is not None else ""
            lines.append(
                f"  {k['name']:<38}{fmt(k['metric'], k['actual']):>12}{proj} of {fmt(k['metric'], k['target'])}"
                f"  {k['status']} ({k['owner']})"
            )
    shown = [k for k, _ in rows if k in m.get("undefined", {})]
    by_reason: dict[str, list[str]] = {}
    for key in shown:
        by_reason.setdefault(m["undefined"][key], []).append(key)
    for why, keys in by_reason.items():
        lines.append(f"  n/a ({', '.join(keys)}): {why}")
    for key, why in m.get("partial", {}).items():
        if KPIS[key].headline:
            lines.append(f"  * partial: {key}: {why}")
    for w in m.get("warnings", []):
        lines.append(f"  warning: {w}")
    return "\n".join(lines)
