"""Shared fixtures. Keep this file small; append new fixtures in their own section."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from hypothesis import settings

# Property tests check invariants, not speed (benchmarks/ measure speed): no per-example deadline,
# which a loaded CI machine would trip.
settings.register_profile("kit", deadline=None)
settings.load_profile("kit")

# --------------------------------------------------------------------------------------------------
# Report runner (tests/test_runner.py, test_pages.py, test_outdir.py, test_browser.py, ...)

#: Markup that must render as text wherever a channel or campaign name is shown.
HOSTILE_CHANNEL = "<script>alert(1)</script>"
HOSTILE_CAMPAIGN = '<img src=x onerror="alert(2)">'


def write_notebook(path: Path, *cells: tuple[str, str] | tuple[str, str, list[str]]) -> Path:
    """Write a notebook of ``(kind, source[, tags])`` cells (kind ``code`` or ``markdown``)."""
    nb = nbformat.v4.new_notebook()
    for kind, source, *tags in cells:
        cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
        if tags:
            cell.metadata["tags"] = tags[0]
        nb.cells.append(cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def kit_quarter(out: Path, label: str = "2026Q3", files: dict[str, str] | None = None) -> Path:
    """A quarter folder as the kit leaves it: its files and the manifest naming them."""
    from kpi_helpers import outdir

    folder = out / label
    folder.mkdir(parents=True)
    for name, text in (files or {"index.html": "<p>kit page</p>", "metrics.json": "{}\n"}).items():
        (folder / name).write_text(text)
    outdir.write_manifest(folder, outdir.manifest_of(folder))
    return folder


def tiny_metrics(**kwargs: object) -> dict:
    """``metrics_fn`` for the tests: headline KPIs, a NaN, and markup in channel/campaign names."""
    return {
        "quarter": kwargs["quarter"],
        "currency": "USD",
        "kpis": [
            {"name": "revenue", "label": "Revenue", "value": 1.2e6, "target": 1.0e6, "format": "currency"},
            {"name": "leads", "label": "Leads", "value": 850, "target": 1000},
            {"name": "cpl", "label": "Cost per lead", "value": 52.0, "target": 50.0, "better": "lower"},
            {"name": "roi", "label": "ROI", "value": math.nan, "target": 3.0},
        ],
        "channels": [
            {"channel": HOSTILE_CHANNEL, "spend": 1.0e4, "leads": 120, "conversion_rate": 0.031},
            {"channel": "Email", "spend": 2.5e3, "leads": 300, "conversion_rate": math.nan},
        ],
        "campaigns": [{"campaign": HOSTILE_CAMPAIGN, "spend": 900.0}],
    }


@dataclass(frozen=True)
class TinyReport:
    out: Path
    quarter: str
    folder: Path  # out / quarter
    notebooks: list[Path]
    progress: list[str]


@pytest.fixture(scope="session")
def tiny_notebooks(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """Two small notebooks (chart + table with hostile names; widgets) and a data folder."""
    root = tmp_path_factory.mktemp("tiny")
    data = root / "data"
    data.mkdir()
    (data / "leads.csv").write_text("channel,leads\nEmail,3\n")
    params = 'data: str = "data/sample"  # export folder\nquarter: str = "latest"  # 2026Q3, latest\n'
    chart = write_notebook(
        root / "nb" / "00-summary.ipynb",
        # links between the notebooks name the .ipynb (JupyterLab) or the page: both reach the page
        ("markdown", "# Summary page\n\n[Widgets](01-widgets.ipynb) · [Widgets page](./01-widgets.html#top)"),
        ("code", params + 'engine: str = "duckdb"  # duckdb or pandas', ["parameters"]),
        ("code", "hidden_code_marker = 41 + 1\nprint(f'quarter={quarter} engine={engine}')"),
        ("code", "import matplotlib.pyplot as plt\n_ = plt.figure(figsize=(3, 2)).gca().bar([1, 2], [3, 4])"),
        ("code", f"import pandas as pd\nnames = [{HOSTILE_CHANNEL!r}, {HOSTILE_CAMPAIGN!r}]\n"
                 "pd.DataFrame({'channel': names, 'leads': [1, 2]})"),
        ("code", "import sys\nprint('warning noise', file=sys.stderr)"),
    )  # fmt: skip
    widgets = write_notebook(
        root / "nb" / "01-widgets.ipynb",
        ("markdown", "# Widgets page\n\nInteractive cells are left out of the report."),
        ("code", params + "target: float = 0.5  # share of goal", ["parameters"]),
        ("code", "print(f'target={target!r}')"),
        ("code", "import ipywidgets as w\nprint('WIDGET-CELL-OUTPUT')\nw.IntSlider()", ["widgets"]),
        ("code", "w.IntSlider(description='untagged')"),
        ("code", "print('REMOVED-CELL-OUTPUT')", ["remove"]),
    )
    return [chart, widgets], data


@pytest.fixture(scope="session")
def tiny_report(tmp_path_factory: pytest.TempPathFactory, tiny_notebooks: tuple[list[Path], Path]) -> TinyReport:
    """The tiny notebooks rendered once for 2026Q3 (slow: runs two kernels)."""
    from kpi_helpers.runner import render_report

    notebooks, data = tiny_notebooks
    out = tmp_path_factory.mktemp("reports")
    lines: list[str] = []
    render_report(
        data=data, quarter="2026Q3", out=out, notebooks=notebooks, params={"target": "0.75"},
        metrics_fn=tiny_metrics, progress=lines.append,
    )  # fmt: skip
    return TinyReport(out, "2026Q3", out / "2026Q3", notebooks, lines)


@pytest.fixture(scope="session", autouse=True)
def _kpi_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Validation stamps of the test run go to a temporary folder, not the user's ~/.cache."""
    import os

    os.environ["KPI_CACHE_DIR"] = str(tmp_path_factory.mktemp("kpi-cache"))
    # Reports in the suite fit the mix model and the CLV model with few draws: the tests check the pipeline
    # and the pages; accuracy is the recovery benchmark's and tests/test_mmm.py's, on their own settings.
    os.environ.setdefault("KPI_MODEL_DRAWS", "50")


# --------------------------------------------------------------------------------------------------
# The fast tests (`make test-fast`, `pytest -m "not slow"`): pure units, under a minute on 2 cores.

#: Modules whose tests open a data folder (validation, DuckDB, the cache), run the CLI on one, or
#: simulate hundreds of replicates: seconds each, so the whole module is marked slow here rather
#: than test by test. `make test` (CI) runs them all.
SLOW_MODULES = frozenset(
    {
        "test_asof", "test_attribution", "test_backtest", "test_cache", "test_changes", "test_cli", "test_clv_model",
        "test_coverage", "test_mmm", "test_model_metrics",
        "test_exports", "test_facts", "test_forecast", "test_hostile", "test_kernels", "test_mapping",
        "test_metrics", "test_presets", "test_registry_alone", "test_sample", "test_source", "test_sqlguard",
        "test_uncertainty", "test_validation",
    }
)  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.rpartition(".")[2] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


# --------------------------------------------------------------------------------------------------
# The sample rendered once, with its PDF (tests/test_e2e.py, test_onefile.py, test_pdf.py, test_brief.py,
# test_mail.py)

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
#: the sample's Referral channel, renamed to markup in every table before the render
SAMPLE_CHANNEL = f"Referral {HOSTILE_CHANNEL}"


@dataclass(frozen=True)
class SampleReport:
    data: Path
    folder: Path  # OUT/2026Q3
    seconds: float  # the render's wall time, `--pdf` included


def plant_markup(folder: Path) -> None:
    """Rename the Referral channel and one campaign to text full of markup, in every table."""
    import pandas as pd

    for name in ("web_sessions", "web_goals", "leads", "spend", "touchpoints"):
        path = folder / f"{name}.csv"
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        df["channel"] = df["channel"].replace("Referral", SAMPLE_CHANNEL)
        if "campaign" in df:
            first = next(c for c in df["campaign"] if c)
            df["campaign"] = df["campaign"].replace(first, HOSTILE_CAMPAIGN)
        df.to_csv(path, index=False)


@pytest.fixture(scope="session")
def sample_report(tmp_path_factory: pytest.TempPathFactory) -> SampleReport:
    """`kpi report --pdf` on a copy of the sample with markup planted in a channel and a campaign
    (slow: all six notebooks, about a minute on 2 cores)."""
    import shutil
    import time

    from kpi_helpers.cli import main

    tmp = tmp_path_factory.mktemp("sample")
    data = tmp / "data"
    shutil.copytree(SAMPLE, data)
    plant_markup(data)
    out = tmp / "reports"
    started = time.perf_counter()
    assert main(["report", "--data", str(data), "--quarter", "latest", "--out", str(out), "--pdf"]) == 0
    return SampleReport(data, out / "2026Q3", time.perf_counter() - started)
