"""Benchmark: what the on-disk cache costs, against a baseline version of the kit.

Three figures, each the median of ``--repeat`` runs in fresh processes (interpreter start and
imports included, as in a notebook kernel or a ``kpi`` command):

- ``code_hash()``: hashing the kit's own files, once per process, in every kernel;
- ``kpi summary`` cold (empty cache: validation, typing, every aggregate computed and stored) and
  warm (same data again: typed tables attached, every aggregate read from the cache), for this
  tree and, with ``--baseline REF``, for the kit at git ``REF`` (exported to a temporary folder);
- reading every entry of the warm cache in one process (:func:`kpi_helpers.cache.get`).

``PYTHONHASHSEED`` is fixed: some of the kit's SQL depends on set order (``ibis`` ``drop``), and a
varying seed would make the warm runs miss a few entries at random on both sides.

Usage::

    python benchmarks/bench_cache.py                         # this tree only
    python benchmarks/bench_cache.py --baseline a472eee      # against the kit before the cache rewrite
    python benchmarks/bench_cache.py --data data/sample --repeat 7
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

_CODE_HASH = """
import time
t0 = time.perf_counter()
from kpi_helpers import cache
t1 = time.perf_counter()
cache.code_hash()
t2 = time.perf_counter()
cache.code_hash()
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""

_READ_ALL = """
import sys, time
from pathlib import Path
import pandas, pyarrow  # imported by any run that reads the cache: not counted
from kpi_helpers import cache, kpis
root = cache.cache_dir()
paths = sorted(root.glob("results/*/*.result"))
t0 = time.perf_counter()
for p in paths:
    assert cache._load(p) is not cache.MISSING, p
t1 = time.perf_counter()
files = {p.name.split(".")[0]: p for p in sorted(Path(sys.argv[1]).iterdir()) if p.suffix in (".csv", ".parquet")}
cache.validation_stamp(files, ())  # engine versions and code hash, once per process: not counted
t2 = time.perf_counter()
cache.validation_stamp(files, ())
t3 = time.perf_counter()
typed = sorted(root.glob("validated/*.duckdb"))[0]
t4 = time.perf_counter()
cache._file_digest(typed)
t5 = time.perf_counter()
size_in = sum(p.stat().st_size for p in files.values())
print(len(paths), t1 - t0, sum(p.stat().st_size for p in paths), t3 - t2, size_in, t5 - t4, typed.stat().st_size)
"""


def _env(tree: Path, cache_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KPI_NO_CACHE"}
    env.update(PYTHONPATH=str(tree), KPI_CACHE_DIR=str(cache_dir), PYTHONHASHSEED="0")
    return env


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def summary_times(tree: Path, data: Path, repeat: int) -> tuple[float, float]:
    """Median wall seconds of ``kpi summary``: cold (fresh cache each time) and warm (cache filled)."""
    cmd = [sys.executable, "-m", "kpi_helpers.cli", "summary", "--data", str(data)]
    cold, warm = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            env = _env(tree, Path(tmp) / f"cold{i}")
            cold.append(_timed(cmd, env, tree))
        env = _env(tree, Path(tmp) / "cold0")
        for _ in range(repeat):
            warm.append(_timed(cmd, env, tree))
    return statistics.median(cold), statistics.median(warm)


def code_hash_times(tree: Path, repeat: int) -> tuple[float, float, float]:
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", _CODE_HASH], env=_env(tree, Path(tempfile.gettempdir())), capture_output=True,
            text=True, check=True,
        )  # fmt: skip
        runs.append(tuple(float(x) for x in out.stdout.split()))
    return tuple(statistics.median(r[i] for r in runs) for i in range(3))  # type: ignore[return-value]


def read_all(tree: Path, data: Path) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = _env(tree, Path(tmp) / "c")
        subprocess.run(
            [sys.executable, "-m", "kpi_helpers.cli", "summary", "--data", str(data)], env=env, cwd=tree,
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        out = subprocess.run(
            [sys.executable, "-c", _READ_ALL, str(data)], env=env, capture_output=True, text=True, check=True
        )
    return [float(x) for x in out.stdout.split()]


def export(ref: str, dest: Path) -> Path:
    """The kit at git ``ref``, as files in ``dest`` (no worktree, nothing checked out here)."""
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/sample")
    parser.add_argument("--baseline", default=None, metavar="REF", help="git ref of the kit to compare with")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = (ROOT / args.data).resolve()

    imp, first, again = code_hash_times(ROOT, args.repeat)
    files = sum(1 for p in (ROOT / "kpi_helpers").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    print(f"code_hash(): {first * 1e3:.1f} ms first call ({files} files), {again * 1e6:.1f} us after; ")
    print(f"  import kpi_helpers.cache: {imp * 1e3:.1f} ms")
    n, seconds, size, stamp, size_in, typed, size_typed = read_all(ROOT, data)
    print(f"reading the warm cache: {n:.0f} entries, {size / 1024:.0f} KiB, {seconds * 1e3:.1f} ms in all")
    print(f"validation_stamp(): {stamp * 1e3:.1f} ms hashing {size_in / 2**20:.1f} MiB of inputs (every open)")
    print(f"typed tables checksum: {typed * 1e3:.1f} ms for {size_typed / 2**20:.1f} MiB (every open of a CSV source)")

    rows = [("this tree", ROOT)]
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            rows.insert(0, (f"baseline {args.baseline}", export(args.baseline, Path(tmp))))
        print(f"\nkpi summary --data {args.data} (median of {args.repeat}, seconds)")
        print(f"  {'kit':<22} {'cold':>6} {'warm':>6}")
        for label, tree in rows:
            cold, warm = summary_times(tree, data, args.repeat)
            print(f"  {label:<22} {cold:>6.2f} {warm:>6.2f}")


if __name__ == "__main__":
    main()
