"""Mapping SQL is confined: every refused statement in every slot, and the reshaping queries that work."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kpi_helpers import sqlguard
from kpi_helpers.exceptions import MappingError
from kpi_helpers.mapping import parse_mapping
from kpi_helpers.source import DataSource

RESHAPE = Path(__file__).parent / "fixtures" / "exports" / "reshape"

#: (id, SQL as a query, SQL as an expression, words of the refusal)
REFUSED = [
    ("copy-to", "COPY (SELECT 1) TO 'out.csv'", "(COPY (SELECT 1) TO 'out.csv')", "COPY"),
    ("attach", "ATTACH 'other.duckdb' AS o", "ATTACH 'other.duckdb' AS o", "ATTACH"),
    ("install", "INSTALL httpfs", "INSTALL httpfs", "INSTALL"),
    ("load", "LOAD httpfs", "LOAD httpfs", "LOAD"),
    ("set", "SET threads = 1", "SET threads = 1", "SET"),
    ("pragma", "PRAGMA version", "PRAGMA version", "PRAGMA"),
    ("call", "CALL pragma_version()", "CALL pragma_version()", "CALL"),
    ("read-text", "SELECT * FROM read_text('/etc/passwd')", "read_text('/etc/passwd')", "read_text"),
    ("read-csv", "SELECT * FROM read_csv('/etc/passwd')", "(SELECT count(*) FROM read_csv('/etc/passwd'))", "read_csv"),
    ("glob", "SELECT * FROM glob('/etc/*')", "glob('/etc/*')", "glob"),
    ("path-table", "SELECT * FROM '/etc/passwd'", "(SELECT 1 FROM '/etc/passwd')", "/etc/passwd"),
    ("relative-path", "SELECT * FROM '../secret.csv'", "(SELECT 1 FROM '../secret.csv')", "secret.csv"),
    ("second-statement", "SELECT 1 FROM events; DROP TABLE leads", "1; DROP TABLE leads", "2 statements"),
    ("drop", "DROP TABLE leads", "DROP TABLE leads", "DROP"),
    ("create", "CREATE TABLE x AS SELECT 1", "CREATE TABLE x AS SELECT 1", "CREATE"),
    ("insert", "INSERT INTO leads VALUES (1)", "INSERT INTO leads VALUES (1)", "INSERT"),
    ("getenv", "SELECT getenv('HOME') FROM events", "getenv('HOME')", "getenv"),
    (
        "setting",
        "SELECT current_setting('home_directory') FROM events",
        "current_setting('home_directory')",
        "current_setting",
    ),
    ("query-fn", "SELECT * FROM query('SELECT 1')", "query('SELECT 1')", "query"),
    ("other-table", "SELECT * FROM leads", "(SELECT 1 FROM leads)", "leads"),
    ("schema-table", "SELECT * FROM kpi_cache.main.leads", "(SELECT 1 FROM kpi_cache.main.leads)", "kpi_cache"),
]


def _mapping(table_yaml: str) -> str:
    return "tables:\n  leads:\n" + table_yaml


def _query_slot(sql: str) -> str:
    return _mapping(
        "    inputs: {events: events.csv}\n    query: " + yaml.safe_dump(sql, default_style='"').strip() + "\n"
    )


def _expression_slot(sql: str) -> str:
    return _mapping("    expressions:\n      campaign: " + yaml.safe_dump(sql, default_style='"').strip() + "\n")


def _filter_slot(sql: str) -> str:
    return _mapping("    filter: " + yaml.safe_dump(sql, default_style='"').strip() + "\n")


def _refused(text: str) -> str:
    with pytest.raises(MappingError) as err:
        parse_mapping(yaml.safe_load(text), "shared.yml")
    return str(err.value)


@pytest.mark.parametrize(("case", "query", "expr", "words"), REFUSED, ids=[r[0] for r in REFUSED])
@pytest.mark.parametrize("slot", ["query", "expressions", "filter"])
def test_refused_in_every_sql_slot(slot, case, query, expr, words):
    text = {"query": _query_slot(query), "expressions": _expression_slot(expr), "filter": _filter_slot(expr)}[slot]
    msg = _refused(text)
    key = {"query": "`query`", "expressions": "`expressions.campaign`", "filter": "`filter`"}[slot]
    assert msg.startswith(f"`shared.yml`, table `leads`, {key}: "), msg
    assert words.casefold() in msg.casefold(), msg


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("../secrets.csv", "leaves the data folder"),
        ("exports/../../x.csv", "leaves the data folder"),
        ("/etc/passwd", "absolute path"),
        ("~/leads.csv", "absolute path"),
        ("C:\\\\data\\\\leads.csv", "absolute path"),
        ("s3://bucket/leads.csv", "not a file name"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "home", "windows-drive", "url"],
)
@pytest.mark.parametrize("slot", ["file", "inputs"])
def test_paths_outside_the_folder_are_refused(slot, pattern, words):
    quoted = '"' + pattern + '"'
    text = (
        _mapping(f"    file: {quoted}\n")
        if slot == "file"
        else _mapping(f"    inputs: {{events: {quoted}}}\n    query: SELECT * FROM events\n")
    )
    msg = _refused(text)
    assert ("`file`" if slot == "file" else "`inputs.events.file`") in msg and words in msg


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ("{filename: /etc/passwd}", "unknown reader option `filename`"),
        ("{columns: {a: VARCHAR}}", "unknown reader option `columns`"),
        ("{files: ['/etc/passwd']}", "unknown reader option `files`"),
        ("{delimiter: \"'); COPY (SELECT 1) TO 'x\"}", "option `delimiter`"),
        ("{skip: '1; DROP TABLE x'}", "option `skip`"),
        ("{header: 'yes'}", "option `header`"),
        ("{compression: '/tmp/x'}", "option `compression`"),
    ],
    ids=["filename", "columns", "files", "delimiter-injection", "skip-text", "header-text", "compression"],
)
@pytest.mark.parametrize("slot", ["read", "inputs"])
def test_read_options_are_a_whitelist(slot, options, words):
    text = (
        _mapping(f"    read: {options}\n")
        if slot == "read"
        else _mapping(f"    inputs: {{events: {{file: e.csv, read: {options}}}}}\n    query: SELECT * FROM events\n")
    )
    msg = _refused(text)
    assert words in msg and ("`read`" in msg or "`inputs.events.read`" in msg)


def test_allowed_read_options_pass():
    assert sqlguard.check_read_options({"sep": ";", "skip": 3, "header": True, "null": "n/a"}, where="m") == {
        "delimiter": ";",
        "skip": 3,
        "header": True,
        "nullstr": "n/a",
    }


def test_symbolic_link_out_of_the_folder_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "secret.csv").write_text("lead_id\nL1\n")
    (data / "leads.csv").symlink_to(tmp_path / "secret.csv")
    with pytest.raises(MappingError, match="links outside the data folder"):
        sqlguard.resolve_glob(data, "*.csv", where="m")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT a, count(*) FROM events GROUP BY ALL",
        "WITH x AS (SELECT * FROM events) SELECT * FROM x UNION ALL SELECT * FROM events",
        "FROM events SELECT a",
        "UNPIVOT events ON COLUMNS(* EXCLUDE (d)) INTO NAME channel VALUE amount",
        "SELECT * FROM events e JOIN events f USING (a) WHERE a IN (SELECT a FROM events)",
    ],
    ids=["aggregate", "cte-union", "from-first", "unpivot-statement", "join-subquery"],
)
def test_reading_queries_pass(sql):
    tree = sqlguard.check_query(sql, ["events"], where="m")
    assert '"__in_events"' in sqlguard.render_query(tree, {"events": "__in_events"})


# ------------------------------------------------------------------ allowed queries, end to end
TABLES = ["web_sessions", "spend", "leads", "touchpoints", "opportunities", "revenue"]


@pytest.fixture(scope="module")
def reshaped():
    src = DataSource.open(RESHAPE, mapping=RESHAPE / "reshape.yml", tables=TABLES)
    return src, {t: src.fetch(src.table(t)) for t in TABLES}


def test_aggregate_hits_to_daily_sessions(reshaped):
    _, t = reshaped
    web = t["web_sessions"].sort_values(["date", "channel"]).reset_index(drop=True)
    # s1 (2 hits) and s2 on the 6th; s3 (2 hits) and s4 on the 7th: one session each per day and channel
    assert web[["channel", "sessions", "users", "new_users", "engaged_sessions"]].values.tolist() == [
        ["Direct", 1, 1, 0, 0],
        ["Organic Search", 1, 1, 1, 1],
        ["Email", 1, 1, 1, 1],
        ["Organic Search", 1, 1, 0, 1],
    ]
    assert web["session_duration_s"].sum() == 120 + 10 + 300 + 60


def test_unpivot_wide_spend_with_european_numbers(reshaped):
    _, t = reshaped
    spend = t["spend"]
    assert len(spend) == 6 and spend["amount"].sum() == pytest.approx(1250.5 + 980 + 0 + 1100 + 1020.25 + 310.75)
    by = spend.groupby("channel")["amount"].sum().to_dict()
    assert by == {"Paid Search": 2350.5, "Paid Social": pytest.approx(2311.0)}


def test_two_tables_from_one_file(reshaped):
    _, t = reshaped
    assert t["leads"].set_index("lead_id")["channel"].to_dict() == {"C1": "Organic Search", "C2": "Paid Search"}
    touches = t["touchpoints"]
    assert sorted(touches["lead_id"].unique()) == ["C1", "C2"] and len(touches) == 5  # C3 never became a lead


def test_join_of_two_inputs(reshaped):
    _, t = reshaped
    opp = t["opportunities"].set_index("opportunity_id")
    assert str(opp.loc["D1", "closed_at"])[:10] == "2025-02-20" and pd.isna(opp.loc["D2", "closed_at"])
    assert opp["amount"].to_dict() == {"D1": 12000.0, "D2": 4500.0}


def test_weekly_to_monthly(reshaped):
    _, t = reshaped
    rev = t["revenue"].sort_values("month")
    assert rev["revenue"].tolist() == [4500.0, 5500.0]


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("COPY (SELECT 1) TO 'out.csv'", "file system operations are disabled"),
        ("SELECT * FROM read_text('/etc/passwd')", "file system operations are disabled"),
        ("ATTACH '/tmp/other.duckdb' AS o", "file system operations are disabled"),
        ("INSTALL httpfs", "Permission"),
        ("SET threads = 1", "configuration has been locked"),
    ],
    ids=["copy", "read-text", "attach", "install", "set"],
)
def test_the_engine_itself_is_confined(reshaped, sql, words):
    """Defence in depth: the connection that ran the mapping's SQL cannot reach other paths or settings."""
    src, _ = reshaped
    with pytest.raises(Exception, match=words):
        src.con.raw_sql(sql if "out.csv" not in sql else sql.replace("out.csv", "/tmp/kpi-guard-out.csv"))
    assert not Path("/tmp/kpi-guard-out.csv").exists()


def test_a_failing_query_names_the_mapping_and_table(tmp_path):
    shutil.copy(RESHAPE / "revenue_weekly.csv", tmp_path)
    (tmp_path / "m.yml").write_text(
        "tables:\n  revenue:\n    inputs: {weekly: revenue_weekly.csv}\n    query: SELECT no_such_column FROM weekly\n"
    )
    from kpi_helpers.exceptions import SchemaError

    with pytest.raises(SchemaError, match=r"`m.yml#revenue`: the mapping's query fails: .*no_such_column"):
        DataSource.open(tmp_path, mapping=tmp_path / "m.yml", tables=["revenue"])


@pytest.mark.parametrize(("mapping", "confined"), [(None, False), ("salesforce", True)], ids=["no-sql", "preset-sql"])
def test_the_connection_is_confined_only_when_a_mapping_has_sql(tmp_path, mapping, confined):
    folder = Path(__file__).parent / "fixtures" / "exports" / "salesforce"
    data = tmp_path / "data"
    shutil.copytree(folder, data)
    if mapping is None:
        (data / "report1743600000000.csv").unlink()
        (data / "revenue.csv").write_text("month,revenue\n2025-01-01,100\n")
    src = DataSource.open(data, mapping=mapping, tables=["opportunities" if mapping else "revenue"])
    target = tmp_path / "elsewhere.parquet"
    if confined:
        with pytest.raises(Exception, match="file system operations are disabled"):
            src.con.raw_sql(f"COPY (SELECT 1 AS a) TO '{target}'")
    else:
        src.con.raw_sql(f"COPY (SELECT 1 AS a) TO '{target}'")  # the caller's own connection, free
        assert target.exists()
