"""The conclusions of the report pages in words (Markdown), from ``QuarterKpis.metrics()``.

Every number is formatted by :func:`kpi_helpers.formats.format_value` with the registry's unit for
its key and Markdown-escaped (:func:`kpi_helpers.markup.md_escape`); every name from the data is
escaped too. A narrative speaks only of numbers the data gives; its last paragraphs name those it
does not give, and why (``m["undefined"]``), and those counted on part of the quarter
(``m["partial"]``).

A KPI's status is said with the words of :data:`kpi_helpers.status.LABELS` and taken from the KPI
row itself (:func:`kpi_helpers.status.of_row`), never recomputed. Each narrative is a
:class:`Narrative`: the Markdown text, plus ``statuses``, the status it stated for each KPI (by
metric), which a page records so that a test can check them against ``metrics.json``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import pandas as pd

from .changes import VERDICTS, verdict
from .formats import NA, format_change, format_interval, format_value, is_missing
from .labels import OWN_CHANNEL, has_touches, key_label, model_label, status_word, way_to_target
from .markup import and_list, md_escape, md_text, sentence
from .registry import KPIS, unit_of
from .status import STATUSES, of_row

__all__ = [
    "Narrative",
    "change_words",
    "conversion",
    "credit_sources_sentence",
    "forecast_chances",
    "goal",
    "goal_formula",
    "maturity",
    "model_assumptions",
    "movements_sentence",
    "not_available",
    "pacing",
    "partial_note",
    "roi",
    "summary",
    "traffic",
]


class Narrative(str):
    """Markdown text that remembers the status it stated for each KPI (``statuses``: metric -> status)."""

    statuses: dict[str, str]

    def __new__(cls, text: str, statuses: Mapping[str, str] | None = None) -> Narrative:
        obj = super().__new__(cls, text)
        obj.statuses = dict(statuses or {})
        return obj


def change_words(current: Any, previous: Any, unit: str = "count") -> str:
    """How a number moved, in words: ``up 5.0%`` (relative, for counts and money), ``down 1.2 pts``
    (percentages), ``up 0.30`` (ratios), ``unchanged``, or ``""`` when either side is missing or the
    previous value is 0 (:func:`kpi_helpers.formats.format_change`). Plain text.

    >>> change_words(105, 100), change_words(0.108, 0.12, "percent"), change_words(5, 5), change_words(5, None)
    ('up 5.0%', 'down 1.2 pts', 'unchanged', '')
    """
    text = format_change(current, previous, unit)
    if text == NA:
        return ""
    if not re.sub(r"[^1-9]", "", text):
        return "unchanged"
    return ("down " if text.startswith("-") else "up ") + text.lstrip("+-")


def not_available(m: Mapping[str, Any], keys: Iterable[str]) -> str:
    """One Markdown paragraph naming the ``keys`` that ``m`` leaves undefined, grouped by their reason
    (``m["undefined"]``); ``""`` when every one is defined. A narrative ends with it instead of
    saying anything about a number that is not there.

    >>> not_available({"quarter": "2026Q3", "undefined": {"cac": "needs spend: add spend.csv"}}, ["leads", "cac"])
    'Not available for 2026Q3: CAC (needs spend: add spend.csv).'
    """
    groups = _grouped(m.get("undefined") or {}, keys)
    if not groups:
        return ""
    parts = [f"{md_escape(and_list([key_label(k) for k in ks]))} ({md_text(why)})" for why, ks in groups.items()]
    return f"Not available for {md_escape(m.get('quarter', 'this quarter'))}: " + "; ".join(parts) + "."


def partial_note(m: Mapping[str, Any], keys: Iterable[str]) -> str:
    """One Markdown paragraph naming the ``keys`` computed on part of the quarter, with the days
    their data lacks (``m["partial"]``); ``""`` when none is partial."""
    groups = _grouped(m.get("partial") or {}, keys)
    if not groups:
        return ""
    parts = [f"{md_escape(and_list([key_label(k) for k in ks]))} ({md_text(why)})" for why, ks in groups.items()]
    return "Counted on part of the quarter only: " + "; ".join(parts) + "."


def _grouped(reasons: Mapping[str, Any], keys: Iterable[str]) -> dict[str, list[str]]:
    """Keys grouped by their reason, in the order of ``keys``; a reason that contains an earlier
    one (``no revenue target: needs revenue: ...`` contains ``needs revenue: ...``) joins its group."""
    groups: dict[str, list[str]] = {}
    for key in dict.fromkeys(keys):
        why = reasons.get(key)
        if not why:
            continue
        why = str(why)
        same = next((g for g in groups if g in why or why in g), why)
        if same != why and len(why) < len(same):  # keep the shorter wording
            groups[why] = groups.pop(same)
            same = why
        groups.setdefault(same, []).append(key)
    return groups


def credit_sources_sentence(m: Mapping[str, Any]) -> str:
    """Where the channels' credit came from, in one sentence (Markdown): the share of attributed
    revenue from touch journeys and from leads' own channels, or the conversion-path export.

    >>> credit_sources_sentence({"attribution_source": "touchpoints",
    ...                          "credit_sources": {"touch_journeys": 0.64, "own_channel": 0.36}})
    "Of the quarter's attributed lead revenue, 64.0% came through the leads' recorded touches and 36.0% \
from leads without a touch before the close, credited to the lead's own channel."
    """
    source = m.get("attribution_source")
    if source == "paths":
        return (
            "Channel credit comes from the conversion-path export of the quarter (its conversions and "
            "conversion value), as there are no touchpoints."
        )
    shares = m.get("credit_sources") or {}
    touch, own = shares.get("touch_journeys"), shares.get("own_channel")
    if touch is None or own is None:
        return ""
    if not own:
        return "All of the quarter's attributed lead revenue came through the leads' recorded touches."
    if not touch:
        return "No touches were recorded: all of the quarter's lead revenue is credited to each lead's own channel."
    return (
        f"Of the quarter's attributed lead revenue, {_pct(touch)} came through the leads' recorded touches and "
        f"{_pct(own)} from leads without a touch before the close, credited to the lead's own channel."
    )


def _pct(value: Any) -> str:
    return md_escape(format_value(value, "percent"))


# -------------------------------------------------------------------------------------------------
# The voice every narrative speaks with


class _Voice:
    """Says numbers of one quarter's metrics ``m``: formatted by their registry unit, escaped,
    compared with the previous quarter, and each KPI status it states recorded in ``statuses``."""

    def __init__(self, m: Mapping[str, Any]) -> None:
        self.m = m
        self.cur = str(m.get("currency", ""))
        prev = m.get("previous_quarter") or {}
        self.prev = prev
        self.prev_label = str(prev.get("quarter") or "the previous quarter")
        self.statuses: dict[str, str] = {}

    def has(self, *keys: str) -> bool:
        return all(not is_missing(self.m.get(k)) for k in keys)

    def num(self, key: str, value: Any = None, *, unit: str | None = None) -> str:
        """``m[key]`` (or ``value``) formatted by ``key``'s unit, Markdown-escaped."""
        u = unit or unit_of(key)
        if u is None:
            raise ValueError(f"`{key}` is not in the registry: add it to registry.KPIS or registry.COLUMNS")
        return md_escape(format_value(self.m.get(key) if value is None else value, u, currency=self.cur))

    def pct(self, value: Any) -> str:
        return _pct(value)

    def changed(self, key: str, noun: str = "") -> str:
        """``624 leads (down 5.7% from 662 in 2026Q2)``: ``m[key]`` against the previous quarter's. A
        KPI counted on part of the quarter says so; a sum over part of a quarter is not compared with
        a whole one (a rate over the days covered still is)."""
        unit = unit_of(key) or "count"
        cur, prev = self.m.get(key), self.prev.get(key)
        text = self.num(key) + (f" {noun}" if noun else "")
        partial = key in (self.m.get("partial") or {})
        sums = key in KPIS and KPIS[key].additive
        words = "" if partial and sums else change_words(cur, prev, unit)
        since = f"{md_escape(words)} from {self.num(key, prev)} in {md_escape(self.prev_label)}" if words else ""
        real = verdict(self.m, key)
        if since and real is not None:  # judged against the KPI's own seasonal history (kpi_helpers.changes)
            since += f", {VERDICTS[real]}"
        if partial:
            return text + " (partial quarter" + (f"; {since}" if since else "") + ")"
        return text + (f" ({since})" if since else "")

    def row(self, metric: str) -> Mapping[str, Any] | None:
        """The ``kpis`` row tracking ``metric`` that has a target, if any."""
        return next(
            (k for k in self.m.get("kpis", []) if k.get("metric") == metric and not is_missing(k.get("target"))), None
        )

    def status(self, row: Mapping[str, Any]) -> str:
        """The row's own status in words (Markdown), recorded under its metric."""
        s = of_row(dict(row))
        self.statuses[str(row.get("metric") or row.get("name"))] = s
        return md_escape(status_word(s))

    def against(self, metric: str) -> str:
        """`` against a target of 705 (off track)`` for a metric with a KPI target, else ``""``."""
        k = self.row(metric)
        if k is None:
            return ""
        bound = "" if k.get("higher_is_better", True) else "at most "
        return f" against a target of {bound}{self.num(metric, k['target'])} ({self.status(k)})"

    def closing(self, keys: Sequence[str]) -> list[str]:
        """The paragraphs that end a narrative: what is not available and what is partial."""
        return [p for p in (not_available(self.m, keys), partial_note(self.m, keys)) if p]

    def done(self, parts: Sequence[str]) -> Narrative:
        return Narrative("\n\n".join(p for p in parts if p), self.statuses)


def _judged_way(row: Mapping[str, Any]) -> float:
    """How far a KPI row has come (the number its status describes); +inf when it cannot be said."""
    judged = row.get("projected") if not is_missing(row.get("projected")) else row.get("actual")
    v = way_to_target(
        judged, row.get("target"), row.get("baseline"), higher_is_better=row.get("higher_is_better", True)
    )
    return math.inf if is_missing(v) else v


# -------------------------------------------------------------------------------------------------
# The pages' conclusions

#: the numbers the summary's conclusion speaks of
_SUMMARY_KEYS = (
    "revenue",
    "revenue_target",
    "revenue_fiscal_year_to_date",
    "leads",
    "lead_revenue",
    "cost_per_lead",
    "cac",
    "clv",
    "clv_to_cac",
    "marketing_roi",
)


def summary(m: Mapping[str, Any]) -> Narrative:
    """The quarter's story for leadership: revenue against the previous quarter and the targets, the
    fiscal year to date, leads, efficiency, ROI with its attribution model, how many KPIs are on
    track (each in its row's own status) and which is furthest from its target, and whose it is."""
    v = _Voice(m)
    out = []
    rev: Any = m.get("revenue")
    target: Any = m.get("revenue_target")
    if v.has("revenue"):
        s = f"**{md_escape(m['quarter'])} revenue was {v.changed('revenue')}**"
        if not is_missing(target):
            gap = float(rev) - float(target)
            s += (
                f"; that is {v.pct(float(rev) / float(target))} of the quarter's target of "
                f"{v.num('revenue_target')}, {v.num('revenue', abs(gap))} {'above' if gap >= 0 else 'short of'} it"
            )
            row = v.row("revenue")
            if row is not None:
                s += f" ({v.status(row)})"
        out.append(s + ".")
    ytd: Any = m.get("revenue_fiscal_year_to_date")
    annual: Any = m.get("revenue_target_fiscal_year")
    if v.has("revenue_fiscal_year_to_date", "revenue_target_fiscal_year"):
        left = float(annual) - float(ytd)
        out.append(
            f"Fiscal year {md_escape(m.get('fiscal_year', ''))} to date: {v.num('revenue_fiscal_year_to_date')}, "
            f"{v.pct(float(ytd) / float(annual))} of the annual target of {v.num('revenue_target_fiscal_year')}; "
            + (f"{v.num('revenue', left)} still to go." if left > 0 else "the annual target is reached.")
        )
    if v.has("leads"):
        s = f"Marketing brought {v.changed('leads', 'leads')}{v.against('leads')}"
        if v.has("lead_revenue"):
            s += f", worth {v.changed('lead_revenue')} in won deals"
        out.append(s + ".")
    elif v.has("visits"):
        out.append(f"The site had {v.changed('visits', 'visits')}{v.against('visits')}.")
    costs = []
    if v.has("cost_per_lead"):
        costs.append(f"Cost per lead was {v.changed('cost_per_lead')}{v.against('cost_per_lead')}.")
    if v.has("cac"):
        s = f"Winning a new customer cost {v.changed('cac')} in marketing and sales (CAC)"
        if v.has("clv"):
            s += f", and a customer is worth {v.num('clv')} over its lifetime"
            if v.has("clv_to_cac"):
                s += f": {v.num('clv_to_cac')} times what it cost to win (CLV:CAC)"
        costs.append(s + ".")
    elif v.has("clv"):
        costs.append(f"A customer is worth {v.num('clv')} over its lifetime (CLV).")
    if costs:
        out.append(" ".join(costs))
    if v.has("marketing_roi"):
        roi_ = v.changed("marketing_roi")
        if has_touches(m):
            out.append(
                f"Marketing ROI was {roi_} under {md_escape(model_label(m.get('attribution_model', '')))} attribution."
            )
        else:
            out.append(f"Marketing ROI was {roi_}, with {OWN_CHANNEL} (there are no touchpoints).")
    movements = movements_sentence(m)
    if movements:
        out.append(movements)
    kpis = list(m.get("kpis", []))
    if kpis:
        out.append(_status_sentence(v, kpis, str(m["quarter"])))
    out += v.closing(_SUMMARY_KEYS)
    return v.done(out)


def movements_sentence(m: Mapping[str, Any]) -> str:
    """Which KPIs moved beyond their normal variation (``m["changes"]``, :mod:`kpi_helpers.changes`),
    on the previous quarter and on the same quarter a year before, in one paragraph (Markdown); that
    none did when the changes were judged; ``""`` when none could be judged.

    >>> m = {"quarter": "2026Q3", "changes": {"alpha": 0.1, "kpis": {"leads": {"quarter_on_quarter": {
    ...     "real": True, "reference": "2026Q2", "value": 820, "reference_value": 1000}}}}}
    >>> print(movements_sentence(m))  # doctest: +NORMALIZE_WHITESPACE
    **Beyond normal variation**: leads down 18.0% on 2026Q2. Every other change of the quarter is
    within the variation these KPIs show from quarter to quarter once the season is taken out.
    """
    block = m.get("changes")
    kpis = block.get("kpis") if isinstance(block, Mapping) else None
    if not isinstance(kpis, Mapping):
        return ""
    judged, moved = 0, []
    for key, comparisons in kpis.items():
        for comparison in ("quarter_on_quarter", "year_on_year"):
            entry = comparisons.get(comparison) or {}
            if entry.get("real") is None:
                continue
            judged += 1
            unit = unit_of(key) or "count"
            words = change_words(entry.get("value"), entry.get("reference_value"), unit)
            if entry["real"] and words:
                moved.append(
                    f"{md_escape(key_label(key))} {md_escape(words)} on {md_escape(entry.get('reference', ''))}"
                )
    if not judged:
        return ""
    if not moved:
        return (
            f"**No KPI moved beyond its normal variation** in {md_escape(m.get('quarter', 'the quarter'))}: every "
            "change on the previous quarter and on a year before is within the variation these KPIs show from "
            "quarter to quarter once the season is taken out."
        )
    return (
        f"**Beyond normal variation**: {'; '.join(moved)}. Every other change of the quarter is within the "
        "variation these KPIs show from quarter to quarter once the season is taken out."
    )


def _status_sentence(v: _Voice, kpis: Sequence[Mapping[str, Any]], quarter: str) -> str:
    """``**3 of 11 KPIs are on track** (2 at risk, 6 off track). Furthest from target: ...``: every
    row counted in its own status."""
    statuses = [of_row(dict(k)) for k in kpis]
    for k in kpis:
        v.status(k)
    counts = {s: statuses.count(s) for s in STATUSES}
    if counts["no data"] == len(kpis):
        return (
            f"**None of the {len(kpis)} KPIs can be judged for {md_escape(quarter)}**: each needs its data "
            "and a target; the KPI table says what each one lacks."
        )
    s = f"**{counts['on track']} of {len(kpis)} KPIs are {status_word('on track')}**"
    extra = [f"{counts[x]} {status_word(x)}" for x in ("at risk", "off track", "no data") if counts[x]]
    if extra:
        s += " (" + ", ".join(extra) + ")"
    behind = [k for k, st in zip(kpis, statuses, strict=True) if st in ("off track", "at risk")]
    if behind:
        worst = min(behind, key=_judged_way)
        way = _judged_way(worst)
        s += f". Furthest from target: {md_escape(worst['name'])}"
        if math.isfinite(way):
            base = "its baseline" if not is_missing(worst.get("baseline")) else "zero"
            s += f", {v.pct(way)} of the way from {base} to its target"
        s += f" (owner: {md_escape(worst.get('owner', ''))})"
    return s + "."


def pacing(m: Mapping[str, Any], pace: Mapping[str, Any] | None) -> Narrative:
    """Words for a quarter in progress: what the run rate projects for revenue and each KPI with a
    projection, against its target and in its row's own status, said plainly to be a projection.
    ``m``: the in-progress quarter's metrics; ``pace``: its ``QuarterKpis.pacing`` (NaNs there carry
    the reason). A projection without a target is given on its own."""
    v = _Voice(m)
    q = md_escape(m["quarter"])
    if not pace:
        return v.done([f"{q} is complete; there is nothing to project."])
    forecast = bool(m.get("forecast"))
    how = (
        "where the kit forecasts a KPI it is the middle (P50) of that forecast (from the pace so far, the "
        "season in past years and the open pipeline), elsewhere the rest of the quarter at the pace so far"
        if forecast
        else "it assumes the rest of the quarter runs at the pace so far"
    )
    parts = [
        f"**{q} is in progress**: the data covers {m['days_covered']} of its {m['days_in_quarter']} days "
        f"(to {md_escape(m['data_end'])}). What follows is a **projection, not a result**: {how}, and early in "
        "a quarter it can move a lot."
    ]
    rev: Any = pace.get("revenue")
    target: Any = m.get("revenue_target")
    if is_missing(rev):
        why = getattr(rev, "reason", None) or "not enough data yet"
        yet = " yet" if "revenue" in (m.get("tables") or ("revenue",)) else ""
        parts.append(f"Revenue cannot be projected{yet} ({md_text(why)}).")
    elif is_missing(target):
        why = (m.get("undefined") or {}).get("revenue_target") or "there is none"
        parts.append(
            f"Revenue would reach {v.num('revenue', rev)}; there is no revenue target to compare ({md_text(why)})."
        )
    else:
        s = (
            f"Revenue would reach {v.num('revenue', rev)} against the quarter's target of {v.num('revenue_target')} "
            f"({v.pct(float(rev) / float(target))} of it"
        )
        row = v.row("revenue")
        parts.append(s + (f"; {v.status(row)})." if row is not None else ")."))
    bits = []
    for k in m.get("kpis", []):
        metric = k.get("metric")
        if metric == "revenue" or is_missing(k.get("projected")):
            continue
        bit = f"{v.num(metric or '', k['projected'], unit=unit_of(metric or '') or 'count')} {md_escape(_noun(k))}"
        if not is_missing(k.get("target")):
            bound = "" if k.get("higher_is_better", True) else "at most "
            bit += (
                f" against a target of {bound}{v.num(metric or '', k['target'], unit=unit_of(metric or '') or 'count')}"
            )
            bit += f" ({v.status(k)})"
        bits.append(bit)
    if bits:
        lead = "The quarter would end with about " if forecast else "At this pace the quarter would end with "
        parts.append(lead + "; ".join(bits) + ".")
    if not is_missing(pace.get("lead_revenue")):
        parts.append(f"Won deals from leads would bring {v.num('lead_revenue', pace['lead_revenue'])} of lead revenue.")
    return v.done(parts)


def forecast_chances(m: Mapping[str, Any]) -> Narrative:
    """Words for the forecasts of a quarter in progress (``m["forecast"]``): each one's chance of
    reaching its target, with its P50 and P10-P90 range, and which number is bookings and which
    recognised revenue. Empty for a quarter without forecasts (``m["undefined"]["forecast"]`` says why)."""
    from .status import FORECAST_KEYS

    v = _Voice(m)
    block = m.get("forecast") or {}
    bits = []
    for name, f in block.items():
        if not isinstance(f, Mapping) or f.get("probability_to_hit") is None or f.get("p50") is None:
            continue
        key = FORECAST_KEYS.get(name, name)
        p10, p50, p90, target = (v.num(key, f[k]) for k in ("p10", "p50", "p90", "target"))
        bits.append(
            f"{md_escape(key_label(key))} **{_pct(f['probability_to_hit'])}** "
            f"(P50 {p50} of {target}; P10-P90 {p10} to {p90})"
        )
    if not bits:
        return v.done([])
    parts = [
        "**Chance of reaching each target by the quarter's end**, from the forecasts (each simulated from what "
        "is known today; the P10-P90 range is meant to hold the outcome four times in five): " + "; ".join(bits) + ".",
        "Lead revenue counts new-business deals from leads won in the quarter (bookings, by close date); "
        "revenue is what finance recognises month by month. They are different numbers, forecast separately.",
    ]
    return v.done(parts)


def _noun(row: Mapping[str, Any]) -> str:
    """What a KPI row counts, for ``975 leads``: the registry's label of what it is judged on."""
    from .breakdowns import PLAN_FACTS  # lazy: breakdowns reads the engine stack

    metric = str(row.get("metric") or "")
    return key_label(PLAN_FACTS.get(metric, metric)) if metric else str(row.get("name", ""))


_GOAL_PROBLEM = re.compile(r"^no revenue target( for FY\d+)?: ")


def goal_formula(goal: Any, *, years: int, currency: str, note: str = "") -> str:
    """How the target was set, with the data's numbers filled in (Markdown): the formula, and what
    the target growth is made of (the average growth of ``years`` complete years plus the uplift)."""
    growth = (
        f"the average growth of the last {years} complete years ({_pct(goal.average_growth)}) "
        f"plus the uplift of {_pct(goal.uplift)} set in `goals.yml` (`growth_uplift`)"
        if years
        else "the uplift set in `goals.yml` (`growth_uplift`) alone"
    )
    text = (
        f"The FY{goal.fiscal_year} target, with this data's numbers filled in:\n\n"
        f"**{md_escape(goal.formula())}** ({md_escape(currency)})\n\n"
        f"where {_pct(goal.target_growth)} is {growth}."
    )
    return text + (f"\n\n{md_text(note)}" if note else "")


def goal(goal: Any, m: Mapping[str, Any], kpis: Sequence[Mapping[str, Any]] = ()) -> Narrative:
    """Words for the goal-setting page: how the target was set, where the quarter stands against it
    and what the KPIs serving it ask for, each in its row's own status. ``goal``: ``RevenueGoal``, or
    None when there is no target (the page then says why, from ``m["undefined"]["revenue_target"]``);
    ``m``: quarter metrics; ``kpis``: the ``kpis`` rows."""
    v = _Voice(m)
    q = md_escape(m["quarter"])
    if goal is None:
        why = (m.get("undefined") or {}).get("revenue_target") or "the data does not give one"
        parts = [
            f"**There is no {md_escape(m.get('fiscal_year', ''))} revenue target**: "
            f"{md_text(_GOAL_PROBLEM.sub('', why))}."
        ]
    else:
        head = (
            f"**The FY{goal.fiscal_year} revenue target is {v.num('revenue_target', goal.target_revenue)}**: last "
            f"year's {v.num('revenue', goal.last_year_revenue)} grown by {v.pct(goal.target_growth)}, "
        )
        if getattr(goal, "note", ""):
            growth = getattr(goal, "growth_history", pd.Series(dtype=float))
            how = (
                f"the average growth of the years it has ({v.pct(goal.average_growth)}) plus an uplift of "
                f"{v.pct(goal.uplift)}"
                if growth.notna().any()
                else f"the uplift of {v.pct(goal.uplift)} alone"
            )
            parts = [f"{head}{how}. {md_text(sentence(goal.note))}."]
        else:
            parts = [
                f"{head}the average growth of recent years ({v.pct(goal.average_growth)}) plus an uplift of "
                f"{v.pct(goal.uplift)}."
            ]
    rev: Any = m.get("revenue")
    target: Any = m.get("revenue_target")
    if not is_missing(rev) and not is_missing(target):
        s = f"{q} had a target of {v.num('revenue_target')} and brought {v.changed('revenue')}"
        s += f": {v.pct(float(rev) / float(target))} of its target"
        row = v.row("revenue")
        parts.append(s + (f" ({v.status(row)})." if row is not None else "."))
    elif not is_missing(rev):
        parts.append(f"{q} brought {v.changed('revenue')}.")
    elif not is_missing(target):
        parts.append(f"{q} has a target of {v.num('revenue_target')}.")
    rows = [k for k in kpis if not is_missing(k.get("target"))]
    if rows:
        items = []
        for k in rows:
            unit = unit_of(k.get("metric") or "") or k.get("unit") or "count"
            base = k.get("baseline")
            frm = f"{v.num('', base, unit=unit)} → " if not is_missing(base) else ""
            actual = v.num("", k.get("actual"), unit=unit)
            if is_missing(k.get("actual")) and k.get("note"):
                actual += f" ({md_text(k['note'])})"
            items.append(
                f"- **{md_escape(k['name'])}**: {frm}{v.num('', k['target'], unit=unit)}; actual {actual}, "
                f"{v.status(k)} (owner: {md_escape(k.get('owner', ''))})"
            )
        on = sum(1 for k in rows if of_row(dict(k)) == "on track")
        no_data = sum(1 for k in rows if of_row(dict(k)) == "no data")
        count = f"{on} of {len(rows)} {status_word('on track')}" + (f", {no_data} without data" if no_data else "")
        parts.append(f"The KPIs that serve the goal, baseline → target ({count}):\n\n" + "\n".join(items))
    parts += v.closing(("revenue",) if goal is None else ("revenue", "revenue_target"))
    return v.done(parts)


#: the numbers the traffic page's conclusion speaks of
_TRAFFIC_KEYS = (
    "visits",
    "leads",
    "visits_per_lead",
    "visit_to_lead_rate",
    "value_per_lead",
    "value_per_visit",
    "bounce_rate",
    "new_user_share",
    "organic_visits",
)


def traffic(m: Mapping[str, Any], channels: pd.DataFrame | None = None) -> Narrative:
    """Words for the traffic and lead value page: visits, leads and what a lead and a visit are worth
    against the previous quarter; the largest lead source (``channels``: a frame indexed by channel
    with a ``leads`` column, None when there are no leads)."""
    v = _Voice(m)
    parts = []
    volume = [f"{v.changed(key, key)}{v.against(key)}" for key in ("visits", "leads") if v.has(key)]
    ratios = []
    if v.has("visits_per_lead"):
        ratios.append(f"it took {v.num('visits_per_lead')} visits to get one lead")
    if v.has("visit_to_lead_rate"):
        ratios.append(f"the visit-to-lead rate was {v.changed('visit_to_lead_rate')}{v.against('visit_to_lead_rate')}")
    first = [f"**{md_escape(m['quarter'])} brought {' and '.join(volume)}.**"] if volume else []
    if ratios:
        first.append(sentence("; ".join(ratios)) + ".")
    if first:
        parts.append(" ".join(first))
    if v.has("value_per_lead", "value_per_visit"):
        parts.append(
            f"A lead was worth {v.changed('value_per_lead')} and a visit {v.changed('value_per_visit')}: lead revenue "
            "divided by leads and by visits."
        )
    elif v.has("value_per_lead"):
        parts.append(f"A lead was worth {v.changed('value_per_lead')}: lead revenue divided by leads.")
    elif v.has("value_per_visit"):
        parts.append(f"A visit was worth {v.changed('value_per_visit')}: lead revenue divided by visits.")
    web = []
    if v.has("bounce_rate"):
        web.append(f"bounce rate was {v.changed('bounce_rate')}")
    if v.has("new_user_share"):
        web.append(f"{v.num('new_user_share')} of users were new")
    if v.has("organic_visits"):
        web.append(f"organic search brought {v.changed('organic_visits', 'visits')}")
    if web:
        parts.append(sentence("; ".join(web)) + ".")
    if channels is not None and len(channels) and "leads" in channels:
        leads = channels["leads"].astype(float)
        total = float(leads.sum())
        if total:
            top = cast(str, leads.idxmax())  # channel names
            parts.append(
                f"The largest lead source was {md_escape(top)} with {v.num('leads', leads[top])} leads "
                f"({v.pct(leads[top] / total)} of the quarter's leads)."
            )
    parts += v.closing(_TRAFFIC_KEYS)
    return v.done(parts)


def conversion(
    m: Mapping[str, Any],
    funnel: pd.DataFrame | None,
    comparison: pd.DataFrame | None,
    *,
    model: str | None = None,
) -> Narrative:
    """Words for the channel conversion page: the ratios against the previous quarter, the funnel
    stages against their targets, the best and weakest converting channel, and how much channel
    credit depends on the attribution model. ``funnel``: ``breakdowns.channel_funnel`` rows (None
    without leads); ``comparison``: channels x models, or without touchpoints one column of revenue
    credited to each lead's own channel (None without won deals from leads)."""
    v = _Voice(m)
    parts = []
    head = []
    ratio = m.get("visit_to_lead_ratio")
    if not is_missing(ratio) and ratio != NA:
        head.append(f"the {key_label('visit_to_lead_ratio')} was {v.num('visit_to_lead_ratio')}")
    if v.has("lead_to_customer_rate"):
        ltc = v.changed("lead_to_customer_rate")
        head.append(f"the lead-to-customer rate {ltc}" if head else f"the lead-to-customer rate was {ltc}")
    first = f"**{md_escape(m['quarter'])}: {' and '.join(head)}.**" if head else ""
    if v.has("visit_to_lead_rate"):
        first += f" The visit-to-lead rate was {v.changed('visit_to_lead_rate')}{v.against('visit_to_lead_rate')}."
    if first:
        parts.append(first.strip())
    bits = []
    for metric in ("mqls", "sqls", "opportunities", "won_deals"):
        k = v.row(metric)
        if k is not None and not is_missing(k.get("actual")):
            bits.append(f"{v.num(metric, k.get('actual'))} {md_escape(_noun(k))}{v.against(metric)}")
    if bits:
        parts.append("Down the funnel the quarter had " + ", ".join(bits) + ".")
    f = pd.DataFrame() if funnel is None else funnel
    f = f.drop(index=[i for i in f.index if str(i).startswith("All ")], errors="ignore")
    if len(f) and "lead_to_sql_rate" in f:
        f = f[f["leads"] >= 10] if (f["leads"] >= 10).any() else f
        rate = f["lead_to_sql_rate"].dropna()
        if len(rate) > 1 and rate.max() > rate.min():  # a best and a worst only when they differ
            best, worst = cast(str, rate.idxmax()), cast(str, rate.idxmin())  # channel names
            parts.append(
                f"Of the quarter's leads, {md_escape(best)} leads turned into SQLs most often "
                f"({v.pct(rate[best])}) and {md_escape(worst)} leads least often "
                f"({v.pct(rate[worst])}; channels with at least 10 leads)."
            )
    if comparison is not None and len(comparison) and len(comparison.columns):
        if not has_touches(m) and comparison.iloc[:, 0].max() > 0:
            credit = comparison.iloc[:, 0]
            top = cast(str, credit.idxmax())  # channel names
            parts.append(
                f"Without touchpoints, each won deal's revenue is credited to its lead's own channel: "
                f"{md_escape(top)} is credited most ({v.num('attributed_revenue', credit[top])}). Every attribution "
                "model gives this same split until touches are added."
            )
        elif has_touches(m) and (comparison.max(axis=1) - comparison.min(axis=1)).max() > 0:
            parts.append(_model_spread(v, comparison, model))
    parts += v.closing(("visit_to_lead_rate", "lead_to_customer_rate"))
    return v.done(parts)


def maturity(m: Mapping[str, Any], steps: pd.DataFrame) -> str:
    """Words for the funnel's immature cohort (``steps``: ``cohorts.funnel_maturity``): how old the
    quarter's leads are, which steps are still maturing, how much of each has had time to happen and
    the rate expected once it has; that every step has matured otherwise. Markdown; ``""`` without
    steps."""
    if steps is None or steps.empty:
        return ""
    q = md_escape(m.get("quarter", "the quarter"))
    young: Any = steps.attrs.get("youngest_days")
    old: Any = steps.attrs.get("oldest_days")
    ages = (
        f"{q}'s leads are {round(float(young))} to {round(float(old))} days old (the data ends "
        f"{md_escape(steps.attrs.get('as_of', ''))})"
        if not (is_missing(young) or is_missing(old))
        else f"{q}'s leads"
    )
    maturing = steps[steps["maturing"]]
    if maturing.empty:
        return f"{ages}: every stage step has had the time it usually takes, so its rates can be compared."
    items = []
    for step, r in maturing.iterrows():
        expected = format_interval(
            r["expected_rate"], r.get("expected_rate_low"), r.get("expected_rate_high"), "percent"
        )
        items.append(
            f"{md_escape(key_label(str(step)))}: {_pct(r['matured'])} of its conversions have had time to happen; "
            f"{_pct(r['rate_so_far'])} so far, about {md_escape(expected)} expected once mature"
        )
    return (
        f"**Still maturing.** {ages}, and some steps take longer than that: their rates are low, and their days "
        "between stages short, only because the quarter is recent. From the time each step took the leads of "
        "earlier quarters (a survival estimate):\n\n"
        + "\n".join(f"- {x}" for x in items)
        + "\n\nCompare these steps with earlier quarters through their expected rates, or once they have matured."
    )


def _model_spread(v: _Voice, comparison: pd.DataFrame, model: str | None) -> str:
    """``The attribution model matters most for X: its credit ranges from ... to ...``."""
    spread = comparison.max(axis=1) - comparison.min(axis=1)
    ch = cast(str, spread.idxmax())  # rows: channels, columns: models
    hi_m, lo_m = cast(str, comparison.loc[ch].idxmax()), cast(str, comparison.loc[ch].idxmin())
    s = (
        f"The attribution model matters most for {md_escape(ch)}: its credit ranges from "
        f"{v.num('attributed_revenue', comparison.loc[ch, lo_m])} ({md_escape(model_label(lo_m))}) to "
        f"{v.num('attributed_revenue', comparison.loc[ch, hi_m])} ({md_escape(model_label(hi_m))})."
    )
    if model and model in comparison:
        top = cast(str, comparison[model].idxmax())
        s += (
            f" Under the report's {md_escape(model_label(model))} model, {md_escape(top)} is credited most "
            f"({v.num('attributed_revenue', comparison.loc[top, model])})."
        )
    return s


#: the numbers the ROI page's conclusion speaks of
_ROI_KEYS = ("marketing_cost", "marketing_roi", "cac", "clv", "clv_to_cac", "cost_per_lead")
#: the KPIs whose targets the ROI page's conclusion speaks of
_ROI_TARGETS = ("cost_per_lead", "clv_to_cac", "marketing_roi")


def roi(m: Mapping[str, Any], economics: pd.DataFrame | None, ranks: pd.DataFrame | None, *, model: str) -> Narrative:
    """Words for the ROI page: totals against the previous quarter, the KPI targets on cost and
    return, the best and worst channel by ROI under ``model`` (named), and which channels' ranks move
    most across models. ``economics``: ``breakdowns.channel_economics`` (None when the page cannot
    show it); ``ranks``: ``breakdowns.attribution_ranks`` (None without touchpoints)."""
    v = _Voice(m)
    mname = md_escape(model_label(model))
    touches = has_touches(m)
    parts = []
    head = []
    if v.has("marketing_cost"):
        head.append(f"marketing cost {v.changed('marketing_cost')}")
    if v.has("marketing_roi"):
        r = v.changed("marketing_roi")
        head.append(f"marketing ROI under {mname} attribution {r}" if touches else f"marketing ROI {r} ({OWN_CHANNEL})")
    first = f"**{md_escape(m['quarter'])}: {'; '.join(head)}.**" if head else ""
    if v.has("cac"):
        first += f" CAC was {v.changed('cac')}"
        if v.has("clv"):
            first += f" against a customer lifetime value of {v.num('clv')}"
            if v.has("clv_to_cac"):
                first += f" (CLV:CAC {v.num('clv_to_cac')})"
        first += "."
    elif v.has("clv"):
        first += f" A customer's lifetime value was {v.num('clv')}."
    if first:
        parts.append(first.strip())
    tracked = [metric for metric in _ROI_TARGETS if v.row(metric)]
    targets = [f"{key_label(metric)} {v.num(metric)}{v.against(metric)}" for metric in tracked if v.has(metric)]
    if targets:
        parts.append("Against the targets in goals.yml: " + "; ".join(targets) + ".")
    elif not tracked:
        names = and_list([key_label(k) for k in _ROI_TARGETS]).replace(" and ", " or ")
        parts.append(f"goals.yml sets no target for {md_escape(names)}.")
    roi_ = economics["roi"].dropna() if economics is not None and "roi" in economics else pd.Series(dtype=float)
    if economics is not None and len(roi_):
        best, worst = cast(str, roi_.idxmax()), cast(str, roi_.idxmin())  # channel names
        how = f"Under {mname} attribution" if touches else "With revenue credited to each lead's own channel"
        assert economics is not None
        parts.append(
            f"{how} the best return came from {md_escape(best)} "
            f"(ROI {_ranged(v, economics, best)} on {v.num('marketing_cost', economics.loc[best, 'marketing_cost'])} "
            f"of cost) and the weakest from {md_escape(worst)} (ROI {_ranged(v, economics, worst)} on "
            f"{v.num('marketing_cost', economics.loc[worst, 'marketing_cost'])})."
        )
        if _overlap(economics, best, worst):
            parts.append(
                "Their 90% intervals overlap: on this quarter's won deals, the gap between the best and the weakest "
                "channel may be noise."
            )
    if ranks is not None and len(ranks) and "places_moved" in ranks:
        parts.append(_rank_sentence(ranks))
    parts += v.closing(_ROI_KEYS)
    return v.done(parts)


def _ranged(v: _Voice, economics: pd.DataFrame, channel: Any, key: str = "roi") -> str:
    """A channel's ``key`` with its 90% interval when ``economics`` has one: ``532.0% (212.0%-911.0%)``."""
    row = economics.loc[channel]
    return md_escape(
        format_interval(
            row[key], row.get(f"{key}_low"), row.get(f"{key}_high"), unit_of(key) or "count", currency=v.cur
        )
    )


def _overlap(economics: pd.DataFrame, best: Any, worst: Any) -> bool:
    """The ROI intervals of two channels overlap (the best's low bound is not above the worst's high)."""
    if "roi_low" not in economics or best == worst:
        return False
    low_best, high_worst = economics.loc[best, "roi_low"], economics.loc[worst, "roi_high"]
    return not (is_missing(low_best) or is_missing(high_worst)) and float(low_best) <= float(high_worst)


def _rank_sentence(ranks: pd.DataFrame) -> str:
    from .breakdowns import rank_movers  # lazy: breakdowns reads the engine stack

    movers = rank_movers(ranks)
    if not movers:
        return "Every model ranks the channels the same way: the ranking does not depend on the model."
    names = ", ".join(
        f"{md_escape(ch)} (from rank {int(cast(float, ranks.loc[ch, 'best_rank']))} "
        f"to {int(cast(float, ranks.loc[ch, 'worst_rank']))})"
        for ch in movers
    )
    stable = [md_escape(c) for c in ranks[ranks["places_moved"] == 0].index]
    s = f"The channel ranking depends on the model: {names} move{'s' if len(movers) == 1 else ''} the most"
    if stable:
        s += f"; {', '.join(stable)} keep{'s' if len(stable) == 1 else ''} the same rank under every model"
    return s + ". A budget decision based on a channel's rank should name the model it uses."


def model_assumptions(models: Iterable[str]) -> str:
    """What each attribution model of ``models`` assumes, as a Markdown list under a heading."""
    from .attribution import describe_model  # lazy: attribution reads the engine stack

    return "### What each model assumes\n\n" + "\n".join(f"- {md_escape(describe_model(name))}" for name in models)
