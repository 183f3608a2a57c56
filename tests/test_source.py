"""Loading and validation: one broken copy of the tiny dataset per contract rule."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from kpi_helpers.cli import main
from kpi_helpers.exceptions import KpiError, SchemaError
from kpi_helpers.source import DataSource

TINY = Path(__file__).parent / "fixtures" / "tiny"


@pytest.fixture
def tiny(tmp_path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(TINY, dst)
    return dst


def _edit(folder: Path, table: str, old: str, new: str) -> None:
    p = folder / f"{table}.csv"
    text = p.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {p.name}"
    p.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_tiny_is_valid(tiny):
    src = DataSource.open(tiny)
    assert src.fetch(src.table("leads").count()) == 5
    assert str(src.data_end) == "2025-06-30"  # the last web_sessions day; leads end 2025-05-05


# (table, old text, new text, column named in the message, words expected in the message)
BROKEN = [
    ("leads", "lead_id,created_at", "id,created_at", "lead_id", "to be present"),
    ("leads", "L2,2025-02-01", "L1,2025-02-01", "lead_id", "unique"),
    ("opportunities", "won,10000", "won,-10000", "amount", ">= 0"),
    ("leads", "2025-02-01 09:00:00,Paid", "2025-02-30 09:00:00,Paid", "created_at", "ISO date-time"),
    ("opportunities", "O3,L2,", "O3,L99,", "lead_id", "exist in `leads.lead_id`"),
    ("touchpoints", "L5,2025-05-05", "L77,2025-05-05", "lead_id", "exist in `leads.lead_id`"),
    (
        "opportunities",
        "2025-02-05 10:00:00,2025-03-20",
        "2025-02-05 10:00:00,2025-01-20",
        "closed_at",
        "closed_at >= created_at",
    ),
    ("opportunities", "lost,8000", "stalled,8000", "stage", "one of open, won, lost"),
    ("web_sessions", ",600,500,300,", ",six hundred,500,300,", "sessions", "whole number"),
    ("web_sessions", ",600,500,300,", ",600.5,500,300,", "sessions", "whole number"),
    ("spend", "media,1000", "media,", "amount", "a value in every row"),
    ("spend", "media,1000", "tv,1000", "cost_type", "one of media"),
    ("revenue", "2025-02-01,1000", "2025-02-15,1000", "month", "first day of a month"),
    ("web_sessions", "1500,360,60000", "1500,900,60000", "engaged_sessions", "engaged_sessions <= sessions"),
    ("opportunities", "2025-03-20 10:00:00,won", ",won", "closed_at", "close date when stage is won"),
    ("content", "2000,500,", "2000,5000,", "email_opens", "email_opens <= email_sends"),
]


@pytest.mark.parametrize(
    ("table", "old", "new", "column", "words"), BROKEN, ids=[f"{b[0]}-{b[3]}-{i}" for i, b in enumerate(BROKEN)]
)
def test_each_rule_is_reported(tiny, table, old, new, column, words):
    _edit(tiny, table, old, new)
    with pytest.raises(SchemaError) as err:
        DataSource.open(tiny)
    text = str(err.value)
    assert f"`{table}.csv`, column `{column}`" in text
    assert words in text


@pytest.mark.parametrize("case", [0, 4, 8], ids=["missing-column", "dangling", "text-in-count"])
def test_validate_cli_names_the_column(tiny, capsys, case):
    table, old, new, column, _ = BROKEN[case]
    _edit(tiny, table, old, new)
    assert main(["validate", "--data", str(tiny)]) == 2
    errout = capsys.readouterr().err
    assert f"column `{column}`" in errout and "Traceback" not in errout


def test_all_problems_reported_together(tiny):
    _edit(tiny, "opportunities", "won,10000", "won,-10000")
    _edit(tiny, "leads", "L2,2025-02-01", "L1,2025-02-01")
    _edit(tiny, "web_sessions", ",600,500,300,", ",x,500,300,")
    with pytest.raises(SchemaError) as err:
        DataSource.open(tiny)
    found = {(p.file, p.column) for p in err.value.problems}
    assert {("opportunities.csv", "amount"), ("leads.csv", "lead_id"), ("web_sessions.csv", "sessions")} <= found
    # the duplicate replaced L2, so the deals and touches of L2 now dangle: reported too
    assert ("opportunities.csv", "lead_id") in found and ("touchpoints.csv", "lead_id") in found


def test_row_numbers_and_values_are_named(tiny):
    _edit(tiny, "opportunities", "won,10000", "won,-10000")
    with pytest.raises(SchemaError) as err:
        DataSource.open(tiny)
    (p,) = err.value.problems
    assert p.rows == ("1",) and p.values == ("-10000",)
    assert "row 1" in str(p) and "'-10000'" in str(p)


def test_every_table_is_optional(tiny):
    (tiny / "spend.csv").unlink()
    src = DataSource.open(tiny)
    assert "spend" not in src.present and "leads" in src.present
    assert src.fetch(src.table("spend").count()) == 0


def test_missing_optional_table_is_empty(tiny):
    (tiny / "content.csv").unlink()
    src = DataSource.open(tiny)
    assert src.fetch(src.table("content").count()) == 0


@pytest.mark.slow
def test_header_only_file_is_an_empty_table(tiny):
    p = tiny / "web_goals.csv"
    p.write_text(p.read_text().splitlines()[0] + "\n")
    src = DataSource.open(tiny)
    assert src.fetch(src.table("web_goals").count()) == 0


@pytest.mark.slow
def test_utf8_bom_is_tolerated(tiny):
    p = tiny / "leads.csv"
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    src = DataSource.open(tiny)
    assert src.fetch(src.table("leads").count()) == 5


def test_parquet_file_is_read(tiny):
    df = pd.read_csv(tiny / "revenue.csv", parse_dates=["month"])
    df.to_parquet(tiny / "revenue.parquet")
    (tiny / "revenue.csv").unlink()
    src = DataSource.open(tiny)
    assert src.fetch(src.table("revenue").revenue.sum()) == 8500


@pytest.mark.slow
def test_accepted_values_are_case_insensitive(tiny):
    _edit(tiny, "opportunities", "lost,8000", " Lost ,8000")
    src = DataSource.open(tiny)
    assert set(src.fetch(src.table("opportunities").stage.name("s"))) == {"won", "lost", "open"}


def test_not_a_folder():
    with pytest.raises(KpiError, match="does not exist"):
        DataSource.open("/nonexistent/folder")


def test_validate_cli_ok(capsys):
    assert main(["validate", "--data", str(TINY)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "leads" in out


def test_fetch_counts_rows():
    src = DataSource.open(TINY)
    before = src.rows_fetched
    src.fetch(src.table("leads").group_by("channel").aggregate(n=src.table("leads").count()))
    assert src.rows_fetched - before == 3


@pytest.mark.slow
def test_fingerprint_changes_with_data(tiny):
    a = DataSource.open(tiny).fingerprint
    _edit(tiny, "spend", "media,1000", "media,1001")
    assert DataSource.open(tiny).fingerprint != a
    assert a.startswith("sha256:")


@pytest.mark.slow
def test_validated_stamp_skips_only_identical_bytes(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("KPI_CACHE_DIR", str(tmp_path / "cache"))
    DataSource.open(tiny)
    saved = sorted(p.suffix for p in (tmp_path / "cache" / "validated").iterdir())
    assert saved == ["", ".duckdb"]  # the stamp, and the typed tables of a CSV source
    again = DataSource.open(tiny)  # identical bytes: read from the cache, no parse, no checks
    assert again.fetch(again.table("leads").count()) == 5
    # same size and file name, different content: validated again, and the problem found
    _edit(tiny, "opportunities", "won,10000", "won,-1000")
    with pytest.raises(SchemaError, match="amount"):
        DataSource.open(tiny)


@pytest.mark.slow
def test_cache_can_be_turned_off(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("KPI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KPI_NO_CACHE", "1")
    DataSource.open(tiny)
    assert not (tmp_path / "cache").exists()


# ------------------------------------------------------------------ Parquet sources (read in place)


def _to_parquet(folder: Path, *, as_folder: str | None = None) -> None:
    """Rewrite every CSV of ``folder`` as Parquet with text columns (an export that kept its strings);
    ``as_folder``: that table as a folder of two Parquet files instead."""
    import pandas as pd

    for csv in sorted(folder.glob("*.csv")):
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
        if csv.stem == as_folder:
            part = folder / csv.stem
            part.mkdir()
            half = (len(df) + 1) // 2
            df.iloc[:half].to_parquet(part / "part-0.parquet", index=False)
            df.iloc[half:].to_parquet(part / "part-1.parquet", index=False)
        else:
            df.to_parquet(folder / f"{csv.stem}.parquet", index=False)
        csv.unlink()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("table", "old", "new", "column", "words"), BROKEN, ids=[f"{b[0]}-{b[3]}-{i}" for i, b in enumerate(BROKEN)]
)
def test_each_rule_is_reported_for_parquet(tiny, table, old, new, column, words):
    _edit(tiny, table, old, new)
    _to_parquet(tiny)
    with pytest.raises(SchemaError) as err:
        DataSource.open(tiny)
    text = str(err.value)
    assert f"`{table}.parquet`, column `{column}`" in text
    assert words in text


@pytest.mark.slow
def test_parquet_rows_are_numbered_per_file(tiny):
    _edit(tiny, "opportunities", "won,10000", "won,-10000")
    _to_parquet(tiny)
    with pytest.raises(SchemaError) as err:
        DataSource.open(tiny)
    assert [(p.rows, p.values) for p in err.value.problems] == [(("1",), ("-10000",))]


def test_parquet_folder_rows_name_the_file(tiny):
    _edit(tiny, "leads", "L5,2025-05-05", "L5,2025-13-05")  # the last lead: second file, its row 2
    _to_parquet(tiny, as_folder="leads")
    with pytest.raises(SchemaError) as err:
        DataSource.open(tiny)
    (p,) = err.value.problems
    assert p.file == "leads" and p.rows == ("part-1.parquet:2",)


@pytest.mark.slow
@pytest.mark.parametrize("stamped", [False, True], ids=["validated", "from-stamp"])
def test_padded_parquet_text_is_typed_like_csv(tiny, tmp_path, monkeypatch, stamped):
    """Typing is skipped only for text columns validation found clean; padding, blanks and case
    are still normalised, also when a later open reads the stamp instead of validating."""
    monkeypatch.setenv("KPI_CACHE_DIR", str(tmp_path / "cache"))
    expected = DataSource.open(tiny)
    want = expected.fetch(expected.table("leads").group_by("channel").aggregate(n=_count()).order_by("channel"))
    _edit(tiny, "leads", "L2,2025-02-01 09:00:00,Paid", "L2,2025-02-01 09:00:00, Paid")
    _edit(tiny, "opportunities", "lost,8000", " LOST ,8000")
    _to_parquet(tiny)
    src = DataSource.open(tiny)
    if stamped:
        plain = json.loads((tmp_path / "cache" / "validated" / src.cache_key).read_text())["plain"]
        assert "channel" not in plain["leads"] and "lead_id" in plain["leads"]
        assert "stage" not in plain["opportunities"]
        src = DataSource.open(tiny)
    got = src.fetch(src.table("leads").group_by("channel").aggregate(n=_count()).order_by("channel"))
    pd.testing.assert_frame_equal(got, want)
    assert set(src.fetch(src.table("opportunities").stage.name("s"))) == {"won", "lost", "open"}


def _count():
    from ibis import _

    return _.count()


# ------------------------------------------------------------------ memoised results


@pytest.mark.slow
def test_results_are_memoised_per_data(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("KPI_CACHE_DIR", str(tmp_path / "cache"))
    first = DataSource.open(tiny)
    expr = first.table("spend").amount.sum()
    assert first.fetch(expr) == 5500.0 and first.fingerprint
    results = tmp_path / "cache" / "results" / first.cache_key
    stored = sorted(results.glob("*.result"))
    assert len(stored) >= 2  # the sum and the fingerprint (and the fingerprint's own fetches)

    again = DataSource.open(tiny)
    calls = []
    monkeypatch.setattr(type(expr), "execute", lambda self, *a, **k: calls.append(1))
    assert again.fetch(again.table("spend").amount.sum()) == 5500.0
    assert again.fingerprint == first.fingerprint and calls == []  # nothing ran in the engine
    assert again.rows_fetched == 1  # a memoised result still counts as rows that reached pandas
    monkeypatch.undo()

    monkeypatch.setenv("KPI_CACHE_DIR", str(tmp_path / "cache"))
    _edit(tiny, "spend", "media,1000", "media,1001")
    changed = DataSource.open(tiny)
    assert changed.cache_key != first.cache_key
    assert changed.fetch(changed.table("spend").amount.sum()) == 5501.0


@pytest.mark.slow
def test_memo_computes_once_across_threads(tiny, tmp_path, monkeypatch):
    """Parallel callers of one key wait for the first (the lock is per key, held while computing)."""
    import threading
    import time as _time

    monkeypatch.setenv("KPI_CACHE_DIR", str(tmp_path / "cache"))
    src = DataSource.open(tiny)
    runs = []

    def slow() -> int:
        runs.append(1)
        _time.sleep(0.3)
        return 42

    out = []
    threads = [threading.Thread(target=lambda: out.append(src.memo(("slow",), slow))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [42] * 4 and runs == [1]


def test_memo_is_off_without_a_file_source_or_with_no_cache(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("KPI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KPI_NO_CACHE", "1")
    src = DataSource.open(tiny)
    assert src.cache_key is None
    runs = []
    assert [src.memo(("k",), lambda: runs.append(1) or len(runs)) for _ in range(2)] == [1, 2]
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_cache_entries_of_old_data_are_pruned(tiny, tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("KPI_CACHE_DIR", str(tmp_path / "cache"))
    old = DataSource.open(tiny)
    old.fingerprint  # noqa: B018 - memoises a result
    entries = [*(tmp_path / "cache").glob("validated/*"), *(tmp_path / "cache").glob("results/*")]
    assert len(entries) == 3  # stamp, typed tables, results folder
    for e in entries:
        os.utime(e, (0, 0))  # last used in 1970
    _edit(tiny, "spend", "media,1000", "media,1001")
    new = DataSource.open(tiny)  # new bytes: validated, and the old entries go
    left = {e.name.split(".")[0] for e in (tmp_path / "cache").glob("*/*")}
    assert left == {new.cache_key}
