"""Backtest scoring worked by hand, the sample's backtest (through ``kpi backtest``) and the report's
track record. The command's arguments are tested in ``tests/test_cli.py``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kpi_helpers.backtest import TRACK_METRICS, TRACK_UNITS, brier_difference, run_backtest, score, track_record
from kpi_helpers.cli import main as cli_main
from kpi_helpers.exceptions import KpiInputError

KEYS = {"brier", "coverage_p10_p90", "mape_p50", "n_forecasts"}


def _table() -> pd.DataFrame:
    """Two quarters, two forecasts each; target 100.

    Q1 ended at 120 (hit), Q2 at 80 (missed). Kit: p 0.8 and 0.6 in Q1, 0.3 and 0.1 in Q2;
    run rate projects 110, 90 (Q1) and 105, 70 (Q2); weighted pipeline 60, 70, 50, 60.
    """
    return pd.DataFrame(
        {
            "quarter": ["Q1", "Q1", "Q2", "Q2"],
            "target": [100.0] * 4,
            "actual": [120.0, 120.0, 80.0, 80.0],
            "hit": [True, True, False, False],
            "p10": [90.0, 100.0, 70.0, 85.0],
            "p50": [110.0, 115.0, 90.0, 88.0],
            "p90": [130.0, 118.0, 100.0, 95.0],
            "probability": [0.8, 0.6, 0.3, 0.1],
            "run_rate": [110.0, 90.0, 105.0, 70.0],
            "weighted_pipeline": [60.0, 70.0, 50.0, 60.0],
        }
    )


def test_scores_worked_by_hand() -> None:
    out = score(_table(), bootstrap=500)
    assert set(out) == {"kit", "run_rate", "weighted_pipeline", "brier_difference"}
    for name in ("kit", "run_rate", "weighted_pipeline"):
        assert set(out[name]) == KEYS
    # kit: (0.2^2 + 0.4^2 + 0.3^2 + 0.1^2) / 4 = (0.04 + 0.16 + 0.09 + 0.01) / 4 = 0.075
    assert out["kit"]["brier"] == pytest.approx(0.075)
    # inside P10-P90: 120 in [90,130] yes, [100,118] no, 80 in [70,100] yes, [85,95] no -> 50%
    assert out["kit"]["coverage_p10_p90"] == pytest.approx(0.5)
    # |110-120|/120, |115-120|/120, |90-80|/80, |88-80|/80 -> (0.0833 + 0.0417 + 0.125 + 0.1) / 4
    assert out["kit"]["mape_p50"] == pytest.approx((10 / 120 + 5 / 120 + 10 / 80 + 8 / 80) / 4)
    # run rate: p = 1, 0, 1, 0 against outcomes 1, 1, 0, 0 -> two misses of 1 -> 0.5
    assert out["run_rate"]["brier"] == pytest.approx(0.5)
    assert out["run_rate"]["coverage_p10_p90"] is None
    # weighted pipeline: never reaches 100 -> wrong on the two hits -> 0.5
    assert out["weighted_pipeline"]["brier"] == pytest.approx(0.5)
    assert out["brier_difference"]["run_rate"]["estimate"] == pytest.approx(0.075 - 0.5)
    assert out["kit"]["n_forecasts"] == 4


def test_rows_a_baseline_cannot_score_are_left_out_for_all() -> None:
    t = _table()
    t.loc[3, "run_rate"] = np.nan
    out = score(t, bootstrap=100)
    assert out["kit"]["n_forecasts"] == out["run_rate"]["n_forecasts"] == 3


def test_a_baseline_that_does_not_apply_is_null() -> None:
    out = score(_table().assign(weighted_pipeline=np.nan), bootstrap=100)
    assert out["weighted_pipeline"] == {"brier": None, "coverage_p10_p90": None, "mape_p50": None, "n_forecasts": 0}
    assert out["brier_difference"]["weighted_pipeline"] is None


def test_the_bootstrap_resamples_whole_quarters() -> None:
    # every forecast of a quarter has the same difference: resampling quarters gives only their means
    out = brier_difference(np.array(["a", "a", "b", "c"]), np.array([-0.3, -0.3, 0.0, -0.1]), bootstrap=400)
    assert out["quarters"] == 3
    assert -0.3 <= out["low"] <= out["high"] <= 0.0
    assert out["estimate"] == pytest.approx(-0.175)


def test_unknown_metric_is_refused() -> None:
    with pytest.raises(KpiInputError, match="unknown metric `visits`"):
        run_backtest("data/sample", metric="visits")


def test_the_scores_without_a_bootstrap_have_no_interval() -> None:
    out = score(_table(), bootstrap=0)
    assert out["brier_difference"] == {"run_rate": None, "weighted_pipeline": None}
    assert out["kit"]["brier"] == pytest.approx(0.075)


@pytest.mark.slow
def test_the_sample_backtest(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 12 on the sample alone: the kit's Brier score beats both baselines with intervals of the
    difference below 0, and P10-P90 holds about 80% of outcomes. One dataset is 19 quarters, so its
    coverage has a standard error of about 9 points (the sample's is 93%); the issue's 70-90% is met
    pooled over the sample and four held-out seeds (79% of 380 forecasts, benchmarks/bench_forecast.py)."""
    assert cli_main(["backtest", "--data", "data/sample", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"kit", "run_rate", "weighted_pipeline", "brier_difference"}
    for name in ("kit", "run_rate", "weighted_pipeline"):
        assert set(out[name]) == KEYS
    assert out["kit"]["n_forecasts"] == out["run_rate"]["n_forecasts"] == out["weighted_pipeline"]["n_forecasts"] > 40
    assert out["kit"]["brier"] < min(out["run_rate"]["brier"], out["weighted_pipeline"]["brier"])
    assert 0.7 <= out["kit"]["coverage_p10_p90"] <= 0.95
    assert out["run_rate"]["coverage_p10_p90"] is None
    for name in ("run_rate", "weighted_pipeline"):
        diff = out["brier_difference"][name]
        assert diff["low"] <= diff["estimate"] <= diff["high"] < 0 and diff["quarters"] > 10


@pytest.mark.slow
def test_the_track_record_of_the_quarter_in_progress() -> None:
    from kpi_helpers.metrics import QuarterKpis
    from kpi_helpers.source import DataSource

    kq = QuarterKpis(DataSource.open("data/sample"), "current")
    table = track_record(kq, quarters=2, draws=300)
    assert table.attrs["day"] == kq.days_covered == 20
    assert list(table["metric"]) == [m for m in TRACK_METRICS if m in set(table["metric"])]
    assert {"revenue", "bookings", "leads"} <= set(table["metric"])
    assert (table["quarters"] == 2).all() and table["inside"].between(0, 2).all()
    # revenue has no run rate before a month of the quarter has closed (day 20): n/a, not a guess
    assert pd.isna(table.set_index("metric").loc["revenue", "brier_run_rate"])
    assert set(TRACK_UNITS) | {"metric", "label"} == set(table.columns)
