"""report.html: the whole quarter in one self-contained file (kpi_helpers.onefile)."""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import HOSTILE_CAMPAIGN, HOSTILE_CHANNEL, SAMPLE_CHANNEL, SampleReport, TinyReport

from kpi_helpers import outdir
from kpi_helpers.onefile import build_report, compress_png, css_string, scope_css
from kpi_helpers.planning import Job

# --------------------------------------------------------------------------------------------------
# Charts compressed


def _png(image: Any, **kw: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", **kw)
    return out.getvalue()


def _chart(colours: int, mode: str = "RGB") -> Any:
    """A chart-like image: a white ground and ``colours - 1`` bars of distinct colours."""
    from PIL import Image, ImageDraw

    image = Image.new(mode, (600, 300), "white")
    draw = ImageDraw.Draw(image)
    for i in range(colours - 1):
        draw.rectangle((i * 600 // colours, 50, i * 600 // colours + 3, 250), fill=(i % 256, (i * 7) % 256, 200))
    return image


def test_a_chart_of_few_colours_keeps_every_pixel_in_fewer_bytes() -> None:
    from PIL import Image, ImageChops

    image = _chart(120)
    original = _png(image, compress_level=1)
    packed = compress_png(original)
    assert len(packed) < len(original) / 2
    with Image.open(io.BytesIO(packed)) as back:
        assert back.mode == "P" and ImageChops.difference(back.convert("RGB"), image).getbbox() is None
    assert compress_png(original) == packed  # deterministic


def test_images_that_would_lose_something_stay_as_they_are() -> None:
    from PIL import Image

    transparent = Image.new("RGBA", (40, 40), (255, 0, 0, 0))
    for data in (_png(transparent), b"not a png", _png(_chart(4).quantize(4))):
        assert compress_png(data) == data


# --------------------------------------------------------------------------------------------------
# CSS


def test_the_summary_styles_reach_only_its_section() -> None:
    css = """:root { --ink: #123; }
    body { font: 15px sans-serif } main { max-width: 1040px } * { box-sizing: border-box }
    table, th, td { border: 1px solid } .tile .label { color: red }
    @media print { @page { margin: 15mm } nav, .pages .nb { display: none } }
    @page { margin: 1in }"""
    scoped = scope_css(css, ".kpi-index")
    assert ":root { --ink: #123; }" in scoped  # custom properties stay global
    assert ".kpi-index { font: 15px sans-serif }" in scoped and ".kpi-index { max-width: 1040px }" in scoped
    assert ".kpi-index, .kpi-index * { box-sizing: border-box }" in scoped
    assert ".kpi-index table, .kpi-index th, .kpi-index td { border: 1px solid }" in scoped
    assert ".kpi-index .tile .label { color: red }" in scoped
    assert "@media print {\n.kpi-index nav, .kpi-index .pages .nb { display: none }\n}" in scoped
    assert "@page" not in scoped


@pytest.mark.parametrize("text", ['a"b', "a\\b", "</style><script>alert(1)</script>", "line\nbreak"])
def test_footer_text_cannot_leave_its_css_string(text: str) -> None:
    literal = css_string(text)
    assert literal.startswith('"') and literal.endswith('"')
    assert '"' not in literal[1:-1] and "<" not in literal and "\n" not in literal and "\\\\" not in literal


# --------------------------------------------------------------------------------------------------
# Pages as sections (pages written by hand in the shape nbconvert and pages.py give them)

_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title>
<style type="text/css">.jp-Cell {{ margin: 0 }}</style></head>
<body class="jp-Notebook" data-jp-theme-light="true"><main>
<header class="kpi-header"><nav><a href="index.html">summary</a><a href="../index.html">All quarters</a></nav></header>
{body}
<footer class="kpi-footer">Marketing KPI kit · 2026Q3</footer></main></body></html>"""

_INDEX = """<!DOCTYPE html><html><head><style>body {{ margin: 0 }} table {{ width: 100% }}</style></head>
<body><main><header><div class="kit">Marketing KPI kit</div><h1>Quarterly report 2026Q3</h1>
<nav><a href="../index.html">&larr; All quarters</a></nav></header>
<h2>Channels</h2><table><tr><td>{channel}</td></tr></table>
<ol class="pages"><li><a href="00-a.html">Page A</a> <a class="nb" href="00-a.ipynb">notebook</a></li>
<li><a href="01-b.html">Page B</a> <a class="nb" href="01-b.ipynb">notebook</a></li></ol>
<footer>Marketing KPI kit · generated 2026-11-05 06:00 UTC</footer></main></body></html>"""


@pytest.fixture
def pages(tmp_path: Path) -> tuple[Path, list[Job]]:
    chart = "data:image/png;base64," + base64.b64encode(_png(_chart(60), compress_level=1)).decode()
    a = f"""<h1 id="Top">Top<a class="anchor-link" href="#Top">¶</a></h1>
    <p><a href="01-b.html#Funnel">the funnel</a> · <a href="./01-b.html">page B</a> · <a href="#Top">up</a>
    · <a href="https://example.com/x">the web</a> · <a href="mailto:a@example.com">mail</a></p>
    <style type="text/css">#T_ab td {{ padding: 3px }}</style>
    <table id="T_ab"><tr><td>{html.escape(HOSTILE_CHANNEL)}</td></tr></table>
    <img src="{chart}" alt="chart">"""
    b = """<h1 id="Top">Top of B</h1><h2 id="Funnel">Funnel</h2>
    <p><a href="index.html">the summary</a> · <a href="02-missing.html">a page not rendered</a>
    · <a href="notes.txt">notes</a> · <a href="00-a.ipynb">the notebook</a></p>"""
    (tmp_path / "00-a.html").write_text(_PAGE.format(title="A", body=a))
    (tmp_path / "01-b.html").write_text(_PAGE.format(title="B", body=b))
    (tmp_path / "index.html").write_text(_INDEX.format(channel="&lt;b&gt;Paid&lt;/b&gt;"))
    plan = [Job(tmp_path / "00-a.ipynb", "00-a", "Page A", {}), Job(tmp_path / "01-b.ipynb", "01-b", "Page B", {})]
    return tmp_path, plan


def _soup(html: str) -> Any:
    from bs4 import BeautifulSoup

    return BeautifulSoup(html, "html.parser")


def test_links_between_pages_become_anchors_that_exist(pages: tuple[Path, list[Job]]) -> None:
    folder, plan = pages
    soup = _soup(build_report(folder, "2026Q3", plan, "<p>the brief</p>", {"data_fingerprint": "sha256:" + "ab" * 32}))
    ids = [tag["id"] for tag in soup.find_all(id=True)]
    assert len(ids) == len(set(ids)), "ids are unique across the pages"
    assert {"contents", "brief", "summary", "00-a", "01-b", "00-a--Top", "01-b--Top", "01-b--Funnel"} <= set(ids)
    assert "T_ab" in ids  # selected by the page's own styles: kept
    links = {a.get_text(): a["href"] for a in soup.find_all("a")}
    assert links["the funnel"] == "#01-b--Funnel" and links["page B"] == "#01-b" and links["up"] == "#00-a--Top"
    assert links["the summary"] == "#summary" and links["Page A"] == "#00-a" and links["¶"] == "#00-a--Top"
    assert links["the web"] == "https://example.com/x" and links["mail"] == "mailto:a@example.com"
    for gone in ("a page not rendered", "notes", "the notebook"):
        assert gone not in links and gone in soup.get_text()  # the link goes, the words stay
    assert "notebook" not in links and "All quarters" not in soup.get_text()
    for href in (a["href"] for a in soup.find_all("a") if a["href"].startswith("#")):
        assert soup.find(id=href[1:]) is not None, href


@pytest.mark.parametrize("paper", ["A4", "Letter"])
def test_the_one_file_prints_on_the_paper_asked_for(pages: tuple[Path, list[Job]], paper: str) -> None:
    folder, plan = pages
    page_rules = re.findall(r"@page\s*{[^}]*", build_report(folder, "2026Q3", plan, "<p>b</p>", {}, paper=paper))
    assert [re.search(r"size:\s*([^;]+);", rule).group(1) for rule in page_rules if "size:" in rule] == [paper]


def test_an_unknown_paper_size_is_refused(pages: tuple[Path, list[Job]]) -> None:
    folder, plan = pages
    with pytest.raises(ValueError, match="paper must be one of"):
        build_report(folder, "2026Q3", plan, "<p>b</p>", {}, paper="A4; } body { display: none")


def test_styles_once_no_script_names_as_text(pages: tuple[Path, list[Job]]) -> None:
    folder, plan = pages
    report = build_report(folder, "2026Q3", plan, "<p>the brief</p>", {"data_fingerprint": "sha256:" + "ab" * 32})
    assert report.count(".jp-Cell { margin: 0 }") == 1
    assert ".kpi-index table { width: 100% }" in report and "\ntable { width: 100% }" not in report
    assert "<script" not in report.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report and "&lt;b&gt;Paid&lt;/b&gt;" in report
    assert '"Marketing KPI kit · 2026Q3 · data sha256 abababababab"' in report  # the printed footer
    assert 'class="jp-Notebook"' in report.split("<body", 1)[1].split(">", 1)[0]
    assert "generated 2026-11-05 06:00 UTC" in report  # the index's own time, no new one
    chart = re.search(r'src="data:image/png;base64,([^"]+)"', report).group(1)
    original = re.search(r'src="data:image/png;base64,([^"]+)"', (folder / "00-a.html").read_text()).group(1)
    assert len(chart) < len(original)


# --------------------------------------------------------------------------------------------------
# In Chromium, with the network cut


@pytest.mark.slow
@pytest.mark.browser
def test_the_one_file_opens_offline_with_every_section_reachable(tiny_report: TinyReport) -> None:
    from test_browser import CHROMIUM, audit_page, chromium

    if not CHROMIUM.exists():
        pytest.skip("needs Chromium at /usr/bin/chromium")
    path = tiny_report.folder / "report.html"
    assert "report.html" in outdir.read_manifest(tiny_report.folder)
    with chromium() as browser:
        audit = audit_page(browser, path)
        assert audit.problems == []
        assert HOSTILE_CHANNEL in audit.text and HOSTILE_CAMPAIGN in audit.text
        assert audit.images >= 1 and audit.tables >= 3
        _every_anchor_reachable(browser, path, {"brief", "summary", "00-summary", "01-widgets"})


def _every_anchor_reachable(browser: Any, path: Path, sections: set[str]) -> None:
    """Every ``#anchor`` link has its target, and opening each section's anchor scrolls it into view."""
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    try:
        page.goto(path.as_uri())
        missing = page.evaluate(
            """() => Array.from(document.querySelectorAll('a[href^="#"]'))
                 .map(a => decodeURIComponent(a.getAttribute('href').slice(1)))
                 .filter(id => !document.getElementById(id))"""
        )
        assert missing == []
        toc = page.evaluate("() => Array.from(document.querySelectorAll('nav.kpi-toc a')).map(a => a.hash.slice(1))")
        assert sections <= set(toc)
        for anchor in toc:
            page.goto(f"{path.as_uri()}#{anchor}")
            shown = page.evaluate(
                """id => { const r = document.getElementById(id).getBoundingClientRect();
                           const end = window.scrollY + window.innerHeight >= document.body.scrollHeight - 2;
                           return r.height > 0 && (Math.abs(r.top) < 2 || end); }""",
                anchor,
            )
            assert shown, anchor
    finally:
        page.close()


@pytest.mark.slow
@pytest.mark.browser
def test_the_sample_in_one_file_under_3_mb(sample_report: SampleReport) -> None:
    from test_browser import CHROMIUM, audit_page, chromium

    path = sample_report.folder / "report.html"
    size = path.stat().st_size
    pages = sum((sample_report.folder / f"{nb}.html").stat().st_size for nb in _notebooks(sample_report.folder))
    assert size < 3 * 2**20
    assert size < pages / 2  # styles once, charts compressed: less than half the five pages
    if not CHROMIUM.exists():
        pytest.skip("needs Chromium at /usr/bin/chromium")
    with chromium() as browser:
        audit = audit_page(browser, path)
        assert audit.problems == []
        assert SAMPLE_CHANNEL in audit.text and HOSTILE_CAMPAIGN in audit.text
        assert audit.images == path.read_text(encoding="utf-8").count("<img") >= 15
        _every_anchor_reachable(browser, path, {"brief", "summary", *_notebooks(sample_report.folder)})


def _notebooks(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("0*.ipynb"))
