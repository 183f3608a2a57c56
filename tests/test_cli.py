"""The ``kpi`` command: the exit-code contract (0 done, 1 a run failed, 2 bad input or usage) for every
command, and the report's flags together (``--mapping PRESET --mapping FILE.yml --goals --param
--notebooks --engine``). The README's own commands run in ``tests/test_readme.py``."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest

from kpi_helpers.cli import EXIT_CODES, build_parser, main

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "tiny"
GA4 = ROOT / "tests" / "fixtures" / "exports" / "ga4" / "traffic_acquisition.csv"
SUMMARY_NB = ROOT / "notebooks" / "00-quarterly-summary.ipynb"
SLOW = pytest.mark.slow


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's own usage errors
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    shutil.copytree(TINY, folder)
    return folder


def test_help_states_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert EXIT_CODES.splitlines()[0] in text and "bad input or usage" in text and "a run failed" in text


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["validate", "--data", "/nope"], "does not exist"),
        (["summary", "--data", "/nope"], "does not exist"),
        (["report", "--data", "/nope", "--out", "{tmp}/out"], "not found"),
        (["validate", "--data", "{tiny}", "--mapping", "no-such-preset"], "neither a file nor a preset"),
        (["validate", "--data", "{tiny}", "--goals", "{tmp}/missing.yml"], "does not exist"),
        # computes the data's coverage: a few seconds
        pytest.param(["summary", "--data", "{tiny}", "--quarter", "2030Q1"], "outside the data", marks=SLOW),
        (["summary", "--data", "{tiny}", "--quarter", "next"], "cannot read quarter"),
        (["summary", "--data", "{tiny}", "--attribution-model", "magic"], "unknown attribution model"),
        (["report", "--data", "{tiny}", "--out", "{tmp}/out", "--param", "nope=1"], "unknown parameter"),
        (["report", "--data", "{tiny}", "--out", "{tmp}/out", "--param", "attribution_model"], "name=value"),
        (["report", "--data", "{tiny}", "--out", "{tmp}/out", "--cell-timeout", "0"], "cell"),
        (["report", "--data", "{tiny}", "--out", "{tiny}/leads.csv"], "leads.csv"),
        (["report", "--data", "{tiny}", "--out", "{tmp}/out", "--notebooks", "/etc/passwd"], "passwd"),
        (["sample", "--out", "{tiny}"], "did not write"),
        (["validate", "--bogus"], "unrecognized arguments"),
        (["backtest", "--data", "/nope"], "does not exist"),
        (["backtest", "--data", "{tiny}", "--days", "0,30"], "days must be 1-91"),
        (["backtest", "--data", "{tiny}", "--days", "thirty"], "whole days"),
        (["backtest", "--data", "{tiny}", "--metric", "visits"], "unknown metric `visits`"),
    ],
    ids=[
        "validate-no-folder", "summary-no-folder", "report-no-folder", "unknown-preset", "missing-goals",
        "quarter-outside", "quarter-unreadable", "unknown-model", "unknown-param", "param-without-value",
        "cell-timeout-zero", "out-is-a-file", "notebook-not-a-notebook", "sample-over-user-files", "unknown-option",
        "backtest-no-folder", "backtest-day-zero", "backtest-days-text", "backtest-unknown-metric",
    ],
)  # fmt: skip
def test_bad_input_or_usage_exits_2(tiny, tmp_path, argv, words):
    argv = [a.format(tiny=tiny, tmp=tmp_path) for a in argv]
    code, _, err = run(*argv)
    assert code == 2, err
    assert words in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    ("argv", "days"),
    [([], None), (["--days", "15,40"], (15, 40))],
    ids=["default", "given"],
)
def test_backtest_arguments(argv: list[str], days: tuple[int, ...] | None) -> None:
    args = build_parser().parse_args(["backtest", *argv])
    assert args.days == days and args.metric == "bookings" and args.json is False and args.data == "data/sample"


@pytest.mark.parametrize(("given", "paper"), [(None, "A4"), ("letter", "Letter"), (" a4 ", "A4")])
def test_report_paper_size(given: str | None, paper: str) -> None:
    argv = ["report"] + (["--paper", given] if given else [])
    assert build_parser().parse_args(argv).paper == paper


def test_an_unknown_paper_size_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["report", "--paper", "A3"])
    assert exit_.value.code == 2 and "expected A4 or Letter; got 'A3'" in capsys.readouterr().err


def test_backtest_help_names_the_default_days(capsys):
    from kpi_helpers.backtest import DAYS

    with pytest.raises(SystemExit):
        build_parser().parse_args(["backtest", "--help"])
    assert ",".join(map(str, DAYS)) in capsys.readouterr().out.replace("\n", "")


def test_backtest_of_too_short_a_history_is_empty(tiny):
    """The tiny fixture holds no quarter with a year of data before it: nothing to score, said as n/a."""
    code, out, err = run("backtest", "--data", str(tiny), "--json")
    assert code == 0, err
    assert '"n_forecasts": 0' in out and '"brier": null' in out


def test_invalid_data_exits_2_naming_file_and_column(tiny):
    (tiny / "spend.csv").write_text((tiny / "spend.csv").read_text().replace("media,1000", "media,-1000"))
    code, _, err = run("validate", "--data", str(tiny))
    assert code == 2 and "`spend.csv`, column `amount`" in err and "row 2" in err


@pytest.mark.parametrize("command", ["validate", pytest.param("summary", marks=pytest.mark.slow)])  # summary: seconds
def test_good_data_exits_0(tiny, command):
    code, out, err = run(command, "--data", str(tiny), *(["--quarter", "2025Q1"] if command == "summary" else []))
    assert code == 0, err
    assert out


@pytest.mark.slow
def test_a_failing_notebook_exits_1_naming_notebook_cell_and_line(tiny, tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('data: str = ""  # data\nquarter: str = "latest"  # quarter')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("import math\nx = 1\ny = x / 0\nz = 2")]
    path = tmp_path / "nb" / "00-fails.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    code, _, err = run("report", "--data", str(tiny), "--out", str(tmp_path / "out"), "--notebooks", str(path))
    assert code == 1, err
    assert "00-fails.ipynb" in err and "cell 2" in err and "y = x / 0" in err and "ZeroDivisionError" in err


@pytest.mark.slow
def test_report_with_every_flag(tiny, tmp_path):
    """A GA4 export by preset, spend by the user's own mapping file, goals elsewhere, a parameter,
    one notebook, the engine named: exit 0, and the page and metrics.json say what they hold."""
    (tiny / "web_sessions.csv").unlink()
    shutil.copy(GA4, tiny / "traffic_acquisition.csv")
    spend = (
        (tiny / "spend.csv")
        .read_text()
        .replace("date,channel,campaign,cost_type,amount", "Day,Channel,Campaign,Type,Cost")
    )
    (tiny / "spend.csv").unlink()
    (tiny / "costs.csv").write_text(spend)
    mapping = tmp_path / "costs.yml"
    mapping.write_text(
        "version: 1\ntables:\n  spend:\n    file: costs.csv\n"
        "    columns: {date: Day, channel: Channel, campaign: Campaign, cost_type: Type, amount: Cost}\n"
    )
    goals = tmp_path / "elsewhere.yml"
    (tiny / "goals.yml").unlink(missing_ok=True)
    goals.write_text("currency: USD\ngross_margin: 0.5\n")
    out = tmp_path / "out"
    code, _, err = run(
        "report", "--data", str(tiny), "--mapping", "ga4", "--mapping", str(mapping), "--goals", str(goals),
        "--param", "attribution_model=linear", "--notebooks", str(SUMMARY_NB), "--engine", "duckdb",
        "--quarter", "2025Q1", "--out", str(out), "--paper", "letter",
    )  # fmt: skip
    assert code == 0, err
    assert "size: Letter;" in (out / "2025Q1" / "report.html").read_text(encoding="utf-8")
    import json

    m = json.loads((out / "2025Q1" / "metrics.json").read_text())
    assert m["attribution_model"] == "linear" and m["gross_margin"] == 0.5
    assert m["marketing_cost"] == 2000.0  # from costs.csv through the user's mapping
    assert "web_sessions" in m["tables"] and m["visits"] is not None  # from the GA4 export through the preset
    assert (out / "2025Q1" / "00-quarterly-summary.html").is_file() and (out / "index.html").is_file()
