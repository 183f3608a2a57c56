"""Benchmark: the forecasts' backtest, pooled over held-out data, and what the forecasts cost a report.

**Backtest** (issue 12): ``kpi backtest``'s figures for the sample and for datasets generated with
seeds that development did not use (:data:`kpi_helpers.sample.DEVELOPMENT_SEEDS` are refused),
each dataset alone and pooled: Brier score of "hit the target", P10-P90 coverage and MAPE of P50
for the kit, the run rate and the weighted pipeline, with the bootstrap interval of the difference
in Brier score (kit - baseline; whole quarters resampled, a quarter labelled by its dataset).

**Cost**: ``kpi report`` cold (fresh processes, an empty cache folder each run) with and without
the forecasts (``KPI_NO_FORECAST=1``), alternating, on the sample and, with ``--big DIR``, on a
bigger dataset (e.g. ``kpi sample --scale 100 --format parquet --out DIR``). The report renders the
last complete quarter; its summary notebook forecasts the quarter in progress and scores the same
forecasts on the last four quarters (the track record).

    python benchmarks/bench_forecast.py                                  # seeds 101-104, cost on the sample
    python benchmarks/bench_forecast.py --seeds 101,102 --metrics bookings,revenue --repeat 3
    python benchmarks/bench_forecast.py --skip-backtest --big /tmp/kpi100 --repeat 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

import pandas as pd  # noqa: E402

from kpi_helpers import backtest as B  # noqa: E402
from kpi_helpers.forecast import NO_FORECAST_ENV  # noqa: E402
from kpi_helpers.sample import DEVELOPMENT_SEEDS, generate  # noqa: E402
from kpi_helpers.source import DataSource  # noqa: E402

HELD_OUT = (101, 102, 103, 104)


def backtest(datasets: list[tuple[str, Path]], metrics: list[str]) -> None:
    """Print each dataset's scores and the pooled ones, per metric."""
    tables: dict[str, list[pd.DataFrame]] = {m: [] for m in metrics}
    for name, folder in datasets:
        t0, c0 = time.perf_counter(), time.process_time()
        table = B.backtest_forecasts(DataSource.open(folder), metrics=metrics)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"\n[{name}] {len(table)} forecasts in {wall:.0f} s ({cpu:.0f} s CPU)")
        if len(table):
            table = table.assign(quarter=name + " " + table["quarter"].astype(str))
        for metric in metrics:
            rows = table[table["metric"] == metric] if len(table) else table
            tables[metric].append(rows)
            print(B.format_scores(B.score(rows), metric=metric))
    for metric in metrics:
        print(f"\n[pooled over {len(datasets)} datasets: {', '.join(n for n, _ in datasets)}]")
        print(B.format_scores(B.score(pd.concat(tables[metric], ignore_index=True)), metric=metric))


def report_seconds(data: Path, forecasts: bool, scratch: Path) -> float:
    """Wall time of one cold ``kpi report`` (its own empty cache folder), with or without forecasts."""
    run = scratch / f"run{time.monotonic_ns()}"
    env = {**os.environ, "KPI_CACHE_DIR": str(run / "cache")}
    env.pop(NO_FORECAST_ENV, None)
    if not forecasts:
        env[NO_FORECAST_ENV] = "1"
    cmd = [str(BIN / "kpi"), "report", "--data", str(data), "--out", str(run / "out")]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


def cost(name: str, data: Path, repeat: int) -> None:
    """Cold report with and without forecasts, alternating (a busy machine slows both alike)."""
    with tempfile.TemporaryDirectory(prefix="kpi-bench-forecast-") as tmp:
        scratch = Path(tmp)
        report_seconds(data, True, scratch)  # warm-up: OS file cache, matplotlib's font cache
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(repeat):
            for on in (False, True):
                times[on].append(report_seconds(data, on, scratch))
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"\ncost on {name}: cold `kpi report`, median of {repeat}")
    print(f"  without forecasts: {off:6.1f} s  ({', '.join(f'{t:.1f}' for t in times[False])})")
    print(f"  with forecasts:    {on:6.1f} s  ({', '.join(f'{t:.1f}' for t in times[True])})  {on / off - 1:+.0%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "sample")
    parser.add_argument("--seeds", default=",".join(map(str, HELD_OUT)), help="generated datasets to pool (held out)")
    parser.add_argument("--metrics", default="bookings", help="metrics to backtest, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="cold reports per side")
    parser.add_argument("--big", type=Path, default=None, help="also measure the cost on this data folder")
    parser.add_argument("--skip-backtest", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    used = sorted(set(seeds) & set(DEVELOPMENT_SEEDS))
    if used:
        parser.error(f"seeds {used} were used in development (DEVELOPMENT_SEEDS); judge calibration on others")
    with tempfile.TemporaryDirectory(prefix="kpi-bench-seeds-") as tmp:
        if not args.skip_backtest:
            datasets = [("sample", args.data)]
            for seed in seeds:
                folder = Path(tmp) / f"seed{seed}"
                generate(folder, seed=seed)
                datasets.append((f"seed {seed}", folder))
            backtest(datasets, [m for m in args.metrics.split(",") if m])
    if not args.skip_cost:
        cost("the sample", args.data, args.repeat)
        if args.big is not None:
            cost(str(args.big), args.big, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
