import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpi_helpers.exceptions import PeriodError
from kpi_helpers.periods import FiscalYear, Quarter, parse_quarter, quarter_of

D = dt.date


@pytest.mark.parametrize(
    ("text", "fy", "start", "end", "label"),
    [
        ("2026Q3", 1, D(2026, 7, 1), D(2026, 10, 1), "2026Q3"),
        ("fy2026q1", 1, D(2026, 1, 1), D(2026, 4, 1), "2026Q1"),
        ("FY2026Q1", 7, D(2025, 7, 1), D(2025, 10, 1), "FY2026Q1"),
        ("FY2026Q4", 7, D(2026, 4, 1), D(2026, 7, 1), "FY2026Q4"),
        ("2026Q1", 2, D(2025, 2, 1), D(2025, 5, 1), "FY2026Q1"),
        (" 2024-Q2 ", 1, D(2024, 4, 1), D(2024, 7, 1), "2024Q2"),
    ],
    ids=["calendar", "lowercase", "july-fy-q1", "july-fy-q4", "february-fy", "spaces-dash"],
)
def test_parse_named_quarters(text, fy, start, end, label):
    q = parse_quarter(text, fy_start_month=fy)
    assert (q.start, q.end, q.label) == (start, end, label)


@pytest.mark.parametrize(
    ("data_end", "today", "latest", "current"),
    [
        ("2026-10-20", None, "2026Q3", "2026Q4"),
        ("2026-09-30", None, "2026Q3", "2026Q3"),  # data reaches the quarter's last day
        ("2026-09-29", None, "2026Q2", "2026Q3"),  # one day short: Q3 is not covered
        ("2026-09-30", "2026-09-30", "2026Q2", "2026Q3"),  # the quarter has not ended yet today
    ],
    ids=["mid-quarter", "exact-end", "one-day-short", "not-ended-today"],
)
def test_latest_and_current(data_end, today, latest, current):
    assert parse_quarter("latest", data_end=data_end, today=today).label == latest
    assert parse_quarter("current", data_end=data_end).label == current


@pytest.mark.parametrize("text", ["2026Q5", "Q3", "last", "2026", ""])
def test_bad_quarter_names(text):
    with pytest.raises(PeriodError, match="cannot read quarter"):
        parse_quarter(text)


def test_latest_needs_data():
    with pytest.raises(PeriodError, match="data's last date"):
        parse_quarter("latest")


def test_bad_start_month():
    with pytest.raises(PeriodError, match="1-12"):
        Quarter(2026, 1, 13)


def test_fiscal_year_quarters():
    fy = FiscalYear(2026, 10)
    assert fy.start == D(2025, 10, 1) and fy.end == D(2026, 10, 1)
    assert [q.label for q in fy.quarters] == [f"FY2026Q{i}" for i in range(1, 5)]


@given(st.dates(min_value=D(1990, 1, 1), max_value=D(2090, 12, 31)), st.integers(1, 12))
def test_every_day_lies_in_its_quarter(day, fy):
    q = quarter_of(day, fy)
    assert q.start <= day < q.end
    assert q.shift(1).start == q.end and q.shift(-1).end == q.start
    assert q.fiscal.start <= day < q.fiscal.end


@pytest.mark.parametrize("fy", range(1, 13))
def test_engine_quarter_key_matches_python(fy):
    """The engine's quarter key equals Python's for every day of four years (leap year included)."""
    import ibis
    import pandas as pd

    from kpi_helpers.periods import quarter_key_expr

    days = pd.date_range("2023-01-01", "2026-12-31", freq="D")
    t = ibis.memtable(pd.DataFrame({"d": days.date}))
    got = ibis.duckdb.connect().execute(t.select(k=quarter_key_expr(t.d, fy)))["k"].tolist()
    assert got == [quarter_of(d, fy).key for d in days.date]


@pytest.mark.parametrize("text", ["0000Q1", "9999Q4", "FY1899Q2"])
def test_years_outside_the_calendar_are_refused(text):
    with pytest.raises(PeriodError, match="out of range; expected a year from 1900 to 2200"):
        parse_quarter(text)
