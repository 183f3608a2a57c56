"""Notebook 05's sentences, checked by hand on a tiny fitted-model result."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from kpi_helpers import incrementality_views as V
from kpi_helpers.mmm import IncrementalityResult


def _result() -> IncrementalityResult:
    weeks = pd.date_range("2026-01-05", periods=14, freq="W-MON")
    contributions = pd.DataFrame({"Email": [2.0] * 14, "Events": [1.0] * 14}, index=weeks)
    channels = pd.DataFrame(
        {"value_per_unit": [100.0, 300.0], "activity_cost": [1_000.0, 2_000.0]},
        index=pd.Index(["Email", "Events"], name="channel"),
    )
    curves = pd.DataFrame(
        {"channel": ["Email"] * 3, "weekly_cost": [0.0, 100.0, 200.0], "incremental": [0.0, 4.0, 6.0]}
    )
    marginal = pd.DataFrame({"current_weekly_cost": [100.0]}, index=pd.Index(["Email"], name="channel"))
    empty = pd.DataFrame()
    return IncrementalityResult(
        target="leads", target_unit="leads", start=dt.date(2026, 1, 5), end=dt.date(2026, 4, 12), weeks=14,
        holdout_weeks=2, settings={}, attribution_model="linear", calibrated=False, channels=channels,
        diagnostics={}, weekly=empty, contributions=contributions, response_curves=curves, marginal=marginal,
        experiments=empty, roi_basis="",
    )  # fmt: skip


def test_what_the_last_quarter_caused_by_hand() -> None:
    # the last 13 weeks: Email 13 x 2 = 26 leads, Events 13 x 1 = 13; revenue 26 x 100 + 13 x 300 = 6,500
    assert V.caused_last_quarter(_result()) == (39.0, 6_500.0)


def test_marginal_roi_read_off_the_curve_by_hand() -> None:
    # at 100 a week the curve rises from 4.0 by (6 - 4) / 100 a unit: 0.02 leads x 100 = 2.00 of revenue
    text = V.marginal_at(_result(), "Email", 1.0, currency="USD")
    assert "4.0 incremental leads a week" in text and "returns 2.00 in revenue" in text
    assert "No response curve" in V.marginal_at(_result(), "Referral", 1.0, currency="USD")


@pytest.mark.parametrize("level", [0.5, 2.0])
def test_marginal_at_another_weekly_cost(level: float) -> None:
    text = V.marginal_at(_result(), "Email", level, currency="USD")
    expected = {0.5: "2.0 incremental leads", 2.0: "6.0 incremental leads"}[level]
    assert expected in text
