"""kpi_helpers.tables: every table formatted by the registry's units, escaped, and showing each KPI in
its row's own status.

Fast: synthetic frames and metrics (``pagedata``), no data source.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from conftest import HOSTILE_CAMPAIGN, HOSTILE_CHANNEL
from pagedata import PARTIAL_REASON, REVENUE_REASON, SPEND_REASON, comparison, crm_only, kpis, metrics

from kpi_helpers import tables as T
from kpi_helpers.registry import KPIS
from kpi_helpers.status import COLOURS


def test_styled_table_escapes_data_text_and_formats_by_the_registry() -> None:
    df = pd.DataFrame(
        {"cost": [1234.5, math.nan], "roi": [0.2519, -0.413], "leads": [1200, 3], "note": [HOSTILE_CAMPAIGN, "a & b"]},
        index=pd.Index([HOSTILE_CHANNEL, "Email"], name="channel"),
    )
    html = T.styled_table(df, currency="EUR", caption="<b>caption</b>").to_html()
    assert HOSTILE_CHANNEL not in html and HOSTILE_CAMPAIGN not in html and "<b>caption" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=" in html and "a &amp; b" in html
    assert "€1,234" in html and "25.2%" in html and "-41.3%" in html and "1,200" in html and "n/a" in html
    assert ">Channel<" in html and ">Marketing cost<" in html and ">ROI<" in html  # the registry's labels


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        ("avg_session_duration_s", 87.0, "1 min 27 s"),  # a duration, never 8700.0%
        ("visits_per_lead", 39.2244, "39.22"),
        ("value_per_visit", 28.776, "$28.78"),
        ("cac_low", 12_000.0, "$12,000"),  # an interval bound takes its KPI's unit
        ("days_mql_to_sql", 3.25, "3.2 days"),
        ("share", 0.5, "50.0%"),
    ],
    ids=["seconds", "ratio", "money_small", "interval", "days", "percent"],
)
def test_styled_table_takes_each_columns_unit_from_the_registry(column: str, value: float, shown: str) -> None:
    html = T.styled_table(pd.DataFrame({column: [value]}), currency="USD").to_html()
    assert f">{shown}<" in html


def test_a_column_the_registry_does_not_know_needs_a_unit() -> None:
    frame = pd.DataFrame({"own_score": [1.5]})
    with pytest.raises(ValueError, match="no unit for column `own_score`: the registry does not know it"):
        T.styled_table(frame)
    assert ">1.50<" in T.styled_table(frame, units={"own_score": "ratio"}).to_html()
    assert ">2<" in T.styled_table(frame.assign(own_score=2.0), unit="count").to_html()


def test_styled_table_escapes_headers_and_hides_index_clutter() -> None:
    df = pd.DataFrame({HOSTILE_CHANNEL: [1.0]}, index=pd.Index(["x"], name="channel"))
    df.columns.name = "model"
    html = T.styled_table(df, units={HOSTILE_CHANNEL: "money"}, currency="<i>$</i>").to_html()
    assert HOSTILE_CHANNEL not in html and "&lt;script&gt;" in html
    assert "<i>" not in html and "&lt;I&gt;$&lt;/I&gt; 1" in html
    assert ">model<" not in html and 'class="row_heading' not in html  # no index column, no columns name


def test_styled_table_is_the_same_html_on_a_second_run() -> None:
    df = pd.DataFrame({"leads": [1, 2]}, index=pd.Index(["a", "b"], name="channel"))
    assert T.styled_table(df).to_html() == T.styled_table(df.copy()).to_html()


def test_status_badges_use_the_one_colour_scale_and_words() -> None:
    df = pd.DataFrame({"KPI": ["Leads", "CPL", "x"], "Status": ["on track", "at risk", "<b>off track</b>"]})
    html = T.styled_table(df, units={"Status": T.STATUS}).to_html()
    assert COLOURS["on track"] in html and ">On track<" in html and ">At risk<" in html
    assert "&lt;b&gt;off track&lt;/b&gt;" in html and ">Index<" not in html
    assert COLOURS["off track"] in T.status_badge("off track") and "<script>" not in T.status_badge(HOSTILE_CHANNEL)
    assert ">No data<" in T.status_badge(None)


def test_headline_frame_lists_the_registrys_headline_kpis() -> None:
    m = metrics()
    h = T.headline_frame(m)
    assert list(h.columns) == ["KPI", "2026Q3", "2026Q2", "Change", "Target"]
    assert len(h) == len([k for k in KPIS.values() if k.headline]) == len(T.headline_keys())
    row = h.set_index("KPI").loc["Revenue"]
    assert row["2026Q3"] == "$966,450" and row["Change"] == "+4.1%" and row["Target"] == "$1,045,130"
    assert h.set_index("KPI").loc["Cost per lead", "Target"] == "≤ $325"
    assert "Marketing ROI (position-based attribution)" in h["KPI"].tolist()


def test_kpi_frame_shows_each_rows_own_status_and_units() -> None:
    k = T.kpi_frame(metrics()["kpis"], currency="USD").set_index("KPI")
    assert k.loc["Cost per lead", "Target"] == "≤ $325" and k.loc["Marketing ROI", "Actual"] == "230.0%"
    assert k["Status"].tolist() == [r["status"] for r in kpis()]
    assert k.loc["Cost per lead", "Owner"] == HOSTILE_CHANNEL  # raw here; styled_table escapes it
    assert "<script>" not in T.styled_table(k, units={"Status": T.STATUS}).to_html()
    assert "Note" not in k.columns and "Projected" not in k.columns


def test_headline_frame_shows_n_a_with_its_reason_and_partial_with_its_days() -> None:
    m = crm_only()
    m["partial"] = {"leads": PARTIAL_REASON}
    h = T.headline_frame(m, previous_reasons={"lead_revenue": "no won deals in 2026Q2"}).set_index("KPI")
    assert list(h.columns) == ["2026Q3", "2026Q2", "Change", "Target", "Note"]
    assert h.loc["Revenue"].tolist() == ["n/a", "n/a", "n/a", "", REVENUE_REASON]
    assert h.loc["Cost per lead", "2026Q3"] == "n/a" and h.loc["Cost per lead", "Target"] == "≤ $325"
    assert h.loc["Leads", "2026Q3"] == "624 (partial)" and h.loc["Leads", "Note"] == PARTIAL_REASON
    assert h.loc["Leads", "Change"] == "not compared (partial)"
    assert "Marketing ROI" in h.index, "no attribution claimed for an ROI the data does not give"
    assert not any(v == "0" or v.startswith("$0") for v in h.to_numpy().ravel()), "a 0 stands in for n/a"
    m["previous_quarter"]["lead_revenue"] = None
    h = T.headline_frame(m, previous_reasons={"lead_revenue": "no won deals in 2026Q2"}).set_index("KPI")
    assert h.loc[KPIS["lead_revenue"].label, "Note"] == "2026Q2: no won deals in 2026Q2"


def test_headline_frame_without_touchpoints_says_own_channel() -> None:
    m = metrics() | {"coverage": {"leads": {"status_in_quarter": "full"}}}
    assert "Marketing ROI (revenue credited to each lead's own channel)" in T.headline_frame(m)["KPI"].tolist()


def test_headline_frame_refuses_a_key_outside_the_registry() -> None:
    with pytest.raises(ValueError, match="`own_score` is not in the registry"):
        T.headline_frame(metrics(), ["own_score"])


def test_kpi_frame_notes_why_a_kpi_has_no_data() -> None:
    k = T.kpi_frame(crm_only()["kpis"]).set_index("KPI")
    assert k.loc["Cost per lead", "Actual"] == "n/a" and k.loc["Cost per lead", "Note"] == SPEND_REASON
    assert k.loc["Visit-to-lead rate", "Baseline"] == "n/a" and k.loc["Leads per quarter", "Note"] == ""


def test_funnel_frame_words_each_stage_and_its_rate() -> None:
    req = pd.DataFrame(
        {
            "fact": ["leads", "lead_won_deals"],
            "rate": ["lead_to_mql_rate", "avg_deal_size"],
            "rate_value": [0.5, 29_000.0],
            "required": [705.0, 23.6],
            "actual": [624.0, 24.0],
            "status": ["off track", "on track"],
        },
        index=pd.Index(["leads", "won_deals"], name="stage"),
    )
    req.attrs.update(year="FY2025", reasons={})
    f = T.funnel_frame(req, currency="USD")
    assert f["Stage"].tolist() == ["Leads", "Won deals from leads"]
    assert f["Rate used (FY2025)"].tolist() == ["lead to MQL: 50.0%", "average deal size: $29,000"]
    assert f["Required this quarter"].tolist() == ["705", "24"] and "Note" not in f


def test_attribution_table_adds_a_total_row_and_labels_models() -> None:
    html = T.attribution_table(comparison(), currency="USD").to_html()
    assert ">First-touch<" in html and ">Position-based<" in html and ">Total<" in html
    assert "position_based" not in html and "$160" in html  # every column adds up to the same total


def test_economics_table_names_the_credit_it_depends_on() -> None:
    econ = pd.DataFrame(
        {"marketing_cost": [1e4], "attributed_conversions": [0.4], "roi": [1.5], "clv": [8e4]},
        index=pd.Index(["Email"], name="channel"),
    )
    html = T.economics_table(econ, credit="linear", currency="USD").to_html()
    assert ">ROI (linear)<" in html and ">Won deals (linear)<" in html and ">0.40<" in html and "CLV" not in html


# -- intervals and real movements ------------------------------------------------------------------


def _judged(m: dict, key: str, real: bool) -> dict:
    """``m`` with ``key``'s change on the previous quarter judged ``real`` (as metrics.json's block)."""
    entry = {"real": real, "reference": "2026Q2", "value": m[key], "reference_value": m["previous_quarter"][key]}
    return {**m, "changes": {"alpha": 0.1, "kpis": {key: {"quarter_on_quarter": entry}}}}


def test_a_value_beside_its_bounds_is_shown_as_a_range() -> None:
    frame = pd.DataFrame(
        {
            "cost_per_lead": [342.19, float("nan")],
            "cost_per_lead_low": [318.4, None],
            "cost_per_lead_high": [371.2, None],
        },
        index=pd.Index(["Email", "Paid"], name="channel"),
    )
    html = T.styled_table(frame, currency="USD").to_html()
    assert "$342 ($318-$371)" in html and "n/a" in html
    assert "Cost per lead (low)" not in html and "(high)" not in html  # the bounds are no columns


def test_a_negative_range_is_joined_by_to() -> None:
    frame = pd.DataFrame({"roi": [-0.12], "roi_low": [-0.301], "roi_high": [0.052]})
    assert "-12.0% (-30.1% to 5.2%)" in T.styled_table(frame).to_html()


def test_headline_frame_shows_intervals_and_marks_only_real_movements() -> None:
    m = {**metrics(), "cost_per_lead_low": 318.4, "cost_per_lead_high": 371.2}
    frame = T.headline_frame(_judged(m, "cost_per_lead", True), ["cost_per_lead", "leads"]).set_index("KPI")
    assert frame.loc["Cost per lead", "2026Q3"] == "$342 ($318-$371)"
    assert frame.loc["Cost per lead", "Change"] == "+7.3%, beyond normal variation"
    assert frame.loc["Leads", "2026Q3"] == "624"  # a count: what happened, no interval
    noise = T.headline_frame(_judged(m, "cost_per_lead", False), ["cost_per_lead"]).set_index("KPI")
    assert noise.loc["Cost per lead", "Change"] == "+7.3%"  # noise is not marked


def test_maturity_table_marks_the_steps_still_maturing() -> None:
    steps = pd.DataFrame(
        {
            "entered": [551, 61],
            "took": [293, 1],
            "rate_so_far": [0.532, 0.016],
            "matured": [1.0, 0.119],
            "expected_rate": [0.532, 0.138],
            "expected_rate_low": [0.497, 0.031],
            "expected_rate_high": [0.567, 0.442],
            "maturing": [False, True],
            "days_column": ["days_lead_to_mql", "days_opportunity_to_won"],
        },
        index=pd.Index(["lead_to_mql_rate", "opportunity_to_won_rate"], name="step"),
    )
    html = T.maturity_table(steps).to_html()
    assert "Opportunity to won" in html and "still maturing" in html and "13.8% (3.1%-44.2%)" in html
    assert "days_" not in html
