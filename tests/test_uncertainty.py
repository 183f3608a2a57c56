"""Intervals: hand-worked values, refusals, and nominal coverage on simulated data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kpi_helpers.exceptions import KpiInputError
from kpi_helpers.uncertainty import (
    amount_per_unit_interval,
    clv_to_cac_interval,
    cost_per_unit_interval,
    count_ratio_interval,
    credit_intervals,
    interval_entries,
    proportion_entries,
    proportion_interval,
    ratio_interval,
    roi_interval,
    value_per_lead_interval,
)


def _wilson(k: float, n: float, level: float) -> tuple[float, float]:
    """The Wilson score interval written out by hand."""
    z = stats.norm.ppf((1 + level) / 2)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


@pytest.mark.parametrize(
    ("k", "n", "level", "expected"),
    [
        # 30 of 100 at 95%: p = 0.3, z = 1.96 -> (0.2189, 0.3958), the textbook example
        (30, 100, 0.95, (0.2189, 0.3958)),
        (30, 100, 0.90, _wilson(30, 100, 0.90)),
        (0, 20, 0.90, _wilson(0, 20, 0.90)),
        (20, 20, 0.90, _wilson(20, 20, 0.90)),
    ],
    ids=["30-of-100-95", "30-of-100-90", "none", "all"],
)
def test_wilson_worked_examples(k: int, n: int, level: float, expected: tuple[float, float]) -> None:
    low, high = proportion_interval(k, n, level=level)
    assert low == pytest.approx(expected[0], abs=5e-5)
    assert high == pytest.approx(expected[1], abs=5e-5)


def test_jeffreys_is_the_beta_posterior() -> None:
    low, high = proportion_interval(30, 100, level=0.9, method="jeffreys")
    assert (low, high) == pytest.approx(stats.beta.ppf([0.05, 0.95], 30.5, 70.5), abs=1e-9)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((5, 3), {}, "successes must be between 0 and trials"),
        ((-1, 3), {}, "successes must be between 0 and trials"),
        ((1, 3), {"level": 90}, "`level` must be a fraction"),
        ((1, 3), {"method": "wald"}, "`method` must be"),
    ],
    ids=["more-than-trials", "negative", "level-in-percent", "unknown-method"],
)
def test_bad_proportions_are_refused(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(KpiInputError, match=match):
        proportion_interval(*args, **kwargs)


@pytest.mark.parametrize(
    "call",
    [
        lambda: proportion_interval(0, 0),
        lambda: ratio_interval([1, 2], [0, 0]),
        lambda: cost_per_unit_interval(100.0, 0),
        lambda: roi_interval([1.0], 0.0),
        lambda: value_per_lead_interval([], 0),
    ],
    ids=["proportion", "ratio", "cost-per-lead", "roi", "value-per-lead"],
)
def test_a_zero_denominator_has_no_interval(call) -> None:
    assert all(math.isnan(x) for x in call())


def test_entries_for_metrics_json() -> None:
    assert interval_entries("cac", (1.0, 2.0)) == {"cac_low": 1.0, "cac_high": 2.0}
    assert interval_entries("cac", None) == {"cac_low": None, "cac_high": None}
    out = proportion_entries({"lead_to_mql_rate": (30, 100)})
    assert out["lead_to_mql_rate_low"] == pytest.approx(_wilson(30, 100, 0.9)[0])


def test_credit_intervals_per_channel() -> None:
    credit = pd.DataFrame({"Email": [1.0, 0.0, 0.5], "Search": [0.0, 1.0, 0.5]})
    out = credit_intervals(credit, counts=[100, 50, 10])
    assert out["credit"].tolist() == [105.0, 55.0]
    assert (out["low"] < out["credit"]).all() and (out["high"] > out["credit"]).all()
    assert out.index.tolist() == ["Email", "Search"]


def test_same_seed_same_interval() -> None:
    assert ratio_interval([3, 4, 5], [100, 90, 120], seed=7) == ratio_interval([3, 4, 5], [100, 90, 120], seed=7)


REPS = 200


def _share(hits: list[bool]) -> float:
    return float(np.mean(hits))


def test_wilson_holds_the_truth_at_its_rate() -> None:
    rng = np.random.default_rng(0)
    k = rng.binomial(300, 0.3, REPS)
    hits = [lo <= 0.3 <= hi for lo, hi in (proportion_interval(x, 300) for x in k)]
    assert 0.85 <= _share(hits) <= 0.95


def test_ratio_interval_holds_the_truth_at_its_rate() -> None:
    """Visit-to-lead over 90 days (units: days), the true rate 2.5%."""
    rng = np.random.default_rng(1)
    hits = []
    for rep in range(REPS):
        visits = rng.poisson(rng.gamma(20, 20, 90))
        leads = rng.binomial(visits, 0.025)
        lo, hi = ratio_interval(leads, visits, draws=500, seed=rep)
        hits.append(lo <= 0.025 <= hi)
    assert 0.85 <= _share(hits) <= 0.95


def test_cost_per_lead_interval_holds_the_truth_at_its_rate() -> None:
    """Cost 50,000; leads Poisson with mean 200: the true cost per lead is 250."""
    rng = np.random.default_rng(2)
    hits = []
    for rep, n in enumerate(rng.poisson(200, REPS)):
        lo, hi = cost_per_unit_interval(50_000.0, n, draws=2000, seed=rep)
        hits.append(lo <= 250 <= hi)
    assert 0.85 <= _share(hits) <= 0.95


def test_value_per_lead_interval_holds_the_truth_at_its_rate() -> None:
    """1,000 leads, each converting with probability 5% to a deal of lognormal size: the true value
    per lead is 0.05 x the mean deal size."""
    rng = np.random.default_rng(3)
    mean_deal = math.exp(10 + 0.5**2 / 2)
    hits = []
    for rep in range(REPS):
        k = rng.binomial(1000, 0.05)
        deals = rng.lognormal(10, 0.5, k)
        lo, hi = value_per_lead_interval(deals, 1000, draws=1000, seed=rep)
        hits.append(lo <= 0.05 * mean_deal <= hi)
    assert 0.85 <= _share(hits) <= 0.95


def test_roi_interval_holds_the_truth_at_its_rate() -> None:
    """Deals Poisson(60) of lognormal size, cost fixed: the true ROI is E[revenue] / cost - 1."""
    rng = np.random.default_rng(4)
    cost = 400_000.0
    truth = 60 * math.exp(9 + 0.8**2 / 2) / cost - 1
    hits = []
    for rep in range(REPS):
        deals = rng.lognormal(9, 0.8, rng.poisson(60))
        lo, hi = roi_interval(deals, cost, draws=1000, seed=rep)
        hits.append(lo <= truth <= hi)
    assert 0.85 <= _share(hits) <= 0.95


# -- the intervals the report adds -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        # 400 deals of 1 over 10,000 leads: 4.0%; relative SE sqrt(1/400 + 1/10000) = 5.10%, so by hand
        # 0.04 x (1 -+ 1.645 x 0.0510) = (0.03665, 0.04335); the bootstrap agrees to the third digit
        (lambda: count_ratio_interval(400, 10_000), (0.03665, 0.04335)),
        (lambda: amount_per_unit_interval(np.ones(400), 10_000), (0.03665, 0.04335)),
        # value per lead: 400 deals of 2,500 over 10,000 leads = 100 a lead, the same relative SE
        (lambda: amount_per_unit_interval(np.full(400, 2_500.0), 10_000), (91.6, 108.4)),
    ],
    ids=["count-ratio", "amount-of-ones", "value-per-lead"],
)
def test_ratio_intervals_match_the_delta_method_by_hand(call, expected) -> None:
    low, high = call()
    assert low == pytest.approx(expected[0], rel=0.02)
    assert high == pytest.approx(expected[1], rel=0.02)


def test_clv_intervals_by_hand() -> None:
    """Every customer worth 10,000 a year: no spread in CLV (30,000 with factor 3); CLV:CAC spreads only
    through the 40 new customers behind CAC (cost 100,000, so CAC 2,500 and CLV:CAC 12): relative SE
    1/sqrt(40) = 15.8%, by hand 12 x (1 -+ 1.645 x 0.158) = (8.9, 15.1)."""
    out = clv_to_cac_interval(np.full(200, 10_000.0), factor=3.0, cost=100_000.0, new_customers=40)
    assert out["average_yearly_revenue_per_customer"] == (10_000.0, 10_000.0)
    assert out["clv"] == (30_000.0, 30_000.0)
    low, high = out["clv_to_cac"]
    assert low == pytest.approx(8.9, rel=0.05) and high == pytest.approx(15.1, rel=0.05)
    assert all(math.isnan(x) for x in clv_to_cac_interval([], factor=3.0, cost=1.0, new_customers=1)["clv"])
    assert all(math.isnan(x) for x in clv_to_cac_interval([1.0], factor=3.0, cost=0.0, new_customers=1)["clv_to_cac"])


def test_row_order_does_not_change_an_interval() -> None:
    """Engines return rows in any order: the inputs are sorted before the seeded draws."""
    deals = np.random.default_rng(0).lognormal(9, 1, 50)
    assert roi_interval(deals, 1e5) == roi_interval(deals[::-1], 1e5)
    assert amount_per_unit_interval(deals, 900) == amount_per_unit_interval(deals[::-1], 900)


@pytest.mark.parametrize(
    "call",
    [lambda: count_ratio_interval(-1, 3), lambda: amount_per_unit_interval([1.0], -2)],
    ids=["negative-count", "negative-units"],
)
def test_negative_counts_are_refused(call) -> None:
    with pytest.raises(KpiInputError, match=">= 0"):
        call()


def test_count_ratio_interval_holds_the_truth_at_its_rate() -> None:
    """Won deals Poisson(45) over leads Poisson(1,100) counted apart: the true rate is 45 / 1,100."""
    rng = np.random.default_rng(5)
    hits = []
    for rep in range(REPS):
        lo, hi = count_ratio_interval(rng.poisson(45), rng.poisson(1100), draws=2000, seed=rep)
        hits.append(lo <= 45 / 1100 <= hi)
    assert 0.85 <= _share(hits) <= 0.95


def test_amount_per_unit_interval_holds_the_truth_at_its_rate() -> None:
    """Value per lead with deals and leads counted apart: deals Poisson(50) of lognormal size, leads
    Poisson(1,500); the truth is 50 x the mean deal / 1,500."""
    rng = np.random.default_rng(6)
    truth = 50 * math.exp(10 + 0.7**2 / 2) / 1500
    hits = []
    for rep in range(REPS):
        deals = rng.lognormal(10, 0.7, rng.poisson(50))
        lo, hi = amount_per_unit_interval(deals, rng.poisson(1500), draws=1000, seed=rep)
        hits.append(lo <= truth <= hi)
    assert 0.85 <= _share(hits) <= 0.95


def test_clv_to_cac_interval_holds_the_truth_at_its_rate() -> None:
    """300 customers of lognormal yearly revenue, factor 3; new customers Poisson(40) for a cost of
    200,000: the truth is 3 x the mean revenue / (200,000 / 40)."""
    rng = np.random.default_rng(7)
    truth = 3 * math.exp(9 + 0.9**2 / 2) / (200_000 / 40)
    hits = []
    for rep in range(REPS):
        revenue = rng.lognormal(9, 0.9, 300)
        out = clv_to_cac_interval(
            revenue, factor=3.0, cost=200_000.0, new_customers=rng.poisson(40), draws=500, seed=rep
        )
        hits.append(out["clv_to_cac"][0] <= truth <= out["clv_to_cac"][1])
    assert 0.85 <= _share(hits) <= 0.95


@pytest.mark.slow
def test_credit_intervals_hold_the_truth_at_their_rate() -> None:
    """Journeys Poisson(300), each of a lognormal value split equally over one to three touches, each
    touch on one of four channels drawn with probabilities p: a journey gives channel c on average
    the mean value x p_c (value and touches are independent), so the truth is 300 x mean x p_c.
    (With 150 journeys the percentile bootstrap of these skewed sums covers 84-93% per channel.)"""
    rng = np.random.default_rng(8)
    p = np.array([0.4, 0.3, 0.2, 0.1])
    truth = 300 * math.exp(9 + 0.8**2 / 2) * p

    def journeys(n: int) -> pd.DataFrame:
        sizes = rng.integers(1, 4, n)
        picks = rng.choice(4, size=(n, 3), p=p)
        used = np.arange(3)[None, :] < sizes[:, None]
        credit = np.zeros((n, 4))
        rows = np.repeat(np.arange(n)[:, None], 3, axis=1)
        share = np.where(used, (rng.lognormal(9, 0.8, n) / sizes)[:, None], 0.0)
        np.add.at(credit, (rows.ravel(), picks.ravel()), share.ravel())
        return pd.DataFrame(credit, columns=["Email", "Paid", "Social", "Search"])

    hits = []
    for rep in range(REPS):
        out = credit_intervals(journeys(rng.poisson(300)), draws=1000, seed=rep)
        hits.append(((out["low"] <= truth) & (truth <= out["high"])).to_numpy())
    share = np.mean(hits, axis=0)
    assert ((share >= 0.85) & (share <= 0.95)).all(), share


@pytest.mark.parametrize("level", [0.8, 0.9, 0.95])
def test_wilson_written_out_equals_statsmodels(level: float) -> None:
    from statsmodels.stats.proportion import proportion_confint

    for k, n in [(0, 7), (1, 7), (30, 100), (99, 100), (100, 100), (4_123, 250_000)]:
        expected = proportion_confint(k, n, alpha=1 - level, method="wilson")
        assert proportion_interval(k, n, level=level) == pytest.approx(expected, abs=1e-12)
