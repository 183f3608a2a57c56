"""The marketing mix model: its weekly data worked by hand, its refusals, and fits on planted data.

The hand-worked folder (:func:`write_tiny`) holds six complete weeks, Monday 2025-01-06 to Sunday
2025-02-16, the spend rows of two channels with activity cost among rows that are not activity cost,
and leads on the edges of weeks. The fits (marked slow) run on :func:`write_planted`, weekly leads drawn
from a known carry-over and saturation of two channels' spend.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kpi_helpers import cache, mmm_data
from kpi_helpers import mmm as M
from kpi_helpers.exceptions import KpiInputError
from kpi_helpers.sample_media import adstock, saturation
from kpi_helpers.source import DataSource

LEADS = """lead_id,created_at,channel,mql_at,sql_at
L0,2025-01-02 10:00:00,Direct,,
L1,2025-01-06 00:00:00,Paid Search,,
L2,2025-01-12 23:59:00,Email,,
L3,2025-01-13 08:00:00,Email,,
L4,2025-01-22 09:00:00,Direct,,
L5,2025-01-22 11:00:00,Paid Search,,
L6,2025-02-05 09:00:00,Email,,
L7,2025-02-11 09:00:00,Paid Search,,
L8,2025-02-14 09:00:00,Direct,,
L9,2025-02-16 23:00:00,Paid Search,,
L10,2025-02-17 09:00:00,Email,,
"""
SPEND = """date,channel,campaign,cost_type,amount
2025-01-01,Paid Search,Brand,media,100
2025-01-01,Email,,software,500
2025-01-06,Paid Search,Brand,media,100
2025-01-08,Email,Newsletter,production,70
2025-01-12,Paid Search,Brand,media,50
2025-01-13,Paid Search,Brand,media,200
2025-01-13,Paid Search,,labor,999
2025-01-15,(unallocated),,media,1000
2025-01-20,Events,,sales,400
2025-01-27,Paid Search,Brand,media,300
2025-01-29,Email,Newsletter,production,30
2025-02-03,Paid Search,Brand,media,120
2025-02-10,Paid Search,Brand,media,80
2025-02-12,Email,Newsletter,production,50
2025-02-12,Email,Webinar invite,production,25
2025-02-16,Paid Search,Generic,media,40
"""
OPPORTUNITIES = """opportunity_id,lead_id,account_id,created_at,closed_at,stage,amount,type
O1,L1,A1,2025-01-20 10:00:00,2025-02-10 10:00:00,won,1000,new
O2,L3,A2,2025-02-04 10:00:00,,open,500,
O3,L1,A1,2025-02-05 10:00:00,2025-02-12 10:00:00,won,700,renewal
O4,,A3,2025-01-14 10:00:00,2025-01-30 10:00:00,lost,300,new
"""
EXPERIMENTS = """channel,start,end,x,delta_x,delta_y,sigma
Paid Search,2025-01-13,2025-01-26,150,-150,-1.5,0.5
Paid Social,2025-01-13,2025-01-26,100,100,1.0,0.5
Email,2025-02-03,2025-02-16,20,40,-0.2,0.4
"""
#: the window of the tiny data read up to Tuesday 2025-02-18: spend ends on Sunday 2025-02-16
END = dt.date(2025, 2, 18)
WEEKS = ["2025-01-06", "2025-01-13", "2025-01-20", "2025-01-27", "2025-02-03", "2025-02-10"]


def write_tiny(folder: Path, **files: str | None) -> Path:
    """The hand-worked tables; a keyword replaces one (None leaves it out)."""
    tables = {"leads": LEADS, "spend": SPEND, "opportunities": OPPORTUNITIES, "experiments": EXPERIMENTS}
    tables.update(files)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        if text is not None:
            (folder / f"{name}.csv").write_text(text)
    return folder


def tiny(tmp_path: Path, **files: str | None) -> DataSource:
    return DataSource.open(write_tiny(tmp_path / "data", **files))


# --------------------------------------------------------------------------------------------------
# The weekly frame by hand


def test_weekly_leads_and_activity_cost_by_hand(tmp_path):
    wd = mmm_data.weekly_data(tiny(tmp_path), END, weeks=6, min_weeks=4)
    # The week of 2024-12-30 is left out: spend covers 2025-01-01 on, not its Monday and Tuesday.
    assert (wd.start, wd.end, wd.weeks) == (dt.date(2025, 1, 6), dt.date(2025, 2, 16), 6)
    assert list(wd.y.index) == list(wd.spend.index) == list(pd.to_datetime(WEEKS))
    # Events has only sales cost and `(unallocated)` is no channel: neither is modelled.
    assert wd.channels == ("Email", "Paid Search")
    # L1 (Monday 00:00) and L2 (Sunday 23:59); L3; L4 and L5; none; L6; L7, L8 and L9 (Sunday 23:00)
    assert wd.y.tolist() == [2.0, 1.0, 2.0, 0.0, 1.0, 3.0]
    expected = pd.DataFrame(
        {
            # production only: software is fixed cost; two campaigns in the week of 02-10 add up
            "Email": [70.0, 0.0, 0.0, 30.0, 0.0, 75.0],
            # media only, labour left out; nothing on 01-20 is a zero, the spend table covers the week
            "Paid Search": [150.0, 200.0, 0.0, 300.0, 120.0, 120.0],
        },
        index=pd.DatetimeIndex(pd.to_datetime(WEEKS).as_unit("ns"), name="week"),
    )
    pd.testing.assert_frame_equal(wd.spend, expected, check_freq=False)
    assert wd.cost.to_dict() == {"Email": 175.0, "Paid Search": 890.0}


def test_only_weekly_rows_reach_pandas(tmp_path):
    src = tiny(tmp_path)
    _ = src.coverage
    before = src.rows_fetched
    mmm_data.weekly_data(src, END, weeks=6, min_weeks=4)
    # at most weeks x channels rows of cost, one row a week of leads, the three experiments
    assert src.rows_fetched - before <= 6 * 2 + 6 + 3


def test_weekly_pipeline_counts_new_business_created(tmp_path):
    wd = mmm_data.weekly_data(tiny(tmp_path), END, target="pipeline", weeks=6, min_weeks=4)
    # O4 (sales-sourced, new) in the week of 01-13, O1 in that of 01-20, O2 (type empty: new) in that of 02-03;
    # O3 is a renewal
    assert wd.y.tolist() == [0.0, 300.0, 1000.0, 0.0, 500.0, 0.0]
    # lift tests measure leads: they cannot calibrate a model of pipeline
    assert wd.experiments.empty
    assert any("do not calibrate a model of pipeline" in n for n in wd.notes)


def test_experiments_of_modelled_channels_calibrate(tmp_path):
    wd = mmm_data.weekly_data(tiny(tmp_path), END, weeks=6, min_weeks=4)
    assert wd.experiments[["channel", "x", "delta_x", "delta_y", "sigma"]].to_dict("records") == [
        {"channel": "Paid Search", "x": 150.0, "delta_x": -150.0, "delta_y": -1.5, "sigma": 0.5}
    ]
    assert any("`Paid Social`" in n and "no activity cost" in n for n in wd.notes)
    # Email's test measured fewer leads for more spend: noise the calibration cannot take
    assert any("`Email` from 2025-02-03 measured -0.2 leads a week for +40" in n for n in wd.notes)


def test_funnel_values_by_hand(tmp_path):
    src = tiny(tmp_path)
    fv = mmm_data.funnel_values(src, dt.date(2025, 1, 6), dt.date(2025, 2, 17))
    # Paid Search: leads L1, L5, L7, L9; O1 (1,000) won on 02-10. Email: L2, L3, L6, nothing won.
    # O3 is a renewal and does not count.
    assert fv.loc["Paid Search", ["units", "won_deals", "won_amount"]].tolist() == [4.0, 1.0, 1000.0]
    assert fv.loc["Paid Search", "value_per_unit"] == 250.0
    assert fv.loc["Email", "value_per_unit"] == 0.0
    pipe = mmm_data.funnel_values(src, dt.date(2025, 1, 6), dt.date(2025, 2, 17), target="pipeline")
    # won revenue per unit of the channel's pipeline created: O1 1,000 / 1,000; Email O2 500 created, none won
    assert pipe.loc["Paid Search", "value_per_unit"] == 1.0
    assert pipe.loc["Email", "value_per_unit"] == 0.0


def test_attributed_revenue_credits_the_windows_won_deals(tmp_path):
    src = tiny(tmp_path)
    credit = mmm_data.attributed_revenue(src, dt.date(2025, 1, 6), dt.date(2025, 2, 17), model="last_touch")
    # no touchpoints: O1 is its lead's own channel's; O3 is a renewal and is not credited
    assert credit.to_dict() == {"Paid Search": 1000.0}


# --------------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize(
    ("files", "target", "match"),
    [
        ({"spend": None}, "leads", r"needs `spend`: add spend.csv"),
        ({"leads": None, "opportunities": None}, "leads", r"needs `leads`: add leads.csv"),
        ({"opportunities": None}, "pipeline", r"needs `opportunities`"),
    ],
    ids=["no spend", "no leads", "pipeline without opportunities"],
)
def test_refuses_a_missing_table(tmp_path, files, target, match):
    with pytest.raises(KpiInputError, match=match):
        mmm_data.weekly_data(tiny(tmp_path, **files), END, target=target, weeks=6, min_weeks=4)


def test_refuses_less_than_a_year(tmp_path):
    with pytest.raises(KpiInputError, match=r"at least 52 complete weeks .* the data has 6 complete weeks"):
        mmm_data.weekly_data(tiny(tmp_path), END)


def test_a_gap_in_spend_is_never_zero_spend(tmp_path):
    # spend in January and March only: February is a gap, so the window starts the Monday after it
    rows = [SPEND.splitlines()[0]]
    for day in pd.date_range("2025-01-01", "2025-03-30"):
        if day.month != 2:
            rows.append(f"{day.date()},Paid Search,,media,{100 + 3 * day.day}")
    leads = ["lead_id,created_at,channel,mql_at,sql_at"] + [
        f"L{i},{day.date()} 10:00:00,Paid Search,," for i, day in enumerate(pd.date_range("2025-01-01", "2025-03-31"))
    ]
    src = tiny(tmp_path, spend="\n".join(rows) + "\n", leads="\n".join(leads) + "\n", opportunities=None)
    wd = mmm_data.weekly_data(src, dt.date(2025, 3, 31), weeks=12, min_weeks=4)
    assert (wd.start, wd.end, wd.weeks) == (dt.date(2025, 3, 3), dt.date(2025, 3, 30), 4)
    with pytest.raises(KpiInputError, match=r"`spend` does not cover 2025-02-01 to 2025-02-28"):
        mmm_data.weekly_data(src, dt.date(2025, 3, 31), weeks=12, min_weeks=5)


def test_refuses_a_channel_whose_spend_never_changes(tmp_path):
    flat = "date,channel,campaign,cost_type,amount\n" + "".join(
        f"{day},Paid Search,,media,100\n{day},Email,,production,{10 * i}\n" for i, day in enumerate(WEEKS)
    )
    flat += "2025-01-01,Paid Search,,labor,5\n2025-02-16,Email,,production,0\n"
    with pytest.raises(KpiInputError, match=r"activity cost of `Paid Search` is the same every week"):
        mmm_data.weekly_data(tiny(tmp_path, spend=flat), END, weeks=6, min_weeks=4)


def test_refuses_spend_without_activity_cost(tmp_path):
    fixed = "date,channel,campaign,cost_type,amount\n2025-01-01,Paid Search,,labor,100\n2025-02-16,Email,,software,5\n"
    with pytest.raises(KpiInputError, match=r"no channel has activity cost \(media, production\)"):
        mmm_data.weekly_data(tiny(tmp_path, spend=fixed), END, weeks=6, min_weeks=4)


def test_refuses_an_unknown_target(tmp_path):
    with pytest.raises(KpiInputError, match=r"unknown target 'revenue'"):
        mmm_data.weekly_data(tiny(tmp_path), END, target="revenue", weeks=6, min_weeks=4)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"weeks": 30}, r"`weeks` \(30\) must be at least `min_weeks` \(52\)"),
        ({"holdout_weeks": 14}, r"`holdout_weeks` \(14\) must be at most a quarter"),
        ({"target": "revenue"}, r"`target`"),
        ({"draws": 1.5}, r"`draws`"),
        ({"chains": 0}, r"`chains`"),
        ({"colour": "red"}, r"`colour`"),
    ],
    ids=["weeks below min_weeks", "holdout too long", "unknown target", "fractional draws", "no chain", "unknown"],
)
def test_settings_refuse_bad_values(changes, match):
    with pytest.raises(KpiInputError, match=match):
        M.MmmSettings.of(**changes)


def test_settings_key_names_every_setting():
    key = dict(M.MmmSettings().key())
    assert set(key) == set(M.MmmSettings.model_fields)
    assert M.MmmSettings.of(calibrate=False).key() != M.MmmSettings().key()


def test_fit_refuses_bad_arguments_before_fitting(tmp_path):
    src = tiny(tmp_path)
    with pytest.raises(KpiInputError, match=r"unknown attribution model 'u_shaped'"):
        M.fit_incrementality(src, "2025Q1", attribution_model="u_shaped")
    with pytest.raises(KpiInputError, match=r"`budget` must be an amount > 0"):
        M.fit_incrementality(src, "2025Q1", budget=-5)
    with pytest.raises(KpiInputError, match=r"at least 52 complete weeks"):
        M.fit_incrementality(src, "2025Q1")


def test_lam_prior_centres_half_saturation_on_typical_spend():
    spend = pd.DataFrame({"always": [10.0, 20.0, 10.0, 20.0], "burst": [0.0, 40.0, 0.0, 0.0]})
    # always on: 0.75 of its maximum a week; a burst of 40 carried over 2 weeks: 0.5 of it a week
    assert M.lam_prior(spend, l_max=2) == pytest.approx([math.log(3) / 0.75, math.log(3) / 0.5])
    assert saturation(np.log(3), 1.0) == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------------
# Fits on planted data (slow: each compiles and samples a PyMC model)

#: the planted process: adstock carry-over, logistic saturation per currency unit, leads a week at saturation
PLANTED = {"Search": (0.3, 1 / 900, 14.0), "Social": (0.5, 1 / 700, 10.0)}
PLANTED_WEEKS = 80


def write_planted(folder: Path, seed: int = 11) -> dict[str, float]:
    """Weekly spend of two channels driving leads (Poisson) over a seasonal baseline; returns the truth,
    the incremental leads per currency unit over the data (all of it: the window)."""
    rng = np.random.default_rng(seed)
    mondays = pd.date_range("2024-01-01", periods=PLANTED_WEEKS, freq="7D")
    k = np.arange(PLANTED_WEEKS)
    steps = np.exp(rng.normal(0, 0.35, PLANTED_WEEKS // 10 + 1))[k // 10]
    search = 900 * steps * np.exp(rng.normal(0, 0.15, PLANTED_WEEKS))
    social = np.where((k // 6) % 2 == 0, 1100.0, 90.0) * np.exp(rng.normal(0, 0.2, PLANTED_WEEKS))
    spend = np.column_stack([search, social]).round(2)
    alpha = np.array([v[0] for v in PLANTED.values()])
    lam = np.array([v[1] for v in PLANTED.values()])
    beta = np.array([v[2] for v in PLANTED.values()])
    inc = beta * saturation(adstock(spend, alpha), lam)  # (weeks, channels)
    base = 30 + 0.05 * k + 6 * np.sin(2 * np.pi * k / 52)
    counts = rng.poisson(base + inc.sum(axis=1))
    leads, opps = (
        ["lead_id,created_at,channel,mql_at,sql_at"],
        ["opportunity_id,lead_id,account_id,created_at,closed_at,stage,amount"],
    )
    n = 0
    for w, (monday, count) in enumerate(zip(mondays, counts, strict=True)):
        p = np.append(inc[w], base[w]) / (inc[w].sum() + base[w])
        for _ in range(count):
            channel = ["Search", "Social", "Direct"][rng.choice(3, p=p)]
            at = monday + pd.Timedelta(seconds=int(rng.integers(0, 7 * 86400)))
            leads.append(f"L{n},{at},{channel},,")
            if n % 40 == 0 and w < PLANTED_WEEKS - 10:
                closed = at + pd.Timedelta(days=30)
                opps.append(f"O{n},L{n},A{n},{at + pd.Timedelta(days=3)},{closed},won,{1000 + 10 * (n % 50)}")
            n += 1
    rows = ["date,channel,campaign,cost_type,amount"]
    for w, monday in enumerate(mondays):
        for c, name in enumerate(PLANTED):
            rows.append(f"{monday.date()},{name},,media,{spend[w, c]:.2f}")
    # fixed cost on the last Sunday: spend (dated Mondays) then covers the last week too
    rows.append(f"{(mondays[-1] + pd.Timedelta(days=6)).date()},Search,,labor,500")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "leads.csv").write_text("\n".join(leads) + "\n")
    (folder / "opportunities.csv").write_text("\n".join(opps) + "\n")
    (folder / "spend.csv").write_text("\n".join(rows) + "\n")
    truth = dict(zip(PLANTED, (inc.sum(axis=0) / spend.sum(axis=0)).tolist(), strict=True))
    (folder / "truth.json").write_text(json.dumps(truth))
    return truth


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[DataSource, dict[str, float]]:
    folder = tmp_path_factory.mktemp("planted")
    truth = write_planted(folder)
    return DataSource.open(folder), truth


#: a quick fit: one chain, few draws and weeks; for its shape, not its numbers
QUICK = {"draws": 60, "tune": 60, "chains": 1, "weeks": 30, "min_weeks": 24, "holdout_weeks": 4, "seed": 3}


@pytest.fixture(scope="module")
def quick(planted) -> M.IncrementalityResult:
    src, _ = planted
    return M.fit_incrementality(src, "current", QUICK)


CHANNEL_KEYS = {
    "incremental_per_cost",
    "incremental_per_cost_low",
    "incremental_per_cost_high",
    "incremental_roi",
    "incremental_roi_low",
    "incremental_roi_high",
    "contribution_share",
    "contribution_share_low",
    "contribution_share_high",
    "attribution_roi_activity_cost",
}


@pytest.mark.slow
def test_metrics_have_the_public_shape(quick):
    m = quick.metrics()
    assert set(m) == {"target", "window", "by_channel", "diagnostics"}
    assert m["target"] == "leads"
    assert m["window"] == {"start": quick.start.isoformat(), "end": quick.end.isoformat(), "weeks": 30}
    assert set(m["by_channel"]) == {"Search", "Social"}
    for values in m["by_channel"].values():
        assert set(values) == CHANNEL_KEYS
        assert all(v is None or type(v) is float for v in values.values())
    assert set(m["diagnostics"]) == {"rhat_max", "ess_min", "divergences", "holdout_mape"}
    assert type(m["diagnostics"]["divergences"]) is int
    json.dumps(m, allow_nan=False)


@pytest.mark.slow
def test_every_estimate_lies_inside_its_interval(quick):
    for channel, values in quick.metrics()["by_channel"].items():
        for key in ("incremental_per_cost", "incremental_roi", "contribution_share"):
            low, mid, high = values[f"{key}_low"], values[key], values[f"{key}_high"]
            assert low <= mid <= high, (channel, key, low, mid, high)
    m = quick.marginal
    assert (m["marginal_roi_low"] <= m["marginal_roi"]).all() and (m["marginal_roi"] <= m["marginal_roi_high"]).all()
    c = quick.response_curves
    assert (c["incremental_low"] <= c["incremental"] + 1e-12).all()
    assert (c["incremental"] <= c["incremental_high"] + 1e-12).all()


@pytest.mark.slow
def test_the_result_round_trips_through_the_cache(quick):
    payload = quick.to_cache()
    again = cache.decode(cache.encode(payload))  # JSON and Arrow only: encode refuses what would not come back
    assert M.IncrementalityResult.from_cache(again).metrics() == quick.metrics()
    pd.testing.assert_frame_equal(M.IncrementalityResult.from_cache(again).channels, quick.channels)


@pytest.mark.slow
def test_a_second_fit_of_the_same_data_and_settings_is_read_from_the_cache(planted, quick, monkeypatch):
    src, _ = planted

    def refit(*args, **kwargs):
        raise AssertionError("fitted again")

    monkeypatch.setattr(M, "_fit", refit)
    assert M.fit_incrementality(src, "current", QUICK).metrics() == quick.metrics()
    with pytest.raises(AssertionError, match="fitted again"):  # another setting is another fit
        M.fit_incrementality(src, "current", {**QUICK, "calibrate": False, "seed": 4})


@pytest.mark.slow
def test_the_budget_scenario_spends_the_budget_within_its_bounds(quick):
    b, s = quick.budget, quick.budget_summary
    assert b is not None and s is not None, quick.warnings
    assert b["optimal_budget"].sum() == pytest.approx(s["budget"], rel=1e-4)
    assert b["current_budget"].sum() == pytest.approx(s["budget"], rel=1e-9)
    for channel, (low, high) in s["bounds"].items():
        assert low * (1 - 1e-6) <= b.loc[channel, "optimal_budget"] <= high * (1 + 1e-6)
    for key in ("incremental_current", "incremental_optimal", "revenue_optimal", "revenue_gain"):
        assert s[f"{key}_low"] <= s[key] <= s[f"{key}_high"], key


@pytest.mark.slow
def test_planted_truth_lies_inside_the_intervals(planted):
    src, truth = planted
    r = M.fit_incrementality(src, "current", {"draws": 300, "tune": 300, "chains": 1, "weeks": PLANTED_WEEKS})
    by = r.metrics()["by_channel"]
    for channel, value in truth.items():
        assert by[channel]["incremental_per_cost_low"] <= value <= by[channel]["incremental_per_cost_high"], (
            channel,
            value,
            by[channel],
        )


def test_budget_arguments_are_checked_before_fitting(tmp_path, monkeypatch):
    write_planted(tmp_path / "planted")
    src = DataSource.open(tmp_path / "planted")

    def build(*args, **kwargs):
        raise AssertionError("reached the fit")

    monkeypatch.setattr(M, "_build", build)
    with pytest.raises(KpiInputError, match=r"budget bounds name `TV`, which the model does not have"):
        M.fit_incrementality(src, "current", bounds={"TV": (0.0, 1.0)})
    with pytest.raises(KpiInputError, match=r"cannot be split within the bounds"):
        M.fit_incrementality(src, "current", budget=1e6, bounds={"Search": (0.0, 10.0), "Social": (0.0, 10.0)})
    with pytest.raises(KpiInputError, match=r"must satisfy 0 <= low <= high"):
        M.fit_incrementality(src, "current", bounds={"Search": (5.0, 1.0)})
