"""Other engines give the same report: Spark (PySpark through Ibis) and a DuckDB database file.

Also guards the claim that only aggregated rows reach pandas, on generated data 10 times the sample:
the rows that cross from the engine into pandas do not grow with the data.

The Spark tests (marker ``spark``) need PySpark and Java. Without them they are skipped, unless the
environment variable ``CI`` is set: CI must run them, so there a missing PySpark or Java fails.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from kpi_helpers.metrics import quarter_metrics
from kpi_helpers.reliability import GROUPS
from kpi_helpers.sample import generate
from kpi_helpers.source import DataSource

# PySpark 4.0's Arrow-to-pandas conversion passes `copy=False`, which pandas 3 deprecates.
# A Spark session takes 10-20 s to start: the whole module is slow.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
SUMMARY_NOTEBOOK = ROOT / "notebooks" / "00-quarterly-summary.ipynb"
TOLERANCE = 1e-9
REPORT_TIMEOUT = 480  # seconds; a report still running then has hung
#: Spark settings for the tests' own session and for the report's processes (its kernels inherit
#: them): two local cores and few shuffle partitions, which suit the sample's size.
SPARK_CONF = {
    "spark.master": "local[2]",
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    # short-lived JVMs: the quick (C1) JIT only; the optimising one costs more than it saves here
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
}


# --------------------------------------------------------------------------------------------------
# Helpers


def _spark_missing() -> str | None:
    """Why Spark cannot run here, or None."""
    if importlib.util.find_spec("pyspark") is None:
        return "PySpark is not installed (pip install 'pyspark>=3.5,<4.1')"
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and (Path(java_home) / "bin" / "java").exists()) and shutil.which("java") is None:
        return "Java is not installed (no `java` on PATH, no JAVA_HOME; apt-get install openjdk-17-jre-headless)"
    return None


def require_spark() -> None:
    """Skip when PySpark or Java is missing, but fail in CI (``CI`` set), which must run these tests."""
    reason = _spark_missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI (env CI={os.environ['CI']!r}) must run the Spark tests", pytrace=False)
    pytest.skip(f"{reason}; the Spark tests run when it is (and fail instead of skipping when CI is set)")


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Every difference between two metrics dicts: keys (recursively), values, floats to 1e-9."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only in the first" for k in a.keys() - b.keys()]
        out += [f"{path}/{k}: only in the second" for k in b.keys() - a.keys()]
        for k in a.keys() & b.keys():
            out += differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")]
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        if math.isnan(a) and math.isnan(b):
            return []
        return [] if math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE) else [f"{path}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def assert_same_metrics(first: dict, second: dict, what: str) -> None:
    assert first["data_fingerprint"] == second["data_fingerprint"], f"{what}: the engines saw different data"
    diff = differences(first, second)
    assert not diff, f"{what}: {len(diff)} differences:\n" + "\n".join(sorted(diff)[:40])


@contextmanager
def engine_rows(src: DataSource) -> Iterator[list[tuple[str, int]]]:
    """Count the rows of every result the engine hands to pandas while the block runs.

    Wraps the Ibis backend's ``execute``, which every ``expr.execute()`` on the source's tables goes
    through, so this sees what :meth:`DataSource.fetch` counts and also direct ``execute()`` calls.
    """
    seen: list[tuple[str, int]] = []
    original = src.con.execute

    def execute(expr: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(expr, *args, **kwargs)
        n = len(result) if hasattr(result, "__len__") and not isinstance(result, str) else 1
        seen.append((type(expr).__name__, n))
        return result

    src.con.execute = execute
    try:
        yield seen
    finally:
        del src.con.execute  # the class's method again


def write_typed_parquet(src: DataSource, folder: Path) -> Path:
    """The source's typed contract tables as ``<table>.parquet`` (by DuckDB), plus the sample's goals."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(src.present):  # the tables the source has: an empty file would be a table too
        src.con.to_parquet(src.table(name), folder / f"{name}.parquet")
    shutil.copy(SAMPLE / "goals.yml", folder / "goals.yml")
    return folder


# --------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def duck() -> DataSource:
    """The sample, files read by DuckDB (the default engine)."""
    return DataSource.open(SAMPLE)


@pytest.fixture(scope="module")
def sample_parquet(duck: DataSource, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_typed_parquet(duck, tmp_path_factory.mktemp("sample-parquet"))


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """One local Spark session for the module (starting a JVM takes seconds)."""
    require_spark()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("kpi-kit-tests")
    for key, value in SPARK_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


# --------------------------------------------------------------------------------------------------
# Spark


@pytest.mark.spark
def test_spark_catalog_quarter_metrics_equal_duckdb(spark: Any, duck: DataSource, sample_parquet: Path) -> None:
    """The contract tables in the Spark session's catalog give DuckDB's metrics (current quarter)."""
    for path in sample_parquet.glob("*.parquet"):
        spark.read.parquet(str(path)).createOrReplaceTempView(path.stem)
    src = DataSource.open(None, goals=sample_parquet / "goals.yml", engine="pyspark")
    assert src.con.name == "pyspark" and src.name == "pyspark catalog"
    with engine_rows(src) as rows:
        on_spark = quarter_metrics(src, "current")
    assert_same_metrics(quarter_metrics(duck, "current"), on_spark, "current quarter, Spark catalog vs DuckDB")
    assert on_spark["complete"] is False
    # Aggregated rows only, on Spark too, but for the forecast's inputs (kpi_helpers/asof.py): the
    # pipeline model follows each deal, so deals and their history come row by row, and the leads
    # as daily counts (bounded by the calendar). Every large engine result is one of those fetches.
    large = [n for _, n in rows if n >= 1_000]
    labelled = [(label, n) for label, n in src.fetches if n >= 1_000]
    assert sorted(large) == sorted(n for _, n in labelled), (rows, src.fetches)
    assert {label for label, _ in labelled} <= set(FORECAST_READS), labelled


def report_process(out: Path, *args: str) -> subprocess.Popen:
    """Start `kpi report` (latest quarter, summary notebook) in a fresh process."""
    cmd = [
        sys.executable,
        "-m",
        "kpi_helpers.cli",
        "report",
        *args,
        "--quarter",
        "latest",
        "--out",
        str(out),
        "--notebooks",
        str(SUMMARY_NOTEBOOK),
    ]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(proc: subprocess.Popen, timeout: float) -> str:
    """Wait for ``proc``; its output. A report still running after ``timeout`` fails the test."""
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        proc.kill()  # its kernel exits with it (ipykernel polls its parent)
        pytest.fail(
            f"`{' '.join(proc.args[2:])}` still running after {timeout:.0f} s:\n{proc.communicate()[0][-3000:]}"
        )


def metrics_json(out: Path) -> dict:
    found = sorted(out.glob("*/metrics.json"))
    assert len(found) == 1, found
    return json.loads(found[0].read_text(encoding="utf-8"))


@pytest.mark.spark
@pytest.mark.slow
def test_spark_report_metrics_json_equals_duckdb(
    spark: Any, sample_parquet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    """`kpi report --engine pyspark` (Spark reads the files itself) writes DuckDB's metrics.json.

    Only the summary notebook runs: every notebook kernel starts a JVM of its own. The Spark
    report runs in this process (`kpi_helpers.cli.main`), so its metrics reuse the warm session;
    its kernel starts Spark with the same settings (PYSPARK_SUBMIT_ARGS). The DuckDB report runs
    meanwhile in a process of its own.
    """
    from kpi_helpers import cli

    duck_report = report_process(tmp_path / "duckdb", "--data", str(SAMPLE))
    monkeypatch.setenv(
        "PYSPARK_SUBMIT_ARGS", " ".join(f"--conf {k}={v}" for k, v in SPARK_CONF.items()) + " pyspark-shell"
    )
    result: list[int] = []
    runner = threading.Thread(
        target=lambda: result.append(
            cli.main(
                [
                    "report",
                    "--engine",
                    "pyspark",
                    "--data",
                    str(sample_parquet),
                    "--quarter",
                    "latest",
                    "--out",
                    str(tmp_path / "pyspark"),
                    "--notebooks",
                    str(SUMMARY_NOTEBOOK),
                ]
            )
        ),
        daemon=True,
    )
    runner.start()
    runner.join(REPORT_TIMEOUT)
    spark_output = capfd.readouterr()
    duck_output = finished(duck_report, REPORT_TIMEOUT)
    assert result == [0], (
        f"kpi report --engine pyspark: {result or 'still running'}\n"
        f"{spark_output.out[-2000:]}\n{spark_output.err[-3000:]}"
    )
    assert duck_report.returncode == 0, f"kpi report (duckdb) failed:\n{duck_output[-3000:]}"

    on_duckdb, on_spark = metrics_json(tmp_path / "duckdb"), metrics_json(tmp_path / "pyspark")
    assert on_duckdb["quarter"] == "2026Q3"
    assert_same_metrics(on_duckdb, on_spark, "metrics.json, kpi report on Spark vs DuckDB")
    page = tmp_path / "pyspark" / "2026Q3" / f"{SUMMARY_NOTEBOOK.stem}.html"
    assert page.is_file() and "2026Q3" in page.read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# A DuckDB database file (any Ibis URL)


def test_duckdb_database_file_equals_folder(duck: DataSource, tmp_path: Path) -> None:
    """The typed tables in a DuckDB file, opened by URL, give the folder's metrics."""
    db = tmp_path / "marketing.duckdb"
    src = DataSource.open(SAMPLE)
    src.con.raw_sql(f"ATTACH '{db}' AS warehouse")
    for name in sorted(src.present):  # a database holds the tables the team has, as a folder does
        src.con.raw_sql(f'CREATE TABLE warehouse.main."{name}" AS SELECT * FROM "{name}"')
    src.con.raw_sql("DETACH warehouse")
    # read-only, as docs/engines.md advises: a report opens the file from several processes at once
    url = f"duckdb://{db}?read_only=true"
    from_file = DataSource.open(engine=url, goals=SAMPLE / "goals.yml")
    assert from_file.files == {} and from_file.name == url
    assert_same_metrics(
        quarter_metrics(duck, "latest"), quarter_metrics(from_file, "latest"), "latest quarter, DuckDB file vs folder"
    )


# --------------------------------------------------------------------------------------------------
# Only aggregates reach pandas, whatever the size of the data

SCALES = (1, 10)
#: the forecast's reads (kpi_helpers/asof.py): deals row by row, leads as daily counts
FORECAST_READS = ("opportunities for forecasts", "opportunity_history for forecasts", "leads by day for forecasts")


@pytest.fixture(scope="session")
def scaled_sources(tmp_path_factory: pytest.TempPathFactory) -> dict[int, DataSource]:
    """Sample data at scale 1 and 10 (0.1 and 0.8 million web_sessions rows) as Parquet, opened."""
    root = tmp_path_factory.mktemp("scaled")
    out = {}
    for scale in SCALES:
        folder = root / f"scale{scale}"
        generate(folder, seed=42, scale=scale, fmt="parquet")
        shutil.copy(SAMPLE / "goals.yml", folder / "goals.yml")
        out[scale] = DataSource.open(folder)
    return out


def test_rows_reaching_pandas_do_not_grow_with_the_data(scaled_sources: dict[int, DataSource]) -> None:
    """quarter_metrics on 10x the data runs the same queries and gets (about) as many rows back.

    Every result the engine returns is counted (also those not going through ``fetch``). Group
    counts may differ slightly (a channel with no won deal in a quarter at scale 1 has no row),
    never in proportion to the data.
    """
    rows: dict[int, list[tuple[str, int]]] = {}
    fetches: dict[int, list[tuple[str, int]]] = {}
    for scale, src in scaled_sources.items():
        before = len(src.fetches)
        with engine_rows(src) as seen:
            quarter_metrics(src, "latest")
        rows[scale], fetches[scale] = seen, src.fetches[before:]
    small, large = rows[SCALES[0]], rows[SCALES[-1]]
    detail = f"scale {SCALES[0]}: {fetches[SCALES[0]]}\nscale {SCALES[-1]}: {fetches[SCALES[-1]]}"
    assert [label for label, _ in fetches[SCALES[0]]] == [label for label, _ in fetches[SCALES[-1]]], detail
    assert len(small) == len(large), detail  # the same queries
    assert not _grown(small, large), (_grown(small, large), detail)
    total_large = sum(n for _, n in large)
    assert max(n for _, n in large) < 1_000 and total_large < 1_500, detail
    # fetch() is the door the report uses; nothing bigger slips past it
    assert sum(n for _, n in fetches[SCALES[-1]]) <= total_large


def _report_path_calls(src: DataSource) -> list[Any]:
    """What the notebooks compute besides ``metrics()`` (notebooks/0*.ipynb), landing pages aside."""
    from kpi_helpers import breakdowns as M
    from kpi_helpers import facts
    from kpi_helpers.metrics import QuarterKpis

    kq = QuarterKpis(src, "latest")
    return [
        kq.metrics(),
        QuarterKpis(src, "current").metrics(),  # 00: pacing of the running quarter
        kq.goal,
        kq.funnel_plan,
        kq.revenue_history,
        kq.revenue_quarters,
        kq.trailing,  # 01
        M.goal_scenario(kq, uplift=0.05).funnel_plan,
        M.channel_funnel(kq),
        M.web_table(kq, "device"),
        facts.content_breakdown(src, kq.quarter),  # 02
        M.goal_conversion(kq),
        kq.attribution_comparison(),
        kq.channels,  # 03
        M.channel_economics(kq, clv=1.0),
        M.campaign_economics(kq, clv=1.0),
        facts.spend_breakdown(src, kq.quarter),
    ]


#: a result dealt into the interval's resampling groups (kpi_helpers.reliability.GROUPS) has at most one row
#: per group and channel: it fills up to this bound as the data grows past 64 journeys, and stops there
GROUPED = GROUPS * 12


def _grown(small: list[tuple[str, int]], large: list[tuple[str, int]]) -> list[str]:
    """Queries whose result has clearly more rows on the larger data (by position; same labels), beyond
    the fixed bound of a grouped result."""
    assert [label for label, _ in small] == [label for label, _ in large], (small, large)
    return [
        f"{label}: {a} -> {b} rows"
        for (label, a), (_, b) in zip(small, large, strict=True)
        if b > a + max(5, 0.05 * a) and b > GROUPED
    ]


def test_report_path_rows_do_not_grow_with_the_data(
    scaled_sources: dict[int, DataSource], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notebooks' other queries (funnels, attribution comparison, spend, content) stay aggregated
    (the forecast's reads apart: the next test)."""
    monkeypatch.setenv("KPI_NO_FORECAST", "1")
    seen = {}
    for scale, src in scaled_sources.items():
        with engine_rows(src) as seen[scale]:
            _report_path_calls(src)
    small, large = seen[SCALES[0]], seen[SCALES[-1]]
    assert not _grown(small, large), _grown(small, large)
    assert max(n for _, n in large) < 1_000


def test_forecast_reads_leads_by_day_and_deals_row_by_row(scaled_sources: dict[int, DataSource]) -> None:
    """The forecast of the quarter in progress reads the leads as daily counts, which do not grow with
    the data, and the deals and their stage history row by row (its pipeline model follows each open
    deal): exactly the tables' rows, nothing else."""
    from kpi_helpers import asof
    from kpi_helpers.asof import load_frames

    reads: dict[int, dict[str, int]] = {}
    for scale, src in scaled_sources.items():
        asof._LOADED.pop(src, None)  # an earlier test's load is kept for the process: read afresh
        before = len(src.fetches)
        load_frames(src)
        reads[scale] = dict(src.fetches[before:])
        for table in ("opportunities", "opportunity_history"):
            rows = int(src.fetch(src.table(table).count()))
            assert reads[scale][f"{table} for forecasts"] == rows
    small, large = reads[SCALES[0]], reads[SCALES[-1]]
    assert set(small) == set(large) == set(FORECAST_READS) | {"revenue for forecasts"}
    # at most one row per event and day of the data: bounded by the calendar, whatever the leads
    days = (scaled_sources[SCALES[-1]].data_end - dt.date(2021, 1, 1)).days + 1  # the generator starts in 2021
    assert small["leads by day for forecasts"] <= large["leads by day for forecasts"] <= 3 * days, (small, large)


def test_goals_by_landing_page_rows_do_not_grow_with_the_data(scaled_sources: dict[int, DataSource]) -> None:
    from kpi_helpers import breakdowns as M
    from kpi_helpers.metrics import QuarterKpis

    seen = {}
    for scale, src in scaled_sources.items():
        kq = QuarterKpis(src, "latest")
        with engine_rows(src) as seen[scale]:
            M.goal_conversion(kq, by_landing_page=True)
    assert not _grown(seen[SCALES[0]], seen[SCALES[-1]]), _grown(seen[SCALES[0]], seen[SCALES[-1]])
