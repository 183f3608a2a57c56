"""Reading exports right or refusing them: one fixture per case, in the exact shape of the real export."""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import ibis
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kpi_helpers.exceptions import SchemaError
from kpi_helpers.exports import (
    Coverage,
    ExportReader,
    RawTable,
    canonical_number_sql,
    currency_problems,
    date_format_hint,
    find_files,
    number_format,
)
from kpi_helpers.mapping import parse_mapping
from kpi_helpers.schema import CONTRACT
from kpi_helpers.source import DataSource

EXPORTS = Path(__file__).parent / "fixtures" / "exports"
PRESETS = Path(__file__).parents[1] / "kpi_helpers" / "presets"
LEADS = "lead_id,created_at,channel,campaign,mql_at,sql_at\n"


def _read(folder: Path, table: str, mapping: str | None = None) -> RawTable:
    """``table`` of ``folder`` as read (before the contract's checks), with its rows in ``.rows``."""
    spec = parse_mapping(yaml.safe_load(mapping), "m.yml")[table] if mapping else None
    with ExportReader(ibis.duckdb.connect(), folder) as reader:
        raw = reader.read(CONTRACT[table], spec)
        raw.rows = None if raw.relation is None else raw.relation.execute()  # type: ignore[attr-defined]
    return raw


def _messages(raw: RawTable) -> str:
    return "\n".join(str(p) for p in raw.problems)


def _open_error(folder: Path, table: str, mapping: Path | str | None = None) -> str:
    with pytest.raises(SchemaError) as err:
        DataSource.open(folder, mapping=mapping, tables=[table])
    return str(err.value)


# ---------------------------------------------------------------------------------------------- files
def test_glob_unions_monthly_files_and_names_the_file_of_each_row():
    raw = _read(EXPORTS / "monthly", "spend", "tables:\n  spend:\n    file: 'spend_*.csv'\n")
    assert [p.name for p in raw.files] == ["spend_2025-01.csv", "spend_2025-02.csv"]
    assert raw.label == "spend_*.csv"
    assert list(zip(raw.rows["__file"], raw.rows["__row"], strict=True)) == [
        ("spend_2025-01.csv", 1),
        ("spend_2025-01.csv", 2),
        ("spend_2025-02.csv", 1),
        ("spend_2025-02.csv", 2),
    ]
    # the validator's rows then name the file: the negative amount is the second row of February
    text = _open_error(EXPORTS / "monthly", "spend", _mapping_file(EXPORTS / "monthly", "spend", "spend_*.csv"))
    assert "`spend_*.csv`, column `amount`: 1 row (row spend_2025-02.csv:2; found '-5')" in text


def _mapping_file(folder: Path, table: str, pattern: str) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "m.yml"
    path.write_text(f"tables:\n  {table}:\n    file: '{pattern}'\n", encoding="utf-8")
    return path


def test_table_in_two_formats_is_refused_naming_both(tmp_path):
    (tmp_path / "leads.csv").write_text(LEADS + "L1,2025-01-02,Email,,,\n")
    (tmp_path / "leads.parquet").write_bytes(b"PAR1")
    found = find_files(tmp_path, "leads")
    assert found.files == ()
    assert "two exports of table `leads`: `leads.csv` and `leads.parquet`; keep one" in str(found.problem)
    assert "`leads.csv` and `leads.parquet`" in _open_error(tmp_path, "leads")


@pytest.mark.parametrize(
    ("name", "data"),
    [("leads.xlsx", b"PK\x03\x04 workbook"), ("leads.xls", b"\xd0\xcf\x11\xe0 workbook"), ("leads.csv", b"PK\x03\x04")],
    ids=["xlsx", "xls", "xlsx-named-csv"],
)
def test_excel_workbook_is_named_with_how_to_export_csv(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    raw = _read(tmp_path, "leads")
    text = _messages(raw)
    assert f"found an Excel workbook `{name}`" in text and "CSV UTF-8" in text


def test_absent_table_is_absent_not_a_problem(tmp_path):
    raw = _read(tmp_path, "touchpoints")
    assert raw.absent and raw.relation is None and raw.problems == []


def test_explicit_pattern_matching_nothing_is_a_problem(tmp_path):
    raw = _read(tmp_path, "spend", "tables:\n  spend:\n    file: 'adwords_*.csv'\n")
    assert not raw.absent
    assert "no file in" in _messages(raw) and "matches `adwords_*.csv`" in _messages(raw)


def test_csv_gz_reads(tmp_path):
    with gzip.open(tmp_path / "leads.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write(LEADS + "L1,2025-01-02 09:00:00,Email,news,,\n")
    raw = _read(tmp_path, "leads")
    assert raw.problems == [] and raw.rows["lead_id"].tolist() == ["L1"]


# ------------------------------------------------------------------------------------------ encodings
def test_cp1250_is_refused_naming_line_byte_and_fix():
    raw = _read(EXPORTS / "encodings" / "cp1250", "leads")
    text = _messages(raw)
    assert "`leads.csv`: not UTF-8 text: line 2 has byte 0xF8" in text
    assert "re-export it as UTF-8" in text and "`encoding: cp1252`" in text and "`cp1250`" in text
    # and only that: no "missing" file, no cascading problems
    assert len(raw.problems) == 1 and "missing" not in text


def test_declared_encoding_reads_right():
    raw = _read(EXPORTS / "encodings" / "cp1250", "leads", "tables:\n  leads:\n    encoding: cp1250\n")
    assert raw.problems == [] and raw.rows["campaign"].tolist() == ["Dvořák Newsletter", "Müller Brand"]


@pytest.mark.parametrize("case", ["utf16", "bom"], ids=["utf16-bom", "utf8-bom"])
def test_utf16_and_utf8_with_bom_read_right(case):
    raw = _read(EXPORTS / "encodings" / case, "leads")
    assert raw.problems == []
    assert raw.rows["lead_id"].tolist() == ["L1", "L2"] and raw.rows["campaign"][0] == "Dvořák Newsletter"


def test_utf16_without_bom_is_refused_naming_the_encoding(tmp_path):
    (tmp_path / "leads.csv").write_bytes((LEADS + "L1,2025-01-02,Email,,,\n").encode("utf-16-le"))
    assert "UTF-16 text without a byte-order mark" in _messages(_read(tmp_path, "leads"))


# --------------------------------------------------------------------------------------- dialect, shape
def test_public_crm_funnel_export_bom_semicolon_crlf_and_dotted_dates():
    folder = EXPORTS / "crm_funnel"
    mapping = (
        "tables:\n  leads:\n    file: olist_marketing_qualified_leads_dataset.csv\n"
        "    columns: {lead_id: mql_id, created_at: first_contact_date, channel: origin}\n"
        "    defaults: {campaign: null, mql_at: null, sql_at: null}\n"
    )
    raw = _read(folder, "leads", mapping)
    assert raw.problems == [] and len(raw.rows) == 3
    # without `formats:` the dates are left as found; validation then shows the hint
    assert raw.rows["created_at"].tolist()[0] == "2018.02.01 10:12"
    assert date_format_hint("created_at", raw.rows["created_at"].tolist()) == (
        "dates like '2018.02.01 10:12': add `formats: {created_at: \"%Y.%m.%d %H:%M\"}` to the mapping"
    )
    fixed = _read(folder, "leads", mapping + "    formats: {created_at: '%Y.%m.%d %H:%M'}\n")
    assert fixed.rows["created_at"].tolist()[0] == "2018-02-01 10:12:00"


def test_mixed_line_endings_read_right():
    raw = _read(EXPORTS / "shape" / "mixed_eol", "leads")
    assert raw.problems == [] and raw.rows["lead_id"].tolist() == ["L1", "L2", "L3"]
    assert raw.rows["campaign"].tolist()[:2] == ["news", "brand"]


def test_a_2mb_field_reads_right(tmp_path):
    (tmp_path / "leads.csv").write_text(LEADS + f"L1,2025-01-02,Email,{'x' * 2_200_000},,\nL2,2025-01-03,Email,b,,\n")
    raw = _read(tmp_path, "leads")
    assert raw.problems == [] and raw.rows["lead_id"].tolist() == ["L1", "L2"]
    assert len(raw.rows["campaign"][0]) == 2_200_000


def test_ragged_row_says_what_was_found_and_keeps_duckdbs_hint():
    text = _messages(_read(EXPORTS / "shape" / "ragged", "web_sessions"))
    assert "`web_sessions.csv`: line 3 (row 2) has 5 fields, the header has 12" in text
    assert "delimiter ','" in text and "null_padding" in text  # DuckDB's own hint, whole
    assert "columns missing" not in text


def test_short_last_row_is_named():
    text = _messages(_read(EXPORTS / "shape" / "short_last", "leads"))
    assert "line 3 (row 2) has 2 fields, the header has 6" in text


def test_duplicate_column_names_are_refused_naming_both_positions():
    text = _messages(_read(EXPORTS / "shape" / "duplicate", "spend"))
    assert "the header names a column twice: `amount` at columns 5 and 6" in text


def test_semicolon_file_with_crlf(tmp_path):
    (tmp_path / "leads.csv").write_bytes(
        b"lead_id;created_at;channel;campaign;mql_at;sql_at\r\nL1;2025-01-02;Email;a,b;;\r\n"
    )
    raw = _read(tmp_path, "leads")
    assert raw.problems == [] and raw.rows["campaign"].tolist() == ["a,b"]


# ---------------------------------------------------------------------------------- banners, footers
UA_MAPPING = """
tables:
  web_sessions:
    file: "Analytics*Channels*.csv"
    columns: {channel: Default Channel Grouping, sessions: Sessions, users: Users, new_users: New Users}
    defaults: {date: "2018-01-01", engaged_sessions: 0, session_duration_s: 0}
"""


def test_universal_analytics_banner_totals_and_day_index_footer():
    raw = _read(EXPORTS / "ua", "web_sessions", UA_MAPPING)
    assert raw.problems == []
    assert raw.period == Coverage(dt.date(2018, 1, 1), dt.date(2018, 1, 31), "banner")
    # three channels: the totals row (empty channel) and the "Day Index" block are not data
    assert raw.rows["channel"].tolist() == ["Organic Search", "Direct", "Referral"]
    assert raw.rows["sessions"].tolist() == ["15678", "5010", "1204"]  # "15,678" read with its thousands separator
    assert any("totals row" in d for d in raw.dropped) and any("footer" in d for d in raw.dropped)


def test_ga4_banner_gives_the_period():
    raw = _read(EXPORTS / "ga4", "web_sessions", (PRESETS / "ga4_traffic_acquisition.yml").read_text())
    assert raw.period == Coverage(dt.date(2025, 1, 1), dt.date(2025, 1, 3), "banner")


def test_declared_period_wins(tmp_path):
    (tmp_path / "leads.csv").write_text(LEADS)
    raw = _read(tmp_path, "leads", "tables:\n  leads:\n    period: {start: 2025-01-01, end: 2025-03-31}\n")
    assert raw.period == Coverage(dt.date(2025, 1, 1), dt.date(2025, 3, 31), "mapping")
    assert len(raw.rows) == 0


def test_salesforce_footer_is_dropped_and_eur_amounts_read_right():
    preset = (PRESETS / "salesforce_opportunities.yml").read_text()
    raw = _read(EXPORTS / "salesforce_eur", "opportunities", preset)
    assert raw.problems == [] and raw.rows["amount"].tolist() == ["12500.00", "4250.50"]
    assert raw.currencies == {"amount": ("EUR",)}
    src = DataSource.open(EXPORTS / "salesforce_eur", mapping="salesforce", tables=["opportunities"])
    assert src.fetch(src.table("opportunities").amount.sum()) == 16750.5


def test_header_not_found_shows_the_columns_found_and_the_first_lines(tmp_path):
    (tmp_path / "leads.csv").write_text("Report: leads\nContact,Created,Source\nC1,2025-01-02,Email\n")
    text = _messages(_read(tmp_path, "leads"))
    assert "the header read has 3 columns: `Contact`, `Created`, `Source`" in text
    assert "the file begins: 'Report: leads' / 'Contact,Created,Source'" in text


def test_a_known_export_without_its_mapping_names_the_preset(tmp_path):
    shutil.copy(EXPORTS / "ga4" / "traffic_acquisition.csv", tmp_path / "web_sessions.csv")
    text = _messages(_read(tmp_path, "web_sessions"))
    assert "add `--mapping ga4`" in text


# ------------------------------------------------------------------------------------------- numbers
EU = (
    "tables:\n  spend:\n"
    "    columns: {date: Datum, channel: Kanal, campaign: Kampagne, cost_type: Kostenart, amount: Betrag}\n"
)


def test_european_whole_amounts_are_refused_as_ambiguous_with_the_fix():
    """4.340 must never read as 4.34: every amount has 3 digits after one '.', so the file cannot say."""
    text = _open_error(EXPORTS / "eu_spend", "spend", _yaml(EXPORTS, EU))
    assert "column `amount`: ambiguous numbers" in text and "'4.340'" in text
    assert 'numbers: {decimal: ",", thousands: "."}' in text


def test_declared_number_format_reads_whole_amounts():
    raw = _read(EXPORTS / "eu_spend", "spend", EU + "    numbers: {decimal: ',', thousands: '.'}\n")
    assert raw.problems == [] and raw.rows["amount"].tolist() == ["4340", "1250", "980"]


def test_one_value_with_both_separators_settles_the_column():
    raw = _read(EXPORTS / "eu_spend_settled", "spend", EU)
    assert raw.problems == [] and raw.rows["amount"].tolist() == ["4340", "12345.67", "980"]


def _yaml(folder: Path, text: str) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "m.yml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("cells", "kind", "expected"),
    [
        (["1.234", "15"], "count", ["1234", "15"]),  # a count has no decimals: '.' groups thousands
        (["1,234", "15"], "count", ["1234", "15"]),
        (["$1,234.50", "$980.00"], "amount", ["1234.50", "980.00"]),
        (["1 234,56 €", "12,5"], "amount", ["1234.56", "12.5"]),
        (["1'234.50", "7.25"], "amount", ["1234.50", "7.25"]),
        (["USD 24,000.00", "USD 5,000.00"], "amount", ["24000.00", "5000.00"]),
        (["1.234.567", "12,5"], "amount", ["1234567", "12.5"]),
        (["NaN", "inf", "Infinity", "12"], "amount", ["NaN", "inf", "Infinity", "12"]),
        (["0.500", "1.5"], "amount", ["0.500", "1.5"]),  # a zero integer part cannot group thousands
    ],
    ids=[
        "count-dot",
        "count-comma",
        "dollar",
        "euro-spaced",
        "swiss",
        "usd-code",
        "dots-then-comma",
        "nan-kept",
        "zero",
    ],
)
def test_numbers_by_hand(tmp_path, cells, kind, expected):
    table, column = ("web_sessions", "sessions") if kind == "count" else ("spend", "amount")
    cols = CONTRACT[table].column_names
    rows = []
    for i, cell in enumerate(cells):
        row = {c: "x" for c in cols} | {"date": f"2025-01-0{i + 1}", column: cell}
        rows.append(";".join(row[c] for c in cols))
    (tmp_path / f"{table}.csv").write_text(";".join(cols) + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    raw = _read(tmp_path, table)
    assert [p for p in raw.problems if p.column == column] == []
    assert raw.rows[column].tolist() == expected


@pytest.mark.parametrize(
    ("cells", "words"),
    [(["1.250,5", "1,250.5"], "mixed number formats"), (["4,340", "1,250"], "ambiguous numbers")],
    ids=["mixed", "ambiguous-comma"],
)
def test_inconsistent_or_ambiguous_amounts_are_refused(tmp_path, cells, words):
    lines = "".join(f"2025-01-0{i + 1}|Email|x|media|{c}\n" for i, c in enumerate(cells))
    (tmp_path / "spend.csv").write_text("date|channel|campaign|cost_type|amount\n" + lines)
    assert words in _messages(_read(tmp_path, "spend"))


def test_two_columns_of_one_file_with_two_conventions_are_refused(tmp_path):
    (tmp_path / "web_sessions.csv").write_text(
        "date,channel,sessions,users,new_users,engaged_sessions,session_duration_s\n"
        '2025-01-01,Email,"1,5",3,2,1,"1,234.5"\n'
    )
    assert "two number formats in one export" in _messages(_read(tmp_path, "web_sessions"))


def test_a_count_column_settles_the_amounts_of_the_same_file(tmp_path):
    """1.234 visits can only be thousands, so in this file '.' groups thousands and 4.340 is 4340."""
    (tmp_path / "content.csv").write_text("date;asset;asset_type;views\n2025-01-01;a;blog;1.234\n")
    raw = _read(tmp_path, "content")
    assert raw.rows["views"].tolist() == ["1234"]


@pytest.mark.parametrize(
    ("counts", "kind", "decimal", "refused"),
    [
        ({"dec_comma": 1, "amb_dot": 3}, "amount", ",", ""),
        ({"dec_dot": 2, "amb_comma": 1}, "amount", ".", ""),
        ({"thou_dot": 1}, "amount", ",", ""),
        ({"amb_dot": 3}, "amount", None, "ambiguous"),
        ({"amb_dot": 3}, "count", ",", ""),
        ({"dec_dot": 1, "dec_comma": 1}, "amount", None, "mixed"),
        ({}, "amount", None, ""),
    ],
    ids=["both-seps", "dot-decimal", "dots-twice", "ambiguous", "count", "mixed", "plain"],
)
def test_number_format_rules(counts, kind, decimal, refused):
    verdict = number_format(counts, kind=kind)
    assert verdict.decimal == decimal and verdict.refusal.startswith(refused)


@settings(max_examples=60, deadline=None)
@given(
    value=st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False),
    locale=st.sampled_from([(".", ","), (",", "."), (",", " "), (".", "'"), (".", "")]),
)
def test_canonical_number_property(value, locale):
    """Any amount written with thousands and decimal separators reads back as the same number."""
    decimal, thousands = locale
    whole, frac = f"{value:.2f}".split(".")
    grouped = f"{int(whole):,}".replace(",", thousands)
    text = f"{grouped}{decimal}{frac}"
    sql = canonical_number_sql("x", decimal, thousands)
    literal = "'" + text.replace("'", "''") + "'"
    (out,) = duckdb.sql(f"SELECT {sql} FROM (SELECT {literal} AS x)").fetchone()
    assert Decimal(out) == value


# --------------------------------------------------------------------------------------------- dates
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["1/31/2025", "12/1/2024"], '`formats: {created_at: "%m/%d/%Y"}`'),
        (["31.01.2025"], '`formats: {created_at: "%d.%m.%Y"}`'),
        (["2018.02.26 19:58"], '`formats: {created_at: "%Y.%m.%d %H:%M"}`'),
        (["01/02/2025"], 'fit "%m/%d/%Y" or "%d/%m/%Y"'),
        (["next tuesday"], None),
    ],
    ids=["us", "german", "crm-dotted", "ambiguous", "none"],
)
def test_date_format_hint(values, expected):
    hint = date_format_hint("created_at", values)
    assert (hint is None) if expected is None else expected in hint


def test_us_dates_without_formats_get_the_hint():
    raw = _read(EXPORTS / "dates", "leads")
    assert date_format_hint("created_at", raw.rows["created_at"].dropna().tolist()) == (
        "dates like '1/31/2025': add `formats: {created_at: \"%m/%d/%Y\"}` to the mapping"
    )


# -------------------------------------------------------------------------------------------- values
@pytest.mark.parametrize("key", ['""', "null"], ids=["empty-string", "null"])
def test_values_map_an_empty_cell(key):
    raw = _read(EXPORTS / "dates", "leads", f"tables:\n  leads:\n    values: {{channel: {{{key}: '(not set)'}}}}\n")
    assert raw.rows["channel"].tolist() == ["Email", "(not set)"]


# ------------------------------------------------------------------------------------------ currency
@pytest.mark.parametrize(
    ("marks", "currency", "refused"),
    [
        (("EUR",), "EUR", []),
        (("$",), "USD", []),
        (("$",), "EUR", ["$"]),
        (("EUR", "USD"), "EUR", ["USD"]),
        (("GBP",), "USD", ["GBP"]),
    ],
    ids=["same", "dollar-sign", "dollar-for-euro", "two-currencies", "other"],
)
def test_amounts_in_another_currency_are_refused(marks, currency, refused):
    raw = RawTable("spend", label="ads.csv", currencies={"amount": marks})
    found = currency_problems(raw, currency)
    assert [p.detail.split(",")[0] for p in found] == [f"amounts in {', '.join(refused)}" for _ in found]
    assert bool(found) == bool(refused)


def test_eur_export_under_a_usd_source_is_refused(tmp_path):
    folder = EXPORTS / "salesforce_eur"
    usd = tmp_path / "goals.yml"
    usd.write_text("currency: USD\n")
    with pytest.raises(SchemaError, match=r"column `amount`: amounts in EUR, but the source's currency is USD"):
        DataSource.open(folder, mapping="salesforce", goals=usd, tables=["opportunities"])


def test_date_hint_reaches_the_validation_message():
    text = _open_error(EXPORTS / "dates", "leads")
    assert "found '1/31/2025', '2/1/2025'" in text
    assert "dates like '1/31/2025': add `formats: {created_at: \"%m/%d/%Y\"}`" in text


@pytest.mark.parametrize(
    ("folder", "mapping", "expected"),
    [
        ("ua", UA_MAPPING, (dt.date(2018, 1, 1), dt.date(2018, 1, 31))),
        ("ga4", (PRESETS / "ga4_traffic_acquisition.yml").read_text(), (dt.date(2025, 1, 1), dt.date(2025, 1, 3))),
        ("monthly", "tables:\n  web_sessions: {period: {start: 2025-01-01, end: 2025-02-28}}\n", None),
    ],
    ids=["ua-banner", "ga4-banner", "no-period"],
)
def test_period_from_the_first_lines_only(folder, mapping, expected):
    """The period without reading the data (a source opened from the typed-table cache skips reading)."""
    table = "web_sessions"
    spec = parse_mapping(yaml.safe_load(mapping), "m.yml")[table]
    with ExportReader(ibis.duckdb.connect(), EXPORTS / folder) as reader:
        found = reader.period(CONTRACT[table], spec)
    if expected is None:
        assert found == Coverage(dt.date(2025, 1, 1), dt.date(2025, 2, 28), "mapping")
    else:
        assert (found.start, found.end, found.source) == (*expected, "banner")


def test_an_unreadable_table_does_not_cascade(tmp_path):
    """Issue 10 item 16: a cp1250 `leads.csv` was "missing" plus dangling references from the other tables."""
    data = tmp_path / "data"
    shutil.copytree(Path(__file__).parent / "fixtures" / "tiny", data)
    text = (data / "leads.csv").read_text(encoding="utf-8").replace(",SEO,", ",Dvořák SEO,", 1)
    (data / "leads.csv").write_bytes(text.encode("cp1250"))
    with pytest.raises(SchemaError) as err:
        DataSource.open(data)
    assert [p.file for p in err.value.problems] == ["leads.csv"]
    assert "not UTF-8 text: line 2 has byte 0xF8" in str(err.value)


# --------------------------------------------------------------------------- hostile variants, end to end
TINY_SPEND = (Path(__file__).parent / "fixtures" / "tiny" / "spend.csv").read_text(encoding="utf-8")
AMOUNTS = {"500": ("500", "500,00"), "1000": ("1.000", "1.000,00"), "200": ("200", "200,00")}
AMOUNTS |= {"300": ("300", "300,00"), "2000": ("2.000", "2.000,00"), "1500": ("1.500", "1.500,00")}


def _amounts(text: str, fmt) -> str:
    """Rewrite the last field of each data row with ``fmt(amount)``."""
    lines = text.splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        head, _, amount = line.rpartition(",")
        out.append(f"{head},{fmt(amount)}")
    return "\n".join(out) + "\n"


def _semicolons(text: str) -> str:
    return text.replace(",", ";")


VARIANTS = [
    ("bom", lambda t: ("\ufeff" + t).encode(), None),
    ("crlf", lambda t: t.replace("\n", "\r\n").encode(), None),
    ("mixed-eol", lambda t: t.replace("\n", "\r\n", 3).encode(), None),
    ("utf16", lambda t: t.encode("utf-16"), None),
    ("eu-whole-amounts", lambda t: _semicolons(_amounts(t, lambda a: AMOUNTS[a][0])).encode(), "ambiguous numbers"),
    # ";" separated, "1.000,00": the commas of the amounts are put in after the delimiters changed
    (
        "eu-decimals",
        lambda t: _semicolons(_amounts(t, lambda a: AMOUNTS[a][1].replace(",", "#"))).replace("#", ",").encode(),
        None,
    ),
    ("us-thousands", lambda t: _amounts(t, lambda a: f'"{int(a):,}.00"').encode(), None),
    ("dollars", lambda t: _amounts(t, lambda a: f'"${int(a):,}.00"').encode(), None),
    ("euros-in-usd-source", lambda t: _amounts(t, lambda a: f"{a} €").encode(), "amounts in EUR"),
    ("banner", lambda t: ("# Spend report\n# 20250101-20250430\n\n" + t).encode(), None),
    ("totals-row", lambda t: (t + "Total,,,,5500\n").encode(), None),
    ("footer", lambda t: (t + "\nGenerated by Finance, 2025-05-02\n").encode(), None),
    ("ragged", lambda t: (t + "2025-05-01,Email\n").encode(), "has 2 fields, the header has 5"),
    ("duplicate-amount", lambda t: t.replace("amount", "amount,amount").replace("\n2", ",0\n2").encode(), "twice"),
    ("cp1252", lambda t: t.replace("Newsletter", "Newsletter €").encode("cp1252"), "not UTF-8 text"),
    ("excel", lambda t: b"PK\x03\x04" + t.encode(), "Excel workbook"),
]


@pytest.mark.parametrize(("variant", "make", "refusal"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_hostile_spend_variants_read_right_or_refused(tmp_path, variant, make, refusal):
    """Each variant of the tiny spend export gives the right total (5,500) or is refused, never another number."""
    (tmp_path / "spend.csv").write_bytes(make(TINY_SPEND))
    if refusal is None:
        src = DataSource.open(tmp_path, tables=["spend"])
        assert src.fetch(src.table("spend").amount.sum()) == 5500
    else:
        with pytest.raises(SchemaError, match=refusal):
            DataSource.open(tmp_path, tables=["spend"])


@pytest.mark.parametrize(
    ("path", "preset"),
    [
        ("ga4/traffic_acquisition.csv", "ga4"),
        ("hubspot/hubspot-crm-exports-all-contacts-2025-04-02.csv", "hubspot"),
        ("salesforce/report1743600000000.csv", "salesforce"),
        ("monthly/spend_2025-01.csv", None),
    ],
    ids=["ga4", "hubspot", "salesforce", "contract-file"],
)
def test_suggestion_names_the_preset(path, preset):
    from kpi_helpers.exports import suggestion

    text = suggestion(EXPORTS / path)
    assert (text is None) if preset is None else f"add `--mapping {preset}`" in text


def test_data_after_a_blank_line_mixed_with_other_lines_is_refused(tmp_path):
    """A blank line, then rows like data and a note: a footer or data cut in two? Refused, never dropped."""
    (tmp_path / "spend.csv").write_text(
        TINY_SPEND + "\n2025-05-01,Email,Newsletter,software,250\nExported by Finance\n"
    )
    text = _messages(_read(tmp_path, "spend"))
    assert "mix rows like the data with other lines" in text and "the kit does not guess" in text


def test_blank_line_inside_the_data_is_kept(tmp_path):
    lines = TINY_SPEND.splitlines()
    (tmp_path / "spend.csv").write_text("\n".join([*lines[:3], "", *lines[3:]]) + "\n")
    src = DataSource.open(tmp_path, tables=["spend"])
    assert src.fetch(src.table("spend").amount.sum()) == 5500


# -------------------------------------------------------------------------------- exports counted twice
def test_the_same_export_twice_under_a_preset_is_refused(tmp_path):
    # a download saved twice ("x.csv" and "x (1).csv") matched by the preset's glob: never summed twice
    src = next((EXPORTS / "meta-ads").glob("*.csv"))
    shutil.copy(src, tmp_path / src.name)
    shutil.copy(src, tmp_path / f"{src.stem} (1).csv")
    with pytest.raises(SchemaError, match=r"the same export of table `spend` twice"):
        DataSource.open(tmp_path, mapping="meta-ads", tables=["spend"])


def test_files_of_a_query_input_that_overlap_in_time_are_refused(tmp_path):
    src = next((EXPORTS / "meta-ads").glob("*.csv"))
    text = src.read_text(encoding="utf-8-sig").splitlines()
    shutil.copy(src, tmp_path / src.name)
    # a second, different file of the same days (a re-download after a correction): not the same bytes
    (tmp_path / f"{src.stem} (corrected).csv").write_text("\n".join(text[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=r"files of one input overlap in time"):
        DataSource.open(tmp_path, mapping="meta-ads", tables=["spend"])


def test_a_preset_finds_its_export_by_its_header(tmp_path):
    shutil.copy(EXPORTS / "ga4" / "traffic_acquisition.csv", tmp_path / "data-export.csv")
    src = DataSource.open(tmp_path, mapping="ga4", tables=["web_sessions"])
    assert src.fetch(src.table("web_sessions").sessions.sum()) == 362


def test_the_wrong_preset_says_which_one_fits(tmp_path):
    shutil.copy(EXPORTS / "ga4" / "traffic_acquisition.csv", tmp_path / "Analytics Channels 20250101-20250103.csv")
    with pytest.raises(SchemaError, match=r"not the export the `ua` preset reads.*use `--mapping ga4`"):
        DataSource.open(tmp_path, mapping="ua", tables=["web_sessions"])
