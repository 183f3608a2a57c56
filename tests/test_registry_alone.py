"""Adding a KPI takes its registry entry (and its formula and test): nothing else.

A plugin (``sitecustomize``, which every Python process and notebook kernel of the run imports)
adds one entry, ``pages_per_visit``, to :data:`kpi_helpers.registry.KPIS` and touches no other
file. The KPI then appears, formatted by its unit, in ``metrics.json``, ``kpi summary``, the
summary notebook and the index page.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = """
from kpi_helpers import registry as R

R.KPIS["pages_per_visit"] = R.Kpi(
    "pages_per_visit", "Pages per visit", "ratio", ("pageviews", "visits"), True, "page views / visits",
    "", lambda r: r["pageviews"] / r["visits"], headline=True,
)
"""


def _expected(quarter: str) -> float:
    """Page views / sessions of the quarter, by hand from the sample's web sessions."""
    web = pd.read_csv(ROOT / "data/sample/web_sessions.csv", parse_dates=["date"])
    q = web[web["date"].dt.to_period("Q").astype(str) == quarter]
    return float(q["pageviews"].sum() / q["sessions"].sum())


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    plugin = tmp_path_factory.mktemp("plugin")
    (plugin / "sitecustomize.py").write_text(PLUGIN, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(plugin), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["KPI_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))  # results cached by the kit's code alone
    return env


def _kpi(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "kpi_helpers.cli", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def test_summary_shows_a_kpi_added_to_the_registry_alone(env: dict[str, str]) -> None:
    done = _kpi(env, "summary", "--data", "data/sample", "--quarter", "2026Q3", "--json")
    assert done.returncode == 0, done.stderr
    value = json.loads(done.stdout)["pages_per_visit"]
    assert value == pytest.approx(_expected("2026Q3"), rel=1e-12)
    table = _kpi(env, "summary", "--data", "data/sample", "--quarter", "2026Q3")
    assert table.returncode == 0, table.stderr
    assert any("Pages per visit" in line and f"{value:.2f}" in line for line in table.stdout.splitlines())


@pytest.mark.slow
def test_the_report_shows_a_kpi_added_to_the_registry_alone(env: dict[str, str], tmp_path: Path) -> None:
    summary = next((ROOT / "notebooks").glob("00-*.ipynb"))
    out = tmp_path / "reports"
    done = _kpi(env, "report", "--data", "data/sample", "--quarter", "2026Q3", "--out", str(out),
                "--notebooks", str(summary))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "2026Q3" / "metrics.json").read_text(encoding="utf-8"))
    value = metrics["pages_per_visit"]
    assert value == pytest.approx(_expected("2026Q3"), rel=1e-12)
    shown = f"{value:.2f}"  # a ratio shows two decimals
    page = (out / "2026Q3" / summary.with_suffix(".html").name).read_text(encoding="utf-8")
    index = (out / "2026Q3" / "index.html").read_text(encoding="utf-8")
    for html in (page, index):
        assert "Pages per visit" in html and shown in html
