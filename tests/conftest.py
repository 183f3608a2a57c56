"""Shared fixtures. Keep this file small; append new fixtures in their own section."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

# --------------------------------------------------------------------------------------------------
# Report runner (tests/test_report.py, tests/test_browser.py)

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
        ("markdown", "# Summary page"),
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
    from kpi_helpers.report import render_report

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
