"""kpi_helpers.narratives: the pages' conclusions say numbers formatted by their registry unit, names
from the data escaped, each KPI in its row's own status (and remember it), and never a number the data
does not give.

Fast: synthetic metrics (``pagedata``), no data source.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from conftest import HOSTILE_CHANNEL
from pagedata import PARTIAL_REASON, REVENUE_REASON, SPEND_REASON, comparison, crm_only, kpis, metrics

from kpi_helpers import narratives as N
from kpi_helpers.kpis import Undefined

ECON = pd.DataFrame(
    {"roi": [1.5, -0.4, 0.2, math.nan], "marketing_cost": [1e4, 4e4, 5e3, 0.0]},
    index=pd.Index(["Email", "Paid Search", HOSTILE_CHANNEL, "Events"], name="channel"),
)
GOAL = dict(fiscal_year=2026, target_revenue=4.05e6, last_year_revenue=3.19e6, target_growth=0.272,
            average_growth=0.222, uplift=0.05)  # fmt: skip


def _goal(**kw):
    return type("Goal", (), {**GOAL, "formula": lambda self: "3,190,000 × 0.272 + 3,190,000", **kw})()


@pytest.mark.parametrize(
    ("cur", "prev", "unit", "expected"),
    [
        (110, 100, "count", "up 10.0%"),
        (90, 100, "money", "down 10.0%"),
        (100, 100, "count", "unchanged"),
        (0.25, 0.20, "percent", "up 5.0 pts"),
        (3.5, 3.2, "ratio", "up 0.30"),
        (0.2, None, "percent", ""),
        (5, 0, "count", ""),
    ],
    ids=["up", "down", "unchanged", "points", "ratio", "missing", "from-zero"],
)
def test_change_words(cur, prev, unit, expected) -> None:
    assert N.change_words(cur, prev, unit) == expected


def test_summary_states_change_target_and_status_and_escapes() -> None:
    m = metrics()
    m["quarter"] = "2026Q3<script>"
    s = N.summary(m)
    assert "<script>" not in s
    assert r"up 4.1% from \$928,808" in s and r"92.5% of the quarter's target of \$1,045,130" in s
    assert "position\\-based attribution" in s and "1 of 4 KPIs are on track" in s
    assert "Furthest from target: Leads per quarter" in s
    assert s.statuses == {r["metric"]: r["status"] for r in kpis()}, "every KPI's status noted as stated"


def test_a_status_is_said_as_the_row_gives_it_never_recomputed() -> None:
    """Issue 11: SQLs at 93% of their target with a baseline are off track, not 'at risk'."""
    row = {"name": "SQLs", "metric": "sqls", "baseline": 75.0, "target": 123.3, "actual": 115.0, "status": "off track"}
    m = metrics() | {"kpis": [row]}
    text = N.conversion(m, None, None)
    assert "115 SQLs against a target of 123 (off track)" in text and text.statuses == {"sqls": "off track"}


def test_goal_names_the_target_and_each_kpis_status() -> None:
    m = metrics()
    text = N.goal(_goal(), m, m["kpis"])
    assert r"\$4,050,000" in text and "481 → 705" in text and "<script>" not in text
    assert "1 of 4 on track" in text and text.statuses["cost_per_lead"] == "at risk"


def test_conversion_and_traffic_escape_channels() -> None:
    m = metrics()
    funnel = pd.DataFrame(
        {"leads": [100, 50, 150], "lead_to_sql_rate": [0.3, 0.1, 0.2]}, index=[HOSTILE_CHANNEL, "Email", "All channels"]
    )
    conv = N.conversion(m, funnel, comparison(), model="linear")
    assert "<script>" not in conv and "&lt;script&gt;" in conv and "up 0.8 pts" in conv
    assert "the visit-to-lead ratio was 39.2:1" in conv
    traffic = N.traffic(m, funnel.drop("All channels"))
    assert "down 10.0% from 27,209" in traffic and "&lt;script&gt;" in traffic
    assert "It took 39.20 visits to get one lead" in traffic  # a ratio, as the registry says


def test_roi_names_the_model_and_the_rank_movers() -> None:
    ranks = pd.DataFrame(
        {"first_touch": [1, 2], "linear": [2, 1], "best_rank": [1, 1], "worst_rank": [2, 2], "places_moved": [1, 1]},
        index=[HOSTILE_CHANNEL, "Email"],
    )
    roi = N.roi(metrics(), ECON, ranks, model="position_based")
    assert "<script>" not in roi and "from rank 1 to 2" in roi and "ROI 150.0%" in roi
    assert "position\\-based attribution" in roi


def test_pacing_says_it_is_a_projection_and_judges_the_projection() -> None:
    m = metrics() | {
        "quarter": "2026Q4",
        "days_covered": 20,
        "kpis": [{"name": "Leads", "metric": "leads", "target": 732.0, "projected": 975.0, "status": "on track"}],
    }
    text = N.pacing(m, {"revenue": Undefined("no month closed"), "leads": 975.0, "lead_revenue": 1e5})
    assert "projection, not a result" in text and "20 of its 92 days" in text
    assert "Revenue cannot be projected yet (no month closed)" in text and "975 leads" in text
    assert text.statuses == {"leads": "on track"}
    assert "nothing to project" in N.pacing(m, None)


def test_pacing_without_a_target_gives_the_projection_alone() -> None:
    m = metrics() | {
        "quarter": "2026Q4",
        "days_covered": 20,
        "revenue_target": None,
        "tables": ["leads"],
        "undefined": {"revenue_target": f"no revenue target: {REVENUE_REASON}"},
        "kpis": [{"name": "Leads", "metric": "leads", "target": None, "projected": 975.0, "status": "no data"}],
    }
    text = N.pacing(m, {"revenue": Undefined(REVENUE_REASON), "leads": 975.0})
    assert "Revenue cannot be projected (needs revenue" in text and "975 leads." in text
    assert "target of n/a" not in text


@pytest.mark.parametrize(
    "narrate",
    [
        pytest.param(lambda m: N.summary(m), id="summary"),
        pytest.param(lambda m: N.traffic(m, None), id="traffic"),
        pytest.param(lambda m: N.conversion(m, None, None), id="conversion"),
        pytest.param(lambda m: N.roi(m, None, None, model="position_based"), id="roi"),
        pytest.param(lambda m: N.goal(None, m, m["kpis"]), id="goal"),
    ],
)
def test_narratives_never_speak_of_a_number_that_is_n_a(narrate) -> None:
    text = narrate(crm_only())
    sentences = [s for p in text.split("\n\n") if not p.startswith("Not available") for s in p.split(". ")]
    spoken = [s for s in sentences if "n/a" in s and "actual n/a (" not in s]  # goal's KPI list gives the reason
    assert spoken == [] and r"\$0" not in text
    for phrase in ("Cost per lead was", "Winning a new customer cost", "Marketing ROI was", r"marketing cost \$"):
        assert phrase not in text


def test_narratives_name_what_is_missing_and_why() -> None:
    m = crm_only()
    summary = N.summary(m)
    assert "Marketing brought 624 leads" in summary and r"worth \$704,500" in summary
    last = summary.split("\n\n")[-1]
    # reasons are grouped; one that contains another ("no revenue target: needs revenue: ...") joins it
    assert last.startswith("Not available for 2026Q3: revenue, revenue target and revenue, fiscal year to date")
    assert "cost per lead, CAC, CLV:CAC and marketing ROI (needs spend: add spend.csv" in last
    goal = N.goal(None, m, m["kpis"])
    assert goal.startswith("**There is no FY2026 revenue target**: needs revenue: add revenue.csv")
    assert "without data" in goal
    roi = N.roi(m, None, None, model="position_based")
    assert r"A customer's lifetime value was \$82,976." in roi and "CAC was" not in roi


def test_goal_says_when_the_history_is_short() -> None:
    goal = _goal(
        target_revenue=3_346_453.0, last_year_revenue=3_187_098.0, target_growth=0.05, average_growth=0.0,
        growth_history=pd.Series({2025: math.nan}),
        note="only FY2025 is complete: no growth history, so the target is last year × (1 + uplift)",
    )  # fmt: skip
    text = N.goal(goal, metrics(), [])
    assert "grown by 5.0%, the uplift of 5.0% alone" in text and "average growth of recent years" not in text
    assert "Only FY2025 is complete" in text


def test_not_available_and_partial_note() -> None:
    m = {"quarter": "2026Q3", "undefined": {"cac": SPEND_REASON, "cost_per_lead": SPEND_REASON}}
    assert N.not_available(m, ["cost_per_lead", "leads", "cac"]) == (
        "Not available for 2026Q3: cost per lead and CAC (needs spend: add spend.csv, or ad platform reports "
        "\\(\\-\\-mapping google\\-ads, meta\\-ads or linkedin\\-ads\\))."
    )
    assert N.not_available(m, ["leads"]) == "" and N.partial_note(m, ["cac"]) == ""
    text = N.partial_note({"partial": {"visits": PARTIAL_REASON}}, ["visits"])
    assert text.startswith("Counted on part of the quarter only: visits (`web_sessions` covers 80 of 92 days")


def test_a_partial_sum_is_marked_and_not_compared_with_a_whole_quarter() -> None:
    m = metrics() | {"partial": {"visits": PARTIAL_REASON, "bounce_rate": PARTIAL_REASON}}
    text = N.traffic(m)
    assert "24,476 visits (partial quarter)" in text and "from 27,209" not in text  # 80 days against 91
    assert "50.0% (partial quarter; up 0.3 pts from 49.7% in 2026Q2)" in text  # a rate over the days covered
    assert text.split("\n\n")[-1].startswith(
        "Counted on part of the quarter only: visits and bounce rate (`web_sessions` covers 80 of 92 days"
    )


def test_credit_sources_and_model_assumptions() -> None:
    own = N.credit_sources_sentence(
        {"attribution_source": "touchpoints", "credit_sources": {"touch_journeys": 1.0, "own_channel": 0.0}}
    )
    assert own == "All of the quarter's attributed lead revenue came through the leads' recorded touches."
    text = N.model_assumptions(["linear", "position_based"])
    assert text.startswith("### What each model assumes") and text.count("\n- ") == 2


# -- changes judged against history, intervals, immature cohorts ---------------------------------------


def _judged(m: dict, **real: bool | None) -> dict:
    prev, year = m["previous_quarter"], m.get("year_ago") or {}
    block = {
        key: {
            "quarter_on_quarter": {"real": r, "reference": "2026Q2", "value": m[key], "reference_value": prev[key]},
            "year_on_year": {"real": False, "reference": "2025Q3", "value": m[key], "reference_value": year.get(key)},
        }
        for key, r in real.items()
    }
    return {**m, "changes": {"alpha": 0.1, "kpis": block}}


def test_a_change_is_said_within_or_beyond_normal_variation() -> None:
    text = N.summary(_judged(metrics(), leads=False, cost_per_lead=True))
    assert "624 leads (down 5.7% from 662 in 2026Q2, within normal variation)" in text
    assert r"Cost per lead was \$342 (up 7.3% from \$319 in 2026Q2, beyond normal variation)" in text
    assert "**Beyond normal variation**: cost per lead up 7.3% on 2026Q2." in text
    # a change not judged (too little history) gets no verdict
    plain = N.summary(_judged(metrics(), leads=None))
    assert "624 leads (down 5.7% from 662 in 2026Q2) against" in plain


def test_no_real_movement_is_said_once() -> None:
    text = N.summary(_judged(metrics(), leads=False))
    assert "**No KPI moved beyond its normal variation** in 2026Q3" in text
    assert "normal variation" not in N.summary(metrics())  # an older kit's metrics: nothing judged


def test_the_roi_page_gives_the_channels_intervals_and_says_when_they_overlap() -> None:
    econ = ECON.assign(roi_low=[0.2, -0.9, -0.5, math.nan], roi_high=[3.1, 0.3, 1.0, math.nan])
    text = N.roi(metrics(), econ, None, model="position_based")
    assert r"ROI 150.0% \(20.0%\-310.0%\) on" in text and r"ROI \-40.0% \(\-90.0% to 30.0%\) on" in text
    assert "Their 90% intervals overlap" in text
    apart = N.roi(metrics(), econ.assign(roi_low=[0.5, -0.9, -0.5, math.nan]), None, model="position_based")
    assert "overlap" not in apart


def test_maturity_names_the_steps_still_maturing() -> None:
    steps = pd.DataFrame(
        {
            "rate_so_far": [0.532, 0.016],
            "matured": [1.0, 0.119],
            "expected_rate": [0.532, 0.138],
            "expected_rate_low": [0.497, 0.031],
            "expected_rate_high": [0.567, 0.442],
            "maturing": [False, True],
        },
        index=pd.Index(["lead_to_mql_rate", "opportunity_to_won_rate"], name="step"),
    )
    steps.attrs.update(as_of="2026-10-20", youngest_days=20.3, oldest_days=111.7)
    text = N.maturity(metrics(), steps)
    assert "2026Q3's leads are 20 to 112 days old" in text and "**Still maturing.**" in text
    assert r"opportunity to won: 11.9% of its conversions have had time to happen; 1.6% so far" in text
    assert r"13.8% \(3.1%\-44.2%\) expected once mature" in text and "lead to MQL" not in text
    mature = N.maturity(metrics(), steps.assign(maturing=False))
    assert "every stage step has had the time it usually takes" in mature
    assert N.maturity(metrics(), steps.iloc[:0]) == ""


def test_pacing_with_forecasts_says_what_it_judges() -> None:
    m = metrics() | {
        "quarter": "2026Q4",
        "days_covered": 20,
        "forecast": {"leads": {"p50": 975.0}},
        "kpis": [{"name": "Leads", "metric": "leads", "target": 732.0, "projected": 975.0, "status": "on track"}],
    }
    text = N.pacing(m, {"revenue": Undefined("no month closed"), "leads": 975.0})
    assert "projection, not a result" in text and "middle (P50)" in text and "about 975 leads" in text


def test_forecast_chances_in_words() -> None:
    m = metrics() | {
        "forecast": {
            "revenue": {"p10": 9e5, "p50": 1e6, "p90": 1.1e6, "target": 1.2e6, "probability_to_hit": 0.04},
            "bookings": {"p10": 2e5, "p50": 2.5e5, "p90": 3e5, "target": 2.4e5, "probability_to_hit": 0.58},
            "all_bookings": {"p10": 1e6, "p50": 2e6, "p90": 3e6, "target": None, "probability_to_hit": None},
        }
    }
    text = N.forecast_chances(m)
    assert "revenue **4.0%**" in text and "lead revenue **58.0%**" in text and "bookings" in text
    assert "won revenue" not in text  # no target: no chance to state
    assert text.statuses == {}
    assert N.forecast_chances(metrics() | {"forecast": None}) == ""
