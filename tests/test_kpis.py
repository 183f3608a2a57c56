"""Tests for kpi_helpers.kpis: hand-computed tables, zero denominators, errors and properties."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpi_helpers import kpis
from kpi_helpers.exceptions import KpiError
from kpi_helpers.kpis import KpiInputError, Undefined, safe_divide

# --------------------------------------------------------------------------------------------------
# Undefined


def test_undefined_is_a_nan_float_with_reason() -> None:
    u = Undefined("no leads in the period")
    assert isinstance(u, float)
    assert math.isnan(u)
    assert u.reason == "no leads in the period"
    assert repr(u) == "nan (no leads in the period)"
    assert u != u  # NaN semantics


@pytest.mark.parametrize(
    "expr",
    [lambda u: 1 - u, lambda u: u + 1, lambda u: u * 2, lambda u: 2 / u, lambda u: -u, lambda u: abs(u)],
    ids=["rsub", "add", "mul", "rtruediv", "neg", "abs"],
)
def test_undefined_arithmetic_keeps_reason(expr) -> None:
    out = expr(Undefined("why"))
    assert isinstance(out, Undefined)
    assert out.reason == "why"


def test_undefined_non_nan_result_and_copies() -> None:
    u = Undefined("why")
    assert u**0 == 1.0  # float semantics: nan ** 0 is 1
    for clone in (pickle.loads(pickle.dumps(u)), copy.deepcopy(u)):
        assert isinstance(clone, Undefined)
        assert clone.reason == "why"
    with pytest.raises(TypeError):
        u + "text"


# --------------------------------------------------------------------------------------------------
# safe_divide


@pytest.mark.parametrize(
    ("num", "den", "expected"),
    [
        (1_000, 10, 100.0),
        (0, 5, 0.0),
        (1, 4, 0.25),
        (-3, 2, -1.5),
        (np.int64(4), np.int64(2), 2.0),
        (7.5, 2.5, 3.0),
    ],
    ids=["1000/10", "zero-numerator", "quarter", "negative", "numpy-scalars", "floats"],
)
def test_safe_divide_scalars(num, den, expected) -> None:
    result = safe_divide(num, den)
    assert type(result) is float
    assert result == pytest.approx(expected)


@pytest.mark.parametrize(
    ("num", "den", "reason", "expected_reason"),
    [
        (1, 0, "no leads in the period", "no leads in the period"),
        (0, 0, "no leads in the period", "no leads in the period"),
        (1, 0.0, None, "denominator is zero"),
        (1, None, None, "denominator is missing"),
        (1, math.nan, "no leads", "no leads"),
        (1, pd.NA, None, "denominator is missing"),
        (1, Undefined("no new customers"), "CAC is zero", "no new customers"),
        (None, 2, None, "numerator is missing"),
        (Undefined("cost missing"), 2, None, "cost missing"),
        (math.inf, 2, None, "result is not finite"),
        (1e308, 1e-10, None, "result is not finite"),
    ],
    ids=[
        "zero",
        "zero-over-zero",
        "zero-default-reason",
        "none",
        "nan",
        "pd-na",
        "undefined-denominator-passes-reason",
        "missing-numerator",
        "undefined-numerator-passes-reason",
        "infinite-numerator",
        "overflow",
    ],
)
def test_safe_divide_scalar_undefined(num, den, reason, expected_reason) -> None:
    result = safe_divide(num, den, reason=reason)
    assert isinstance(result, Undefined)
    assert math.isnan(result)
    assert result.reason == expected_reason


def test_safe_divide_series_zero_denominator() -> None:
    result = safe_divide(pd.Series([100, 50, 0]), pd.Series([10, 0, 0]), reason="no leads")
    assert result.dtype == "float64"
    assert result.tolist()[0] == 10.0
    assert result.iloc[1:].isna().all()
    assert not np.isinf(result).any()
    assert result.attrs["nan_reason"] == "no leads"


def test_safe_divide_series_collects_every_reason() -> None:
    num = pd.Series([1, None, 3, 4], dtype="Int64")
    den = pd.Series([0, 2, None, 1], dtype="Int64")
    result = safe_divide(num, den, reason="no sessions")
    assert result.isna().tolist() == [True, True, True, False]
    assert result.attrs["nan_reason"] == "no sessions; numerator is missing"


def test_safe_divide_series_aligns_and_has_no_reason_without_nan() -> None:
    a = pd.Series([10.0, 20.0], index=["x", "y"], name="v")
    b = pd.Series([4.0, 5.0], index=["y", "x"], name="v")
    result = safe_divide(a, b)
    assert result.to_dict() == {"x": 2.0, "y": 5.0}
    assert result.name == "v"
    assert "nan_reason" not in result.attrs


@pytest.mark.parametrize(
    ("num", "den", "expected"),
    [
        (pd.Series([10.0, 20.0]), 10, [1.0, 2.0]),
        (100, pd.Series([10, 0]), [10.0, math.nan]),
        (pd.Series([1.0, 2.0]), np.array([2.0, 0.0]), [0.5, math.nan]),
    ],
    ids=["series-by-scalar", "scalar-by-series", "series-by-array"],
)
def test_safe_divide_mixed_series(num, den, expected) -> None:
    result = safe_divide(num, den)
    assert isinstance(result, pd.Series)
    np.testing.assert_array_equal(result.to_numpy(), np.array(expected))


def test_safe_divide_arrays() -> None:
    result = safe_divide(np.array([1.0, 2.0, 0.0]), np.array([0, 2, 0]))
    assert isinstance(result, np.ndarray)
    np.testing.assert_array_equal(result, [math.nan, 1.0, math.nan])
    np.testing.assert_array_equal(safe_divide([1, 2], 0), [math.nan, math.nan])


# --------------------------------------------------------------------------------------------------
# KPI formulas: hand-computed values (the worked examples first)

KPI_CASES = [
    (kpis.visit_to_lead_rate, (1_000, 100), {}, 0.10, "visit-to-lead-1000-visits-100-leads"),
    (kpis.cost_per_lead, (1_000, 10), {}, 100.0, "cpl-1000-dollars-10-leads"),
    (kpis.customer_acquisition_cost, (300_000, 200_000, 5_000), {}, 100.0, "cac-500k-total-5000-customers"),
    (kpis.customer_acquisition_cost, (500_000, 0, 1_000), {}, 500.0, "cac-500k-total-1000-customers"),
    (kpis.visits_per_lead, (1_000, 100), {}, 10.0, "visits-per-lead"),
    (kpis.visits_per_lead, (1_000, 80), {}, 12.5, "visits-per-lead-fractional"),
    (kpis.value_per_lead, (50_000, 100), {}, 500.0, "value-per-lead"),
    (kpis.value_per_visit, (50_000, 1_000), {}, 50.0, "value-per-visit"),
    (kpis.lead_to_customer_rate, (5, 100), {}, 0.05, "lead-to-customer"),
    (kpis.conversion_rate, (30, 120), {}, 0.25, "conversion-rate"),
    (kpis.bounce_rate, (600, 1_000), {}, 0.40, "bounce-rate"),
    (kpis.bounce_rate, (1_000, 1_000), {}, 0.0, "bounce-rate-all-engaged"),
    (kpis.avg_session_duration, (90_000, 1_000), {}, 90.0, "avg-session-seconds"),
    (kpis.new_user_share, (300, 1_200), {}, 0.25, "new-user-share"),
    (kpis.returning_users, (1_200, 300), {}, 900, "returning-users"),
    (kpis.goal_conversion_rate, (25, 1_000), {}, 0.025, "goal-conversion"),
    (kpis.email_open_rate, (220, 1_000), {}, 0.22, "email-open-rate"),
    (kpis.average_yearly_revenue_per_customer, (3_000_000, 1_000, 2), {}, 1_500.0, "yearly-revenue-per-cust"),
    (kpis.customer_lifetime_value, (1_500,), {"gross_margin": 0.6, "lifetime_years": 5}, 4_500.0, "clv"),
    (
        kpis.customer_lifetime_value,
        (1_000,),
        {"gross_margin": 0.7, "lifetime_years": 1 / 0.25},
        2_800.0,
        "clv-churn",
    ),
    (kpis.clv_to_cac, (4_500, 1_500), {}, 3.0, "clv-to-cac"),
    (kpis.marketing_roi, (250_000, 100_000), {}, 1.5, "roi-positive"),
    (kpis.marketing_roi, (80_000, 100_000), {}, -0.2, "roi-loss"),
    (kpis.growth, (12_500_000, 10_000_000), {}, 0.25, "growth-up"),
    (kpis.growth, (90, 100), {}, -0.10, "growth-down"),
    (kpis.run_rate_projection, (300_000,), {"days_elapsed": 30, "days_in_period": 90}, 900_000.0, "run-rate"),
    (kpis.progress, (90, 100), {}, 0.9, "progress-from-zero"),
    (kpis.progress, (105, 110), {"baseline": 100}, 0.5, "progress-from-baseline"),
    (kpis.progress, (550, 500), {"baseline": 600}, 0.5, "progress-lower-is-better"),
]


@pytest.mark.parametrize(
    ("func", "args", "kwargs", "expected"), [c[:4] for c in KPI_CASES], ids=[c[4] for c in KPI_CASES]
)
def test_kpi_values(func, args, kwargs, expected) -> None:
    assert func(*args, **kwargs) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("func", "args", "kwargs", "expected"), [c[:4] for c in KPI_CASES], ids=[c[4] for c in KPI_CASES]
)
def test_kpi_values_on_series(func, args, kwargs, expected) -> None:
    """Every KPI gives the same value element-wise when its first input is a Series."""
    series_args = (pd.Series([args[0], args[0]], index=["a", "b"]), *args[1:])
    result = func(*series_args, **kwargs)
    assert isinstance(result, pd.Series)
    assert result.tolist() == pytest.approx([expected, expected])


# Every ratio KPI with a zero (or zero-derived) denominator: (function, args, kwargs, reason).
ZERO_CASES = [
    (kpis.visits_per_lead, (1_000, 0), {}, "no leads in the period"),
    (kpis.value_per_lead, (50_000, 0), {}, "no leads in the period"),
    (kpis.value_per_visit, (50_000, 0), {}, "no visits in the period"),
    (kpis.visit_to_lead_rate, (0, 100), {}, "no visits in the period"),
    (kpis.lead_to_customer_rate, (5, 0), {}, "no leads in the period"),
    (kpis.conversion_rate, (3, 0), {}, "conversion base is zero"),
    (kpis.bounce_rate, (0, 0), {}, "no sessions in the period"),
    (kpis.avg_session_duration, (0, 0), {}, "no sessions in the period"),
    (kpis.new_user_share, (0, 0), {}, "no users in the period"),
    (kpis.goal_conversion_rate, (4, 0), {}, "no sessions in the period"),
    (kpis.email_open_rate, (0, 0), {}, "no emails sent"),
    (kpis.cost_per_lead, (1_000, 0), {}, "no leads in the period"),
    (kpis.customer_acquisition_cost, (300_000, 200_000, 0), {}, "no new customers"),
    (kpis.average_yearly_revenue_per_customer, (1_000, 0, 2), {}, "no customers or zero-length period"),
    (kpis.average_yearly_revenue_per_customer, (1_000, 5, 0), {}, "no customers or zero-length period"),
    (kpis.clv_to_cac, (4_500, 0), {}, "customer acquisition cost is zero"),
    (kpis.marketing_roi, (250_000, 0), {}, "no marketing cost"),
    (kpis.growth, (100, 0), {}, "previous value is zero"),
    (
        kpis.run_rate_projection,
        (300_000,),
        {"days_elapsed": 0, "days_in_period": 90},
        "no days elapsed in the period",
    ),
    (kpis.progress, (5, 100), {"baseline": 100}, "target equals baseline"),
]
ZERO_IDS = [f"{c[0].__name__}-{i}" for i, c in enumerate(ZERO_CASES)]


@pytest.mark.parametrize(("func", "args", "kwargs", "reason"), ZERO_CASES, ids=ZERO_IDS)
def test_zero_denominator_scalar(func, args, kwargs, reason) -> None:
    result = func(*args, **kwargs)
    assert isinstance(result, Undefined)
    assert math.isnan(result)
    assert result.reason == reason


@pytest.mark.parametrize(("func", "args", "kwargs", "reason"), ZERO_CASES, ids=ZERO_IDS)
def test_zero_denominator_series(func, args, kwargs, reason) -> None:
    """As a Series the zero row is NaN (never inf), the other row is a number, and attrs say why."""
    # Second row: distinct non-zero values, so its result is a finite number.
    series_args = tuple(pd.Series([a, 2 + i]) for i, a in enumerate(args))
    series_kwargs = {k: pd.Series([v, 10 + i]) for i, (k, v) in enumerate(kwargs.items())}
    result = func(*series_args, **series_kwargs)
    assert result.dtype == "float64"
    assert math.isnan(result.iloc[0])
    assert math.isfinite(result.iloc[1])
    assert not np.isinf(result).any()
    assert result.attrs["nan_reason"] == reason


# --------------------------------------------------------------------------------------------------
# labels, cost and CLV


@pytest.mark.parametrize(
    ("visits", "leads", "label"),
    [
        (1_000, 100, "10:1"),
        (1_000, 80, "12.5:1"),
        (1_000, 3, "333.3:1"),
        (100_000, 10, "10,000:1"),
        (1_000, 0, "n/a"),
        (1_000, None, "n/a"),
    ],
    ids=["whole", "one-decimal", "rounded", "thousands", "no-leads", "missing"],
)
def test_ratio_label(visits, leads, label) -> None:
    assert kpis.ratio_label(visits, leads) == label


def test_ratio_label_series() -> None:
    labels = kpis.ratio_label(pd.Series([1_000, 1_000]), pd.Series([100, 0]))
    assert labels.tolist() == ["10:1", "n/a"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gross_margin": 60, "lifetime_years": 3}, r"`gross_margin` must be a fraction in \[0, 1\], got 60"),
        ({"gross_margin": -0.1, "lifetime_years": 3}, "`gross_margin`"),
        ({"gross_margin": 0.6, "lifetime_years": -1}, r"`lifetime_years` must be >= 0, got -1"),
    ],
    ids=["margin-percent", "margin-negative", "lifetime-negative"],
)
def test_customer_lifetime_value_errors(kwargs, match) -> None:
    with pytest.raises(KpiInputError, match=match) as info:
        kpis.customer_lifetime_value(1_500, **kwargs)
    assert isinstance(info.value, KpiError)
    assert isinstance(info.value, ValueError)


# --------------------------------------------------------------------------------------------------
# status


@pytest.mark.parametrize(
    ("actual", "target", "kwargs", "status"),
    [
        (100, 100, {}, "on track"),
        (120, 100, {}, "on track"),
        (95, 100, {}, "at risk"),
        (90, 100, {}, "at risk"),
        (89, 100, {}, "off track"),
        (95, 100, {"at_risk": 0.96}, "off track"),
        (500, 500, {"higher_is_better": False}, "on track"),
        (540, 500, {"higher_is_better": False}, "at risk"),
        (560, 500, {"higher_is_better": False}, "off track"),
        (109, 110, {"baseline": 100}, "at risk"),
        (105, 110, {"baseline": 100}, "off track"),
        (510, 500, {"baseline": 600, "higher_is_better": False}, "at risk"),
        (550, 500, {"baseline": 600, "higher_is_better": False}, "off track"),
        (math.nan, 100, {}, "no data"),
        (Undefined("no leads"), 0.1, {}, "no data"),
        (None, 100, {}, "no data"),
        (5, math.nan, {}, "no data"),
    ],
    ids=[
        "reached",
        "exceeded",
        "95pct",
        "exactly-90pct",
        "below-90pct",
        "custom-threshold",
        "lower-reached",
        "lower-within-target-over-0.9",
        "lower-beyond",
        "baseline-90pct-of-way",
        "baseline-half-way",
        "lower-baseline-90pct-of-way",
        "lower-baseline-half-way",
        "nan",
        "undefined",
        "none",
        "no-target",
    ],
)
def test_kpi_status(actual, target, kwargs, status) -> None:
    assert kpis.kpi_status(actual, target, **kwargs) == status


def test_kpi_status_series_aligns() -> None:
    actual = pd.Series({"leads": 2_900, "cac": 700.0, "roi": math.nan})
    target = pd.Series({"leads": 3_000, "cac": 500.0, "roi": 1.0})
    result = kpis.kpi_status(actual, target)
    assert result.to_dict() == {"leads": "at risk", "cac": "on track", "roi": "no data"}


@pytest.mark.parametrize("at_risk", [0, -0.5, 1.5], ids=["zero", "negative", "above-one"])
def test_kpi_status_bad_threshold(at_risk) -> None:
    with pytest.raises(KpiInputError, match=r"`at_risk` must be a fraction in \(0, 1\]"):
        kpis.kpi_status(1, 1, at_risk=at_risk)


# --------------------------------------------------------------------------------------------------
# funnel and velocity


# --------------------------------------------------------------------------------------------------
# properties

counts = st.integers(min_value=0, max_value=10**12)
any_float = st.floats(allow_nan=True, allow_infinity=True)


@given(st.data(), counts)
def test_rates_within_unit_interval(data, denominator) -> None:
    numerator = data.draw(st.integers(min_value=0, max_value=denominator))
    for rate in (
        kpis.conversion_rate(numerator, denominator),
        kpis.visit_to_lead_rate(denominator, numerator),
        kpis.lead_to_customer_rate(numerator, denominator),
        kpis.new_user_share(numerator, denominator),
        kpis.email_open_rate(numerator, denominator),
    ):
        assert math.isnan(rate) if denominator == 0 else 0 <= rate <= 1


@given(st.data(), st.floats(min_value=0, max_value=1e12))
def test_bounce_rate_within_unit_interval(data, sessions) -> None:
    engaged = data.draw(st.floats(min_value=0, max_value=sessions))
    rate = kpis.bounce_rate(engaged, sessions)
    assert math.isnan(rate) if sessions == 0 else 0 <= rate <= 1


@given(any_float, any_float)
def test_safe_divide_never_inf_scalar(num, den) -> None:
    result = safe_divide(num, den)
    assert isinstance(result, float)
    assert not math.isinf(result)
    assert isinstance(result, Undefined) or math.isfinite(result)


@given(st.lists(st.tuples(any_float, any_float), max_size=20))
def test_safe_divide_never_inf_vector(pairs) -> None:
    num = [p[0] for p in pairs]
    den = [p[1] for p in pairs]
    series = safe_divide(pd.Series(num, dtype=float), pd.Series(den, dtype=float))
    array = safe_divide(np.array(num, dtype=float), np.array(den, dtype=float))
    assert not np.isinf(series).any()
    assert not np.isinf(array).any()
    assert series.isna().any() == ("nan_reason" in series.attrs)
