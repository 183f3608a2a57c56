import codecs
import contextlib
import dataclasses
import doctest
import errno
import os
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from kpi_helpers import config
from kpi_helpers.config import (
    BASELINE_WORDS,
    FUNNEL_METRICS,
    SHOWN_CHARS,
    TARGET_WORDS,
    KpiTarget,
    Settings,
    key_reference,
    key_table,
    load_settings,
    parse_settings,
)
from kpi_helpers.exceptions import ConfigError
from kpi_helpers.registry import metric_keys

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_GOALS = ROOT / "data" / "sample" / "goals.yml"


def kpi(**fields: str | None) -> str:
    """A one-KPI file: a leads target, with ``fields`` (raw YAML text) replacing or adding keys (None drops one)."""
    parts = {"name": "Leads", "metric": "leads", "owner": "Demand gen", "baseline": "1000", "target": "1200", **fields}
    body = ", ".join(f"{k}: {v}" for k, v in parts.items() if v is not None)
    return f"kpis:\n  - {{{body}}}\n"


def write(tmp_path: Path, content: str | bytes, name: str = "goals.yml") -> Path:
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


def leads_target(**kw) -> KpiTarget:
    base = {"name": "Leads", "metric": "leads", "owner": "Demand gen", "baseline": 1000.0, "target": 1200.0}
    return KpiTarget(**{**base, **kw})


# --- good files -----------------------------------------------------------------------------------


def test_defaults_without_file(tmp_path):
    s = load_settings(tmp_path / "goals.yml")
    assert s == Settings() == load_settings(None)
    assert (s.fiscal_year_start_month, s.currency, s.timezone, s.growth_uplift, s.growth_lookback_years) == (
        1,
        "USD",
        "UTC",
        0.05,
        3,
    )
    assert (s.gross_margin, s.customer_lifetime_years, s.kpis, s.source) == (0.7, 3.0, (), "defaults")


@pytest.mark.parametrize(
    "text",
    ["", "\n\n", "# only a comment\n", "---\n", "\ufeff"],
    ids=["empty", "blank-lines", "comment", "document-marker", "bom-only"],
)
def test_empty_file_gives_defaults(tmp_path, text):
    p = write(tmp_path, text)
    assert load_settings(p) == Settings(source=str(p))


def test_missing_file_required(tmp_path):
    with pytest.raises(ConfigError, match=r"goals\.yml` does not exist"):
        load_settings(tmp_path / "goals.yml", required=True)


def test_minimal_file(tmp_path):
    p = write(tmp_path, "currency: EUR\n")
    assert load_settings(p) == Settings(currency="EUR", source=str(p))


def test_sample_goals():
    s = load_settings(SAMPLE_GOALS)
    assert (s.fiscal_year_start_month, s.currency, s.timezone, s.growth_uplift, s.growth_lookback_years) == (
        1,
        "USD",
        "UTC",
        0.05,
        3,
    )
    assert (s.gross_margin, s.customer_lifetime_years, s.source) == (0.75, 4.0, str(SAMPLE_GOALS))
    assert [k.metric for k in s.kpis] == [
        "visits",
        "leads",
        "mqls",
        "sqls",
        "opportunities",
        "won_deals",
        "visit_to_lead_rate",
        "cost_per_lead",
        "clv_to_cac",
        "marketing_roi",
    ]
    assert s.kpis[1] == KpiTarget(
        name="Leads per quarter",
        owner="Head of demand generation",
        baseline="year_ago",
        target="funnel",
        metric="leads",
    )
    assert s.kpis[7] == KpiTarget(
        name="Cost per lead",
        owner="Head of demand generation",
        baseline="year_ago",
        target=325.0,
        metric="cost_per_lead",
        higher_is_better=False,
    )
    assert s.kpis[9] == KpiTarget(name="Marketing ROI", owner="CMO", baseline=0.8, target=1.0, metric="marketing_roi")
    assert all(k.period == "quarter" and k.goal == "revenue" for k in s.kpis)


def test_full_file(tmp_path):
    p = write(
        tmp_path,
        "fiscal_year_start_month: 7\ncurrency: eur\ntimezone: Europe/Berlin\ngrowth_uplift: 0.1\n"
        "growth_lookback_years: 2\ngross_margin: 1\ncustomer_lifetime_years: 2.5\n"
        "kpis:\n  - {name: Leads per quarter, metric: leads, owner: Demand gen, baseline: 2000, target: 3000}\n"
        "  - name: Briefings\n    owner: PR\n    baseline:\n    target: 6\n    period: fy2026q3\n"
        "    goal: awareness\n    higher_is_better: false\n",
    )
    s = load_settings(p)
    assert (s.fiscal_year_start_month, s.currency, s.timezone, s.growth_uplift, s.growth_lookback_years) == (
        7,
        "EUR",
        "Europe/Berlin",
        0.1,
        2,
    )
    assert (s.gross_margin, s.customer_lifetime_years) == (1.0, 2.5)
    assert s.tzinfo == ZoneInfo("Europe/Berlin")
    leads, briefings = s.kpis
    assert leads == KpiTarget(name="Leads per quarter", metric="leads", owner="Demand gen", baseline=2000, target=3000)
    assert isinstance(leads.baseline, float) and isinstance(leads.target, float)
    assert briefings == KpiTarget(
        name="Briefings",
        owner="PR",
        baseline=None,
        target=6.0,
        period="2026Q3",
        goal="awareness",
        higher_is_better=False,
    )


@pytest.mark.parametrize(
    ("content", "attr", "expected"),
    [
        ("currency: EUR\n".encode("utf-8-sig"), "currency", "EUR"),
        ("currency: EUR\n".encode("utf-16"), "currency", "EUR"),
        (codecs.BOM_UTF16_BE + "currency: EUR\n".encode("utf-16-be"), "currency", "EUR"),
        ("currency: EUR\n".encode("utf-32"), "currency", "EUR"),
        ("kpis:\n  - {name: Zoë, owner: Ana, baseline: 1, target: 2}\n".encode("utf-16"), "kpis", "Zoë"),
        ("fiscal_year_start_month: 08\n", "fiscal_year_start_month", 8),
        ("fiscal_year_start_month: 010\n", "fiscal_year_start_month", 10),
        ("growth_uplift: 5e-2\n", "growth_uplift", 0.05),
        ("currency: usd\n", "currency", "USD"),
        ("currency: ' EUR '\n", "currency", "EUR"),
        ("timezone: America/New_York\n", "timezone", "America/New_York"),
        ("kpis:\n", "kpis", ()),
        ("kpis: []\n", "kpis", ()),
        ("currency: EUR\r\ngrowth_uplift: 0.1\r\n", "currency", "EUR"),
    ],
    ids=[
        "utf8-bom",
        "utf16-le-bom",
        "utf16-be-bom",
        "utf32-bom",
        "utf16-non-ascii",
        "leading-zero-decimal",
        "no-octal",
        "exponent-without-dot",
        "currency-lower-case",
        "currency-spaces",
        "timezone",
        "kpis-empty",
        "kpis-empty-list",
        "crlf",
    ],
)
def test_good_variants(tmp_path, content, attr, expected):
    s = load_settings(write(tmp_path, content))
    got = getattr(s, attr)
    assert (got[0].name if attr == "kpis" and got else got) == expected


@pytest.mark.parametrize(
    ("fields", "attr", "expected"),
    [
        ({"target": "1e6"}, "target", 1_000_000.0),
        ({"target": "1.5e6"}, "target", 1_500_000.0),
        ({"baseline": "1_000"}, "baseline", 1000.0),
        ({"baseline": ""}, "baseline", None),
        ({"baseline": "Year_Ago"}, "baseline", "year_ago"),
        ({"target": "Funnel"}, "target", "funnel"),
        ({"period": "Quarter"}, "period", "quarter"),
        ({"period": "fy2026"}, "period", "FY2026"),
        ({"period": "FY2026Q3"}, "period", "2026Q3"),
        ({"period": "2026-q3"}, "period", "2026Q3"),
        ({"metric": "marketing_roi", "baseline": "-0.2"}, "baseline", -0.2),
        ({"metric": "revenue_target"}, "metric", "revenue_target"),
        ({"target": "0"}, "target", 0.0),
    ],
    ids=[
        "exponent",
        "exponent-with-dot",
        "underscores",
        "no-baseline",
        "baseline-word-case",
        "target-word-case",
        "period-quarter",
        "period-fiscal-year",
        "period-fy-quarter",
        "period-dash",
        "roi-may-be-negative",
        "target-metric",
        "zero-target",
    ],
)
def test_good_kpi_values(fields, attr, expected):
    (k,) = parse_settings(kpi(**fields)).kpis
    assert getattr(k, attr) == expected


@pytest.mark.parametrize("metric", sorted({*metric_keys(), *FUNNEL_METRICS}))
def test_every_registry_metric_is_accepted(metric):
    (k,) = parse_settings(f"kpis:\n  - {{name: K, metric: {metric}, owner: o, baseline: year_ago, target: 1}}\n").kpis
    assert k.metric == metric


def test_constants():
    assert BASELINE_WORDS == ("year_ago", "previous_quarter")
    assert TARGET_WORDS == ("funnel",)
    assert FUNNEL_METRICS == ("visits", "leads", "mqls", "sqls", "opportunities", "won_deals")


# --- periods --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "quarter_label", "fiscal_year_label", "applies"),
    [
        ("quarter", "2026Q3", "FY2026", True),
        ("FY2026", "2026Q3", "FY2026", True),
        ("FY2026", "2027Q1", "FY2027", False),
        ("2026Q3", "2026Q3", "FY2026", True),
        ("2026Q3", "2026Q4", "FY2026", False),
        # a fiscal year starting in July labels its quarters FY2026Q3: the same quarter as 2026Q3
        ("2026Q3", "FY2026Q3", "FY2026", True),
        ("FY2026Q3", "FY2026Q3", "FY2026", True),
        ("FY2026Q3", "2025Q3", "FY2025", False),
    ],
    ids=["every", "fy", "other-fy", "quarter", "other-quarter", "fy-label", "fy-both", "other-year"],
)
def test_applies_to(period, quarter_label, fiscal_year_label, applies):
    assert leads_target(period=period).applies_to(quarter_label, fiscal_year_label) is applies


# --- immutability and replace ---------------------------------------------------------------------


def test_settings_immutable_and_replace_validates():
    s = parse_settings(kpi())
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.currency = "EUR"
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.kpis[0].target = 5.0
    alt = dataclasses.replace(s, growth_uplift=0.1)
    assert alt.growth_uplift == 0.1 and alt.kpis == s.kpis and alt.source == s.source
    assert s.growth_uplift == 0.05
    with pytest.raises(ValueError, match="less_than_equal|10"):
        dataclasses.replace(s, growth_uplift=11.0)
    assert hash(s) == hash(parse_settings(kpi()))


# --- bad files ------------------------------------------------------------------------------------

BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)

BAD = [
    ("quoted-boolean", kpi(higher_is_better='"false"'), [r"`kpis\[1\]\.higher_is_better`", "line 2", "without quotes"]),
    ("boolean-number", kpi(higher_is_better="0"), [r"expected true or false, got the number 0"]),
    (
        "quoted-month",
        'fiscal_year_start_month: "7"\n',
        [r"`fiscal_year_start_month` \(line 1\)", "an integer", "quotes"],
    ),
    ("float-month", "fiscal_year_start_month: 7.0\n", ["expected an integer from 1 to 12, got the number 7.0"]),
    ("month-range", "fiscal_year_start_month: 13\n", ["expected an integer from 1 to 12, got the number 13"]),
    ("lookback-bool", "growth_lookback_years: true\n", ["expected an integer from 1 to 50, got true"]),
    (
        "uplift-text",
        "growth_uplift: lots\n",
        [r"`growth_uplift`", "expected a number from -1 to 10, got the text 'lots'"],
    ),
    ("uplift-nan", "growth_uplift: .nan\n", ["expected a number from -1 to 10, got the number nan"]),
    ("margin-percent", "gross_margin: 70\n", [r"`gross_margin`", r"expected a number \(> 0, <= 1\)"]),
    ("margin-zero", "gross_margin: 0\n", [r"`gross_margin`", r"> 0"]),
    ("lifetime-inf", "customer_lifetime_years: .inf\n", [r"`customer_lifetime_years`", "got the number inf"]),
    ("currency", "currency: US Dollar\n", ["three-letter ISO 4217 currency code", "'US Dollar'"]),
    ("timezone", "timezone: Europe/Berln\n", [r"`timezone`", "IANA time-zone name", "did you mean `Europe/Berlin`"]),
    ("timezone-local", "timezone: localtime\n", [r"`timezone`", "IANA time-zone name"]),
    ("timezone-path", "timezone: ../../etc/passwd\n", [r"`timezone`", "IANA time-zone name"]),
    ("unknown-key", "budget: 5\n", [r"`budget` \(line 1\): unknown key", "allowed here: fiscal_year_start_month, "]),
    ("misspelt-key", "curency: EUR\n", ["did you mean `currency`"]),
    ("source-key", "source: elsewhere\n", [r"`source` \(line 1\): unknown key"]),
    (
        "unknown-kpi-key",
        kpi(colour="red"),
        [r"`kpis\[1\]\.colour`", "unknown key", "allowed here: name, owner, baseline"],
    ),
    (
        "unknown-metric",
        kpi(metric="leadz"),
        [r"`kpis\[1\]\.metric`", "unknown metric 'leadz'", "did you mean `leads`", "cost_per_lead, "],
    ),
    ("period-q5", kpi(period="2026Q5"), [r"`kpis\[1\]\.period`", "'2026Q5'", "`FY2026`", "`2026Q3`"]),
    ("period-number", kpi(period="5"), [r"`kpis\[1\]\.period`", "got the number 5", "`2026Q3`"]),
    ("period-year", kpi(period="2026"), ["got the number 2026; for that fiscal year write `FY2026`"]),
    ("period-no-year", kpi(period="Q3"), [r"`kpis\[1\]\.period`", "got the text 'Q3'"]),
    ("period-date", kpi(period="2026-07-01"), ["got the date 2026-07-01"]),
    ("period-other-digits", kpi(period="٢٠٢٦Q3"), [r"`kpis\[1\]\.period`", "got the text"]),
    ("period-bad-date", kpi(period="2026-13-01"), ["got the text '2026-13-01'"]),
    (
        "negative-target",
        kpi(target="-5"),
        [r"`kpis\[1\]\.target`", r"expected a number >= 0 \(`leads` cannot be lower\), got the number -5"],
    ),
    ("negative-baseline", kpi(baseline="-1"), [r"`kpis\[1\]\.baseline`", ">= 0"]),
    ("negative-untracked", kpi(metric=None, target="-1"), ["a KPI target cannot be lower"]),
    (
        "roi-below-minus-one",
        kpi(metric="marketing_roi", target="-1.5"),
        [r"expected a number >= -1 \(`marketing_roi` cannot be lower\)"],
    ),
    ("huge-target", kpi(target="1e30"), [r"`kpis\[1\]\.target`", "up to 1e\\+18"]),
    ("target-text", kpi(target="lots"), ["expected `funnel` or a number, got the text 'lots'"]),
    ("target-quoted", kpi(target='"1200"'), ["got the text '1200'; it is in quotes"]),
    ("baseline-word", kpi(baseline="last_year"), ["`year_ago`, `previous_quarter`, a number or nothing"]),
    (
        "funnel-needs-funnel-metric",
        kpi(metric="cost_per_lead", target="funnel"),
        [r"`target: funnel` needs `metric` to be one of `visits`, `leads`"],
    ),
    ("word-baseline-needs-metric", kpi(metric=None, baseline="year_ago"), ["needs a `metric`"]),
    (
        "kpi-missing",
        "kpis:\n  - {name: Leads}\n",
        [r"`kpis\[1\]` \(line 2, KPI 'Leads'\): missing `owner`, `baseline`"],
    ),
    ("kpi-empty-name", kpi(name="''"), [r"`kpis\[1\]\.name`", "empty text"]),
    ("kpi-name-boolean", kpi(name="yes"), ["got true; YAML reads yes/no"]),
    ("kpi-not-mapping", "kpis: [1, 2]\n", [r"`kpis\[1\]`", "expected a mapping with the keys name, owner"]),
    ("kpis-not-list", "kpis: all of them\n", [r"`kpis` \(line 1\)", "expected list of KPI targets"]),
    ("top-level-list", "- currency: EUR\n", ["expected `key: value` settings at the top level, found a list"]),
    ("top-level-text", "hello\n", ["found the text 'hello'"]),
    (
        "duplicate-top",
        "currency: USD\ngrowth_uplift: 0.1\ncurrency: EUR\n",
        [r"`currency` \(line 3\)", "first on line 1"],
    ),
    ("duplicate-in-kpi", kpi(goal="revenue, target: 3"), [r"`kpis\[1\]\.target` \(line 2\)", "appears twice"]),
    (
        "duplicate-in-block-kpi",
        "kpis:\n  - name: A\n    owner: o\n    baseline: 1\n    target: 2\n    owner: p\n",
        [r"`kpis\[1\]\.owner` \(line 6\): key `owner` appears twice \(first on line 3\)"],
    ),
    ("alias", "currency: &c EUR\nx: *c\n", ["line 1", "anchors and aliases"]),
    ("merge-key", "kpis:\n  - {<<: {name: a}, owner: o, baseline: 1, target: 2}\n", ["merge keys"]),
    ("deep", "kpis: " + "[" * 40 + "]" * 40 + "\n", ["nested deeper than 12 levels"]),
    ("yaml-syntax", "currency: EUR\n  growth_uplift: [\n", ["line 2", "not valid YAML"]),
    ("two-documents", "currency: EUR\n---\ncurrency: USD\n", ["not valid YAML", "single document"]),
    ("tab", "currency:\tEUR\nkpis:\n\t- x\n", ["not valid YAML"]),
    ("control-character", "currency: EUR\x07\n", ["line 1: the control character U\\+0007 is not allowed"]),
    (
        "undecodable",
        b"currency: EUR\nkpis:\n  - {name: Caf\xe9, owner: o, baseline: 1, target: 2}\n",
        ["line 3", "0xE9", "not UTF-8"],
    ),
    ("utf16-no-bom", "currency: EUR\n".encode("utf-16-le"), ["UTF-16 or UTF-32 without a byte-order mark"]),
    ("utf16-broken", b"\xff\xfe" + "currency: EUR\n".encode("utf-16-le") + b"\x00\xd8", ["cannot be read as UTF-16"]),
    ("too-large", "# " + "x" * (config.MAX_BYTES + 10) + "\n", ["a goals file is at most 131,072 bytes"]),
]


@pytest.mark.parametrize(("content", "fragments"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_file(tmp_path, content, fragments):
    p = write(tmp_path, content)
    with pytest.raises(ConfigError) as err:
        load_settings(p)
    msg = str(err.value)
    assert msg.startswith(f"`{p}`"), msg
    assert err.value.exit_code == 2
    for fragment in fragments:
        assert re.search(fragment, msg), f"{fragment!r} not in {msg!r}"
    # never pydantic's own words, never a traceback's
    assert not re.search(r"Input should|pydantic|Traceback|validation error", msg), msg


def test_every_problem_at_once(tmp_path):
    p = write(
        tmp_path,
        'fiscal_year_start_month: "7"\nbudget: 1\n'
        "kpis:\n  - {name: A, metric: leadz, owner: o, baseline: 1, target: 2}\n"
        "  - {name: B, owner: o, baseline: 1, target: -2}\n"
        "  - {name: C, owner: o, baseline: 1, target: 2, period: 2026Q5}\n",
    )
    with pytest.raises(ConfigError) as err:
        load_settings(p)
    lines = str(err.value).splitlines()
    # an item's cross-field rules (the target's floor depends on its metric) run once its keys are valid
    assert lines[0] == f"`{p}`: 5 problems"
    assert [re.match(r"  - (`[^`]+`)", line)[1] for line in lines[1:]] == [
        "`fiscal_year_start_month`",
        "`budget`",
        "`kpis[1].metric`",
        "`kpis[2].target`",
        "`kpis[3].period`",
    ]


def test_alias_bomb_refused_at_first_anchor(tmp_path):
    p = write(tmp_path, BOMB)
    # Refused at the first anchor, before any alias is composed: nothing expands (9^9 items if it did).
    with pytest.raises(ConfigError, match=r"line 1, column 4: YAML anchors and aliases"):
        load_settings(p)


@pytest.mark.parametrize(
    ("text", "long"),
    [
        ("currency: " + "x" * 5000 + "\n", "x" * 5000),
        ("budget_" + "k" * 1000 + ": 1\n", "k" * 1000),  # PyYAML refuses plain keys over 1,024
        (kpi(period="9" * 5000), "9" * 5000),
        (kpi(metric="m" * 5000), "m" * 5000),
        (kpi(name="n" * 5000, colour="red"), "n" * 5000),
        ("timezone: " + "Europe/" * 700 + "\n", "Europe/" * 700),
        ('kpis:\n  - {name: A, owner: o, baseline: 1, target: "' + "7" * 5000 + '"}\n', "7" * 5000),
    ],
    ids=["currency", "key", "period", "metric", "kpi-name", "timezone", "quoted-number"],
)
def test_long_value_not_echoed(tmp_path, text, long):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings(p)
    msg = str(err.value)
    assert long[: SHOWN_CHARS + 1] not in msg
    assert "characters)" in msg or "the number inf" in msg or "9999…" in msg


def test_directory_instead_of_file(tmp_path):
    (tmp_path / "goals.yml").mkdir()
    with pytest.raises(ConfigError, match=r"goals\.yml` is a folder, not a goals file") as err:
        load_settings(tmp_path / "goals.yml")
    assert err.value.exit_code == 2


def test_unreadable_file(tmp_path, monkeypatch):
    p = write(tmp_path, "currency: EUR\n")

    def refuse(self, *args, **kwargs):
        # chmod 000 does not stop root (tests run as root here), so the refusal is simulated
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(ConfigError, match=r"goals\.yml` cannot be read \(Permission denied\); check its permissions"):
        load_settings(p)


def test_unreadable_folder(tmp_path, monkeypatch):
    p = tmp_path / "goals.yml"

    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "stat", refuse)
    with pytest.raises(ConfigError, match=r"cannot be read \(Permission denied\)"):
        load_settings(p)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_mode(tmp_path):
    p = write(tmp_path, "currency: EUR\n")
    p.chmod(0)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(p)


def test_dangling_link(tmp_path):
    (tmp_path / "goals.yml").symlink_to(tmp_path / "nowhere.yml")
    with pytest.raises(ConfigError, match="a link to a file that does not exist"):
        load_settings(tmp_path / "goals.yml")


def test_pipe_refused(tmp_path):
    os.mkfifo(tmp_path / "goals.yml")
    with pytest.raises(ConfigError, match="not a regular file"):
        load_settings(tmp_path / "goals.yml")


# --- properties -----------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["quarter", "FY2026", "2026Q3", "year_ago", "funnel", "leads", "UTC", "EUR", "Q3"]),
)
kpi_items = st.dictionaries(
    st.sampled_from(["name", "owner", "baseline", "target", "period", "metric", "goal", "higher_is_better", "x"]),
    scalars,
)
files = st.dictionaries(
    st.sampled_from([k.key for k in key_reference() if "[" not in k.key and k.key != "kpis"] + ["kpis", "other"]),
    st.one_of(scalars, st.lists(kpi_items, max_size=3)),
)


@settings(max_examples=60, deadline=None)
@given(files)
def test_any_settings_file_parses_or_is_refused_clearly(raw):
    """Whatever the values, the result is valid Settings or a ConfigError, never another exception."""
    text = yaml.safe_dump(raw, allow_unicode=True)
    try:
        s = parse_settings(text)
    except ConfigError as exc:
        assert not re.search(r"Input should|pydantic", str(exc))
        return
    assert 1 <= s.fiscal_year_start_month <= 12 and -1 <= s.growth_uplift <= 10 and 0 < s.gross_margin <= 1
    for k in s.kpis:
        for v in (k.baseline, k.target):
            assert v is None or v in (*BASELINE_WORDS, *TARGET_WORDS) or v >= (-1 if k.metric == "marketing_roi" else 0)


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8"))))
def test_any_bytes_parse_or_are_refused_clearly(data):
    with contextlib.suppress(ConfigError):
        assert isinstance(parse_settings(data), Settings)


# --- the key table and docs/goals.md --------------------------------------------------------------


def test_docs_table_matches_model():
    doc = (ROOT / "docs" / "goals.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- keys:start -->\n(.*?)\n<!-- keys:end -->", doc, re.S)
    assert m, "docs/goals.md lost its <!-- keys:start --> / <!-- keys:end --> markers"
    assert m[1] == key_table(), (
        "docs/goals.md's key table differs from the model; paste the output of "
        "`python -c 'from kpi_helpers.config import key_table; print(key_table())'` between the markers"
    )


def test_docs_example_parses():
    doc = (ROOT / "docs" / "goals.md").read_text(encoding="utf-8")
    example = re.search(r"```yaml\n(.*?)```", doc, re.S)[1]
    s = parse_settings(example)
    assert s.timezone == "Europe/Berlin" and len(s.kpis) == 4
    assert [k.period for k in s.kpis] == ["quarter", "quarter", "FY2026", "2026Q3"]


def test_every_file_key_is_documented():
    keys = {k.key: k for k in key_reference()}
    assert set(keys) == {
        *(f.name for f in dataclasses.fields(Settings) if f.name != "source"),
        *(f"kpis[].{f.name}" for f in dataclasses.fields(KpiTarget)),
    }
    assert all(k.meaning and k.type and k.default for k in keys.values())


def test_nested_section_keys_and_paths():
    """A grouped setting added later (a section) shows as `section.key` in the table and in messages."""

    @dataclass(frozen=True, config=ConfigDict(extra="forbid"))
    class Forecast:
        horizon_days: int = Field(default=90, ge=1, le=366, description="days ahead")

    @dataclass(frozen=True, config=ConfigDict(extra="forbid"))
    class WithSection:
        currency: str = Field(default="USD", description="currency")
        forecast: Forecast = Field(default=Forecast(), description="forecast settings")

    assert [k.key for k in key_reference(WithSection)] == ["currency", "forecast", "forecast.horizon_days"]
    assert "| `forecast` | section (keys below) | see below | - | forecast settings |" in key_table(WithSection)
    assert "| `forecast.horizon_days` | integer | 90 | 1 to 366 | days ahead |" in key_table(WithSection)
    with pytest.raises(ValidationError) as err:
        TypeAdapter(WithSection).validate_python({"forecast": {"horizon_days": 0}})
    assert config._path(tuple(err.value.errors()[0]["loc"])) == "forecast.horizon_days"
    assert TypeAdapter(WithSection).validate_python({}).forecast.horizon_days == 90


def test_doctests():
    result = doctest.testmod(config, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
