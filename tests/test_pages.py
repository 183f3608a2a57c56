"""Tests of the report's index pages (kpi_helpers.pages): tiles formatted by the registry's units
and judged by the one status rule, tables, the quarter's page, the report index, escaping."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import nbformat
import pytest
from conftest import HOSTILE_CAMPAIGN, HOSTILE_CHANNEL, kit_quarter, tiny_metrics

from kpi_helpers import fileio, outdir, pages, status
from kpi_helpers.exceptions import ReportInputError
from kpi_helpers.pages import headline_tiles, target_tiles, write_reports_index
from kpi_helpers.planning import Job

# --------------------------------------------------------------------------------------------------
# Tiles


@pytest.mark.parametrize(
    ("kpi", "css", "attainment"),
    [
        ({"value": 110, "target": 100}, "good", "110% of target"),
        ({"value": 95, "target": 100}, "warn", "95% of target"),
        ({"value": 50, "target": 100}, "bad", "50% of target"),
        ({"value": 40, "target": 50, "better": "lower"}, "good", "125% of target"),
        ({"value": 54, "target": 50, "better": "lower"}, "warn", "93% of target"),
        ({"value": 60, "target": 50, "better": "lower"}, "bad", "83% of target"),
        ({"value": 60, "target": 50, "status": "at risk"}, "warn", "120% of target"),
        ({"value": 60, "target": 50, "status": "amber"}, "none", "120% of target"),
        ({"value": 10}, "none", ""),
        ({"value": math.nan, "target": 3}, "none", ""),
        # the kit's rows: status judged on the way from the baseline, which the tile then names
        (
            {
                "actual": 966_450,
                "target": 1_045_130,
                "baseline": 822_063,
                "progress": 0.647,
                "status": "off track",
            },
            "bad",
            "92% of target; 65% of the way from 822k",
        ),
    ],
    ids=[
        "above",
        "within-10pct",
        "below",
        "lower-better-good",
        "lower-better-within",
        "lower-better-bad",
        "the-rows-own",
        "unknown-word-is-not-guessed",
        "no-target",
        "nan",
        "baseline",
    ],
)
def test_target_tile_status(kpi: dict, css: str, attainment: str) -> None:
    (tile,) = target_tiles({"kpis": [{"name": "leads", **kpi}]})
    assert (tile.status, tile.attainment) == (css, attainment)
    assert tile.status_text == status.LABELS[tile.state] and status.CSS[tile.state] == css


@pytest.mark.parametrize("state", status.STATUSES)
def test_a_rows_status_is_worded_and_coloured_by_the_status_module(state: str) -> None:
    (tile,) = target_tiles({"kpis": [{"name": "Leads", "metric": "leads", "actual": 9, "target": 10, "status": state}]})
    assert (tile.state, tile.status, tile.status_text) == (state, status.CSS[state], status.LABELS[state])


def test_a_value_without_a_target_is_not_judged_and_says_why() -> None:
    (tile,) = target_tiles({"kpis": [{"name": "leads", "value": 10}]})
    assert (tile.value, tile.status_text, tile.note) == ("10", "No data", "no target to judge it against")


def test_target_tiles_accept_a_mapping() -> None:
    tiles = target_tiles({"kpis": {"leads": 1200, "conversion_rate": {"value": 0.031, "target": 0.03}}})
    assert [(t.label, t.value, t.status) for t in tiles] == [
        ("Leads", "1,200", "none"),
        ("Conversion rate", "3.1%", "good"),
    ]


def test_a_session_duration_is_a_duration_not_a_percent() -> None:
    """87 s of average session duration once printed as 8700.0% ("duration" holds "ratio")."""
    row = {"name": "Average session duration", "metric": "avg_session_duration_s", "actual": 87, "target": 90}
    (tile,) = target_tiles({"kpis": [{**row, "status": "at risk"}]})
    assert (tile.value, tile.target, tile.status_text) == ("1 min 27 s", "1 min 30 s", "At risk")
    (tile,) = target_tiles({"kpis": [{"name": "avg_session_duration_s", "value": 87, "format": "percent"}]})
    assert (tile.label, tile.value) == ("Average session duration", "1 min 27 s")  # the registry wins


@pytest.mark.parametrize(
    ("row", "value"),
    [
        ({"metric": "cost_per_lead", "unit": "money", "actual": 52.4}, "$52"),
        ({"metric": "visit_to_lead_rate", "actual": 0.0123}, "1.2%"),
        ({"metric": "value_per_visit", "actual": 28.776}, "$28.78"),
        ({"metric": "clv_to_cac", "actual": 3.2}, "3.20"),
        ({"metric": "revenue", "actual": 1_234_567}, "$1.23M"),
        ({"metric": "visits", "actual": 123_456}, "123k"),
        ({"name": "cac_low", "value": 1500}, "$1.5k"),
        ({"name": "pipeline", "value": 12_345.0, "format": "currency"}, "$12.3k"),
        ({"name": "pipeline_velocity", "value": 0.0312}, "0.0312"),
        ({"name": "pipeline_rate", "value": 1_234_567}, "1,234,567"),
        ({"name": "Deals", "metric": None, "actual": 12.5}, "12.5"),
    ],
    ids=[
        "the-rows-unit",
        "registry-percent",
        "registry-money-small",
        "registry-ratio",
        "registry-money-compact",
        "registry-count-compact",
        "interval-bound",
        "older-kits-format",
        "unknown-plain",
        "unknown-never-guessed",
        "no-key-plain",
    ],
)
def test_a_tiles_unit_is_the_rows_else_the_registrys_else_none(row: dict, value: str) -> None:
    (tile,) = target_tiles({"currency": "USD", "kpis": [row]})
    assert tile.value == value


def test_a_tile_without_data_says_no_data_and_why() -> None:
    (tile,) = target_tiles(
        {
            "currency": "USD",
            "kpis": [
                {"name": "Cost per lead", "metric": "cost_per_lead", "actual": None, "target": 50.0,
                 "status": "no data", "note": "needs spend: add spend.csv"},
            ],
        }
    )  # fmt: skip
    assert (tile.value, tile.status, tile.status_text) == ("n/a", "none", "No data")
    assert tile.note == "needs spend: add spend.csv"


def test_tiles_and_tables_read_the_metrics_module_shape() -> None:
    metrics = {
        "currency": "EUR",
        "kpis": [
            {"name": "MQLs per quarter", "metric": "mqls", "actual": 80, "projected": 95.0, "target": 100,
             "status": "at risk", "owner": "Marketing operations"},
            {"name": "Revenue", "metric": "revenue", "actual": 2.0e5, "projected": None, "target": None,
             "status": "no data"},
        ],
        "by_channel": {HOSTILE_CHANNEL: {"leads": 12, "cost": 1500.0, "roi": 0.8}},
    }  # fmt: skip
    mqls, revenue = target_tiles(metrics)
    assert (mqls.label, mqls.value, mqls.target, mqls.status) == ("MQLs per quarter", "80", "100", "warn")
    assert (mqls.status_text, mqls.attainment) == ("At risk", "projected 95, 95% of target")
    assert (revenue.value, revenue.status, revenue.target) == ("€200k", "none", "")
    assert revenue.note == "no target to judge it against"
    (table,) = pages._tables(metrics)
    assert [h["text"] for h in table["headers"]] == ["Channel", "Leads", "Marketing cost", "ROI"]
    assert [c["text"] for c in table["rows"][0]] == [HOSTILE_CHANNEL, "12", "€1,500", "80.0%"]
    assert table["title"] == "Channels"
    (table,) = pages._tables({**metrics, "attribution_model": "position_based"})
    assert table["title"] == "Channels (attributed revenue and ROI: position-based attribution)"


def test_table_columns_take_the_registrys_units_and_labels() -> None:
    metrics = {
        "currency": "USD",
        "channels": [
            {"channel": "Email", "leads": 300, "cost_per_lead": 8.5, "roi": None, "reach": 0.25, "note": None},
            {"channel": "Paid", "leads": None, "cost_per_lead": 52.0, "roi": 1.8, "reach": 1234, "note": "new"},
        ],
        "formats": {"reach": "number"},  # an older kit's column format: no unit
    }
    (table,) = pages._tables(metrics)
    assert [h["text"] for h in table["headers"]] == ["Channel", "Leads", "Cost per lead", "ROI", "Reach", "Note"]
    assert [[c["text"] for c in row] for row in table["rows"]] == [
        ["Email", "300", "$8", "n/a", "0.25", "n/a"],
        ["Paid", "n/a", "$52", "180.0%", "1,234", "new"],
    ]
    assert [h["numeric"] for h in table["headers"]] == [False, True, True, True, True, False]


# --------------------------------------------------------------------------------------------------
# Headline tiles: the registry's headline KPIs


def _sample_metrics() -> dict:
    """The shape `metrics.QuarterKpis.metrics()` writes: the registry's KPIs by key, the previous
    quarter, reasons, and the KPI target rows."""
    return {
        "currency": "USD",
        "revenue": 1_200_000.0,
        "visits": 40_000,
        "leads": 850,
        "won_deals": 12,
        "cac": None,
        "avg_session_duration_s": 87.0,  # not a headline KPI
        "visit_to_lead_rate": 0.02125,
        "previous_quarter": {"quarter": "2026Q2", "revenue": 1_000_000.0, "leads": 1000, "won_deals": 10, "cac": 900.0},
        "undefined": {"cac": "needs spend: add spend.csv"},
        "partial": {"visits": "61 of 92 days have data"},
        "kpis": [
            {
                "name": "Revenue",
                "metric": "revenue",
                "actual": 1_200_000.0,
                "target": 1_000_000.0,
                "status": "on track",
            },
            {"name": "Leads per quarter", "metric": "leads", "actual": 850, "target": 1000, "status": "off track"},
            # judged on won deals *from leads* (9), not on every won deal (12): never on the won-deals tile
            {"name": "Won deals from leads", "metric": "won_deals", "actual": 9, "target": 10, "status": "at risk"},
        ],
    }


def test_headline_tiles_are_the_registrys_headline_kpis_in_its_order() -> None:
    from kpi_helpers.registry import KPIS, label_of

    tiles = headline_tiles(_sample_metrics())
    expected = [k for k, kpi in KPIS.items() if kpi.headline and k in _sample_metrics()]
    assert [t.label for t in tiles] == [label_of(k) for k in expected]
    assert "Average session duration" not in [t.label for t in tiles]  # not a headline KPI


HEADLINE_CASES = {
    # key: (value, target, status words, detail, note): worked by hand from _sample_metrics
    "revenue": ("$1.2M", "$1M", "On track", "120% of target; +20.0% on 2026Q2", ""),
    "leads": ("850", "1,000", "Off track", "85% of target; -15.0% on 2026Q2", ""),
    "visits": ("40k", "", "", "", "over part of the quarter: 61 of 92 days have data"),
    "won_deals": ("12", "", "", "+20.0% on 2026Q2", ""),
    "cac": ("n/a", "", "", "", "needs spend: add spend.csv"),
    "visit_to_lead_rate": ("2.1%", "", "", "", ""),
}


@pytest.mark.parametrize("key", HEADLINE_CASES, ids=HEADLINE_CASES.keys())
def test_a_headline_tile_by_hand(key: str) -> None:
    from kpi_helpers.registry import label_of

    tiles = {t.label: t for t in headline_tiles(_sample_metrics())}
    tile = tiles[label_of(key)]
    assert (tile.value, tile.target, tile.status_text, tile.attainment, tile.note) == HEADLINE_CASES[key]


def test_a_kpi_added_to_the_registry_as_headline_shows_as_a_tile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding a KPI touches the registry: the index page shows it, labelled and formatted by its unit."""
    from kpi_helpers import registry

    kpi = registry.Kpi("demo_minutes", "Demo time per lead", "seconds", headline=True)
    monkeypatch.setitem(registry.KPIS, "demo_minutes", kpi)
    tiles = headline_tiles({"revenue": 1.0, "demo_minutes": 125})
    assert [(t.label, t.value) for t in tiles] == [("Revenue", "1"), ("Demo time per lead", "2 min 05 s")]


def test_without_registry_kpis_the_headline_is_the_target_tiles() -> None:
    metrics = tiny_metrics(quarter="2026Q3")
    assert headline_tiles(metrics) == target_tiles(metrics)


def test_the_quarter_page_shows_headline_and_target_tiles(tmp_path: Path) -> None:
    pages.write_quarter_index(tmp_path, "2026Q3", _sample_metrics(), [])
    html = (tmp_path / "index.html").read_text()
    headline, targets = html.split("<h2>KPI targets</h2>")
    assert "Visit-to-lead rate" in headline and "2.1%" in headline and "Won deals from leads" not in headline
    assert "Won deals from leads" in targets and "At risk" in targets
    # the change on the previous quarter shows on a tile with a target and on one without
    assert "85% of target; -15.0% on 2026Q2" in headline and '<div class="target">+20.0% on 2026Q2</div>' in headline
    assert "8700" not in html


# --------------------------------------------------------------------------------------------------
# Pages


def test_the_tiles_colours_are_the_status_colours(tmp_path: Path) -> None:
    pages.write_quarter_index(tmp_path, "2026Q3", tiny_metrics(quarter="2026Q3"), [])
    html = (tmp_path / "index.html").read_text()
    for state, colour in status.COLOURS.items():
        assert f"--{status.CSS[state]}-line: {colour};" in html
    assert 'class="tile good"' in html and 'class="tile bad"' in html and 'class="tile warn"' in html


def test_the_report_index_reads_an_older_kits_metrics(tmp_path: Path) -> None:
    """Rows of an older kit carry no `unit` (and its own guess as `format`): the registry's unit is shown."""
    old = {"currency": "USD", "kpis": [
        {"name": "Average session duration", "metric": "avg_session_duration_s", "actual": 87, "target": 90,
         "status": "at risk", "format": "percent"},
        {"name": "Cost per lead", "metric": "cost_per_lead", "actual": 52.4, "target": 50, "status": "at risk"},
        {"name": "Pipeline velocity", "metric": "pipeline_velocity", "actual": 0.0312, "status": "no data"},
    ]}  # fmt: skip
    kit_quarter(tmp_path, "2025Q4", {"index.html": "<html></html>", "metrics.json": json.dumps(old)})
    html = write_reports_index(tmp_path).read_text()
    assert "1 min 27 s" in html and "8700" not in html
    assert "$52" in html and "0.0312" in html


def _fake_quarter(out: Path, label: str, metrics: dict) -> None:
    kit_quarter(out, label, {"index.html": "<html></html>", "metrics.json": json.dumps(metrics)})


def test_reports_index_lists_quarters_newest_first_and_escapes(tmp_path: Path) -> None:
    _fake_quarter(tmp_path, "2025Q4", {"kpis": [{"name": "leads", "value": 900, "target": 1000}]})
    _fake_quarter(tmp_path, "2026Q2", {"kpis": [{"name": "x", "label": HOSTILE_CHANNEL, "value": 1}]})
    _fake_quarter(tmp_path, "2026Q1", {})
    (tmp_path / ".tmp-2026Q3-abc").mkdir()  # an unfinished run is not listed
    (tmp_path / "2024Q1").mkdir()  # the user's own folder with a page is not a report
    (tmp_path / "2024Q1" / "index.html").write_text("<h1>mine</h1>")
    html = write_reports_index(tmp_path).read_text()
    assert re.findall(r'href="(\d{4}Q\d)/index.html"', html) == ["2026Q2", "2026Q1", "2025Q4"]
    assert HOSTILE_CHANNEL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "90% of target" in html
    manifest = json.loads((tmp_path / outdir.MANIFEST).read_text())
    assert manifest["files"] == {"index.html": [fileio.sha256_of(tmp_path / "index.html")]}
    write_reports_index(tmp_path)  # the kit's own page: rewritten


def test_reports_index_never_overwrites_the_users_page(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<h1>our team site</h1>")
    with pytest.raises(ReportInputError, match=r"`.*index.html` was not written by the kit"):
        write_reports_index(tmp_path)
    assert (tmp_path / "index.html").read_text() == "<h1>our team site</h1>"
    sub = tmp_path / "sub"
    sub.mkdir()
    write_reports_index(sub)
    (sub / "index.html").write_text("edited")
    with pytest.raises(ReportInputError, match=r"`.*index.html` was changed since the kit wrote it"):
        write_reports_index(sub)


def test_quarter_index_escapes_names_from_the_data(tmp_path: Path) -> None:
    job = Job(tmp_path / "00-a.ipynb", "00-a", "A <b>page</b>", {})
    pages.write_quarter_index(tmp_path, "2026Q3", tiny_metrics(quarter="2026Q3"), [job])
    html = (tmp_path / "index.html").read_text()
    assert HOSTILE_CHANNEL not in html and HOSTILE_CAMPAIGN not in html and "<b>page" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in html
    assert "<script" not in html.lower()


def test_quarter_index_shows_the_first_notebooks_conclusion_escaped(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("display(Markdown(story))", metadata={"tags": ["conclusion"]})
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={
                "text/markdown": "**Revenue was up** for <script>alert(1)</script> [x](javascript:alert(1)) "
                "(see [the funnel](01-goal-setting.ipynb))"
            },
        )
    ]
    nb.cells.append(cell)
    nbformat.write(nb, tmp_path / "00-summary.ipynb")
    html = pages.conclusion_html(tmp_path, [Job(tmp_path / "00-summary.ipynb", "00-summary", "Summary", {})])
    assert "<strong>Revenue was up</strong>" in html
    assert "<script" not in html and "&lt;script&gt;" in html and "javascript:" not in html
    assert '<a href="01-goal-setting.html">the funnel</a>' in html  # the page, not the notebook
    assert pages.conclusion_html(tmp_path, []) == ""


# --------------------------------------------------------------------------------------------------
# How sure the numbers are: real movements marked, ranges in the tables


def _with_changes(metrics: dict, real: dict[str, bool | None]) -> dict:
    """``metrics`` with a ``changes`` block judging each key's change on the previous quarter."""
    prev = metrics["previous_quarter"]
    block = {
        key: {
            "quarter_on_quarter": {
                "real": r,
                "reference": "2026Q2",
                "value": metrics[key],
                "reference_value": prev[key],
            }
        }
        for key, r in real.items()
    }
    return {**metrics, "changes": {"alpha": 0.1, "kpis": block}}


def test_tiles_mark_only_the_real_movements(tmp_path: Path) -> None:
    metrics = _with_changes(_sample_metrics(), {"revenue": True, "leads": False, "won_deals": None})
    tiles = {t.label: t for t in headline_tiles(metrics)}
    assert tiles["Revenue"].movement == "▲ +20.0% on 2026Q2, beyond normal variation"
    assert tiles["Leads"].movement == "" and tiles["Won deals"].movement == ""  # noise, and not judged
    pages.write_quarter_index(tmp_path, "2026Q3", metrics, [])
    html = (tmp_path / "index.html").read_text()
    assert html.count('<div class="movement">') == 1 and "▲ +20.0% on 2026Q2, beyond normal variation" in html


def test_an_older_kits_metrics_mark_no_movement() -> None:
    assert all(t.movement == "" for t in headline_tiles(_sample_metrics()))


def test_the_channel_table_shows_each_number_with_its_range(tmp_path: Path) -> None:
    metrics = {
        "currency": "USD",
        "by_channel": {
            "Email": {"leads": 59, "cost": 17_085.6, "roi": 5.32, "roi_low": 2.12, "roi_high": 9.11},
            "Direct": {"leads": 108, "cost": 0.0, "roi": None, "roi_low": None, "roi_high": None},
        },
    }
    pages.write_quarter_index(tmp_path, "2026Q3", metrics, [])
    html = (tmp_path / "index.html").read_text()
    assert "532.0% (212.0%-911.0%)" in html
    assert "ROI (low)" not in html and "ROI (high)" not in html
