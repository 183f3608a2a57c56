"""As-of reconstruction: nothing dated after the day survives, and the last day changes nothing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpi_helpers.asof import as_of, cutoff, max_date
from kpi_helpers.exceptions import KpiInputError

BASE = pd.Timestamp("2024-01-01")


def _frames(seed: int, n: int = 40) -> dict[str, pd.DataFrame]:
    """Random leads, deals, revenue months and stage history over two years (ordered dates)."""
    rng = np.random.default_rng(seed)
    created = BASE + pd.to_timedelta(rng.integers(0, 700 * 86400, n), unit="s")
    mql = created + pd.to_timedelta(rng.integers(0, 60 * 86400, n), unit="s")
    sql = mql + pd.to_timedelta(rng.integers(0, 60 * 86400, n), unit="s")
    leads = pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in range(n)],
            "created_at": created,
            "mql_at": pd.Series(mql).where(rng.random(n) < 0.6),
            "sql_at": pd.Series(sql).where(rng.random(n) < 0.3),
        }
    )
    o_created = created + pd.to_timedelta(rng.integers(0, 30 * 86400, n), unit="s")
    closed = pd.Series(o_created + pd.to_timedelta(rng.integers(0, 120 * 86400, n), unit="s"))
    stage = rng.choice(["won", "lost", "open"], n)
    opps = pd.DataFrame(
        {
            "opportunity_id": [f"O{i}" for i in range(n)],
            "lead_id": [f"L{i}" if i % 3 else None for i in range(n)],
            "account_id": [f"A{i}" for i in range(n)],
            "created_at": o_created,
            "closed_at": closed.where(stage != "open"),
            "stage": stage,
            "amount": rng.integers(1, 100, n).astype(float) * 1000,
        }
    )
    months = pd.date_range(BASE, periods=24, freq="MS")
    revenue = pd.DataFrame({"month": months, "revenue": rng.uniform(1e5, 2e5, len(months))})
    history = pd.DataFrame(
        {
            "opportunity_id": opps["opportunity_id"],
            "changed_at": o_created + pd.to_timedelta(rng.integers(0, 20 * 86400, n), unit="s"),
            "stage": rng.choice(["discovery", "proposal"], n),
            "amount": opps["amount"],
        }
    )
    return {"leads": leads, "opportunities": opps, "revenue": revenue, "opportunity_history": history}


DATES = {
    "leads": ("created_at", "mql_at", "sql_at"),
    "opportunities": ("created_at", "closed_at"),
    "opportunity_history": ("changed_at",),
}


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), offset=st.integers(-10, 760))
def test_nothing_dated_after_the_day_survives(seed: int, offset: int) -> None:
    frames = _frames(seed)
    day = (BASE + pd.Timedelta(days=offset)).date()
    cut = cutoff(day)
    known = as_of(frames, day)
    for name, cols in DATES.items():
        for col in cols:
            assert not (known[name][col] >= cut).any(), (name, col)
    # a revenue month is there only once it has closed
    assert ((known["revenue"]["month"] + pd.DateOffset(months=1)) <= cut).all()
    # rows created by the day are all kept; a deal closed later is open again
    assert len(known["leads"]) == int((frames["leads"]["created_at"] < cut).sum())
    opps = known["opportunities"]
    assert set(opps.loc[opps["closed_at"].isna(), "stage"]) <= {"open"}
    o = frames["opportunities"]
    reopened = (o["closed_at"] >= cut) & (o["created_at"] < cut)
    assert int(reopened.sum()) == int(
        (opps["closed_at"].isna() & opps["opportunity_id"].isin(o.loc[reopened, "opportunity_id"])).sum()
    )


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_as_of_the_last_day_is_the_identity(seed: int) -> None:
    frames = _frames(seed)
    known = as_of(frames, max_date(frames))
    for name, frame in frames.items():
        pd.testing.assert_frame_equal(known[name], frame)


@pytest.mark.parametrize(
    ("day", "stage", "leads", "mqls", "months"),
    [
        # O1 closes 2026-03-02: open on 2026-03-01, won on 2026-03-02 (a day counts to its end)
        ("2026-03-01", ["open", "open"], 2, 1, 2),
        ("2026-03-02", ["won", "open"], 2, 1, 2),
        # L2 was created on 2026-02-10: it does not exist on the 9th; February closes on the 28th
        ("2026-02-09", ["open"], 1, 0, 1),
        ("2026-02-28", ["open", "open"], 2, 1, 2),
    ],
    ids=["before-close", "close-day", "before-lead", "month-end"],
)
def test_worked_example(day: str, stage: list[str], leads: int, mqls: int, months: int) -> None:
    frames = {
        "leads": pd.DataFrame(
            {
                "lead_id": ["L1", "L2"],
                "created_at": pd.to_datetime(["2026-01-03 00:00:00", "2026-02-10 09:00:00"]),
                "mql_at": pd.to_datetime(["2026-02-20", "2026-03-05"]),
                "sql_at": pd.to_datetime([None, None]),
            }
        ),
        "opportunities": pd.DataFrame(
            {
                "opportunity_id": ["O1", "O2"],
                "lead_id": ["L1", "L2"],
                "account_id": ["A", "B"],
                "created_at": pd.to_datetime(["2026-01-05 00:00:00", "2026-02-10 10:00:00"]),
                "closed_at": pd.to_datetime(["2026-03-02 15:00", None]),
                "stage": ["won", "open"],
                "amount": [10.0, 5.0],
            }
        ),
        "revenue": pd.DataFrame(
            {"month": pd.to_datetime(["2026-01-01", "2026-02-01", "2026-03-01"]), "revenue": [1.0, 2.0, 3.0]}
        ),
    }
    known = as_of(frames, day)
    assert known["opportunities"]["stage"].tolist() == stage
    assert len(known["leads"]) == leads
    assert int(known["leads"]["mql_at"].notna().sum()) == mqls
    assert len(known["revenue"]) == months
    # the input is untouched
    assert frames["opportunities"]["stage"].tolist() == ["won", "open"]


def test_tables_it_does_not_know_pass_through() -> None:
    other = pd.DataFrame({"x": [1]})
    assert as_of({"spend": other}, dt.date(2026, 1, 1))["spend"] is other


@pytest.mark.parametrize("bad", ["not a day", None], ids=["text", "none"])
def test_a_bad_day_is_refused(bad: object) -> None:
    with pytest.raises(KpiInputError, match="as-of day"):
        cutoff(bad)


def test_open_deals_carry_the_amount_known_that_day() -> None:
    """With a stage history, an open deal's amount is the history's last before the day (the estimate
    then, not the final amount); a deal closed by the day keeps its final amount."""
    opps = pd.DataFrame(
        {
            "opportunity_id": ["O1", "O2", "O3"],
            "lead_id": ["L1", "L2", "L3"],
            "account_id": ["A1", "A2", "A3"],
            "created_at": pd.to_datetime(["2026-01-05", "2026-01-06", "2026-01-07"]),
            "closed_at": pd.to_datetime(["2026-03-20", "2026-01-20", None]),
            "stage": ["won", "won", "open"],
            "amount": [12_000.0, 8_000.0, 5_000.0],
        }
    )
    history = pd.DataFrame(
        {
            "opportunity_id": ["O1", "O1", "O1", "O2", "O2", "O3"],
            "changed_at": pd.to_datetime(
                ["2026-01-05", "2026-02-01", "2026-03-20", "2026-01-06", "2026-01-20", "2026-01-07"]
            ),
            "stage": ["qualification", "proposal", "won", "proposal", "won", "discovery"],
            "amount": [15_000.0, 11_000.0, 12_000.0, 9_000.0, 8_000.0, 5_000.0],
        }
    )
    frames = {"opportunities": opps, "opportunity_history": history}
    amounts = lambda day: as_of(frames, day)["opportunities"].set_index("opportunity_id")["amount"].to_dict()  # noqa: E731
    assert amounts("2026-01-25") == {"O1": 15_000.0, "O2": 8_000.0, "O3": 5_000.0}
    assert amounts("2026-02-15") == {"O1": 11_000.0, "O2": 8_000.0, "O3": 5_000.0}
    assert amounts("2026-03-31") == {"O1": 12_000.0, "O2": 8_000.0, "O3": 5_000.0}
    assert as_of({"opportunities": opps}, "2026-01-25")["opportunities"]["amount"].tolist() == [
        12_000.0,
        8_000.0,
        5_000.0,
    ]


def test_loaded_deal_ids_are_shared_order_keeping_codes() -> None:
    """Deals and their history get the same integer code for the same id, codes sort as the ids do,
    and a history row of a deal the table lacks keeps a code of its own."""
    from kpi_helpers.asof import _encode_deal_ids

    frames = {
        "opportunities": pd.DataFrame({"opportunity_id": ["O10", "O2", "O7"]}),
        "opportunity_history": pd.DataFrame({"opportunity_id": ["O7", "O2", "X1", "O2"]}),
    }
    _encode_deal_ids(frames)
    opp, hist = frames["opportunities"]["opportunity_id"], frames["opportunity_history"]["opportunity_id"]
    assert opp.tolist() == [0, 1, 2]  # "O10" < "O2" < "O7" as text
    assert hist.tolist() == [2, 1, 3, 1]
    assert opp.dtype == np.int64


def test_frames_are_loaded_once_per_source(tmp_path) -> None:
    """The report's forecast and its track record share one load of the deals (no second query)."""
    from kpi_helpers.asof import load_frames
    from kpi_helpers.sample import generate
    from kpi_helpers.source import DataSource

    generate(tmp_path, seed=7, scale=0.2)
    src = DataSource.open(tmp_path)
    first = load_frames(src)
    fetched = src.rows_fetched
    again = load_frames(src)
    assert src.rows_fetched == fetched
    assert again is not first and all(again[k] is first[k] for k in first)
