"""report.pdf (kpi_helpers.pdf): the brief as page one, every page after it, nothing cut, read back by pdftotext.

pdftotext and pdfimages come with Debian's poppler-utils (installed by `.ci/run`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SampleReport, TinyReport

from kpi_helpers import outdir, pdf
from kpi_helpers.exceptions import ReportInputError

POPPLER = shutil.which("pdftotext") and shutil.which("pdfimages")
needs_poppler = pytest.mark.skipif(not POPPLER, reason="needs pdftotext (apt-get install poppler-utils)")


def test_without_chromium_a_pdf_run_is_refused_before_anything_runs(tmp_path, monkeypatch) -> None:
    from kpi_helpers.runner import render_report

    monkeypatch.delenv("KPI_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ReportInputError, match=r"`--pdf` needs Chromium.*apt-get install chromium") as info:
        render_report(data=tmp_path, quarter="2026Q3", out=tmp_path / "out", notebooks=[], pdf=True, progress=None)
    assert info.value.exit_code == 2 and not (tmp_path / "out").exists()


def test_kpi_chromium_must_name_a_program(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KPI_CHROMIUM", str(tmp_path / "nothing"))
    with pytest.raises(ReportInputError, match="`KPI_CHROMIUM` names .* not an executable file"):
        pdf.find_chromium()


def test_source_date_epoch_dates_the_pdf_without_moving_a_byte() -> None:
    stamped = b"<< /Producer (Skia/PDF m156)\n/CreationDate (D:20261202013935+00'00')\n/ModDate (D:20261202013935Z)>>"
    dated = pdf._dated(stamped, 1700000000)
    assert dated == stamped.replace(b"20261202013935", b"20231114221320")
    assert len(dated) == len(stamped) and pdf._dated(stamped, None) == stamped


# --------------------------------------------------------------------------------------------------
# Printed


def _text(path: Path, *args: str) -> list[str]:
    """The PDF's text page by page (pdftotext's form feeds)."""
    out = subprocess.run(["pdftotext", *args, str(path), "-"], capture_output=True, text=True, check=True).stdout
    return out.split("\f")[:-1]


@pytest.mark.slow
@pytest.mark.browser
def test_the_same_report_prints_to_the_same_bytes(tiny_report: TinyReport, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    first = pdf.print_pdf(tiny_report.folder / "report.html", tmp_path / "a.pdf").read_bytes()
    second = pdf.print_pdf(tiny_report.folder / "report.html", tmp_path / "b.pdf").read_bytes()
    assert first == second and first.startswith(b"%PDF-")
    assert b"(D:20231114221320" in first and str(tiny_report.folder).encode() not in first
    assert not list(tmp_path.glob(".*.printing"))


@needs_poppler
def test_letter_paper_prints_letter_pages(tiny_report: TinyReport, tmp_path) -> None:
    """`kpi report --pdf --paper Letter`: the one file asks for Letter, and Chromium prints it so
    (8.5 x 11 in, 612 x 792 points; A4 is 595 x 842)."""
    page = tmp_path / "report.html"
    text = (tiny_report.folder / "report.html").read_text(encoding="utf-8")
    page.write_text(re.sub(r"size:\s*A4;", "size: Letter;", text, count=1), encoding="utf-8")
    for html, size in ((tiny_report.folder / "report.html", r"594\.96 x 841\.92"), (page, "612 x 792")):
        printed = pdf.print_pdf(html, tmp_path / f"{html.parent.name}.pdf")
        info = subprocess.run(["pdfinfo", str(printed)], capture_output=True, text=True, check=True).stdout
        assert re.search(rf"Page size:\s+{size}", info), (html, info)


def _table_rows(report: Path) -> list[tuple[str, str]]:
    """Each table of the one file as (its first row, its last row), whitespace dropped, in document order."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(report.read_text(encoding="utf-8"), "html.parser")
    tables = []
    for table in soup.find_all("table"):
        rows = [re.sub(r"\s+", "", row.get_text()) for row in table.find_all("tr")]
        rows = [r for r in rows if r]
        if len(rows) >= 2:
            tables.append((rows[0], rows[-1]))
    return tables


@pytest.mark.slow
@pytest.mark.browser
@needs_poppler
def test_the_sample_pdf(sample_report: SampleReport) -> None:
    folder = sample_report.folder
    path = folder / "report.pdf"
    assert "report.pdf" in outdir.read_manifest(folder) and path.stat().st_size < 5 * 2**20
    pages = _text(path, "-layout")
    n = len(pages)
    assert 10 < n < 80

    # page one is the brief, alone; the summary starts on page two
    assert "2026Q3 in brief" in pages[0] and "Largest movements on 2026Q2" in pages[0]
    assert "Quarterly report 2026Q3" not in pages[0] and "Quarterly report 2026Q3" in pages[1]

    # every page's footer: the quarter, the data's fingerprint, its number
    import json

    fingerprint = json.loads((folder / "metrics.json").read_text())["data_fingerprint"].removeprefix("sha256:")[:12]
    for i, page in enumerate(pages, start=1):
        assert f"Marketing KPI kit · 2026Q3 · data sha256 {fingerprint}" in page, i
        assert f"Page {i} of {n}" in page, i

    # the headline KPIs as the index shows them
    from bs4 import BeautifulSoup

    index = BeautifulSoup((folder / "index.html").read_text(encoding="utf-8"), "html.parser")
    tiles = [(t.select_one(".label").get_text(), t.select_one(".value").get_text()) for t in index.select(".tile")]
    assert len(tiles) > 20
    in_order = _text(path, "-raw")  # the text in the order it was drawn: a tile's label, then its value
    flat = re.sub(r"\s+", " ", " ".join(in_order))
    for label, value in tiles:
        assert f"{label} {value}" in flat, (label, value)
    assert "Revenue $3.07M" in flat

    # no table cut across pages or cut off at the edge: each table's first and last rows on one page
    raw = [re.sub(r"\s+", "", p) for p in in_order]
    cursor = 0
    for first, last in _table_rows(folder / "report.html"):
        page = next((i for i in range(cursor, n) if first in raw[i]), None)
        assert page is not None, f"table not printed whole: {first[:60]}"
        assert last in raw[page], f"table split after page {page + 1}: {first[:60]}"
        cursor = page

    # each chart on one page, drawn once
    listing = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True).stdout
    drawn = [line.split() for line in listing.splitlines()[2:]]
    objects = [row[10] for row in drawn]  # the image's object number
    assert len(drawn) == (folder / "report.html").read_text(encoding="utf-8").count("<img")
    assert len(objects) == len(set(objects))
