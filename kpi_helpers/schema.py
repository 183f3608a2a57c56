"""The data contract: the tables a data source provides, their columns, types and rules.

This module is the single source of truth for the contract; ``docs/data-contract.md`` describes
it for people, and :mod:`kpi_helpers.source` enforces it on every load. Column kinds:

- ``string``: text; ``date``: ISO date ``YYYY-MM-DD``; ``timestamp``: ISO date-time (a bare date
  means midnight);
- ``count``: a whole number >= 0; ``amount``: a number >= 0 in the source's single currency;
  ``seconds``: a duration in seconds >= 0; ``number``: a number of either sign (a change, such as
  an experiment's change in spend or its measured lift). Numbers above :data:`MAX_VALUE` (in size)
  are refused as broken exports (a marketing count or amount that large is a unit or parse error).

Every table is optional: a folder holding only a web-analytics export, only a CRM export or only
spend is a valid source, and each KPI says which tables it needs (:mod:`kpi_helpers.registry`).
What a table covers (:mod:`kpi_helpers.coverage`) depends on its ``coverage`` kind:

- ``daily``: a row for every day (a site has sessions every day), so a day without rows is a gap;
- ``event``: one row per event (a lead, a deal, a touch), so a day without rows is a real zero and
  the table covers from its first row to its declared end or the data's end;
- ``monthly``: amounts booked by month (or day), covered month by month;
- ``declared``: an aggregate over a period the export declares (a conversion-path export).
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("string", "date", "timestamp", "count", "amount", "seconds", "number")
#: kinds that hold numbers; all but ``number`` are >= 0
NUMBER_KINDS = ("count", "amount", "seconds", "number")

#: ibis type each kind is cast to once validated.
IBIS_TYPES = {
    "string": "string",
    "date": "date",
    "timestamp": "timestamp",
    "count": "int64",
    "amount": "float64",
    "seconds": "float64",
    "number": "float64",
}

GOALS = ("inquiry", "purchase", "click_to_call", "newsletter", "contact_form")
STAGES = ("open", "won", "lost")
COST_TYPES = ("media", "software", "production", "labor", "overhead", "sales")
#: cost types that are marketing cost (everything but sales): the one place this rule lives
MARKETING_COST_TYPES = tuple(t for t in COST_TYPES if t != "sales")
#: cost types that vary with activity (media bought, events, content and e-mails produced): what a
#: marketing mix model relates to leads; software, labour, overhead and sales cost are fixed cost
ACTIVITY_COST_TYPES = ("media", "production")
#: `opportunities.type`: new business, or more business from an existing customer; empty means new
OPPORTUNITY_TYPES = ("new", "renewal", "expansion")
#: `opportunity_history.stage` values that close a deal; any other value is an open pipeline stage
CLOSED_STAGES = ("won", "lost")
#: largest count, amount or duration a row may hold (see the module docstring)
MAX_VALUE = 1e12
COVERAGE_KINDS = ("daily", "event", "monthly", "declared")
UNALLOCATED = "(unallocated)"
#: channel label for opportunities without a lead (sales-sourced); not a marketing channel.
SALES_SOURCED = "(sales-sourced)"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    description: str
    nullable: bool = False
    #: the column may be absent from the file; it is then all-null (only for nullable columns)
    optional: bool = False
    unique: bool = False
    #: closed list of accepted values (compared after trimming, case-insensitively)
    accepted: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    #: how the table covers time (see the module docstring) and the date column it is read by
    coverage: str = "event"
    date_column: str | None = None
    #: the table's grain: rows that share these columns are one fact and are summed (see
    #: :mod:`kpi_helpers.source` on duplicates); empty for tables with a unique id
    grain: tuple[str, ...] = ()
    #: extra row rules: (SQL-free) descriptions are implemented in source.py
    rules: tuple[str, ...] = field(default_factory=tuple)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _c(name: str, kind: str, description: str, **kw: object) -> Column:
    return Column(name, kind, description, **kw)  # type: ignore[arg-type]


CONTRACT: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "revenue",
            "Company revenue history by month (finance's closed months); at least 4 fiscal years for goal setting.",
            (
                _c("month", "date", "First day of the month", unique=True),
                _c("revenue", "amount", "Revenue recognised in the month"),
            ),
            coverage="monthly",
            date_column="month",
            rules=("`month` is the first day of a month",),
        ),
        Table(
            "web_sessions",
            "Web analytics sessions, a daily aggregate (the grain web analytics exports have).",
            (
                _c("date", "date", "Day of the sessions"),
                _c("channel", "string", "Channel group, e.g. Organic Search"),
                _c("source", "string", "Traffic source, e.g. google", nullable=True, optional=True),
                _c("medium", "string", "Traffic medium, e.g. organic, cpc", nullable=True, optional=True),
                _c("device", "string", "desktop, mobile or tablet", nullable=True, optional=True),
                _c("landing_page", "string", "Landing page path", nullable=True, optional=True),
                _c("sessions", "count", "Sessions (visits)"),
                _c("users", "count", "Users"),
                _c(
                    "new_users",
                    "count",
                    "First-time users (<= users); GA4's traffic-acquisition report shows it once the metric is added",
                    nullable=True,
                    optional=True,
                ),
                _c("pageviews", "count", "Page views", nullable=True, optional=True),
                _c("engaged_sessions", "count", "Engaged (non-bounced) sessions (<= sessions)"),
                _c("session_duration_s", "seconds", "Total duration of the sessions, seconds"),
            ),
            coverage="daily",
            date_column="date",
            grain=("date", "channel", "source", "medium", "device", "landing_page"),
            rules=("`engaged_sessions` <= `sessions`", "`new_users` <= `users`"),
        ),
        Table(
            "web_goals",
            "Site goal completions by day, channel and landing page. One session may complete several "
            "goals, so a goal's rate is its completions over sessions, and the sum over goals is not a rate.",
            (
                _c("date", "date", "Day of the completions"),
                _c("channel", "string", "Channel group of the session"),
                _c("landing_page", "string", "Landing page of the session", nullable=True, optional=True),
                _c("goal", "string", "inquiry, purchase, click_to_call, newsletter, contact_form or your own"),
                _c("completions", "count", "Goal completions"),
            ),
            date_column="date",
            grain=("date", "channel", "landing_page", "goal"),
        ),
        Table(
            "leads",
            "One row per lead (a person who identified themselves); no names or e-mails needed.",
            (
                _c("lead_id", "string", "Unique lead id", unique=True),
                _c("created_at", "timestamp", "When the lead was created"),
                _c("channel", "string", "Channel that created the lead (lead source)"),
                _c("campaign", "string", "Campaign that created the lead", nullable=True, optional=True),
                _c("landing_page", "string", "Landing page of the conversion", nullable=True, optional=True),
                _c("mql_at", "timestamp", "When it became a marketing-qualified lead; empty if never", nullable=True),
                _c("sql_at", "timestamp", "When it became a sales-qualified lead; empty if never", nullable=True),
            ),
            date_column="created_at",
            rules=(
                "`mql_at` >= `created_at` and `sql_at` >= `mql_at` (rows out of order are counted in a warning "
                "and left out of stage timing)",
            ),
        ),
        Table(
            "opportunities",
            "Sales opportunities (deals); lead_id empty for sales-sourced deals.",
            (
                _c("opportunity_id", "string", "Unique opportunity id", unique=True),
                _c(
                    "lead_id",
                    "string",
                    "Lead it came from (must exist in leads); empty if sales-sourced",
                    nullable=True,
                ),
                _c("account_id", "string", "Customer account"),
                _c("created_at", "timestamp", "When the opportunity was created"),
                _c("closed_at", "timestamp", "When it was won or lost; empty while open", nullable=True),
                _c("stage", "string", "open, won or lost", accepted=STAGES),
                _c("amount", "amount", "Deal amount (expected amount while open)"),
                _c(
                    "currency",
                    "string",
                    "Currency code of the amount; must be the source's currency (`goals.yml`) when given",
                    nullable=True,
                    optional=True,
                ),
                _c(
                    "type",
                    "string",
                    "new, renewal or expansion; empty means new. New customers, CAC, the funnel and attribution "
                    "count new business only; bookings and revenue count every type",
                    nullable=True,
                    optional=True,
                    accepted=OPPORTUNITY_TYPES,
                ),
            ),
            date_column="created_at",
            rules=(
                "`closed_at` >= `created_at`",
                "`closed_at` is set when `stage` is won or lost",
                "`lead_id` exists in leads",
            ),
        ),
        Table(
            "opportunity_history",
            "Stage changes of opportunities (a CRM's opportunity field history): one row each time a deal "
            "moved to a stage, from its creation to its close. `won` and `lost` close a deal; any other stage "
            "(qualification, proposal, ...) is open.",
            (
                _c("opportunity_id", "string", "Opportunity (must exist in opportunities)"),
                _c("changed_at", "timestamp", "When the deal moved to the stage"),
                _c("stage", "string", "The stage it moved to: won, lost or an open pipeline stage"),
                _c("amount", "amount", "The deal's amount from then on", nullable=True, optional=True),
            ),
            date_column="changed_at",
            rules=(
                "`opportunity_id` exists in opportunities",
                "`changed_at` >= the opportunity's `created_at`",
            ),
        ),
        Table(
            "spend",
            "Marketing and sales cost by day (or month), channel, campaign and cost type.",
            (
                _c("date", "date", "Day (or first day of the month) of the cost"),
                _c("channel", "string", f"Channel; `{UNALLOCATED}` for cost not tied to one"),
                _c("campaign", "string", "Campaign", nullable=True, optional=True),
                _c("cost_type", "string", "media, software, production, labor, overhead or sales", accepted=COST_TYPES),
                _c("amount", "amount", "Cost"),
                _c(
                    "currency",
                    "string",
                    "Currency code of the cost (ad platforms export one); must be the source's currency when given",
                    nullable=True,
                    optional=True,
                ),
            ),
            coverage="monthly",
            date_column="date",
            grain=("date", "channel", "campaign", "cost_type"),
        ),
        Table(
            "touchpoints",
            "Every marketing touch of a lead, for attribution.",
            (
                _c("lead_id", "string", "Lead touched (must exist in leads)"),
                _c("touched_at", "timestamp", "When"),
                _c("channel", "string", "Channel of the touch"),
                _c("campaign", "string", "Campaign of the touch", nullable=True, optional=True),
            ),
            date_column="touched_at",
            rules=("`lead_id` exists in leads",),
        ),
        Table(
            "content",
            "Content reach by day (or month) and asset; counts empty where not applicable.",
            (
                _c("date", "date", "Day (or first day of the month for monthly figures)"),
                _c("asset", "string", "Asset name or title"),
                _c("asset_type", "string", "blog, email, webinar, event, print, ..."),
                _c("views", "count", "Views", nullable=True),
                _c("email_sends", "count", "E-mails sent", nullable=True),
                _c("email_opens", "count", "E-mails opened (<= sends)", nullable=True),
                _c("attendees", "count", "Event or webinar attendees", nullable=True),
            ),
            coverage="monthly",
            date_column="date",
            grain=("date", "asset", "asset_type"),
        ),
        Table(
            "experiments",
            "Lift tests (geo or holdout experiments): the spend of one channel changed for a while and the "
            "measured change in the target (leads a week, unless the model says otherwise). What a marketing mix "
            "model's lift-test calibration takes as `x`, `delta_x`, `delta_y` and `sigma`.",
            (
                _c("channel", "string", "Channel whose spend changed"),
                _c("start", "date", "First day of the test"),
                _c("end", "date", "Last day of the test"),
                _c("x", "amount", "Weekly activity cost of the channel before the test"),
                _c("delta_x", "number", "Change in weekly activity cost during the test (negative: a cut)"),
                _c("delta_y", "number", "Measured change in the target a week (leads a week)"),
                _c("sigma", "number", "Standard error of `delta_y`, > 0"),
            ),
            date_column="start",
            rules=("`end` >= `start`", "`sigma` > 0", "`x` + `delta_x` >= 0"),
        ),
        Table(
            "paths",
            "Conversion paths aggregated over a period, the form web analytics tools export (GA's "
            "conversion paths): one row per path. The period comes from `period_start`/`period_end` or is "
            "declared by the mapping or the export's banner; without one the table covers nothing.",
            (
                _c("path", "string", "Channels in order, joined by ` > `", unique=True),
                _c("conversions", "count", "Journeys of this path that converted"),
                _c("value", "amount", "Conversion value of those journeys", nullable=True, optional=True),
                _c(
                    "nulls",
                    "count",
                    "Journeys of this path that did not convert (Markov needs them)",
                    nullable=True,
                    optional=True,
                ),
                _c("period_start", "date", "First day the export covers", nullable=True, optional=True),
                _c("period_end", "date", "Last day the export covers", nullable=True, optional=True),
            ),
            coverage="declared",
        ),
    )
}

#: tables whose dates say how far the data reaches (`data_end`) and which quarter is `latest`
ACTIVITY_TABLES = ("web_sessions", "leads")

#: references checked on load: (table, column) -> (table, column)
REFERENCES = {
    ("opportunities", "lead_id"): ("leads", "lead_id"),
    ("touchpoints", "lead_id"): ("leads", "lead_id"),
    ("opportunity_history", "opportunity_id"): ("opportunities", "opportunity_id"),
}


def contract_markdown() -> str:
    """The contract's tables as Markdown (docs/data-contract.md embeds this; a test keeps them equal)."""
    out = []
    for t in CONTRACT.values():
        out.append(f"### `{t.name}`\n")
        out.append(f"{t.description}\n")
        out.append("| column | kind | empty allowed | rule | meaning |")
        out.append("| --- | --- | --- | --- | --- |")
        for c in t.columns:
            rule = []
            if c.unique:
                rule.append("unique")
            if c.accepted:
                rule.append("one of " + ", ".join(f"`{v}`" for v in c.accepted))
            if c.kind in ("count", "amount", "seconds"):  # a `number` may be negative
                rule.append(">= 0")
            if c.optional:
                rule.append("column may be absent")
            empty = "yes" if c.nullable else "no"
            out.append(f"| `{c.name}` | {c.kind} | {empty} | {'; '.join(rule)} | {c.description} |")
        if t.rules:
            out.append("\nRow rules: " + "; ".join(t.rules) + ".")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
