"""Validation: a raw table is checked against the contract, in the engine, and typed.

Read right or refuse. Every rule runs as one aggregate query per table over the raw rows (text as
exported, or Parquet's own types), and every broken rule becomes a :class:`~kpi_helpers.exceptions.Problem`
naming file, column, rows and the values found; all problems of a source are reported together.
What is suspicious but not wrong (exact duplicate rows, CRM stages out of order) becomes a warning.

The rules beyond each column's kind (see :mod:`kpi_helpers.schema`):

- numbers are plain decimal text (``1234.5``, ``-3``, ``1e3``; the export reader turns locale
  formats into this or refuses them); ``NaN``, ``inf`` and words are refused, so is any value above
  :data:`~kpi_helpers.schema.MAX_VALUE`; counts are whole numbers, in text and in Parquet alike;
- dates and timestamps are ISO text (``2026-07-01``, ``2026-07-01 09:30:00``, with an optional
  offset ``+02:00`` or ``Z``); words such as ``epoch`` or ``infinity`` are refused;
- **one time-zone rule**: a timestamp with an offset (text, or a time-zone-aware Parquet column) is
  converted to the source's time zone (``timezone`` in ``goals.yml``, default UTC) before any date
  is taken; a timestamp without offset is taken as local time in that zone. The engine's session
  time zone is set to it when the source is opened;
- amounts carry the source's currency: a ``currency`` column with another code is refused;
- dates far from the rest of their column (an isolated row years after the others, an ``1970-01-01``
  from a zero that became a date) are refused, so one stray row never moves ``latest``;
- an export counted twice is refused: a block of rows repeated exactly (a file appended to
  itself) or two files of one table whose dates overlap; isolated exact duplicates are a warning
  (rows that share the table's grain with different values are summed, as they should be);
- ``mql_at`` before ``created_at`` or ``sql_at`` before ``mql_at`` (CRM lifecycle resets) is a
  warning; such leads are left out of stage timing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as idt
import ibis.expr.types as ir
import pandas as pd
from ibis import _

from .exceptions import Problem
from .exports import date_format_hint
from .schema import CLOSED_STAGES, CONTRACT, IBIS_TYPES, MAX_VALUE, NUMBER_KINDS, REFERENCES, Column, Table

ROW = "__row"  # 1-based data-row number of file sources, for error messages
ROW_FILE = "__file"  # the file of a row, for a table read from several files
EXAMPLES = 5  # offending rows shown per problem

#: plain decimal text: what every number must look like once the export reader has done its work
NUMBER_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
#: ISO date or date-time, optional fraction and offset
DATE_RE = (
    r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([ T][0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?"
    r"( ?(Z|UTC|[+-][0-9]{2}(:?[0-9]{2})?))?$"
)
#: years a date may have at all (a cheap guard; stray dates inside it are found by `stray_dates`)
YEARS = (1900, 2200)
#: a gap this long (days) between a few dates and the rest of their column makes those few stray ...
STRAY_GAP_DAYS = 366
#: ... when they are at most this share of the column's rows
STRAY_SHARE = 0.01
#: ... or at most this many rows (a one-row typo in a small table)
STRAY_ROWS = 2
#: consecutive rows that each repeat an earlier row exactly, from which they are a repeated block
REPEATED_BLOCK = 3

_EXPECTED = {
    "date": "an ISO date YYYY-MM-DD",
    "timestamp": "an ISO date-time YYYY-MM-DD[ HH:MM:SS][+HH:MM]",
    "count": "a whole number",
    "amount": "a number",
    "seconds": "a number of seconds",
    "number": "a number",
}
_TZ = idt.Timestamp(timezone="UTC")


@dataclass
class Check:
    """One rule: ``cond`` is true on the raw rows that break it."""

    column: str
    expected: str
    cond: ir.BooleanValue
    show: str | None = None  # column whose offending values are shown


@dataclass
class Verdict:
    """What validation found: problems (the source is refused) and warnings (it is used)."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def is_text(dtype: Any) -> bool:
    return bool(dtype.is_string())


def _kind_matches(kind: str, dtype: Any) -> bool:
    if kind == "string":
        return bool(dtype.is_string())
    if kind in ("date", "timestamp"):
        return bool(dtype.is_date() or dtype.is_timestamp())
    return bool(dtype.is_numeric())


def number_text(raw: ir.StringValue) -> ir.FloatingValue:
    """Plain decimal text as float64; NULL for anything else (words, NaN, locale formats)."""
    text = raw.strip()
    return ibis.ifelse(text.re_search(NUMBER_RE), text.try_cast("float64"), ibis.null("float64"))


def timestamp_text(raw: ir.StringValue) -> ir.TimestampValue:
    """ISO text as a local timestamp of the session's time zone (offsets converted); NULL otherwise."""
    text = raw.strip()
    local = text.try_cast(_TZ).cast("timestamp")
    return ibis.ifelse(text.re_search(DATE_RE), local, ibis.null("timestamp"))


def typed(col: Column, raw: ir.Value) -> ir.Value:
    """Cast a raw column to its contract type (NULL where blank or unparseable).

    Only called on validated rows for the source's tables; on rows that break a rule the result is
    NULL rather than an error (a count beyond int64 never reaches the cast).
    """
    dtype = raw.type()
    if col.kind == "string":
        v = raw.cast("string").strip().nullif("")
        return v.lower() if col.accepted else v
    if not is_text(dtype):
        if col.kind in ("date", "timestamp"):
            # A time-zone-aware column becomes local time of the session's zone, like text with an offset.
            ts = raw.cast("timestamp") if dtype.is_timestamp() else raw.cast("date").cast("timestamp")
            return ts.date() if col.kind == "date" else ts
        if dtype.is_null():
            return raw.cast(IBIS_TYPES[col.kind])
        value = raw.cast("float64")
        sane = value.notnull() & ~value.isnan() & ~value.isinf() & (value.abs() <= MAX_VALUE)
        value = ibis.ifelse(sane, value, ibis.null("float64"))
        return value.round().cast("int64") if col.kind == "count" else value
    text = raw.strip().nullif("")
    if col.kind in ("date", "timestamp"):
        ts = timestamp_text(text)
        ts = ibis.ifelse((ts.year() >= YEARS[0]) & (ts.year() <= YEARS[1]), ts, ibis.null("timestamp"))
        return ts.date() if col.kind == "date" else ts
    number = number_text(text)
    number = ibis.ifelse(number.abs() <= MAX_VALUE, number, ibis.null("float64"))
    return number.round().cast("int64") if col.kind == "count" else number


def checks(table: Table, r: ir.Table, plain: Collection[str] = (), *, currency: str | None = None) -> list[Check]:
    """The contract's rules for ``table`` as conditions on its raw rows (true: the row breaks it).

    Columns in ``plain`` hold text already in typed form (see :func:`plain_text_columns`), so they
    are compared as they are: no trim over every row.
    """
    out: list[Check] = []
    t = {c.name: r[c.name] if c.name in plain else typed(c, r[c.name]) for c in table.columns}
    blanks: dict[str, ir.BooleanValue] = {}
    for c in table.columns:
        v = r[c.name]
        dtype = v.type()
        textual = is_text(dtype) and c.name not in plain
        blank = v.isnull() | (v.cast("string").strip() == "") if textual else v.isnull()
        blanks[c.name] = blank
        if not c.nullable:
            out.append(Check(c.name, "a value in every row (found empty cells)", blank))
        if c.kind != "string":
            out += _kind_checks(c, v, blank)
        if c.accepted:
            allowed = ", ".join(c.accepted)
            out.append(Check(c.name, f"one of {allowed}", ~blank & ~t[c.name].isin(list(c.accepted)), show=c.name))
        if c.unique:
            key = t[c.name]
            # A hash aggregate and a semi-join: several times faster than a window over every row.
            keys = r.select(k=key).filter(_.k.notnull())
            repeated = keys.group_by("k").aggregate(n=_.count()).filter(_.n > 1).k
            out.append(
                Check(c.name, "unique values (found duplicates)", key.notnull() & key.isin(repeated), show=c.name)
            )
        if c.name == "currency" and currency:
            other = t[c.name].notnull() & (t[c.name].upper() != currency.upper())
            out.append(
                Check(
                    c.name,
                    f"the source's currency {currency} (set by `currency:` in goals.yml); convert the amounts first: "
                    "amounts in different currencies are never summed",
                    other,
                    show=c.name,
                )
            )
    out += _row_rules(table, t, blanks)
    return out


def _kind_checks(c: Column, v: ir.Value, blank: ir.BooleanValue) -> list[Check]:
    """Rules of a column's kind: parseable, finite, within bounds, whole for counts, >= 0."""
    out: list[Check] = []
    dtype = v.type()
    numeric = c.kind in NUMBER_KINDS
    if is_text(dtype):
        if numeric:
            number = number_text(v)
            out.append(Check(c.name, _EXPECTED[c.kind], ~blank & number.isnull(), show=c.name))
        else:
            ts = timestamp_text(v)
            out.append(Check(c.name, _EXPECTED[c.kind], ~blank & ts.isnull(), show=c.name))
            out.append(
                Check(
                    c.name,
                    f"a date in the years {YEARS[0]}-{YEARS[1]}",
                    (ts.year() < YEARS[0]) | (ts.year() > YEARS[1]),
                    show=c.name,
                )
            )
            return out
    elif dtype.is_null():
        return out
    elif not _kind_matches(c.kind, dtype):
        out.append(Check(c.name, f"{_EXPECTED[c.kind]} (column type is {dtype})", ~blank))
        return out
    elif numeric:
        number = v.cast("float64")
        if dtype.is_floating():
            out.append(
                Check(c.name, "a finite number (found NaN or infinity)", number.isnan() | number.isinf(), show=c.name)
            )
    else:
        year = v.cast("timestamp").year() if dtype.is_timestamp() else v.cast("date").year()
        out.append(
            Check(
                c.name, f"a date in the years {YEARS[0]}-{YEARS[1]}", (year < YEARS[0]) | (year > YEARS[1]), show=c.name
            )
        )
        return out
    finite = number.notnull() & ~number.isnan() & ~number.isinf()
    # From text, a huge exponent (1e400) overflows to infinity: too big, like 1e300.
    too_big = (number.isinf() if is_text(dtype) else ibis.literal(False)) | (finite & (number.abs() > MAX_VALUE))
    out.append(
        Check(
            c.name,
            f"a value up to {MAX_VALUE:,.0f} (a larger one is a broken export: units or number format)",
            too_big,
            show=c.name,
        )
    )
    if c.kind == "count":
        whole = finite & (number.abs() <= MAX_VALUE) & (number % 1.0 != 0)
        out.append(Check(c.name, "a whole number (counts have no fractions)", whole, show=c.name))
    if c.kind != "number":  # a `number` is a change and may be negative
        out.append(Check(c.name, "a value >= 0", finite & (number < 0), show=c.name))
    return out


def _row_rules(table: Table, t: Mapping[str, ir.Value], blanks: Mapping[str, ir.BooleanValue]) -> list[Check]:
    """Rules between columns (see ``schema.Table.rules``); a cell that is there but unreadable is
    reported by its column's own rule, not again here."""
    if table.name == "opportunities":
        closed_stage = t["stage"].isin(["won", "lost"])
        return [
            Check("closed_at", "closed_at >= created_at", t["closed_at"] < t["created_at"], show="closed_at"),
            Check(
                "closed_at",
                "a close date when stage is won or lost",
                closed_stage & blanks["closed_at"],
                show="stage",
            ),
        ]
    if table.name == "web_sessions":
        return [
            Check(
                "engaged_sessions",
                "engaged_sessions <= sessions",
                t["engaged_sessions"] > t["sessions"],
                show="engaged_sessions",
            ),
            Check("new_users", "new_users <= users", t["new_users"] > t["users"], show="new_users"),
        ]
    if table.name == "revenue":
        return [Check("month", "the first day of a month", t["month"].day() != 1, show="month")]
    if table.name == "content":
        return [
            Check("email_opens", "email_opens <= email_sends", t["email_opens"] > t["email_sends"], show="email_opens")
        ]
    if table.name == "experiments":
        return [
            Check("end", "end >= start", t["end"] < t["start"], show="end"),
            Check("sigma", "a standard error > 0", t["sigma"] <= 0, show="sigma"),
            Check("delta_x", "x + delta_x >= 0 (spend cannot fall below 0)", t["x"] + t["delta_x"] < 0, show="delta_x"),
        ]
    return []


def check_table(
    table: Table, r: ir.Table, label: str, absent: set[str], *, currency: str | None = None
) -> tuple[list[Problem], set[str]]:
    """The table's problems, and its text columns that need no typing (see :func:`plain_text_columns`)."""
    plain = plain_text_columns(table, r, absent)
    # Columns already reported missing would only repeat as "empty in every row".
    found = [c for c in checks(table, r, plain, currency=currency) if c.column not in absent]
    if not found:
        return [], plain
    flagged = r.mutate(**{f"__c{i}": ch.cond.fill_null(False) for i, ch in enumerate(found)})
    counts = (
        flagged.aggregate(**{f"__c{i}": flagged[f"__c{i}"].cast("int64").sum() for i in range(len(found))})
        .execute()
        .iloc[0]
    )
    problems = []
    for i, ch in enumerate(found):
        n = _whole(counts[f"__c{i}"])
        if n == 0:
            continue
        rows, values = _examples(table, flagged.filter(flagged[f"__c{i}"]), ch.show)
        expected = ch.expected
        kind = table.column(ch.column).kind
        if kind in ("date", "timestamp") and expected == _EXPECTED[kind]:
            hint = date_format_hint(ch.column, values)
            expected += f"; {hint}" if hint else ""
        problems.append(Problem(label, ch.column, expected, n, rows, values))
    return problems, plain


def _examples(table: Table, rows: ir.Table, show: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Row numbers (or ids) and shown values of the first :data:`EXAMPLES` offending rows."""
    order = ROW if ROW in rows.columns else None
    in_file = ROW_FILE if ROW_FILE in rows.columns else None
    id_col = next((c.name for c in table.columns if c.unique), None)
    cols = [c for c in (in_file, order, id_col, show) if c]
    ex = rows.select(*dict.fromkeys(cols))
    ex = (ex.order_by([c for c in (in_file, order) if c]) if order else ex).limit(EXAMPLES).execute()
    if order and in_file:
        found = tuple(f"{f}:{int(x)}" for f, x in zip(ex[in_file], ex[ROW], strict=True))
    elif order:
        found = tuple(str(int(x)) for x in ex[ROW])
    else:
        found = tuple(str(x) for x in ex[id_col]) if id_col else ()
    values: tuple[str, ...] = ()
    if show:
        values = tuple(dict.fromkeys(_short(x) for x in ex[show] if pd.notna(x)))[:EXAMPLES]
    return found, values


def _whole(value: Any) -> int:
    """A count from an aggregate: engines give NULL (or NaN through pandas) for a sum over no rows."""
    return 0 if value is None or pd.isna(value) else int(value)


def _short(value: Any, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plain_text_columns(table: Table, r: ir.Table, absent: set[str]) -> set[str]:
    """Text columns none of whose values typing would change (trim, empty -> NULL, lower case).

    Tested on each column's distinct values, in one query: far cheaper than trimming every row.
    """
    text = [c for c in table.columns if c.kind == "string" and c.name not in absent and is_text(r[c.name].type())]
    if not text:
        return set()
    parts = []
    for i, c in enumerate(text):
        d = r.select(v=r[c.name]).filter(_.v.notnull()).distinct()
        parts.append(
            d.aggregate(col=ibis.literal(i), changed=(typed(c, d.v) != d.v).fill_null(True).cast("int64").sum())
        )
    found = ibis.union(*parts).execute() if len(parts) > 1 else parts[0].execute()
    return {text[int(i)].name for i, n in zip(found["col"], found["changed"], strict=True) if not _whole(n)}


def check_references(
    typed_tables: Mapping[str, ir.Table], present: Collection[str], labels: Mapping[str, str]
) -> list[Problem]:
    """Ids that must exist in another table (only between tables the source has)."""
    problems = []
    for (tname, col), (ref_t, ref_c) in REFERENCES.items():
        if tname not in present or ref_t not in present:
            continue  # without the other table there is nothing to check against
        t, ref = typed_tables[tname], typed_tables[ref_t]
        bad = t.filter(t[col].notnull() & ~t[col].isin(ref[ref_c]))
        n = int(bad.count().execute())
        if n:
            ids = tuple(dict.fromkeys(_short(x) for x in bad.select(col).limit(EXAMPLES).execute()[col]))
            problems.append(
                Problem(
                    labels.get(tname, tname),
                    col,
                    f"ids that exist in `{ref_t}.{ref_c}` (dangling references)",
                    n,
                    (),
                    ids,
                )
            )
    return problems


def history_before_creation(
    typed_tables: Mapping[str, ir.Table], present: Collection[str], labels: Mapping[str, str]
) -> list[Problem]:
    """Stage changes dated before their opportunity was created (``opportunity_history.changed_at``
    < ``opportunities.created_at``): a history from another deal, or dates in another time zone."""
    if "opportunity_history" not in present or "opportunities" not in present:
        return []
    h = typed_tables["opportunity_history"]
    o = typed_tables["opportunities"].select(o_id="opportunity_id", o_created="created_at")
    j = h.inner_join(o, h.opportunity_id == o.o_id)
    bad = j.filter(j.changed_at < j.o_created)
    n = int(bad.count().execute())
    if not n:
        return []
    ids = tuple(
        dict.fromkeys(_short(x) for x in bad.select("opportunity_id").limit(EXAMPLES).execute()["opportunity_id"])
    )
    label = labels.get("opportunity_history", "opportunity_history")
    return [Problem(label, "changed_at", "a change at or after the opportunity's `created_at`", n, (), ids)]


def history_stages(t: ir.Table, label: str) -> list[str]:
    """Deals with a stage change after they closed (``won`` or ``lost`` followed by a later row): a
    warning, as a CRM may reopen a deal; the last row holds the deal's stage."""
    closed = t.filter(t.stage.lower().isin(list(CLOSED_STAGES)))
    first_close = (
        closed.group_by("opportunity_id").aggregate(closed_at=closed.changed_at.min()).rename(c_id="opportunity_id")
    )
    j = t.inner_join(first_close, t.opportunity_id == first_close.c_id)
    n = _whole(j.filter(j.changed_at > j.closed_at).opportunity_id.nunique().execute())
    if not n:
        return []
    return [
        f"`{label}`: {n} deal(s) change stage after they were won or lost (reopened?); the last row holds the stage"
    ]


# --------------------------------------------------------------------------------------------------
# Whole-table rules, on typed tables


def stray_dates(table: Table, t: ir.Table, raw: ir.Table, label: str) -> list[Problem]:
    """Dates far from the rest of their column: isolated months at least :data:`STRAY_GAP_DAYS` away
    from the bulk, holding at most :data:`STRAY_SHARE` of the rows (or :data:`STRAY_ROWS` rows).

    One row dated 2062 among five years of leads would otherwise make 2062Q3 the latest quarter
    with every actual 0; a ``1970-01-01`` is a zero that became a date.
    """
    problems = []
    for c in table.columns:
        if c.kind not in ("date", "timestamp"):
            continue
        month = t[c.name].cast("timestamp").truncate("M")
        hist = t.filter(t[c.name].notnull()).group_by(m=month).aggregate(n=_.count()).execute()
        bad = _stray_months(hist)
        if not bad:
            continue
        lo_hi = [(pd.Timestamp(a).date(), (pd.Timestamp(b) + pd.offsets.MonthBegin(1)).date()) for a, b in bad]
        rowdate = typed(c, raw[c.name]).cast("timestamp")
        cond = ibis.or_(
            *[(rowdate >= ibis.timestamp(a.isoformat())) & (rowdate < ibis.timestamp(b.isoformat())) for a, b in lo_hi]
        )
        flagged = raw.filter(cond)
        n = int(flagged.count().execute())
        rows, values = _examples(table, flagged, c.name)
        problems.append(
            Problem(
                label,
                c.name,
                f"dates near the rest of the column (these lie {STRAY_GAP_DAYS}+ days away from every other date: "
                "a typo or a default date?); fix or remove the rows",
                n,
                rows,
                values,
            )
        )
    return problems


def _stray_months(hist: pd.DataFrame) -> list[tuple[Any, Any]]:
    """Months (first, last) of the small clusters far from the main one, from ``m`` (month) and ``n`` (rows).

    >>> h = pd.DataFrame({"m": pd.to_datetime(["2025-01-01", "2025-02-01", "2062-07-01"]), "n": [500, 400, 1]})
    >>> _stray_months(h)
    [(Timestamp('2062-07-01 00:00:00'), Timestamp('2062-07-01 00:00:00'))]
    """
    if hist.empty:
        return []
    h = hist.sort_values("m").reset_index(drop=True)
    months = pd.to_datetime(h["m"])
    gap = months.diff().dt.days.fillna(0) > STRAY_GAP_DAYS
    cluster = gap.cumsum()
    sizes = h.groupby(cluster)["n"].sum()
    total = float(sizes.sum())
    main = sizes.idxmax()
    out = []
    for k, size in sizes.items():
        if k != main and size <= max(STRAY_SHARE * total, STRAY_ROWS):
            ms = months[cluster == k]
            out.append((ms.min(), ms.max()))
    return out


def repeated_blocks(table: Table, raw: ir.Table, label: str) -> tuple[list[Problem], list[str]]:
    """An export counted twice: runs of at least :data:`REPEATED_BLOCK` consecutive rows that each
    repeat an earlier row exactly are refused; other exact duplicates are counted in a warning.

    Tables with a unique id are left to the id's uniqueness rule.
    """
    if any(c.unique for c in table.columns) or ROW not in raw.columns:
        return [], []
    cols = [c.name for c in table.columns]
    # Duplicates are looked for within each file: two files of one period are `overlapping_files`.
    key_cols = [*cols, ROW_FILE] if ROW_FILE in raw.columns else cols
    r = raw.mutate(__k=ibis.struct({c: raw[c].cast("string") for c in key_cols}).hash())
    win = ibis.window(group_by=r.__k, order_by=r[ROW])
    dup = r.mutate(__seen=ibis.row_number().over(win)).filter(_.__seen > 0)
    dup = dup.select(*([ROW_FILE] if ROW_FILE in raw.columns else []), ROW)
    found = dup.execute()
    if found.empty:
        return [], []
    problems: list[Problem] = []
    blocks: list[tuple[str, int, int]] = []
    for fname, rows in found.groupby(ROW_FILE) if ROW_FILE in found else [("", found)]:
        r_sorted = rows[ROW].astype("int64").sort_values().to_numpy()
        run_id = (pd.Series(r_sorted).diff().fillna(1) != 1).cumsum()
        for _k, run in pd.Series(r_sorted).groupby(run_id.to_numpy()):
            if len(run) >= REPEATED_BLOCK:
                blocks.append((str(fname), int(run.iloc[0]), int(run.iloc[-1])))
    if blocks:
        shown = tuple(f"{f + ':' if f else ''}{a}-{b}" for f, a, b in blocks[:EXAMPLES])
        n = sum(b - a + 1 for _f, a, b in blocks)
        problems.append(
            Problem(
                label,
                "",
                "each row once (these rows repeat earlier rows exactly, block by block: an export appended to itself "
                "or exported twice?); remove the repeated block",
                n,
                shown,
            )
        )
        return problems, []
    return [], [f"`{label}`: {len(found)} row(s) repeat an earlier row exactly (kept and summed; check the export)"]


def overlapping_files(table: Table, t: ir.Table, label: str) -> list[Problem]:
    """Two files of one table whose dates overlap: the same period exported twice."""
    if ROW_FILE not in t.columns or not table.date_column:
        return []
    span = t.group_by(ROW_FILE).aggregate(lo=t[table.date_column].min(), hi=t[table.date_column].max()).execute()
    span = span.dropna().sort_values(["lo", "hi", ROW_FILE]).reset_index(drop=True)
    clashes = []
    for i in range(1, len(span)):
        prev_hi = span.loc[: i - 1, "hi"].max()
        if span.loc[i, "lo"] <= prev_hi:
            other = span.loc[: i - 1][span.loc[: i - 1, "hi"] >= span.loc[i, "lo"]].iloc[-1]
            clashes.append(f"{other[ROW_FILE]} and {span.loc[i, ROW_FILE]}")
    if not clashes:
        return []
    return [
        Problem(
            label,
            table.date_column,
            "files of one table covering separate periods (these files overlap in time, so those days would be "
            "counted twice); keep one file per period",
            len(clashes),
            tuple(clashes[:EXAMPLES]),
        )
    ]


def stage_order(t: ir.Table, label: str) -> list[str]:
    """Leads whose stages go back in time (``mql_at`` before ``created_at``, ``sql_at`` before
    ``mql_at``): a warning; :func:`kpi_helpers.facts.cohort_funnel` leaves them out of stage timing."""
    bad = (
        t.aggregate(
            mql=(t.mql_at < t.created_at).fill_null(False).cast("int64").sum(),
            sql=(t.sql_at < ibis.coalesce(t.mql_at, t.created_at)).fill_null(False).cast("int64").sum(),
        )
        .execute()
        .iloc[0]
    )
    out = []
    if _whole(bad["mql"]):
        out.append(
            f"`{label}`: {int(bad['mql'])} lead(s) have `mql_at` before `created_at` (a lifecycle reset?); "
            "they count as MQLs but are left out of stage timing"
        )
    if _whole(bad["sql"]):
        out.append(
            f"`{label}`: {int(bad['sql'])} lead(s) have `sql_at` before `mql_at`; "
            "they count as SQLs but are left out of stage timing"
        )
    return out


# --------------------------------------------------------------------------------------------------
# The whole source


def validate_and_type(
    raw: Mapping[str, ir.Table],
    present: Collection[str],
    labels: Mapping[str, str],
    *,
    validate: bool,
    absent: Mapping[str, set[str]],
    plain: dict[str, set[str]] | None = None,
    currency: str | None = None,
) -> tuple[dict[str, ir.Table], Verdict]:
    """Check every present table (when ``validate``) and type every table.

    ``raw`` holds each contract table's raw rows (an empty typed table for absent ones); ``present``
    the tables the source has; ``labels`` how messages name each (its file). ``plain`` (filled in
    here, or read from a validation stamp) names the text columns whose raw values already equal their
    typed form: those are used as they are, sparing every later query a trim over millions of rows.
    Returns the typed tables and the verdict (the caller raises on problems).
    """
    plain = {} if plain is None else plain
    verdict = Verdict()
    out: dict[str, ir.Table] = {}
    for table in CONTRACT.values():
        r = raw[table.name]
        label = labels.get(table.name, table.name)
        if validate and table.name in present:
            found, plain[table.name] = check_table(table, r, label, absent.get(table.name, set()), currency=currency)
            verdict.problems += found
        as_is = plain.get(table.name, set())
        keep = [c for c in (ROW_FILE,) if c in r.columns]
        out[table.name] = r.select(
            *keep, **{c.name: r[c.name] if c.name in as_is else typed(c, r[c.name]) for c in table.columns}
        )
    if validate:
        verdict.problems += check_references(out, present, labels)
        verdict.problems += history_before_creation(out, present, labels)
        if not verdict.problems:
            for table in CONTRACT.values():
                if table.name not in present:
                    continue
                label = labels.get(table.name, table.name)
                verdict.problems += stray_dates(table, out[table.name], raw[table.name], label)
                blocks, dupes = repeated_blocks(table, raw[table.name], label)
                verdict.problems += blocks
                verdict.warnings += dupes
                verdict.problems += overlapping_files(table, out[table.name], label)
                if table.name == "leads":
                    verdict.warnings += stage_order(out[table.name], label)
                if table.name == "opportunity_history":
                    verdict.warnings += history_stages(out[table.name], label)
    out = {name: t.drop(ROW_FILE) if ROW_FILE in t.columns else t for name, t in out.items()}
    return out, verdict


def file_labels(files: Mapping[str, Path | list[Path]]) -> dict[str, str]:
    """How messages name each table: its file, or its files joined."""
    out = {}
    for name, f in files.items():
        paths = f if isinstance(f, list) else [f]
        out[name] = ", ".join(Path(p).name for p in paths)
    return out
