"""The data contract: the tables a data source provides, their columns, types and rules.

This module is the single source of truth for the contract; ``docs/data-contract.md`` describes
it for people, and :mod:`kpi_helpers.source` enforces it on every load. Column kinds:

- ``string``: text; ``date``: ISO date ``YYYY-MM-DD``; ``timestamp``: ISO date-time (a bare date
  means midnight);
- ``count``: a whole number >= 0; ``amount``: a number >= 0 in the source's single currency;
  ``seconds``: a duration in seconds >= 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("string", "date", "timestamp", "count", "amount", "seconds")

#: ibis type each kind is cast to once validated.
IBIS_TYPES = {
    "string": "string",
    "date": "date",
    "timestamp": "timestamp",
    "count": "int64",
    "amount": "float64",
    "seconds": "float64",
}

GOALS = ("inquiry", "purchase", "click_to_call", "newsletter", "contact_form")
STAGES = ("open", "won", "lost")
COST_TYPES = ("media", "software", "production", "labor", "overhead", "sales")
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
    #: a source without this table is refused; optional tables are treated as empty
    required: bool = True
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
                _c("new_users", "count", "First-time users (<= users)"),
                _c("pageviews", "count", "Page views", nullable=True, optional=True),
                _c("engaged_sessions", "count", "Engaged (non-bounced) sessions (<= sessions)"),
                _c("session_duration_s", "seconds", "Total duration of the sessions, seconds"),
            ),
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
            required=False,
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
            ),
            rules=(
                "`closed_at` >= `created_at`",
                "`closed_at` is set when `stage` is won or lost",
                "`lead_id` exists in leads",
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
            ),
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
            required=False,
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
            required=False,
        ),
    )
}

#: references checked on load: (table, column) -> (table, column)
REFERENCES = {
    ("opportunities", "lead_id"): ("leads", "lead_id"),
    ("touchpoints", "lead_id"): ("leads", "lead_id"),
}

#: (table, date column) pairs whose maxima define how far the data reaches (`data_end`)
#: Daily-grain tables only: spend and revenue are often monthly and dated the 1st.
COVERAGE = (("web_sessions", "date"), ("leads", "created_at"))


def contract_markdown() -> str:
    """The contract's tables as Markdown (docs/data-contract.md embeds this; a test keeps them equal)."""
    out = []
    for t in CONTRACT.values():
        out.append(f"### `{t.name}`{'' if t.required else ' (optional)'}\n")
        out.append(f"{t.description}\n")
        out.append("| column | kind | empty allowed | rule | meaning |")
        out.append("| --- | --- | --- | --- | --- |")
        for c in t.columns:
            rule = []
            if c.unique:
                rule.append("unique")
            if c.accepted:
                rule.append("one of " + ", ".join(f"`{v}`" for v in c.accepted))
            if c.kind in ("count", "amount", "seconds"):
                rule.append(">= 0")
            if c.optional:
                rule.append("column may be absent")
            empty = "yes" if c.nullable else "no"
            out.append(f"| `{c.name}` | {c.kind} | {empty} | {'; '.join(rule)} | {c.description} |")
        if t.rules:
            out.append("\nRow rules: " + "; ".join(t.rules) + ".")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
