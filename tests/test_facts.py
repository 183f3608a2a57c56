"""Facts: the quarter sums the KPIs are computed from, worked by hand on ``tests/fixtures/tiny``.

The tiny data (see the CSVs) covers 2025-01-01 to 2025-06-30: web sessions every day, five leads,
five deals, six spend rows (to April), six revenue months.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from kpi_helpers import facts
from kpi_helpers.periods import parse_quarter
from kpi_helpers.source import DataSource

TINY = Path(__file__).parent / "fixtures" / "tiny"
Q1, Q2 = parse_quarter("2025Q1"), parse_quarter("2025Q2")


@pytest.fixture(scope="module")
def tiny() -> DataSource:
    return DataSource.open(TINY)


@pytest.fixture(scope="module")
def quarters(tiny: DataSource) -> pd.DataFrame:
    return facts.quarterly_facts(tiny, Q1.shift(-1), Q2)


# 2025Q1 by hand
Q1_FACTS = {
    "visits": 1_000,  # 600 + 300 + 100 sessions
    "leads": 3,  # L1, L2, L3
    "mqls": 2,  # L1 (01-20), L2 (02-03)
    "sqls": 1,  # L1 (02-01)
    "opportunities": 3,  # O1, O2, O3 created in Q1
    "lead_opportunities": 2,  # O1, O3 have a lead
    "won_deals": 2,  # O1 (03-20), O2 (03-25)
    "won_revenue": 15_000.0,
    "lead_won_deals": 1,  # O1
    "lead_revenue": 10_000.0,
    "new_customers": 2,  # A1, A2 win first in Q1
    "marketing_cost": 2_000.0,  # 500 + 1,000 + 200 + 300 (overhead); the 2,000 of sales is not marketing
    "sales_cost": 2_000.0,
    "revenue": 4_000.0,
    "goal_completions": 14,
}


@pytest.mark.parametrize(("fact", "expected"), Q1_FACTS.items(), ids=list(Q1_FACTS))
def test_quarter_facts_by_hand(quarters, fact, expected):
    assert quarters.loc["2025Q1", fact] == pytest.approx(expected)


def test_a_quarter_before_the_data_is_nan_not_zero(quarters):
    before = quarters.loc["2024Q4"]
    assert before.isna().all(), before[before.notna()]


def test_channel_facts_add_up_to_the_quarter(tiny, quarters):
    ch = facts.channel_facts(tiny, Q1)
    for fact in ("visits", "leads", "opportunities", "won_deals", "lead_revenue", "marketing_cost"):
        assert ch[fact].sum() == pytest.approx(quarters.loc["2025Q1", fact]), fact
    assert ch.loc["(sales-sourced)", "won_deals"] == 1  # O2 has no lead
    assert ch.loc["(unallocated)", "marketing_cost"] == 300.0  # overhead tied to no channel


def test_revenue_by_fiscal_year_keeps_complete_years_only(tiny):
    assert facts.revenue_by_fiscal_year(tiny, complete_only=True).empty  # 2025 has six months
    partial = facts.revenue_by_fiscal_year(tiny, complete_only=False)
    assert partial.loc[2025] == pytest.approx(8_500.0)


def test_cohort_funnel_follows_the_quarters_leads(tiny):
    f = facts.cohort_funnel(tiny, Q1.start, Q1.end, by="channel")
    # L1 (Organic Search): MQL after 5 days, SQL 12 days later, opportunity O1 4 days later, won O1
    row = f.loc["Organic Search"]
    assert (row.leads, row.mqls, row.sqls, row.opportunities, row.won) == (1, 1, 1, 1, 1)
    assert row.days_lead_to_mql == pytest.approx(5.0)
    assert row.days_mql_to_sql == pytest.approx(12.0)
    assert f.loc["Paid Search", "won"] == 0 and f.loc["Email", "mqls"] == 0


def test_the_quarter_in_progress_counts_its_days_so_far(tmp_path):
    folder = tmp_path / "tiny"
    shutil.copytree(TINY, folder)
    # web sessions (an activity table) end 2025-05-15: the current quarter is counted to that day
    p = folder / "web_sessions.csv"
    rows = p.read_text().splitlines()
    p.write_text("\n".join([rows[0], *[r for r in rows[1:] if r[:10] <= "2025-05-15"]]) + "\n")
    src = DataSource.open(folder)
    assert str(src.data_end) == "2025-05-15"
    assert facts.so_far(src, Q2) == (Q2.start, pd.Timestamp("2025-05-16").date())
    q = facts.quarterly_facts(src, Q2, Q2)
    # O4 wins on 2025-05-30, after the data's end: not in the quarter so far
    assert q.loc["2025Q2", "won_deals"] == 0
    assert facts.so_far(src, Q1) == (Q1.start, Q1.end)


def test_fact_covered_needs_the_column_to_hold_values(tmp_path):
    folder = tmp_path / "tiny"
    shutil.copytree(TINY, folder)
    p = folder / "leads.csv"
    rows = p.read_text().splitlines()
    p.write_text("\n".join([rows[0], *[",".join([*r.split(",")[:-1], ""]) for r in rows[1:]]]) + "\n")
    src = DataSource.open(folder)
    assert facts.fact_covered(src, "mqls", Q1) and not facts.fact_covered(src, "sqls", Q1)
    assert math.isnan(facts.quarterly_facts(src, Q1, Q1).loc["2025Q1", "sqls"])


# --- new business and the rest: `opportunities.type` ------------------------------------------------

#: the tiny deals with a `type` column (blank and "new" are new business), plus a renewal of an account
#: the data never saw won (A9) and an expansion of A3 that came with a lead (L2)
TYPED_OPPORTUNITIES = """opportunity_id,lead_id,account_id,created_at,closed_at,stage,amount,type
O1,L1,A1,2025-02-05 10:00:00,2025-03-20 10:00:00,won,10000,
O2,,A2,2025-02-10 10:00:00,2025-03-25 10:00:00,won,5000,new
O3,L2,A3,2025-03-01 10:00:00,2025-04-15 10:00:00,lost,8000,New
O4,L4,A1,2025-04-25 10:00:00,2025-05-30 10:00:00,won,4000,
O5,L4,A4,2025-05-01 10:00:00,,open,6000,
O6,,A9,2025-01-10 10:00:00,2025-03-28 10:00:00,won,7000,renewal
O7,L2,A3,2025-02-15 10:00:00,2025-03-10 10:00:00,won,3000, Expansion
"""

# 2025Q1 by hand; without the type, the renewal and the expansion would count as new business
TYPED_Q1 = {
    "opportunities": 3,  # O1, O2, O3 (O6 and O7 are not new business)
    "lead_opportunities": 2,  # O1, O3 (not the expansion O7, though it has a lead)
    "won_deals": 2,  # O1, O2 (not the renewal O6 nor the expansion O7)
    "won_revenue": 25_000.0,  # bookings count every type: 10,000 + 5,000 + 7,000 + 3,000
    "lead_won_deals": 1,  # O1 (O7 has a lead but is an expansion)
    "lead_revenue": 10_000.0,  # O1 only: attribution counts new business
    "new_customers": 2,  # A1, A2; A9 only renewed and A3 only expanded in Q1
}


@pytest.fixture(scope="module")
def typed(tmp_path_factory) -> DataSource:
    folder = tmp_path_factory.mktemp("typed")
    shutil.copytree(TINY, folder, dirs_exist_ok=True)
    (folder / "opportunities.csv").write_text(TYPED_OPPORTUNITIES)
    return DataSource.open(folder)


@pytest.mark.parametrize(("fact", "expected"), TYPED_Q1.items(), ids=list(TYPED_Q1))
def test_type_scopes_the_facts(typed, fact, expected):
    assert facts.quarterly_facts(typed, Q1, Q1).loc["2025Q1", fact] == pytest.approx(expected)


def test_type_scopes_channel_facts_and_the_cohort_funnel(typed):
    ch = facts.channel_facts(typed, Q1)
    assert ch.loc["Paid Search", "won_deals"] == 0  # O7 (from L2, Paid Search) is an expansion
    assert ch.loc["Paid Search", "lead_revenue"] == 0
    assert ch.loc["(sales-sourced)", "won_deals"] == 1  # O2; the renewal O6 is not new business
    f = facts.cohort_funnel(typed, Q1.start, Q1.end, by="channel")
    assert (f.loc["Paid Search", "opportunities"], f.loc["Paid Search", "won"]) == (1, 0)


def test_customer_revenue_counts_every_type(typed):
    # 10,000 (A1) + 5,000 (A2) + 7,000 (A9, renewal) + 3,000 (A3, expansion)
    assert facts.customer_revenue(typed, Q1.start, Q1.end) == (25_000.0, 3 + 1)


def test_without_a_type_column_every_deal_is_new_business(quarters):
    assert quarters.loc["2025Q1", "won_deals"] == 2 and quarters.loc["2025Q1", "new_customers"] == 2
