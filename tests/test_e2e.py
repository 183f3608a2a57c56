"""End to end: `kpi report` on the sample, with markup planted in a channel and a campaign name.

Renders all five notebooks once (about a minute on 2 cores), then checks every file, that
metrics.json equals the helpers' numbers, and that every page opens offline in Chromium without
console errors or requests, with charts and tables, and with the planted markup shown as text.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import HOSTILE_CAMPAIGN, HOSTILE_CHANNEL

from kpi_helpers.cli import main
from kpi_helpers.metrics import quarter_metrics, to_json
from kpi_helpers.source import DataSource

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
CHANNEL = f"Referral {HOSTILE_CHANNEL}"

pytestmark = pytest.mark.slow


def _plant_markup(folder: Path) -> None:
    """Rename the Referral channel and one campaign to text full of markup, in every table."""
    for name in ("web_sessions", "web_goals", "leads", "spend", "touchpoints"):
        path = folder / f"{name}.csv"
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        df["channel"] = df["channel"].replace("Referral", CHANNEL)
        if "campaign" in df:
            first = next(c for c in df["campaign"] if c)
            df["campaign"] = df["campaign"].replace(first, HOSTILE_CAMPAIGN)
        df.to_csv(path, index=False)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("e2e")
    data = tmp / "data"
    shutil.copytree(ROOT / "data" / "sample", data)
    _plant_markup(data)
    out = tmp / "reports"
    assert main(["report", "--data", str(data), "--quarter", "latest", "--out", str(out)]) == 0
    return data, out / "2026Q3"


def test_every_file_is_written(rendered):
    _, folder = rendered
    names = {p.name for p in folder.iterdir()}
    for nb in NOTEBOOKS:
        assert {nb.name, nb.with_suffix(".html").name} <= names
    assert {"index.html", "metrics.json"} <= names
    assert (folder.parent / "index.html").exists()


def test_metrics_json_equals_the_helpers(rendered):
    data, folder = rendered
    written = json.loads((folder / "metrics.json").read_text())
    expected = json.loads(to_json(quarter_metrics(DataSource.open(data), "2026Q3")))
    assert written == expected
    assert CHANNEL in written["by_channel"]


def test_pages_open_offline_and_show_markup_as_text(rendered):
    from test_browser import audit_page, chromium, report_pages

    _, folder = rendered
    with chromium() as browser:
        audits = {p.name if p.parent == folder else "top": audit_page(browser, p) for p in report_pages(folder)}
    assert [problem for a in audits.values() for problem in a.problems] == []
    for nb in NOTEBOOKS:
        page = audits[nb.with_suffix(".html").name]
        assert page.images >= 1 and page.tables >= 1, f"{nb.name}: a chart and a table"
    assert CHANNEL in audits["index.html"].text  # shown as text, not run
    assert CHANNEL in audits["03-channel-conversion.html"].text
    assert HOSTILE_CAMPAIGN in audits["04-roi.html"].text


def test_no_personal_data_in_pages(rendered):
    _, folder = rendered
    for page in folder.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"[\w.+-]+@[\w-]+\.[A-Za-z]{2,}\b", text), f"{page.name}: an e-mail address"
        assert not re.search(r"\bL\d{6}\b", text), f"{page.name}: lead ids"


def test_index_tells_the_quarter_in_brief(rendered):
    """index.html leads with the summary page's conclusion (the same words, rendered once there)."""
    import nbformat

    _, folder = rendered
    index = (folder / "index.html").read_text(encoding="utf-8")
    assert "The quarter in brief" in index
    nb = nbformat.read(folder / "00-quarterly-summary.ipynb", as_version=4)
    conclusion = next(c for c in nb.cells if "conclusion" in c.metadata.get("tags", []))
    first = conclusion.outputs[0].data["text/markdown"].split("**")[1]  # "2026Q3 revenue was USD ..."
    assert first.startswith("2026Q3 revenue was") and first in index
    assert index.index("The quarter in brief") < index.index("Headline KPIs")
