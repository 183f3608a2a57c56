"""Tests of the report runner (kpi_helpers.report).

Fast tests cover parameters, metrics, tiles, index pages, locks and swaps without executing a
notebook; ``slow`` ones render tiny notebooks from tmp dirs end to end.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import HOSTILE_CAMPAIGN, HOSTILE_CHANNEL, TinyReport, tiny_metrics, write_notebook

from kpi_helpers import report
from kpi_helpers.exceptions import NotebookError, ParameterError, ReportError
from kpi_helpers.report import (
    format_value,
    headline_tiles,
    parse_params,
    render_report,
    run_cli,
    write_metrics,
    write_reports_index,
)

PARAMS = 'data: str = "data/sample"  # exports\nquarter: str = "latest"  # 2026Q3, latest\n'
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def _pages(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.html"))


# --------------------------------------------------------------------------------------------------
# Parameters


def test_parse_params_keeps_text_and_splits_on_first_equals() -> None:
    assert parse_params(["target=0.75", "note=a=b", "empty="]) == {
        "target": "0.75",
        "note": "a=b",
        "empty": "",
    }


@pytest.mark.parametrize("bad", ["novalue", "=5", "two words=1", "1x=2"], ids=["no-eq", "no-key", "space", "digit"])
def test_parse_params_rejects_malformed(bad: str) -> None:
    with pytest.raises(ParameterError, match=r"`--param` expects `name=value`"):
        parse_params([bad])


@pytest.mark.parametrize(
    ("text", "type_name", "expected"),
    [
        ("0.75", "float", 0.75),
        ("3", "int", 3),
        ("yes", "bool", True),
        ("off", "bool", False),
        ("2026Q3", "str", "2026Q3"),
        ("none", "Optional[int]", None),
        ("7", "int | None", 7),
        ("[1, 2]", "list", [1, 2]),
        ("5", "None", 5),  # untyped: Python literal ...
        ("Paid search", "None", "Paid search"),  # ... else the text
    ],
    ids=[
        "float",
        "int",
        "bool-yes",
        "bool-off",
        "str",
        "optional-none",
        "union",
        "list",
        "untyped-int",
        "untyped-text",
    ],
)
def test_param_text_is_converted_to_declared_type(text: str, type_name: str, expected: object) -> None:
    assert report._convert(text, type_name) == expected


def test_unknown_parameter_fails_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "executed.txt"
    nb = write_notebook(
        tmp_path / "04-roi.ipynb",
        ("code", PARAMS + "target_roi: float = 3.0  # goal", ["parameters"]),
        ("code", f"open({str(marker)!r}, 'w').write('ran')"),
    )
    out = tmp_path / "out"
    with pytest.raises(ParameterError, match=r"unknown parameter `spnd`.*`04-roi.ipynb`: data, quarter, target_roi"):
        render_report(data=tmp_path, quarter="2026Q3", out=out, notebooks=[nb], params={"spnd": "5"}, progress=None)
    assert not marker.exists()
    assert not (out / "2026Q3").exists()


def test_all_parameter_problems_are_reported_together(tmp_path: Path) -> None:
    typed = write_notebook(tmp_path / "a.ipynb", ("code", PARAMS + "target: float = 0.5", ["parameters"]))
    bare = write_notebook(tmp_path / "b.ipynb", ("code", "x = 1"))
    with pytest.raises(ParameterError) as info:
        render_report(
            data=tmp_path, quarter="2026Q3", out=tmp_path / "out", notebooks=[typed, bare],
            params={"target": "lots", "typo": "1"}, progress=None,
        )  # fmt: skip
    message = str(info.value)
    assert "`b.ipynb` has no cell tagged `parameters`" in message
    assert "unknown parameter `typo`" in message
    assert "parameter `target` for `a.ipynb` expects float, got 'lots'" in message
    assert message.endswith("nothing was executed")


def test_standard_parameters_cannot_come_through_params(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "a.ipynb", ("code", PARAMS, ["parameters"]))
    with pytest.raises(ParameterError, match=r"`quarter` cannot be passed with `--param`"):
        render_report(data=tmp_path, quarter="2026Q3", out=tmp_path, notebooks=[nb], params={"quarter": "x"})


def test_plan_passes_only_declared_standard_parameters(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "a.ipynb", ("code", PARAMS + "target: float = 0.5", ["parameters"]))
    standard = {"data": "/d", "quarter": "2026Q3", "mapping": None, "goals": "/g.yml", "engine": "duckdb"}
    (job,) = report._plan([nb], standard, {"target": "0.9"})
    assert job.parameters == {"data": "/d", "quarter": "2026Q3", "target": 0.9}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"data": "/no/such/folder"}, r"data `/no/such/folder` not found"),
        ({"notebooks": ["/no/such.ipynb"]}, r"notebook not found: `/no/such.ipynb`"),
        ({"quarter": "../etc"}, r"quarter `../etc` cannot name a report folder"),
    ],
    ids=["data", "notebook", "quarter-path"],
)
def test_bad_inputs_raise_report_error(tmp_path: Path, kwargs: dict, match: str) -> None:
    nb = write_notebook(tmp_path / "a.ipynb", ("code", PARAMS, ["parameters"]))
    args = {
        "data": tmp_path,
        "quarter": "2026Q3",
        "out": tmp_path / "out",
        "notebooks": [nb],
        "progress": None,
    }
    with pytest.raises(ReportError, match=match):
        render_report(**{**args, **kwargs})


def test_run_cli_exits_non_zero_with_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(data=tmp_path / "missing", quarter="2026Q3", out=tmp_path, notebooks=[], progress=None) == 1
    assert "kpi report: error: data `" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# Kernel


def test_ensure_kernel_runs_this_interpreter() -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    name = report.ensure_kernel()
    spec = KernelSpecManager().get_kernel_spec(name)
    assert Path(spec.argv[0]).parent == Path(sys.executable).parent
    assert report.ensure_kernel() == name  # idempotent


# --------------------------------------------------------------------------------------------------
# metrics.json, tiles, index pages


def test_write_metrics_turns_nan_into_null(tmp_path: Path) -> None:
    metrics = {
        "a": math.nan, "b": np.float64("inf"), "c": np.int64(3), "d": pd.NA, "e": pd.NaT,
        "f": pd.Timestamp("2026-07-01"), "g": np.array([1.0, np.nan]), "h": pd.Series({"x": 1.5}),
        "i": pd.DataFrame({"channel": ["Email"], "cvr": [np.nan]}),
    }  # fmt: skip
    path = write_metrics(tmp_path / "metrics.json", metrics)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {
        "a": None, "b": None, "c": 3, "d": None, "e": None, "f": "2026-07-01T00:00:00",
        "g": [1.0, None], "h": {"x": 1.5}, "i": [{"channel": "Email", "cvr": None}],
    }  # fmt: skip


def test_write_metrics_rejects_unknown_objects(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"`metrics.json`: cannot write a object"):
        write_metrics(tmp_path / "m.json", {"x": object()})


@pytest.mark.parametrize(
    ("kpi", "status", "attainment"),
    [
        ({"value": 110, "target": 100}, "good", "110% of target"),
        ({"value": 95, "target": 100}, "warn", "95% of target"),
        ({"value": 50, "target": 100}, "bad", "50% of target"),
        ({"value": 40, "target": 50, "better": "lower"}, "good", "125% of target"),
        ({"value": 60, "target": 50, "better": "lower"}, "bad", "83% of target"),
        ({"value": 60, "target": 50, "status": "at_risk"}, "warn", "120% of target"),
        ({"value": 10}, "none", ""),
        ({"value": math.nan, "target": 3}, "none", ""),
        # the kit's rows: status judged on the way from the baseline, which the tile then names
        (
            {
                "actual": 966_450,
                "target": 1_045_130,
                "baseline": 822_063,
                "progress": 0.647,
                "status": "off track",
                "format": "currency",
            },
            "bad",
            "92% of target; 65% of the way from 822k",
        ),
    ],
    ids=[
        "above",
        "within-10pct",
        "below",
        "lower-better-good",
        "lower-better-bad",
        "explicit",
        "no-target",
        "nan",
        "baseline",
    ],
)
def test_headline_tile_status(kpi: dict, status: str, attainment: str) -> None:
    (tile,) = headline_tiles({"kpis": [{"name": "leads", **kpi}]})
    assert (tile.status, tile.attainment) == (status, attainment)


def test_headline_tiles_accept_a_mapping() -> None:
    tiles = headline_tiles({"kpis": {"leads": 1200, "conversion_rate": {"value": 0.031, "target": 0.03}}})
    assert [(t.label, t.value, t.status) for t in tiles] == [
        ("Leads", "1,200", "none"),
        ("Conversion rate", "3.1%", "good"),
    ]


@pytest.mark.parametrize(
    ("value", "fmt", "currency", "text"),
    [
        (1234567, "currency", "USD", "$1.23M"),
        (-45300, "currency", "EUR", "-€45.3k"),
        (999, "currency", "CHF", "999 CHF"),
        (0.0312, "percent", "", "3.1%"),
        (850, "number", "", "850"),
        (12.345, "number", "", "12.3"),
        (80.666, "number", "", "80.7"),
        (None, "number", "", "—"),
        (math.nan, "number", "", "—"),
        ("Email", "number", "", "Email"),
    ],
    ids=[
        "millions",
        "thousands-neg",
        "unknown-currency",
        "percent",
        "int",
        "decimals",
        "target",
        "none",
        "nan",
        "text",
    ],
)
def test_format_value(value: object, fmt: str, currency: str, text: str) -> None:
    assert format_value(value, fmt, currency) == text


def _fake_quarter(out: Path, label: str, metrics: dict) -> None:
    (out / label).mkdir(parents=True)
    (out / label / "index.html").write_text("<html></html>")
    write_metrics(out / label / "metrics.json", metrics)


def test_reports_index_lists_quarters_newest_first_and_escapes(tmp_path: Path) -> None:
    _fake_quarter(tmp_path, "2025Q4", {"kpis": [{"name": "leads", "value": 900, "target": 1000}]})
    _fake_quarter(tmp_path, "2026Q2", {"kpis": [{"name": "x", "label": HOSTILE_CHANNEL, "value": 1}]})
    _fake_quarter(tmp_path, "2026Q1", {})
    (tmp_path / ".tmp-2026Q3-abc").mkdir()  # an unfinished run is not listed
    html = write_reports_index(tmp_path).read_text()
    assert re.findall(r'href="(\d{4}Q\d)/index.html"', html) == ["2026Q2", "2026Q1", "2025Q4"]
    assert HOSTILE_CHANNEL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "90% of target" in html


def test_quarter_index_escapes_names_from_the_data(tmp_path: Path) -> None:
    job = report._Job(tmp_path / "00-a.ipynb", "00-a", "A <b>page</b>", {})
    report._write_quarter_index(tmp_path, "2026Q3", tiny_metrics(quarter="2026Q3"), [job])
    html = (tmp_path / "index.html").read_text()
    assert HOSTILE_CHANNEL not in html and HOSTILE_CAMPAIGN not in html and "<b>page" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in html
    assert "<script" not in html.lower()


# --------------------------------------------------------------------------------------------------
# Locks and swaps (no kernel)


def test_second_run_gives_up_after_lock_timeout(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "a.ipynb", ("code", PARAMS, ["parameters"]))
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".2026Q3.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ReportError, match=r"another run is rendering quarter 2026Q3 .*gave up after 0.2 s"):
            render_report(data=tmp_path, quarter="2026Q3", out=out, notebooks=[nb], lock_timeout=0.2, progress=None)
    assert not (out / "2026Q3").exists()


def test_swap_replaces_the_old_report(tmp_path: Path) -> None:
    (tmp_path / "2026Q3").mkdir()
    (tmp_path / "2026Q3" / "old.txt").write_text("old")
    new = tmp_path / ".tmp-2026Q3-x"
    new.mkdir()
    (new / "new.txt").write_text("new")
    report._swap_into_place(new, tmp_path / "2026Q3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026Q3"]
    assert [p.name for p in (tmp_path / "2026Q3").iterdir()] == ["new.txt"]


def test_recover_restores_backup_after_a_crash_mid_swap(tmp_path: Path) -> None:
    backup = tmp_path / ".old-2026Q3-dead"
    backup.mkdir()
    (backup / "index.html").write_text("previous")
    (tmp_path / ".tmp-2026Q3-dead").mkdir()
    report._recover(tmp_path, "2026Q3")
    assert (tmp_path / "2026Q3" / "index.html").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026Q3"]


# --------------------------------------------------------------------------------------------------
# End to end (kernels)


@pytest.mark.slow
def test_report_writes_every_file(tiny_report: TinyReport) -> None:
    folder = tiny_report.folder
    assert sorted(p.name for p in folder.iterdir()) == [
        *("00-summary.html", "00-summary.ipynb", "01-widgets.html", "01-widgets.ipynb"),
        *("index.html", "metrics.json"),
    ]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(tiny_metrics(quarter="2026Q3"), allow_nan=True).replace("NaN", "null"))
    top = (tiny_report.out / "index.html").read_text()
    assert 'href="2026Q3/index.html"' in top and "$1.2M" in top
    assert not [p for p in tiny_report.out.iterdir() if p.name.startswith((".tmp-", ".old-", ".failed"))]
    assert re.search(r"\[2/2\] \d\d-\w+ done in \d+\.\d s", "\n".join(tiny_report.progress))
    assert tiny_report.progress[-1].endswith(f"{folder / 'index.html'}")


@pytest.mark.slow
def test_pages_are_offline_and_hide_code(tiny_report: TinyReport) -> None:
    pages = {p.name: p.read_text() for p in [*_pages(tiny_report.folder), tiny_report.out / "index.html"]}
    for name, html in pages.items():
        assert "<script src" not in html.lower(), name
        assert not EXTERNAL.findall(html), name
        assert 'class="jp-InputPrompt' not in html and '<div class="highlight' not in html, name  # no code
        code_cells = re.findall(r'class="jp-Cell jp-CodeCell[^"]*"', html)
        assert all("jp-mod-noInput" in c for c in code_cells), name
    summary, widgets = pages["00-summary.html"], pages["01-widgets.html"]
    assert "hidden_code_marker" not in summary  # code hidden ...
    assert "quarter=2026Q3 engine=duckdb" in summary  # ... its output shown, parameters injected
    assert re.search(r'<img[^>]+src="data:image/png;base64,', summary)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in summary and HOSTILE_CHANNEL not in summary
    assert "warning noise" not in summary  # stderr dropped from the page
    assert "target=0.75" in widgets  # --param text converted to the declared float
    for gone in ("WIDGET-CELL-OUTPUT", "REMOVED-CELL-OUTPUT", "widget-view+json", "untagged"):
        assert gone not in widgets
    assert 'href="../index.html"' in widgets and "2026Q3" in widgets


@pytest.mark.slow
def test_executed_notebooks_keep_everything(tiny_report: TinyReport) -> None:
    nb = json.loads((tiny_report.folder / "01-widgets.ipynb").read_text())
    text = json.dumps(nb)
    assert "WIDGET-CELL-OUTPUT" in text and "REMOVED-CELL-OUTPUT" in text  # only the HTML drops them
    assert nb["metadata"]["papermill"]["parameters"]["target"] == 0.75


@pytest.mark.slow
def test_failing_notebook_keeps_previous_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_notebook(tmp_path / "00-good.ipynb", ("code", PARAMS, ["parameters"]), ("code", "print('ok')"))
    bad = write_notebook(
        tmp_path / "01-bad.ipynb",
        ("markdown", "# Bad"),
        ("code", PARAMS, ["parameters"]),
        ("code", "x = 1"),
        ("code", "\nratio = x / 0  # boom\nprint(ratio)"),
    )
    out = tmp_path / "out"
    args = {"data": tmp_path, "quarter": "2026Q3", "out": out, "progress": None}
    render_report(**args, notebooks=[good], metrics_fn=lambda **_: {"kpis": {"leads": 1}})
    before = {p.name: p.read_bytes() for p in (out / "2026Q3").iterdir()}

    with pytest.raises(NotebookError) as info:
        render_report(**args, notebooks=[good, bad])
    err = info.value
    assert (err.notebook, err.cell_index, err.cell_source, err.ename) == (
        "01-bad.ipynb", 3, "ratio = x / 0  # boom", "ZeroDivisionError"
    )  # fmt: skip
    assert "`01-bad.ipynb` failed in cell 4 (counting from 1) `ratio = x / 0  # boom`" in str(err)
    kept = out / ".failed" / "2026Q3" / "01-bad.ipynb"
    assert err.failed_path == str(kept) and kept.exists() and str(kept) in str(err)
    assert "ZeroDivisionError" in kept.read_text()
    assert {p.name: p.read_bytes() for p in (out / "2026Q3").iterdir()} == before
    assert not [p for p in out.iterdir() if p.name.startswith((".tmp-", ".old-"))]

    assert run_cli(**args, notebooks=[bad]) == 1  # the CLI's exit path
    assert "kpi report: error: `01-bad.ipynb` failed in cell 4" in capsys.readouterr().err


@pytest.mark.slow
def test_concurrent_runs_end_consistent(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "00-slow.ipynb",
        ("code", PARAMS, ["parameters"]),
        ("code", "import time\ntime.sleep(0.5)\nprint(f'rendered {quarter}')"),
    )
    out = tmp_path / "out"
    errors: list[BaseException] = []
    lines: list[str] = []

    def run(quarter: str, tag: int) -> None:
        try:
            render_report(
                data=tmp_path, quarter=quarter, out=out, notebooks=[nb], progress=lines.append,
                metrics_fn=lambda **kw: {"kpis": [{"name": "leads", "value": tag}], "quarter": kw["quarter"]},
            )  # fmt: skip
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(q, i)) for i, q in enumerate(["2026Q3", "2026Q3", "2026Q2"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert any(line.startswith("Waiting for another run rendering quarter 2026Q3") for line in lines)
    for q in ("2026Q3", "2026Q2"):
        assert sorted(p.name for p in (out / q).iterdir()) == [
            "00-slow.html", "00-slow.ipynb", "index.html", "metrics.json"
        ]  # fmt: skip
        assert json.loads((out / q / "metrics.json").read_text())["quarter"] == q
        assert f"rendered {q}" in (out / q / "00-slow.html").read_text()
    top = (out / "index.html").read_text()
    assert re.findall(r'href="(\d{4}Q\d)/index.html"', top) == ["2026Q3", "2026Q2"]
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".lock")) == [
        "2026Q2",
        "2026Q3",
        "index.html",
    ]


@pytest.mark.slow
def test_quarter_resolved_by_hook_or_metrics(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "00-q.ipynb", ("code", PARAMS, ["parameters"]), ("code", "print(quarter)"))
    args = {"data": tmp_path, "out": tmp_path / "out", "notebooks": [nb], "progress": None}
    index = render_report(**args, quarter="latest", resolve_quarter=lambda text: "2026Q2")
    assert index == tmp_path / "out" / "2026Q2" / "index.html"
    index = render_report(**args, quarter="current", metrics_fn=lambda **kw: {"quarter": "2026Q4"})
    assert index.parent.name == "2026Q4"
    assert "2026Q4" in (index.parent / "00-q.html").read_text()
    assert os.listdir(tmp_path / "out" / "2026Q4")


@pytest.mark.slow
def test_cell_timeout_fails_the_notebook(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "00-hang.ipynb", ("code", PARAMS, ["parameters"]), ("code", "import time\ntime.sleep(60)")
    )
    with pytest.raises(NotebookError, match=r"`00-hang.ipynb` failed.*CellTimeoutError") as info:
        render_report(
            data=tmp_path,
            quarter="2026Q3",
            out=tmp_path / "out",
            notebooks=[nb],
            cell_timeout=1,
            progress=None,
        )
    assert info.value.failed_path and Path(info.value.failed_path).exists()


@pytest.mark.slow
def test_interrupted_run_kills_executing_kernels(tmp_path: Path) -> None:
    fast = write_notebook(tmp_path / "00-fast.ipynb", ("code", PARAMS, ["parameters"]), ("code", "1"))
    slow = write_notebook(
        tmp_path / "01-slow.ipynb", ("code", PARAMS, ["parameters"]), ("code", "import time\ntime.sleep(120)")
    )

    def interrupt(line: str) -> None:
        if "done in" in line:  # as if the user pressed Ctrl-C while 01-slow still executes
            raise RuntimeError("interrupted")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="interrupted"):
        render_report(data=tmp_path, quarter="2026Q3", out=tmp_path / "out", notebooks=[fast, slow], progress=interrupt)
    assert time.monotonic() - started < 30
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".2026Q3.lock"]


def test_tiles_and_tables_read_the_metrics_module_shape() -> None:
    metrics = {
        "currency": "EUR",
        "kpis": [
            {"name": "MQLs per quarter", "metric": "mqls", "actual": 80, "projected": 95.0, "target": 100,
             "status": "at risk", "owner": "Marketing operations"},
            {"name": "Revenue", "metric": "revenue", "actual": 2.0e5, "projected": None, "target": None,
             "status": "no data"},
        ],
        "by_channel": {HOSTILE_CHANNEL: {"leads": 12, "cost": 1500.0, "roi": 0.8}},
    }  # fmt: skip
    mqls, revenue = headline_tiles(metrics)
    assert (mqls.label, mqls.value, mqls.target, mqls.status) == ("MQLs per quarter", "80", "100", "warn")
    assert (mqls.status_text, mqls.attainment) == ("At risk", "projected 95, 95% of target")
    assert (revenue.value, revenue.status, revenue.target) == ("€200k", "none", "")
    (table,) = report._tables(metrics)
    assert [h["text"] for h in table["headers"]] == ["Channel", "Leads", "Cost", "ROI"]
    assert [c["text"] for c in table["rows"][0]] == [HOSTILE_CHANNEL, "12", "€1,500", "80.0%"]
    assert table["title"] == "Channels"
    (table,) = report._tables({**metrics, "attribution_model": "position_based"})
    assert table["title"] == "Channels (attributed revenue and ROI: position-based attribution)"


def test_quarter_index_shows_the_first_notebooks_conclusion_escaped(tmp_path: Path) -> None:
    import nbformat

    from kpi_helpers.report import _conclusion_html, _Job

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("display(Markdown(story))", metadata={"tags": ["conclusion"]})
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={"text/markdown": "**Revenue was up** for <script>alert(1)</script> [x](javascript:alert(1))"},
        )
    ]
    nb.cells.append(cell)
    nbformat.write(nb, tmp_path / "00-summary.ipynb")
    html = _conclusion_html(tmp_path, [_Job(tmp_path / "00-summary.ipynb", "00-summary", "Summary", {})])
    assert "<strong>Revenue was up</strong>" in html
    assert "<script" not in html and "&lt;script&gt;" in html and "javascript:" not in html
    assert _conclusion_html(tmp_path, []) == ""
