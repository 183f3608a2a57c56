"""Open the rendered report in Chromium with the network cut, as leadership would open it offline.

Needs Debian's ``chromium`` (``apt-get install -y chromium``); Playwright drives it through
``executable_path`` (``playwright install`` is not needed). The audit is reusable on a real report::

    KPI_REPORT_DIR=reports/2026Q3 pytest tests/test_browser.py -m browser -k existing
    python tests/test_browser.py reports/2026Q3        # prints the problems, exit 1 if any
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import HOSTILE_CAMPAIGN, HOSTILE_CHANNEL, TinyReport

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync",
]  # fmt: skip
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install chromium)"),
]

# Elements that markup in a channel or campaign name would create if it were not escaped.
_INJECTED_JS = """() => [
  ...Array.from(document.querySelectorAll('script'))
     .map(e => 'script: ' + (e.src || e.textContent.slice(0, 40))),
  ...Array.from(document.querySelectorAll('img[src="x"], [onerror], [onload], [onclick]'))
     .map(e => e.outerHTML.slice(0, 80)),
]"""
_IMAGES_JS = """() => Array.from(document.images)
  .map(i => ({src: i.src.slice(0, 40), ok: i.complete && i.naturalWidth > 0}))"""


@dataclass
class PageAudit:
    """What a page did when opened offline."""

    path: Path
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # anything not file:/data:, all aborted
    dialogs: list[str] = field(default_factory=list)
    images: int = 0
    broken_images: list[str] = field(default_factory=list)
    tables: int = 0
    injected: list[str] = field(default_factory=list)
    text: str = ""

    @property
    def problems(self) -> list[str]:
        named = {
            "console error": self.console_errors,
            "page error": self.page_errors,
            "network request": self.requests,
            "dialog": self.dialogs,
            "broken image": self.broken_images,
            "injected element": self.injected,
        }
        return [f"{self.path.name}: {kind}: {item}" for kind, items in named.items() for item in items]


def audit_page(browser: Any, path: Path) -> PageAudit:
    """Open ``path`` as a ``file://`` URL with every non-file request aborted and record what happened."""
    audit = PageAudit(path)
    context = browser.new_context()

    def route(r: Any) -> None:
        if r.request.url.startswith(LOCAL_SCHEMES):
            r.continue_()
        else:
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: audit.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: audit.page_errors.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith(LOCAL_SCHEMES) else audit.requests.append(r.url))

    def dialog(d: Any) -> None:
        audit.dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    page.on("dialog", dialog)
    try:
        page.goto(path.resolve().as_uri(), wait_until="load")
        images = page.evaluate(_IMAGES_JS)
        audit.images = len(images)
        audit.broken_images = [i["src"] for i in images if not i["ok"]]
        audit.tables = page.locator("table:visible").count()
        audit.injected = page.evaluate(_INJECTED_JS)
        audit.text = page.inner_text("body")
    finally:
        context.close()
    return audit


def report_pages(folder: Path) -> list[Path]:
    """Every page of a rendered quarter (``reports/<quarter>/``) plus the report index above it."""
    pages = sorted(folder.glob("*.html"))
    top = folder.parent / "index.html"
    return [*pages, top] if top.exists() else pages


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (no ``playwright install`` needed)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def audit_report(folder: Path) -> list[str]:
    """Problems found on every page of a rendered quarter; empty when the report is clean."""
    with chromium() as browser:
        return [problem for page in report_pages(folder) for problem in audit_page(browser, page).problems]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def audits(browser: Any, tiny_report: TinyReport) -> dict[str, PageAudit]:
    """Every page of the tiny report, opened once; keyed by file name (``../index.html`` as ``top``)."""
    pages = report_pages(tiny_report.folder)
    return {("top" if p.parent == tiny_report.out else p.name): audit_page(browser, p) for p in pages}


@pytest.mark.slow
def test_every_page_is_clean_offline(audits: dict[str, PageAudit]) -> None:
    assert set(audits) == {"00-summary.html", "01-widgets.html", "brief.html", "index.html", "report.html", "top"}
    assert [problem for audit in audits.values() for problem in audit.problems] == []


@pytest.mark.slow
def test_charts_and_tables_render(audits: dict[str, PageAudit]) -> None:
    summary, quarter = audits["00-summary.html"], audits["index.html"]
    assert summary.images >= 1 and summary.tables >= 1  # the chart (data URI) and the DataFrame
    assert quarter.tables == 2  # channels and campaigns
    assert "Revenue" in quarter.text and "$1.2M" in quarter.text and "On track" in quarter.text
    assert "Off track" in audits["top"].text


@pytest.mark.slow
def test_markup_in_names_renders_as_text(audits: dict[str, PageAudit]) -> None:
    quarter, summary = audits["index.html"], audits["00-summary.html"]
    assert HOSTILE_CHANNEL in quarter.text and HOSTILE_CAMPAIGN in quarter.text
    assert HOSTILE_CHANNEL in summary.text  # pandas escapes it in the notebook's table
    assert quarter.dialogs == summary.dialogs == [] and quarter.injected == summary.injected == []


@pytest.mark.slow
def test_widget_cells_are_absent(audits: dict[str, PageAudit]) -> None:
    widgets = audits["01-widgets.html"].text
    assert "target=0.75" in widgets
    assert "WIDGET-CELL-OUTPUT" not in widgets and "IntSlider" not in widgets


@pytest.mark.slow
def test_print_layout_hides_navigation(browser: Any, tiny_report: TinyReport) -> None:
    page = browser.new_page()
    try:
        page.goto((tiny_report.folder / "00-summary.html").as_uri())
        assert page.locator(".kpi-header nav").is_visible()
        page.emulate_media(media="print")
        assert not page.locator(".kpi-header nav").is_visible()
    finally:
        page.close()


@pytest.mark.slow
def test_links_between_notebooks_open_the_pages(browser: Any, tiny_report: TinyReport) -> None:
    """The notebooks link to `01-widgets.ipynb` (so the link works in JupyterLab) and to the page:
    on the rendered report both open the page."""
    page = browser.new_page()
    try:
        summary = (tiny_report.folder / "00-summary.html").as_uri()
        page.goto(summary)
        count = page.locator(".jp-RenderedMarkdown a:not(.anchor-link)").count()
        assert count == 2
        for i in range(count):
            page.goto(summary)
            page.locator(".jp-RenderedMarkdown a:not(.anchor-link)").nth(i).click()
            page.wait_for_load_state()
            assert page.url.split("#")[0].endswith("/01-widgets.html")
            assert "target=0.75" in page.inner_text("body")
    finally:
        page.close()


_EXISTING = os.environ.get("KPI_REPORT_DIR")


@pytest.mark.skipif(not _EXISTING, reason="set KPI_REPORT_DIR=reports/<quarter> to audit a rendered report")
@pytest.mark.parametrize("page", report_pages(Path(_EXISTING)) if _EXISTING else [], ids=lambda p: p.name)
def test_existing_report_page(browser: Any, page: Path) -> None:
    audit = audit_page(browser, page)
    assert audit.problems == []
    if page.name != "index.html":
        html = page.read_text(encoding="utf-8")
        assert audit.images >= html.count("<img"), "every chart in the page loads"
        assert audit.tables >= (1 if "<table" in html else 0)


if __name__ == "__main__":
    found = audit_report(Path(sys.argv[1]))
    print("\n".join(found) or "no problems")
    sys.exit(1 if found else 0)
