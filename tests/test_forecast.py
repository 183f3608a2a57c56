"""Forecasts: close probabilities recovered from a known process, calibrated intervals, the result type."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from kpi_helpers.exceptions import KpiInputError
from kpi_helpers.forecast import (
    METRICS,
    NO_FORECAST_ENV,
    Forecast,
    close_probabilities,
    cohort_maturity,
    forecast_count,
    forecast_quarter,
    forecast_revenue,
    forecast_rows,
    metrics_block,
    quarter_targets,
    year_targets,
)
from kpi_helpers.periods import Quarter

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"

AS_OF = pd.Timestamp("2026-01-31")
WIN, WIN_DAYS, LOST_DAYS = 0.3, 40.0, 30.0


def _deals(n: int = 6000, seed: int = 0) -> pd.DataFrame:
    """Deals created over two years before AS_OF: won with probability 0.3 after Exp(40) days, else lost
    after Exp(30) days; closing after AS_OF leaves them open (censored)."""
    rng = np.random.default_rng(seed)
    created = AS_OF - pd.to_timedelta(rng.uniform(0, 730, n), unit="D")
    won = rng.random(n) < WIN
    took = np.where(won, rng.exponential(WIN_DAYS, n), rng.exponential(LOST_DAYS, n))
    closed = created + pd.to_timedelta(took, unit="D")
    open_ = closed >= AS_OF + pd.Timedelta(days=1)
    return pd.DataFrame(
        {
            "opportunity_id": [f"O{i}" for i in range(n)],
            "lead_id": [f"L{i}" for i in range(n)],
            "account_id": [f"A{i}" for i in range(n)],
            "created_at": created,
            "closed_at": pd.Series(closed).where(~open_),
            "stage": np.where(open_, "open", np.where(won, "won", "lost")),
            "amount": np.full(n, 1000.0),
        }
    )


def _truth(age: np.ndarray, h: float) -> np.ndarray:
    """P(won in (a, a + h] | open at a) for the process of `_deals`."""
    surv = WIN * np.exp(-age / WIN_DAYS) + (1 - WIN) * np.exp(-age / LOST_DAYS)
    return WIN * (np.exp(-age / WIN_DAYS) - np.exp(-(age + h) / WIN_DAYS)) / surv


@pytest.mark.parametrize("horizon", [15.0, 60.0], ids=["15-days", "60-days"])
def test_close_probabilities_recover_the_known_process(horizon: float) -> None:
    out = close_probabilities(_deals(), AS_OF.date(), horizon)
    young = out[out["age_days"] < 60]
    assert len(young) > 100
    err = np.abs(young["p_won"].to_numpy() - _truth(young["age_days"].to_numpy(), horizon))
    assert err.mean() < 0.02
    assert err.max() < 0.06
    assert "by age" in out.attrs["note"]


def test_close_probabilities_by_stage_when_history_is_given() -> None:
    deals = _deals(3000, seed=1)
    history = pd.DataFrame(
        {"opportunity_id": deals["opportunity_id"], "changed_at": deals["created_at"], "stage": "discovery"}
    )
    out = close_probabilities(deals, AS_OF.date(), 30.0, history=history)
    assert "by stage" in out.attrs["note"]
    # one stage entered at creation: the same process as by age
    young = out[out["age_days"] < 60]
    assert np.abs(young["p_won"] - _truth(young["age_days"].to_numpy(), 30.0)).mean() < 0.03


def _events(rng: np.random.Generator, years: range, rate: float, shape: np.ndarray) -> pd.Series:
    """Poisson events per day with a within-quarter shape (rises through each quarter)."""
    days = pd.date_range(f"{years.start}-01-01", f"{years.stop - 1}-12-31", freq="D")
    pos = np.array([(d - pd.Timestamp(d.year, 3 * ((d.month - 1) // 3) + 1, 1)).days for d in days])
    counts = rng.poisson(rate * shape[np.minimum(pos, len(shape) - 1)])
    return pd.Series(np.repeat(days.to_numpy(), counts))


@pytest.mark.slow
def test_count_intervals_hold_the_truth_at_their_rate() -> None:
    """P10-P90 (an 80% interval) holds the final count in 72-88% of 200 simulated quarters."""
    shape = np.linspace(0.5, 1.5, 92)
    hits = 0
    q = Quarter(2026, 1)
    for rep in range(200):
        rng = np.random.default_rng(rep)
        events = _events(rng, range(2022, 2027), 3.0 * rng.uniform(0.8, 1.2), shape)
        f = forecast_count(events, q, "2026-02-14", data_start="2022-01-01", seed=rep, draws=2000)
        actual = int(((events >= "2026-01-01") & (events < "2026-04-01")).sum())
        hits += f.p10 <= actual <= f.p90
    assert 0.72 <= hits / 200 <= 0.88


def _revenue(rng: np.random.Generator, months: int = 60) -> pd.DataFrame:
    t = np.arange(months)
    season = 0.1 * np.sin(2 * np.pi * t / 12)
    e = np.zeros(months)
    for i in range(1, months):
        e[i] = 0.5 * e[i - 1] + rng.normal(0, 0.03)
    return pd.DataFrame(
        {
            "month": pd.date_range("2021-01-01", periods=months, freq="MS"),
            "revenue": 1e5 * np.exp(0.01 * t + season + e),
        }
    )


@pytest.mark.slow
def test_revenue_intervals_hold_the_truth_at_their_rate() -> None:
    """P10-P90 holds the quarter's revenue in 70-90% of 200 simulated histories (two months to forecast)."""
    hits = 0
    q = Quarter(2025, 4)
    for rep in range(200):
        rev = _revenue(np.random.default_rng(rep))
        truth = rev[rev["month"] >= "2025-10-01"]["revenue"].sum()
        known = rev[rev["month"] <= "2025-10-01"]
        f = forecast_revenue({"revenue": known}, q, "2025-11-15", seed=rep, draws=2000)
        hits += f.p10 <= truth <= f.p90
    assert 0.70 <= hits / 200 <= 0.90


def test_revenue_closed_months_are_counted_as_they_are() -> None:
    rev = _revenue(np.random.default_rng(0))
    f = forecast_revenue({"revenue": rev}, Quarter(2024, 2), "2024-07-01", target=0.0)
    assert f.p10 == f.p90 == pytest.approx(rev["revenue"].iloc[39:42].sum())
    assert f.probability_to_hit == 1.0


def test_forecast_quarter_uses_only_what_was_known() -> None:
    deals = _deals(800, seed=2)
    # all created after the as-of day
    later = deals.assign(created_at=deals["created_at"] + pd.Timedelta(days=800))
    q = Quarter(2026, 1)
    a = forecast_quarter({"opportunities": deals}, q, "2026-01-31", metrics=("bookings",), draws=500)
    b = forecast_quarter(
        {"opportunities": pd.concat([deals, later])}, q, "2026-01-31", metrics=("bookings",), draws=500
    )
    # deals created after the as-of day change nothing
    assert a["bookings"].p50 == b["bookings"].p50


def test_to_dict_has_the_metrics_json_keys() -> None:
    f = Forecast.from_draws(
        "leads", Quarter(2026, 1), dt.date(2026, 2, 1), 10, np.arange(100.0), target=50.0, method="m"
    )
    d = f.to_dict()
    assert {"p10", "p50", "p90", "target", "probability_to_hit", "as_of"} <= set(d)
    assert d["probability_to_hit"] == 0.5
    assert d["as_of"] == "2026-02-01"
    assert d["p50"] == pytest.approx(49.5)


def test_missing_tables_give_undefined_forecasts_with_a_reason() -> None:
    out = forecast_quarter({}, Quarter(2026, 1), "2026-02-01", targets={"revenue": 1.0})
    assert all(not f.defined for f in out.values())
    assert "revenue.csv" in out["revenue"].reason
    d = out["revenue"].to_dict()
    assert d["p50"] is None and d["target"] == 1.0 and d["probability_to_hit"] is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metrics": ("visits",)}, "unknown forecast metric"),
        ({"as_of": "2025-12-31"}, "before 2026Q1 starts"),
    ],
    ids=["unknown-metric", "as-of-before-quarter"],
)
def test_bad_calls_are_refused(kwargs: dict, match: str) -> None:
    args = {"as_of": "2026-02-01", **kwargs}
    with pytest.raises(KpiInputError, match=match):
        forecast_quarter({}, Quarter(2026, 1), **args)


def test_a_recent_cohort_is_marked_maturing_and_adjusted() -> None:
    """Every lead converts within Exp(30) days with probability 0.4; the newest cohort looks worse
    only because it is recent, and the adjustment brings it back."""
    rng = np.random.default_rng(3)
    n = 4000
    start = pd.Series(pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.uniform(0, 455, n), unit="D"))
    convert = rng.random(n) < 0.4
    end = (start + pd.to_timedelta(rng.exponential(30, n), unit="D")).where(convert)
    cohort = start.dt.to_period("Q").astype(str)
    out = cohort_maturity(start, end, cohort, "2026-03-31", horizon_days=180)
    assert out.loc["2026Q1", "maturing"] and not out.loc["2025Q1", "maturing"]
    assert out.loc["2026Q1", "rate_so_far"] < 0.33
    assert out["adjusted_rate"].between(0.33, 0.47).all()
    assert math.isclose(out["members"].sum(), n)


# --------------------------------------------------------------------------------------------- the pipeline by stage

STAY_A, STAY_B, MOVE_ON, WIN_IN_B = 20.0, 30.0, 0.6, 0.5


def _staged(n: int = 4000, seed: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deals in two stages: an Exp(20)-day stay in A, then on to B with probability 0.6 (else lost); an
    Exp(30)-day stay in B, then won with probability 0.5 (else lost). Stage changes after AS_OF are
    unknown (the deal is open in the stage it was in)."""
    rng = np.random.default_rng(seed)
    created = AS_OF - pd.to_timedelta(rng.uniform(0, 900, n), unit="D")
    in_a = pd.to_timedelta(rng.exponential(STAY_A, n), unit="D")
    moved = rng.random(n) < MOVE_ON
    in_b = pd.to_timedelta(rng.exponential(STAY_B, n), unit="D")
    won = moved & (rng.random(n) < WIN_IN_B)
    enter_b = created + in_a
    closed = pd.Series(np.where(moved, enter_b + in_b, enter_b))
    cut = AS_OF + pd.Timedelta(days=1)
    open_ = (closed >= cut).to_numpy()
    ids = [f"O{i}" for i in range(n)]
    deals = pd.DataFrame(
        {
            "opportunity_id": ids,
            "lead_id": [f"L{i}" for i in range(n)],
            "account_id": [f"A{i}" for i in range(n)],
            "created_at": created,
            "closed_at": closed.where(~open_),
            "stage": np.where(open_, "open", np.where(won, "won", "lost")),
            "amount": np.full(n, 1000.0),
        }
    )
    entered_b = moved & (enter_b < cut)
    history = pd.concat(
        [
            pd.DataFrame({"opportunity_id": ids, "changed_at": created, "stage": "a"}),
            pd.DataFrame({"opportunity_id": np.array(ids)[entered_b], "changed_at": enter_b[entered_b], "stage": "b"}),
        ],
        ignore_index=True,
    )
    return deals, history


def _staged_truth(stage: str, h: float) -> float:
    """P(won within h days | open in the stage): stays are memoryless, so the days spent do not matter;
    from A the deal needs both stays (a hypoexponential time) within h."""
    in_b = WIN_IN_B * (1 - math.exp(-h / STAY_B))
    if stage == "b":
        return in_b
    both = 1 - (STAY_B * math.exp(-h / STAY_B) - STAY_A * math.exp(-h / STAY_A)) / (STAY_B - STAY_A)
    return MOVE_ON * WIN_IN_B * both


@pytest.mark.parametrize("horizon", [20.0, 60.0], ids=["20-days", "60-days"])
def test_close_probabilities_by_stage_recover_a_two_stage_process(horizon: float) -> None:
    deals, history = _staged()
    out = close_probabilities(deals, AS_OF.date(), horizon, history=history.assign(stage=history["stage"].str.upper()))
    assert set(out["judged_by"]) == {"stage:a", "stage:b"}
    for stage in ("a", "b"):
        mine = out[out["judged_by"] == f"stage:{stage}"]
        assert len(mine) > 40
        assert mine["p_won"].mean() == pytest.approx(_staged_truth(stage, horizon), abs=0.03), stage


def test_stage_rows_of_deals_not_modelled_change_nothing() -> None:
    """A renewal's or a sales-sourced deal's stage history must not enter the estimate as deals with
    no outcome (it did, and halved the chance of winning of every open deal)."""
    deals, history = _staged(1500, seed=5)
    others = pd.DataFrame(
        {
            "opportunity_id": [f"R{i}" for i in range(3000)],
            "changed_at": AS_OF - pd.to_timedelta(np.linspace(1, 800, 3000), unit="D"),
            "stage": "b",
        }
    )
    a = close_probabilities(deals, AS_OF.date(), 30.0, history=history, draws=500)
    b = close_probabilities(deals, AS_OF.date(), 30.0, history=pd.concat([history, others]), draws=500)
    assert a["p_won"].tolist() == b["p_won"].tolist()


@pytest.mark.slow
def test_bookings_intervals_hold_the_truth_at_their_rate() -> None:
    """P10-P90 of a quarter's bookings holds the actual in 72-88% of 200 simulated pipelines (two-stage
    process above, deals created at a steady rate, amounts lognormal), forecast as of mid-quarter."""
    q = Quarter(2026, 1)
    hits = 0
    for rep in range(200):
        rng = np.random.default_rng(1000 + rep)
        n = 1400
        created = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.uniform(0, 1185, n), unit="D")
        in_a = pd.to_timedelta(rng.exponential(STAY_A, n), unit="D")
        moved = rng.random(n) < MOVE_ON
        won = moved & (rng.random(n) < WIN_IN_B)
        enter_b = created + in_a
        closed = pd.Series(np.where(moved, enter_b + pd.to_timedelta(rng.exponential(STAY_B, n), unit="D"), enter_b))
        ids = [f"O{i}" for i in range(n)]
        deals = pd.DataFrame(
            {
                "opportunity_id": ids,
                "lead_id": ids,
                "account_id": ids,
                "created_at": created,
                "closed_at": closed,
                "stage": np.where(won, "won", "lost"),
                "amount": np.round(rng.lognormal(10, 0.5, n), -2),
            }
        )
        history = pd.concat(
            [
                pd.DataFrame({"opportunity_id": ids, "changed_at": created, "stage": "a", "amount": deals["amount"]}),
                pd.DataFrame(
                    {"opportunity_id": np.array(ids)[moved], "changed_at": enter_b[moved], "stage": "b",
                     "amount": deals["amount"][moved]}
                ),
            ],
            ignore_index=True,
        )  # fmt: skip
        frames = {"opportunities": deals, "opportunity_history": history}
        f = forecast_quarter(frames, q, "2026-02-14", metrics=("bookings",), draws=1000, seed=rep)["bookings"]
        in_q = (deals["stage"] == "won") & (deals["closed_at"] >= "2026-01-01") & (deals["closed_at"] < "2026-04-01")
        actual = deals.loc[in_q, "amount"].sum()
        hits += f.p10 <= actual <= f.p90
    assert 0.72 <= hits / 200 <= 0.88


def test_forecast_rows_take_the_kpi_rows_status_and_baseline() -> None:
    m = {
        "kpis": [{"metric": "leads", "target": 766.0, "baseline": 600.0, "status": "at risk"}],
        "forecast": {
            "leads": {"so_far": 181.0, "p10": 653.0, "p50": 714.0, "p90": 780.0, "target": 766.0,
                      "probability_to_hit": 0.16},
            "bookings": {"so_far": 9e4, "p10": 5e5, "p50": 7.5e5, "p90": 9e5, "target": 7e5, "probability_to_hit": 0.6},
            "all_bookings": {"so_far": 1e5, "p10": 1e6, "p50": 2e6, "p90": 3e6, "target": None},
            "sqls": {"p50": None, "target": 140.0, "reason": "needs leads"},
        },
    }  # fmt: skip
    rows = forecast_rows(m)
    assert [r["key"] for r in rows] == ["bookings forecast", "leads"]  # METRICS order; no target or P50: left out
    assert rows[1]["status"] == "at risk" and rows[1]["baseline"] == 600.0 and rows[1]["label"] == "Leads"
    # no KPI row on lead revenue: the one rule judges the P50 against the target (750k of 700k: on track)
    assert rows[0]["status"] == "on track" and rows[0]["baseline"] is None and rows[0]["unit"] == "money"


def test_forecasts_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NO_FORECAST_ENV, "1")
    block, why = metrics_block(SimpleNamespace(quarter=Quarter(2026, 4)))
    assert block is None and NO_FORECAST_ENV in why


@pytest.mark.slow
def test_metrics_json_has_forecasts_only_for_a_quarter_in_progress() -> None:
    from kpi_helpers.metrics import QuarterKpis
    from kpi_helpers.source import DataSource

    src = DataSource.open(SAMPLE)
    m = QuarterKpis(src, "current").metrics()
    assert m["in_progress"] and set(m["forecast"]) == set(METRICS)
    revenue = m["forecast"]["revenue"]
    assert {"p10", "p50", "p90", "target", "probability_to_hit", "as_of"} <= set(revenue)
    assert revenue["as_of"] == m["data_end"] and revenue["target"] == pytest.approx(m["revenue_target"])
    assert revenue["p10"] <= revenue["p50"] <= revenue["p90"] and 0 <= revenue["probability_to_hit"] <= 1
    # the status judges the forecast's P50
    won = next(k for k in m["kpis"] if k["metric"] == "won_deals")
    assert won["projected"] == m["forecast"]["won_deals"]["p50"]
    done = QuarterKpis(src, "latest").metrics()
    assert done["forecast"] is None and "not in progress" in done["undefined"]["forecast"]


@pytest.mark.slow
def test_year_targets_equal_each_quarters_own() -> None:
    from kpi_helpers.source import DataSource

    src = DataSource.open(SAMPLE)
    quarters = [src.quarter(q) for q in ("2024Q3", "2024Q4", "2025Q1")]
    by_year = year_targets(src, quarters)
    for q in quarters:
        assert by_year[q.label] == pytest.approx(quarter_targets(src, q), rel=1e-12), q.label


def test_integer_deal_codes_give_the_same_probabilities_as_text_ids() -> None:
    """The loader swaps deal ids for integer codes that keep their text order
    (:func:`kpi_helpers.asof.load_frames`, for speed); the pipeline model must not notice."""
    deals, history = _staged(800, seed=3)
    codes = {d: i for i, d in enumerate(sorted(deals["opportunity_id"]))}
    text = close_probabilities(deals, AS_OF.date(), 30.0, history=history, draws=300)
    coded = close_probabilities(
        deals.assign(opportunity_id=deals["opportunity_id"].map(codes)),
        AS_OF.date(),
        30.0,
        history=history.assign(opportunity_id=history["opportunity_id"].map(codes)),
        draws=300,
    )
    assert coded["p_won"].tolist() == text["p_won"].tolist()
    assert coded["judged_by"].tolist() == text["judged_by"].tolist()
