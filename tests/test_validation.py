"""Validation: every broken export is refused naming file, column and rows; suspicious ones warn.

Each case edits a copy of ``tests/fixtures/tiny`` (or writes it as Parquet) and checks the verdict.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kpi_helpers.exceptions import SchemaError
from kpi_helpers.source import DataSource
from kpi_helpers.validation import _stray_months

TINY = Path(__file__).parent / "fixtures" / "tiny"


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    shutil.copytree(TINY, folder)
    return folder


def edit(folder: Path, table: str, old: str, new: str, count: int = 1) -> None:
    p = folder / f"{table}.csv"
    text = p.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {p.name}"
    p.write_text(text.replace(old, new, count), encoding="utf-8")


def problems(folder: Path) -> list[str]:
    with pytest.raises(SchemaError) as err:
        DataSource.open(folder)
    return [str(p) for p in err.value.problems]


# (table, old text, new text, column named, words in the message)
REFUSED = [
    (
        "spend",
        "2025-01-01,Paid Search,Brand,media,1000",
        "2025-01-01,Paid Search,Brand,media,NaN",
        "amount",
        "a number",
    ),
    (
        "spend",
        "2025-01-01,Paid Search,Brand,media,1000",
        "2025-01-01,Paid Search,Brand,media,inf",
        "amount",
        "a number",
    ),
    ("spend", "media,1000", "media,1e300", "amount", "a value up to 1,000,000,000,000"),
    ("spend", "media,1000", "media,1e400", "amount", "a value up to"),
    ("web_sessions", ",600,500,", ",9223372036854775807,500,", "sessions", "a value up to"),
    ("web_sessions", ",600,500,", ",600.5,500,", "sessions", "a whole number"),
    ("leads", "2025-02-01 09:00:00,Paid", "epoch,Paid", "created_at", "ISO date-time"),
    ("leads", "2025-02-01 09:00:00,Paid", "infinity,Paid", "created_at", "ISO date-time"),
    ("opportunities", "won,10000", "won,NaN", "amount", "a number"),
    ("spend", "2025-01-01,Organic", "1899-12-31,Organic", "date", "years 1900-2200"),
    ("leads", "2025-02-01 09:00:00,Paid", "2/13/2025 09:00,Paid", "created_at", '"%m/%d/%Y %H:%M"'),
]


@pytest.mark.parametrize(
    ("table", "old", "new", "column", "words"),
    REFUSED,
    ids=["nan", "inf", "1e300", "1e400", "int64-max", "fractional-count", "epoch", "infinity", "nan-amount",
         "year-1899", "us-date-hint"],
)  # fmt: skip
def test_broken_values_are_refused(tiny, table, old, new, column, words):
    edit(tiny, table, old, new)
    found = problems(tiny)
    assert any(f"column `{column}`" in p and words in p for p in found), found


def write_parquet(folder: Path, table: str, frame: pd.DataFrame) -> None:
    (folder / f"{table}.csv").unlink()
    # NaN stays NaN (not null) in float columns, as other tools write it.
    arrays = {c: pa.array(frame[c], from_pandas=frame[c].dtype.kind != "f") for c in frame.columns}
    pq.write_table(pa.table(arrays), folder / f"{table}.parquet")


@pytest.mark.parametrize(
    ("value", "words"),
    [(float("nan"), "finite number"), (float("inf"), "finite number"), (1e300, "a value up to"), (2.5, "whole number")],
    ids=["nan", "inf", "1e300", "fraction"],
)
def test_parquet_numbers_are_checked_like_text(tiny, value, words):
    frame = pd.read_csv(tiny / "web_sessions.csv")
    frame["sessions"] = frame["sessions"].astype(float)
    frame.loc[0, "sessions"] = value
    write_parquet(tiny, "web_sessions", frame)
    found = problems(tiny)
    assert any("column `sessions`" in p and words in p for p in found), found


def test_currency_other_than_the_sources_is_refused(tiny):
    edit(tiny, "spend", "date,channel,campaign,cost_type,amount", "date,channel,campaign,cost_type,amount,currency")
    text = (tiny / "spend.csv").read_text().splitlines()
    body = [line + (",EUR" if i == 2 else ",USD") for i, line in enumerate(text[1:], start=1)]
    (tiny / "spend.csv").write_text("\n".join([text[0], *body]) + "\n")
    found = problems(tiny)
    assert any("column `currency`" in p and "USD" in p and "'EUR'" in p for p in found), found


def test_a_stray_date_is_refused_and_never_moves_latest(tiny):
    edit(tiny, "leads", "L5,2025-05-05 12:00:00", "L5,2062-05-05 12:00:00")
    found = problems(tiny)
    assert any("column `created_at`" in p and "2062-05-05" in p and "days away" in p for p in found), found


def test_an_export_appended_to_itself_is_refused(tiny):
    text = (tiny / "spend.csv").read_text()
    header, body = text.split("\n", 1)
    (tiny / "spend.csv").write_text(header + "\n" + body + body)
    found = problems(tiny)
    assert any("repeat earlier rows exactly" in p and "7-12" in p for p in found), found


def test_an_isolated_duplicate_row_is_a_warning(tiny):
    text = (tiny / "spend.csv").read_text().splitlines()
    (tiny / "spend.csv").write_text("\n".join([*text, text[1]]) + "\n")
    src = DataSource.open(tiny)
    assert any("repeat an earlier row exactly" in w for w in src.warnings), src.warnings


def test_stages_out_of_order_are_a_warning_and_left_out_of_timing(tiny):
    # L1 became an MQL before it was created (a lifecycle reset): counted, warned, not timed.
    edit(
        tiny,
        "leads",
        "L1,2025-01-15 10:00:00,Organic Search,SEO,/,2025-01-20",
        "L1,2025-01-15 10:00:00,Organic Search,SEO,/,2025-01-10",
    )
    src = DataSource.open(tiny)
    assert any("`mql_at` before `created_at`" in w for w in src.warnings), src.warnings
    from kpi_helpers import facts
    from kpi_helpers.periods import parse_quarter

    q = parse_quarter("2025Q1")
    f = facts.cohort_funnel(src, q.start, q.end, by="channel")
    assert f.loc["Organic Search", "mqls"] == 1  # still counted as an MQL
    assert pd.isna(f.loc["Organic Search", "days_lead_to_mql"])  # but not timed (-5 days)


def test_time_zones_one_rule_for_text_and_parquet(tiny):
    # 2025-03-31 23:30 at UTC-02:00 is 2025-04-01 01:30 UTC: a Q2 lead, from CSV and from Parquet alike.
    edit(tiny, "leads", "L3,2025-03-31 23:59:59", "L3,2025-03-31 23:30:00-02:00")
    q1 = pd.Timestamp("2025-04-01")
    src = DataSource.open(tiny)
    leads = src.table("leads")
    assert src.fetch(leads.filter(leads.created_at < q1).count()) == 2
    frame = pd.read_csv(tiny / "leads.csv")
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="mixed")
    write_parquet(tiny, "leads", frame)
    src = DataSource.open(tiny)
    leads = src.table("leads")
    assert src.fetch(leads.filter(leads.created_at < q1).count()) == 2


def test_time_zone_from_goals_shifts_dates(tiny):
    # In Europe/Berlin, 2025-03-31 23:30 UTC is 2025-04-01 01:30: the lead moves to Q2.
    edit(tiny, "leads", "L3,2025-03-31 23:59:59", "L3,2025-03-31 23:30:00Z")
    (tiny / "goals.yml").write_text("timezone: Europe/Berlin\n")
    src = DataSource.open(tiny)
    leads = src.table("leads")
    assert src.fetch(leads.filter(leads.created_at < pd.Timestamp("2025-04-01")).count()) == 2


def test_overlapping_files_of_one_table_are_refused(tiny):
    from kpi_helpers import validation
    from kpi_helpers.schema import CONTRACT

    frame = pd.DataFrame(
        {
            "__file": ["jan.csv", "jan.csv", "janfeb.csv"],
            "date": pd.to_datetime(["2025-01-01", "2025-01-31", "2025-01-15"]),
        }
    )
    import ibis

    t = ibis.memtable(frame)
    found = validation.overlapping_files(CONTRACT["spend"], t, "spend")
    assert found and "jan.csv and janfeb.csv" in str(found[0])


def test_stray_months_finds_small_far_clusters_only():
    months = pd.to_datetime(["1970-01-01", "2024-01-01", "2024-02-01", "2025-01-01", "2026-06-01"])
    h = pd.DataFrame({"m": months, "n": [1, 300, 300, 300, 300]})
    # 1970 is far and tiny: stray. 2026-06 is 17 months after 2025-01 but holds a fifth of the rows: real.
    assert _stray_months(h) == [(pd.Timestamp("1970-01-01"), pd.Timestamp("1970-01-01"))]


def test_warnings_survive_the_validation_cache(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("KPI_CACHE_DIR", str(tmp_path / "cache"))
    text = (tiny / "spend.csv").read_text().splitlines()
    (tiny / "spend.csv").write_text("\n".join([*text, text[1]]) + "\n")
    first = DataSource.open(tiny).warnings
    again = DataSource.open(tiny).warnings  # validated before: read from the stamp
    assert first and again == first


def test_an_unreadable_close_date_is_one_problem_not_two(tiny):
    edit(tiny, "opportunities", "2025-03-20 10:00:00,won", "20/03/2025,won")
    found = problems(tiny)
    assert len([p for p in found if "closed_at" in p]) == 1, found


# --- the optional tables and columns: opportunity_history, experiments, opportunities.type ---------

HISTORY = """opportunity_id,changed_at,stage,amount
O1,2025-02-05 10:00:00,qualification,9000
O1,2025-03-01 10:00:00,proposal,10000
O1,2025-03-20 10:00:00,won,10000
O3,2025-03-01 10:00:00,discovery,8000
"""
EXPERIMENTS = """channel,start,end,x,delta_x,delta_y,sigma
Paid Search,2025-02-03,2025-03-02,1000,-500,-2.5,1.2
Paid Social,2025-04-07,2025-05-04,800,800,1.5,0.9
"""


@pytest.fixture
def extended(tiny: Path) -> Path:
    (tiny / "opportunity_history.csv").write_text(HISTORY)
    (tiny / "experiments.csv").write_text(EXPERIMENTS)
    p = tiny / "opportunities.csv"
    rows = p.read_text().splitlines()
    types = ["type", "New", "", "", "expansion", ""]  # blank is new business
    p.write_text("\n".join(f"{r},{t}" for r, t in zip(rows, types, strict=True)) + "\n")
    return tiny


def test_the_optional_tables_and_type_are_read(extended):
    src = DataSource.open(extended)
    assert {"opportunity_history", "experiments"} <= src.present
    exp = src.fetch(src.table("experiments"))
    assert exp.delta_x.tolist() == [-500.0, 800.0]  # a `number` may be negative
    types = src.fetch(src.table("opportunities").type)
    assert sorted(t for t in types if t is not None and not pd.isna(t)) == ["expansion", "new"]


# (table, old text, new text, column named, words in the message)
REFUSED_NEW = [
    ("opportunities", "won,4000,expansion", "won,4000,upsell", "type", "one of new, renewal, expansion"),
    ("opportunity_history", "O3,2025-03-01", "O9,2025-03-01", "opportunity_id", "exist in `opportunities"),
    ("opportunity_history", "O3,2025-03-01 10:00:00", "O3,2025-02-01 10:00:00", "changed_at", "created_at"),
    ("experiments", "1000,-500,", "1000,-1500,", "delta_x", "x + delta_x >= 0"),
    ("experiments", "-2.5,1.2", "-2.5,0", "sigma", "> 0"),
    ("experiments", "2025-02-03,2025-03-02", "2025-03-03,2025-03-02", "end", "end >= start"),
    ("experiments", "800,800,", "-800,800,", "x", "a value >= 0"),
]


@pytest.mark.parametrize(
    ("table", "old", "new", "column", "words"),
    REFUSED_NEW,
    ids=["unknown-type", "dangling-history", "history-before-creation", "spend-below-zero", "zero-sigma",
         "end-before-start", "negative-x"],
)  # fmt: skip
def test_broken_optional_tables_are_refused(extended, table, old, new, column, words):
    edit(extended, table, old, new)
    found = problems(extended)
    assert any(f"column `{column}`" in p and words in p for p in found), found


def test_a_stage_change_after_the_close_is_a_warning(extended):
    edit(extended, "opportunity_history", "O3,2025-03-01 10:00:00,discovery", "O1,2025-04-01 10:00:00,negotiation")
    src = DataSource.open(extended)
    assert any("after they were won or lost" in w for w in src.warnings), src.warnings
