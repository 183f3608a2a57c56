"""The bundled presets, each on a fixture in the exact shape its tool exports.

Every fixture is small, invented and hand-checked: the expected numbers below are sums of the
fixture's cells, worked out in the comments. Each preset is read through ``DataSource.open``, named
by ``recognise`` from its header, refused when the account's currency is not ``goals.yml``'s, and
driven end to end through ``kpi validate`` and ``kpi summary --json``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from kpi_helpers.cli import main
from kpi_helpers.exceptions import SchemaError
from kpi_helpers.exports import read_header, suggestion
from kpi_helpers.mapping import PRESETS, load_mapping, matches, preset_description, recognise
from kpi_helpers.source import DataSource

EXPORTS = Path(__file__).parent / "fixtures" / "exports"

#: preset -> (fixture folder, export file, contract table, the fixture's quarter)
FIXTURES = {
    "ga4": ("ga4", "traffic_acquisition.csv", "web_sessions", "2025Q1"),
    "ga4-paths": ("ga4-paths", "Conversion_paths.csv", "paths", "2025Q1"),
    "google-ads": ("google-ads", "Campaign report.csv", "spend", "2025Q1"),
    "hubspot": ("hubspot", "hubspot-crm-exports-all-contacts-2025-04-02.csv", "leads", "2025Q1"),
    "hubspot-deals": ("hubspot-deals", "hubspot-crm-exports-all-deals-2025-04-02.csv", "opportunities", "2025Q1"),
    "linkedin-ads": ("linkedin-ads", "campaign_performance_report.csv", "spend", "2025Q1"),
    "meta-ads": ("meta-ads", "Example-Account-Campaigns-Jan-1-2025-Jan-10-2025.csv", "spend", "2025Q1"),
    "salesforce": ("salesforce", "report1743600000000.csv", "opportunities", "2025Q1"),
    "salesforce-campaign-members": ("salesforce-campaign-members", "campaign_members.csv", "touchpoints", "2025Q1"),
    "ua": ("ua/day", "Analytics All Web Site Data Channels 20180101-20180107.csv", "web_sessions", "2018Q1"),
    "ua-paths": (
        "ua-paths",
        "Analytics All Web Site Data Top Conversion Paths 20180101-20180331.csv",
        "paths",
        "2018Q1",
    ),
}
NEW = sorted(set(FIXTURES) - {"ga4", "hubspot", "salesforce"})


def _folder(preset: str) -> Path:
    return EXPORTS / FIXTURES[preset][0]


def _table(preset: str) -> pd.DataFrame:
    """The preset's table of its fixture, as the kit reads it (typed, validated)."""
    _, _, table, _ = FIXTURES[preset]
    src = DataSource.open(_folder(preset), mapping=preset, tables=[table])
    return src.fetch(src.table(table))


def _copy(preset: str, tmp_path: Path, *, currency: str | None = None) -> Path:
    folder = tmp_path / "exports"
    shutil.copytree(_folder(preset), folder)
    if currency:
        (folder / "goals.yml").write_text(f"currency: {currency}\n", encoding="utf-8")
    return folder


def _sums(df: pd.DataFrame, by: str, column: str) -> dict[str, float]:
    return {k: round(float(v), 2) for k, v in df.groupby(by)[column].sum().items()}


# ------------------------------------------------------------------------------------ the registry
def test_every_preset_is_registered_with_a_fixture_and_loads():
    assert set(PRESETS) == set(FIXTURES)
    for name in PRESETS:
        tables = load_mapping(name)
        assert list(tables) == [FIXTURES[name][2]], name
        assert tables[FIXTURES[name][2]].detect, f"{name} has no `detect:` signature"
        assert len(preset_description(name)) > 200, f"{name}: say which report and export option it reads"


@pytest.mark.parametrize("preset", sorted(FIXTURES), ids=sorted(FIXTURES))
def test_recognise_names_the_preset_of_each_fixture_and_no_other(preset):
    folder, name, table, _ = FIXTURES[preset]
    header = read_header(EXPORTS / folder / name)
    assert header is not None
    assert recognise(header) == (preset, table)
    # no other preset's signature fits this header, whatever order the registry is searched in
    fits = [other for other in PRESETS if matches(load_mapping(other)[FIXTURES[other][2]].detect, header)]
    assert fits == [preset]


@pytest.mark.parametrize("preset", NEW, ids=NEW)
def test_suggestion_names_the_preset_for_an_export_read_without_it(preset):
    folder, name, table, _ = FIXTURES[preset]
    text = suggestion(EXPORTS / folder / name)
    assert text is not None and f"add `--mapping {preset}` (table `{table}`)" in text


# ------------------------------------------------------------------------- Universal Analytics channels
def test_ua_channels_by_day():
    df = _table("ua")
    assert len(df) == 21  # 3 channels x 7 days: the totals row and the Day Index block are not data
    assert sorted(df["date"].dt.date.unique()) == [dt.date(2018, 1, d) for d in range(1, 8)]
    # Sessions "1,204" + "1,311" + "1,450" + "1,402" + "1,296" + 752 + 701 = 8116 (thousands separators)
    assert _sums(df, "channel", "sessions") == {"Organic Search": 8116, "Direct": 2888, "Referral": 579}
    assert _sums(df, "channel", "users") == {"Organic Search": 6852, "Direct": 2550, "Referral": 526}
    assert _sums(df, "channel", "new_users") == {"Organic Search": 5552, "Direct": 1963, "Referral": 360}
    # engaged = round(sessions x (1 - bounce)), Referral: 97 x 0.6186 = 60.0, 101 x 0.6238 = 63.0,
    # 104 x 0.6346 = 66.0, 99 x 0.6162 = 61.0, 93 x 0.6022 = 56.0, 44 x 0.5909 = 26.0, 41 x 0.5854 = 24.0
    assert _sums(df, "channel", "engaged_sessions") == {"Organic Search": 4364, "Direct": 1363, "Referral": 356}
    first = df[(df["channel"] == "Organic Search") & (df["date"] == "2018-01-01")].iloc[0]
    # 1,204 sessions, bounce 45.67%: round(1204 x 0.5433) = round(654.13) = 654; 1204 x 2:34 (154 s)
    assert (first["engaged_sessions"], first["session_duration_s"]) == (654, 1204 * 154)
    # Referral: 97x192 + 101x200 + 104x185 + 99x195 + 93x182 + 44x160 + 41x153 seconds
    assert _sums(df, "channel", "session_duration_s")["Referral"] == 107608
    assert df["device"].isna().all() and df["pageviews"].isna().all()


def test_ua_declares_its_banner_period():
    src = DataSource.open(_folder("ua"), mapping="ua", tables=["web_sessions"])
    assert src.declared == {"web_sessions": (dt.date(2018, 1, 1), dt.date(2018, 1, 7))}


def test_ua_channels_without_the_date_dimension_is_refused_naming_date():
    """The report as first shown (channels over the whole range) cannot be cut into days."""
    with pytest.raises(SchemaError, match=r"column `date`: missing; .*mapped from export column 'Date'"):
        DataSource.open(EXPORTS / "ua", mapping="ua", tables=["web_sessions"])


@pytest.mark.parametrize(
    ("sessions", "bounce", "duration", "engaged", "seconds"),
    [
        ('"15.678"', '"45,67 %"', "00:02:34", 8518, 15678 * 154),  # German UI: 15678 x 0.5433 = 8517.86
        ('"1,204"', "100.00%", "01:00:00", 0, 1204 * 3600),
        ("7", "0.00%", "00:00:00", 7, 0),
    ],
    ids=["german-ui", "all-bounced", "no-bounce"],
)
def test_ua_derived_counts_by_hand(tmp_path, sessions, bounce, duration, engaged, seconds):
    banner = "# ----\n# Site\n# Channels\n# 20180101-20180101\n# ----\n\n"
    head = "Default Channel Grouping,Date,Users,New Users,Sessions,Bounce Rate,Avg. Session Duration\n"
    (tmp_path / "Analytics Site Channels 20180101-20180101.csv").write_text(
        f"{banner}{head}Direct,20180101,5,3,{sessions},{bounce},{duration}\n"
    )
    row = DataSource.open(tmp_path, mapping="ua", tables=["web_sessions"]).table("web_sessions").execute().iloc[0]
    assert (row["engaged_sessions"], row["session_duration_s"]) == (engaged, seconds)


# ----------------------------------------------------------------------------------- conversion paths
def test_ga4_conversion_paths():
    df = _table("ga4-paths").set_index("path")
    # 48 + 31 + 22 + 19 + 9 + 8 + 6 + 5 + 4 + 3 + 3 + 2 key events
    assert len(df) == 12 and df["conversions"].sum() == 160
    assert df["value"].sum() == 55750  # 14400 + 9300 + 8800 + ... + 600
    assert df.loc["Paid Social > Paid Search > Direct > Direct", ["conversions", "value"]].tolist() == [3, 1500]
    assert df["nulls"].isna().all()  # converting paths only: Markov must refuse or say converters-only


def test_ua_top_conversion_paths():
    df = _table("ua-paths").set_index("path")
    # the totals row (,"2,957","$99,140.00") is not a path
    assert len(df) == 10 and df["conversions"].sum() == 2957 and df["value"].sum() == 99140
    assert df.loc["Organic Search", ["conversions", "value"]].tolist() == [1204, 36120]  # "1,204", "$36,120.00"
    assert df.loc["Organic Search > Organic Search > Direct", "conversions"] == 97
    assert df["nulls"].isna().all()


@pytest.mark.parametrize(
    ("preset", "period"),
    [
        ("ga4-paths", (dt.date(2025, 1, 1), dt.date(2025, 3, 31))),
        ("ua-paths", (dt.date(2018, 1, 1), dt.date(2018, 3, 31))),
    ],
    ids=["ga4", "ua"],
)
def test_paths_cover_the_period_their_banner_declares(preset, period):
    src = DataSource.open(_folder(preset), mapping=preset, tables=["paths"])
    assert src.declared == {"paths": period}
    cov = src.coverage.tables["paths"]
    assert (cov.first_date, cov.last_date, cov.kind, cov.declared) == (*period, "declared", True)


def test_ga4_paths_as_a_bracketed_list_and_repeated_steps(tmp_path):
    (tmp_path / "Attribution_paths.csv").write_text(
        "# Attribution paths\n#\n# Start date: 20250401\n# End date: 20250630\n"
        "Primary channel group path,Conversions,Revenue,Days to conversion,Touchpoints to conversion\n"
        '"[""Organic Search"",""Direct""]",5,500,2,2\n'
        "Direct × 2 > Email,3,300,1,3\n"
    )
    df = DataSource.open(tmp_path, mapping="ga4-paths", tables=["paths"]).table("paths").execute()
    assert df["path"].tolist() == ["Organic Search > Direct", "Direct > Direct > Email"]
    assert df["conversions"].tolist() == [5, 3] and df["value"].tolist() == [500, 300]


def test_ua_paths_repeated_steps(tmp_path):
    (tmp_path / "Analytics Site Top Conversion Paths 20180401-20180630.csv").write_text(
        "# ----\n# Site\n# Top Conversion Paths\n# 20180401-20180630\n# ----\n\n"
        "MCF Channel Grouping Path,Conversions,Conversion Value\n"
        'Direct × 2 > Email,"1,003","$2,006.00"\n'
    )
    df = DataSource.open(tmp_path, mapping="ua-paths", tables=["paths"]).table("paths").execute()
    assert df[["path", "conversions", "value"]].values.tolist() == [["Direct > Direct > Email", 1003, 2006]]


# ------------------------------------------------------------------------------------------- spend
@pytest.mark.parametrize(
    ("preset", "channel", "by_campaign", "rows"),
    [
        # Brand: 1,034.50 + 987.25 + 1,102.80 + 1,056.10 + 998.40 + 612.35 + 588.90 + 1,045.60 + 1,011.15
        # + 1,066.05; Competitor: 120.00 + 134.55 + 141.20 + 0.00 + 129.80; the three Total: rows dropped
        (
            "google-ads",
            "Paid Search",
            {"Brand - Search": 9503.10, "Generic - Demo Request": 3811.00, "Competitor - Search": 525.55},
            25,
        ),
        # Lookalike: 84.12 + 91.40 + 88.75 + 95.02 + 90.18 + 61.33 + 58.90 + 93.47 + 89.64 + 92.81;
        # the summary row (no campaign name, 1149.82) dropped
        (
            "meta-ads",
            "Paid Social",
            {"Q1 Demand Gen - Lookalike": 845.62, "Q1 Retargeting - Site Visitors": 304.20},
            20,
        ),
        # ABM: 312.40 + 298.75 + 1,021.75 + 305.10 + 287.60 + 140.20 + 133.95 + 310.85 + 301.40 + 296.30
        (
            "linkedin-ads",
            "Paid Social",
            {"ABM - Finance Leaders": 3408.30, "Thought Leadership - CFO Guide": 1350.60},
            20,
        ),
    ],
    ids=["google-ads", "meta-ads", "linkedin-ads"],
)
def test_ad_platform_spend(preset, channel, by_campaign, rows):
    df = _table(preset)
    assert len(df) == rows
    assert _sums(df, "campaign", "amount") == by_campaign
    assert set(df["channel"]) == {channel} and set(df["cost_type"]) == {"media"} and set(df["currency"]) == {"USD"}
    assert (df["date"].min().date(), df["date"].max().date()) == (dt.date(2025, 1, 1), dt.date(2025, 1, 10))


def test_google_ads_without_the_day_segment_is_refused_naming_date(tmp_path):
    (tmp_path / "Campaign report.csv").write_text(
        'Campaign report\n"January 1, 2025 - January 31, 2025"\nCampaign,Currency code,Cost\n'
        'Brand,USD,"1,234.00"\nTotal: Account,USD,"1,234.00"\n'
    )
    with pytest.raises(SchemaError, match=r"column `date`: missing; .*mapped from export column 'Day'"):
        DataSource.open(tmp_path, mapping="google-ads", tables=["spend"])


def test_linkedin_reads_us_dates():
    df = _table("linkedin-ads")
    abm = df[df["campaign"] == "ABM - Finance Leaders"].set_index("date")["amount"]
    assert abm[pd.Timestamp("2025-01-03")] == 1021.75  # "1/3/2025", "1,021.75"


def test_google_ads_excel_csv_utf16_tabs_reads_the_same(tmp_path):
    """Download > "Excel .csv" writes the same report as UTF-16 with tabs."""
    text = (_folder("google-ads") / "Campaign report.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    (tmp_path / "Campaign report.csv").write_bytes(("\r\n".join("\t".join(r) for r in rows) + "\r\n").encode("utf-16"))
    src = DataSource.open(tmp_path, mapping="google-ads", tables=["spend"])
    assert src.fetch(src.table("spend").amount.sum()) == pytest.approx(13839.65)


def test_meta_day_column_and_summary_row_last(tmp_path):
    """Ads Reporting's Day breakdown: the reporting range on every row, the day in "Day"."""
    (tmp_path / "acct-Campaigns-Jan-1-2025-Jan-2-2025.csv").write_text(
        "Reporting starts,Reporting ends,Day,Campaign name,Campaign ID,Amount spent (EUR)\n"
        "2025-01-01,2025-01-02,2025-01-01,Faja,1202,150.50\n"
        "2025-01-01,2025-01-02,2025-01-02,Faja,1202,99.5\n"
        "2025-01-01,2025-01-02,,,,250.00\n"
    )
    (tmp_path / "goals.yml").write_text("currency: EUR\n")
    df = DataSource.open(tmp_path, mapping="meta-ads", tables=["spend"]).table("spend").execute()
    assert df["date"].dt.date.tolist() == [dt.date(2025, 1, 1), dt.date(2025, 1, 2)]
    assert df["amount"].tolist() == [150.5, 99.5] and set(df["currency"]) == {"EUR"}


META_HEAD = "Reporting starts,Reporting ends,Campaign name,"


@pytest.mark.parametrize(
    ("body", "column", "found"),
    [
        # no time breakdown: a row sums the whole range, which cannot be cut into months
        ('Amount spent (USD)\n2025-01-01,2025-03-31,"Promo, Q1",1234.56\n', "date", "2025-01-01..2025-03-31"),
        # "Amount spent" without a currency anywhere: not assumed to be goals.yml's
        ("Amount spent\n2025-01-01,2025-01-01,Promo,12.00\n", "currency", "(not given)"),
        # an empty amount is not 0
        ("Amount spent (USD)\n2025-01-01,2025-01-01,Promo,\n", "amount", ""),
    ],
    ids=["whole-range", "no-currency", "empty-amount"],
)
def test_meta_exports_that_cannot_be_read_right_are_refused(tmp_path, body, column, found):
    (tmp_path / "acct-Campaigns-x.csv").write_text(META_HEAD + body)
    with pytest.raises(SchemaError, match=rf"column `{column}`: 1 row") as err:
        DataSource.open(tmp_path, mapping="meta-ads", tables=["spend"])
    assert found in str(err.value)


# ------------------------------------------------------------------------------------------ CRM
def test_hubspot_deals():
    df = _table("hubspot-deals").set_index("opportunity_id")
    assert df["stage"].to_dict() == {
        "14612345601": "won",
        "14612345602": "lost",
        "14612345603": "open",
        "14612345604": "open",  # "Verbal commit", a stage of another pipeline: settled by Is Deal Closed? = false
        "14612345605": "won",
        "14612345606": "open",
        "14612345607": "won",
        "14612345608": "open",
    }
    # the first associated contact ("102;104" -> 102); no contact: sales-sourced
    assert df["lead_id"].fillna("").tolist() == ["102", "101", "104", "", "103", "102", "101", ""]
    # the primary company; a deal without one is its own account
    assert df.loc["14612345605", "account_id"] == "deal:14612345605" and df.loc["14612345601", "account_id"] == "9001"
    # an open deal's Close Date is a forecast: not a close
    assert df.loc["14612345603", "closed_at"] is pd.NaT
    assert df.loc["14612345601", "closed_at"] == pd.Timestamp("2025-02-14 16:00")
    # won: 24000 + 12500.5 + 40000
    assert df.loc[df["stage"] == "won", "amount"].sum() == 76500.5 and set(df["currency"]) == {"USD"}


@pytest.mark.parametrize(
    ("stage", "expected"),
    [("Closed Won", "won"), ("closedlost", "lost"), ("Decision maker bought-in", "open"), ("Demo done", None)],
    ids=["label", "internal-id", "open-stage", "custom-stage-refused"],
)
def test_hubspot_deal_stages_without_the_closed_flags(tmp_path, stage, expected):
    """Without Is Closed Won / Is Deal Closed? only the default pipeline's stages can be read."""
    (tmp_path / "hubspot-crm-exports-all-deals-2025-04-02.csv").write_text(
        '"Record ID","Deal Name","Deal Stage","Close Date","Amount","Create Date","Pipeline"\n'
        f'"1","A","{stage}","2025-02-14","100","2025-01-10","Sales Pipeline"\n'
    )
    if expected is None:
        with pytest.raises(SchemaError, match="column `stage`: 1 row .*found 'Demo done'.*one of open, won, lost"):
            DataSource.open(tmp_path, mapping="hubspot-deals", tables=["opportunities"])
        return
    row = DataSource.open(tmp_path, mapping="hubspot-deals", tables=["opportunities"]).table("opportunities").execute()
    assert row["stage"].tolist() == [expected]
    assert row["closed_at"].notna().tolist() == [expected != "open"]


def test_hubspot_deals_join_the_contacts_preset(tmp_path):
    """Deals' lead is the contact's Record ID, the `hubspot` preset's lead_id: both in one folder."""
    for preset in ("hubspot", "hubspot-deals"):
        shutil.copy(_folder(preset) / FIXTURES[preset][1], tmp_path)
    src = DataSource.open(tmp_path, mapping=["hubspot", "hubspot-deals"])
    opp, leads = src.table("opportunities"), src.table("leads")
    won = opp.filter(opp.stage == "won").join(leads, opp.lead_id == leads.lead_id)
    by_channel = src.fetch(won.group_by("channel").aggregate(revenue=won.amount.sum()))
    # 102 (Paid Search): Acme 24000; 101 (Organic Search): Stark 40000; 103 (Email): Hooli 12500.5
    assert dict(zip(by_channel["channel"], by_channel["revenue"], strict=True)) == {
        "Paid Search": 24000,
        "Organic Search": 40000,
        "Email": 12500.5,
    }


def test_salesforce_campaign_members():
    df = _table("salesforce-campaign-members")
    assert len(df) == 13  # the blank line, "Total" row and copyright lines are not members
    assert df["channel"].value_counts().to_dict() == {
        "Events": 6,  # Webinar x 4, Trade Show x 2
        "Email": 3,
        "Other": 2,  # Advertisement, Direct Mail
        "Referral": 1,  # Partners
        "Content Syndication": 1,  # a type of its own keeps its name
    }
    touched = dict(zip(df["lead_id"] + " " + df["campaign"], df["touched_at"], strict=True))
    assert touched["00Q5g00000Lead1 Webinar - Attribution 101"] == pd.Timestamp("2025-01-14")  # first responded
    assert touched["00Q5g00000Lead3 Webinar - Attribution 101"] == pd.Timestamp("2025-01-08")  # never responded
    assert touched["0035g00000Cnt01 Webinar - Attribution 101"] == pd.Timestamp("2025-01-14")  # a contact
    # a converted lead has both ids: the Lead ID joins the leads table
    assert "00Q5g00000Lead7 Webinar - Attribution 101" in touched


def test_salesforce_campaign_member_report_with_created_date_and_times(tmp_path):
    """The "Campaign Members" report type: the member's Created Date, with a time."""
    (tmp_path / "campaign_members.csv").write_text(
        '"Campaign Name","Campaign Type","Lead ID","Status","First Responded Date","Created Date"\n'
        '"Spring Webinar","Webinar","00Q1","Registered","","3/4/2025 2:05 PM"\n'
        '"Spring Webinar","Webinar","00Q2","Attended","3/20/2025","3/5/2025 9:00 AM"\n'
    )
    df = DataSource.open(tmp_path, mapping="salesforce-campaign-members", tables=["touchpoints"]).table("touchpoints")
    got = df.execute()
    assert got["touched_at"].tolist() == [pd.Timestamp("2025-03-04 14:05"), pd.Timestamp("2025-03-20")]
    assert got["channel"].tolist() == ["Events", "Events"]


# ------------------------------------------------------------------------------------- one currency
@pytest.mark.parametrize(
    ("preset", "column"),
    [
        ("google-ads", "currency"),
        ("meta-ads", "currency"),
        ("linkedin-ads", "currency"),
        ("hubspot-deals", "currency"),
        ("ua-paths", "value"),  # "$36,120.00": dollars, not euros
    ],
    ids=["google-ads", "meta-ads", "linkedin-ads", "hubspot-deals", "ua-paths"],
)
def test_another_currency_than_goals_is_refused(tmp_path, capsys, preset, column):
    folder = _copy(preset, tmp_path, currency="EUR")
    assert main(["validate", "--data", str(folder), "--mapping", preset]) == 2
    err = capsys.readouterr().err
    assert f"column `{column}`" in err and "EUR" in err
    assert main(["summary", "--data", str(folder), "--mapping", preset, "--quarter", FIXTURES[preset][3]]) == 2


# ------------------------------------------------------------------------------------------ the CLI
@pytest.mark.parametrize("preset", NEW, ids=NEW)
def test_cli_validate_prints_the_table_and_its_coverage(capsys, preset):
    table = FIXTURES[preset][2]
    assert main(["validate", "--data", str(_folder(preset)), "--mapping", preset]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith(table))
    span = {
        "ga4-paths": "2025-01-01 to 2025-03-31",  # the banner's period
        "ua-paths": "2018-01-01 to 2018-03-31",
        "ua": "2018-01-01 to 2018-01-07",
        "hubspot-deals": "2025-01-01 to 2025-03-28",  # events: from the month of the first deal to the last close
        "salesforce-campaign-members": "2025-01-01 to 2025-03-18",
    }.get(preset, "2025-01-01 to 2025-01-10")
    assert span in line, line


#: preset -> the numbers `kpi summary --json` must give for the fixture's quarter (hand-checked above)
SUMMARY = {
    "ua": {"visits": 11583, "users": 9928, "new_users": 7875, "organic_visits": 8116, "returning_users": 2053},
    "google-ads": {"marketing_cost": 13839.65, "sales_cost": 0.0},
    "meta-ads": {"marketing_cost": 1149.82},
    "linkedin-ads": {"marketing_cost": 4758.90},
    "hubspot-deals": {"opportunities": 8, "won_deals": 3, "won_revenue": 76500.5, "new_customers": 3},
    "ga4-paths": {},
    "ua-paths": {},
    "salesforce-campaign-members": {},
}


#: rows of each fixture's table (totals, summary and footer rows are not rows)
ROWS = {
    "ua": 21,
    "google-ads": 25,
    "meta-ads": 20,
    "linkedin-ads": 20,
    "hubspot-deals": 8,
    "ga4-paths": 12,
    "ua-paths": 10,
    "salesforce-campaign-members": 13,
}


@pytest.mark.parametrize("preset", NEW, ids=NEW)
def test_cli_summary_json(capsys, preset):
    folder, _, table, quarter = FIXTURES[preset]
    assert main(["summary", "--data", str(EXPORTS / folder), "--mapping", preset, "--quarter", quarter, "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["quarter"] == quarter and m["tables"] == [table]
    for key, value in SUMMARY[preset].items():
        assert m[key] == pytest.approx(value), key
    cov = m["coverage"][table]
    assert cov["status_in_quarter"] == "full" and cov["rows"] == ROWS[preset]
    # what the export does not hold is n/a with its reason, never 0
    if table != "spend":
        assert m["marketing_cost"] is None and "needs spend" in m["undefined"]["marketing_cost"]
    if table != "web_sessions":
        assert m["visits"] is None


def test_cli_summary_ua_bounce_and_duration(capsys):
    assert main(["summary", "--data", str(_folder("ua")), "--mapping", "ua", "--quarter", "2018Q1", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    # bounce = 1 - engaged / sessions = 1 - (4364 + 1363 + 356) / 11583
    assert m["bounce_rate"] == pytest.approx(1 - 6083 / 11583)
    # duration per session = (1182315 + 324336 + 107608) / 11583 seconds
    assert m["avg_session_duration_s"] == pytest.approx((1182315 + 324336 + 107608) / 11583)
