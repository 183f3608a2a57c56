"""Benchmark: the modelled CLV's cold and warm fit on a data folder (aim: cold under 15 s on the sample).

Each run is a fresh process with an empty kit cache (``KPI_CACHE_DIR``), as a report's kernel is:

- ``open``: :meth:`DataSource.open` (validation and typing; not part of the fit);
- ``cold``: :func:`kpi_helpers.clv_model.fit_clv` with nothing cached: the per-account and CAC
  queries, then ``fit`` (``ClvResult.diagnostics["fit_seconds"]``): importing PyMC-Marketing,
  building and compiling the model, NUTS, the predictions;
- ``warm``: a second fresh process on the same cache: the stored result read back (PyMC is not even
  imported, which the script checks).

PyTensor keeps compiled C code in its own folder (``~/.pytensor``) across processes; the first run
on a machine compiles it, later runs reuse it. ``--fresh-compiledir`` gives every cold run an empty
one of its own (the first run on a new machine). Medians of ``--repeat`` runs.

    python benchmarks/bench_clv.py                       # the sample, the model goals.yml / the data choose
    python benchmarks/bench_clv.py --model bgnbd --repeat 3
    python benchmarks/bench_clv.py --fresh-compiledir --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_RUN = """
import json, sys, time
t0 = time.perf_counter()
from kpi_helpers import clv_model
from kpi_helpers.source import DataSource
src = DataSource.open(sys.argv[1])
t1 = time.perf_counter()
r = clv_model.fit_clv(src, "latest", clv_model.ClvSettings.from_settings(src.settings, model=sys.argv[2]))
t2 = time.perf_counter()
print(json.dumps({
    "open": t1 - t0, "fit_clv": t2 - t1, "fit": r.diagnostics["fit_seconds"], "model": r.model,
    "converged": r.converged, "pymc_imported": "pymc" in sys.modules, "metrics": r.metrics(),
}))
"""


def run(data: Path, model: str, cache_dir: Path, compiledir: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "KPI_NO_CACHE"}
    env.update(PYTHONPATH=str(ROOT), KPI_CACHE_DIR=str(cache_dir), PYTHONHASHSEED="0")
    if compiledir is not None:
        env["PYTENSOR_FLAGS"] = f"compiledir={compiledir}"
    out = subprocess.run(
        [sys.executable, "-c", _RUN, str(data), model], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/sample")
    parser.add_argument("--model", default="auto", choices=("auto", "bgnbd", "sbg"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fresh-compiledir", action="store_true", help="an empty PyTensor compile folder per run")
    args = parser.parse_args()
    data = (ROOT / args.data).resolve()
    cold, warm = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            cache_dir = Path(tmp) / f"c{i}"
            compiledir = Path(tmp) / f"pytensor{i}" if args.fresh_compiledir else None
            cold.append(run(data, args.model, cache_dir, compiledir))
            warm.append(run(data, args.model, cache_dir))
    first = cold[0]
    assert all(w["metrics"] == c["metrics"] for w, c in zip(warm, cold, strict=True)), "warm differs from cold"
    assert not any(w["pymc_imported"] for w in warm), "a warm run imported PyMC"

    def med(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    print(f"data {args.data}: model {first['model']}, converged {all(c['converged'] for c in cold)}")
    print(f"open (validation, not the fit): {med(cold, 'open'):.1f} s")
    runs = ", ".join(f"{c['fit_clv']:.1f}" for c in cold)
    print(f"fit_clv cold: {med(cold, 'fit_clv'):.1f} s (import included; fit {med(cold, 'fit'):.1f} s), runs {runs}")
    print(f"fit_clv warm: {med(warm, 'fit_clv') * 1e3:.0f} ms (read from the cache; PyMC not imported)")


if __name__ == "__main__":
    main()
