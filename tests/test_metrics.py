"""Quarter metrics against hand computation (tiny data) and a direct pandas reconciliation (sample)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from kpi_helpers.metrics import QuarterKpis, format_summary, quarter_metrics, to_json
from kpi_helpers.source import DataSource

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "tiny"
SAMPLE = ROOT / "data" / "sample"


@pytest.fixture(scope="module")
def tiny_metrics():
    return quarter_metrics(DataSource.open(TINY), "2025Q1")


# Worked by hand from tests/fixtures/tiny (see the CSVs): 2025Q1.
HAND = {
    "leads": 3,
    "visits": 1000,
    "mqls": 2,
    "sqls": 1,
    "opportunities": 3,
    "won_deals": 2,
    "new_customers": 2,
    "users": 840,
    "new_users": 510,
    "returning_users": 330,
    "revenue": 4000.0,
    "lead_revenue": 10000.0,
    "won_revenue": 15000.0,
    "marketing_cost": 2000.0,  # 500 production + 1000 media + 200 software + 300 overhead
    "sales_cost": 2000.0,
    "visits_per_lead": 1000 / 3,
    "value_per_lead": 10000 / 3,
    "value_per_visit": 10.0,
    "visit_to_lead_rate": 0.003,
    "lead_to_customer_rate": 1 / 3,  # one won deal from a lead, three leads
    "cost_per_lead": 2000 / 3,
    "cac": 2000.0,  # (2000 marketing + 2000 sales) / 2 new customers
    "marketing_roi": 4.0,  # (10000 attributed - 2000) / 2000
    "bounce_rate": 0.42,  # 1 - 580 / 1000
    "avg_session_duration_s": 87.0,
    "email_open_rate": 0.25,
    "goal_completions": 14,
    "attendees": 80,
}


def test_tiny_clv_needs_a_year_of_deals(tiny_metrics):
    # The tiny CRM starts in 2025: a yearly revenue per customer from one quarter would be a quarter's.
    assert tiny_metrics["clv"] is None and tiny_metrics["clv_to_cac"] is None
    assert "needs a year of won deals (2024Q2 to 2025Q1)" in tiny_metrics["undefined"]["clv"]


@pytest.mark.parametrize(("key", "expected"), HAND.items(), ids=list(HAND))
def test_tiny_quarter_by_hand(tiny_metrics, key, expected):
    assert tiny_metrics[key] == pytest.approx(expected, rel=1e-12)


def test_tiny_channels_by_hand(tiny_metrics):
    ch = tiny_metrics["by_channel"]
    # position-based on L1's journey Paid Social > Organic Search > Direct for the 10,000 deal: 40/20/40
    assert ch["Paid Social"]["attributed_revenue"] == pytest.approx(4000)
    assert ch["Organic Search"]["attributed_revenue"] == pytest.approx(2000)
    assert ch["Direct"]["attributed_revenue"] == pytest.approx(4000)
    assert ch["Organic Search"]["roi"] == pytest.approx(3.0)  # (2000 - 500) / 500
    assert ch["Paid Search"]["cost_per_lead"] == pytest.approx(1000.0)
    assert ch["Direct"]["roi"] is None  # no cost: ROI undefined, not inf
    assert ch["(unallocated)"]["cost"] == 300 and ch["(unallocated)"]["roi"] is None
    assert ch["(sales-sourced)"]["opportunities"] == 1
    # per-channel rows add up to the quarter's totals
    for key, total in (
        ("leads", "leads"),
        ("visits", "visits"),
        ("opportunities", "opportunities"),
        ("cost", "marketing_cost"),
        ("attributed_revenue", "lead_revenue"),
    ):
        assert sum(c[key] for c in ch.values()) == pytest.approx(tiny_metrics[total])


def test_missing_goal_history_is_explained(tiny_metrics):
    assert tiny_metrics["revenue_target"] is None
    assert "completed fiscal year" in tiny_metrics["undefined"]["revenue_target"]


def test_json_has_no_nan(tiny_metrics):
    text = to_json(tiny_metrics)
    assert "NaN" not in text and json.loads(text)["quarter"] == "2025Q1"


REQUIRED_KEYS = [
    "quarter",
    "currency",
    "revenue_target",
    "leads",
    "visits",
    "visits_per_lead",
    "lead_revenue",
    "won_revenue",
    "value_per_lead",
    "value_per_visit",
    "mqls",
    "sqls",
    "opportunities",
    "won_deals",
    "visit_to_lead_rate",
    "lead_to_customer_rate",
    "marketing_cost",
    "cost_per_lead",
    "new_customers",
    "cac",
    "clv",
    "clv_to_cac",
    "marketing_roi",
    "attribution_model",
    "by_channel",
    "kit_version",
    "data_fingerprint",
]


@pytest.fixture(scope="module")
def sample_source():
    return DataSource.open(SAMPLE)


@pytest.fixture(scope="module")
def sample_kpis(sample_source):
    return QuarterKpis(sample_source, "latest")


def test_sample_metrics_keys(sample_kpis):
    m = sample_kpis.metrics()
    assert set(REQUIRED_KEYS) <= set(m)
    for ch in m["by_channel"].values():
        assert {"visits", "leads", "opportunities", "attributed_revenue", "cost", "cost_per_lead", "roi"} <= set(ch)
    assert m["quarter"] == "2026Q3" and m["complete"] is True
    assert 0 < m["revenue_target"] < m["revenue_target_fiscal_year"]
    assert m["revenue_target_fiscal_year"] == pytest.approx(sample_kpis.goal.target_revenue)
    assert all(k["owner"] for k in m["kpis"]) and {k["status"] for k in m["kpis"]} <= {
        "on track",
        "at risk",
        "off track",
        "no data",
    }
    for k in ("visit_to_lead_rate", "lead_to_customer_rate", "bounce_rate", "email_open_rate"):
        assert 0 <= m[k] <= 1
    assert "Leads" in format_summary(m)


def test_sample_facts_reconcile_with_pandas(sample_kpis):
    """The engine's quarterly facts equal a direct pandas computation on the same CSV files."""
    q = sample_kpis.quarter
    start, end = pd.Timestamp(q.start), pd.Timestamp(q.end)
    read = lambda name, dates: pd.read_csv(SAMPLE / f"{name}.csv", parse_dates=dates)  # noqa: E731
    leads = read("leads", ["created_at", "mql_at", "sql_at"])
    opps = read("opportunities", ["created_at", "closed_at"])
    web = read("web_sessions", ["date"])
    spend = read("spend", ["date"])
    within = lambda s: (s >= start) & (s < end)  # noqa: E731
    won = opps[(opps.stage == "won") & within(opps.closed_at)]
    # new business (type new or blank) for counts, customers and lead revenue; bookings count every type
    new = opps[opps.type.fillna("new") == "new"]
    won_new = won[won.type.fillna("new") == "new"]
    first_won = new[new.stage == "won"].groupby("account_id").closed_at.min()
    expected = {
        "leads": within(leads.created_at).sum(),
        "mqls": within(leads.mql_at).sum(),
        "sqls": within(leads.sql_at).sum(),
        "opportunities": within(new.created_at).sum(),
        "won_deals": len(won_new),
        "won_revenue": won.amount.sum(),
        "lead_revenue": won_new[won_new.lead_id.notna()].amount.sum(),
        "visits": web[within(web.date)].sessions.sum(),
        "marketing_cost": spend[within(spend.date) & (spend.cost_type != "sales")].amount.sum(),
        "sales_cost": spend[within(spend.date) & (spend.cost_type == "sales")].amount.sum(),
        "new_customers": within(first_won).sum(),
    }
    row = sample_kpis.row
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, rel=1e-9), key
    by_channel = leads[within(leads.created_at)].groupby("channel").size()
    got = sample_kpis.channels["leads"]
    assert got[got > 0].sort_index().to_dict() == by_channel.sort_index().to_dict()


def test_only_aggregates_reach_pandas(sample_source):
    """The report path fetches aggregated rows only (a few hundred), never raw tables."""
    before = len(sample_source.fetches)
    QuarterKpis(sample_source, "latest").metrics()
    fetched = sample_source.fetches[before:]
    assert sum(n for _, n in fetched) < 2_000 and max(n for _, n in fetched) < 500, fetched


def test_current_quarter_pacing(sample_source):
    m = QuarterKpis(sample_source, "current").metrics()
    assert m["quarter"] == "2026Q4" and m["complete"] is False and m["days_covered"] == 20
    pace = m["pacing"]
    assert pace["leads"] == pytest.approx(m["leads"] * 92 / 20)  # run rate: 20 of 92 days covered
    assert pace["revenue"] is None  # revenue is monthly and October has not closed
    won = next(k for k in m["kpis"] if k["metric"] == "won_deals")
    assert won["projected"] == m["forecast"]["won_deals"]["p50"]  # judged on the forecast's P50 (issue 11)
    visits = next(k for k in m["kpis"] if k["metric"] == "visits")
    assert visits["projected"] == pytest.approx(pace["visits"])  # not forecast: judged on the run rate


def test_a_conversion_path_export_of_the_quarter_credits_channels(tmp_path):
    """No touchpoints, a GA4 conversion-path export whose period is 2025Q1: channel credit comes from
    the paths; Markov runs in its converters-only mode (the export has no non-converting paths) and
    says so; a quarter the export does not cover falls back to each lead's own channel."""
    import shutil

    folder = tmp_path / "paths"
    shutil.copytree(TINY, folder)
    (folder / "touchpoints.csv").unlink()
    shutil.copy(ROOT / "tests/fixtures/exports/ga4-paths/Conversion_paths.csv", folder)
    src = DataSource.open(folder, mapping="ga4-paths")
    paths = pd.read_csv(folder / "Conversion_paths.csv", comment="#")
    kq = QuarterKpis(src, "2025Q1", attribution_model="markov")
    m = kq.metrics()
    assert m["attribution_source"] == "paths" and m["markov_mode"] == "converters_only"
    assert m["attributed_lead_revenue"] == pytest.approx(paths["Purchase revenue"].sum())
    assert m["credit_sources"] is None
    later = QuarterKpis(src, "2025Q2").metrics()
    assert later["attribution_source"] == "own_channel"
    assert later["attributed_lead_revenue"] == pytest.approx(later["lead_revenue"])


def test_a_renewal_with_a_lead_gets_no_attribution_credit(tmp_path):
    """Attribution credits new business only: a renewal won from the same lead adds to won revenue
    (bookings) but to neither lead revenue nor any channel's attributed revenue."""
    import shutil

    folder = tmp_path / "tiny"
    shutil.copytree(TINY, folder)
    opps = pd.read_csv(folder / "opportunities.csv", dtype=str)
    opps["type"] = "new"
    renewal = {**opps.iloc[0].to_dict(), "opportunity_id": "O9", "type": "renewal", "amount": "7000"}
    pd.concat([opps, pd.DataFrame([renewal])]).to_csv(folder / "opportunities.csv", index=False)
    before = quarter_metrics(DataSource.open(TINY), "2025Q1")
    after = quarter_metrics(DataSource.open(folder), "2025Q1")
    assert after["won_revenue"] == before["won_revenue"] + 7000
    assert after["lead_revenue"] == before["lead_revenue"]
    assert after["attributed_lead_revenue"] == pytest.approx(before["attributed_lead_revenue"])
    credited = {ch: row.get("attributed_revenue") for ch, row in after["by_channel"].items()}
    assert credited == pytest.approx({ch: row.get("attributed_revenue") for ch, row in before["by_channel"].items()})
