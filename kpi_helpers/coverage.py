"""Coverage: which days each table covers, how far the data reaches, and which quarters follow.

A KPI is only as good as the days behind it. Each table covers time according to its kind
(:data:`kpi_helpers.schema.COVERAGE_KINDS`):

- ``daily`` (``web_sessions``): from its first to its last row, minus the days without rows (a site
  has sessions every day, so a day without rows is a gap in the export, reported as missing days);
- ``event`` (leads, opportunities, touchpoints, web goals): from the month of its first row to its
  declared period's end or, without one, to the data's end (a day without a lead is a real zero).
  Leads, opportunities and touchpoints come from one CRM and start together, at the earliest of
  them; an export that starts later than that must declare its period in its mapping;
- ``monthly`` (revenue, spend, content): month by month, a month with rows is covered (to its end
  when the table is dated the 1st, else to its last row in the last month);
- ``declared`` (conversion paths): the period the export declares, nothing otherwise.

A table that is present with no rows and no declared period covers nothing.

The **data's end** is the latest date in the activity tables present (``web_sessions``, ``leads``;
when neither is present, in the tables that are). **latest** is the last quarter that has ended and
that every activity table present covers to its end (tables that end earlier, such as revenue that
finance closes after the report's cron, make their own KPIs partial or n/a for that quarter instead
of moving ``latest`` back). **current** is the quarter holding the data's end. An explicit quarter that
no table covers is refused, naming the range the data covers.

A quarter is judged per table (:meth:`Coverage.status`): ``full``, ``partial`` (with the dates it
lacks), ``none`` (no data in the quarter) or ``absent`` (the source has no such table). For a
quarter still in progress the window is the quarter so far (its start to the data's end).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ibis
import pandas as pd

from .exceptions import PeriodError
from .periods import Quarter, latest_complete_quarter, parse_quarter, quarter_of
from .schema import ACTIVITY_TABLES, CONTRACT

DAY = dt.timedelta(days=1)
#: event tables exported from one CRM, which share their start (see `measure`)
CRM_TABLES = ("leads", "opportunities", "touchpoints")


@dataclass(frozen=True)
class Span:
    """Days ``start`` to ``end``, both inclusive."""

    start: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __str__(self) -> str:
        return f"{self.start}" if self.start == self.end else f"{self.start} to {self.end}"


@dataclass(frozen=True)
class TableCoverage:
    """What one table covers: its first and last covered day and the gaps between them."""

    table: str
    kind: str
    rows: int
    first_date: dt.date | None = None
    last_date: dt.date | None = None
    #: runs of days without rows inside [first_date, last_date] (daily and monthly tables)
    gaps: tuple[Span, ...] = ()
    #: the period came from the mapping or the export's banner, not from the rows
    declared: bool = False
    #: date of the table's last row (for the data's end), may differ from last_date
    last_row: dt.date | None = None
    #: the table's nullable columns that hold at least one value (an all-empty one is as good as absent)
    filled: frozenset[str] = frozenset()

    @property
    def covers_anything(self) -> bool:
        return self.first_date is not None and self.last_date is not None and self.first_date <= self.last_date

    def missing(self, start: dt.date, end: dt.date) -> list[Span]:
        """Runs of days in ``[start, end]`` (inclusive) this table does not cover."""
        if not self.covers_anything:
            return [Span(start, end)] if start <= end else []
        assert self.first_date is not None and self.last_date is not None
        out: list[Span] = []
        if start < self.first_date:
            out.append(Span(start, min(end, self.first_date - DAY)))
        for g in self.gaps:
            lo, hi = max(g.start, start), min(g.end, end)
            if lo <= hi:
                out.append(Span(lo, hi))
        if end > self.last_date:
            out.append(Span(max(start, self.last_date + DAY), end))
        return [s for s in out if s.start <= s.end]

    def covered_days(self, start: dt.date, end: dt.date) -> int:
        if start > end:
            return 0
        return (end - start).days + 1 - sum(s.days for s in self.missing(start, end))


@dataclass(frozen=True)
class QuarterStatus:
    """How a table (or a KPI's tables) cover a quarter's window."""

    status: str  # full | partial | none | absent
    window: Span
    covered_days: int = 0
    missing: tuple[Span, ...] = ()
    reason: str = ""


@dataclass
class Coverage:
    """The coverage of every table of a source, and the quarter rules built on it."""

    tables: dict[str, TableCoverage]
    present: frozenset[str]
    fy_start_month: int = 1
    data_end: dt.date | None = None
    activity: tuple[str, ...] = field(default=())

    # -- quarters ------------------------------------------------------------------------------
    def quarter(self, text: str | Quarter, *, today: Any = None) -> Quarter:
        """Resolve ``2026Q3``, ``latest`` or ``current``; refuse a quarter no table covers (exit 2)."""
        word = str(text).strip().lower() if not isinstance(text, Quarter) else ""
        if word in ("latest", "current"):
            if self.data_end is None:
                raise PeriodError(f"`{word}` needs data with dates; {self._nothing()}")
            if word == "current":
                return quarter_of(self.data_end, self.fy_start_month)
            return self.latest(today=today)
        q = parse_quarter(text, fy_start_month=self.fy_start_month)
        covered = self.span()
        if covered is None:
            raise PeriodError(f"quarter {q.label}: {self._nothing()}")
        if q.last_day < covered.start or q.start > covered.end:
            raise PeriodError(
                f"quarter {q.label} ({q.start} to {q.last_day}) is outside the data, which covers {covered} "
                f"({self._range_quarters(covered)}); pick a quarter in that range, or `latest`"
            )
        return q

    def latest(self, *, today: Any = None) -> Quarter:
        """The last quarter that has ended and that every activity table covers to its end."""
        ends = [d for d in (self.tables[t].last_date for t in self.activity) if d is not None]
        if not ends:
            raise PeriodError(f"`latest` needs data with dates; {self._nothing()}")
        q = latest_complete_quarter(min(ends), self.fy_start_month, today=today)
        starts = [d for d in (self.tables[t].first_date for t in self.activity) if d is not None]
        if starts and q.last_day < max(starts):
            raise PeriodError(
                f"no quarter is covered from start to end yet: the data covers {self.span()}; "
                "ask for the quarter in progress with `--quarter current`, or a quarter by name"
            )
        return q

    def span(self) -> Span | None:
        """First and last day any present table covers."""
        firsts = [c.first_date for c in self.tables.values() if c.covers_anything and c.first_date]
        lasts = [c.last_date for c in self.tables.values() if c.covers_anything and c.last_date]
        return Span(min(firsts), max(lasts)) if firsts and lasts else None

    def window(self, q: Quarter) -> Span:
        """The days of ``q`` a report judges: the whole quarter, or its days so far when in progress."""
        end = q.last_day
        if self.data_end is not None and q.start <= self.data_end < q.last_day:
            end = self.data_end
        return Span(q.start, end)

    def in_progress(self, q: Quarter) -> bool:
        return self.data_end is not None and q.start <= self.data_end < q.last_day

    def status(self, table: str, q: Quarter) -> QuarterStatus:
        """How ``table`` covers ``q``'s window."""
        w = self.window(q)
        if table not in self.present:
            return QuarterStatus("absent", w, reason=f"the source has no `{table}` table")
        cov = self.tables[table]
        missing = tuple(cov.missing(w.start, w.end))
        covered = w.days - sum(s.days for s in missing)
        if covered <= 0:
            if cov.covers_anything:
                has = f"it covers {Span(cov.first_date, cov.last_date)}"  # type: ignore[arg-type]
            elif cov.rows == 0:
                has = "it has no rows, and an empty export covers no period"
            else:
                has = "it declares no period" if cov.kind == "declared" else "it has no dated rows"
            return QuarterStatus("none", w, 0, missing, f"`{table}` has no data for {q.label} ({has})")
        if not missing:
            return QuarterStatus("full", w, covered)
        return QuarterStatus("partial", w, covered, missing, _partial_reason(table, w, covered, missing))

    @property
    def filled(self) -> dict[str, frozenset[str]]:
        """Per present table, its nullable columns that hold at least one value."""
        return {t: self.tables[t].filled for t in self.present}

    def statuses(self, tables: Iterable[str], q: Quarter) -> dict[str, QuarterStatus]:
        return {t: self.status(t, q) for t in dict.fromkeys(tables)}

    def complete(self, q: Quarter) -> bool:
        """Every activity table covers ``q`` whole (ended, no missing days)."""
        if self.in_progress(q) or self.data_end is None or self.data_end < q.last_day:
            return False
        return all(self.status(t, q).status == "full" for t in self.activity)

    # -- metrics.json ---------------------------------------------------------------------------
    def as_dict(self, q: Quarter | None = None) -> dict[str, dict[str, Any]]:
        """``{table: {first_date, last_date, rows, declared[, missing_days_in_quarter]}}`` for present tables."""
        out: dict[str, dict[str, Any]] = {}
        for name in CONTRACT:
            if name not in self.present:
                continue
            c = self.tables[name]
            entry: dict[str, Any] = {
                "first_date": c.first_date.isoformat() if c.first_date else None,
                "last_date": c.last_date.isoformat() if c.last_date else None,
                "rows": c.rows,
                "kind": c.kind,
                "declared": c.declared,
            }
            if q is not None:
                st = self.status(name, q)
                entry["status_in_quarter"] = st.status
                if c.kind == "daily":
                    entry["missing_days_in_quarter"] = sum(s.days for s in st.missing)
                    entry["missing_in_quarter"] = [str(s) for s in st.missing]
            out[name] = entry
        return out

    def _nothing(self) -> str:
        if not self.present:
            return "the data folder holds no contract table (see docs/data-contract.md)"
        return f"no table of {', '.join(sorted(self.present))} has dated rows"

    def _range_quarters(self, s: Span) -> str:
        a, b = quarter_of(s.start, self.fy_start_month), quarter_of(s.end, self.fy_start_month)
        return a.label if a == b else f"{a.label} to {b.label}"


def _partial_reason(table: str, w: Span, covered: int, missing: tuple[Span, ...]) -> str:
    runs = ", ".join(str(s) for s in missing[:3]) + (", ..." if len(missing) > 3 else "")
    return f"`{table}` covers {covered} of {w.days} days ({w.days - covered} missing: {runs})"


# --------------------------------------------------------------------------------------------------
# Building it from a source


def measure(
    tables: Mapping[str, Any],
    present: Collection[str],
    fetch: Any,
    *,
    fy_start_month: int = 1,
    declared: Mapping[str, tuple[dt.date, dt.date]] | None = None,
) -> Coverage:
    """Coverage of every present table, from aggregates computed in the engine.

    ``tables`` maps names to typed Ibis tables, ``fetch(expr, label=...)`` executes an expression
    (:meth:`DataSource.fetch`), ``declared`` holds periods declared by mappings or export banners.
    """
    declared = dict(declared or {})
    raw: dict[str, dict[str, Any]] = {}
    for name in CONTRACT:
        if name in present:
            raw[name] = _facts(name, tables[name], fetch, declared.get(name))
    activity = tuple(t for t in ACTIVITY_TABLES if t in present and raw[t]["last_row"] is not None)
    if not activity:
        activity = tuple(t for t in CONTRACT if t in present and raw[t]["last_row"] is not None)
    ends = [raw[t]["last_row"] for t in activity]
    data_end = max(ends) if ends else None
    # Leads, their deals and their touches come from one CRM: they start together, at the earliest of
    # them (deals follow leads by weeks, so a deals export's first row is later than its start).
    crm = [raw[t]["first_row"] for t in CRM_TABLES if t in raw and raw[t]["first_row"] is not None]
    for t in CRM_TABLES:
        if t in raw and raw[t]["first_row"] is not None:
            raw[t]["first_row"] = min(crm)
    built = {
        name: dataclasses.replace(_coverage(name, facts, data_end), filled=_filled(name, tables[name], fetch))
        for name, facts in raw.items()
    }
    # `latest` waits for the activity tables; a table without rows (e.g. declared only) cannot hold it back.
    return Coverage(built, frozenset(present), fy_start_month, data_end, activity)


def _facts(name: str, t: Any, fetch: Any, declared: tuple[dt.date, dt.date] | None) -> dict[str, Any]:
    table = CONTRACT[name]
    out: dict[str, Any] = {"rows": 0, "first_row": None, "last_row": None, "days": None, "declared": declared}
    if table.coverage == "declared":
        if declared is None and "period_start" in t.columns:
            row = fetch(
                t.aggregate(n=t.count(), lo=t.period_start.min(), hi=t.period_end.max()), label=f"period of {name}"
            ).iloc[0]
            out["rows"] = int(_count(row["n"]))
            if pd.notna(row["lo"]) and pd.notna(row["hi"]):
                out["declared"] = (_date(row["lo"]), _date(row["hi"]))
        else:
            out["rows"] = int(fetch(t.count(), label=f"count {name}"))
        return out
    col = table.date_column
    assert col is not None
    day = t[col].cast("date")
    if table.coverage == "event":
        # An event table reaches as far as its latest event of any kind (a deal closed after the last
        # deal was created, an MQL after the last lead): every date column counts for its end.
        dated = [c.name for c in table.columns if c.kind in ("date", "timestamp")]
        ends = {f"hi_{i}": t[c].cast("date").max() for i, c in enumerate(dated)}
        row = fetch(t.aggregate(n=t.count(), lo=day.min(), **ends), label=f"coverage of {name}").iloc[0]
        last = max((d for d in (_date(row[k]) for k in ends) if d is not None), default=None)
        out.update(rows=int(_count(row["n"])), first_row=_date(row["lo"]), last_row=last)
        return out
    # Daily and monthly tables: the span and the gaps, found in the engine (only the gaps reach pandas).
    t = t.filter(t[col].notnull())
    row = fetch(
        t.aggregate(
            n=t.count(),
            lo=day.min(),
            hi=day.max(),
            days=day.nunique(),
            not_first=(day.day() != 1).cast("int64").sum(),
        ),
        label=f"span of {name}",
    ).iloc[0]
    out.update(rows=int(_count(row["n"])), first_row=_date(row["lo"]), last_row=_date(row["hi"]))
    out.update(distinct_days=int(_count(row["days"])), first_of_month=not _count(row["not_first"]))
    if out["first_row"] is None:
        return out
    unit = "D" if table.coverage == "daily" else "M"
    stamps = t.select(d=t[col].cast("timestamp").truncate(unit)).distinct()
    w = ibis.window(order_by=stamps.d)
    prev = stamps.mutate(p=stamps.d.lag().over(w))
    step = ibis.interval(days=1) if unit == "D" else ibis.interval(months=1)
    jumps = prev.filter(prev.p.notnull() & (prev.p + step < prev.d)).order_by("d")
    found = fetch(jumps.select("p", "d"), label=f"gaps of {name}")
    runs = []
    for p_, d_ in zip(found["p"], found["d"], strict=True):
        before, after = _date(p_), _date(d_)
        assert before is not None and after is not None
        if unit == "M":
            before = _month_end(before.year, before.month)
        runs.append(Span(before + DAY, after - DAY))
    out["gaps"] = runs
    return out


def _filled(name: str, t: Any, fetch: Any) -> frozenset[str]:
    """The nullable columns of ``name`` with at least one value (one aggregate query)."""
    cols = [c.name for c in CONTRACT[name].columns if c.nullable]
    if not cols:
        return frozenset()
    row = fetch(t.aggregate(**{c: t[c].count() for c in cols}), label=f"filled columns of {name}").iloc[0]
    return frozenset(c for c in cols if _count(row[c]) > 0)


def _count(value: Any) -> float:
    """An aggregate count as a number: engines give NULL or NaN for an empty table's sums."""
    return 0.0 if value is None or pd.isna(value) else float(value)


def _coverage(name: str, f: Mapping[str, Any], data_end: dt.date | None) -> TableCoverage:
    table = CONTRACT[name]
    kind = table.coverage
    declared = f["declared"]
    if declared is not None:
        lo, hi = declared
        gaps: tuple[Span, ...] = ()
        if kind == "daily" and f.get("distinct_days", 0) > 1:
            # A declared period does not fill the days without rows inside it: a site has sessions
            # every day, so those stay gaps. (One date only: an aggregate over the period.)
            runs = [Span(lo, f["first_row"] - DAY), *f["gaps"], Span(f["last_row"] + DAY, hi)]
            clipped = [Span(max(r.start, lo), min(r.end, hi)) for r in runs]
            gaps = tuple(r for r in clipped if r.start <= r.end)
        return TableCoverage(name, kind, f["rows"], lo, hi, gaps, True, f.get("last_row"))
    if kind == "declared" or f["first_row"] is None:
        return TableCoverage(name, kind, f["rows"])
    first, last = f["first_row"], f["last_row"]
    if kind == "event":
        # Events are sparse: the first row does not mark the export's start, its month does (exports
        # run by month); the end is the data's end, as a day without events is a real zero.
        end = max(last, data_end) if data_end is not None else last
        return TableCoverage(name, kind, f["rows"], first.replace(day=1), end, (), False, last)
    if kind == "daily":
        return TableCoverage(name, kind, f["rows"], first, last, tuple(f["gaps"]), False, last)
    # monthly: whole months when the table is dated the 1st, else to its last row
    start = first.replace(day=1)
    end = _month_end(last.year, last.month) if f["first_of_month"] else last
    return TableCoverage(name, kind, f["rows"], start, end, tuple(f["gaps"]), False, end)


def _month_end(year: int, month: int) -> dt.date:
    y, m = (year + 1, 1) if month == 12 else (year, month + 1)
    return dt.date(y, m, 1) - DAY


def _date(value: Any) -> dt.date | None:
    if value is None or pd.isna(value):  # NaT is a datetime too: test for missing first
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()
