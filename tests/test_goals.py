"""Tests for kpi_helpers.goals: growth history, targets, seasonality, reverse funnel, RevenueGoal."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kpi_helpers import goals
from kpi_helpers.exceptions import KpiError
from kpi_helpers.goals import GoalError, RevenueGoal
from kpi_helpers.kpis import Undefined

FUNNEL_EXAMPLE = {
    "lead_revenue_share": 0.6,
    "avg_deal_size": 20_000,
    "win_rate": 0.25,
    "sql_to_opportunity_rate": 0.5,
    "mql_to_sql_rate": 0.4,
    "lead_to_mql_rate": 0.5,
    "visit_to_lead_rate": 0.02,
}
FUNNEL_STAGES = ["lead_revenue", "won_deals", "opportunities", "sqls", "mqls", "leads", "visits"]


# --------------------------------------------------------------------------------------------------
# growth


def test_yoy_growth_worked_example() -> None:
    result = goals.yoy_growth(pd.Series({2025: 12_500_000, 2023: 8_000_000, 2024: 10_000_000}))
    assert result.index.tolist() == [2023, 2024, 2025]
    assert math.isnan(result.loc[2023])
    assert result.loc[2024:].tolist() == pytest.approx([0.25, 0.25])
    assert result.name == "growth"
    assert "nan_reason" in result.attrs


@pytest.mark.parametrize(
    ("revenue", "expected"),
    [
        ({2020: 100.0, 2021: 50.0}, [math.nan, -0.5]),
        ({2020: 100.0, 2022: 150.0, 2023: 300.0}, [math.nan, math.nan, 1.0]),
        ({2020: 0.0, 2021: 50.0, 2022: 75.0}, [math.nan, math.nan, 0.5]),
    ],
    ids=["decline", "gap-year-not-compared", "zero-previous-revenue"],
)
def test_yoy_growth_cases(revenue, expected) -> None:
    result = goals.yoy_growth(pd.Series(revenue))
    np.testing.assert_allclose(result.to_numpy(), expected)
    assert not np.isinf(result).any()
    assert result.attrs["nan_reason"] == "no revenue for the previous fiscal year, or it was zero"


def test_yoy_growth_duplicate_years() -> None:
    with pytest.raises(GoalError, match=r"duplicate fiscal years \[2024\]"):
        goals.yoy_growth(pd.Series([1.0, 2.0, 3.0], index=[2023, 2024, 2024]))


@pytest.mark.parametrize(
    ("growth", "years", "expected"),
    [
        ({2021: 0.5, 2022: 0.1, 2023: 0.2, 2024: 0.3}, 3, 0.2),
        ({2021: 0.5, 2022: 0.1, 2023: 0.2, 2024: 0.3}, 1, 0.3),
        ({2021: 0.5, 2022: 0.1, 2023: 0.2, 2024: 0.3}, 10, 0.275),
        ({2022: 0.1, 2023: math.nan, 2024: 0.3, 2021: 0.5}, 2, 0.2),
        ({2024: 0.3}, 3, 0.3),
    ],
    ids=["last-three", "last-one", "fewer-than-years", "skips-nan-and-sorts", "single-year"],
)
def test_average_growth(growth, years, expected) -> None:
    assert goals.average_growth(pd.Series(growth), years=years) == pytest.approx(expected)


@pytest.mark.parametrize(
    "growth", [pd.Series([math.nan, math.nan]), pd.Series([], dtype=float)], ids=["all-nan", "empty"]
)
def test_average_growth_none_available(growth) -> None:
    result = goals.average_growth(growth)
    assert isinstance(result, Undefined)
    assert result.reason == "no growth history"


@pytest.mark.parametrize("years", [0, -1, 2.5], ids=["zero", "negative", "float"])
def test_average_growth_bad_years(years) -> None:
    with pytest.raises(GoalError, match=r"`years` must be an integer >= 1"):
        goals.average_growth(pd.Series([0.1]), years=years)


@pytest.mark.parametrize(
    ("average", "uplift", "expected"),
    [(0.20, 0.05, 0.25), (0.10, 0.0, 0.10), (-0.05, 0.05, 0.0)],
    ids=["worked-example", "no-uplift", "from-decline"],
)
def test_target_growth(average, uplift, expected) -> None:
    assert goals.target_growth(average, uplift=uplift) == pytest.approx(expected)


def test_target_growth_keeps_undefined() -> None:
    result = goals.target_growth(Undefined("no growth history"))
    assert isinstance(result, Undefined)
    assert result.reason == "no growth history"


@pytest.mark.parametrize(
    ("last", "growth", "expected"),
    [
        (10_000_000, 0.25, 12_500_000),
        (10_000_000, 0.0, 10_000_000),
        (10_000_000, -0.1, 9_000_000),
        (0, 0.5, 0),
    ],
    ids=["worked-example-10m-25pct", "flat", "decline", "zero-base"],
)
def test_target_revenue(last, growth, expected) -> None:
    assert goals.target_revenue(last, growth) == pytest.approx(expected)


@given(
    st.floats(min_value=0, max_value=1e12),
    st.floats(min_value=-1, max_value=10),
    st.floats(min_value=-1, max_value=10),
)
def test_target_revenue_monotone_in_growth(last, g1, g2) -> None:
    low, high = sorted((g1, g2))
    assert goals.target_revenue(last, low) <= goals.target_revenue(last, high)


# --------------------------------------------------------------------------------------------------
# seasonality and quarterly targets


def _quarters(rows):
    return pd.DataFrame(rows, columns=["fiscal_year", "q", "revenue"])


def test_seasonality_averages_complete_years() -> None:
    rows = [(2024, q, r) for q, r in zip(range(1, 5), (100, 200, 300, 400), strict=True)]
    rows += [(2025, q, r) for q, r in zip(range(1, 5), (200, 200, 200, 400), strict=True)]
    rows += [(2026, 1, 999)]  # incomplete year: ignored
    shares = goals.seasonality(_quarters(rows))
    assert shares.index.tolist() == [1, 2, 3, 4]
    assert shares.tolist() == pytest.approx([0.15, 0.20, 0.25, 0.40])
    assert shares.sum() == pytest.approx(1.0)


def test_seasonality_sums_rows_and_skips_zero_years() -> None:
    rows = [(2024, 1, 50), (2024, 1, 50), (2024, 2, 100), (2024, 3, 100), (2024, 4, 200)]
    rows += [(2025, q, 0) for q in range(1, 5)]  # zero total: no shares
    assert goals.seasonality(_quarters(rows)).tolist() == pytest.approx([0.2, 0.2, 0.2, 0.4])


@pytest.mark.parametrize(
    "rows",
    [[(2026, 1, 100), (2026, 2, 100)], [(2025, 1, 100), (2025, 2, 100), (2025, 3, None), (2025, 4, 1)], []],
    ids=["partial-year", "missing-quarter-value", "no-rows"],
)
def test_seasonality_even_split_without_complete_year(rows) -> None:
    assert goals.seasonality(_quarters(rows)).tolist() == [0.25] * 4


def test_seasonality_missing_column() -> None:
    with pytest.raises(GoalError, match=r"lacks column\(s\) `q`, `revenue`"):
        goals.seasonality(pd.DataFrame({"fiscal_year": [2024]}))


@pytest.mark.parametrize(
    ("annual", "shares", "expected"),
    [
        (12_500_000, {1: 0.15, 2: 0.20, 3: 0.25, 4: 0.40}, [1_875_000, 2_500_000, 3_125_000, 5_000_000]),
        (1_000, [1, 1, 1, 1], [250, 250, 250, 250]),
        (1_000, pd.Series({4: 2.0, 3: 1.0, 2: 1.0, 1: 0.0}), [0, 250, 250, 500]),
        (100, [1, 1, 1, 0], [100 / 3, 100 / 3, 100 / 3, 0]),
    ],
    ids=["seasonal", "even-list-unnormalised", "series-any-order", "thirds"],
)
def test_quarterly_targets(annual, shares, expected) -> None:
    result = goals.quarterly_targets(annual, shares)
    assert result.index.tolist() == [1, 2, 3, 4]
    assert result.tolist() == pytest.approx(expected, abs=1e-9)
    assert result.sum() == annual


@pytest.mark.parametrize(
    ("shares", "match"),
    [
        ({1: 0.5, 2: 0.5}, r"`shares` must have quarters 1, 2, 3, 4, got \[1, 2\]"),
        ([0.25] * 5, "`shares` must have quarters 1, 2, 3, 4"),
        ([0.5, 0.5, 0.5, -0.5], "non-negative numbers with a positive sum"),
        ([0, 0, 0, 0], "non-negative numbers with a positive sum"),
        ([0.25, None, 0.25, 0.5], "non-negative numbers with a positive sum"),
    ],
    ids=["two-quarters", "five-values", "negative", "all-zero", "missing"],
)
def test_quarterly_targets_bad_shares(shares, match) -> None:
    with pytest.raises(GoalError, match=match):
        goals.quarterly_targets(1_000, shares)


def test_quarterly_targets_undefined_annual() -> None:
    result = goals.quarterly_targets(Undefined("no growth history"), [1, 1, 1, 1])
    assert result.isna().all()
    assert result.attrs["nan_reason"] == "no growth history"


@given(
    st.floats(min_value=-1e13, max_value=1e13),
    st.lists(st.floats(min_value=0, max_value=1e6), min_size=4, max_size=4),
)
def test_quarterly_targets_sum_to_annual(annual, shares) -> None:
    assume(sum(shares) > 0)
    result = goals.quarterly_targets(annual, shares)
    assert sum(result.tolist()) == annual
    assert result.sum() == annual


# --------------------------------------------------------------------------------------------------
# reverse funnel


def test_reverse_funnel_worked_example() -> None:
    result = goals.reverse_funnel(1_000_000, **FUNNEL_EXAMPLE)
    assert result.index.tolist() == FUNNEL_STAGES
    assert result.tolist() == pytest.approx([600_000, 30, 120, 240, 600, 1_200, 60_000])
    assert "nan_reason" not in result.attrs


@pytest.mark.parametrize(
    ("zero", "first_nan", "reason"),
    [
        ("avg_deal_size", "won_deals", "average deal size is zero"),
        ("win_rate", "opportunities", "win rate is zero"),
        ("sql_to_opportunity_rate", "sqls", "SQL-to-opportunity rate is zero"),
        ("mql_to_sql_rate", "mqls", "MQL-to-SQL rate is zero"),
        ("lead_to_mql_rate", "leads", "lead-to-MQL rate is zero"),
        ("visit_to_lead_rate", "visits", "visit-to-lead rate is zero"),
    ],
    ids=["deal-size", "win", "sql-to-opp", "mql-to-sql", "lead-to-mql", "visit-to-lead"],
)
def test_reverse_funnel_zero_rate(zero, first_nan, reason) -> None:
    result = goals.reverse_funnel(1_000_000, **{**FUNNEL_EXAMPLE, zero: 0})
    cut = FUNNEL_STAGES.index(first_nan)
    assert result.iloc[:cut].notna().all()
    assert result.iloc[cut:].isna().all()
    assert not np.isinf(result).any()
    assert result.attrs["nan_reason"] == reason


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"win_rate": 25}, r"`win_rate`=25"),
        ({"lead_revenue_share": 1.2}, r"`lead_revenue_share`=1.2"),
        ({"visit_to_lead_rate": -0.02}, r"`visit_to_lead_rate`=-0.02"),
        ({"avg_deal_size": -1}, r"`avg_deal_size`=-1"),
        ({"win_rate": 2, "mql_to_sql_rate": 3}, r"`win_rate`=2, `mql_to_sql_rate`=3; rates and shares"),
    ],
    ids=["rate-as-percent", "share-above-one", "negative-rate", "negative-deal", "all-reported"],
)
def test_reverse_funnel_bad_inputs(override, match) -> None:
    with pytest.raises(GoalError, match=match):
        goals.reverse_funnel(1_000_000, **{**FUNNEL_EXAMPLE, **override})


# --------------------------------------------------------------------------------------------------
# RevenueGoal

HISTORY = pd.Series(
    {2019: 3_200_000, 2020: 6_400_000, 2021: 8_000_000, 2022: 8_800_000, 2023: 11_000_000, 2024: 2_000_000}
)


def test_revenue_goal_brief_formula() -> None:
    goal = goals.revenue_goal(pd.Series({2022: 8_000_000, 2023: 10_000_000}), fiscal_year=2024, uplift=0.0)
    assert goal.formula() == "target = 10,000,000 × 25.0% + 10,000,000 = 12,500,000"


def test_revenue_goal_uses_completed_years_and_lookback() -> None:
    goal = goals.revenue_goal(HISTORY, fiscal_year=2024)
    assert isinstance(goal, RevenueGoal)
    assert goal.fiscal_year == 2024
    assert goal.last_year_revenue == 11_000_000
    assert goal.growth_history.index.tolist() == [2019, 2020, 2021, 2022, 2023]  # 2024 is in progress
    assert goal.average_growth == pytest.approx(0.2)  # 0.25, 0.10, 0.25; 2020's +100 % is outside lookback
    assert goal.uplift == 0.05
    assert goal.target_growth == pytest.approx(0.25)
    assert goal.target_revenue == pytest.approx(13_750_000)
    assert goal.quarterly.tolist() == pytest.approx([3_437_500] * 4)
    assert goal.quarterly.sum() == goal.target_revenue
    assert goal.formula() == "target = 11,000,000 × 25.0% + 11,000,000 = 13,750,000"


@pytest.mark.parametrize(
    ("kwargs", "average", "target"),
    [
        ({"lookback_years": 4}, 0.4, 15_950_000),
        ({"lookback_years": 1, "uplift": 0.0}, 0.25, 13_750_000),
        ({"uplift": 0.10}, 0.2, 14_300_000),
    ],
    ids=["lookback-4", "lookback-1-no-uplift", "uplift-10"],
)
def test_revenue_goal_options(kwargs, average, target) -> None:
    goal = goals.revenue_goal(HISTORY, fiscal_year=2024, **kwargs)
    assert goal.average_growth == pytest.approx(average)
    assert goal.target_revenue == pytest.approx(target)


def test_revenue_goal_quarter_shares() -> None:
    goal = goals.revenue_goal(HISTORY, fiscal_year=2024, quarter_shares={1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4})
    assert goal.quarterly.tolist() == pytest.approx([1_375_000, 2_750_000, 4_125_000, 5_500_000])
    assert goal.quarterly.sum() == goal.target_revenue


def test_revenue_goal_from_fewer_years_than_the_lookback() -> None:
    # One complete year: no growth history, the target is last year x (1 + uplift) = 1,000 x 1.05.
    one = goals.revenue_goal(pd.Series({2019: 1_000.0}), fiscal_year=2020, uplift=0.05)
    assert one.target_revenue == pytest.approx(1_050.0)
    assert one.average_growth == 0.0 and "only FY2019 is complete" in one.note
    # Two complete years, lookback 3: one growth rate (1,200 / 1,000 - 1 = 20%) + 5 points = 25%.
    two = goals.revenue_goal(pd.Series({2018: 1_000.0, 2019: 1_200.0}), fiscal_year=2020, uplift=0.05)
    assert two.average_growth == pytest.approx(0.20)
    assert two.target_revenue == pytest.approx(1_200.0 * 1.25)
    assert "uses 1 year of growth, fewer than the 3 asked for" in two.note


@pytest.mark.parametrize(
    ("revenue", "fiscal_year", "match"),
    [
        (HISTORY, 2019, r"fiscal year 2019: no completed fiscal year of revenue before it"),
        (pd.Series({2020: 1.0, 2021: 2.0}), 2025, r"fiscal year 2024 is not complete in the revenue history"),
        (pd.Series({2021: 0.0, 2022: 0.0}), 2023, r"no year-over-year growth computable from \[2021, 2022\]"),
    ],
    ids=["no-year", "previous-year-missing", "all-zero-revenue"],
)
def test_revenue_goal_errors(revenue, fiscal_year, match) -> None:
    with pytest.raises(GoalError, match=match) as info:
        goals.revenue_goal(revenue, fiscal_year=fiscal_year)
    assert isinstance(info.value, KpiError)
    assert isinstance(info.value, ValueError)
