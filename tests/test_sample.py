"""Tests of the sample data generator: contract, invariants, determinism, scaling and the committed sample."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kpi_helpers import sample_media as M
from kpi_helpers import sample_pipeline as P
from kpi_helpers.sample import (
    CHANNELS,
    CONTENT_TYPES,
    DEVELOPMENT_SEEDS,
    DEVICES,
    HISTORY_STAGES,
    SAMPLE_TABLES,
    TRUTH,
    WIN_RATE,
    generate,
)
from kpi_helpers.schema import ACTIVITY_COST_TYPES, CONTRACT, COST_TYPES, GOALS, OPPORTUNITY_TYPES, STAGES, UNALLOCATED

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
    "number": r"-?\d+\.\d{4}",
}
PARQUET_TYPES = {
    "string": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "count": pa.int64(),
    "amount": pa.float64(),
    "seconds": pa.float64(),
    "number": pa.float64(),
}


def read(folder: Path) -> dict[str, pd.DataFrame]:
    """Every table as text, empty cells as ""."""
    return {name: pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False) for name in SAMPLE_TABLES}


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
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".kpi-sample.json", TRUTH, *(f"{name}.csv" for name in SAMPLE_TABLES)]
    )
    assert list(counts) == list(SAMPLE_TABLES)
    assert counts == {name: len(df) for name, df in t.items()}
    assert all(n > 0 for n in counts.values())


@pytest.mark.parametrize("table", list(SAMPLE_TABLES))
def test_columns_and_values_follow_the_contract(t: dict[str, pd.DataFrame], table: str) -> None:
    df = t[table]
    columns = [c for c in CONTRACT[table].columns if c.name != "currency"]  # one currency: no column
    assert list(df.columns) == [c.name for c in columns]
    for col in columns:
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
    for table in SAMPLE_TABLES:
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
    assert set(opps.type) == set(OPPORTUNITY_TYPES)
    assert (opps.lead_id[opps.type != "new"] == "").all()  # renewals and expansions come without a lead


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


def test_spend_is_daily_for_ads_weekly_for_activity_and_monthly_for_fixed_cost(t: dict[str, pd.DataFrame]) -> None:
    spend = t["spend"]
    date = pd.to_datetime(spend.date)
    activity = spend.cost_type.isin(ACTIVITY_COST_TYPES)
    ads = spend.channel.isin(["Paid Search", "Paid Social"]) & activity
    assert (date[~activity].dt.day == 1).all()  # fixed cost, as finance books it
    weekly = activity & ~ads
    assert ((date[weekly].dt.day_of_week == 0) | (date[weekly] == pd.Timestamp(START))).all()  # Mondays
    assert (date[ads].dt.day_of_week > 0).any()
    assert not spend.duplicated(["date", "channel", "campaign", "cost_type"]).any()
    # six channels have activity cost; Direct has none
    assert set(spend.channel[activity]) == set(M.MEDIA_CHANNELS)


# --- arguments, determinism, scale and formats ------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path, fmt: str) -> None:
    a, b, c = (generate(tmp_path / d, seed=s, scale=0.05, fmt=fmt) for d, s in (("a", 3), ("b", 3), ("c", 4)))
    assert a == b
    for name in SAMPLE_TABLES:
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
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".kpi-sample.json", TRUTH, *(f"{name}.parquet" for name in SAMPLE_TABLES)]
    )
    for name in SAMPLE_TABLES:
        schema = pq.read_schema(tmp_path / f"{name}.parquet")
        columns = [c for c in CONTRACT[name].columns if c.name != "currency"]
        assert schema.names == [c.name for c in columns]
        assert [schema.field(c.name).type for c in columns] == [PARQUET_TYPES[c.kind] for c in columns]
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
    assert sorted(p.name for p in SAMPLE.glob("*.csv")) == sorted(f"{name}.csv" for name in SAMPLE_TABLES)
    for name in [*(f"{t}.csv" for t in SAMPLE_TABLES), TRUTH]:
        assert (SAMPLE / name).read_bytes() == (tmp_path / name).read_bytes(), (
            f"data/sample/{name} is stale: regenerate it with `kpi sample --out data/sample`"
        )
    assert 42 in DEVELOPMENT_SEEDS  # the sample's own seed: benchmarks judge calibration on other seeds


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
    new = opps[opps.type == "new"]
    assert (new.lead_id == "").mean() == pytest.approx(0.2, abs=0.05)

    # leads grow year on year, and Q3 is the weakest quarter of 2025
    year = ts(leads.created_at).dt.year
    per_year = year.value_counts().sort_index().loc[2021:2025]
    assert per_year.is_monotonic_increasing
    per_quarter = ts(leads.created_at)[year == 2025].dt.quarter.value_counts()
    assert per_quarter.idxmin() == 3

    # new-business win rates 15-40 % by channel; Events and Referral best, Paid Social worst
    deals = new.merge(leads[["lead_id", "channel"]], on="lead_id", how="left").fillna({"channel": "sales"})
    closed = deals[deals.stage != "open"]
    win = (closed.stage == "won").groupby(closed.channel).mean()
    assert win.between(0.15, 0.40).all()
    assert set(win.nlargest(2).index) == {"Events", "Referral"}
    assert win.drop("sales").idxmin() == "Paid Social"  # of the marketing channels

    # revenue is the won deals of every type recognised over 12 months, plus services (from 2023 on
    # every deal behind a month's revenue is in the export)
    rev = committed["revenue"].assign(month=pd.to_datetime(committed["revenue"].month))
    won = opps[opps.stage == "won"]
    close = ts(won.closed_at).dt.to_period("M")
    months = pd.period_range("2021-01", "2026-09", freq="M")
    recognised = pd.Series(0.0, index=months)
    for lag in range(12):
        recognised = recognised.add((num(won.amount) / 12).groupby(close + lag).sum(), fill_value=0).loc[months]
    by_year = num(rev.revenue).groupby(rev.month.dt.year).sum() / recognised.groupby(recognised.index.year).sum()
    assert by_year.loc[2023:2025].between(1.0, 1.0 + 2 * P.SERVICES_SHARE).all()
    assert by_year.loc[2021] > by_year.loc[2025]  # 2021 also holds deals of the warm-up, not in the export


def test_the_generator_never_replaces_a_file_it_did_not_write(tmp_path: Path) -> None:
    from kpi_helpers.exceptions import KpiError

    (tmp_path / "leads.csv").write_text("lead_id\nmine\n")
    with pytest.raises(KpiError, match=r"`leads.csv`, which `kpi sample` did not write"):
        generate(tmp_path, seed=SEED, scale=0.05)
    assert (tmp_path / "leads.csv").read_text() == "lead_id\nmine\n"
    (tmp_path / "leads.csv").unlink()
    generate(tmp_path, seed=SEED, scale=0.05)
    generate(tmp_path, seed=SEED, scale=0.05)  # its own files: replaced
    (tmp_path / "spend.csv").write_text("changed since\n")
    with pytest.raises(KpiError, match="`spend.csv`"):
        generate(tmp_path, seed=SEED, scale=0.05)
    (tmp_path / "spend.csv").unlink()
    (tmp_path / TRUTH).write_text("{}\n")  # the truth is the generator's file too
    with pytest.raises(KpiError, match="`truth.json`"):
        generate(tmp_path, seed=SEED, scale=0.05)


def test_the_committed_sample_is_the_generators_own() -> None:
    written = json.loads((SAMPLE / ".kpi-sample.json").read_text())
    assert sorted(written) == sorted([TRUTH, *(f"{t}.csv" for t in SAMPLE_TABLES)])


# --- the planted truth (truth.json), the pipeline and the customers -----------------------------------


@pytest.fixture(scope="module")
def truth() -> dict:
    return json.loads((SAMPLE / TRUTH).read_text())


def weekly_activity_cost(spend: pd.DataFrame, monday0: pd.Timestamp, weeks: int) -> np.ndarray:
    """Activity cost per week (Monday to Sunday) and media channel, from the spend table."""
    act = spend[spend.cost_type.isin(ACTIVITY_COST_TYPES) & (pd.to_datetime(spend.date) >= monday0)]
    week = (pd.to_datetime(act.date) - monday0).dt.days // 7
    out = np.zeros((weeks, len(M.MEDIA_CHANNELS)))
    for c, ch in enumerate(M.MEDIA_CHANNELS):
        mine = act.channel == ch
        out[:, c] = np.bincount(week[mine], weights=num(act.amount[mine]), minlength=weeks)[:weeks]
    return out


def test_truth_json_is_what_the_spend_table_implies(committed: dict[str, pd.DataFrame], truth: dict) -> None:
    """Re-simulate the incremental leads from the written spend with the recorded parameters."""
    assert truth["target"] == "leads"
    assert set(truth["incremental_per_cost"]) == set(M.MEDIA_CHANNELS)  # six channels with activity spend
    monday0 = pd.Timestamp(START) - pd.Timedelta(days=pd.Timestamp(START).weekday())
    start, end = pd.Timestamp(truth["window"]["start"]), pd.Timestamp(truth["window"]["end"])
    weeks = (end - monday0).days // 7 + 1
    spend = weekly_activity_cost(committed["spend"], monday0, weeks)
    window = slice((start - monday0).days // 7, weeks)
    assert window.stop - window.start == truth["window"]["weeks"] == M.WINDOW_WEEKS
    sat = truth["saturation"]
    lam = np.array([sat["lam"][c] for c in M.MEDIA_CHANNELS])
    beta = np.array([sat["beta"][c] for c in M.MEDIA_CHANNELS])
    alpha = np.array([truth["adstock"]["alpha"][c] for c in M.MEDIA_CHANNELS])
    np.testing.assert_allclose(alpha, M.ADSTOCK_ALPHA)
    cost = spend[window].sum(axis=0)
    recorded = np.array([truth["activity_cost"][c] for c in M.MEDIA_CHANNELS])
    np.testing.assert_allclose(cost, recorded, rtol=1e-6)
    inc = np.zeros(len(M.MEDIA_CHANNELS))
    full = beta * M.saturation(M.adstock(spend, alpha), lam)
    for c in range(len(M.MEDIA_CHANNELS)):
        zeroed = spend.copy()
        zeroed[window, c] = 0
        inc[c] = (full - beta * M.saturation(M.adstock(zeroed, alpha), lam))[window, c].sum()
    expected = np.array([truth["incremental_leads"][c] for c in M.MEDIA_CHANNELS])
    np.testing.assert_allclose(inc, expected, rtol=1e-3)  # cents of rounding in the spend table
    per_cost = np.array([truth["incremental_per_cost"][c] for c in M.MEDIA_CHANNELS])
    np.testing.assert_allclose(per_cost, expected / recorded, rtol=1e-6)
    roi = np.array([truth["incremental_roi"][c] for c in M.MEDIA_CHANNELS])
    funnel = np.array([truth["lead_to_won"][c] * truth["deal_amount"][c] for c in M.MEDIA_CHANNELS])
    np.testing.assert_allclose(roi, per_cost * funnel, rtol=1e-6)
    assert sum(truth["contribution_share"].values()) == pytest.approx(1.0)
    # channels differ: incremental ROI spans more than a factor 5 (something for a model to rank)
    assert max(roi) / min(roi) > 5


def test_incremental_leads_were_drawn_as_the_truth_says(truth: dict) -> None:
    """The leads table holds the incremental draws: their count in the window is Poisson around the truth."""
    for ch in M.MEDIA_CHANNELS:
        expected, drawn = truth["incremental_leads"][ch], truth["incremental_leads_drawn"][ch]
        assert abs(drawn - expected) < 4 * math.sqrt(expected), ch


def test_leads_are_baseline_plus_incremental(committed: dict[str, pd.DataFrame], truth: dict) -> None:
    leads = committed["leads"]
    start, end = pd.Timestamp(truth["window"]["start"]), pd.Timestamp(truth["window"]["end"]) + pd.Timedelta("1D")
    created = ts(leads.created_at)
    in_window = ((created >= start) & (created < end)).sum()
    assert in_window == pytest.approx(truth["leads_expected"], rel=0.05)
    assert 0.25 < sum(truth["share_of_leads"].values()) < 0.6  # spend causes a good part of the leads


def test_experiments_are_consistent_with_the_truth(committed: dict[str, pd.DataFrame], truth: dict) -> None:
    exp = committed["experiments"]
    assert 2 <= len(exp) <= 3 and set(exp.channel) <= set(M.MEDIA_CHANNELS)
    sat = truth["saturation"]
    z = []
    for row, recorded in zip(exp.itertuples(), truth["experiments"], strict=True):
        c = row.channel
        x, dx, dy, sigma = (float(v) for v in (row.x, row.delta_x, row.delta_y, row.sigma))
        true = sat["beta"][c] * (M.saturation(x + dx, sat["lam"][c]) - M.saturation(x, sat["lam"][c]))
        assert true == pytest.approx(recorded["true_delta_y"], rel=1e-3)
        assert sigma > 0 and x + dx >= 0
        z.append((dy - true) / sigma)
        # the test's weeks really ran at x + delta_x
        monday0 = pd.Timestamp(row.start)
        weeks = (pd.Timestamp(row.end) - monday0).days // 7 + 1
        spend = weekly_activity_cost(committed["spend"], monday0, weeks)
        np.testing.assert_allclose(spend[:, M.MEDIA_CHANNELS.index(c)], x + dx, rtol=1e-3, atol=0.05)
    assert all(abs(v) < 3.5 for v in z), z


def test_open_pipeline_at_the_end(committed: dict[str, pd.DataFrame]) -> None:
    opps = committed["opportunities"]
    open_ = opps[opps.stage == "open"]
    assert (open_.closed_at == "").all()
    assert len(open_[open_.type == "new"]) >= 50  # a quarter's new deals or so are still open
    age = (pd.Timestamp(END) - ts(open_.created_at)).dt.days
    assert age.max() > 90  # some slip well past the usual cycle
    won = opps[(opps.stage == "won") & (opps.type == "new")]
    cycle = (ts(won.closed_at) - ts(won.created_at)).dt.days
    assert 70 < cycle.mean() < 150


def test_history_is_consistent_with_the_opportunities(committed: dict[str, pd.DataFrame]) -> None:
    hist, opps = committed["opportunity_history"], committed["opportunities"].set_index("opportunity_id")
    assert set(hist.opportunity_id) == set(opps.index)  # every deal has its history
    assert set(hist.stage) == set(HISTORY_STAGES)
    changed = ts(hist.changed_at)
    assert (changed.to_numpy() >= ts(opps.created_at.loc[hist.opportunity_id]).to_numpy()).all()
    assert changed.groupby(hist.opportunity_id).apply(lambda s: s.is_monotonic_increasing).all()
    first = hist.groupby("opportunity_id").first()
    assert (first.changed_at == opps.created_at.loc[first.index]).all()
    last = hist.groupby("opportunity_id").last()
    closed = last.stage.isin(["won", "lost"])
    o = opps.loc[last.index]
    assert (last.stage[closed] == o.stage[closed]).all()
    assert (last.changed_at[closed] == o.closed_at[closed]).all()
    assert (o.stage[~closed] == "open").all()
    assert (num(last.amount) == num(o.amount)).all()  # the deal's amount is its latest


def test_win_rates_follow_the_process(committed: dict[str, pd.DataFrame], truth: dict) -> None:
    """Deals created long enough ago have all closed: their win rate is the process's, within noise."""
    opps, leads = committed["opportunities"], committed["leads"]
    old = opps[(ts(opps.created_at) < pd.Timestamp("2025-01-01")) & (opps.type == "new")]
    assert (old.stage != "open").all()
    deals = old.merge(leads[["lead_id", "channel"]], on="lead_id", how="left").fillna({"channel": "(sales-sourced)"})
    for ch, g in deals.groupby("channel"):
        p = truth["pipeline"]["win_rate"][ch]
        assert abs((g.stage == "won").mean() - p) < 3 * math.sqrt(p * (1 - p) / len(g)) + 0.02, ch
    np.testing.assert_allclose(P.advance_probabilities(WIN_RATE).prod(axis=1), WIN_RATE)


def test_customers_renew_and_expand(committed: dict[str, pd.DataFrame]) -> None:
    opps = committed["opportunities"]
    won = opps[opps.stage == "won"]
    new_accounts = set(won.account_id[won.type == "new"])
    repeat = won[won.account_id.isin(new_accounts)].groupby("account_id").size()
    assert len(new_accounts) >= 300 and (repeat > 1).sum() >= 200  # enough repeat behaviour to model
    renewals = opps[(opps.type == "renewal") & (opps.stage != "open")]
    churn = (renewals.stage == "lost").mean()
    assert 0.08 < churn < 0.3
    assert (won.type == "expansion").sum() >= 100


@pytest.mark.parametrize("seed", DEVELOPMENT_SEEDS)
def test_development_seeds_are_listed_once(seed: int) -> None:
    assert DEVELOPMENT_SEEDS.count(seed) == 1
