"""How sure a quarter's numbers are, as metrics.json carries it: intervals worked by hand on the tiny
fixture, per-journey credit that adds up to the model's, change judgements, and the sample's keys."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kpi_helpers import reliability as R
from kpi_helpers.metrics import QuarterKpis
from kpi_helpers.registry import KPIS, unit_of
from kpi_helpers.source import DataSource

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "tiny"
SAMPLE = ROOT / "data" / "sample"


@pytest.fixture(scope="module")
def tiny() -> tuple[QuarterKpis, dict]:
    kq = QuarterKpis(DataSource.open(TINY), "2025Q1")
    return kq, kq.metrics()


def _wilson(k: float, n: float, level: float = 0.9) -> tuple[float, float]:
    z = stats.norm.ppf((1 + level) / 2)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


# Worked by hand on tests/fixtures/tiny, 2025Q1 (see test_metrics.HAND for the values).
HAND = {
    # 420 bounced sessions of 1,000: the Wilson interval written out
    "bounce_rate": _wilson(420, 1000),
    # cost per lead 2,000 / 3 leads, leads resampled: N* ~ Poisson(3), draws without a lead dropped.
    # Given N* > 0 (95.0%), P(N* >= 6) = 8.8% and P(N* >= 7) = 3.5%, so the 5% quantile of 2,000 / N*
    # is 2,000 / 6; P(N* = 1) = 15.7% > 5%, so the 95% quantile is 2,000 / 1.
    "cost_per_lead": (2000 / 6, 2000.0),
    # CAC (2,000 + 2,000) / 2 new customers: N* ~ Poisson(2); given N* > 0 (86.5%), P(N* >= 5) = 6.1%
    # and P(N* >= 6) = 1.9%: low 4,000 / 5; P(N* = 1) = 31.3%: high 4,000 / 1.
    "cac": (800.0, 4000.0),
    # ROI of the one won deal from a lead (10,000) on 2,000 of cost: the deal resampled, W ~ Poisson(1);
    # P(W = 0) = 36.8% puts the 5% quantile at (0 - 2,000) / 2,000 = -1; P(W <= 2) = 92.0% and
    # P(W <= 3) = 98.1% put the 95% quantile at (30,000 - 2,000) / 2,000 = 14.
    "marketing_roi": (-1.0, 14.0),
}


@pytest.mark.parametrize(("key", "expected"), HAND.items(), ids=list(HAND))
def test_tiny_intervals_by_hand(tiny, key, expected) -> None:
    _, m = tiny
    assert (m[f"{key}_low"], m[f"{key}_high"]) == pytest.approx(expected, rel=1e-9)


def test_tiny_channel_roi_by_hand(tiny) -> None:
    """Organic Search gets 2,000 of L1's 10,000 deal (position-based, the middle of three touches) on a
    cost of 500: one journey resampled, W ~ Poisson(1), credit 2,000 W: the 5% quantile is W = 0
    (ROI -1), the 95% W = 3 (credit 6,000, ROI 11). Channels without cost have no ROI interval."""
    _, m = tiny
    organic = m["by_channel"]["Organic Search"]
    assert (organic["attributed_revenue_low"], organic["attributed_revenue_high"]) == pytest.approx((0.0, 6000.0))
    assert (organic["roi_low"], organic["roi_high"]) == pytest.approx((-1.0, 11.0))
    assert m["by_channel"]["Direct"]["roi_low"] is None and m["by_channel"]["(unallocated)"]["roi_high"] is None
    # the bounds sit right after their number
    keys = list(organic)
    assert keys[keys.index("roi") + 1 : keys.index("roi") + 3] == ["roi_low", "roi_high"]


def test_every_interval_kpi_has_its_bounds_beside_it(tiny) -> None:
    _, m = tiny
    keys = list(m)
    for key in R.INTERVAL_KPIS:
        i = keys.index(key)
        assert keys[i + 1 : i + 3] == [f"{key}_low", f"{key}_high"], key
        assert unit_of(f"{key}_low") == unit_of(f"{key}_high") == KPIS[key].unit
        if m[key] is None:  # n/a: no interval either (the tiny CRM has no year of deals for CLV)
            assert m[f"{key}_low"] is None and m[f"{key}_high"] is None, key
        elif m[f"{key}_low"] is not None:
            assert m[f"{key}_low"] <= m[key] <= m[f"{key}_high"], key
    assert m["clv"] is None and m["clv_low"] is None


@pytest.mark.parametrize("model", ["first_touch", "linear", "time_decay", "position_based", "w_shaped", "shapley"])
def test_journey_credit_adds_up_to_the_models_credit(tiny, model) -> None:
    kq, _ = tiny
    kq = QuarterKpis(kq.source, "2025Q1", attribution_model=model)
    frame, counts = R.journey_credit(kq)
    total = frame.mul(counts, axis=0).sum()
    credit = kq.attribution["value"]
    assert total.reindex(credit.index).fillna(0.0).to_numpy() == pytest.approx(credit.to_numpy())


def test_markov_credit_is_not_per_journey(tiny) -> None:
    kq, _ = tiny
    markov = QuarterKpis(kq.source, "2025Q1", attribution_model="markov")
    assert R.journey_credit(markov) is None
    assert markov.metrics()["by_channel"]["Organic Search"]["roi_low"] is None


@pytest.mark.parametrize("model", ["linear", "last_non_direct", "position_based"])
def test_a_path_export_is_credited_row_by_row(tmp_path, model) -> None:
    """No touchpoints, a GA4 conversion-path export of the quarter: each row stands for its conversions,
    and the rows' credit adds up to the model's."""
    folder = tmp_path / "paths"
    shutil.copytree(TINY, folder)
    (folder / "touchpoints.csv").unlink()
    shutil.copy(ROOT / "tests/fixtures/exports/ga4-paths/Conversion_paths.csv", folder)
    kq = QuarterKpis(DataSource.open(folder, mapping="ga4-paths"), "2025Q1", attribution_model=model)
    assert kq.attribution_source == "paths"
    frame, counts = R.journey_credit(kq)
    paths = pd.read_csv(folder / "Conversion_paths.csv", comment="#")
    assert counts.sum() == pytest.approx(paths["Key events"].sum())
    total = frame.mul(counts, axis=0).sum()
    credit = kq.attribution["value"]
    assert total.reindex(credit.index).fillna(0.0).to_numpy() == pytest.approx(credit.to_numpy())
    bounds = R.channel_intervals(kq)
    credited = kq.channels["attributed_revenue"]
    ok = bounds["attributed_revenue_low"].notna()
    assert (bounds.loc[ok, "attributed_revenue_low"] <= credited[ok] + 1e-6).all()
    assert (credited[ok] <= bounds.loc[ok, "attributed_revenue_high"] + 1e-6).all()


def test_a_short_history_is_not_judged(tiny) -> None:
    """The tiny data has two quarters: no change can be judged, and none is called real."""
    _, m = tiny
    changes = m["changes"]
    assert changes["alpha"] == 0.1 and changes["history_quarters"] == R.HISTORY_QUARTERS
    entries = [e for c in changes["kpis"].values() for e in c.values()]
    assert entries and all(e["real"] is None for e in entries)
    leads = changes["kpis"]["leads"]["quarter_on_quarter"]
    assert leads["reference"] == "2024Q4" and leads["words"] == "no change to judge"


def test_history_leaves_out_quarters_not_fully_covered(tiny) -> None:
    kq, _ = tiny
    history = R.kpi_history(kq)
    assert len(history) == R.HISTORY_QUARTERS and history.index[-1] == "2025Q1"
    assert history.loc["2024Q4"].isna().all()  # before the data: NaN, never 0
    assert history.loc["2025Q1", "leads"] == 3


# -- the sample: every key, every bound around its value, and the changes judged ---------------------


@pytest.fixture(scope="module")
def sample() -> tuple[QuarterKpis, dict]:
    kq = QuarterKpis(DataSource.open(SAMPLE), "2026Q3")
    return kq, kq.metrics()


@pytest.mark.slow
def test_the_sample_has_an_interval_around_every_interval_kpi(sample) -> None:
    _, m = sample
    for key in R.INTERVAL_KPIS:
        assert m[f"{key}_low"] <= m[key] <= m[f"{key}_high"], key
        assert m[f"{key}_low"] < m[f"{key}_high"], key
    for ch, row in m["by_channel"].items():
        for key in R.CHANNEL_KEYS:
            if row[f"{key}_low"] is not None:
                assert row[f"{key}_low"] <= row[key] <= row[f"{key}_high"], (ch, key)
    assert sum(row["roi_low"] is not None for row in m["by_channel"].values()) >= 5


@pytest.mark.slow
def test_the_sample_changes_are_judged_against_five_years(sample) -> None:
    _, m = sample
    judged = m["changes"]["kpis"]
    assert {"leads", "revenue", "cost_per_lead", "bounce_rate"} <= set(judged)
    leads = judged["leads"]["quarter_on_quarter"]
    assert leads["value"] == m["leads"] and leads["reference_value"] == m["previous_quarter"]["leads"]
    assert leads["change"] == pytest.approx(m["leads"] / m["previous_quarter"]["leads"] - 1)
    assert leads["real"] in (True, False) and 0 <= leads["p_adjusted"] <= 1
    assert leads["words"].startswith(("up ", "down ")) and "normal variation" in leads["words"]
    yoy = judged["leads"]["year_on_year"]
    assert yoy["reference"] == "2025Q3" and yoy["reference_value"] == m["year_ago"]["leads"]


@pytest.mark.slow
def test_the_sample_intervals_use_the_quarters_own_deals(sample) -> None:
    """The deals resampled are those behind lead revenue, and the days those behind the ratios."""
    kq, m = sample
    assert R.lead_deal_amounts(kq).sum() == pytest.approx(m["lead_revenue"])
    day = R.daily(kq)
    assert len(day) == 92 and day["leads"].sum() == m["leads"] and day["visits"].sum() == m["visits"]
    assert day["goal_completions"].sum() == m["goal_completions"]
    assert np.isfinite(day.to_numpy()).all()
