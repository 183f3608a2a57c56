"""Goal setting: next year's revenue target from past growth, its quarterly split, and the funnel it needs.

Pure functions on scalars and pandas objects; zero denominators give NaN with a reason (see
:func:`kpi_helpers.kpis.safe_divide`). Fiscal years are ints named for the year they end in (see
:mod:`kpi_helpers.periods`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .exceptions import GoalError
from .kpis import Undefined, growth, safe_divide

__all__ = [
    "GoalError",
    "RevenueGoal",
    "average_growth",
    "quarterly_targets",
    "revenue_goal",
    "reverse_funnel",
    "seasonality",
    "target_growth",
    "target_revenue",
    "yoy_growth",
]

QUARTERS = pd.Index([1, 2, 3, 4], name="q")


def yoy_growth(revenue_by_fiscal_year: pd.Series) -> pd.Series:
    r"""Year-over-year revenue growth.

    .. math:: g_y = \frac{R_y - R_{y-1}}{R_{y-1}}

    Parameters
    ----------
    revenue_by_fiscal_year : Series
        Revenue in currency, indexed by fiscal year (int).

    Returns
    -------
    Series
        Growth as a fraction per fiscal year, sorted by year, named ``"growth"``. The first year,
        a year whose previous year is absent, and a year after a zero-revenue year are NaN, with
        ``attrs["nan_reason"]``.

    Raises
    ------
    GoalError
        The index has duplicate fiscal years.

    Examples
    --------
    >>> yoy_growth(pd.Series({2023: 8_000_000, 2024: 10_000_000, 2025: 12_500_000}))
    2023     NaN
    2024    0.25
    2025    0.25
    Name: growth, dtype: float64
    """
    revenue = revenue_by_fiscal_year.sort_index()
    if revenue.index.has_duplicates:
        dups = sorted(set(revenue.index[revenue.index.duplicated()]))
        raise GoalError(f"`revenue_by_fiscal_year` has duplicate fiscal years {dups}; expected one row per year")
    previous = pd.Series(revenue.reindex(revenue.index - 1).to_numpy(), index=revenue.index)
    previous.attrs["nan_reason"] = "no revenue for the previous fiscal year"
    result = growth(revenue, previous)
    if result.isna().any():
        result.attrs["nan_reason"] = "no revenue for the previous fiscal year, or it was zero"
    return result.rename("growth")


def average_growth(growth: pd.Series, *, years: int = 3) -> float:
    r"""Mean of the last ``years`` available growth rates.

    .. math:: \bar{g} = \frac{1}{k} \sum_{i=1}^{k} g_{(i)}, \qquad k = \min(\text{years}, \text{available})

    where :math:`g_{(1)}, \dots` are the most recent non-NaN growth rates.

    Parameters
    ----------
    growth : Series
        Growth fractions indexed by fiscal year (as from :func:`yoy_growth`); NaN is skipped.
    years : int, default 3
        Look-back window, >= 1.

    Returns
    -------
    float
        A fraction. With fewer than ``years`` values the mean of those available is used (at least
        one is required); with none the result is :class:`~kpi_helpers.kpis.Undefined`, reason
        ``"no growth history"``.

    Raises
    ------
    GoalError
        ``years`` below 1.

    Examples
    --------
    >>> g = pd.Series({2021: 0.50, 2022: 0.10, 2023: 0.20, 2024: 0.30})
    >>> round(average_growth(g), 4)
    0.2
    >>> average_growth(pd.Series([float("nan")]))
    nan (no growth history)
    """
    if not (isinstance(years, int | np.integer) and years >= 1):
        raise GoalError(f"`years` must be an integer >= 1, got {years!r}")
    recent = growth.sort_index().dropna().tail(years)
    if recent.empty:
        return Undefined("no growth history")
    return float(recent.mean())


def target_growth(average: float, *, uplift: float = 0.05) -> float:
    r"""Growth target: the historical average plus an ambition uplift.

    .. math:: g^{*} = \bar{g} + u

    Parameters
    ----------
    average : float
        Average historical growth :math:`\bar{g}`, a fraction.
    uplift : float, default 0.05
        Uplift :math:`u` in fraction points (0.05 adds 5 percentage points).

    Returns
    -------
    float
        A fraction. No denominator; an undefined average stays undefined with its reason.

    Examples
    --------
    >>> target_growth(0.20, uplift=0.05)
    0.25
    """
    return average + uplift


def target_revenue(last_year_revenue: float, growth_target: float) -> float:
    r"""Revenue target for the coming fiscal year.

    .. math:: R^{*} = R_{\text{last}} \times g^{*} + R_{\text{last}}

    Parameters
    ----------
    last_year_revenue : float
        :math:`R_{\text{last}}`, revenue of the last completed fiscal year, in currency.
    growth_target : float
        :math:`g^{*}`, target growth as a fraction.

    Returns
    -------
    float
        Currency. No denominator; NaN inputs give NaN.

    Examples
    --------
    >>> target_revenue(10_000_000, 0.25)
    12500000.0
    """
    return last_year_revenue * growth_target + last_year_revenue


def seasonality(revenue_by_quarter: pd.DataFrame) -> pd.Series:
    r"""Average share of annual revenue falling in each fiscal quarter.

    .. math:: s_q = \frac{1}{|Y|} \sum_{y \in Y} \frac{R_{y,q}}{\sum_{q'} R_{y,q'}}

    over the complete fiscal years :math:`Y` (all four quarters present and a positive total).

    Parameters
    ----------
    revenue_by_quarter : DataFrame
        Columns ``fiscal_year`` (int), ``q`` (1-4) and ``revenue`` (currency); several rows for the
        same quarter are summed.

    Returns
    -------
    Series
        Shares (fractions summing to 1) indexed by quarter 1..4, named ``"share"``. With no complete
        fiscal year the split is even, 0.25 each.

    Raises
    ------
    GoalError
        A column is missing.

    Examples
    --------
    >>> rows = [(2024, 1, 100), (2024, 2, 200), (2024, 3, 300), (2024, 4, 400),
    ...         (2025, 1, 200), (2025, 2, 200), (2025, 3, 200), (2025, 4, 400),
    ...         (2026, 1, 999)]
    >>> seasonality(pd.DataFrame(rows, columns=["fiscal_year", "q", "revenue"]))
    q
    1    0.15
    2    0.20
    3    0.25
    4    0.40
    Name: share, dtype: float64
    """
    missing = [c for c in ("fiscal_year", "q", "revenue") if c not in revenue_by_quarter.columns]
    if missing:
        raise GoalError(
            f"`revenue_by_quarter` lacks column(s) {', '.join(f'`{c}`' for c in missing)}; "
            "expected fiscal_year, q, revenue"
        )
    # min_count=1: a quarter whose only value is missing stays missing (not 0) and its year incomplete.
    summed = revenue_by_quarter.groupby(["fiscal_year", "q"])["revenue"].sum(min_count=1)
    table = summed.unstack("q").reindex(columns=QUARTERS)
    complete = table[table.notna().all(axis=1) & (table.sum(axis=1) > 0)]
    if complete.empty:
        return pd.Series(0.25, index=QUARTERS, name="share")
    shares = complete.div(complete.sum(axis=1), axis=0).mean()
    return (shares / shares.sum()).rename("share").rename_axis("q").astype(float)


def quarterly_targets(annual_target: float, shares: pd.Series | Mapping[int, float] | Sequence[float]) -> pd.Series:
    r"""Split an annual target into fiscal quarters.

    .. math:: T_q = T \times \frac{s_q}{\sum_{q'} s_{q'}}, \qquad T_4 = T - (T_1 + T_2 + T_3)

    Parameters
    ----------
    annual_target : float
        :math:`T`, the annual target in currency (or any additive unit).
    shares : Series, Mapping or sequence
        Quarter shares :math:`s_q` indexed by quarter 1..4 (or four values in quarter order), as
        from :func:`seasonality`; normalised to sum to 1.

    Returns
    -------
    Series
        Targets indexed by quarter 1..4 whose float sum is exactly ``annual_target`` (Q4 takes
        the remainder), named ``"target"``. An undefined (NaN) target gives NaN quarters with its
        reason in ``attrs["nan_reason"]``.

    Raises
    ------
    GoalError
        Shares not for quarters 1..4, negative, missing, or summing to zero.

    Examples
    --------
    >>> quarterly_targets(12_500_000, {1: 0.15, 2: 0.20, 3: 0.25, 4: 0.40})
    q
    1    1875000.0
    2    2500000.0
    3    3125000.0
    4    5000000.0
    Name: target, dtype: float64
    """
    if isinstance(shares, pd.Series | Mapping):
        s = pd.Series(shares, dtype=float)
    else:
        values = list(shares)
        s = pd.Series(values, index=range(1, len(values) + 1), dtype=float)
    if sorted(s.index.tolist()) != [1, 2, 3, 4]:
        raise GoalError(f"`shares` must have quarters 1, 2, 3, 4, got {s.index.tolist()}")
    s = s.reindex(QUARTERS)
    if s.isna().any() or (s < 0).any() or s.sum() <= 0:
        raise GoalError(f"`shares` must be non-negative numbers with a positive sum, got {s.tolist()}")
    annual = math.nan if annual_target is None else float(annual_target)
    if not math.isfinite(annual):
        result = pd.Series(math.nan, index=QUARTERS, name="target")
        result.attrs["nan_reason"] = getattr(annual_target, "reason", "annual target is missing or infinite")
        return result
    return pd.Series(_exact_split(annual, (s / s.sum()).tolist()), index=QUARTERS, name="target")


def _exact_split(total: float, weights: list[float]) -> list[float]:
    """``total * weights``, with every sum of the parts (in any order) exactly ``total`` in floats.

    The first parts are rounded to multiples of ``u = 2 ulp(total)`` (a relative change below 1e-15),
    so all partial sums are exact and the last part ``total - head`` absorbs the rest exactly.
    """
    u = 2 * math.ulp(total)
    parts = [round(total * w / u) * u for w in weights[:-1]]
    return [*parts, total - sum(parts)]


_FUNNEL_STEPS = (
    ("won_deals", "avg_deal_size", "average deal size is zero"),
    ("opportunities", "win_rate", "win rate is zero"),
    ("sqls", "sql_to_opportunity_rate", "SQL-to-opportunity rate is zero"),
    ("mqls", "mql_to_sql_rate", "MQL-to-SQL rate is zero"),
    ("leads", "lead_to_mql_rate", "lead-to-MQL rate is zero"),
    ("visits", "visit_to_lead_rate", "visit-to-lead rate is zero"),
)


def reverse_funnel(
    revenue_target: float,
    *,
    lead_revenue_share: float,
    avg_deal_size: float,
    win_rate: float,
    sql_to_opportunity_rate: float,
    mql_to_sql_rate: float,
    lead_to_mql_rate: float,
    visit_to_lead_rate: float,
) -> pd.Series:
    r"""Volumes needed at each funnel stage to reach a revenue target, working backwards.

    .. math::

        R_L = R^{*} \times \text{share}, \quad W = \frac{R_L}{\text{deal size}}, \quad
        O = \frac{W}{\text{win}}, \quad S = \frac{O}{\text{sql}\to\text{opp}}, \quad
        M = \frac{S}{\text{mql}\to\text{sql}}, \quad L = \frac{M}{\text{lead}\to\text{mql}}, \quad
        V = \frac{L}{\text{visit}\to\text{lead}}

    Parameters
    ----------
    revenue_target : float
        :math:`R^{*}`, revenue target in currency.
    lead_revenue_share : float
        Fraction of revenue expected from new leads (the rest from existing customers etc.).
    avg_deal_size : float
        Average won deal, in currency, >= 0.
    win_rate, sql_to_opportunity_rate, mql_to_sql_rate, lead_to_mql_rate, visit_to_lead_rate : float
        Stage conversion rates as fractions in [0, 1].

    Returns
    -------
    Series
        Index ``lead_revenue, won_deals, opportunities, sqls, mqls, leads, visits``: currency for
        the first, counts (not rounded) for the rest. A zero rate or deal size makes that stage and
        all stages above it NaN, with ``attrs["nan_reason"]`` naming the first zero.

    Raises
    ------
    GoalError
        A rate or share outside [0, 1], or a negative deal size.

    Examples
    --------
    Target 1,000,000, 60 % from leads, 20,000 deals, 25 % win, 50 % SQL→opportunity, 40 % MQL→SQL,
    50 % lead→MQL, 2 % visit→lead: 600,000 / 20,000 = 30 won; 30 / 0.25 = 120 opportunities;
    120 / 0.5 = 240 SQLs; 240 / 0.4 = 600 MQLs; 600 / 0.5 = 1,200 leads; 1,200 / 0.02 = 60,000 visits.

    >>> reverse_funnel(1_000_000, lead_revenue_share=0.6, avg_deal_size=20_000, win_rate=0.25,
    ...                sql_to_opportunity_rate=0.5, mql_to_sql_rate=0.4, lead_to_mql_rate=0.5,
    ...                visit_to_lead_rate=0.02)
    lead_revenue     600000.0
    won_deals            30.0
    opportunities       120.0
    sqls                240.0
    mqls                600.0
    leads              1200.0
    visits            60000.0
    Name: required, dtype: float64
    """
    divisors = {
        "avg_deal_size": avg_deal_size,
        "win_rate": win_rate,
        "sql_to_opportunity_rate": sql_to_opportunity_rate,
        "mql_to_sql_rate": mql_to_sql_rate,
        "lead_to_mql_rate": lead_to_mql_rate,
        "visit_to_lead_rate": visit_to_lead_rate,
    }
    fractions = {k: v for k, v in divisors.items() if k != "avg_deal_size"} | {"lead_revenue_share": lead_revenue_share}
    bad = [f"`{k}`={v!r}" for k, v in fractions.items() if not 0 <= v <= 1]
    if not avg_deal_size >= 0:
        bad.append(f"`avg_deal_size`={avg_deal_size!r}")
    if bad:
        raise GoalError(
            f"reverse_funnel: {', '.join(bad)}; rates and shares must be fractions in [0, 1] and the deal size >= 0"
        )
    volumes = {"lead_revenue": revenue_target * lead_revenue_share}
    value = volumes["lead_revenue"]
    for stage, divisor, reason in _FUNNEL_STEPS:
        value = safe_divide(value, divisors[divisor], reason=reason)
        volumes[stage] = value
    result = pd.Series(volumes, dtype=float, name="required")
    if isinstance(value, Undefined):
        result.attrs["nan_reason"] = value.reason
    return result


@dataclass(frozen=True, eq=False)
class RevenueGoal:
    """A revenue target and how it was derived; build it with :func:`revenue_goal`."""

    fiscal_year: int
    last_year_revenue: float
    growth_history: pd.Series
    average_growth: float
    uplift: float
    target_growth: float
    target_revenue: float
    quarterly: pd.Series
    #: how the history fell short of the lookback, in words ("" when it did not)
    note: str = ""

    def formula(self) -> str:
        """The target formula with this goal's numbers, e.g. ``"target = 10,000,000 × 25.0% + ..."``."""
        last = f"{self.last_year_revenue:,.0f}"
        return f"target = {last} × {self.target_growth:.1%} + {last} = {self.target_revenue:,.0f}"


def revenue_goal(
    revenue_by_fiscal_year: pd.Series,
    *,
    fiscal_year: int,
    uplift: float = 0.05,
    lookback_years: int = 3,
    quarter_shares: pd.Series | Mapping[int, float] | Sequence[float] | None = None,
) -> RevenueGoal:
    r"""Revenue goal for ``fiscal_year`` from the growth of the completed years before it.

    .. math::

        g^{*} = \bar{g}_{\text{lookback}} + u, \qquad
        R^{*} = R_{\text{last}} \times g^{*} + R_{\text{last}}

    Parameters
    ----------
    revenue_by_fiscal_year : Series
        Revenue in currency indexed by fiscal year (int). Years from ``fiscal_year`` on (e.g. the
        year in progress) are ignored; earlier years are taken as completed.
    fiscal_year : int
        The fiscal year to set the goal for.
    uplift : float, default 0.05
        Added to the average growth, in fraction points.
    lookback_years : int, default 3
        Growth rates averaged (fewer if fewer are available, see :func:`average_growth`).
    quarter_shares : Series, Mapping or sequence, optional
        Quarter shares for :func:`quarterly_targets`, e.g. from :func:`seasonality`; even split
        by default.

    Returns
    -------
    RevenueGoal

    Raises
    ------
    GoalError
        No completed fiscal year before ``fiscal_year``, the year before it missing, or no growth
        rate computable from two or more years (e.g. every prior year has zero revenue).

    Notes
    -----
    With fewer completed years than the lookback needs, the goal uses the years it has and says so
    in ``note``. With a single completed year there is no growth history: the average growth is
    taken as 0, so the target is last year's revenue x (1 + uplift).

    Examples
    --------
    >>> revenue = pd.Series({2019: 3_200_000, 2020: 6_400_000, 2021: 8_000_000,
    ...                      2022: 8_800_000, 2023: 11_000_000, 2024: 2_000_000})
    >>> goal = revenue_goal(revenue, fiscal_year=2024)
    >>> round(goal.average_growth, 4), round(goal.target_growth, 4)
    (0.2, 0.25)
    >>> goal.formula()
    'target = 11,000,000 × 25.0% + 11,000,000 = 13,750,000'
    >>> goal.quarterly.tolist()
    [3437500.0, 3437500.0, 3437500.0, 3437500.0]

    One completed year: last year x (1 + uplift).

    >>> one = revenue_goal(pd.Series({2025: 1_000_000}), fiscal_year=2026)
    >>> one.target_revenue, one.note
    (1050000.0, 'only FY2025 is complete: no growth history, so the target is last year × (1 + uplift)')
    """
    history = revenue_by_fiscal_year[revenue_by_fiscal_year.index < fiscal_year].sort_index()
    if history.empty:
        raise GoalError(
            f"revenue goal for fiscal year {fiscal_year}: no completed fiscal year of revenue before it; "
            "a target needs at least one complete year of the `revenue` table"
        )
    if fiscal_year - 1 not in history.index:
        raise GoalError(
            f"revenue goal for fiscal year {fiscal_year}: fiscal year {fiscal_year - 1} is not complete in the "
            "revenue history; the target is built on the last completed year"
        )
    growth_history = yoy_growth(history)
    usable = int(growth_history.notna().sum())
    note = ""
    if len(history) == 1:
        avg: float = 0.0
        note = f"only FY{history.index[0]} is complete: no growth history, so the target is last year × (1 + uplift)"
    else:
        avg = average_growth(growth_history, years=lookback_years)
        if isinstance(avg, Undefined):
            raise GoalError(
                f"revenue goal for fiscal year {fiscal_year}: no year-over-year growth computable from "
                f"{history.index.tolist()} ({growth_history.attrs.get('nan_reason', avg.reason)})"
            )
        if usable < lookback_years:
            note = (
                f"the average growth uses {usable} year{'s' if usable != 1 else ''} of growth, "
                f"fewer than the {lookback_years} asked for (`growth_lookback_years`): that is all the history has"
            )
    last = float(history.loc[fiscal_year - 1])
    goal_growth = target_growth(avg, uplift=uplift)
    target = target_revenue(last, goal_growth)
    shares = pd.Series(0.25, index=QUARTERS) if quarter_shares is None else quarter_shares
    return RevenueGoal(
        fiscal_year=fiscal_year,
        last_year_revenue=last,
        growth_history=growth_history,
        average_growth=avg,
        uplift=uplift,
        target_growth=goal_growth,
        target_revenue=target,
        quarterly=quarterly_targets(target, shares),
        note=note,
    )
