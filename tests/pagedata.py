"""Synthetic metrics of one quarter for the page tests (tables, narratives, widgets): shaped like
``QuarterKpis.metrics()`` of the sample's 2026Q3, with data text that must be escaped."""

from __future__ import annotations

import pandas as pd
from conftest import HOSTILE_CHANNEL

CHANNELS = ["Email", "Paid Search", HOSTILE_CHANNEL, "Price $5 off $10"]


def kpis() -> list[dict]:
    return [
        {
            "name": "Leads per quarter",
            "metric": "leads",
            "owner": "Demand gen",
            "goal": "revenue",
            "baseline": 481.0,
            "target": 705.0,
            "actual": 624.0,
            "projected": None,
            "status": "off track",
        },
        {
            "name": "Cost per lead",
            "metric": "cost_per_lead",
            "owner": HOSTILE_CHANNEL,
            "goal": "revenue",
            "baseline": 380.0,
            "target": 325.0,
            "actual": 342.0,
            "projected": None,
            "higher_is_better": False,
            "status": "at risk",
        },
        {
            "name": "Marketing ROI",
            "metric": "marketing_roi",
            "owner": "CMO",
            "goal": "revenue",
            "baseline": 0.8,
            "target": 1.0,
            "actual": 2.3,
            "projected": None,
            "status": "on track",
        },
        {
            "name": "Visit-to-lead rate",
            "metric": "visit_to_lead_rate",
            "owner": "Web",
            "goal": "revenue",
            "baseline": None,
            "target": 0.025,
            "actual": None,
            "projected": None,
            "status": "no data",
        },
    ]


def comparison() -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "first_touch": [100.0, 50.0, 0.0, 10.0],
            "linear": [60.0, 60.0, 20.0, 20.0],
            "position_based": [70.0, 55.0, 10.0, 25.0],
        },
        index=pd.Index(CHANNELS, name="channel"),
    )
    df.columns.name = "model"
    return df


def metrics() -> dict:
    prev = {
        "quarter": "2026Q2",
        "revenue": 928_808.0,
        "leads": 662.0,
        "lead_revenue": 509_200.0,
        "cost_per_lead": 319.0,
        "cac": 16_120.0,
        "marketing_roi": 1.409,
        "visits": 27_209.0,
        "visits_per_lead": 41.1,
        "visit_to_lead_rate": 0.024,
        "value_per_lead": 769.0,
        "value_per_visit": 18.71,
        "bounce_rate": 0.497,
        "organic_visits": 9_969.0,
        "lead_to_customer_rate": 0.03,
        "marketing_cost": 211_386.0,
    }
    return {
        "quarter": "2026Q3",
        "quarter_start": "2026-07-01",
        "quarter_end": "2026-09-30",
        "fiscal_year": "FY2026",
        "data_end": "2026-10-20",
        "complete": True,
        "days_covered": 92,
        "days_in_quarter": 92,
        "currency": "USD",
        "attribution_model": "position_based",
        "revenue": 966_450.0,
        "revenue_target": 1_045_130.0,
        "revenue_fiscal_year_to_date": 2_812_450.0,
        "revenue_target_fiscal_year": 4_054_050.0,
        "leads": 624,
        "visits": 24_476,
        "lead_revenue": 704_500.0,
        "cost_per_lead": 342.19,
        "cac": 13_529.0,
        "clv": 82_976.0,
        "clv_to_cac": 6.13,
        "marketing_roi": 2.299,
        "marketing_cost": 213_527.0,
        "visits_per_lead": 39.2,
        "visit_to_lead_rate": 0.0255,
        "visit_to_lead_ratio": "39.2:1",
        "value_per_lead": 1129.0,
        "value_per_visit": 28.78,
        "bounce_rate": 0.5,
        "new_user_share": 0.669,
        "organic_visits": 8_690,
        "lead_to_customer_rate": 0.038,
        "previous_quarter": prev,
        "kpis": kpis(),
    }


SPEND_REASON = "needs spend: add spend.csv, or ad platform reports (--mapping google-ads, meta-ads or linkedin-ads)"
REVENUE_REASON = "needs revenue: add revenue.csv (finance's revenue by month)"
PARTIAL_REASON = "`web_sessions` covers 80 of 92 days (12 missing: 2026-07-01 to 2026-07-12)"


def crm_only() -> dict:
    """``metrics()`` as a CRM-only folder gives it: no spend, no revenue, no web, no touchpoints."""
    m = metrics()
    gone = {
        **dict.fromkeys(("marketing_cost", "cost_per_lead", "cac", "clv_to_cac", "marketing_roi"), SPEND_REASON),
        **dict.fromkeys(("revenue", "revenue_fiscal_year_to_date"), REVENUE_REASON),
        "revenue_target": f"no revenue target: {REVENUE_REASON}",
    }
    for key in (*gone, "revenue_target_fiscal_year"):
        m[key] = None
        m["previous_quarter"][key] = None  # every registry KPI is compared, null where undefined
    m["undefined"] = gone
    m["coverage"] = {"leads": {"status_in_quarter": "full"}, "opportunities": {"status_in_quarter": "full"}}
    m["kpis"] = [dict(k, actual=None, status="no data", note=SPEND_REASON) if k["metric"] == "cost_per_lead" else k
                 for k in m["kpis"]]  # fmt: skip
    return m
