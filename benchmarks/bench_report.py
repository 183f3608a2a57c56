"""Benchmark: the kit's ``render_report`` against rendering the notebooks by hand.

By hand means what a user would type for each notebook, one after the other::

    papermill in.ipynb out.ipynb -p data ... -p quarter ...
    jupyter nbconvert --to html --no-input out.ipynb

Both sides are timed cold: the kit runs in a fresh ``python -c`` process, so interpreter start and
imports are counted on both sides. One untimed warm-up execution first fills the OS file cache and
matplotlib's font cache, which neither side should pay.

    python benchmarks/bench_report.py                       # notebooks/*.ipynb + data/sample, else stand-ins
    python benchmarks/bench_report.py --standins 5          # 5 stand-in notebooks in a temp dir
    python benchmarks/bench_report.py --notebooks notebooks/0*.ipynb --data data/sample --quarter 2026Q3

Target: kit <= 0.4 x the hand loop on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# A realistic small report notebook: parameters, pandas + seaborn, one chart, one table.
_STANDIN_CELLS = [
    ("markdown", "# @TITLE@\n\nStand-in notebook for the benchmark: one chart and one table."),
    (
        "code",
        'data: str = "data/sample"  # folder with the exports\n'
        'quarter: str = "latest"  # 2026Q3, latest, current\n'
        'engine: str = "duckdb"  # duckdb or pandas',
        ["parameters"],
    ),
    (
        "code",
        "from pathlib import Path\n\n"
        "import matplotlib.pyplot as plt\nimport pandas as pd\nimport seaborn as sns\n\n"
        'sns.set_theme(style="whitegrid")',
    ),
    (
        "code",
        'leads = pd.read_csv(Path(data) / "leads.csv", parse_dates=["date"])\n'
        'by_channel = leads.groupby("channel", as_index=False).agg(leads=("lead_id", "count"), '
        'spend=("spend", "sum"), revenue=("revenue", "sum"))\n'
        'by_channel["roi"] = (by_channel["revenue"] - by_channel["spend"]) / by_channel["spend"]',
    ),
    (
        "code",
        "fig, ax = plt.subplots(figsize=(7, 3.5))\n"
        'sns.barplot(data=by_channel, x="channel", y="@METRIC@", ax=ax)\n'
        'ax.set_title(f"@TITLE@ by channel ({quarter})")\n'
        "plt.show()",
    ),
    ("code", 'by_channel.sort_values("@METRIC@", ascending=False).round(2)'),
]
_STANDINS = [
    ("00-quarterly-summary", "Quarterly summary", "revenue"),
    ("01-goal-setting", "Goal setting", "leads"),
    ("02-traffic-and-lead-value", "Traffic and lead value", "spend"),
    ("03-channel-conversion", "Channel conversion", "leads"),
    ("04-roi", "Return on investment", "roi"),
]


def make_standins(folder: Path, n: int = 5) -> tuple[list[Path], Path]:
    """Write ``n`` stand-in notebooks and a small ``leads.csv`` into ``folder``; return (notebooks, data)."""
    import nbformat
    import numpy as np
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data"
    data.mkdir(exist_ok=True)
    rng = np.random.default_rng(7)
    rows = 5000
    pd.DataFrame(
        {
            "lead_id": np.arange(rows),
            "date": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 270, rows), unit="D"),
            "channel": rng.choice(["Paid search", "Social", "Email", "Organic", "Events"], rows),
            "spend": rng.gamma(2.0, 20.0, rows).round(2),
            "revenue": rng.gamma(1.5, 60.0, rows).round(2),
        }
    ).to_csv(data / "leads.csv", index=False)
    paths = []
    for i in range(n):
        stem, title, metric = _STANDINS[i % len(_STANDINS)]
        if i >= len(_STANDINS):
            stem = f"{i:02d}-{stem[3:]}-{i}"
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        for kind, source, *tags in _STANDIN_CELLS:
            text = source.replace("@TITLE@", title).replace("@METRIC@", metric)
            cell = nbformat.v4.new_markdown_cell(text) if kind == "markdown" else nbformat.v4.new_code_cell(text)
            if tags:
                cell.metadata["tags"] = tags[0]
            nb.cells.append(cell)
        path = folder / f"{stem}.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    return paths, data


def time_kit(notebooks: list[Path], data: Path, quarter: str, out: Path, jobs: int | None, real: bool) -> float:
    """Wall time of ``kpi report`` (real notebooks: metrics.json and index pages included) or of
    ``render_report`` (stand-ins), in a fresh interpreter: imports and kernel starts count."""
    if real:
        cmd = [
            str(BIN / "kpi"),
            "report",
            "--data",
            str(data),
            "--quarter",
            quarter,
            "--out",
            str(out),
            "--notebooks",
            *map(str, notebooks),
        ] + (["--jobs", str(jobs)] if jobs else [])
        started = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, env=_fresh_cache(out))
        return time.perf_counter() - started
    code = (
        "import sys, json\n"
        "from kpi_helpers.report import render_report\n"
        "a = json.loads(sys.argv[1])\n"
        "render_report(data=a['data'], quarter=a['quarter'], out=a['out'], notebooks=a['notebooks'],"
        " jobs=a['jobs'], progress=None)\n"
    )
    args = {"data": str(data), "quarter": quarter, "out": str(out), "notebooks": [str(n) for n in notebooks]}
    args["jobs"] = jobs
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, json.dumps(args)], check=True, cwd=ROOT, env=_fresh_cache(out))
    return time.perf_counter() - started


def _fresh_cache(out: Path) -> dict[str, str]:
    """An empty validation cache for each run, so neither side starts from validated data."""
    return {**os.environ, "KPI_CACHE_DIR": str(out.parent / f"cache-{out.name}")}


def time_by_hand(notebooks: list[Path], data: Path, quarter: str, out: Path) -> float:
    """Wall time of the papermill CLI then ``jupyter nbconvert --no-input`` per notebook, in sequence."""
    out.mkdir(parents=True, exist_ok=True)
    env = _fresh_cache(out)
    started = time.perf_counter()
    for nb in notebooks:
        executed = out / nb.name
        subprocess.run(
            [str(BIN / "papermill"), str(nb), str(executed), "-p", "data", str(data),
             "-p", "quarter", quarter, "--no-progress-bar", "--log-level", "WARNING"],
            check=True, cwd=nb.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        subprocess.run(
            [str(BIN / "jupyter"), "nbconvert", "--to", "html", "--no-input", str(executed)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
    return time.perf_counter() - started


def _warm_up(notebook: Path, data: Path, quarter: str, scratch: Path) -> None:
    subprocess.run(
        [str(BIN / "papermill"), str(notebook), str(scratch / "warm.ipynb"), "-p", "data", str(data),
         "-p", "quarter", quarter, "--no-progress-bar", "--log-level", "WARNING"],
        check=True, cwd=notebook.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebooks", nargs="+", type=Path, help="default: notebooks/*.ipynb if any")
    parser.add_argument("--data", type=Path, help="default: data/sample if it has files")
    parser.add_argument("--quarter", default="2026Q3")
    parser.add_argument("--standins", type=int, default=5, help="stand-in notebooks when none are given")
    parser.add_argument("--repeat", type=int, default=1, help="runs per side (median reported)")
    parser.add_argument("--jobs", type=int, default=None, help="kit parallelism (default: cores)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="kpi-bench-"))
    try:
        notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
        data = args.data or ROOT / "data" / "sample"
        real = bool(notebooks) and data.exists() and any(data.iterdir())
        if not real:
            notebooks, data = make_standins(scratch / "standins", args.standins)
            what = f"{len(notebooks)} stand-in notebooks (pandas + seaborn chart + table)"
        else:
            what = f"{len(notebooks)} notebooks from {notebooks[0].parent}"
        notebooks = [n.resolve() for n in notebooks]
        data = data.resolve()
        print(f"Benchmark: {what}; {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
        _warm_up(notebooks[0], data, args.quarter, scratch)

        kit, hand = [], []
        for i in range(args.repeat):
            # Alternate the order so neither side always runs on a warmer machine.
            runs = [("kit", kit), ("hand", hand)] if i % 2 == 0 else [("hand", hand), ("kit", kit)]
            for side, times in runs:
                out = scratch / f"{side}-{i}"
                if side == "kit":
                    times.append(time_kit(notebooks, data, args.quarter, out, args.jobs, real))
                else:
                    times.append(time_by_hand(notebooks, data, args.quarter, out))
                print(f"  run {i + 1}: {side:<4} {times[-1]:6.1f} s")
        k, h = statistics.median(kit), statistics.median(hand)
        print(f"kit  {'kpi report' if real else 'render_report':<25}: {k:6.1f} s")
        print(f"hand papermill + nbconvert CLI: {h:6.1f} s")
        print(f"ratio kit / hand              : {k / h:6.2f}  (target <= 0.40)")
        pages = sorted((scratch / "kit-0" / args.quarter).glob("*.html"))
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 1024:.0f} KiB" for p in pages)
        print(f"kit pages: {sizes}")
    finally:
        if args.keep:
            print(f"scratch kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
