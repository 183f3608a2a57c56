"""Tests of the notebooks' offline pages (kpi_helpers.htmlexport): links between notebooks, what is left out."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from kpi_helpers.executed import WIDGET_MIME
from kpi_helpers.htmlexport import HtmlConverter, make_html_exporter, rewrite_notebook_links
from kpi_helpers.planning import Job


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ('<a href="01-goal-setting.ipynb">', '<a href="01-goal-setting.html">'),
        ('<a href="02-traffic-and-lead-value.ipynb">', '<a href="02-traffic-and-lead-value.html">'),
        (
            '<a href="02-traffic-and-lead-value.ipynb#value-per-visit">',
            '<a href="02-traffic-and-lead-value.html#value-per-visit">',
        ),
        ('<a href="./02-web.ipynb#traffic">', '<a href="02-web.html#traffic">'),
        ("<a href='03-funnel.ipynb'>", "<a href='03-funnel.html'>"),
        ('<a HREF = "04-roi.ipynb?x=1">', '<a HREF = "04-roi.html?x=1">'),
        ('<a href="01-goal-setting.html">', '<a href="01-goal-setting.html">'),
        ('<a href="https://example.com/01-a.ipynb">', '<a href="https://example.com/01-a.ipynb">'),
        ('<a href="../01-a.ipynb">', '<a href="../01-a.ipynb">'),
        ('<a href="notes.ipynb">', '<a href="notes.ipynb">'),
        ('<a href="01-a.ipynb.bak">', '<a href="01-a.ipynb.bak">'),
        ('<img src="01-a.ipynb">', '<img src="01-a.ipynb">'),
        ("<p>see 01-a.ipynb</p>", "<p>see 01-a.ipynb</p>"),
    ],
    ids=[
        "notebook",
        "the-kits-notebook",
        "the-kits-notebook-anchor",
        "dot-slash-anchor",
        "single-quotes",
        "spaces-query",
        "page-already",
        "other-site",
        "other-folder",
        "not-numbered",
        "other-suffix",
        "not-a-link",
        "text",
    ],
)
def test_links_to_sibling_notebooks_point_at_their_pages(html: str, expected: str) -> None:
    assert rewrite_notebook_links(html) == expected


def test_a_page_links_to_the_other_pages_and_leaves_out_what_readers_do_not_need(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "# Summary\n\n[Goals](01-goals.ipynb) · [Web](./02-web.html) · [Docs](https://x.org)"
        ),
        nbformat.v4.new_code_cell("hidden_code", metadata={"tags": ["record"]}),
        nbformat.v4.new_code_cell("shown_code"),
    ]
    nb.cells[1].outputs = [nbformat.v4.new_output("display_data", data={"application/json": {"RECORDED": 1}})]
    nb.cells[2].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="SHOWN-OUTPUT\n"),
        nbformat.v4.new_output("stream", name="stderr", text="WARNING-NOISE\n"),
        nbformat.v4.new_output("display_data", data={WIDGET_MIME: {"model_id": "m"}, "text/plain": "WIDGET"}),
        nbformat.v4.new_output("display_data", data={"text/markdown": "Back to [the summary](00-summary.ipynb)"}),
    ]
    job = Job(tmp_path / "00-summary.ipynb", "00-summary", "Summary", {})
    html = HtmlConverter("2026Q3", [job])(nb, job)
    assert 'href="01-goals.html"' in html and 'href="./02-web.html"' in html and 'href="https://x.org"' in html
    assert 'href="00-summary.html"' in html  # in a Markdown output too
    assert ".ipynb" not in html
    assert "SHOWN-OUTPUT" in html and "shown_code" not in html
    for gone in ("RECORDED", "hidden_code", "WARNING-NOISE", "WIDGET"):
        assert gone not in html
    assert "<script src" not in html.lower()


def test_the_exporter_is_the_kits() -> None:
    exporter = make_html_exporter()
    assert exporter.exclude_input and exporter.embed_images and exporter.template_name == "kpi_report"
