"""Same data, same kit: the same SQL (so the same cache keys) in every process, and the same numbers.

Parallel report kernels share results through the cache only when each builds the same SQL for the
same aggregate; SQL that depended on the interpreter's hash seed would make them miss each other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY = Path(__file__).parent / "fixtures" / "tiny"

_SCRIPT = r"""
import json, sys
import ibis
from kpi_helpers.source import DataSource
from kpi_helpers.metrics import quarter_metrics, to_json

seen = []
original = DataSource.fetch

def fetch(self, expr, *, label=""):
    seen.append(ibis.to_sql(expr))
    return original(self, expr, label=label)

DataSource.fetch = fetch
m = quarter_metrics(DataSource.open(sys.argv[1]), "2025Q1")
print(json.dumps({"sql": sorted(set(seen)), "metrics": to_json(m)}))
"""


def _run(seed: str, tmp_path: Path) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": seed, "KPI_CACHE_DIR": str(tmp_path / f"cache-{seed}")}
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(TINY)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


@pytest.mark.slow
def test_sql_and_metrics_do_not_depend_on_the_hash_seed(tmp_path):
    a, b = _run("1", tmp_path), _run("2", tmp_path)
    assert a["sql"] == b["sql"]
    assert a["metrics"] == b["metrics"]
