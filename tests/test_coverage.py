"""Coverage: quarters before, after and partly inside the data; gaps; any subset of tables; never a 0
standing in for missing data. Each case edits a copy of ``tests/fixtures/tiny`` (2025-01-01 to 2025-06-30)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from kpi_helpers.cli import main
from kpi_helpers.coverage import Span, TableCoverage
from kpi_helpers.exceptions import PeriodError
from kpi_helpers.metrics import quarter_metrics
from kpi_helpers.registry import KPIS
from kpi_helpers.source import DataSource

TINY = Path(__file__).parent / "fixtures" / "tiny"


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    shutil.copytree(TINY, folder)
    return folder


def drop_rows(folder: Path, table: str, keep) -> None:
    p = folder / f"{table}.csv"
    lines = p.read_text().splitlines()
    p.write_text("\n".join([lines[0], *[x for x in lines[1:] if keep(x)]]) + "\n")


def test_table_coverage_missing_runs():
    c = TableCoverage(
        "web_sessions",
        "daily",
        10,
        dt.date(2025, 1, 1),
        dt.date(2025, 3, 31),
        (Span(dt.date(2025, 2, 1), dt.date(2025, 2, 28)),),
    )
    assert c.missing(dt.date(2024, 12, 1), dt.date(2025, 4, 30)) == [
        Span(dt.date(2024, 12, 1), dt.date(2024, 12, 31)),
        Span(dt.date(2025, 2, 1), dt.date(2025, 2, 28)),
        Span(dt.date(2025, 4, 1), dt.date(2025, 4, 30)),
    ]
    assert c.covered_days(dt.date(2025, 1, 1), dt.date(2025, 3, 31)) == 90 - 28


def test_a_month_missing_from_web_sessions_is_shown_not_hidden(tiny):
    # February has one real row (600 sessions on 2025-01-10 stays); drop every February day.
    drop_rows(tiny, "web_sessions", lambda line: not line.startswith("2025-02-"))
    m = quarter_metrics(DataSource.open(tiny), "2025Q1")
    assert m["complete"] is False and m["days_covered"] == 90 - 28
    assert m["coverage"]["web_sessions"]["missing_days_in_quarter"] == 28
    assert m["coverage"]["web_sessions"]["missing_in_quarter"] == ["2025-02-01 to 2025-02-28"]
    assert m["visits"] == 700  # 600 + 100: the sum of the days there are, flagged partial
    assert "28 missing" in m["partial"]["visits"]
    # a ratio of web sessions (partial) and leads (whole quarter) compares unlike periods: n/a
    assert m["visits_per_lead"] is None and "cover different days" in m["undefined"]["visits_per_lead"]
    # a partial count is not judged against the quarter's target
    visits_kpi = next(k for k in m["kpis"] if k["metric"] == "visits")
    assert visits_kpi["status"] == "no data" and "28 missing" in visits_kpi["note"]


@pytest.mark.parametrize("quarter", ["2019Q1", "2030Q1", "2024Q3"])
def test_a_quarter_outside_the_data_is_refused(tiny, quarter):
    with pytest.raises(
        PeriodError, match=r"outside the data, which covers 2025-01-01 to 2025-06-30 \(2025Q1 to 2025Q2\)"
    ):
        DataSource.open(tiny).quarter(quarter)


def test_cli_exit_2_for_a_quarter_outside_the_data(tiny, capsys):
    assert main(["summary", "--data", str(tiny), "--quarter", "2030Q1"]) == 2
    err = capsys.readouterr().err
    assert "2030Q1" in err and "2025Q1 to 2025Q2" in err and "Traceback" not in err


def test_earlier_quarters_before_the_data_are_null_not_zero(tiny):
    m = quarter_metrics(DataSource.open(tiny), "2025Q1")
    prev = m["previous_quarter"]
    assert prev["quarter"] == "2024Q4"
    assert all(prev[k] is None for k in KPIS), {k: prev[k] for k in KPIS if prev[k] is not None}
    assert m["year_ago"]["leads"] is None


def test_revenue_closing_late_does_not_move_latest(tiny):
    # Finance has not closed June yet: latest stays 2025Q2 (web sessions and leads cover it);
    # revenue is partial there and says so.
    drop_rows(tiny, "revenue", lambda line: not line.startswith("2025-06"))
    src = DataSource.open(tiny)
    assert src.quarter("latest", today="2025-07-05").label == "2025Q2"
    m = quarter_metrics(src, "2025Q2", today="2025-07-05")
    assert m["revenue"] == 3000.0 and "revenue" in m["partial"]


def test_latest_waits_for_the_activity_tables(tiny):
    # web sessions end in May: June is not covered, so the last complete quarter is 2025Q1.
    drop_rows(tiny, "web_sessions", lambda line: not line.startswith("2025-06"))
    assert DataSource.open(tiny).quarter("latest").label == "2025Q1"


def test_header_only_tables_cover_nothing(tiny):
    # Header-only files for a CRM and cost a team does not have: n/a, never CAC 0 or cost per lead 0.
    for table in ("leads", "opportunities", "spend", "touchpoints"):
        drop_rows(tiny, table, lambda _line: False)
    m = quarter_metrics(DataSource.open(tiny), "2025Q1")
    for key in ("leads", "cac", "cost_per_lead", "visits_per_lead", "marketing_roi", "marketing_cost", "lead_revenue"):
        assert m[key] is None, key
        assert "no rows" in m["undefined"][key], m["undefined"][key]
    assert m["visits"] == 1000


@pytest.mark.parametrize(
    ("tables", "defined", "undefined"),
    [
        (("web_sessions",), ("visits", "bounce_rate", "avg_session_duration_s"), ("leads", "cac", "revenue")),
        (("leads", "opportunities"), ("leads", "mqls", "won_deals", "lead_revenue"), ("visits", "cost_per_lead")),
        (("spend",), ("marketing_cost", "sales_cost"), ("leads", "cac", "marketing_roi")),
    ],
    ids=["web-only", "crm-only", "spend-only"],
)
def test_any_subset_of_tables(tiny, tables, defined, undefined):
    for p in tiny.glob("*.csv"):
        if p.stem not in tables:
            p.unlink()
    m = quarter_metrics(DataSource.open(tiny), "2025Q1")
    assert sorted(m["tables"]) == sorted(tables)
    for key in defined:
        assert m[key] is not None, (key, m["undefined"].get(key))
    for key in undefined:
        assert m[key] is None and m["undefined"][key].startswith("needs "), key


def test_a_quarter_partly_inside_the_data_is_partial(tiny):
    # spend ends 2025-04-30: in 2025Q2 it covers April only.
    m = quarter_metrics(DataSource.open(tiny), "2025Q2")
    assert m["marketing_cost"] == 1500.0 and "spend" in m["partial"]["marketing_cost"]
    assert m["cost_per_lead"] is None  # leads cover the quarter, spend a month of it


def test_a_declared_period_keeps_the_gaps_inside_it(tiny):
    from kpi_helpers.coverage import _coverage

    d = dt.date
    f = {"rows": 3, "first_row": d(2025, 1, 1), "last_row": d(2025, 1, 5), "distinct_days": 3,
         "gaps": [Span(d(2025, 1, 3), d(2025, 1, 4))], "declared": (d(2025, 1, 1), d(2025, 1, 6))}  # fmt: skip
    c = _coverage("web_sessions", f, None)
    assert c.declared and (c.first_date, c.last_date) == (d(2025, 1, 1), d(2025, 1, 6))
    assert c.gaps == (Span(d(2025, 1, 3), d(2025, 1, 4)), Span(d(2025, 1, 6), d(2025, 1, 6)))


def test_gaps_are_found_in_the_engine(tiny):
    # February without web sessions, March without spend: the runs come back, not every day.
    drop_rows(tiny, "web_sessions", lambda line: not line.startswith("2025-02-"))
    drop_rows(tiny, "spend", lambda line: not line.startswith("2025-03-"))
    src = DataSource.open(tiny)
    cov = src.coverage.tables
    assert cov["web_sessions"].gaps == (Span(dt.date(2025, 2, 1), dt.date(2025, 2, 28)),)
    assert cov["spend"].gaps == (Span(dt.date(2025, 3, 1), dt.date(2025, 3, 31)),)
    assert max(n for label, n in src.fetches if label.startswith(("gaps of", "span of"))) <= 1


def test_the_quarter_in_progress_counts_its_days_so_far(tiny):
    # Leads (the activity table) end 2025-05-31; a deals export runs later. The quarter in progress
    # counts deals up to the data's end only, so its run rate does not mix periods.
    for table in ("web_sessions", "touchpoints"):
        (tiny / f"{table}.csv").unlink()
    drop_rows(tiny, "leads", lambda line: not line.startswith("L5,"))  # the last lead (2025-05-05) goes
    p = tiny / "opportunities.csv"
    p.write_text(p.read_text() + "O6,L4,A5,2025-05-02 10:00:00,2025-06-20 10:00:00,won,9000\n")
    src = DataSource.open(tiny)
    assert str(src.data_end) == "2025-04-20"  # the leads' last event (L4's SQL date)
    m = quarter_metrics(src, "current")
    assert m["quarter"] == "2025Q2" and m["in_progress"]
    assert m["won_deals"] == 0  # O4 (2025-05-30) and O6 (2025-06-20) close after the data's end
    assert m["days_covered"] == 20


def test_a_column_empty_in_every_row_is_missing_not_zero(tiny):
    # A CRM without SQL dates: SQLs are n/a, not 0; so are the SQL stages of the funnel.
    p = tiny / "leads.csv"
    rows = p.read_text().splitlines()
    cut = [",".join([*r.split(",")[:-1], ""]) for r in rows[1:]]
    p.write_text("\n".join([rows[0], *cut]) + "\n")
    src = DataSource.open(tiny)
    m = quarter_metrics(src, "2025Q1")
    assert m["sqls"] is None and "`leads.sql_at`, which is empty in every row" in m["undefined"]["sqls"]
    assert m["mqls"] == 2
    from kpi_helpers.breakdowns import channel_funnel
    from kpi_helpers.metrics import QuarterKpis

    funnel = channel_funnel(QuarterKpis(src, "2025Q1"))
    assert funnel["sqls"].isna().all() and funnel["mql_to_sql_rate"].isna().all()


def test_new_users_may_be_absent(tiny):
    # GA4's traffic-acquisition report does not show New users unless the metric is added.
    import pandas as pd

    p = tiny / "web_sessions.csv"
    pd.read_csv(p).drop(columns="new_users").to_csv(p, index=False)
    m = quarter_metrics(DataSource.open(tiny), "2025Q1")
    assert m["visits"] == 1000 and m["new_users"] is None and m["returning_users"] is None
    assert "web_sessions.new_users" in m["undefined"]["new_user_share"]
