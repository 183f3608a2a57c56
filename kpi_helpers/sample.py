"""Seeded generator of the sample data set: plausible B2B marketing data that follows the contract.

The story (``scale=1``): a B2B analytics software company with data from 2021-01-01 to 2026-10-20.
The last day falls part-way through 2026Q4 on purpose, so "current quarter pacing" has something to
show; the fiscal year is the calendar year.

- Demand grows 15-25 % a year (slowest in 2023) with quarterly seasonality (Q4 strongest, a summer
  dip in Q3, a Christmas lull), a weekday rhythm and noise that drifts over weeks.
- Seven channels: Organic Search, Paid Search, Paid Social, Email, Referral, Direct and Events. Events
  are a webinar every quarter and, from 2022, conferences (2021 was virtual-only). Funnel rates, win
  rates and deal sizes differ by channel: Events and Referral convert best with large deals, Paid
  Social worst with small ones.
- **Spend drives leads through a planted truth** (:mod:`kpi_helpers.sample_media`): six channels
  (all but Direct) have weekly activity cost (media and production: ads, listings and rewards,
  sponsorships and webinars, e-mail sends, content production) with flights, pauses, budget changes
  and a budget level shared across channels; each channel's leads are a baseline (trend x seasonality
  x noise) plus incremental leads from its spend through geometric carry-over and logistic
  saturation. Three lift tests (``experiments``) measured some of it. ``truth.json`` holds the truth
  over the last 104 complete weeks (incremental leads per unit of cost, incremental ROI through the
  funnel, contribution shares) and the parameters.
- About 10,000 leads (none with personal data), 30,000 touchpoints (1-8 per lead; Direct is a
  frequent last touch) and 100,000 ``web_sessions`` rows (about 40 visits per lead).
- **Deals from a known process** (:mod:`kpi_helpers.sample_pipeline`): about 1,500 new-business
  opportunities (about 20 % sales-sourced) move through four open stages with Gamma times and
  probabilities of moving on, so won and lost are competing risks by age and amount and about a
  quarter's deals are still open at the end; ``opportunity_history`` holds every stage change with
  the amount known then. Won deals start yearly subscriptions: renewal opportunities (churn drawn
  per account from a Beta distribution, by acquisition channel) and expansions (a Poisson process
  per account) follow, typed in ``opportunities.type``, 1,700 more opportunities in all. Accounts
  from before the CRM export renew and expand too.
- ``revenue`` (closed months only): every won deal of any type recognised evenly over the 12 months
  from its close month, plus services of 6 % of that, so bookings lead revenue. The funnel is
  simulated from 500 days before ``start`` so that early revenue and pipeline hold deals of earlier
  leads (those leads are not written).
- Funnel steps and wins take their rate's share of each channel's leads or deals per year (not one
  coin each), so that even scale 1 shows the ranking of channels rather than the luck of a few
  dozen deals.
- ``spend``: Paid Search and Paid Social media by day, as ad platforms report it; the other activity
  cost by week (dated the Monday; events one row each); fixed cost by month, dated the first, as
  finance books it: software and labour per channel, and ``(unallocated)`` overhead, software and
  sales cost. The last month and week hold their days to date, so spend reaches the data's last day
  like leads and sessions do.
- ``content`` has e-mails, webinars, conferences and print ads on their day, and blog posts' views
  per month (dated the first of the month; a daily grain would dwarf the rest of the sample).

The process is frozen: ``tests/test_sample.py`` pins the committed sample and its ``truth.json``
to the generator for seed 42; :data:`DEVELOPMENT_SEEDS` lists the seeds used while developing, so
calibration and recovery benchmarks use others.

Knobs of :func:`generate`: ``seed`` (the same arguments give byte-identical files), ``scale`` (leads,
touchpoints, opportunities, traffic and amounts grow in proportion; the site grows with them, with
more blog posts, partner sites, minor search engines and pages, so that ``web_sessions`` rows grow
about as fast: 0.1, 0.8 and 11 million rows at scale 1, 10 and 100; values below 1 give small, fast
data sets), ``fmt`` (``csv`` or ``parquet``), ``start`` and ``end`` (the last day, inclusive; the
demand level at ``start`` is the same, so a shorter period has fewer rows). The model's parameters
are the module constants below.

Everything is drawn with numpy in vectorised steps (Python loops run over months, events, pages or
cost lines, never over rows) from independent random streams per table; files are written with
pyarrow, about 15 times faster than pandas for CSV at 10 million rows.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from . import sample_media as M
from . import sample_pipeline as P
from .exceptions import KpiError
from .fileio import sha256_of
from .jsonio import write_json
from .schema import (
    ACTIVITY_COST_TYPES,
    CONTRACT,
    COST_TYPES,
    GOALS,
    OPPORTUNITY_TYPES,
    SALES_SOURCED,
    STAGES,
    UNALLOCATED,
)

#: the tables the sample holds (a conversion-path export is an alternative to touchpoints, not made here)
SAMPLE_TABLES = tuple(t for t in CONTRACT if t != "paths")

__all__ = ["generate"]

DAY = 86_400
#: days simulated before `start`, so that early revenue and pipeline are not empty
WARM_UP_DAYS = 500
#: expected leads a year at scale 1 at the demand level of `start` (about 10,000 over the default period)
LEADS_PER_YEAR = 1_160

CHANNELS = ("Organic Search", "Paid Search", "Paid Social", "Email", "Referral", "Direct", "Events")
ORG, PSE, PSO, EML, REF, DIR, EVT = range(7)
SALES = 7  # origin index of sales-sourced deals in the per-origin arrays
EXPANSION = 8  # origin index of expansion deals
LEGACY = 8  # index of accounts from before the CRM export in sample_pipeline.CHURN_MEAN
DEVICES = ("desktop", "mobile", "tablet")
CONTENT_TYPES = ("blog", "email", "webinar", "event", "print")

# --- demand and funnel; arrays are per channel (ORG, PSE, PSO, EML, REF, DIR, EVT) ------------------
GROWTH = {2021: 0.20, 2022: 0.18, 2023: 0.15, 2024: 0.19, 2025: 0.22, 2026: 0.18}  # other years: 0.2
SEASON = np.array([0.96, 1.00, 1.07, 1.00, 1.01, 0.95, 0.83, 0.79, 0.99, 1.12, 1.15, 0.97])
WEEKDAY_LEADS = np.array([1.08, 1.15, 1.14, 1.08, 0.88, 0.22, 0.20])  # Monday first
WEEKDAY_WEB = np.array([1.08, 1.10, 1.10, 1.06, 0.95, 0.62, 0.60])
LEAD_SHARE = np.array([0.25, 0.21, 0.10, 0.11, 0.09, 0.18, 0.0])  # at `start`; Events: the calendar
SHARE_TREND = np.array([0.04, -0.03, 0.15, 0.0, 0.03, 0.0, 0.0])  # change of log share per year
EVENTS_SHARE = 0.06  # Events' usual share of a quarter's leads; the other channels share the rest
MQL_RATE = np.array([0.50, 0.55, 0.38, 0.48, 0.62, 0.55, 0.60])
SQL_RATE = np.array([0.33, 0.35, 0.25, 0.30, 0.45, 0.38, 0.42])  # of MQLs
OPP_RATE = np.array([0.65, 0.65, 0.55, 0.60, 0.75, 0.68, 0.72])  # of SQLs
# Per deal origin: the seven channels, then SALES, then EXPANSION (deals of existing customers).
#: probability that a deal of each origin is won (the pipeline process's truth, see sample_pipeline)
WIN_RATE = np.array([0.27, 0.28, 0.21, 0.25, 0.36, 0.29, 0.37, 0.24, 0.55])
DEAL_MEDIAN = np.array([17_000, 18_000, 11_000, 15_000, 28_000, 20_000, 30_000, 30_000.0])  # at `start`
#: sd of the log of deal amounts around their median
DEAL_SD = 0.35
CYCLE_FACTOR = np.array([1.0, 0.95, 1.1, 1.0, 0.85, 0.9, 0.85, 1.2, 0.6])
EXPANSION_MEDIAN = 9_000.0
SALES_SOURCED_SHARE = 0.20
#: seeds used while developing the generator and the models fitted to it: calibration and recovery
#: benchmarks must use other seeds, so that nothing was tuned to the data they are judged on
DEVELOPMENT_SEEDS = (3, 4, 7, 42, *range(301, 311))  # 301-310: the mix model's development

# --- campaigns and events ---------------------------------------------------------------------------
# channel, campaign (None: none), first and last month (None: open), weight in the channel's leads
# and in its activity cost, cost type of that cost ("": none)
CAMPAIGNS: tuple[tuple[int, str | None, str | None, str | None, float, str], ...] = (
    (ORG, "(organic)", None, None, 1.0, "production"),
    (PSE, "Brand - Search", None, None, 0.35, "media"),
    (PSE, "Non-Brand - KPI Software", None, None, 0.35, "media"),
    (PSE, "Non-Brand - Marketing Analytics", None, None, 0.20, "media"),
    (PSE, "Competitor - Search", "2023-03", None, 0.12, "media"),
    (PSO, "LinkedIn - Lead Gen Forms", None, None, 0.45, "media"),
    (PSO, "LinkedIn - Thought Leadership", None, None, 0.20, "media"),
    (PSO, "Meta - Retargeting", "2022-01", None, 0.20, "media"),
    (PSO, "LinkedIn - ABM Target Accounts", "2024-01", None, 0.15, "media"),
    (PSO, "X - Promoted Posts", None, "2023-06", 0.10, "media"),
    (EML, "Monthly Newsletter", None, None, 0.35, "production"),
    (EML, "Nurture - Welcome Series", None, None, 0.30, "production"),
    (EML, "Product Update", None, None, 0.15, "production"),
    (EML, "Webinar Invitations", None, None, 0.20, "production"),
    (REF, "Partner Program", None, None, 0.40, ""),
    (REF, "Customer Referral", None, None, 0.30, "production"),
    (REF, "Review Sites", None, None, 0.30, "media"),
    (DIR, None, None, None, 1.0, ""),
)
WEBINAR_TOPICS = (
    "Pipeline Analytics",
    "Attribution Without Tears",
    "Forecasting Revenue",
    "Marketing ROI Benchmarks",
    "Lead Scoring That Works",
    "Dashboards for the Board",
    "Funnel Diagnostics",
    "CAC Payback Explained",
    "Planning Next Year's Budget",
    "From MQL to Revenue",
    "Account-Based Marketing 101",
)
WEBINAR_SHARE = 0.03  # of its quarter's leads
# name, first year, month, day (moved to the next Tuesday), days, share of its quarter's leads
CONFERENCES = (
    ("RevOps Summit", 2022, 5, 16, 2, 0.04),
    ("Customer Roadshow", 2023, 9, 12, 1, 0.02),
    ("B2B Marketing Expo", 2022, 10, 5, 3, 0.06),
)

# --- the web site -----------------------------------------------------------------------------------
# A bigger scale is a bigger site: more blog posts, partner sites, minor search engines and pages,
# so that web_sessions rows grow about as fast as visits rather than piling up in fixed combinations.
VISITS_PER_LEAD = np.array([55.0, 28.0, 50.0, 30.0, 30.0, 40.0, 12.0])
BOUNCE = np.array([0.48, 0.45, 0.62, 0.38, 0.44, 0.42, 0.40])
NEW_USERS = np.array([0.75, 0.70, 0.85, 0.20, 0.70, 0.45, 0.50])  # share of users who are new
PAGES_PER_SESSION = np.array([2.1, 2.4, 1.5, 2.6, 2.8, 3.2, 2.0])
SECONDS_PER_SESSION = np.array([140.0, 110.0, 55.0, 150.0, 170.0, 190.0, 120.0])
DEVICE_SHARE = np.array(
    [
        [0.62, 0.34, 0.04],
        [0.60, 0.36, 0.04],
        [0.35, 0.60, 0.05],
        [0.55, 0.40, 0.05],
        [0.70, 0.27, 0.03],
        [0.72, 0.25, 0.03],
        [0.40, 0.55, 0.05],
    ]
)
DEVICE_BOUNCE = np.array([0.95, 1.1, 1.0])
DEVICE_SECONDS = np.array([1.0, 0.75, 0.9])
TABLET_MIN_SCALE = 2
# (source, medium, weight, smallest scale that has it) per channel
SOURCES = {
    ORG: (
        ("google", "organic", 0.92, 0),
        ("bing", "organic", 0.06, 1.5),
        ("duckduckgo", "organic", 0.02, 3),
        ("yahoo", "organic", 0.005, 10),
        ("ecosia.org", "organic", 0.005, 10),
    ),
    PSE: (("google", "cpc", 0.86, 0), ("bing", "cpc", 0.14, 1.5)),
    PSO: (("linkedin", "paid_social", 0.75, 0), ("facebook", "paid_social", 0.17, 0), ("x", "paid_social", 0.08, 2)),
    EML: (("newsletter", "email", 0.60, 0), ("nurture", "email", 0.40, 1.5), ("product_update", "email", 0.10, 3)),
    REF: (
        ("g2.com", "referral", 0.35, 0),
        ("linkedin.com", "referral", 0.30, 2),
        ("capterra.com", "referral", 0.12, 2),
        ("medium.com", "referral", 0.10, 3),
        ("github.com", "referral", 0.07, 5),
        ("reddit.com", "referral", 0.06, 5),
    ),
    DIR: (("(direct)", "(none)", 1.0, 0),),
    EVT: (("webinar", "event", 0.6, 0), ("booth-qr", "event", 0.4, 2)),
}
PARTNERS_PER_SCALE = 1.0  # partner sites sending Referral traffic ...
PARTNER_SHARE = 0.25  # ... and their share of it
CORE_PAGES = (
    "/",
    "/pricing",
    "/demo",
    "/contact",
    "/product",
    "/product/dashboards",
    "/product/attribution",
    "/product/forecasting",
    "/integrations",
    "/customers",
    "/about",
    "/careers",
    "/security",
    "/partners",
    "/webinars",
    "/events",
    "/resources/roi-calculator",
    "/resources/benchmark-report",
    "/lp/free-trial",
    "/lp/kpi-template",
    "/lp/roi-guide",
    "/lp/demo-video",
)
#: pages that only have landing traffic (and leads) of their own from this scale on
PAGE_MIN_SCALE = {
    "/contact": 2,
    "/product/dashboards": 2,
    "/product/attribution": 2,
    "/customers": 3,
    "/about": 4,
    "/careers": 4,
    "/product/forecasting": 5,
    "/security": 6,
    "/resources/benchmark-report": 2,
    "/lp/demo-video": 2,
    "/events": 2,
    "/resources/roi-calculator": 1.5,
    "/partners": 1.5,
}
BLOG = "BLOG"  # in page weights: one of the blog posts published by then
BLOG_POSTS = 10  # at scale 1, growing as scale**BLOG_GROWTH
BLOG_GROWTH = 1.59
BLOG_SKEW = 2.0  # sigma of the posts' lognormal popularity at scale 1, less BLOG_SKEW_DROP per
BLOG_SKEW_DROP = 0.6  # factor 10 of scale: a big blog has many posts that matter
BLOG_SHARE_GROWTH = 0.42  # the blog's weight among a channel's landing pages grows as scale**this
# landing pages of sessions per channel
WEB_PAGES: dict[int, dict[str, float]] = {
    ORG: {
        BLOG: 0.50,
        "/": 0.20,
        "/pricing": 0.07,
        "/product": 0.09,
        "/product/dashboards": 0.02,
        "/product/attribution": 0.02,
        "/product/forecasting": 0.01,
        "/integrations": 0.02,
        "/customers": 0.01,
        "/about": 0.01,
        "/careers": 0.01,
        "/security": 0.01,
        "/resources/roi-calculator": 0.02,
        "/resources/benchmark-report": 0.01,
    },
    PSE: {"/pricing": 0.20, "/demo": 0.30, "/lp/free-trial": 0.45, "/lp/demo-video": 0.05},
    PSO: {BLOG: 0.25, "/lp/kpi-template": 0.40, "/lp/roi-guide": 0.30, "/resources/benchmark-report": 0.05},
    EML: {BLOG: 0.50, "/webinars": 0.40, "/product/forecasting": 0.05, "/product/dashboards": 0.05},
    REF: {"/": 0.55, "/integrations": 0.35, "/partners": 0.05, "/customers": 0.05},
    DIR: {"/": 0.70, "/pricing": 0.12, "/product": 0.10, "/careers": 0.03, "/about": 0.03, "/security": 0.02},
    EVT: {"/webinars": 0.70, "/events": 0.10, "/": 0.20},
}
# landing pages of leads per channel; None: no landing page (phone and chat). Events leads come from
# the calendar: webinar registrations land on /webinars, badge scans have no landing page.
LEAD_PAGES: dict[int, dict[str | None, float]] = {
    ORG: {
        BLOG: 0.35,
        "/demo": 0.20,
        "/pricing": 0.10,
        "/resources/benchmark-report": 0.12,
        "/resources/roi-calculator": 0.10,
        "/contact": 0.08,
        "/": 0.05,
    },
    PSE: {"/demo": 0.30, "/lp/free-trial": 0.30, "/lp/demo-video": 0.20, "/pricing": 0.10, "/lp/roi-guide": 0.10},
    PSO: {"/lp/kpi-template": 0.40, "/lp/roi-guide": 0.35, "/webinars": 0.15, "/resources/benchmark-report": 0.10},
    EML: {"/webinars": 0.35, "/resources/benchmark-report": 0.20, "/demo": 0.20, BLOG: 0.15, "/pricing": 0.10},
    REF: {"/demo": 0.35, "/partners": 0.20, "/integrations": 0.15, "/": 0.15, "/contact": 0.15},
    DIR: {"/demo": 0.30, "/contact": 0.20, "/pricing": 0.15, "/": 0.20, None: 0.15},
}
BLOG_TOPICS = (
    "pipeline",
    "attribution",
    "cac",
    "roi",
    "funnel",
    "mql",
    "lead-scoring",
    "forecasting",
    "churn",
    "ltv",
    "budget",
    "dashboards",
    "seo",
    "abm",
    "conversion",
    "cohorts",
    "benchmarks",
    "revops",
    "payback",
    "kpis",
)
BLOG_KINDS = (
    "guide",
    "mistakes",
    "checklist",
    "template",
    "explained",
    "metrics",
    "playbook",
    "examples",
    "basics",
    "trends",
    "faq",
    "tools",
    "tips",
    "myths",
    "math",
)
BLOG_AUDIENCES = ("saas", "startups", "cmos", "revops", "agencies", "finance", "sales", "founders")
ACRONYMS = {
    "cac": "CAC",
    "roi": "ROI",
    "mql": "MQL",
    "ltv": "LTV",
    "seo": "SEO",
    "abm": "ABM",
    "kpis": "KPIs",
    "faq": "FAQ",
    "saas": "SaaS",
    "cmos": "CMOs",
    "revops": "RevOps",
}
PARTNER_WORDS = (
    (
        "north",
        "blue",
        "summit",
        "data",
        "bright",
        "clear",
        "growth",
        "signal",
        "metric",
        "true",
        "peak",
        "rapid",
        "stone",
        "river",
        "cloud",
        "apex",
        "core",
        "nova",
        "pine",
        "iron",
        "silver",
        "golden",
        "urban",
        "prime",
        "vector",
        "orbit",
        "delta",
        "alpine",
        "harbor",
        "cedar",
    ),
    (
        "analytics",
        "partners",
        "consulting",
        "labs",
        "digital",
        "group",
        "advisors",
        "media",
        "studio",
        "works",
        "insights",
        "agency",
        "ventures",
        "solutions",
        "marketing",
        "revops",
        "collective",
        "io",
        "hq",
        "tech",
    ),
)
# goal: completion rate per session, multiplied for landing pages starting with a prefix
GOAL_RATES = {
    "inquiry": (0.004, {"/demo": 8.0, "/pricing": 3.0, "/contact": 3.0, "/lp/": 4.0}),
    "purchase": (0.0005, {"/pricing": 6.0, "/lp/free-trial": 4.0}),
    "click_to_call": (0.001, {"/contact": 5.0, "/pricing": 2.0}),
    "newsletter": (0.003, {"/blog/": 3.0, "/resources/": 2.0}),
    "contact_form": (0.002, {"/contact": 12.0, "/partners": 3.0}),
}
GOAL_CHANNEL = np.array([1.0, 1.0, 0.5, 1.3, 1.2, 1.3, 1.0])

# --- spend ------------------------------------------------------------------------------------------
# Fixed monthly running costs at scale 1 in the first year: channel (None: unallocated), campaign,
# cost type, amount, yearly growth. Software, labour and sales step up once a year (contracts,
# raises). Activity cost (media and production) comes from sample_media's weekly plan.
COST_LINES: tuple[tuple[int | None, str | None, str, float, float], ...] = (
    (ORG, "(organic)", "software", 450, 0.08),
    (EML, None, "software", 600, 0.12),
    (EVT, None, "software", 400, 0.10),
    (ORG, None, "labor", 4_200, 0.12),
    (PSE, None, "labor", 2_600, 0.12),
    (PSO, None, "labor", 1_800, 0.12),
    (EML, None, "labor", 1_200, 0.12),
    (REF, None, "labor", 2_200, 0.12),
    (EVT, None, "labor", 2_000, 0.12),
    (None, None, "overhead", 3_500, 0.10),
    (None, None, "software", 2_800, 0.12),
    (None, None, "sales", 17_000, 0.20),
)
STEPPED = ("software", "labor", "sales")

# --- touchpoints ------------------------------------------------------------------------------------
PRE_TOUCHES = np.array([1.0, 1.4, 0.9, 1.9, 1.3, 2.1, 0.9])  # mean touches before the lead, by its channel
MID_TOUCHES = (0.45, 0.6)  # mean touches after the lead, plus this for SQLs
# channel mix of touches before the lead, in between, at the deal's creation and near a win
TOUCH_MIX = np.array(
    [
        [0.32, 0.17, 0.10, 0.08, 0.13, 0.10, 0.10],
        [0.0] * 7,  # the lead's own touch: its channel
        [0.14, 0.06, 0.03, 0.32, 0.05, 0.30, 0.10],
        [0.10, 0.10, 0.0, 0.25, 0.10, 0.45, 0.0],
        [0.05, 0.10, 0.0, 0.25, 0.0, 0.60, 0.0],
    ]
)
MAX_TOUCHES = 8

#: independent random streams, so that changing one table leaves the others' draws alone
STREAMS = ("world", "leads", "opportunities", "revenue", "touchpoints", "web", "content", "spend", "media")


# --- calendar and sampling helpers (days and seconds since 1970-01-01) ------------------------------


def _day(iso: str) -> int:
    return int(np.datetime64(iso, "D").astype(np.int64))


def _month_of(days: np.ndarray | int) -> np.ndarray:
    """Months since 1970-01 of each day."""
    return np.asarray(days).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def _month_start(months: np.ndarray) -> np.ndarray:
    return np.asarray(months).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)


def _weekday(days: np.ndarray | int) -> np.ndarray:
    return (np.asarray(days) + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0


def _next_weekday(day: int, weekday: int) -> int:
    return day + int((weekday - _weekday(day)) % 7)


def _business_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    """Time of day in office hours (8:00-18:00), peaking late morning and mid-afternoon."""
    hours = np.where(rng.random(n) < 0.5, rng.normal(10.5, 1.3, n), rng.normal(14.5, 1.5, n))
    return (np.clip(hours, 8.0, 17.99) * 3600).astype(np.int64)


def _next_business(rng: np.random.Generator, earliest: np.ndarray) -> np.ndarray:
    """A timestamp >= `earliest` in office hours on a weekday (when sales work happens)."""
    day = earliest // DAY
    secs = _business_seconds(rng, len(day))
    day = day + (day * DAY + secs < earliest)
    wd = _weekday(day)
    day = day + np.where(wd == 5, 2, np.where(wd == 6, 1, 0))
    return day * DAY + secs


def _choice(rng: np.random.Generator, groups: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Draw category k for each element with probability ``probs[group, k]`` (rows need not sum to 1).

    Inverse-CDF sampling for all groups at once: each group's cumulative weights are offset by the
    group number, so that one ``searchsorted`` serves every group.
    """
    probs = np.asarray(probs, dtype=float)
    n_groups, k = probs.shape
    cum = np.cumsum(probs, axis=1)
    cum = cum / np.where(cum[:, -1:] > 0, cum[:, -1:], 1.0)
    cum[:, -1] = 1.0
    flat = (np.arange(n_groups)[:, None] + cum).ravel()
    groups = np.asarray(groups, dtype=np.int64)
    pos = np.searchsorted(flat, groups + rng.random(len(groups)), side="right")
    return np.clip(pos - groups * k, 0, k - 1)


def _one_of(rng: np.random.Generator, n: int, weights: np.ndarray) -> np.ndarray:
    return _choice(rng, np.zeros(n, np.int64), np.asarray(weights, dtype=float)[None])


def _smooth_noise(rng: np.random.Generator, n: int, sd: float, window: int = 21) -> np.ndarray:
    """Multiplicative noise that drifts over weeks rather than jumping from day to day."""
    z = np.convolve(rng.standard_normal(n + window - 1), np.ones(window), mode="valid") / np.sqrt(window)
    return np.exp(sd * z)


def _noise(rng: np.random.Generator, n: int, sd: float) -> np.ndarray:
    """Lognormal noise with mean 1."""
    return np.exp(rng.normal(-sd * sd / 2, sd, n))


def _quota(rng: np.random.Generator, p: np.ndarray, group: np.ndarray) -> np.ndarray:
    """True for a share `p` of each group's elements (randomly rounded, random ones).

    Steadier than one coin per element: a small sample then shows the story (channel rankings,
    steady growth) rather than the luck of a few dozen deals. `p` is per element, equal within a group.
    """
    n = len(group)
    _, group = np.unique(group, return_inverse=True)
    size = np.bincount(group)
    order = np.lexsort((rng.random(n), group))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - (np.cumsum(size) - size)[group[order]]
    share = np.zeros(len(size))
    share[group] = p
    return rank < np.floor(share * size + rng.random(len(size)))[group]


def _days_to_seconds(rng_draw: np.ndarray) -> np.ndarray:
    return (rng_draw * DAY).astype(np.int64)


# --- the world: calendar, demand, campaigns, events, pages and sources ------------------------------


class _World:
    """What the tables share: calendar, expected leads and visits per day and channel, the campaigns,
    the event calendar and the site (pages and traffic sources)."""

    def __init__(
        self, rng: np.random.Generator, media_rng: np.random.Generator, scale: float, start: str, end: str
    ) -> None:
        self.scale = scale
        self.start, self.end = _day(start), _day(end)
        if self.end <= self.start:
            raise ValueError(f"`end` must be after `start`, got start={start!r} and end={end!r}")
        self.start_ts, self.end_ts = self.start * DAY, (self.end + 1) * DAY - 1
        self.warm = self.start - WARM_UP_DAYS
        self.days = np.arange(self.warm, self.end + 1)
        self.visible = self.days >= self.start
        self.month = _month_of(self.days)
        self.m0 = int(self.month[0])
        self.n_months = int(self.month[-1]) - self.m0 + 1
        self.months = np.arange(int(_month_of(self.start)), int(self.month[-1]) + 1)  # written months

        # Demand: growth x season x holidays x drifting noise; leads and visits have their own weekdays.
        years = self.days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
        y0, y1 = int(years[0]), int(years[-1])
        log_growth = np.log1p([GROWTH.get(y, 0.2) for y in range(y0, y1 + 1)])
        jan1 = np.array([_day(f"{y}-01-01") for y in range(y0, y1 + 2)])
        yi = years - y0
        level = np.concatenate([[0.0], np.cumsum(log_growth)])[yi]
        level += log_growth[yi] * (self.days - jan1[yi]) / (jan1[yi + 1] - jan1[yi])
        self.trend = np.exp(level - level[self.days == self.start][0])  # 1 at `start`
        moy = self.month % 12
        dom = self.days - _month_start(self.month)
        holiday = ((moy == 11) & (dom >= 23)) | ((moy == 0) & (dom == 0))
        base = self.trend * SEASON[moy] * np.where(holiday, 0.45, 1.0)
        lead_base = base * WEEKDAY_LEADS[_weekday(self.days)]  # expected demand, without noise
        # Scale to LEADS_PER_YEAR at the trend level of `start`, so that a shorter period has fewer
        # leads; the noise moves leads between days, not the total.
        target = (
            LEADS_PER_YEAR * scale * lead_base[self.visible].sum() / (365.25 * SEASON.mean() * WEEKDAY_LEADS.mean())
        )
        noise = _smooth_noise(rng, len(self.days), 0.06)
        lead_base *= noise
        web_base = base * noise * WEEKDAY_WEB[_weekday(self.days)]

        # The channel mix drifts over the years and wobbles from month to month (pushes, budget cuts).
        years_in = (np.arange(self.n_months) + self.m0 - self.months[0]) / 12
        wobble = _noise(rng, self.n_months * len(CHANNELS), 0.08).reshape(self.n_months, len(CHANNELS))
        mix = LEAD_SHARE * np.exp(np.outer(years_in, SHARE_TREND)) * wobble
        mix = mix / mix.sum(axis=1, keepdims=True) * (1 - EVENTS_SHARE)  # Events come from the calendar

        self._build_campaigns()
        # an event brings a share of its quarter's leads (a full quarter's, even where data ends early)
        quarter = self.month // 3 - self.month[0] // 3
        per_day = np.bincount(quarter, weights=lead_base) / np.bincount(quarter)
        ev_lambda = self.ev_share * per_day[_month_of(self.ev_day) // 3 - self.month[0] // 3] * 365.25 / 4
        lam = lead_base[:, None] * mix[self.month - self.m0]
        norm = target / (lam[self.visible].sum() + ev_lambda[self.ev_day >= self.start].sum())
        self.lead_lambda = lam * norm  #: expected leads per day and channel, but Events ...
        self.ev_lambda = ev_lambda * norm  #: ... which come per event

        # Visits: per channel, its leads times visits per lead, on the web's weekday rhythm.
        web_mix = mix.copy()
        web_mix[:, EVT] = EVENTS_SHARE
        sessions = web_base[:, None] * (web_mix * VISITS_PER_LEAD)[self.month - self.m0]
        leads = self.lead_lambda[self.visible].sum(axis=0)
        leads[EVT] = self.ev_lambda[self.ev_day >= self.start].sum()
        self.session_lambda = sessions * (leads @ VISITS_PER_LEAD) / sessions[self.visible].sum()

        self._build_site(rng)
        self._build_media(media_rng, lead_base)

    def _build_media(self, rng: np.random.Generator, lead_base: np.ndarray) -> None:
        """Weekly activity spend and the leads it causes (:mod:`kpi_helpers.sample_media`).

        Splits the planned leads of the six channels with spend into a baseline (`lead_lambda`) and
        incremental leads (`inc_lambda`), both expected leads per day and channel.
        """
        self.planned_lambda = self.lead_lambda.copy()  # leads per day and channel before the split
        self.monday0 = int(self.warm - _weekday(self.warm))
        n_weeks = (self.end + 1 - self.monday0 + 6) // 7
        self.mondays = self.monday0 + 7 * np.arange(n_weeks)
        week = (self.days - self.monday0) // 7
        level = np.interp(self.mondays, self.days, self.trend)
        # Events: each event's cost in its week, webinars as production and conferences as sponsorship.
        self.ev_cost = np.array(
            [
                lam * M.EVENT_COST_PER_LEAD["webinar" if web else "conference"]
                for lam, web in zip(self.ev_lambda, self.ev_webinar, strict=True)
            ]
        ) * _noise(rng, len(self.ev_day), 0.15)
        event_cost = np.bincount((self.ev_day - self.monday0) // 7, weights=self.ev_cost, minlength=n_weeks)
        spend = M.plan(rng, self.mondays, level, event_cost, self.scale)

        media = np.array([CHANNELS.index(c) for c in M.MEDIA_CHANNELS])
        weekly_planned = np.zeros((n_weeks, len(media)))
        np.add.at(weekly_planned, week, self.planned_lambda[:, media])
        ev_week = (self.ev_day - self.monday0) // 7
        weekly_planned[:, -1] = np.bincount(ev_week, weights=self.ev_lambda, minlength=n_weeks)
        first_year = (self.mondays >= self.start) & (self.mondays < self.start + 364)
        target = M.INCREMENTAL_SHARE * weekly_planned[first_year].sum(axis=0)
        target[-1] = weekly_planned[first_year, -1].sum()  # Events: the calendar's event leads
        self.media_lam, self.media_beta = M.calibrate(spend, first_year, target)

        # The fitted window: the last WINDOW_WEEKS complete weeks; lift tests inside it.
        # (a shorter data set fits the complete weeks it has)
        last = (self.end + 1 - self.monday0) // 7 - 1
        first = (self.start - self.monday0 + 6) // 7
        self.window = slice(max(last - M.WINDOW_WEEKS + 1, first), last + 1)
        baseline_share = 1 - M.INCREMENTAL_SHARE
        baseline_share[-1] = 0.0
        ev_base = (1 - M.INCREMENTAL_SHARE[-1]) / M.INCREMENTAL_SHARE[-1] * self.ev_lambda.sum() / len(self.days)
        weekly_leads = weekly_planned * baseline_share + M.incremental(spend, self.media_lam, self.media_beta)
        self.experiments = M.experiments(rng, spend, last, self.media_lam, self.media_beta, weekly_leads, first)
        self.media_spend = spend  #: weekly activity cost per media channel, weeks from monday0

        # Baseline: the planned leads less the incremental share; Events: a small walk-in baseline.
        inc_week = M.incremental(spend, self.media_lam, self.media_beta)
        weekday = WEEKDAY_LEADS[_weekday(self.days)] / WEEKDAY_LEADS.sum()
        self.inc_lambda = np.zeros_like(self.lead_lambda)
        self.inc_lambda[:, media] = inc_week[week] * weekday[:, None]
        self.lead_lambda[:, media] *= baseline_share
        self.lead_lambda[:, EVT] = ev_base * lead_base / lead_base.mean()

    def _build_campaigns(self) -> None:
        """Campaigns: the ones in CAMPAIGNS, then one per event; campaign index -1 is "none"."""
        months = np.arange(self.n_months) + self.m0
        names: list[str | None] = [c[1] for c in CAMPAIGNS]
        self.campaign_weights = np.zeros((len(CHANNELS) * self.n_months, len(CAMPAIGNS)))
        for k, (ch, _, first, last, weight, _) in enumerate(CAMPAIGNS):
            lo = _month_of(_day(first + "-01")) if first else months[0]
            hi = _month_of(_day(last + "-01")) if last else months[-1]
            # row channel * n_months + month: the campaign mix within a channel in a month
            self.campaign_weights[ch * self.n_months + np.arange(self.n_months), k] = weight * (
                (months >= lo) & (months <= hi)
            )
        ev = self._events()
        self.ev_name = [e[0] for e in ev]
        self.ev_day = np.array([e[1] for e in ev], dtype=np.int64)
        self.ev_days = np.array([e[2] for e in ev], dtype=np.int64)
        self.ev_webinar = np.array([e[3] for e in ev], dtype=bool)
        self.ev_share = np.array([e[4] for e in ev], dtype=float)
        self.ev_campaign = np.arange(len(ev)) + len(CAMPAIGNS)
        self.campaign_names = pa.array([*names, *self.ev_name, None], type=pa.string())

    def _events(self) -> list[tuple[str, int, int, bool, float]]:
        """(name, day, days, webinar?, share): webinars mid-quarter on Wednesdays, conferences on Tuesdays."""
        ev = []
        for y in range(int(_month_of(self.warm)) // 12 + 1970, int(_month_of(self.end)) // 12 + 1971):
            for q in range(1, 5):
                topic = WEBINAR_TOPICS[(y * 4 + q) % len(WEBINAR_TOPICS)]
                day = _next_weekday(_day(f"{y}-{3 * q - 1:02d}-10"), 2)
                ev.append((f"{y} Q{q} Webinar: {topic}", day, 1, True, WEBINAR_SHARE))
            for name, first, month, dom, days, share in CONFERENCES:
                if y >= first:
                    day = _next_weekday(_day(f"{y}-{month:02d}-{dom:02d}"), 1)
                    ev.append((f"{name} {y}", day, days, False, share))
        ev = [e for e in ev if self.warm <= e[1] and e[1] + e[2] - 1 <= self.end]
        return sorted(ev, key=lambda e: e[1])

    def _build_site(self, rng: np.random.Generator) -> None:
        # Blog posts: a quarter predate `start`, the rest appear steadily; popularity is skewed.
        n_blog = max(3, round(BLOG_POSTS * self.scale**BLOG_GROWTH))
        slugs = _blog_slugs(rng, n_blog)
        pub = rng.integers(self.start, self.end + 1, n_blog)
        pub[rng.random(n_blog) < 0.25] = self.start - 400
        order = np.argsort(pub, kind="stable")
        self.blog_pub = pub[order]
        skew = BLOG_SKEW - BLOG_SKEW_DROP * np.log10(max(self.scale, 1.0))
        self.blog_cum = np.cumsum(rng.lognormal(0.0, skew, n_blog))
        blog_pages = [f"/blog/{slugs[i]}" for i in order]
        self.n_core = len(CORE_PAGES)
        self.n_pages = self.n_core + n_blog
        self.is_blog = np.arange(self.n_pages) >= self.n_core
        self.pages = pa.array([*CORE_PAGES, *blog_pages, None], type=pa.string())  # index -1: none
        self.titles = pa.array([*CORE_PAGES, *map(_title, blog_pages)], type=pa.string())

        def weights(
            spec: Mapping[int, Mapping[str, float]] | Mapping[int, Mapping[str | None, float]], extra: list[str | None]
        ) -> np.ndarray:
            cols = [*CORE_PAGES, *extra]
            m = np.zeros((len(CHANNELS), len(cols)))
            for ch, pages in spec.items():
                for page, w in pages.items():
                    if page is None or PAGE_MIN_SCALE.get(page, 0) <= self.scale:
                        m[ch, cols.index(page)] = w
            return m

        self.web_page_w = weights(WEB_PAGES, [BLOG])
        self.web_page_w[:, -1] *= self.scale**BLOG_SHARE_GROWTH
        self.lead_page_w = weights(LEAD_PAGES, [BLOG, None])
        self.device_w = DEVICE_SHARE * [1.0, 1.0, float(self.scale >= TABLET_MIN_SCALE)]

        src = [(ch, s, m, w) for ch, rows in SOURCES.items() for s, m, w, at in rows if at <= self.scale]
        n_partners = round(PARTNERS_PER_SCALE * self.scale)
        zipf = 1.0 / np.arange(1, n_partners + 1)
        src += [
            (REF, name, "referral", PARTNER_SHARE * z / zipf.sum())
            for name, z in zip(_partner_domains(rng, n_partners), zipf, strict=True)
        ]
        self.source_channel = np.array([s[0] for s in src])
        self.sources = pa.array([s[1] for s in src], type=pa.string())
        self.mediums = pa.array([s[2] for s in src], type=pa.string())
        self.source_w = np.zeros((len(CHANNELS), len(src)))
        self.source_w[self.source_channel, np.arange(len(src))] = [s[3] for s in src]

    def blog_page(self, rng: np.random.Generator, days: np.ndarray, recent: np.ndarray) -> np.ndarray:
        """A blog post (page index) published by each day, or -1 if none was yet.

        Search finds evergreen posts by popularity; e-mail and social (`recent`) push the newest.
        """
        n_pub = np.searchsorted(self.blog_pub, days, side="right")
        total = np.where(n_pub > 0, self.blog_cum[np.maximum(n_pub - 1, 0)], 0.0)
        idx = np.searchsorted(self.blog_cum, rng.random(len(days)) * total, side="right")
        idx = np.where(recent, n_pub - rng.geometric(0.9, len(days)), idx)
        return np.where(n_pub > 0, self.n_core + np.clip(idx, 0, n_pub - 1), -1)

    def page(self, rng: np.random.Generator, slot: np.ndarray, days: np.ndarray, recent: np.ndarray) -> np.ndarray:
        """Page index from a column of the page weights: a core page, a blog post, or -1 for None."""
        page = np.where(slot < self.n_core, slot, -1)
        blog = slot == self.n_core
        page[blog] = np.maximum(self.blog_page(rng, days[blog], recent[blog]), 0)  # no post yet: home
        return page

    def campaign(self, rng: np.random.Generator, channel: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Campaign of a lead or touch on a channel other than Events, from that month's mix."""
        month = _month_of(ts // DAY) - self.m0
        k = _choice(rng, channel * self.n_months + month, self.campaign_weights)
        return np.where(channel == DIR, -1, k)


def _blog_slugs(rng: np.random.Generator, n: int) -> list[str]:
    """`n` distinct slugs: short ones first, longer patterns only when a big site needs them."""
    years = range(2016, 2027)
    levels = [
        [f"{t}-{k}" for t, k in itertools.product(BLOG_TOPICS, BLOG_KINDS)],
        [f"{t}-{k}-for-{a}" for t, k, a in itertools.product(BLOG_TOPICS, BLOG_KINDS, BLOG_AUDIENCES)],
        [f"{t}-{k}-{y}" for t, k, y in itertools.product(BLOG_TOPICS, BLOG_KINDS, years)],
        [f"{t}-{k}-for-{a}-{y}" for t, k, a, y in itertools.product(BLOG_TOPICS, BLOG_KINDS, BLOG_AUDIENCES, years)],
    ]
    out: list[str] = []
    for level in levels:
        if len(out) < n:
            out += [level[i] for i in rng.permutation(len(level))[: n - len(out)]]
    return out + [f"post-{i}" for i in range(len(out), n)]  # beyond scale 400 or so


def _title(page: str) -> str:
    """``/blog/cac-payback-guide`` -> ``CAC Payback Guide``."""
    words = page.removeprefix("/blog/").split("-")
    return " ".join(ACRONYMS.get(w, w.capitalize()) for w in words)


def _partner_domains(rng: np.random.Generator, n: int) -> list[str]:
    names = [f"{a}{b}.com" for a, b in itertools.product(*PARTNER_WORDS)]
    names = [names[i] for i in rng.permutation(len(names))]
    return [names[i % len(names)] + (f"/{i // len(names)}" if i >= len(names) else "") for i in range(n)]


# --- tables, as numpy arrays ------------------------------------------------------------------------


def _leads(rng: np.random.Generator, w: _World) -> dict[str, np.ndarray]:
    """All leads from the warm-up on, sorted by creation time, with their funnel milestones.

    Each day and channel has two Poisson draws, baseline and incremental (caused by the channel's
    activity spend, see :mod:`kpi_helpers.sample_media`); ``incremental`` marks the second.
    """
    base, inc = rng.poisson(w.lead_lambda), rng.poisson(w.inc_lambda)
    counts = np.concatenate([base, inc])
    day_i, channel = np.nonzero(counts)
    reps = counts[day_i, channel]
    incremental = np.repeat(day_i >= len(w.days), reps)
    day_i = day_i % len(w.days)
    day, channel = np.repeat(w.days[day_i], reps), np.repeat(channel, reps)
    created = day * DAY + _business_seconds(rng, len(day))
    campaign = w.campaign(rng, channel, created)
    page = w.page(rng, _choice(rng, channel, w.lead_page_w), day, channel == EML)
    # Events leads follow the event before them (registrations, badge scans, follow-ups): webinar
    # leads land on /webinars, badge scans have no landing page.
    evt = channel == EVT
    ev = np.clip(np.searchsorted(w.ev_day, day[evt], side="right") - 1, 0, len(w.ev_day) - 1)
    campaign[evt] = w.ev_campaign[ev]
    page[evt] = np.where(w.ev_webinar[ev], CORE_PAGES.index("/webinars"), -1)

    order = np.argsort(created, kind="stable")
    leads = {
        "created": created[order],
        "channel": channel[order],
        "campaign": campaign[order],
        "page": page[order],
        "incremental": incremental[order],
    }
    n, ch, created = len(leads["created"]), leads["channel"], leads["created"]

    # Funnel: demo requests qualify within the hour, others after some nurturing; SQL and deal follow.
    mql = np.where(
        rng.random(n) < 0.4,
        created + rng.integers(60, 3600, n),
        _next_business(rng, created + _days_to_seconds(rng.exponential(4.0, n))),
    )
    sql = _next_business(rng, mql + 3600 + _days_to_seconds(rng.exponential(3.0, n)))
    opp = _next_business(rng, sql + 3600 + _days_to_seconds(rng.exponential(6.0, n)))
    group = ch * 10_000 + _month_of(created // DAY) // 12  # channel and year
    is_mql = _quota(rng, MQL_RATE[ch], group)
    is_sql, has_opp = is_mql.copy(), np.zeros(n, bool)
    is_sql[is_mql] = _quota(rng, SQL_RATE[ch[is_mql]], group[is_mql])
    has_opp[is_sql] = _quota(rng, OPP_RATE[ch[is_sql]], group[is_sql])
    is_mql &= mql <= w.end_ts  # a milestone after the last day has not happened (yet)
    is_sql &= is_mql & (sql <= w.end_ts)
    has_opp &= is_sql & (opp <= w.end_ts)
    return leads | {"mql": mql, "sql": sql, "opp": opp, "is_mql": is_mql, "is_sql": is_sql, "has_opp": has_opp}


def _amounts(rng: np.random.Generator, w: _World, created: np.ndarray, median: np.ndarray) -> np.ndarray:
    """Deal amounts around `median` (at `start`'s prices); list prices rise a few % a year."""
    price = np.interp(created / DAY, w.days, w.trend) ** 0.3
    return np.round(np.clip(rng.lognormal(np.log(median * price), DEAL_SD), 3_000, 250_000), -2)


def _deals(
    rng: np.random.Generator, created: np.ndarray, origin: np.ndarray, amount: np.ndarray, median: np.ndarray
) -> dict[str, np.ndarray]:
    """New and expansion deals through the stages (:func:`sample_pipeline.stage_process`), with
    their stage times in office hours and the amount known at each stage."""
    advance = P.advance_probabilities(WIN_RATE)[origin]
    days = P.STAGE_DAYS[None, :] * (CYCLE_FACTOR[origin] * (amount / median) ** P.AMOUNT_ELASTICITY)[:, None]
    # wins by origin and creation year, so that won deals per year and channel are steady
    won = _quota(rng, WIN_RATE[origin], origin * 10_000 + _month_of(created // DAY) // 12)
    enter, closed = P.stage_process(rng, created, advance, days, won)
    # Stage changes happen in office hours, in order.
    reached = ~np.isnan(enter)
    office = np.where(reached, enter, 0).astype(np.int64)
    office[:, 1:] = _next_business(rng, office[:, 1:].ravel()).reshape(len(created), -1)
    office = np.maximum.accumulate(np.where(reached, office, 0), axis=1)
    closed = np.maximum(_next_business(rng, closed.astype(np.int64)), office.max(axis=1))
    mean, sd, sd2 = P.ESTIMATE_DRIFT
    first = np.round(amount * np.exp(rng.normal(mean, sd, len(amount))), -2)
    proposal = np.round(amount * np.exp(rng.normal(0, sd2, len(amount))), -2)
    estimate = np.stack([first, first, proposal, amount], axis=1)
    return {"enter": np.where(reached, office, -1), "closed": closed, "won": won, "estimate": estimate}


def _opportunities(rng: np.random.Generator, w: _World, leads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """New business (from leads and sales-sourced), renewals and expansions, warm-up ones too (for
    revenue), sorted by creation; see :mod:`kpi_helpers.sample_pipeline` for the process.

    Besides the columns, ``enter`` (n, 4) holds when each open stage was entered (-1: never) and
    ``estimate`` (n, 4) the amount known from each stage on, for ``opportunity_history``.
    """
    from_lead = np.flatnonzero(leads["has_opp"])
    # Sales-sourced deals follow demand too, about SALES_SOURCED_SHARE of all new deals.
    opp_per_lead = np.average(MQL_RATE * SQL_RATE * OPP_RATE, weights=LEAD_SHARE + EVENTS_SHARE * (np.arange(7) == EVT))
    lam = w.planned_lambda.sum(axis=1) * opp_per_lead * SALES_SOURCED_SHARE / (1 - SALES_SOURCED_SHARE)
    ss_created = _next_business(rng, np.repeat(w.days, rng.poisson(lam)) * DAY)
    ss_created = ss_created[ss_created <= w.end_ts]
    created = np.concatenate([leads["opp"][from_lead], ss_created])
    lead = np.concatenate([from_lead, np.full(len(ss_created), -1)])
    origin = np.concatenate([leads["channel"][from_lead], np.full(len(ss_created), SALES)])
    amount = _amounts(rng, w, created, DEAL_MEDIAN[origin])
    new = _deals(rng, created, origin, amount, DEAL_MEDIAN[origin])
    n_new = len(created)

    # Accounts: every won new deal starts one; so does each account from before the CRM export.
    n_legacy = int(rng.poisson(P.LEGACY_ACCOUNTS * w.scale))
    legacy_start = ((w.warm - 365 + rng.random(n_legacy) * 365) * DAY).astype(np.int64)
    legacy_amount = _amounts(rng, w, np.full(n_legacy, w.warm * DAY), np.full(n_legacy, P.LEGACY_MEDIAN))
    won_new = np.flatnonzero(new["won"])
    acc_key = np.concatenate([won_new, n_new + np.arange(n_legacy)])
    acc_start = np.concatenate([new["closed"][won_new], legacy_start]).astype(float)
    acc_origin = np.concatenate([origin[won_new], np.full(n_legacy, LEGACY)])
    a, b = P.churn_beta(acc_origin)
    theta = rng.beta(a, b)
    ren = P.renewals(rng, acc_start, np.concatenate([amount[won_new], legacy_amount]), theta, w.end_ts)
    r_created = _next_business(rng, ren["created"].astype(np.int64))
    r_closed = np.maximum(_next_business(rng, ren["closed"].astype(np.int64)), r_created + 3600)
    n_ren = len(r_created)

    exp_at, exp_acc = P.expansion_times(rng, acc_start, ren["ends"])
    e_created = _next_business(rng, exp_at.astype(np.int64))
    keep = e_created <= w.end_ts
    e_created, exp_acc = e_created[keep], exp_acc[keep]
    e_median = np.full(len(e_created), EXPANSION_MEDIAN)
    e_amount = _amounts(rng, w, e_created, e_median)
    exp = _deals(rng, e_created, np.full(len(e_created), EXPANSION), e_amount, e_median)

    # Renewals open at the proposal stage, with their amount known.
    r_enter = np.full((n_ren, len(P.OPEN_STAGES)), -1)
    r_enter[:, P.OPEN_STAGES.index("proposal")] = r_created
    r_estimate = np.repeat(ren["amount"][:, None], len(P.OPEN_STAGES), axis=1)
    opps = {
        "created": np.concatenate([created, r_created, e_created]),
        "closed": np.concatenate([new["closed"], r_closed, exp["closed"]]),
        "won": np.concatenate([new["won"], ren["won"], exp["won"]]),
        "lead": np.concatenate([lead, np.full(n_ren + len(e_created), -1)]),
        "type": np.repeat(np.arange(3), [n_new, n_ren, len(e_created)]),
        "amount": np.concatenate([amount, ren["amount"], e_amount]),
        "account_key": np.concatenate([np.arange(n_new), acc_key[ren["account"]], acc_key[exp_acc]]),
        "enter": np.concatenate([new["enter"], r_enter, exp["enter"]]),
        "estimate": np.concatenate([new["estimate"], r_estimate, exp["estimate"]]),
    }
    order = np.argsort(opps["created"], kind="stable")
    opps = {k: v[order] for k, v in opps.items()}
    lead = opps["lead"]
    open_, won_, lost = (STAGES.index(s) for s in ("open", "won", "lost"))
    opps["stage"] = np.select([opps["closed"] > w.end_ts, opps["won"]], [open_, won_], lost)
    opps["visible"] = (
        (opps["created"] >= w.start_ts)
        & (opps["created"] <= w.end_ts)
        & ((lead < 0) | (leads["created"][np.maximum(lead, 0)] >= w.start_ts))
    )
    # Accounts are numbered by their first visible deal.
    vis = np.flatnonzero(opps["visible"])
    keys, first = np.unique(opps["account_key"][vis], return_index=True)
    number = np.empty(len(keys), np.int64)
    number[np.argsort(first, kind="stable")] = np.arange(len(keys))
    opps["account"] = np.full(len(order), -1)
    opps["account"][vis] = number[np.searchsorted(keys, opps["account_key"][vis])]
    # An open deal shows the amount of the latest stage it has reached.
    entered = (opps["enter"] >= 0) & (opps["enter"] <= w.end_ts)
    latest = np.where(entered.any(axis=1), len(P.OPEN_STAGES) - 1 - np.argmax(entered[:, ::-1], axis=1), 0)
    current = opps["estimate"][np.arange(len(order)), latest]
    opps["amount"] = np.where(opps["stage"] == open_, current, opps["amount"])
    return opps


def _history(w: _World, opps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``opportunity_history`` of the visible deals: a row per stage entered and one at the close,
    each up to the data's last day, sorted by deal and time."""
    vis = np.flatnonzero(opps["visible"])
    enter, estimate = opps["enter"][vis], opps["estimate"][vis]
    rows, stage = np.nonzero((enter >= 0) & (enter <= w.end_ts))
    closed = opps["closed"][vis] <= w.end_ts
    c_rows = np.flatnonzero(closed)
    deal = np.concatenate([rows, c_rows])
    when = np.concatenate([enter[rows, stage], opps["closed"][vis][c_rows]])
    label = np.concatenate([stage, len(P.OPEN_STAGES) + (~opps["won"][vis][c_rows]).astype(np.int64)])
    amount = np.concatenate([estimate[rows, stage], opps["amount"][vis][c_rows]])
    order = np.lexsort((label, when, deal))
    return {
        "opp": vis[deal[order]],
        "row": deal[order],
        "t": when[order],
        "stage": label[order],
        "amount": amount[order],
    }


def _revenue(rng: np.random.Generator, w: _World, opps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Closed months: every won deal (new, renewal, expansion; warm-up ones too) recognised over the
    12 months from its close month, plus services (see :mod:`kpi_helpers.sample_pipeline`)."""
    months = w.months[: np.searchsorted(w.months, _month_of(w.end + 1))]  # complete months only
    won = opps["stage"] == STAGES.index("won")
    closed_month = _month_of(opps["closed"][won] // DAY)
    subscription = P.recognised(months, closed_month, opps["amount"][won])
    services = P.SERVICES_SHARE * subscription * _noise(rng, len(months), P.SERVICES_SD)
    return {"month": _month_start(months), "revenue": np.round(subscription + services, 2)}


def _touchpoints(
    rng: np.random.Generator, w: _World, leads: dict[str, np.ndarray], written: np.ndarray, opps: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Journeys of the written leads: touches before, at creation, in between, at the deal and near a
    win, sorted by lead and time."""
    ch, created = leads["channel"][written], leads["created"][written]
    n = len(ch)
    row = np.cumsum(written) - 1  # row of each simulated lead among the written ones
    o = opps["visible"] & (opps["lead"] >= 0)
    opp_at, won_at = np.full(n, -1), np.full(n, -1)
    opp_at[row[opps["lead"][o]]] = opps["created"][o]
    won_at[row[opps["lead"][o]]] = np.where(opps["stage"][o] == STAGES.index("won"), opps["closed"][o], -1)
    has_opp, has_won = opp_at >= 0, won_at >= 0
    upper = np.where(has_opp, opp_at, np.minimum(created + 120 * DAY, w.end_ts))  # end of "in between"

    n_pre = rng.poisson(PRE_TOUCHES[ch])
    n_mid = rng.poisson(MID_TOUCHES[0] + MID_TOUCHES[1] * leads["is_sql"][written])
    excess = np.maximum(0, n_pre + 1 + n_mid + has_opp + has_won - MAX_TOUCHES)
    cut = np.minimum(n_mid, excess)
    n_mid, n_pre = n_mid - cut, n_pre - (excess - cut)

    pre = np.repeat(np.arange(n), n_pre)
    pre_t = created[pre] - _days_to_seconds(rng.exponential(25.0, len(pre)))
    early = pre_t < w.start_ts  # never before the data starts
    since_start = (created[pre] - w.start_ts)[early]
    pre_t[early] = w.start_ts + (since_start * rng.random(early.sum())).astype(np.int64)
    mid = np.repeat(np.arange(n), n_mid)
    mid_t = created[mid] + ((upper[mid] - created[mid]) * rng.uniform(0.05, 0.95, len(mid))).astype(np.int64)
    deal, win = np.flatnonzero(has_opp), np.flatnonzero(has_won)
    win_t = np.maximum(opp_at[win] + 60, won_at[win] - _days_to_seconds(rng.uniform(0, 10, len(win))))

    kind = np.repeat(np.arange(5), [len(pre), n, len(mid), len(deal), len(win)])  # the rows of TOUCH_MIX
    lead = np.concatenate([pre, np.arange(n), mid, deal, win])
    t = np.concatenate([pre_t, created, mid_t, opp_at[deal], win_t])
    own = kind == 1
    channel = np.where(own, ch[lead], _choice(rng, kind, TOUCH_MIX))
    campaign = np.where(own, leads["campaign"][written][lead], -1)

    # Event touches snap to a real event: the last one before a touch that precedes the lead, the next
    # one after the lead for a touch in between; without one the touch is organic or an e-mail.
    snap = (channel == EVT) & ~own
    good = np.zeros(len(t), bool)
    if len(w.ev_day):
        ev_ts = w.ev_day * DAY
        last = np.searchsorted(ev_ts, t, side="right") - 1
        nxt = np.searchsorted(ev_ts, created[lead], side="right")
        j = np.clip(np.where(kind == 0, last, nxt), 0, len(ev_ts) - 1)
        fits = np.where(
            kind == 0,
            (last >= 0) & (t - ev_ts[j] < 120 * DAY) & (w.ev_day[j] >= w.start),
            (nxt < len(ev_ts)) & (ev_ts[j] <= upper[lead]),
        )
        good = snap & fits
        at = ev_ts[j] + (rng.random(len(t)) * w.ev_days[j]).astype(np.int64) * DAY
        at += _business_seconds(rng, len(t))
        at = np.where(kind == 0, np.minimum(at, created[lead] - 60), np.clip(at, created[lead] + 60, upper[lead]))
        t = np.where(good, at, t)
        campaign = np.where(good, w.ev_campaign[j], campaign)
    channel = np.where(snap & ~good, np.where(kind == 0, ORG, EML), channel)
    plain = ~own & ~good
    campaign[plain] = w.campaign(rng, channel[plain], t[plain])

    order = np.lexsort((t, lead))
    return {"lead": lead[order], "t": t[order], "channel": channel[order], "campaign": campaign[order]}


def _web(rng: np.random.Generator, w: _World) -> tuple[dict[str, np.ndarray], ...]:
    """Daily sessions per channel, source, device and landing page; goal completions; blog views.

    Visits are drawn one by one (a Poisson total per month, then day, channel, source, device and
    page) and counted per combination, so rows exist only where there were sessions.
    """
    days = w.days[w.visible]
    lam = w.session_lambda[w.visible]
    months = _month_of(days)
    n_src, n_pages = len(w.sources), w.n_pages
    keys, counts = [], []
    for m in np.unique(months):  # a month at a time keeps memory flat at large scales
        sel = np.flatnonzero(months == m)
        total = rng.poisson(lam[sel].sum())
        day = sel[_one_of(rng, total, lam[sel].sum(axis=1))]
        ch = _one_of(rng, total, lam[sel].sum(axis=0))
        src = _choice(rng, ch, w.source_w)
        dev = _choice(rng, ch, w.device_w)
        page = w.page(rng, _choice(rng, ch, w.web_page_w), days[day], (ch == EML) | (ch == PSO))
        key, count = np.unique(((day * n_src + src) * 3 + dev) * n_pages + page, return_counts=True)
        keys.append(key)
        counts.append(count)
    key, sessions = np.concatenate(keys), np.concatenate(counts)
    page, key = key % n_pages, key // n_pages
    dev, key = key % 3, key // 3
    src, day = key % n_src, key // n_src
    ch = w.source_channel[src]
    pageviews = sessions + rng.poisson(sessions * (PAGES_PER_SESSION[ch] - 1))
    users = 1 + rng.binomial(sessions - 1, 0.88)
    web = {
        "day": days[day],
        "ch": ch,
        "src": src,
        "dev": dev,
        "page": page,
        "sessions": sessions,
        "users": users,
        "new_users": rng.binomial(users, NEW_USERS[ch]),
        "pageviews": pageviews,
        "engaged": rng.binomial(sessions, 1 - np.minimum(BOUNCE[ch] * DEVICE_BOUNCE[dev], 0.9)),
        "duration": np.round(rng.gamma(0.8 * sessions, SECONDS_PER_SESSION[ch] * DEVICE_SECONDS[dev] / 0.8)),
    }

    # Goals: a small completion rate per session by goal, landing page and channel.
    names = w.pages.to_pylist()[:n_pages]
    gkeys, done = [], []
    for g, goal in enumerate(GOALS):
        base, by_page = GOAL_RATES[goal]
        rate = np.full(n_pages, base)
        for prefix, factor in by_page.items():
            rate[[p.startswith(prefix) for p in names]] *= factor
        completions = rng.binomial(sessions, np.minimum(rate[page] * GOAL_CHANNEL[ch], 0.5))
        nz = np.flatnonzero(completions)
        gkeys.append(((day[nz] * len(CHANNELS) + ch[nz]) * n_pages + page[nz]) * len(GOALS) + g)
        done.append(completions[nz])
    gkey, inv = np.unique(np.concatenate(gkeys), return_inverse=True)
    goal, gkey = gkey % len(GOALS), gkey // len(GOALS)
    goals = {
        "day": days[gkey // n_pages // len(CHANNELS)],
        "ch": gkey // n_pages % len(CHANNELS),
        "page": gkey % n_pages,
        "goal": goal,
        "completions": np.bincount(inv, weights=np.concatenate(done)).astype(np.int64),
    }

    # Blog reach for `content`: monthly page views of each post as a landing page.
    b = w.is_blog[page]
    bkey, inv = np.unique((_month_of(days[day[b]]) - months[0]) * n_pages + page[b], return_inverse=True)
    blog = {
        "day": _month_start(bkey // n_pages + months[0]),
        "page": bkey % n_pages,
        "views": np.bincount(inv, weights=pageviews[b]).astype(np.int64),
    }
    return web, goals, blog


def _content(
    rng: np.random.Generator, w: _World, lead_created: np.ndarray, blog: dict[str, np.ndarray]
) -> dict[str, np.ndarray | pa.Array]:
    """E-mails, webinars, conferences and print ads on their day; blog posts by month."""
    nan = np.nan  # not applicable
    # day, asset, type (index into CONTENT_TYPES), views, e-mails sent, open rate, attendees
    rows: list[tuple[int, str, int, float, float, float, float]] = []
    month_days = _month_start(w.months)
    audience = 2_500 * w.scale + 0.7 * np.searchsorted(lead_created, month_days * DAY)  # mailing list
    for m, first, size in zip(w.months, month_days, audience, strict=True):
        y, mo, q = int(m) // 12 + 1970, int(m) % 12 + 1, int(m) % 12 // 3 + 1
        rows.append((_next_weekday(int(first), 1), f"Newsletter {y}-{mo:02d}", 1, nan, size, 0.26, nan))
        if mo % 3 == 2:
            update = _next_weekday(int(first) + 7, 3)
            rows.append((update, f"Product Update {y} Q{q}", 1, nan, size, 0.3, nan))
        if mo % 3 == 1:
            rows.append(
                (
                    _next_weekday(int(first), 0),
                    f"Print Ad: MarTech Monthly {y} Q{q}",
                    4,
                    40_000 * w.scale,
                    nan,
                    nan,
                    nan,
                )
            )
    for e in np.flatnonzero(w.ev_day >= w.start):
        name, day, lam = w.ev_name[e], int(w.ev_day[e]), float(w.ev_lambda[e])
        if w.ev_webinar[e]:
            registrants = 6.0 * lam  # most registrants are known contacts, not new leads
            invited = float(np.interp(day, month_days, audience))
            rows += [
                (day - 14, f"Invite: {name}", 1, nan, invited, 0.22, nan),
                (day - 1, f"Reminder: {name}", 1, nan, registrants, 0.45, nan),
                (day, name, 2, 0.25 * registrants, nan, nan, 0.42 * registrants),
            ]  # views: replays
        else:
            rows.append((day, name, 3, nan, nan, nan, 2.5 * lam))  # booth visitors
            if name.startswith("B2B Marketing Expo"):
                rows.append((day, f"Benchmark Report {name[-4:]} (print)", 4, 1.2 * lam, nan, nan, nan))
    rows = [r for r in rows if w.start <= r[0] <= w.end]
    day = np.array([r[0] for r in rows], dtype=np.int64)
    views, sends, rate, attendees = (np.array([r[i] for r in rows], dtype=float) for i in (3, 4, 5, 6))
    n = len(rows)
    # Counts get noise; opens are drawn from the sends, so they never exceed them.
    views = np.where(np.isnan(views), nan, rng.poisson(np.nan_to_num(views)))
    sends = np.where(np.isnan(sends), nan, np.round(np.nan_to_num(sends) * rng.uniform(0.9, 1.0, n)))
    opens = np.where(
        np.isnan(sends),
        nan,
        rng.binomial(np.nan_to_num(sends).astype(np.int64), np.nan_to_num(rate) * rng.uniform(0.85, 1.15, n)),
    )
    attendees = np.where(np.isnan(attendees), nan, rng.poisson(np.nan_to_num(attendees)))

    nb = len(blog["page"])
    out = {
        "day": np.concatenate([day, blog["day"]]),
        "kind": np.concatenate([[r[2] for r in rows], np.zeros(nb, np.int64)]).astype(np.int64),
        "views": np.concatenate([views, blog["views"]]),
        "sends": np.concatenate([sends, np.full(nb, nan)]),
        "opens": np.concatenate([opens, np.full(nb, nan)]),
        "attendees": np.concatenate([attendees, np.full(nb, nan)]),
    }
    order = np.lexsort((np.arange(len(out["day"])), out["kind"], out["day"]))
    names = pa.concat_arrays([pa.array([r[1] for r in rows], type=pa.string()), w.titles.take(blog["page"])])
    return {k: v[order] for k, v in out.items()} | {"asset": names.take(order)}


#: how ad platforms spread a week's budget over its days (Monday first)
WEEKDAY_ADS = np.array([1.08, 1.10, 1.10, 1.06, 1.0, 0.82, 0.84])


def _spend(rng: np.random.Generator, w: _World) -> dict[str, np.ndarray]:
    """Cost per channel, campaign and cost type.

    Activity cost (media and production) is :mod:`kpi_helpers.sample_media`'s weekly plan: search and
    social ads by day (as ad platforms report it; a week's days add up to the week's plan), the
    other channels by week (dated the Monday, or `start` for the first week; the last week to date);
    events in their week, one row per event. Fixed costs (software, labour, overhead, the sales team)
    by month, as finance books them (dated the first; the last month to date).
    """
    nm = len(w.months)
    first = _month_start(w.months)
    month = w.month[w.visible] - w.months[0]
    prorate = np.bincount(month, minlength=nm) / np.diff(_month_start(np.append(w.months, w.months[-1] + 1)))
    parts: list[tuple[np.ndarray, int, int, str, np.ndarray]] = []  # days, channel, campaign, type, cost

    days = w.days[w.visible]
    week = (days - w.monday0) // 7
    weeks = np.unique(week)
    mondays = w.mondays[weeks]
    in_data = np.bincount(week - weeks[0], minlength=len(weeks)) / 7  # share of each week inside the data
    weights = w.campaign_weights.reshape(len(CHANNELS), w.n_months, -1)
    # a week's share per day for the ad platforms: the weekday rhythm with noise, adding up to 1 a week
    # (a week cut by the data's end keeps its days' share of the week)
    rhythm = WEEKDAY_ADS[_weekday(w.days)]
    daily = rhythm * _noise(rng, len(w.days), 0.12)
    all_week = (w.days - w.monday0) // 7
    daily *= (np.bincount(all_week, weights=rhythm) / np.bincount(all_week, weights=daily))[all_week]
    daily = (daily / WEEKDAY_ADS.sum())[w.visible]
    for c, name in enumerate(M.MEDIA_CHANNELS):
        ch = CHANNELS.index(name)
        if ch == EVT:
            continue
        paid = [k for k, camp in enumerate(CAMPAIGNS) if camp[0] == ch and camp[5]]
        if ch in (PSE, PSO):
            at, cost, m = days, w.media_spend[week, c] * daily, _month_of(days) - w.m0
        else:
            at = np.maximum(mondays, w.start)
            cost, m = w.media_spend[weeks, c] * in_data, _month_of(mondays) - w.m0
        share = weights[ch][m][:, paid]
        share = share / np.maximum(share.sum(axis=1, keepdims=True), 1e-12)
        for j, k in enumerate(paid):
            parts.append((at, ch, k, CAMPAIGNS[k][5], cost * share[:, j]))
    for e in np.flatnonzero(w.ev_day >= w.start):
        kind = "production" if w.ev_webinar[e] else "media"
        monday = max(int(w.monday0 + 7 * ((w.ev_day[e] - w.monday0) // 7)), w.start)
        parts.append((np.array([monday]), EVT, int(w.ev_campaign[e]), kind, w.ev_cost[e : e + 1]))
    # Running costs: teams, tools, content, overhead and the sales team.
    names = w.campaign_names.to_pylist()
    years = np.arange(nm) / 12
    for ch, campaign, cost_type, base, growth in COST_LINES:
        stepped = cost_type in STEPPED
        level = (1 + growth) ** (np.floor(years) if stepped else years)
        cost = base * w.scale * level * _noise(rng, nm, 0.02 if stepped else 0.12) * prorate
        k = -1 if campaign is None else names.index(campaign)
        parts.append((first, len(CHANNELS) if ch is None else ch, k, cost_type, cost))

    n_ch, n_k, n_t = len(CHANNELS) + 1, len(names), len(COST_TYPES)  # campaign -1 (none) is stored as n_k - 1
    key = np.concatenate(
        [(((d - first[0]) * n_ch + ch) * n_k + k % n_k) * n_t + COST_TYPES.index(t) for d, ch, k, t, _ in parts]
    )
    key, inv = np.unique(key, return_inverse=True)
    amount = np.round(np.bincount(inv, weights=np.concatenate([c for *_, c in parts])), 2)
    key, amount = key[amount > 0], amount[amount > 0]
    return {
        "day": first[0] + key // n_t // n_k // n_ch,
        "channel": key // n_t // n_k % n_ch,
        "campaign": key // n_t % n_k,
        "cost_type": key % n_t,
        "amount": amount,
    }


# --- output -----------------------------------------------------------------------------------------


def _ts(seconds: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(seconds, dtype=np.int64), mask=None if valid is None else ~valid, type=pa.timestamp("s"))


def _date(days: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(days, dtype=np.int32), type=pa.date32())


def _count(values: np.ndarray) -> pa.Array:
    """Whole numbers; NaN becomes null (not applicable)."""
    values = np.asarray(values, dtype=float)
    return pa.array(np.nan_to_num(values).astype(np.int64), mask=np.isnan(values), type=pa.int64())


def _labels(labels: Sequence[str | None] | pa.Array, idx: np.ndarray) -> pa.Array:
    """``labels[idx]`` as strings; index -1 takes the last label (None where "none" is allowed)."""
    labels = labels if isinstance(labels, pa.Array) else pa.array(list(labels), type=pa.string())
    idx = np.asarray(idx, dtype=np.int64)
    return labels.take(np.where(idx < 0, len(labels) - 1, idx))


def _ids(prefix: str, n: int, width: int) -> pa.Array:
    """``L000001``-style ids 1..n, zero-padded to `width` digits (more when n needs them)."""
    digits = pc.cast(pa.array(np.arange(1, n + 1)), pa.string())
    digits = pc.utf8_lpad(digits, width=max(width, len(str(n))), padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, "")


def _table(name: str, columns: Mapping[str, pa.Array], fmt: str) -> pa.Table:
    """Columns in contract order, typed for the format: CSV gets money with 2 decimals and whole
    seconds; parquet gets float64 and microsecond timestamps (what duckdb and pandas use)."""
    arrays, names = [], []
    for col in CONTRACT[name].columns:
        if col.optional and col.name not in columns:
            continue  # an optional column the sample does not have (e.g. `currency`: one currency)
        a = columns[col.name]
        if col.kind == "amount":
            a = pc.cast(a, pa.decimal128(18, 2)) if fmt == "csv" else pc.cast(a, pa.float64())
        elif col.kind == "seconds":
            a = pc.cast(a, pa.int64() if fmt == "csv" else pa.float64())
        elif col.kind == "number":
            a = pc.cast(a, pa.decimal128(18, 4)) if fmt == "csv" else pc.cast(a, pa.float64())
        elif col.kind == "timestamp" and fmt == "parquet":
            a = pc.cast(a, pa.timestamp("us"))
        arrays.append(a)
        names.append(col.name)
    return pa.table(arrays, names=names)


#: the files the generator wrote into a folder, with their SHA-256: only those may be replaced
MANIFEST = ".kpi-sample.json"


def _refuse_foreign_files(out: Path, targets: Sequence[Path]) -> None:
    """Refuse (exit 2) to replace a file the generator did not write, or one changed since."""
    if out.exists() and not out.is_dir():
        raise KpiError(f"`{out}` is a file; `kpi sample --out` needs a folder")
    try:
        written = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        written = {}
    written = written if isinstance(written, dict) else {}
    foreign = [p.name for p in targets if p.exists() and written.get(p.name) != sha256_of(p)]
    if foreign:
        raise KpiError(
            f"`{out}` already holds {', '.join(f'`{n}`' for n in foreign)}, which `kpi sample` did not write (or "
            "which changed since): the generator never replaces your files. Choose another `--out`, or move them"
        )


def _write_manifest(out: Path, targets: Sequence[Path]) -> None:
    try:
        written = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        written = {}
    written = written if isinstance(written, dict) else {}
    written.update({p.name: sha256_of(p) for p in targets})
    write_json(out / MANIFEST, written, indent=1, sort_keys=True)


def _write(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pq.write_table(table, path, compression="zstd")
        return
    with path.open("wb") as f:
        # pyarrow would quote the header; values never need quotes (quoting_style="none" refuses any).
        f.write((",".join(table.column_names) + "\n").encode())
        pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False, quoting_style="none"))


#: the planted truth the generator writes beside the tables (see :func:`_truth`)
TRUTH = "truth.json"
#: `opportunity_history.stage` labels: the open stages, then won and lost
HISTORY_STAGES = (*P.OPEN_STAGES, "won", "lost")
#: deal origins named in truth.json: the channels, sales-sourced deals, expansions
ORIGINS = (*CHANNELS, SALES_SOURCED, "expansion")


def _sig(x: float) -> float | None:
    """8 significant digits: the same bytes on every platform; None (JSON null) where undefined
    (a data set too short for a complete week has no window)."""
    return float(f"{float(x):.8g}") if np.isfinite(x) else None


def _sigs(d: Mapping[str, float]) -> dict[str, float | None]:
    return {k: _sig(v) for k, v in d.items()}


def _truth(w: _World, leads: dict[str, np.ndarray], spend: dict[str, np.ndarray], *, seed: int) -> dict:
    """The generating process's truth for ``truth.json``: the marketing-mix truth over the fitted
    window (:mod:`kpi_helpers.sample_media`), the lift tests' true lifts, the pipeline's and the
    customers' parameters (:mod:`kpi_helpers.sample_pipeline`)."""
    window = w.window
    first, last = int(w.mondays[window.start]), int(w.mondays[window.stop - 1] + 6)
    media = [CHANNELS.index(c) for c in M.MEDIA_CHANNELS]
    inside = (spend["day"] >= first) & (spend["day"] <= last)
    activity = np.isin(spend["cost_type"], [COST_TYPES.index(t) for t in ACTIVITY_COST_TYPES])
    cost = np.bincount(spend["channel"][inside & activity], weights=spend["amount"][inside & activity], minlength=8)
    days = (w.days >= first) & (w.days <= last)
    expected = float(w.lead_lambda[days].sum() + w.inc_lambda[days].sum())
    price = float(np.mean(np.interp(w.days[days], w.days, w.trend) ** 0.3)) if days.any() else np.nan
    ch = np.array(media)
    lead_to_won = MQL_RATE[ch] * SQL_RATE[ch] * OPP_RATE[ch] * WIN_RATE[ch]
    deal = DEAL_MEDIAN[ch] * price * np.exp(DEAL_SD**2 / 2)
    t = M.truth(w.media_spend, window, w.media_lam, w.media_beta, expected, cost[ch], lead_to_won, deal)
    day = leads["created"] // DAY
    drawn = np.bincount(leads["channel"][leads["incremental"] & (day >= first) & (day <= last)], minlength=7)
    iso = lambda d: str(np.datetime64(int(d), "D"))  # noqa: E731
    a, b = P.churn_beta(np.arange(len(P.CHURN_MEAN)))
    advance = P.advance_probabilities(WIN_RATE)
    return {
        "target": "leads",
        "seed": seed,
        "scale": w.scale,
        "window": {"start": iso(first), "end": iso(last), "weeks": window.stop - window.start},
        "activity_cost_types": list(ACTIVITY_COST_TYPES),
        **{k: _sigs(v) for k, v in t.items() if k in ("incremental_per_cost", "incremental_roi", "contribution_share")},
        **{
            k: _sigs(v)
            for k, v in t.items()
            if k not in ("incremental_per_cost", "incremental_roi", "contribution_share")
        },
        "incremental_leads_drawn": {c: int(drawn[CHANNELS.index(c)]) for c in M.MEDIA_CHANNELS},
        "leads_expected": _sig(expected),
        "adstock": {
            "type": "geometric",
            "l_max": M.L_MAX,
            "normalize": True,
            "alpha": _sigs(dict(zip(M.MEDIA_CHANNELS, M.ADSTOCK_ALPHA, strict=True))),
        },
        "saturation": {
            "type": "logistic",
            "formula": "beta * (1 - exp(-lam * x)) / (1 + exp(-lam * x)), x: adstocked weekly activity cost",
            "lam": _sigs(dict(zip(M.MEDIA_CHANNELS, w.media_lam, strict=True))),
            "beta": _sigs(dict(zip(M.MEDIA_CHANNELS, w.media_beta, strict=True))),
        },
        "experiments": [
            {
                "channel": r["channel"],
                "start": iso(w.mondays[r["first_week"]]),
                "true_delta_y": _sig(r["true_delta_y"]),
                "delta_y": _sig(r["delta_y"]),
                "sigma": _sig(r["sigma"]),
            }
            for r in w.experiments
        ],
        "pipeline": {
            "open_stages": list(P.OPEN_STAGES),
            "stage_days": P.STAGE_DAYS.tolist(),
            "stage_shape": P.STAGE_SHAPE,
            "amount_elasticity": P.AMOUNT_ELASTICITY,
            "win_rate": _sigs(dict(zip(ORIGINS, WIN_RATE, strict=True))),
            "cycle_factor": _sigs(dict(zip(ORIGINS, CYCLE_FACTOR, strict=True))),
            "stage_advance": {o: [_sig(p) for p in row] for o, row in zip(ORIGINS, advance, strict=True)},
        },
        "customers": {
            "churn_beta": {
                o: [_sig(x), _sig(y)] for o, x, y in zip([*CHANNELS, SALES_SOURCED, "(legacy)"], a, b, strict=True)
            },
            "expansion_shape": P.EXPANSION_SHAPE,
            "expansion_per_year": P.EXPANSION_PER_YEAR,
            "renewal_uplift": list(P.RENEWAL_UPLIFT),
        },
    }


def generate(
    out: str | Path,
    *,
    seed: int = 42,
    scale: float = 1.0,
    fmt: str = "csv",
    start: str = "2021-01-01",
    end: str = "2026-10-20",
) -> dict[str, int]:
    """Write one file per contract table into `out` (`<table>.csv` or `<table>.parquet`) and the
    planted truth (``truth.json``); return row counts.

    Parameters
    ----------
    out : str or Path
        Directory to write into; created if missing; files the generator wrote before (listed in its
        manifest ``.kpi-sample.json`` with their checksum) are replaced, any other file is refused.
    seed : int
        Random seed: the same arguments give byte-identical files.
    scale : float
        Size of the business, > 0: 1 gives about 10,000 leads, 30,000 touchpoints and 100,000
        ``web_sessions`` rows; leads, touchpoints, opportunities, traffic, ``web_sessions`` rows
        and amounts grow about in proportion (100: over 10 million ``web_sessions`` rows).
    fmt : {"csv", "parquet"}
        CSV: ISO dates and timestamps, amounts with 2 decimals, empty cells for nulls. Parquet:
        date32, timestamp[us], int64, float64 and string columns.
    start, end : str
        First and last day (inclusive) of the data, ISO dates.

    Returns
    -------
    dict of str to int
        Rows written per table, in contract order.

    Examples
    --------
    >>> counts = generate(tmp_path, scale=0.05)  # doctest: +SKIP
    >>> sorted(counts) == sorted(SAMPLE_TABLES)  # doctest: +SKIP
    True
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"`fmt` must be 'csv' or 'parquet', got {fmt!r}")
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not (0 < scale < float("inf")):
        raise ValueError(f"`scale` must be a number > 0, got {scale!r}")
    rng = dict(zip(STREAMS, np.random.default_rng(seed).spawn(len(STREAMS)), strict=True))
    w = _World(rng["world"], rng["media"], float(scale), start, end)
    leads = _leads(rng["leads"], w)
    opps = _opportunities(rng["opportunities"], w, leads)
    spend = _spend(rng["spend"], w)
    written = leads["created"] >= w.start_ts
    lead_ids = _ids("L", int(written.sum()), 6)
    lead_row = np.cumsum(written) - 1
    channels = pa.array([*CHANNELS, UNALLOCATED], type=pa.string())
    opp_ids = _ids("O", int(opps["visible"].sum()), 6)
    web, goals, blog = _web(rng["web"], w)

    def columns(name: str) -> dict[str, pa.Array]:
        if name == "revenue":
            r = _revenue(rng["revenue"], w, opps)
            return {"month": _date(r["month"]), "revenue": pa.array(r["revenue"])}
        if name == "web_sessions":
            return {
                "date": _date(web["day"]),
                "channel": channels.take(web["ch"]),
                "source": w.sources.take(web["src"]),
                "medium": w.mediums.take(web["src"]),
                "device": _labels(DEVICES, web["dev"]),
                "landing_page": w.pages.take(web["page"]),
                "sessions": _count(web["sessions"]),
                "users": _count(web["users"]),
                "new_users": _count(web["new_users"]),
                "pageviews": _count(web["pageviews"]),
                "engaged_sessions": _count(web["engaged"]),
                "session_duration_s": pa.array(web["duration"]),
            }
        if name == "web_goals":
            return {
                "date": _date(goals["day"]),
                "channel": channels.take(goals["ch"]),
                "landing_page": w.pages.take(goals["page"]),
                "goal": _labels(GOALS, goals["goal"]),
                "completions": _count(goals["completions"]),
            }
        if name == "leads":
            return {
                "lead_id": lead_ids,
                "created_at": _ts(leads["created"][written]),
                "channel": channels.take(leads["channel"][written]),
                "campaign": _labels(w.campaign_names, leads["campaign"][written]),
                "landing_page": _labels(w.pages, leads["page"][written]),
                "mql_at": _ts(leads["mql"][written], leads["is_mql"][written]),
                "sql_at": _ts(leads["sql"][written], leads["is_sql"][written]),
            }
        if name == "opportunities":
            o = {k: v[opps["visible"]] for k, v in opps.items()}
            lead = pa.array(lead_row[np.maximum(o["lead"], 0)], mask=o["lead"] < 0)
            return {
                "opportunity_id": opp_ids,
                "lead_id": lead_ids.take(lead),
                "account_id": _ids("A", int(o["account"].max(initial=-1)) + 1, 5).take(o["account"]),
                "created_at": _ts(o["created"]),
                "closed_at": _ts(o["closed"], o["stage"] != STAGES.index("open")),
                "stage": _labels(STAGES, o["stage"]),
                "amount": pa.array(o["amount"]),
                "type": _labels(OPPORTUNITY_TYPES, o["type"]),
            }
        if name == "opportunity_history":
            h = _history(w, opps)
            return {
                "opportunity_id": opp_ids.take(pa.array(h["row"])),
                "changed_at": _ts(h["t"]),
                "stage": _labels(HISTORY_STAGES, h["stage"]),
                "amount": pa.array(h["amount"]),
            }
        if name == "experiments":
            e = w.experiments
            return {
                "channel": pa.array([r["channel"] for r in e], type=pa.string()),
                "start": _date(np.array([w.mondays[r["first_week"]] for r in e])),
                "end": _date(np.array([w.mondays[r["first_week"]] + 7 * r["weeks"] - 1 for r in e])),
                "x": pa.array([round(r["x"], 2) for r in e]),
                "delta_x": pa.array([round(r["delta_x"], 2) for r in e]),
                "delta_y": pa.array([round(r["delta_y"], 4) for r in e]),
                "sigma": pa.array([round(r["sigma"], 4) for r in e]),
            }
        if name == "spend":
            return {
                "date": _date(spend["day"]),
                "channel": channels.take(spend["channel"]),
                "campaign": w.campaign_names.take(spend["campaign"]),
                "cost_type": _labels(COST_TYPES, spend["cost_type"]),
                "amount": pa.array(spend["amount"]),
            }
        if name == "touchpoints":
            t = _touchpoints(rng["touchpoints"], w, leads, written, opps)
            return {
                "lead_id": lead_ids.take(t["lead"]),
                "touched_at": _ts(t["t"]),
                "channel": channels.take(t["channel"]),
                "campaign": _labels(w.campaign_names, t["campaign"]),
            }
        c = _content(rng["content"], w, leads["created"][written], blog)
        return {
            "date": _date(c["day"]),
            "asset": c["asset"],
            "asset_type": _labels(CONTENT_TYPES, c["kind"]),
            "views": _count(c["views"]),
            "email_sends": _count(c["sends"]),
            "email_opens": _count(c["opens"]),
            "attendees": _count(c["attendees"]),
        }

    out = Path(out)
    targets = [out / f"{name}.{fmt}" for name in SAMPLE_TABLES]
    _refuse_foreign_files(out, [*targets, out / TRUTH])  # before any work: never overwrite a file it did not write
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, path in zip(SAMPLE_TABLES, targets, strict=True):
        table = _table(name, columns(name), fmt)
        _write(table, path, fmt)
        counts[name] = table.num_rows
    doc = _truth(w, leads, spend, seed=seed)
    (out / TRUTH).write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    _write_manifest(out, [*targets, out / TRUTH])
    return counts
