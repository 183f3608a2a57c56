"""The one-page brief (kpi_helpers.brief): what it says, and that it prints on one A4 or Letter page."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import SampleReport

from kpi_helpers import brief
from kpi_helpers.charts import drawn_statuses, plot_revenue_outlook

# A finished quarter, by hand: revenue 900 against a target of 1,000 (90%: at risk), the year to
# date 2,500 of 5,000.
DONE = {
    "quarter": "2026Q3",
    "currency": "USD",
    "in_progress": False,
    "revenue": 900.0,
    "revenue_target": 1000.0,
    "fiscal_year": "FY2026",
    "revenue_fiscal_year_to_date": 2500.0,
    "revenue_target_fiscal_year": 5000.0,
    "leads": 120,
    "visits": 3000,
    "bounce_rate": 0.40,
    "marketing_cost": 500.0,
    "previous_quarter": {"quarter": "2026Q2", "leads": 100, "visits": 3100, "bounce_rate": 0.50, "revenue": 900.0,
                         "marketing_cost": 400.0},
}  # fmt: skip
# The same quarter in progress: 40 of 92 days, revenue from one closed month projected to three.
RUNNING = {**DONE, "in_progress": True, "revenue": 300.0, "pacing": {"revenue": 900.0, "leads": 276.0}}
FORECAST = {"p10": 850.0, "p50": 960.0, "p90": 1080.0, "target": 1000.0, "probability_to_hit": 0.38,
            "as_of": "2026-08-09"}  # fmt: skip


def test_movements_rank_by_relative_change() -> None:
    moves = brief.movements(DONE)
    # bounce 0.50 -> 0.40 is -20%, marketing cost +25%, leads +20%, visits -3.2%; revenue did not move
    assert [(m.key, m.before, m.after, m.change, m.verdict) for m in moves] == [
        ("marketing_cost", "$400", "$500", "+25.0%", ""),  # no better direction: no verdict
        ("leads", "100", "120", "+20.0%", "better"),
        ("bounce_rate", "50.0%", "40.0%", "-10.0 pts", "better"),  # lower is better
    ]
    assert moves[0].size == pytest.approx(0.25)


def test_a_quarter_in_progress_moves_by_its_run_rate_not_its_part_total() -> None:
    moves = {m.key: m for m in brief.movements(RUNNING, limit=10)}
    assert moves["leads"].after == "276" and moves["leads"].projected  # 276 projected, not 120 so far
    assert moves["bounce_rate"].after == "40.0%" and not moves["bounce_rate"].projected  # a rate as it is


def test_a_kpi_missing_or_zero_before_does_not_move() -> None:
    m = {"leads": 5, "visits": 10, "previous_quarter": {"quarter": "2026Q2", "leads": 0, "visits": None}}
    assert brief.movements(m) == []


@pytest.mark.parametrize(
    ("metrics", "lines"),
    [
        (DONE, ["Revenue $900 is 90% of the quarter’s target of $1,000 (at risk).",
                "FY2026 to date: $2,500, 50% of the annual target of $5,000."]),
        (RUNNING, ["Revenue so far $300 (data to the data's last day).",
                   "At the run-rate of the months closed the quarter ends at $900: 90% of the quarter’s target of "
                   "$1,000 (at risk).", "FY2026 to date: $2,500, 50% of the annual target of $5,000."]),
        ({**RUNNING, "data_end": "2026-08-09", "forecast": {"revenue": FORECAST}},
         ["Revenue so far $300 (data to 2026-08-09).",
          "Forecast for the quarter: $960 (P10 $850 to P90 $1.08k); 38% chance of reaching the target of $1,000, "
          "as of 2026-08-09.", "FY2026 to date: $2,500, 50% of the annual target of $5,000."]),
        ({**RUNNING, "pacing": {"revenue": None}},
         ["Revenue so far $300 (data to the data's last day).",
          "No run-rate projection yet: no month of the quarter has closed in the revenue data.",
          "FY2026 to date: $2,500, 50% of the annual target of $5,000."]),
        ({"currency": "USD", "revenue": None, "undefined": {"revenue": "needs revenue: add revenue.csv"}},
         ["Revenue: n/a (needs revenue: add revenue.csv)."]),
        ({"currency": "EUR", "revenue": 10.0, "revenue_target": None, "undefined": {"revenue_target": "one year"}},
         ["Revenue €10.", "No revenue target: one year."]),
    ],
    ids=["finished", "run-rate", "forecast", "no-month-closed", "no-revenue", "no-target"],
)  # fmt: skip
def test_revenue_against_target_in_words(metrics: dict, lines: list[str]) -> None:
    assert brief.revenue_outlook(metrics)["lines"] == lines


def test_a_forecast_is_shown_only_while_the_quarter_runs_and_only_when_complete() -> None:
    assert brief.revenue_outlook({**DONE, "forecast": {"revenue": FORECAST}})["forecast"] is None
    assert brief.revenue_outlook({**RUNNING, "forecast": {"revenue": {**FORECAST, "p90": None}}})["forecast"] is None
    assert brief.revenue_outlook({**RUNNING, "forecast": {"revenue": FORECAST}})["forecast"] == FORECAST


def test_the_chart_draws_revenue_in_its_status_colour_and_is_reproducible() -> None:
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    plot_revenue_outlook(900.0, 1000.0, status="at risk", forecast=FORECAST, ax=ax, currency="USD")
    assert drawn_statuses(ax) == {"revenue": "at risk"}
    texts = [t.get_text() for t in ax.texts]
    assert any("forecast \\$960" in t for t in texts) and any("target \\$1k" in t for t in texts)
    outlook = brief.revenue_outlook(DONE)
    png = brief.chart_png(outlook)
    assert png is not None and png.startswith(b"\x89PNG") and brief.chart_png(outlook) == png
    assert brief.chart_png(brief.revenue_outlook({"currency": "USD"})) is None


def test_the_brief_keeps_text_as_text_and_leaves_no_links() -> None:
    conclusion = '<p><strong>Revenue</strong> up; see <a href="01-goal-setting.html">goals</a> &lt;script&gt;</p>'
    html = brief.render(brief.build_brief("2026Q3", DONE, conclusion))
    assert "<script" not in html and "&lt;script&gt;" in html
    assert "<a " not in html and "see goals" in html
    assert html.count('<img class="kb-chart" src="data:image/png;base64,') == 1
    assert "2026Q3 in brief" in html and "Largest movements on 2026Q2" in html
    assert "The quarter in brief" in html  # the summary's words lead
    # a finished quarter's revenue sentence is the conclusion's: said once (and in the chart's alt text)
    assert "<p>Revenue $900 is 90%" not in html and 'alt="Chart: revenue against target. Revenue $900 is 90%' in html
    fragment = brief.render(brief.build_brief("2026Q3", DONE, ""), standalone=False)
    assert fragment.startswith('<div class="kpi-brief">') and "is 90% of the quarter’s target" in fragment


# --------------------------------------------------------------------------------------------------
# One page


def _pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))


def _print_on(html: str, paper: str, tmp_path: Path) -> Path:
    from kpi_helpers.pdf import print_pdf

    page = tmp_path / f"brief-{paper}.html"
    page.write_text(html.replace("@page { margin: 10mm; }", f"@page {{ margin: 10mm; size: {paper}; }}"))
    return print_pdf(page, tmp_path / f"brief-{paper}.pdf")


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("paper", ["A4", "Letter"])
def test_the_sample_brief_prints_on_one_page(sample_report: SampleReport, paper: str, tmp_path: Path) -> None:
    html = (sample_report.folder / "brief.html").read_text(encoding="utf-8")
    assert "@page { margin: 10mm; }" in html
    assert _pages(_print_on(html, paper, tmp_path)) == 1


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("paper", ["A4", "Letter"])
def test_a_quarter_in_progress_restated_with_its_forecast_still_fits(
    sample_report: SampleReport, paper: str, tmp_path: Path
) -> None:
    """The longest brief the sample gives: in progress (the forecast's lines), restated, every tile."""
    from kpi_helpers.pages import conclusion_html
    from kpi_helpers.planning import Job

    metrics: dict[str, Any] = json.loads((sample_report.folder / "metrics.json").read_text())
    metrics.update(
        in_progress=True,
        days_covered=40,
        forecast={"revenue": {**FORECAST, "p10": 2.9e6, "p50": 3.2e6, "p90": 3.5e6}},
        undefined={"cac": "needs spend of the sales team: add spend.csv rows of cost type sales " * 2},
    )
    metrics["cac"] = None
    summary = Job(sample_report.folder / "00-quarterly-summary.ipynb", "00-quarterly-summary", "Summary", {})
    changes = {"since": "2026-11-05T06:00:00Z", "changes": [{"kpi": "won_revenue"}] * 7}
    built = brief.build_brief("2026Q3", metrics, conclusion_html(sample_report.folder, [summary]), changes)
    html = brief.render(built)
    assert "Forecast for the quarter" in html and "Restated: 7 KPIs changed" in html
    assert _pages(_print_on(html, paper, tmp_path)) == 1
