"""Benchmark: the report on the sample and on 100 times its data, side by side.

For each data set, cold (a fresh process each, as a user would run them): ``kpi validate``,
``quarter_metrics`` alone and ``kpi report``, each with its wall time and the peak memory of its
whole process tree (the sum of the RSS of the process and all its descendants: notebook kernels,
and JVMs with Spark, sampled every 0.1 s). The ``quarter_metrics`` run also reports the rows that
reached pandas: through ``DataSource.fetch`` (``rows_fetched``, the largest single fetch) and every
result the engine returned at all.

The 100x data (about 11 million ``web_sessions`` rows, 1 million leads, 3.1 million touchpoints) is
generated on first use into ``benchmarks/data/scale100`` (git-ignored; about a minute, 0.5 GB)::

    python benchmarks/bench_scale.py                               # sample vs 100x, every notebook
    python benchmarks/bench_scale.py --notebooks notebooks/00-quarterly-summary.ipynb
    python benchmarks/bench_scale.py --steps metrics --scale 10    # a quicker look
    python benchmarks/bench_scale.py --wait 30                     # first wait (<= 30 min) for the notebooks

Aims: the 100x report in at most 1.5 x the sample's time, peak memory at most 2 GB.
RSS sums count pages shared between processes (libraries) once per process, so they overstate a
little; they are what an operator sees summed in ``top``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
DATA_DIR = Path(__file__).resolve().parent / "data"
KPI = [sys.executable, "-m", "kpi_helpers.cli"]
ROW_TABLES = ("web_sessions", "leads", "touchpoints")
AIM_TIME_RATIO = 1.5
AIM_PEAK_BYTES = 2 * 1024**3
MB = 1024**2
#: step -> its name in the table
STEPS = {
    "validate": "kpi validate",
    "metrics": "quarter_metrics (open + compute)",
    "report": "kpi report (cold)",
    "again": "kpi report again (same bytes: stamped, results cached)",
}


# --------------------------------------------------------------------------------------------------
# Memory of a process tree


def _children_proc() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def _rss_proc(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> int:
    """Bytes resident in ``pid`` and all its descendants (psutil when installed, else /proc)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                total += p.memory_info().rss
        return total
    children = _children_proc()
    todo, total = [pid], 0
    while todo:
        p = todo.pop()
        total += _rss_proc(p)
        todo += children.get(p, [])
    return total


@dataclass
class Run:
    cmd: list[str]
    seconds: float = 0.0
    peak_rss: int = 0
    returncode: int = 0
    output: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def measured(cmd: list[str], *, cache: Path | None = None, interval: float = 0.1) -> Run:
    """Run ``cmd`` to its end; wall time and peak RSS of its process tree.

    ``cache`` is the kit's cache folder (``KPI_CACHE_DIR``: stamps of data that passed validation);
    default a new empty one, so that the run is cold.
    """
    run = Run(cmd)
    with tempfile.TemporaryFile("w+") as log, tempfile.TemporaryDirectory(prefix="bench-kpi-cache-") as fresh:
        env = {**os.environ, "KPI_CACHE_DIR": str(cache or fresh)}
        env.pop("KPI_NO_CACHE", None)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                run.peak_rss = max(run.peak_rss, tree_rss(proc.pid))
                stop.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        run.returncode = proc.wait()
        run.seconds = time.perf_counter() - t0
        stop.set()
        sampler.join()
        log.seek(0)
        run.output = log.read()
    return run


# --------------------------------------------------------------------------------------------------
# The steps


def ensure_scaled(scale: float, folder: Path) -> Path:
    """Generate the scaled Parquet data set into ``folder`` unless it is complete; copy goals.yml."""
    from kpi_helpers.schema import CONTRACT

    missing = [t for t in CONTRACT if not (folder / f"{t}.parquet").exists()]
    if missing:
        print(f"generating scale {scale:g} data into {folder} (missing: {', '.join(missing)}) ...", flush=True)
        t0 = time.perf_counter()
        subprocess.run(
            [*KPI, "sample", "--out", str(folder), "--seed", "42", "--scale", f"{scale:g}", "--format", "parquet"],
            cwd=ROOT,
            check=True,
        )
        print(f"  generated in {time.perf_counter() - t0:.0f} s", flush=True)
    if not (folder / "goals.yml").exists():
        shutil.copy(SAMPLE / "goals.yml", folder / "goals.yml")
    return folder


def row_counts(folder: Path) -> dict[str, int]:
    """Rows of the headline tables, counted by DuckDB (not validated: that is timed separately)."""
    from kpi_helpers.source import DataSource

    src = DataSource.open(folder, validate=False, tables=ROW_TABLES)
    return {t: int(src.table(t).count().execute()) for t in ROW_TABLES}


_WORKER = r"""
import json, sys, time
t0 = time.perf_counter()
from kpi_helpers.metrics import quarter_metrics
from kpi_helpers.source import DataSource
t1 = time.perf_counter()
src = DataSource.open(sys.argv[1], engine=sys.argv[3])
t2 = time.perf_counter()
seen = []
original = src.con.execute
def execute(expr, *a, **k):
    r = original(expr, *a, **k)
    seen.append(len(r) if hasattr(r, "__len__") and not isinstance(r, str) else 1)
    return r
src.con.execute = execute
before = src.rows_fetched
m = quarter_metrics(src, sys.argv[2])
t3 = time.perf_counter()
big = max(src.fetches, key=lambda f: f[1])
print("WORKER " + json.dumps({
    "quarter": m["quarter"], "import_s": t1 - t0, "open_s": t2 - t1, "metrics_s": t3 - t2,
    "rows_fetched": src.rows_fetched - before, "fetches": len(src.fetches), "largest_fetch": big[1],
    "largest_fetch_label": big[0], "engine_results": len(seen), "engine_rows": sum(seen),
    "largest_engine_result": max(seen),
}))
"""


def run_metrics(folder: Path, quarter: str, engine: str) -> Run:
    run = measured([sys.executable, "-c", _WORKER, str(folder), quarter, engine])
    for line in run.output.splitlines():
        if line.startswith("WORKER "):
            run.extra = json.loads(line[len("WORKER ") :])
    return run


def run_report(
    folder: Path, quarter: str, engine: str, notebooks: list[str] | None, jobs: int | None, cache: Path | None = None
) -> Run:
    out = Path(tempfile.mkdtemp(prefix="bench-scale-report-"))
    cmd = [*KPI, "report", "--data", str(folder), "--quarter", quarter, "--out", str(out), "--engine", engine]
    if notebooks:
        cmd += ["--notebooks", *notebooks]
    if jobs:
        cmd += ["--jobs", str(jobs)]
    try:
        run = measured(cmd, cache=cache)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    run.extra["notebooks"] = {
        m.group(1): float(m.group(2)) for m in re.finditer(r"\] (\S+) done in ([\d.]+) s", run.output)
    }
    return run


def wait_for_notebooks(minutes: float) -> None:
    """Poll every minute until notebooks/04-roi.ipynb exists and a sample report succeeds."""
    deadline = time.monotonic() + minutes * 60
    while True:
        if (ROOT / "notebooks" / "04-roi.ipynb").exists():
            with tempfile.TemporaryDirectory() as out:
                done = subprocess.run(
                    [*KPI, "report", "--data", str(SAMPLE), "--out", out], cwd=ROOT, capture_output=True, text=True
                )
            if done.returncode == 0:
                return
            print(f"sample report fails yet: {done.stderr.strip().splitlines()[-1:]}", flush=True)
        if time.monotonic() > deadline:
            sys.exit(f"notebooks not ready after {minutes:g} minutes")
        time.sleep(60)


# --------------------------------------------------------------------------------------------------
# Output


def _fmt_s(run: Run | None) -> str:
    return "-" if run is None else (f"{run.seconds:.1f} s" if run.ok else "FAILED")


def _fmt_mb(run: Run | None) -> str:
    return "-" if run is None else f"{run.peak_rss / MB:,.0f} MB"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{b / a:.2f}x" if a and b is not None else "-"


def print_table(labels: list[str], results: list[dict[str, Any]]) -> None:
    rows: list[tuple[str, list[str], str]] = []
    a, b = results[0], results[-1]

    def num(res: dict[str, Any], key: str) -> float | None:
        v = res.get(key)
        return None if v is None else float(v)

    for t in ROW_TABLES:
        rows.append((f"{t} rows", [f"{r['rows'][t]:,}" for r in results], _ratio(a["rows"][t], b["rows"][t])))
    for step, name in STEPS.items():
        if all(step in r for r in results):
            ra, rb = a[step], b[step]
            rows.append(
                (
                    f"{name}: wall",
                    [_fmt_s(r[step]) for r in results],
                    _ratio(ra.seconds, rb.seconds) if ra.ok and rb.ok else "-",
                )
            )
            rows.append(
                (f"{name}: peak RSS (tree)", [_fmt_mb(r[step]) for r in results], _ratio(ra.peak_rss, rb.peak_rss))
            )
    if all("metrics" in r and r["metrics"].extra for r in results):
        ex = [r["metrics"].extra for r in results]
        rows.append(
            (
                "  of which open + validate",
                [f"{e['open_s']:.1f} s" for e in ex],
                _ratio(ex[0]["open_s"], ex[-1]["open_s"]),
            )
        )
        rows.append(
            (
                "  of which quarter_metrics",
                [f"{e['metrics_s']:.1f} s" for e in ex],
                _ratio(ex[0]["metrics_s"], ex[-1]["metrics_s"]),
            )
        )
        for key, label in (
            ("rows_fetched", "rows reaching pandas (fetch)"),
            ("largest_fetch", "largest single fetch (rows)"),
            ("fetches", "fetches"),
            ("engine_rows", "rows of every engine result"),
            ("largest_engine_result", "largest engine result (rows)"),
        ):
            rows.append((label, [f"{e[key]:,}" for e in ex], _ratio(num(ex[0], key), num(ex[-1], key))))
    width = max(len(r[0]) for r in rows)
    cols = [max(len(labels[i]), *(len(r[1][i]) for r in rows)) for i in range(len(labels))]
    head = f"{'':<{width}}  " + "  ".join(f"{lab:>{c}}" for lab, c in zip(labels, cols, strict=True))
    print("\n" + head + f"  {'ratio':>7}")
    print("-" * (len(head) + 9))
    for name, vals, ratio in rows:
        print(f"{name:<{width}}  " + "  ".join(f"{v:>{c}}" for v, c in zip(vals, cols, strict=True)) + f"  {ratio:>7}")
    if "report" in a and "report" in b and a["report"].ok and b["report"].ok:
        print()
        names = sorted(set(a["report"].extra["notebooks"]) | set(b["report"].extra["notebooks"]))
        for nb in names:
            sa, sb = a["report"].extra["notebooks"].get(nb), b["report"].extra["notebooks"].get(nb)
            print(
                f"  notebook {nb:<28} "
                + "  ".join(f"{x:>7.1f} s" if x else "      -" for x in (sa, sb))
                + f"  {_ratio(sa, sb):>7}"
            )
        ratio = b["report"].seconds / a["report"].seconds
        peak = max(r["report"].peak_rss for r in results)
        print(
            f"\naim: report time ratio <= {AIM_TIME_RATIO}: {ratio:.2f} "
            f"{'met' if ratio <= AIM_TIME_RATIO else 'NOT met'}; peak memory <= {AIM_PEAK_BYTES / MB:,.0f} MB: "
            f"{peak / MB:,.0f} MB {'met' if peak <= AIM_PEAK_BYTES else 'NOT met'}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=100, help="scale of the large data set (default 100)")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="large data folder (default: benchmarks/data/scale<S>, generated when missing)",
    )
    parser.add_argument("--sample", type=Path, default=SAMPLE, help="small data folder (default data/sample)")
    parser.add_argument("--quarter", default="latest")
    parser.add_argument("--engine", default="duckdb", help="engine for every step (duckdb, pyspark, ...)")
    parser.add_argument("--notebooks", nargs="+", default=None, help="notebooks of the report (default: all)")
    parser.add_argument("--jobs", type=int, default=None, help="kpi report --jobs")
    parser.add_argument(
        "--steps",
        default="validate,metrics,report",
        help="comma-separated: validate, metrics, report, again (the report once more on the same "
        "bytes: validation stamped, results memoised); default: validate,metrics,report",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every step N times; keep the fastest (peak RSS: the highest); default 1",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="MINUTES",
        help="first wait up to MINUTES for the notebooks and a working sample report",
    )
    args = parser.parse_args(argv)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = set(steps) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps {sorted(unknown)}")
    if args.wait:
        wait_for_notebooks(args.wait)
    large = ensure_scaled(args.scale, args.data or DATA_DIR / f"scale{args.scale:g}")
    sets = {"sample": args.sample.resolve(), f"{args.scale:g}x": large.resolve()}
    print(
        f"{os.cpu_count()} CPUs; engine {args.engine}; quarter {args.quarter}; notebooks "
        f"{', '.join(Path(n).stem for n in args.notebooks) if args.notebooks else 'all'}",
        flush=True,
    )

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    results: list[dict[str, Any]] = []
    for label, folder in sets.items():
        res: dict[str, Any] = {"rows": row_counts(folder)}
        runs: dict[str, list[Run]] = {}
        for _ in range(max(1, args.repeat)):
            if "validate" in steps:
                runs.setdefault("validate", []).append(
                    measured([*KPI, "validate", "--data", str(folder), "--engine", args.engine])
                )
            if "metrics" in steps:
                runs.setdefault("metrics", []).append(run_metrics(folder, args.quarter, args.engine))
            if "report" in steps or "again" in steps:
                with tempfile.TemporaryDirectory(prefix="bench-kpi-cache-") as cache:
                    runs.setdefault("report", []).append(
                        run_report(folder, args.quarter, args.engine, args.notebooks, args.jobs, Path(cache))
                    )
                    if "again" in steps:  # the same data again: its validation stamp is there now
                        runs.setdefault("again", []).append(
                            run_report(folder, args.quarter, args.engine, args.notebooks, args.jobs, Path(cache))
                        )
        for step, tries in runs.items():
            best = min(tries, key=lambda r: (not r.ok, r.seconds))
            best.peak_rss = max(r.peak_rss for r in tries)
            best.extra["tries"] = [round(r.seconds, 1) for r in tries]
            res[step] = best
        for step in STEPS:
            if step in res:
                r = res[step]
                tries = r.extra.get("tries", [])
                print(
                    f"{label:>7} {step:<9} {_fmt_s(r):>9} {_fmt_mb(r):>10}"
                    + (f"  (tries: {', '.join(f'{t} s' for t in tries)})" if len(tries) > 1 else ""),
                    flush=True,
                )
                if not r.ok:
                    print(r.output[-3000:], file=sys.stderr)
        results.append(res)
    print_table(list(sets), results)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if all(r[s].ok for r in results for s in steps if s in r) else 1


if __name__ == "__main__":
    raise SystemExit(main())
