"""Column mappings and the bundled presets, each on a fixture of that export's exact shape."""

from pathlib import Path

import pandas as pd
import pytest

from kpi_helpers.exceptions import MappingError, SchemaError
from kpi_helpers.mapping import load_mapping
from kpi_helpers.source import DataSource

EXPORTS = Path(__file__).parent / "fixtures" / "exports"


def _read(folder: str, preset: str, table: str) -> pd.DataFrame:
    src = DataSource.open(EXPORTS / folder, mapping=preset, tables=[table])
    return src.fetch(src.table(table))


def test_ga4_traffic_acquisition():
    df = _read("ga4", "ga4", "web_sessions")
    assert len(df) == 5  # the `#` comment lines above the header are skipped
    first = df.iloc[0]
    assert str(first["date"])[:10] == "2025-01-01" and first["channel"] == "Organic Search"
    assert (first["sessions"], first["users"], first["new_users"], first["engaged_sessions"]) == (150, 120, 85, 90)
    assert first["session_duration_s"] == pytest.approx(62.5 * 150)
    assert "(not set)" in set(df["channel"])  # "Unassigned" renamed


def test_hubspot_contacts():
    df = _read("hubspot", "hubspot", "leads").set_index("lead_id")
    assert list(df.index) == ["101", "102", "103", "104"]  # the subscriber is not a lead
    assert df.loc["103", "channel"] == "Email" and df.loc["104", "channel"] == "Events"
    assert str(df.loc["102", "sql_at"]) == "2025-01-15 16:45:00"
    assert pd.isna(df.loc["101", "sql_at"])
    assert df.loc["101", "landing_page"] == "/blog/attribution-guide"
    assert df.loc["102", "landing_page"] == "/demo"
    # personal data is never read
    assert not {"Email", "First Name", "Last Name", "Phone Number"} & set(df.columns)
    assert "ada@example.com" not in df.to_string()


def test_salesforce_opportunities():
    df = _read("salesforce", "salesforce", "opportunities").set_index("opportunity_id")
    assert len(df) == 4  # footer lines dropped
    assert df["stage"].tolist() == ["won", "lost", "open", "won"]
    assert df["amount"].tolist() == [24000.0, 12500.0, 8000.0, 5000.0]
    assert str(df.iloc[0]["created_at"])[:10] == "2025-01-06" and str(df.iloc[0]["closed_at"])[:10] == "2025-02-15"
    assert pd.isna(df.iloc[2]["closed_at"])  # open deal: Close Date is only expected
    assert pd.isna(df.iloc[1]["lead_id"]) and df.iloc[0]["lead_id"] == "00Q5g00000Lead1"


def test_salesforce_without_lead_column(tmp_path):
    src = (EXPORTS / "salesforce" / "report1743600000000.csv").read_text()
    lines = src.splitlines()
    keep = [
        ",".join(line.split(",")[:-1]) if line.startswith('"') and line.count(",") >= 15 else line for line in lines
    ]
    (tmp_path / "report1.csv").write_text("\n".join(keep) + "\n")
    df = DataSource.open(tmp_path, mapping="salesforce", tables=["opportunities"])
    out = df.fetch(df.table("opportunities"))
    assert out["lead_id"].isna().all() and len(out) == 4


def test_mapping_file_renames_columns_and_values(tmp_path):
    (tmp_path / "spend_export.csv").write_text("Day;Source;Kind;Cost\n2025-01-01;AdWords;Media;10\n")
    (tmp_path / "map.yml").write_text(
        "tables:\n  spend:\n    file: spend_export.csv\n    read: {delim: ';'}\n"
        "    columns: {date: Day, channel: Source, cost_type: Kind, amount: Cost}\n"
        "    values: {channel: {AdWords: Paid Search}}\n"
    )
    src = DataSource.open(tmp_path, mapping=tmp_path / "map.yml", tables=["spend"])
    row = src.fetch(src.table("spend")).iloc[0]
    assert (row["channel"], row["cost_type"], row["amount"]) == ("Paid Search", "media", 10.0)


def test_mapped_column_missing_is_named(tmp_path):
    (tmp_path / "traffic_acquisition.csv").write_text("Date,Sessions\n20250101,5\n")
    with pytest.raises(SchemaError, match="column `channel`.*Session primary channel group"):
        DataSource.open(tmp_path, mapping="ga4", tables=["web_sessions"])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("tables:\n  sessions: {}\n", "unknown table `sessions`"),
        ("tables:\n  leads:\n    columns: {email: Email}\n", "not contract columns"),
        ("tables:\n  leads:\n    rename: {}\n", "unknown key"),
        ("leads: {}\n", "top-level `tables:`"),
    ],
    ids=["table", "column", "key", "top-level"],
)
def test_bad_mapping_files(tmp_path, text, match):
    p = tmp_path / "m.yml"
    p.write_text(text)
    with pytest.raises(MappingError, match=match):
        load_mapping(p)


def test_unknown_preset():
    with pytest.raises(MappingError, match="neither a file nor a preset"):
        load_mapping("marketo")


# ------------------------------------------------------------------ the typed, versioned schema


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("version: 2\ntables: {}\n", r"`m.yml`, `version`: Input should be 1"),
        (
            "tables:\n  spend:\n    numbers: {decimal: ';'}\n",
            r"`m.yml`, table `spend`, `numbers.decimal`: Input should be",
        ),
        (
            "tables:\n  spend:\n    numbers: {decimal: ',', thousands: ','}\n",
            r"`numbers`: `decimal` and `thousands` must differ",
        ),
        (
            "tables:\n  spend:\n    file: a.csv\n    inputs: {a: a.csv}\n    query: SELECT * FROM a\n",
            "exclude each other",
        ),
        ("tables:\n  spend:\n    query: SELECT 1\n", "`query` needs `inputs`"),
        (
            "tables:\n  spend:\n    period: {start: 2025-02-01, end: 2025-01-01}\n",
            r"`period`: `end` \(2025-01-01\) is before",
        ),
        ("tables:\n  spend:\n    encoding: klingon\n", r"`encoding`: unknown encoding 'klingon'"),
        ("tables:\n  spend:\n    formats: [a]\n", r"table `spend`, `formats`: Input should be a valid dictionary"),
    ],
    ids=[
        "version",
        "decimal",
        "same-separators",
        "file-and-query",
        "query-without-inputs",
        "period",
        "encoding",
        "type",
    ],
)
def test_schema_errors_name_file_table_and_key(tmp_path, text, match):
    p = tmp_path / "m.yml"
    p.write_text(text)
    with pytest.raises(MappingError, match=match):
        load_mapping(p)


def test_simple_rename_form_and_version_default(tmp_path):
    p = tmp_path / "m.yml"
    p.write_text("tables:\n  revenue:\n    columns: {month: Monat, revenue: [Umsatz, Revenue]}\n")
    m = load_mapping(p)["revenue"]
    assert m.columns == {"month": ["Monat"], "revenue": ["Umsatz", "Revenue"]}
    assert m.where("columns") == "`m.yml`, table `revenue`, `columns`"


def test_every_preset_parses_and_is_recognised_by_its_fixture_header():
    import csv

    from kpi_helpers.mapping import PRESETS, recognise

    headers = {
        "ga4": ("ga4/traffic_acquisition.csv", 8),
        "hubspot": ("hubspot/hubspot-crm-exports-all-contacts-2025-04-02.csv", 0),
        "salesforce": ("salesforce/report1743600000000.csv", 0),
    }
    assert set(headers) <= set(PRESETS)
    for name, (path, skip) in headers.items():
        line = (EXPORTS / path).read_text(encoding="utf-8").splitlines()[skip]
        header = next(csv.reader([line]))
        assert recognise(header)[0] == name
    assert recognise(["lead_id", "created_at", "channel"]) is None


def test_one_export_read_as_two_tables(tmp_path):
    (tmp_path / "events.csv").write_text(
        "Contact,When,Source\nC1,2025-01-02 09:00:00,Email\nC1,2025-01-03 09:00:00,Direct\n"
    )
    (tmp_path / "m.yml").write_text(
        "tables:\n"
        "  leads:\n    file: events.csv\n    columns: {lead_id: Contact, created_at: When, channel: Source}\n"
        "    defaults: {campaign: null, mql_at: null, sql_at: null}\n    filter: \"Source = 'Email'\"\n"
        "  touchpoints:\n    file: events.csv\n    columns: {lead_id: Contact, touched_at: When, channel: Source}\n"
    )
    src = DataSource.open(tmp_path, mapping=tmp_path / "m.yml", tables=["leads", "touchpoints"])
    assert src.fetch(src.table("leads").count()) == 1 and src.fetch(src.table("touchpoints").count()) == 2


def test_star_value_leaves_empty_cells_empty(tmp_path):
    """``"*"`` renames every other value, never an empty cell: an empty stage is reported, not made 'open'."""
    (tmp_path / "opportunities.csv").write_text(
        "opportunity_id,lead_id,account_id,created_at,closed_at,stage,amount\nO1,,A1,2025-01-02,,,100\n"
    )
    (tmp_path / "m.yml").write_text("tables:\n  opportunities:\n    values: {stage: {'*': open}}\n")
    with pytest.raises(SchemaError, match="column `stage`: 1 row"):
        DataSource.open(tmp_path, mapping=tmp_path / "m.yml", tables=["opportunities"])


def test_salesforce_eur_amounts_are_not_read_as_cents():
    """Issue 10 item 1: 'EUR 12.500,00' was read as 12.5."""
    df = _read("salesforce_eur", "salesforce", "opportunities")
    assert df["amount"].tolist() == [12500.0, 4250.5]
