"""The registry of KPIs: one entry per number the kit reports, read by everything that shows one.

Each :class:`Kpi` names its key (the ``metrics.json`` key), a label for people, its unit (which
fixes how it is formatted), whether higher is better, the quarter facts it is computed from and
therefore the contract tables it needs, and its formula. ``metrics.json``, ``kpi summary``, the
comparisons with earlier quarters, the tiles and the notebooks read this registry, so adding a KPI
means adding its entry here, its formula in :mod:`kpi_helpers.kpis` and its test.

Facts (:data:`FACTS`) are the quarter sums the KPIs are computed from; each comes from one table
(and sometimes one optional column), which is how a KPI knows what it needs.

>>> KPIS["cost_per_lead"].needs
('spend', 'leads')
>>> KPIS["cost_per_lead"].unit
'money'
>>> missing_reason(KPIS["cost_per_lead"], present={"leads"})
'needs spend: add spend.csv, or ad platform reports (--mapping google-ads, meta-ads or linkedin-ads)'
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from . import kpis as K

if TYPE_CHECKING:
    import pandas as pd

#: How a number is shown: ``count`` (whole number), ``money`` (in the source's currency),
#: ``money_small`` (money with cents, e.g. value per visit), ``percent`` (a fraction shown as %),
#: ``ratio`` (a plain number with two decimals, e.g. 3.2 visits per lead), ``seconds``.
Unit = Literal["count", "money", "money_small", "percent", "ratio", "seconds"]
UNITS: tuple[str, ...] = ("count", "money", "money_small", "percent", "ratio", "seconds")


@dataclass(frozen=True)
class Fact:
    """A quarter sum from one table: ``table`` (and ``column`` when it is an optional column)."""

    key: str
    table: str
    column: str | None = None
    unit: Unit = "count"
    label: str = ""


#: Every quarter fact (see :mod:`kpi_helpers.facts` for the period rule of each).
FACTS: dict[str, Fact] = {
    f.key: f
    for f in (
        Fact("visits", "web_sessions", label="Visits"),
        Fact("users", "web_sessions", label="User-days (users summed over days)"),
        Fact("new_users", "web_sessions", "new_users", label="New users"),
        Fact("engaged_sessions", "web_sessions", label="Engaged sessions"),
        Fact("session_duration_s", "web_sessions", unit="seconds", label="Session seconds"),
        Fact("pageviews", "web_sessions", "pageviews", label="Page views"),
        Fact("organic_visits", "web_sessions", label="Organic search visits"),
        Fact("goal_completions", "web_goals", label="Goal completions"),
        Fact("leads", "leads", label="Leads"),
        Fact("mqls", "leads", "mql_at", label="MQLs"),
        Fact("sqls", "leads", "sql_at", label="SQLs"),
        Fact("opportunities", "opportunities", label="Opportunities"),
        Fact("lead_opportunities", "opportunities", label="Opportunities from leads"),
        Fact("won_deals", "opportunities", label="Won deals"),
        Fact("won_revenue", "opportunities", unit="money", label="Won revenue (bookings)"),
        Fact("lead_won_deals", "opportunities", label="Won deals from leads"),
        Fact("lead_revenue", "opportunities", unit="money", label="Lead revenue"),
        Fact("new_customers", "opportunities", label="New customers"),
        Fact("marketing_cost", "spend", unit="money", label="Marketing cost"),
        Fact("sales_cost", "spend", unit="money", label="Sales cost"),
        Fact("revenue", "revenue", unit="money", label="Revenue"),
        Fact("content_views", "content", "views", label="Content views"),
        Fact("email_sends", "content", "email_sends", label="E-mails sent"),
        Fact("email_opens", "content", "email_opens", label="E-mails opened"),
        Fact("attendees", "content", "attendees", label="Attendees"),
    )
}

#: Facts that need another table too: lead revenue and lead deals need `leads` to tell a
#: marketing lead from a sales-sourced deal.
FACT_ALSO_NEEDS: dict[str, tuple[str, ...]] = {
    "lead_opportunities": ("leads",),
    "lead_won_deals": ("leads",),
    "lead_revenue": ("leads",),
}

#: What to add when a table is missing, said once per table.
HOW_TO_ADD = {
    "web_sessions": "add web_sessions.csv, or a GA4 traffic-acquisition export (--mapping ga4) or a Universal "
    "Analytics channels export (--mapping ua)",
    "web_goals": "add web_goals.csv (site goal completions by day)",
    "leads": "add leads.csv, or a HubSpot contacts export (--mapping hubspot)",
    "opportunities": "add opportunities.csv, or a Salesforce opportunity report (--mapping salesforce) or a HubSpot "
    "deals export (--mapping hubspot-deals)",
    "spend": "add spend.csv, or ad platform reports (--mapping google-ads, meta-ads or linkedin-ads)",
    "revenue": "add revenue.csv (finance's revenue by month)",
    "touchpoints": "add touchpoints.csv, or Salesforce campaign members (--mapping salesforce-campaign-members)",
    "content": "add content.csv (content reach by day)",
    "paths": "add paths.csv, or a conversion-path export (--mapping ga4-paths or ua-paths)",
}


@dataclass(frozen=True)
class Kpi:
    """One reported number.

    ``facts`` are the quarter facts it is computed from; ``needs`` adds tables it reads besides
    those facts (e.g. touchpoints for attributed ROI). ``compute`` maps a row of quarter facts to
    the value (an :class:`~kpi_helpers.kpis.Undefined` with a reason when it cannot be computed);
    None for KPIs computed elsewhere (attribution, CLV), whose entries still give label, unit and
    needs. ``formula`` is the formula in words, ``function`` the formula's implementation.
    """

    key: str
    label: str
    unit: Unit
    facts: tuple[str, ...] = ()
    higher_is_better: bool | None = True
    formula: str = ""
    function: str = ""
    compute: Callable[[Mapping[str, Any] | pd.DataFrame], Any] | None = field(default=None, compare=False, repr=False)
    extra_needs: tuple[str, ...] = ()
    #: shown in the headline summary (``kpi summary``, the summary notebook's table)
    headline: bool = False
    #: a sum over the quarter (counts and amounts): a quarter in progress is projected by run rate
    additive: bool = False

    @property
    def needs(self) -> tuple[str, ...]:
        """Contract tables this KPI needs, in order of first mention."""
        tables: list[str] = []
        for f in self.facts:
            tables += [FACTS[f].table, *FACT_ALSO_NEEDS.get(f, ())]
        tables += list(self.extra_needs)
        return tuple(dict.fromkeys(tables))

    @property
    def columns(self) -> tuple[str, ...]:
        """Optional contract columns (``table.column``) this KPI needs."""
        return tuple(dict.fromkeys(f"{FACTS[f].table}.{FACTS[f].column}" for f in self.facts if FACTS[f].column))


def _fact(key: str, **kw: Any) -> Kpi:
    f = FACTS[key]
    return Kpi(key, f.label, f.unit, facts=(key,), additive=True, compute=lambda r: r[key], **kw)


def _returning(r: Mapping[str, Any] | pd.DataFrame) -> Any:
    return K.returning_users(r["users"], r["new_users"])


#: Every KPI, in the order tables and summaries list them.
KPIS: dict[str, Kpi] = {
    k.key: k
    for k in (
        _fact("revenue", headline=True, formula="revenue recognised in the quarter's months (finance)"),
        _fact("visits", headline=True, formula="sessions in the quarter"),
        _fact("leads", headline=True, formula="leads created in the quarter"),
        Kpi("visits_per_lead", "Visits per lead", "ratio", ("visits", "leads"), False, "visits / leads",
            "kpis.visits_per_lead", lambda r: K.visits_per_lead(r["visits"], r["leads"]), headline=True),
        Kpi("visit_to_lead_rate", "Visit-to-lead rate", "percent", ("visits", "leads"), True, "leads / visits",
            "kpis.visit_to_lead_rate", lambda r: K.visit_to_lead_rate(r["visits"], r["leads"]), headline=True),
        _fact("mqls", headline=True, formula="leads whose mql_at falls in the quarter"),
        _fact("sqls", headline=True, formula="leads whose sql_at falls in the quarter"),
        _fact("opportunities", headline=True, formula="new-business opportunities created in the quarter (type new or "
              "empty; renewals and expansions are not funnel)"),
        _fact("won_deals", headline=True, formula="new-business opportunities won and closed in the quarter (every "
              "source)"),
        _fact("won_revenue", headline=True, formula="amount of every deal won in the quarter: new business, renewals "
              "and expansions, every source (bookings)"),
        _fact("lead_revenue", headline=True, formula="amount of the new-business deals won in the quarter that came "
              "from a lead"),
        Kpi("value_per_lead", "Value per lead", "money", ("lead_revenue", "leads"), True, "lead revenue / leads",
            "kpis.value_per_lead", lambda r: K.value_per_lead(r["lead_revenue"], r["leads"]), headline=True),
        Kpi("value_per_visit", "Value per visit", "money_small", ("lead_revenue", "visits"), True,
            "lead revenue / visits", "kpis.value_per_visit",
            lambda r: K.value_per_visit(r["lead_revenue"], r["visits"]), headline=True),
        Kpi("lead_to_customer_rate", "Lead-to-customer rate", "percent", ("lead_won_deals", "leads"), True,
            "new-business won deals from leads closed in the quarter / leads created in it",
            "kpis.lead_to_customer_rate",
            lambda r: K.lead_to_customer_rate(r["lead_won_deals"], r["leads"]), headline=True),
        Kpi("bounce_rate", "Bounce rate", "percent", ("engaged_sessions", "visits"), False,
            "1 - engaged sessions / sessions", "kpis.bounce_rate",
            lambda r: K.bounce_rate(r["engaged_sessions"], r["visits"]), headline=True),
        Kpi("avg_session_duration_s", "Average session duration", "seconds", ("session_duration_s", "visits"), True,
            "session seconds / sessions", "kpis.avg_session_duration",
            lambda r: K.avg_session_duration(r["session_duration_s"], r["visits"])),
        _fact("users", higher_is_better=True, formula="users summed over the days of the quarter (user-days)"),
        _fact("new_users", formula="first-time users in the quarter"),
        Kpi("returning_users", "Returning user-days", "count", ("users", "new_users"), True,
            "user-days - new users", "kpis.returning_users", _returning, additive=True),
        Kpi("new_user_share", "New-user share", "percent", ("new_users", "users"), None, "new users / user-days",
            "kpis.new_user_share", lambda r: K.new_user_share(r["new_users"], r["users"])),
        _fact("organic_visits", formula="sessions of channel Organic Search in the quarter"),
        _fact("goal_completions", formula="site goal completions in the quarter"),
        Kpi("goal_conversion_rate", "Goal conversion rate", "percent", ("goal_completions", "visits"), True,
            "goal completions / sessions", "kpis.goal_conversion_rate",
            lambda r: K.goal_conversion_rate(r["goal_completions"], r["visits"])),
        _fact("marketing_cost", higher_is_better=None, headline=True,
              formula="spend of every cost type but sales in the quarter"),
        _fact("sales_cost", higher_is_better=None, formula="spend of cost type sales in the quarter"),
        Kpi("cost_per_lead", "Cost per lead", "money", ("marketing_cost", "leads"), False, "marketing cost / leads",
            "kpis.cost_per_lead", lambda r: K.cost_per_lead(r["marketing_cost"], r["leads"]), headline=True),
        _fact("new_customers", headline=True, formula="accounts whose first won new-business deal in the data "
              "closed in the quarter (renewals and expansions never make a customer new; a deals export that "
              "starts later makes returning customers look new)"),
        Kpi("cac", "CAC", "money", ("marketing_cost", "sales_cost", "new_customers"), False,
            "(marketing cost + sales cost) / new customers (new business only)", "kpis.customer_acquisition_cost",
            lambda r: K.customer_acquisition_cost(r["marketing_cost"], r["sales_cost"], r["new_customers"]),
            headline=True),
        Kpi("average_yearly_revenue_per_customer", "Average yearly revenue per customer", "money", ("won_revenue",),
            True, "won revenue of every type (renewals and expansions too) of the 4 quarters ending with the quarter / "
            "accounts it came from",
            "kpis.average_yearly_revenue_per_customer"),
        Kpi("clv", "CLV", "money", ("won_revenue",), True,
            "average yearly revenue per customer x gross margin x expected lifetime in years",
            "kpis.customer_lifetime_value", headline=True),
        Kpi("clv_to_cac", "CLV:CAC", "ratio", ("won_revenue", "marketing_cost", "sales_cost", "new_customers"), True,
            "CLV / CAC", "kpis.clv_to_cac", headline=True),
        Kpi("marketing_roi", "Marketing ROI", "percent", ("lead_revenue", "marketing_cost"), True,
            "(attributed lead revenue - marketing cost) / marketing cost; attribution splits lead revenue "
            "across channels, so the total is the same for every model", "kpis.marketing_roi",
            lambda r: K.marketing_roi(r["lead_revenue"], r["marketing_cost"]), headline=True),
        _fact("content_views", formula="content views in the quarter"),
        _fact("email_sends", formula="e-mails sent in the quarter"),
        _fact("email_opens", formula="e-mails opened in the quarter"),
        Kpi("email_open_rate", "E-mail open rate", "percent", ("email_opens", "email_sends"), True,
            "opens / sends", "kpis.email_open_rate", lambda r: K.email_open_rate(r["email_opens"], r["email_sends"]),
            headline=True),
        _fact("attendees", formula="event and webinar attendees in the quarter"),
    )
}  # fmt: skip

#: Goal and funnel keys that are not quarter KPIs but can be tracked as KPI targets.
TARGET_METRICS: dict[str, Unit] = {"revenue_target": "money", "revenue_fiscal_year_to_date": "money"}

#: Columns of the report's tables and charts that are not KPIs: (label, unit). With :data:`KPIS`,
#: :data:`FACTS` and :data:`TARGET_METRICS` this is the one place a number's label and unit live.
COLUMNS: dict[str, tuple[str, str]] = {
    "revenue_target": ("Revenue target", "money"),
    "revenue_target_fiscal_year": ("Revenue target (fiscal year)", "money"),
    "revenue_fiscal_year_to_date": ("Revenue, fiscal year to date", "money"),
    "target_growth": ("Target growth", "percent"),
    "average_growth": ("Average growth", "percent"),
    "growth_uplift": ("Growth uplift", "percent"),
    "yoy_growth": ("Growth on the year before", "percent"),
    "attributed_lead_revenue": ("Attributed lead revenue", "money"),
    "attributed_revenue": ("Attributed revenue", "money"),
    "attributed_conversions": ("Attributed won deals", "count"),
    "cost": ("Marketing cost", "money"),
    "spend": ("Spend", "money"),
    "amount": ("Amount", "money"),
    "roi": ("ROI", "percent"),
    "share": ("Share", "percent"),
    "share_of_year": ("Share of the year", "percent"),
    "target": ("Target", "money"),
    "actual": ("Actual", "money"),
    "required": ("Required", "count"),
    "attainment": ("Attainment", "percent"),
    "progress": ("Progress", "percent"),
    "sessions": ("Sessions", "count"),
    "completions": ("Completions", "count"),
    "conversion_rate": ("Conversion rate", "percent"),
    "won": ("Won", "count"),
    "assets": ("Assets", "count"),
    "views": ("Views", "count"),
    "lead_to_mql_rate": ("Lead to MQL", "percent"),
    "mql_to_sql_rate": ("MQL to SQL", "percent"),
    "sql_to_opportunity_rate": ("SQL to opportunity", "percent"),
    "opportunity_to_won_rate": ("Opportunity to won", "percent"),
    "lead_to_sql_rate": ("Lead to SQL", "percent"),
    "lead_to_won_rate": ("Lead to won", "percent"),
    "win_rate": ("Win rate", "percent"),
    "lead_revenue_share": ("Lead revenue share of revenue", "percent"),
    "avg_deal_size": ("Average deal size", "money"),
    "days_lead_to_mql": ("Days lead to MQL", "days"),
    "days_mql_to_sql": ("Days MQL to SQL", "days"),
    "days_sql_to_opportunity": ("Days SQL to opportunity", "days"),
    "days_opportunity_to_won": ("Days opportunity to won", "days"),
    "visit_to_lead_ratio": ("Visit-to-lead ratio", "text"),
    "months": ("Months with revenue", "count"),
    "own_channel": ("Credited to the lead's own channel", "money"),
    "best_rank": ("Best rank", "count"),
    "worst_rank": ("Worst rank", "count"),
    "places_moved": ("Places moved", "count"),
}

#: words kept as written when an identifier becomes a label
_ACRONYMS = {"cac": "CAC", "clv": "CLV", "roi": "ROI", "mql": "MQL", "sql": "SQL", "mqls": "MQLs", "sqls": "SQLs",
             "yoy": "YoY", "cpl": "CPL", "ctr": "CTR"}  # fmt: skip


def words(identifier: str) -> str:
    """An identifier as a label: ``cost_per_lead`` -> ``Cost per lead`` (acronyms kept).

    >>> words("cost_per_lead"), words("days_mql_to_sql")
    ('Cost per lead', 'Days MQL to SQL')
    """
    parts = [_ACRONYMS.get(w.lower(), w.lower()) for w in str(identifier).split("_") if w]
    text = " ".join(parts)
    return text[:1].upper() + text[1:] if text else str(identifier)


#: the suffixes of a 90% interval's bounds beside a number (``cac_low``, ``cac_high``)
INTERVAL_SUFFIXES = {"_low": "low", "_high": "high"}


def interval_of(key: str) -> tuple[str, str] | None:
    """``(number, "low" | "high")`` when ``key`` is a bound of the interval of a number the registry
    knows (a KPI, a fact or a table column), else None: a bound takes its number's label and unit.

    >>> interval_of("cac_low"), interval_of("roi_high"), interval_of("cac"), interval_of("mystery_low")
    (('cac', 'low'), ('roi', 'high'), None, None)
    """
    for suffix, word in INTERVAL_SUFFIXES.items():
        base = key.removesuffix(suffix)
        if base != key and (base in KPIS or base in FACTS or base in COLUMNS or base in TARGET_METRICS):
            return base, word
    return None


def label_of(key: str) -> str:
    """The label of a KPI, fact, interval bound or table column (``cac_low`` -> ``CAC (low)``).

    >>> label_of("clv_to_cac"), label_of("cac_high"), label_of("attributed_revenue")
    ('CLV:CAC', 'CAC (high)', 'Attributed revenue')
    """
    bound = interval_of(key)
    if bound is not None:
        return f"{label_of(bound[0])} ({bound[1]})"
    if key in KPIS:
        return KPIS[key].label
    if key in COLUMNS:
        return COLUMNS[key][0]
    if key in FACTS:
        return FACTS[key].label or words(key)
    return words(key)


def metric_keys() -> tuple[str, ...]:
    """Every key a `goals.yml` KPI target may name as its `metric`."""
    return (*KPIS, *TARGET_METRICS)


def unit_of(key: str) -> Unit | None:
    """The unit of a KPI, of an interval bound (``cac_low`` takes ``cac``'s, ``roi_high`` the ``roi``
    column's), of a fact or of a table column (:data:`COLUMNS`); None for a key the registry does not
    know (never guessed from a name).

    >>> unit_of("cac_low"), unit_of("roi_high"), unit_of("lead_to_mql_rate_low"), unit_of("nothing_low")
    ('money', 'percent', 'percent', None)
    """
    bound = interval_of(key)
    if bound is not None:
        key = bound[0]
    if key in KPIS:
        return KPIS[key].unit
    if key in FACTS:
        return FACTS[key].unit
    if key in COLUMNS:
        return COLUMNS[key][1]  # type: ignore[return-value]
    return TARGET_METRICS.get(key)


def missing_reason(
    kpi: Kpi, *, present: Collection[str], filled: Mapping[str, Collection[str]] | None = None
) -> str | None:
    """Why ``kpi`` cannot be computed from the tables ``present`` (None when it can).

    Names the first missing table and how to add it, so the reason is something a person can act on.
    With ``filled`` (table -> its optional columns that hold at least one value), a column the KPI
    needs that is empty in every row is missing too: an export without SQL dates has no SQL count,
    not a count of 0.
    """
    for table in kpi.needs:
        if table not in present:
            return f"needs {table}: {HOW_TO_ADD.get(table, f'add {table}.csv')}"
    for ref in kpi.columns:
        table, column = ref.split(".")
        if filled is not None and table in filled and column not in filled[table]:
            return (
                f"needs `{table}.{column}`, which is empty in every row of the export: add it to the export "
                "(or map the column that holds it)"
            )
    return None


def metrics_markdown() -> str:
    """Every KPI of the registry as Markdown: key, label, unit, direction, the tables and optional
    columns it needs, and its formula (``docs/metrics.md`` embeds this; a test keeps them equal)."""
    direction = {True: "higher", False: "lower", None: "neither"}
    out = [
        "| key | label | unit | better | needs | formula |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for k in KPIS.values():
        needs = ", ".join(f"`{t}`" for t in k.needs) + "".join(f", `{c}`" for c in k.columns)
        formula = k.formula + (f" (`{k.function}`)" if k.function else "")
        out.append(f"| `{k.key}` | {k.label} | {k.unit} | {direction[k.higher_is_better]} | {needs} | {formula} |")
    return "\n".join(out) + "\n"
