"""Fiscal quarters and years, and parsing of the quarter names users type.

Convention: a fiscal year is named for the calendar year in which it *ends*. With
``fy_start_month=1`` fiscal and calendar years coincide; with ``fy_start_month=7``, FY2026 runs
from 2025-07-01 to 2026-06-30 and FY2026Q1 is July-September 2025.

Accepted names: ``2026Q3`` and ``FY2026Q3`` (both fiscal quarter 3 of fiscal year 2026),
``latest`` (the last quarter that has ended and that the data covers to its end) and ``current``
(the quarter holding the data's last date, normally still in progress).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from .exceptions import PeriodError

#: fiscal years a quarter may name (dates beyond are refused as data too, see validation)
YEARS = (1900, 2200)
_QUARTER_RE = re.compile(r"^\s*(?:FY)?\s*(\d{4})\s*-?\s*Q([1-4])\s*$", re.IGNORECASE)


def _check_start_month(fy_start_month: int) -> None:
    if not (isinstance(fy_start_month, int) and 1 <= fy_start_month <= 12):
        raise PeriodError(f"`fiscal_year_start_month` must be an integer 1-12, got {fy_start_month!r}")


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    idx = year * 12 + (month - 1) + months
    return idx // 12, idx % 12 + 1


@dataclass(frozen=True, order=True)
class Quarter:
    """Fiscal quarter ``q`` (1-4) of fiscal year ``fiscal_year``."""

    fiscal_year: int
    q: int
    fy_start_month: int = 1

    def __post_init__(self) -> None:
        _check_start_month(self.fy_start_month)
        if self.q not in (1, 2, 3, 4):
            raise PeriodError(f"quarter number must be 1-4, got {self.q!r}")
        if not (YEARS[0] <= self.fiscal_year <= YEARS[1]):
            raise PeriodError(
                f"fiscal year {self.fiscal_year} is out of range; expected a year from {YEARS[0]} to {YEARS[1]}"
            )

    @property
    def start(self) -> dt.date:
        """First day of the quarter."""
        # FY N starts in calendar year N-1 unless the fiscal year starts in January.
        year0 = self.fiscal_year - (1 if self.fy_start_month != 1 else 0)
        y, m = _add_months(year0, self.fy_start_month, 3 * (self.q - 1))
        return dt.date(y, m, 1)

    @property
    def end(self) -> dt.date:
        """First day *after* the quarter (exclusive bound, convenient for filters)."""
        y, m = _add_months(self.start.year, self.start.month, 3)
        return dt.date(y, m, 1)

    @property
    def last_day(self) -> dt.date:
        return self.end - dt.timedelta(days=1)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def label(self) -> str:
        """``2026Q3`` for calendar-aligned years, ``FY2026Q3`` otherwise."""
        prefix = "" if self.fy_start_month == 1 else "FY"
        return f"{prefix}{self.fiscal_year}Q{self.q}"

    @property
    def key(self) -> int:
        """Sortable integer ``fiscal_year * 4 + q - 1``; consecutive quarters differ by 1."""
        return self.fiscal_year * 4 + self.q - 1

    @classmethod
    def from_key(cls, key: int, fy_start_month: int = 1) -> Quarter:
        return cls(int(key) // 4, int(key) % 4 + 1, fy_start_month)

    def shift(self, n: int) -> Quarter:
        return Quarter.from_key(self.key + n, self.fy_start_month)

    def previous(self) -> Quarter:
        return self.shift(-1)

    def year_ago(self) -> Quarter:
        return self.shift(-4)

    @property
    def fiscal(self) -> FiscalYear:
        return FiscalYear(self.fiscal_year, self.fy_start_month)

    def contains(self, day: dt.date) -> bool:
        return self.start <= _as_date(day) < self.end

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True, order=True)
class FiscalYear:
    year: int
    fy_start_month: int = 1

    @property
    def quarters(self) -> list[Quarter]:
        return [Quarter(self.year, q, self.fy_start_month) for q in (1, 2, 3, 4)]

    @property
    def start(self) -> dt.date:
        return self.quarters[0].start

    @property
    def end(self) -> dt.date:
        """First day after the fiscal year (exclusive)."""
        return self.quarters[3].end

    @property
    def label(self) -> str:
        return f"FY{self.year}"

    def __str__(self) -> str:
        return self.label


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if hasattr(value, "date") and callable(value.date):  # pandas Timestamp
        return value.date()
    return dt.date.fromisoformat(str(value)[:10])


def quarter_of(day: Any, fy_start_month: int = 1) -> Quarter:
    """The fiscal quarter holding ``day`` (a date, datetime, Timestamp or ISO string)."""
    _check_start_month(fy_start_month)
    d = _as_date(day)
    offset = (d.month - fy_start_month) % 12
    fiscal_year = d.year + (1 if fy_start_month != 1 and d.month >= fy_start_month else 0)
    return Quarter(fiscal_year, offset // 3 + 1, fy_start_month)


def latest_complete_quarter(data_end: Any, fy_start_month: int = 1, *, today: Any = None) -> Quarter:
    """Last quarter that has ended (before ``today``) and that the data covers to its last day."""
    end = _as_date(data_end)
    if today is not None:
        end = min(end, _as_date(today) - dt.timedelta(days=1))
    q = quarter_of(end, fy_start_month)
    return q if q.last_day <= end else q.previous()


def parse_quarter(
    text: str | Quarter,
    *,
    fy_start_month: int = 1,
    data_end: Any = None,
    today: Any = None,
) -> Quarter:
    """Turn ``2026Q3``, ``FY2026Q1``, ``latest`` or ``current`` into a :class:`Quarter`.

    ``latest`` and ``current`` need ``data_end``, the last date the data covers.

    >>> parse_quarter("2026Q3").start
    datetime.date(2026, 7, 1)
    >>> parse_quarter("FY2026Q1", fy_start_month=7).start
    datetime.date(2025, 7, 1)
    >>> parse_quarter("latest", data_end="2026-10-20").label
    '2026Q3'
    >>> parse_quarter("current", data_end="2026-10-20").label
    '2026Q4'
    """
    _check_start_month(fy_start_month)
    if isinstance(text, Quarter):
        return Quarter(text.fiscal_year, text.q, fy_start_month)
    word = str(text).strip().lower()
    if word in ("latest", "current"):
        if data_end is None:
            raise PeriodError(f"`{word}` needs the data's last date; none was given (is the data empty?)")
        if word == "current":
            return quarter_of(data_end, fy_start_month)
        return latest_complete_quarter(data_end, fy_start_month, today=today)
    m = _QUARTER_RE.match(str(text))
    if not m:
        raise PeriodError(f"cannot read quarter {text!r}; expected e.g. `2026Q3`, `FY2026Q1`, `latest` or `current`")
    return Quarter(int(m.group(1)), int(m.group(2)), fy_start_month)


def quarter_key_expr(date_expr: Any, fy_start_month: int = 1) -> Any:
    """Ibis integer expression ``fiscal_year * 4 + q - 1`` for a date/timestamp column.

    Runs in the engine so grouping by quarter never pulls raw rows into pandas.
    """
    _check_start_month(fy_start_month)
    # Months since year 0, shifted so the fiscal year starts at month index 0 of its "year".
    shifted = date_expr.year().cast("int64") * 12 + date_expr.month().cast("int64") - 1 - (fy_start_month - 1)
    if fy_start_month != 1:
        shifted = shifted + 12  # FY is named for the year it ends in
    fiscal_year = shifted // 12
    q0 = (shifted % 12) // 3
    return fiscal_year * 4 + q0
