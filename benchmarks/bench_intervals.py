"""Benchmark: what the intervals, the change judgements and the cohort maturity add to a quarter's metrics.

Times, in the same run and with the result cache off (``KPI_NO_CACHE=1``, so each side computes
every query), ``QuarterKpis.metrics()`` as the report computes it and the same without what
:mod:`kpi_helpers.reliability` adds (``metrics.json``'s ``_low``/``_high`` keys, the ``by_channel``
ranges and the ``changes`` block), alternating the two ``--repeat`` times and keeping each side's
best; then :func:`kpi_helpers.cohorts.funnel_maturity` (notebook 03 only) on its own.

    python benchmarks/bench_intervals.py
    python benchmarks/bench_intervals.py --data benchmarks/data/scale100 --repeat 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ["KPI_NO_CACHE"] = "1"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kpi_helpers import cohorts, reliability  # noqa: E402
from kpi_helpers.metrics import QuarterKpis  # noqa: E402
from kpi_helpers.source import DataSource  # noqa: E402


def _metrics(src: DataSource, quarter: str, *, with_uncertainty: bool) -> float:
    """Seconds of a fresh ``QuarterKpis(...).metrics()`` (nothing computed before it)."""
    kq = QuarterKpis(src, quarter)
    if not with_uncertainty:
        kq._with_uncertainty = lambda m: m  # type: ignore[method-assign]
    t0 = time.perf_counter()
    m = kq.metrics()
    seconds = time.perf_counter() - t0
    assert ("changes" in m) == with_uncertainty
    return seconds


def _parts(src: DataSource, quarter: str) -> dict[str, float]:
    """Seconds of each part of what reliability adds, on a quarter whose KPIs are computed already."""
    kq = QuarterKpis(src, quarter)
    kq._with_uncertainty = lambda m: m  # type: ignore[method-assign]
    m = kq.metrics()
    out = {}
    for name, fn in (
        ("KPI intervals", lambda: reliability.kpi_intervals(kq, m)),
        ("channel intervals", lambda: reliability.channel_intervals(kq)),
        ("changes", lambda: reliability.kpi_changes(kq)),
        ("cohort maturity (notebook 03)", lambda: cohorts.funnel_maturity(kq)),
    ):
        t0 = time.perf_counter()
        fn()
        out[name] = time.perf_counter() - t0
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "sample"))
    parser.add_argument("--quarter", default="latest")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    t0 = time.perf_counter()
    src = DataSource.open(args.data)
    print(f"opened {args.data} in {time.perf_counter() - t0:.1f} s (result cache off)")
    without, with_ = [], []
    for _ in range(args.repeat):
        without.append(_metrics(src, args.quarter, with_uncertainty=False))
        with_.append(_metrics(src, args.quarter, with_uncertainty=True))
    base, full = min(without), min(with_)
    print(f"  metrics() without intervals and changes: {base:7.2f} s  (runs: {', '.join(f'{x:.2f}' for x in without)})")
    print(f"  metrics() with them:                     {full:7.2f} s  (runs: {', '.join(f'{x:.2f}' for x in with_)})")
    print(f"  added:                                   {full - base:7.2f} s  (+{(full - base) / base:.0%})")
    for name, seconds in _parts(src, args.quarter).items():
        print(f"    {name:<32}{seconds:7.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
