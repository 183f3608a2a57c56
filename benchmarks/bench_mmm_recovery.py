"""Benchmark: does the marketing mix model recover the sample generator's planted truth?

For the sample (``data/sample``) and for datasets generated with seeds that development did not use
(default 201-220; :data:`kpi_helpers.sample.DEVELOPMENT_SEEDS` are refused), fit
:func:`kpi_helpers.mmm.fit_incrementality` with the default settings on the window the generator's
``truth.json`` describes (the last 104 complete weeks: the quarter in progress, ``current``) and print:

- per channel, the true incremental leads per unit of activity cost against the estimate and its 90%
  interval, and whether the interval holds the truth; the true and estimated incremental ROI;
- per dataset, the Spearman rank correlation of the channels' order by incremental ROI (estimate
  medians against the truth), the fit's wall time (cold: an empty cache folder) and its diagnostics;
- over the generated seeds, the share of channel-seed pairs whose interval holds the truth (the issue's
  aim: 80-97%) and the mean rank correlation (aim: at least 0.6); the sample on its own (its bar: every
  channel inside but at most one, Spearman at least 0.6).

    python benchmarks/bench_mmm_recovery.py                        # the sample and seeds 201-220
    python benchmarks/bench_mmm_recovery.py --seeds 201-205 --skip-sample
    python benchmarks/bench_mmm_recovery.py --seeds none --no-calibrate   # the sample, without lift tests
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scipy.stats import spearmanr  # noqa: E402

from kpi_helpers import mmm as M  # noqa: E402
from kpi_helpers.sample import DEVELOPMENT_SEEDS, TRUTH, generate  # noqa: E402
from kpi_helpers.source import DataSource  # noqa: E402

SAMPLE = ROOT / "data" / "sample"
HELD_OUT = tuple(range(201, 221))


def parse_seeds(text: str) -> list[int]:
    """``201-220``, ``201,205`` or ``none``."""
    if text.strip().lower() in ("", "none"):
        return []
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    used = sorted(set(seeds) & set(DEVELOPMENT_SEEDS))
    if used:
        raise SystemExit(f"seeds {used} were used in development (kpi_helpers.sample.DEVELOPMENT_SEEDS): pick others")
    return seeds


def fit(folder: Path, settings: M.MmmSettings) -> dict[str, Any]:
    """One cold fit of ``folder`` against its truth.json: per-channel rows and the dataset's figures."""
    truth = json.loads((folder / TRUTH).read_text())
    src = DataSource.open(folder)
    started = time.perf_counter()
    r = M.fit_incrementality(src, "current", settings)
    seconds = time.perf_counter() - started
    window = {"start": r.start.isoformat(), "end": r.end.isoformat(), "weeks": r.weeks}
    rows = []
    for channel, true_ipc in truth["incremental_per_cost"].items():
        if channel not in r.channels.index:
            rows.append({"channel": channel, "truth": true_ipc, "missing": True})
            continue
        c = r.channels.loc[channel]
        rows.append(
            {
                "channel": channel,
                "truth": true_ipc,
                "estimate": float(c["incremental_per_cost"]),
                "low": float(c["incremental_per_cost_low"]),
                "high": float(c["incremental_per_cost_high"]),
                "inside": bool(c["incremental_per_cost_low"] <= true_ipc <= c["incremental_per_cost_high"]),
                "roi_truth": truth["incremental_roi"][channel],
                "roi": float(c["incremental_roi"]),
                "roi_low": float(c["incremental_roi_low"]),
                "roi_high": float(c["incremental_roi_high"]),
                "attribution_roi": float(c["attribution_roi_activity_cost"]),
                "share_truth": truth["contribution_share"][channel],
                "share": float(c["contribution_share"]),
            }
        )
    found = [x for x in rows if not x.get("missing")]
    rho = (
        spearmanr([x["roi"] for x in found], [x["roi_truth"] for x in found]).statistic if len(found) > 2 else math.nan
    )
    return {
        "rows": rows,
        "rho": float(rho),
        "seconds": seconds,
        "diagnostics": r.diagnostics,
        "warnings": r.warnings,
        "window": window,
        "truth_window": truth["window"],
        "budget": r.budget_summary,
    }


def show(name: str, res: dict[str, Any]) -> None:
    d = res["diagnostics"]
    print(f"\n[{name}] window {res['window']['start']} to {res['window']['end']} ({res['window']['weeks']} weeks)")
    if res["window"] != res["truth_window"]:
        print(f"  note: truth.json's window is {res['truth_window']}")
    print(
        f"  {'channel':<16}{'truth':>9}{'estimate':>10}   90% interval          {'roi truth':>9}{'roi':>7}"
        f"   roi 90% interval   attribution roi"
    )
    for x in res["rows"]:
        if x.get("missing"):
            print(f"  {x['channel']:<16}{x['truth']:>9.5f}  (not in the model)")
            continue
        print(
            f"  {x['channel']:<16}{x['truth']:>9.5f}{x['estimate']:>10.5f}   [{x['low']:.5f}, {x['high']:.5f}] "
            f"{'in ' if x['inside'] else 'OUT'}{x['roi_truth']:>9.2f}{x['roi']:>7.2f}   "
            f"[{x['roi_low']:.2f}, {x['roi_high']:.2f}]{x['attribution_roi']:>12.2f}"
        )
    inside = sum(x.get("inside", False) for x in res["rows"])
    print(
        f"  inside {inside}/{len(res['rows'])}; Spearman (ROI order) {res['rho']:.2f}; fit {res['seconds']:.0f} s; "
        f"R-hat max {d['rhat_max']:.3f}, ESS min {d['ess_min']:.0f}, divergences {d['divergences']}, "
        f"holdout MAPE {d['holdout_mape']:.1%} (naive {d['naive_mape']:.1%})"
    )
    for w in res["warnings"]:
        print(f"  warning: {w}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="201-220", help="generated seeds: 201-220 (default), 201,205 or none")
    ap.add_argument("--skip-sample", action="store_true", help="leave out data/sample")
    ap.add_argument("--no-calibrate", action="store_true", help="fit without the lift tests")
    ap.add_argument("--draws", type=int, help="posterior draws (default: the kit's default)")
    ap.add_argument("--tune", type=int, help="tuning steps (default: the kit's default)")
    ap.add_argument("--scale", type=float, default=1.0, help="size of the generated datasets (default 1)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="another setting, e.g. seed=7")
    args = ap.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    changes: dict[str, Any] = {"calibrate": not args.no_calibrate}
    if args.draws:
        changes["draws"] = args.draws
    if args.tune:
        changes["tune"] = args.tune
    for item in args.set:
        name, _, value = item.partition("=")
        changes[name] = json.loads(value)
    settings = M.MmmSettings.of(**changes)
    print(f"settings: {dict(settings.key())}")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="kpi-bench-mmm-") as tmp:
        # cold fits: an empty cache folder, so nothing is read from an earlier run
        os.environ["KPI_CACHE_DIR"] = str(Path(tmp) / "cache")
        if not args.skip_sample:
            results["sample"] = fit(SAMPLE, settings)
            show("sample", results["sample"])
        for seed in seeds:
            folder = Path(tmp) / f"seed{seed}"
            generate(folder, seed=seed, scale=args.scale)
            results[f"seed {seed}"] = fit(folder, settings)
            show(f"seed {seed}", results[f"seed {seed}"])
    print("\n== summary ==")
    if "sample" in results:
        s = results["sample"]
        inside = sum(x.get("inside", False) for x in s["rows"])
        print(
            f"sample: {inside}/{len(s['rows'])} channels inside their 90% interval (bar: all but at most one); "
            f"Spearman {s['rho']:.2f} (bar: 0.6); fit {s['seconds']:.0f} s (aim: under 120 s)"
        )
    gen = [v for k, v in results.items() if k != "sample"]
    if gen:
        pairs = [x for v in gen for x in v["rows"]]
        inside = sum(x.get("inside", False) for x in pairs)
        rhos = [v["rho"] for v in gen if not math.isnan(v["rho"])]
        secs = [v["seconds"] for v in gen]
        warned = sum(bool(v["warnings"]) for v in gen)
        print(
            f"{len(gen)} generated datasets: {inside}/{len(pairs)} channel-seed pairs inside "
            f"({inside / len(pairs):.0%}; aim 80-97%); mean Spearman {statistics.mean(rhos):.2f} "
            f"(median {statistics.median(rhos):.2f}; aim 0.6); "
            f"fit {statistics.mean(secs):.0f} s mean, {max(secs):.0f} s max; {warned} with a diagnostic warning"
        )
        by_channel: dict[str, list[bool]] = {}
        for x in pairs:
            by_channel.setdefault(x["channel"], []).append(x.get("inside", False))
        print("  inside by channel: " + ", ".join(f"{c} {sum(v)}/{len(v)}" for c, v in by_channel.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
