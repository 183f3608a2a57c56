"""Immature cohorts: on leads from a known process, the recent quarter's steps are marked as still
maturing and their expected rates recover the truth, while an old quarter's are mature as they are."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kpi_helpers import cohorts as H
from kpi_helpers.metrics import QuarterKpis
from kpi_helpers.source import DataSource

#: the process: each stage is reached with probability p after an exponential delay (mean days)
P_MQL, P_SQL, P_OPP, P_WON = 0.5, 0.4, 0.6, 0.3
DAYS_MQL, DAYS_SQL, DAYS_OPP, DAYS_WON = 8.0, 15.0, 12.0, 75.0
END = pd.Timestamp("2026-09-30 23:59:59")


def _write_process(folder, seed: int = 11, n: int = 30_000) -> None:
    """Leads created from 2023 to 2026Q3 that move down the funnel by the process above; what happens
    after the data's end (2026-09-30) is not in the export yet."""
    rng = np.random.default_rng(seed)
    created = pd.Timestamp("2023-01-01") + pd.to_timedelta(
        rng.uniform(0, (END - pd.Timestamp("2023-01-01")).days, n), unit="D"
    )
    created = pd.Series(created).dt.floor("s")

    def step(before: pd.Series, p: float, mean_days: float) -> pd.Series:
        took = rng.random(n) < p
        return (
            (before + pd.to_timedelta(rng.exponential(mean_days, n), unit="D"))
            .where(took & before.notna())
            .dt.floor("s")
        )

    mql = step(created, P_MQL, DAYS_MQL)
    sql = step(mql, P_SQL, DAYS_SQL)
    opp = step(sql, P_OPP, DAYS_OPP)
    won = step(opp, P_WON, DAYS_WON)
    lost = (opp + pd.to_timedelta(rng.exponential(DAYS_WON, n), unit="D")).dt.floor("s").where(opp.notna() & won.isna())
    known = lambda s: s.where(s <= END)  # noqa: E731
    ids = [f"L{i:05d}" for i in range(n)]
    pd.DataFrame(
        {
            "lead_id": ids,
            "created_at": created,
            "channel": rng.choice(["Email", "Search"], n),
            "mql_at": known(mql),
            "sql_at": known(sql),
        }
    ).to_csv(folder / "leads.csv", index=False)
    has = known(opp).notna()
    closed = known(won).fillna(known(lost))
    pd.DataFrame(
        {
            "opportunity_id": [f"O{i:05d}" for i in range(n)],
            "lead_id": ids,
            "account_id": [f"A{i:05d}" for i in range(n)],
            "created_at": opp,
            "closed_at": closed,
            "stage": np.where(known(won).notna(), "won", np.where(closed.notna(), "lost", "open")),
            "amount": 10_000.0,
        }
    )[has].to_csv(folder / "opportunities.csv", index=False)


@pytest.fixture(scope="module")
def process(tmp_path_factory: pytest.TempPathFactory) -> DataSource:
    folder = tmp_path_factory.mktemp("cohorts")
    _write_process(folder)
    return DataSource.open(folder)


def test_a_recent_quarter_is_marked_maturing_and_its_expected_rate_is_the_truth(process) -> None:
    recent = H.funnel_maturity(QuarterKpis(process, "2026Q3"))
    won = recent.loc["opportunity_to_won_rate"]
    # 75 days on average to close: the quarter's deals have had a fraction of that time
    assert won["maturing"] and won["matured"] < 0.6 and won["rate_so_far"] < 0.2
    assert won["expected_rate_low"] <= P_WON <= won["expected_rate_high"]
    assert won["expected_rate"] == pytest.approx(P_WON, abs=0.1)
    # a step of a few days has nearly matured (only the last week's leads are on their way), and its
    # expected rate is the truth within its interval
    mql = recent.loc["lead_to_mql_rate"]
    assert mql["matured"] > 0.9 and mql["expected_rate_low"] <= P_MQL <= mql["expected_rate_high"]
    assert recent.attrs["as_of"] == "2026-09-30" and recent.attrs["oldest_days"] <= 92


def test_an_old_quarter_is_mature_as_it_is(process) -> None:
    old = H.funnel_maturity(QuarterKpis(process, "2025Q1"))
    assert not old["maturing"].any()
    won = old.loc["opportunity_to_won_rate"]
    assert won["rate_so_far"] == pytest.approx(won["expected_rate"], rel=0.05)
    assert won["expected_rate_low"] <= P_WON <= won["expected_rate_high"]


def test_the_expected_rate_is_unbiased_and_its_interval_holds_the_truth_at_its_rate() -> None:
    """200 replicates of deals created over two years and a quarter, each won with probability 0.3
    after Exp(75) days: the last quarter's cohort has had about a third of its time. Its rate so far
    is far below the truth; its expected rate is the truth on average, and its 90% interval holds the
    truth (0.3 within the year's horizon) in 85-95% of the replicates."""
    from kpi_helpers.forecast import cohort_maturity

    rng = np.random.default_rng(0)
    as_of, first, recent = pd.Timestamp("2026-09-30"), pd.Timestamp("2024-07-01"), pd.Timestamp("2026-07-01")
    truth = P_WON * (1 - np.exp(-365 / DAYS_WON))
    expected, so_far, hits = [], [], []
    for _ in range(200):
        start = pd.Series(first + pd.to_timedelta(rng.uniform(0, (as_of - first).days + 1, 2400), unit="D"))
        end = (start + pd.to_timedelta(rng.exponential(DAYS_WON, 2400), unit="D")).where(rng.random(2400) < P_WON)
        cohort = pd.Series(np.where(start >= recent, "recent", "earlier"))
        out = cohort_maturity(start, end, cohort, as_of, horizon_days=365).loc["recent"]
        low, high = H.expected_rate_interval(out["converted"], out["members"], out["matured"])
        expected.append(out["adjusted_rate"])
        so_far.append(out["rate_so_far"])
        hits.append(low <= truth <= high)
    assert np.mean(so_far) < 0.5 * truth
    assert np.mean(expected) == pytest.approx(truth, abs=0.01)
    assert 0.85 <= np.mean(hits) <= 0.95


def test_the_funnel_counts_the_same_leads(process) -> None:
    """The step's first stage counts the quarter's leads that reached it, as the funnel does."""
    from kpi_helpers import breakdowns as B

    kq = QuarterKpis(process, "2026Q3")
    funnel = B.channel_funnel(kq).loc[B.ALL_CHANNELS]
    steps = H.funnel_maturity(kq)
    assert steps.loc["lead_to_mql_rate", "entered"] == funnel["leads"]
    assert steps.loc["mql_to_sql_rate", "entered"] == funnel["mqls"]
    assert steps.loc["opportunity_to_won_rate", "entered"] == funnel["opportunities"]
    assert steps.loc["mql_to_sql_rate", "rate_so_far"] == pytest.approx(funnel["mql_to_sql_rate"], abs=0.01)


def test_labels_and_record_mark_the_maturing_steps() -> None:
    steps = pd.DataFrame(
        {
            "rate_so_far": [0.5, 0.05],
            "matured": [1.0, 0.2],
            "expected_rate": [0.5, 0.25],
            "maturing": [False, True],
            "days_column": ["days_lead_to_mql", "days_opportunity_to_won"],
        },
        index=["lead_to_mql_rate", "opportunity_to_won_rate"],
    )
    assert H.maturing_labels(steps) == {
        "opportunity_to_won_rate": "Opportunity to won (still maturing)",
        "days_opportunity_to_won": "Days opportunity to won (still maturing)",
    }
    assert H.maturity_record(steps)["opportunity_to_won_rate"] == {
        "matured": 0.2,
        "maturing": True,
        "rate_so_far": 0.05,
        "expected_rate": 0.25,
    }


def test_without_leads_there_is_nothing_to_mature(tmp_path) -> None:
    pd.DataFrame({"month": ["2025-01-01"], "revenue": [1.0]}).to_csv(tmp_path / "revenue.csv", index=False)
    src = DataSource.open(tmp_path)
    assert H.funnel_maturity(QuarterKpis(src, "2025Q1")).empty
