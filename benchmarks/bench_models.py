"""What the models cost: cold fits of the mix model and the CLV model, and the report with and without them.

    python benchmarks/bench_models.py [--data data/sample] [--skip-report]

Prints, measured in this run on this machine:

- the cold fit of the mix model (notebook 05's two fits: with and without the lift tests) and of the
  modelled CLV, each in a fresh process with an empty cache, imports included (aims on the sample:
  mix model under 120 s, CLV under 15 s);
- ``kpi report`` cold and warm (a second run on the same bytes) with every notebook and the models,
  against the report without notebook 05 and without the models (``KPI_NO_MODELS=1``) in the same run
  (aims: cold at most the report without them plus the fits plus 15 s; warm at most 1.2x).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
KPI = str(Path(sys.executable).with_name("kpi"))

FIT = """
import sys, time
started = time.perf_counter()
from kpi_helpers.source import DataSource
from kpi_helpers import model_metrics as MM
src = DataSource.open(sys.argv[1])
q = src.quarter("latest").label
if sys.argv[2] == "mmm":
    from kpi_helpers.mmm import fit_incrementality
    s = MM.mmm_settings({})
    r = fit_incrementality(src, q, s)
    if r.calibrated:
        fit_incrementality(src, q, s.model_copy(update={"calibrate": False}))
    d = r.diagnostics
    print(f"{time.perf_counter() - started:.1f} rhat_max={d.get('rhat_max')} ess_min={d.get('ess_min')} "
          f"divergences={d.get('divergences')} holdout_mape={d.get('holdout_mape')}")
else:
    from kpi_helpers.clv_model import fit_clv
    r = fit_clv(src, q, MM.clv_settings(src.settings))
    d = r.diagnostics
    print(f"{time.perf_counter() - started:.1f} rhat_max={d.get('rhat_max')} ess_min={d.get('ess_bulk_min')} "
          f"divergences={d.get('divergences')}")
"""


def _env(cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KPI_NO_MODELS", "KPI_MODEL_DRAWS", "KPI_NO_CACHE")}
    return {**env, "KPI_CACHE_DIR": str(cache), **extra}


def fit(data: str, which: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(
            [PY, "-c", FIT, data, which], env=_env(Path(tmp) / "cache"), capture_output=True, text=True, check=True
        )
    return run.stdout.strip().splitlines()[-1]


def report(data: str, notebooks: list[str], env: dict[str, str], out: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [KPI, "report", "--data", data, "--quarter", "latest", "--out", str(out), "--notebooks", *notebooks],
        env=env,
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "sample"))
    parser.add_argument("--skip-report", action="store_true", help="time the fits only")
    args = parser.parse_args()

    mmm = fit(args.data, "mmm")
    clv = fit(args.data, "clv")
    mmm_s, clv_s = float(mmm.split()[0]), float(clv.split()[0])
    print(f"mix model, cold (two fits, imports included): {mmm}   aim < 120 s")
    print(f"modelled CLV, cold (imports included):        {clv}   aim < 15 s")
    if args.skip_report:
        return 0
    all_nbs = sorted(str(p) for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    without = [nb for nb in all_nbs if not Path(nb).name.startswith("05-")]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        plain_env = _env(base / "cache-plain", KPI_NO_MODELS="1")
        full_env = _env(base / "cache-full")
        plain_cold = report(args.data, without, plain_env, base / "out-plain")
        full_cold = report(args.data, all_nbs, full_env, base / "out-full")
        plain_warm = report(args.data, without, plain_env, base / "out-plain")
        full_warm = report(args.data, all_nbs, full_env, base / "out-full")
    aim_cold = plain_cold + mmm_s + clv_s + 15
    print(f"report without the models: cold {plain_cold:.1f} s, warm {plain_warm:.1f} s")
    print(
        f"report with notebook 05 and the models: cold {full_cold:.1f} s (aim <= {aim_cold:.1f} s: "
        f"{'met' if full_cold <= aim_cold else 'not met'}), warm {full_warm:.1f} s "
        f"({full_warm / plain_warm:.2f}x; aim <= 1.2x: {'met' if full_warm <= 1.2 * plain_warm else 'not met'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
