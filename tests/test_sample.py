"""Tests of the sample data generator: contract, invariants, determinism, scaling and the committed sample."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kpi_helpers.sample import CHANNELS, CONTENT_TYPES, DEVICES, generate
from kpi_helpers.schema import CONTRACT, COST_TYPES, GOALS, STAGES, UNALLOCATED

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
SEED, SCALE = 7, 0.1  # the small data set most tests read (about 1,000 leads)
START, END = "2021-01-01", "2026-10-20"

#: how each kind of column is written to CSV
CSV_FORMATS = {
    "string": r".+",
    "date": r"\d{4}-\d{2}-\d{2}",
    "timestamp": r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}",
    "count": r"\d+",
    "amount": r"\d+\.\d{2}",
    "seconds": r"\d+",
}
PARQUET_TYPES = {
    "string": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "count": pa.int64(),
    "amount": pa.float64(),
    "seconds": pa.float64(),
}


def read(folder: Path) -> dict[str, pd.DataFrame]:
    """Every table as text, empty cells as ""."""
    return {name: pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False) for name in CONTRACT}


def ts(col: pd.Series) -> pd.Series:
    return pd.to_datetime(col.replace("", None), format="%Y-%m-%d %H:%M:%S")


def num(col: pd.Series) -> pd.Series:
    return pd.to_numeric(col.replace("", None))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("sample")
    return out, generate(out, seed=SEED, scale=SCALE)


@pytest.fixture(scope="module")
def t(small: tuple[Path, dict[str, int]]) -> dict[str, pd.DataFrame]:
    return read(small[0])


@pytest.fixture(scope="module")
def committed() -> dict[str, pd.DataFrame]:
    return read(SAMPLE)


# --- files and the contract -------------------------------------------------------------------------


def test_one_file_per_table_and_row_counts(small: tuple[Path, dict[str, int]], t: dict[str, pd.DataFrame]) -> None:
    out, counts = small
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.csv" for name in CONTRACT)
    assert list(counts) == list(CONTRACT)
    assert counts == {name: len(df) for name, df in t.items()}
    assert all(n > 0 for n in counts.values())


@pytest.mark.parametrize("table", list(CONTRACT))
def test_columns_and_values_follow_the_contract(t: dict[str, pd.DataFrame], table: str) -> None:
    df = t[table]
    assert list(df.columns) == CONTRACT[table].column_names
    for col in CONTRACT[table].columns:
        values = df[col.name]
        empty = values == ""
        assert col.nullable or not empty.any(), f"{table}.{col.name} has empty cells"
        bad = values[~empty & ~values.str.fullmatch(CSV_FORMATS[col.kind])]
        assert bad.empty, f"{table}.{col.name}: not {col.kind}: {bad.head(3).tolist()}"
        if col.accepted:
            assert set(values[~empty]) <= set(col.accepted)
        if col.unique:
            assert values.is_unique, f"{table}.{col.name} has duplicates"


def test_ids(t: dict[str, pd.DataFrame]) -> None:
    assert t["leads"].lead_id.str.fullmatch(r"L\d{6,}").all()
    assert t["opportunities"].opportunity_id.str.fullmatch(r"O\d{6,}").all()
    assert t["opportunities"].account_id.str.fullmatch(r"A\d{5,}").all()
    assert t["leads"].lead_id.iloc[0] == "L000001"
    assert t["opportunities"].opportunity_id.is_unique


def test_labels_are_known(t: dict[str, pd.DataFrame]) -> None:
    channels = set(CHANNELS)
    for table in ("web_sessions", "web_goals", "leads", "touchpoints"):
        assert set(t[table].channel) <= channels, table
    assert set(t["spend"].channel) <= channels | {UNALLOCATED}
    assert set(t["opportunities"].stage) == set(STAGES)
    assert set(t["spend"].cost_type) <= set(COST_TYPES)
    assert {"media", "labor", "sales"} <= set(t["spend"].cost_type)
    assert set(t["web_goals"].goal) <= set(GOALS)
    assert set(t["web_sessions"].device) <= set(DEVICES)
    assert set(t["content"].asset_type) == set(CONTENT_TYPES)


def test_everything_is_within_the_data_period(t: dict[str, pd.DataFrame]) -> None:
    lo, hi = pd.Timestamp(START), pd.Timestamp(END) + pd.Timedelta("1D")
    for table in CONTRACT:
        for col in CONTRACT[table].columns:
            if col.kind in ("date", "timestamp"):
                values = t[table][col.name].replace("", None).dropna()
                when = pd.to_datetime(values)
                assert ((when >= lo) & (when < hi)).all(), f"{table}.{col.name}"
    # every core table reaches the last day, so "current quarter" pacing has the same end everywhere
    for table, col in (("web_sessions", "date"), ("spend", "date"), ("leads", "created_at")):
        assert pd.to_datetime(t[table][col]).max().date() == pd.Timestamp(END).date(), table


# --- references and row rules -----------------------------------------------------------------------


def test_references_hold(t: dict[str, pd.DataFrame]) -> None:
    leads = set(t["leads"].lead_id)
    opp_leads = t["opportunities"].lead_id
    assert set(opp_leads[opp_leads != ""]) <= leads
    assert set(t["touchpoints"].lead_id) <= leads
    assert opp_leads[opp_leads != ""].is_unique  # a lead becomes at most one deal


def test_funnel_milestones_are_in_order(t: dict[str, pd.DataFrame]) -> None:
    leads = t["leads"]
    created, mql, sql = ts(leads.created_at), ts(leads.mql_at), ts(leads.sql_at)
    assert (mql.dropna() >= created[mql.notna()]).all()
    assert mql[sql.notna()].notna().all()  # SQLs are a subset of MQLs
    assert (sql.dropna() >= mql[sql.notna()]).all()
    assert created.is_monotonic_increasing
    assert created.dt.hour.between(8, 17).all()  # office hours

    opps = t["opportunities"].merge(leads[["lead_id", "sql_at"]], on="lead_id", how="left")
    opp_created, closed = ts(opps.created_at), ts(opps.closed_at)
    from_lead = opps.lead_id != ""
    assert (opp_created[from_lead] > ts(opps.sql_at[from_lead])).all()
    assert ((opps.stage == "open") == closed.isna()).all()
    assert (closed.dropna() >= opp_created[closed.notna()]).all()
    days = (closed - opp_created).dt.days.dropna()
    assert days.between(29, 185).all()


def test_touchpoints_tell_journeys(t: dict[str, pd.DataFrame]) -> None:
    touches, leads = t["touchpoints"], t["leads"]
    per_lead = touches.groupby("lead_id").size()
    assert per_lead.index.size == len(leads)
    assert per_lead.between(1, 8).all()
    # each lead has a touch at its creation, on its own channel and campaign
    own = leads.merge(
        touches,
        left_on=["lead_id", "created_at", "channel", "campaign"],
        right_on=["lead_id", "touched_at", "channel", "campaign"],
        how="left",
        indicator=True,
    )
    assert (own.drop_duplicates("lead_id")._merge == "both").all()
    # and won deals from leads have a touch near their close
    won = t["opportunities"].query("stage == 'won' and lead_id != ''")
    last = touches.groupby("lead_id").touched_at.max()
    gap = ts(won.closed_at).to_numpy() - ts(last[won.lead_id]).to_numpy()
    assert (gap >= pd.Timedelta(0)).all() and (gap <= pd.Timedelta("10D")).all()


def test_web_sessions_are_consistent(t: dict[str, pd.DataFrame]) -> None:
    web = t["web_sessions"]
    sessions, users, new, engaged, pageviews = (
        num(web[c]) for c in ("sessions", "users", "new_users", "engaged_sessions", "pageviews")
    )
    assert (sessions >= 1).all()
    assert (engaged <= sessions).all()
    assert (new <= users).all() and (users <= sessions).all()
    assert (pageviews >= sessions).all()
    assert not web.duplicated(["date", "channel", "source", "medium", "device", "landing_page"]).any()
    # each goal's completions are a small part of the sessions they come from (a session may
    # complete several goals)
    keys = ["date", "channel", "landing_page"]
    visits = web.assign(n=sessions).groupby(keys).n.sum()
    goals = t["web_goals"].assign(n=num(t["web_goals"].completions)).set_index(keys)
    assert (goals.n <= visits.reindex(goals.index)).all()
    assert goals.n.sum() < 0.1 * visits.sum()


def test_content_fills_only_what_applies(t: dict[str, pd.DataFrame]) -> None:
    content = t["content"]
    filled = content[["views", "email_sends", "email_opens", "attendees"]] != ""
    expected = {
        "blog": [True, False, False, False],
        "email": [False, True, True, False],
        "webinar": [True, False, False, True],
        "event": [False, False, False, True],
        "print": [True, False, False, False],
    }
    for kind, cols in expected.items():
        assert (filled[content.asset_type == kind] == cols).all().all(), kind
    email = content[content.asset_type == "email"]
    assert (num(email.email_opens) <= num(email.email_sends)).all()


def test_revenue_covers_complete_months(t: dict[str, pd.DataFrame]) -> None:
    month = pd.to_datetime(t["revenue"].month)
    assert (month.dt.day == 1).all()
    assert list(month) == list(pd.date_range(START, "2026-09-01", freq="MS"))  # 2026-10 is not closed yet


def test_spend_is_daily_for_ads_and_monthly_otherwise(t: dict[str, pd.DataFrame]) -> None:
    spend = t["spend"]
    day = pd.to_datetime(spend.date).dt.day
    ads = spend.channel.isin(["Paid Search", "Paid Social"]) & (spend.cost_type == "media")
    assert (day[~ads] == 1).all()
    assert (day[ads] > 1).any()
    assert not spend.duplicated(["date", "channel", "campaign", "cost_type"]).any()


# --- arguments, determinism, scale and formats ------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path, fmt: str) -> None:
    a, b, c = (generate(tmp_path / d, seed=s, scale=0.05, fmt=fmt) for d, s in (("a", 3), ("b", 3), ("c", 4)))
    assert a == b
    for name in CONTRACT:
        assert (tmp_path / "a" / f"{name}.{fmt}").read_bytes() == (tmp_path / "b" / f"{name}.{fmt}").read_bytes()
    assert (tmp_path / "a" / f"leads.{fmt}").read_bytes() != (tmp_path / "c" / f"leads.{fmt}").read_bytes()
    assert a != c


def test_scale_multiplies_the_data(tmp_path: Path, small: tuple[Path, dict[str, int]]) -> None:
    big = generate(tmp_path, seed=SEED, scale=4 * SCALE)
    ratio = {name: big[name] / n for name, n in small[1].items()}
    for name in ("leads", "touchpoints", "opportunities"):
        assert ratio[name] == pytest.approx(4, rel=0.15), name
    visits = num(pd.read_csv(tmp_path / "web_sessions.csv", dtype=str).sessions).sum()
    assert visits / num(read(small[0])["web_sessions"].sessions).sum() == pytest.approx(4, rel=0.05)
    # Below scale 1 most rows hold a single visit, so rows grow slower than visits; from scale 1 on
    # the site grows with the traffic (about 0.1, 0.8 and 11 million rows at scale 1, 10 and 100).
    assert 2 < ratio["web_sessions"] < 4
    assert ratio["revenue"] == 1  # the same months, bigger amounts
    total = {
        name: [num(pd.read_csv(d / f"{name}.csv", dtype=str)[col]).sum() for d in (tmp_path, small[0])]
        for name, col in (("spend", "amount"), ("revenue", "revenue"))
    }
    assert total["spend"][0] / total["spend"][1] == pytest.approx(4, rel=0.1)
    assert 2.5 < total["revenue"][0] / total["revenue"][1] < 6  # a few dozen deals at scale 0.1: noisy


def test_parquet_has_contract_types_and_the_same_rows(tmp_path: Path, t: dict[str, pd.DataFrame]) -> None:
    counts = generate(tmp_path, seed=SEED, scale=SCALE, fmt="parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{name}.parquet" for name in CONTRACT)
    for name, table in CONTRACT.items():
        schema = pq.read_schema(tmp_path / f"{name}.parquet")
        assert schema.names == table.column_names
        assert [schema.field(c.name).type for c in table.columns] == [PARQUET_TYPES[c.kind] for c in table.columns]
        assert counts[name] == len(t[name])
    leads = pq.read_table(tmp_path / "leads.parquet").to_pandas()
    assert list(leads.lead_id) == list(t["leads"].lead_id)
    assert (leads.created_at == ts(t["leads"].created_at)).all()
    assert leads.campaign.isna().sum() == (t["leads"].campaign == "").sum()
    opps = pq.read_table(tmp_path / "opportunities.parquet").to_pandas()
    assert opps.amount.tolist() == num(t["opportunities"].amount).tolist()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fmt": "xlsx"}, "`fmt`"),
        ({"scale": 0}, "`scale`"),
        ({"scale": -1.0}, "`scale`"),
        ({"scale": math.nan}, "`scale`"),
        ({"scale": math.inf}, "`scale`"),
        ({"start": "2026-01-01", "end": "2025-01-01"}, "`end`"),
    ],
    ids=["format", "zero-scale", "negative-scale", "nan-scale", "inf-scale", "end-before-start"],
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate(tmp_path, **kwargs)


# --- the committed sample ---------------------------------------------------------------------------


def test_committed_sample_is_what_the_generator_writes(tmp_path: Path) -> None:
    generate(tmp_path, seed=42, scale=1)
    assert sorted(p.name for p in SAMPLE.glob("*.csv")) == sorted(f"{name}.csv" for name in CONTRACT)
    for name in CONTRACT:
        assert (SAMPLE / f"{name}.csv").read_bytes() == (tmp_path / f"{name}.csv").read_bytes(), (
            f"data/sample/{name}.csv is stale: regenerate it with `kpi sample --out data/sample`"
        )


def test_committed_sample_tells_the_story(committed: dict[str, pd.DataFrame]) -> None:
    leads, opps, web, touches = (committed[n] for n in ("leads", "opportunities", "web_sessions", "touchpoints"))
    assert len(leads) == pytest.approx(10_000, rel=0.05)
    assert len(touches) == pytest.approx(30_000, rel=0.1)
    assert len(web) == pytest.approx(100_000, rel=0.1)
    sessions = num(web.sessions)
    assert 30 <= sessions.sum() / len(leads) <= 80
    assert 0.4 <= 1 - num(web.engaged_sessions).sum() / sessions.sum() <= 0.6
    assert 60 <= num(web.session_duration_s).sum() / sessions.sum() <= 200
    assert 0.4 <= (leads.mql_at != "").mean() <= 0.6
    assert (opps.lead_id == "").mean() == pytest.approx(0.2, abs=0.05)

    # leads grow year on year, and Q3 is the weakest quarter of 2025
    year = ts(leads.created_at).dt.year
    per_year = year.value_counts().sort_index().loc[2021:2025]
    assert per_year.is_monotonic_increasing
    per_quarter = ts(leads.created_at)[year == 2025].dt.quarter.value_counts()
    assert per_quarter.idxmin() == 3

    # win rates 15-40 % by channel; Events and Referral best, Paid Social worst
    deals = opps.merge(leads[["lead_id", "channel"]], on="lead_id", how="left").fillna({"channel": "sales"})
    closed = deals[deals.stage != "open"]
    win = (closed.stage == "won").groupby(closed.channel).mean()
    assert win.between(0.15, 0.40).all()
    assert set(win.nlargest(2).index) == {"Events", "Referral"}
    assert win.idxmin() == "Paid Social"

    # deals won from leads are 50-65 % of revenue in each full year after the ramp-up year
    rev = committed["revenue"].assign(year=pd.to_datetime(committed["revenue"].month).dt.year)
    won = deals[(deals.stage == "won") & (deals.lead_id != "")]
    won_by_year = num(won.amount).groupby(ts(won.closed_at).dt.year).sum()
    share = won_by_year / num(rev.revenue).groupby(rev.year).sum()
    assert share.loc[2022:2025].between(0.5, 0.65).all()
