"""Hostile but fair exports: each variant of the tiny fixture either reads right (the same KPIs as the
clean data, or the documented change with a warning) or is refused with exit 2 naming the file or
column. None may give a wrong number with exit 0.

Each variant is a function that damages a copy of ``tests/fixtures/tiny`` (2025Q1 is the quarter
judged); the table ``VARIANTS`` says what must happen. The last test counts the outcomes.
"""

from __future__ import annotations

import codecs
import json
import shutil
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kpi_helpers.cli import main

TINY = Path(__file__).parent / "fixtures" / "tiny"
QUARTER = "2025Q1"
#: the KPIs compared with the clean data's
KEYS = (
    "leads", "visits", "mqls", "sqls", "opportunities", "won_deals", "lead_revenue", "won_revenue", "revenue",
    "marketing_cost", "sales_cost", "cost_per_lead", "cac", "marketing_roi", "bounce_rate", "avg_session_duration_s",
    "goal_completions", "email_open_rate",
)  # fmt: skip
OUTCOMES: Counter[str] = Counter()


def run(folder: Path, *extra: str, quarter: str = QUARTER) -> tuple[int, dict | None, str]:
    """``kpi summary --json`` on ``folder``: exit code, metrics (when 0) and stderr."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["summary", "--data", str(folder), "--quarter", quarter, "--json", *extra])
    return code, (json.loads(out.getvalue()) if code == 0 else None), err.getvalue()


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("clean") / "tiny"
    shutil.copytree(TINY, folder)
    code, m, err = run(folder)
    assert code == 0, err
    return m


# -- damage helpers ---------------------------------------------------------------------------------


def text(folder: Path, table: str) -> str:
    return (folder / f"{table}.csv").read_text(encoding="utf-8")


def put(folder: Path, table: str, body: str, *, encoding: str = "utf-8", newline: str = "\n") -> None:
    data = body.replace("\n", newline).encode(encoding)
    (folder / f"{table}.csv").write_bytes(data)


def sub(table: str, old: str, new: str, count: int = 1) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        body = text(folder, table)
        assert old in body, (table, old)
        put(folder, table, body.replace(old, new, count))

    return damage


def lines(table: str, edit: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        rows = text(folder, table).splitlines()
        put(folder, table, "\n".join(edit(rows)) + "\n")

    return damage


def to_parquet(table: str, edit: Callable[[pd.DataFrame], pd.DataFrame] = lambda f: f) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        frame = edit(pd.read_csv(folder / f"{table}.csv", keep_default_na=False, dtype=str))
        arrays = {c: pa.array(frame[c], from_pandas=frame[c].dtype.kind != "f") for c in frame.columns}
        pq.write_table(pa.table(arrays), folder / f"{table}.parquet")
        (folder / f"{table}.csv").unlink()

    return damage


def every_file(edit: Callable[[Path, str], None]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        for p in sorted(folder.glob("*.csv")):
            edit(folder, p.stem)

    return damage


def goals(body: str, encoding: str = "utf-8") -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        (folder / "goals.yml").write_bytes(body.encode(encoding))

    return damage


def both(*damages: Callable[[Path], None]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        for d in damages:
            d(folder)

    return damage


def european_spend(folder: Path, amounts: list[str]) -> None:
    rows = text(folder, "spend").splitlines()
    out = [rows[0].replace(",", ";")]
    for row, amount in zip(rows[1:], amounts, strict=True):
        *rest, _ = row.split(",")
        out.append(";".join([*rest, amount]))
    put(folder, "spend", "\n".join(out) + "\n")


def _typed_leads(frame: pd.DataFrame) -> pd.DataFrame:
    for c in ("created_at", "mql_at", "sql_at"):
        frame[c] = pd.to_datetime(frame[c].replace("", None))
    return frame


def _fraction(frame: pd.DataFrame) -> pd.DataFrame:
    frame["sessions"] = frame["sessions"].astype(float)
    frame.loc[frame["sessions"] > 0, "sessions"] += 0.5
    return frame


def _nan_amount(frame: pd.DataFrame) -> pd.DataFrame:
    frame["amount"] = frame["amount"].astype(float)
    frame.loc[0, "amount"] = float("nan")
    return frame


def _utc_offsets(frame: pd.DataFrame) -> pd.DataFrame:
    # The same instants written with an offset: +02:00 two hours later on the wall clock.
    for c in ("created_at", "mql_at", "sql_at"):
        ts = pd.to_datetime(frame[c].replace("", None))
        frame[c] = ts.dt.tz_localize("UTC").dt.tz_convert("Etc/GMT-2")
    return frame


def _split_spend(folder: Path) -> None:
    rows = text(folder, "spend").splitlines()
    (folder / "spend_2025_01.csv").write_text("\n".join([rows[0], *rows[1:3]]) + "\n")
    (folder / "spend_2025_02_06.csv").write_text("\n".join([rows[0], *rows[3:]]) + "\n")
    (folder / "spend.csv").unlink()
    (folder / "map.yml").write_text('tables:\n  spend:\n    file: "spend_2025_*.csv"\n')


def _overlapping_spend(folder: Path) -> None:
    rows = text(folder, "spend").splitlines()
    (folder / "spend_a.csv").write_text("\n".join([rows[0], *rows[1:4]]) + "\n")
    (folder / "spend_b.csv").write_text("\n".join([rows[0], *rows[2:]]) + "\n")
    (folder / "spend.csv").unlink()
    (folder / "map.yml").write_text('tables:\n  spend:\n    file: "spend_*.csv"\n')


def _invoices(folder: Path) -> None:
    # a ledger: the 1,000 of media on 2025-01-01 arrives as two invoices of 400 and 600
    body = text(folder, "spend").replace(
        "2025-01-01,Paid Search,Brand,media,1000",
        "2025-01-01,Paid Search,Brand,media,400\n2025-01-01,Paid Search,Brand,media,600",
    )
    put(folder, "spend", body)


def _xlsx_leads(folder: Path) -> None:
    (folder / "leads.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    (folder / "leads.csv").unlink()
    (folder / "opportunities.csv").unlink()
    (folder / "touchpoints.csv").unlink()


def _both_formats(folder: Path) -> None:
    to_parquet("leads")(folder)
    shutil.copy(TINY / "leads.csv", folder / "leads.csv")


def _reorder_columns(folder: Path) -> None:
    frame = pd.read_csv(folder / "leads.csv", dtype=str, keep_default_na=False)
    frame[list(reversed(frame.columns))].to_csv(folder / "leads.csv", index=False)


def _extra_columns(folder: Path) -> None:
    frame = pd.read_csv(folder / "leads.csv", dtype=str, keep_default_na=False)
    frame.insert(1, "email", [f"person{i}@example.com" for i in range(len(frame))])
    frame["phone"] = "+1 555 0100"
    frame.to_csv(folder / "leads.csv", index=False)


def _no_web_in_february(folder: Path) -> None:
    lines("web_sessions", lambda rows: [r for r in rows if not r.startswith("2025-02-")])(folder)


def _drop(table: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        (folder / f"{table}.csv").unlink()

    return damage


def _header_only(table: str) -> Callable[[Path], None]:
    return lines(table, lambda rows: rows[:1])


# -- the variants ---------------------------------------------------------------------------------------

SAME = "same"  # exit 0, every compared KPI equals the clean data's
REFUSED = "refused"  # exit 2, the message names the given words


def expect_same(**changed: object) -> tuple[str, dict]:
    return SAME, changed


def refused(*words: str) -> tuple[str, tuple[str, ...]]:
    return REFUSED, words


VARIANTS: list[tuple[str, Callable[[Path], None], tuple]] = [
    # read right: formats a real export has
    ("crlf", every_file(lambda f, t: put(f, t, text(f, t), newline="\r\n")), expect_same()),
    ("bom", every_file(lambda f, t: (f / f"{t}.csv").write_bytes(codecs.BOM_UTF8 + (f / f"{t}.csv").read_bytes())), expect_same()),
    ("mixed-line-endings", lambda f: (f / "leads.csv").write_bytes(text(f, "leads").replace("\n", "\r\n", 3).encode()), expect_same()),
    ("utf-16-leads", lambda f: put(f, "leads", "\ufeff" + text(f, "leads"), encoding="utf-16-le"), expect_same()),
    ("semicolon-decimal-comma", lambda f: european_spend(f, ["500,00", "1000,00", "200,00", "300,00", "2000,00", "1500,00"]), expect_same()),
    ("european-thousands-and-decimals", lambda f: european_spend(f, ["500,00", "1.000,00", "200,00", "300,00", "2.000,00", "1.500,00"]), expect_same()),
    ("us-thousands-quoted-dollars", lambda f: put(f, "spend", text(f, "spend").replace(",1000\n", ',"$1,000.00"\n').replace(",2000\n", ',"$2,000.00"\n')), expect_same()),
    ("iso-t-timestamps", sub("leads", "2025-01-15 10:00:00", "2025-01-15T10:00:00"), expect_same()),
    ("utc-z-timestamps", sub("leads", "2025-02-01 09:00:00", "2025-02-01 09:00:00Z"), expect_same()),
    ("offsets-in-parquet", to_parquet("leads", _utc_offsets), expect_same()),
    ("extra-personal-columns", _extra_columns, expect_same()),
    ("columns-reordered", _reorder_columns, expect_same()),
    ("padded-text", sub("leads", ",Organic Search,SEO,", ",  Organic Search ,SEO,"), expect_same()),
    ("upper-case-stage", sub("opportunities", "won,10000", "WON,10000"), expect_same()),
    ("leads-as-parquet", to_parquet("leads", _typed_leads), expect_same()),
    ("spend-in-monthly-files", _split_spend, expect_same()),
    ("spend-ledger-invoices", _invoices, expect_same()),
    ("stage-order-reset", sub("leads", "/,2025-01-20 10:00:00", "/,2025-01-10 10:00:00"), expect_same()),
    # refused: a number that could be wrong
    ("ambiguous-thousands", lambda f: european_spend(f, ["500", "1.000", "200", "300", "2.000", "1.500"]), refused("amount", 'decimal: ","')),
    ("nan-amount", sub("spend", "media,1000", "media,NaN"), refused("spend", "amount")),
    ("inf-amount", sub("spend", "media,1000", "media,inf"), refused("spend", "amount")),
    ("1e300-amount", sub("spend", "media,1000", "media,1e300"), refused("amount", "value up to")),
    ("int64-max-sessions", sub("web_sessions", ",600,500,", ",9223372036854775807,500,"), refused("sessions", "value up to")),
    ("fractional-count", sub("web_sessions", ",600,500,", ",600.5,500,"), refused("sessions", "whole number")),
    ("fractional-count-parquet", to_parquet("web_sessions", _fraction), refused("sessions", "whole number")),
    ("nan-amount-parquet", to_parquet("opportunities", _nan_amount), refused("amount", "finite")),
    ("negative-amount", sub("opportunities", "won,10000", "won,-10000"), refused("amount", ">= 0")),
    ("epoch-date", sub("leads", "2025-02-01 09:00:00,Paid", "epoch,Paid"), refused("created_at", "ISO")),
    ("infinity-date", sub("leads", "2025-02-01 09:00:00,Paid", "infinity,Paid"), refused("created_at", "ISO")),
    ("us-dates", sub("leads", "2025-02-01 09:00:00,Paid", "2/13/2025 09:00,Paid"), refused("created_at", "formats:")),
    ("year-2062", sub("leads", "L5,2025-05-05 12:00:00", "L5,2062-05-05 12:00:00"), refused("created_at", "2062")),
    ("spend-appended-twice", lines("spend", lambda r: r + r[1:]), refused("spend", "repeat earlier rows")),
    ("spend-files-overlap", _overlapping_spend, refused("overlap")),
    ("parquet-and-csv", _both_formats, refused("leads.csv", "leads.parquet")),
    ("xlsx-instead-of-csv", _xlsx_leads, refused("leads.xlsx")),
    ("folder-named-leads-csv", lambda f: ((f / "leads.csv").unlink(), (f / "leads.csv").mkdir()), refused("leads.csv", "not a file")),
    ("cp1252-bytes", lambda f: put(f, "leads", text(f, "leads").replace("Brand", "Marqué"), encoding="cp1252"), refused("leads.csv", "UTF-8")),
    ("ragged-row", sub("leads", "L3,2025-03-31 23:59:59,Email,Newsletter,/blog,,", "L3,2025-03-31 23:59:59,Email"), refused("leads.csv", "fields")),
    ("two-amount-columns", lines("spend", lambda r: [r[0] + ",amount", *(x + ",1" for x in r[1:])]), refused("amount")),
    ("currency-column-eur", lines("spend", lambda r: [r[0] + ",currency", *(x + ",EUR" for x in r[1:])]), refused("currency", "USD")),
    ("currency-marks-eur", sub("spend", "media,1000", "media,EUR 1000"), refused("amount", "EUR")),
    ("dangling-lead", sub("opportunities", "O3,L2,", "O3,L99,"), refused("lead_id", "L99")),
    ("quoted-boolean", goals('kpis:\n  - {name: x, owner: y, baseline: 1, target: 2, higher_is_better: "false"}\n'), refused("goals.yml", "higher_is_better")),
    ("unknown-metric", goals("kpis:\n  - {name: x, owner: y, baseline: 1, target: 2, metric: leadz}\n"), refused("leadz")),
    ("period-2026q5", goals("kpis:\n  - {name: x, owner: y, baseline: 1, target: 2, period: 2026Q5}\n"), refused("period")),
    ("negative-target", goals("kpis:\n  - {name: x, owner: y, baseline: 1, target: -2, metric: leads}\n"), refused("target")),
    ("duplicate-key", goals("currency: USD\ncurrency: EUR\n"), refused("currency", "appears twice")),
    ("alias-bomb", goals('a: &a ["x", "x"]\nb: &b [*a, *a]\nc: [*b, *b]\n'), refused("alias")),
    # missing data: n/a with a reason, never 0
    ("no-touchpoints", _drop("touchpoints"), expect_same()),
    ("no-spend", _drop("spend"), expect_same(marketing_cost=None, sales_cost=None, cost_per_lead=None, cac=None, marketing_roi=None)),
    ("header-only-spend", _header_only("spend"), expect_same(marketing_cost=None, sales_cost=None, cost_per_lead=None, cac=None, marketing_roi=None)),
    ("no-web-in-february", _no_web_in_february, expect_same(visits=700, bounce_rate=1 - 430 / 700, avg_session_duration_s=72_000 / 700)),
    ("utf-16-goals", goals("currency: USD\n", encoding="utf-16"), expect_same()),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("damage", "expected"), [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_variant_reads_right_or_is_refused(tmp_path, clean, damage, expected):
    folder = tmp_path / "tiny"
    shutil.copytree(TINY, folder)
    damage(folder)
    extra = ("--mapping", str(folder / "map.yml")) if (folder / "map.yml").exists() else ()
    code, m, err = run(folder, *extra)
    kind, detail = expected
    assert "Traceback" not in err, err
    if kind == REFUSED:
        assert code == 2, (
            f"expected exit 2, got {code}: a number where the export should be refused ({m and {k: m[k] for k in KEYS}})"
        )
        for word in detail:
            assert word in err, (word, err)
        OUTCOMES["refused"] += 1
        return
    assert code == 0, err
    for key in KEYS:
        want = detail.get(key, clean[key])
        assert m[key] == pytest.approx(want, rel=1e-12) if want is not None else m[key] is None, (key, m[key], want)
        if key in detail and detail[key] is None:
            assert m["undefined"][key], key  # n/a with a reason, never 0
        elif key in detail:
            assert m["partial"][key], key  # a value over part of the quarter says so
    OUTCOMES["read right"] += 1


def test_outside_quarters_exit_2(tmp_path):
    folder = tmp_path / "tiny"
    shutil.copytree(TINY, folder)
    for quarter in ("2030Q1", "2019Q1", "0000Q1", "9999Q4"):
        code, _, err = run(folder, quarter=quarter)
        assert code == 2 and "Traceback" not in err, (quarter, err)


NUMBER = st.decimals(min_value=0, max_value=10**7, places=2, allow_nan=False, allow_infinity=False)


def _style(value, style: str) -> str:
    whole, cents = f"{value:.2f}".split(".")
    groups = f"{int(whole):,}"
    if style == "us":
        return f"{groups}.{cents}"
    if style == "eu":
        return f"{groups.replace(',', '.')},{cents}"
    if style == "plain":
        return f"{whole}.{cents}"
    return f"{whole},{cents}"  # "comma": decimal comma, no thousands


# each convention once for sure, with amounts that are ambiguous if read in the other one
# (1.234 and 1,234 are both a thousand and a bit, or one and a quarter)
_AMBIGUOUS = [
    Decimal("1234.00"),
    Decimal("1.23"),
    Decimal("1234567.89"),
    Decimal("0.50"),
    Decimal("999.99"),
    Decimal("12"),
]


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amounts=st.lists(NUMBER, min_size=6, max_size=6), style=st.sampled_from(["us", "eu", "plain", "comma"]))
@example(amounts=_AMBIGUOUS, style="us")
@example(amounts=_AMBIGUOUS, style="eu")
@example(amounts=_AMBIGUOUS, style="plain")
@example(amounts=_AMBIGUOUS, style="comma")
def test_any_number_format_reads_exactly_or_is_refused(tmp_path_factory, amounts, style):
    """A ``;``-separated spend file in any common convention: the exact sum, or a refusal. Never a
    number read in the wrong convention. (Each example reads the data end to end, seconds each: the
    four conventions on ambiguous amounts always, and 12 drawn cases.)"""
    folder = tmp_path_factory.mktemp("numbers") / "tiny"
    shutil.copytree(TINY, folder)
    european_spend(folder, [_style(a, style) for a in amounts])
    code, m, err = run(folder, quarter="2025Q1")
    if code == 2:
        assert "amount" in err and "Traceback" not in err
        return
    assert code == 0, err
    # 2025Q1 holds the first five rows; the fifth is cost type `sales`
    expected = float(sum(amounts[:4]))
    assert m["marketing_cost"] == pytest.approx(expected, abs=0.005), (style, amounts)
    assert m["sales_cost"] == pytest.approx(float(amounts[4]), abs=0.005)
