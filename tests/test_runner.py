"""Tests of the report runner (kpi_helpers.runner): refusals before any kernel starts, exit codes,
locks, failures kept, a full disk, reproducible files.

Fast tests run without executing a notebook (kernel starts are recorded, not made); ``slow`` ones
render tiny notebooks from tmp dirs end to end.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import HOSTILE_CHANNEL, TinyReport, kit_quarter, tiny_metrics, write_notebook

from kpi_helpers import fileio, kernels, outdir
from kpi_helpers.exceptions import NotebookError, ParameterError, ReportError, ReportInputError
from kpi_helpers.runner import render_report, run_cli, write_metrics

PARAMS = 'data: str = "data/sample"  # exports\nquarter: str = "latest"  # 2026Q3, latest\n'
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def _pages(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.html"))


# --------------------------------------------------------------------------------------------------
# Parameters


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


# --------------------------------------------------------------------------------------------------
# Bad input or usage: ReportInputError (exit 2), found before any kernel starts


@pytest.fixture
def kernel_starts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every kernel start (and kernelspec install) instead of doing it."""
    calls: list[str] = []

    def start(kernel: str, cwd: Path) -> None:
        calls.append(f"start {kernel}")
        raise RuntimeError("no kernel in this test")

    monkeypatch.setattr(kernels, "start_kernel", start)
    monkeypatch.setattr(kernels, "ensure_kernel", lambda *a, **k: calls.append("ensure_kernel") or "kpi-kit")
    return calls


def _case_notebook_bytes(tmp: Path, content: bytes, name: str = "passwd") -> dict:
    path = tmp / name
    path.write_bytes(content)
    return {"notebooks": [path]}


def _case_duplicate_stems(tmp: Path) -> dict:
    a = write_notebook(tmp / "x" / "00-a.ipynb", ("code", PARAMS, ["parameters"]))
    b = write_notebook(tmp / "y" / "00-a.ipynb", ("code", PARAMS, ["parameters"]))
    return {"notebooks": [a, b]}


def _case_out_is_file(tmp: Path) -> dict:
    (tmp / "out.txt").write_text("mine")
    return {"out": tmp / "out.txt"}


def _case_out_under_file(tmp: Path) -> dict:
    (tmp / "out.txt").write_text("mine")
    return {"out": tmp / "out.txt" / "reports"}


def _case_foreign_in_quarter(tmp: Path) -> dict:
    kit_quarter(tmp / "out")
    (tmp / "out" / "2026Q3" / "notes.txt").write_text("my notes")
    (tmp / "out" / "2026Q3" / "drafts").mkdir()
    return {}


def _case_users_own_quarter_folder(tmp: Path) -> dict:
    (tmp / "out" / "2026Q3").mkdir(parents=True)
    (tmp / "out" / "2026Q3" / "index.html").write_text("<h1>my own page</h1>")
    return {}


def _case_edited_kit_page(tmp: Path) -> dict:
    folder = kit_quarter(tmp / "out")
    (folder / "index.html").write_text("<p>kit page, edited by hand</p>")
    return {}


def _case_foreign_when_quarter_is_latest(tmp: Path) -> dict:
    _case_foreign_in_quarter(tmp)
    return {"quarter": "latest", "resolve_quarter": lambda text: "2026Q3"}


def _case_foreign_index(tmp: Path) -> dict:
    (tmp / "out").mkdir()
    (tmp / "out" / "index.html").write_text("<h1>our team site</h1>")
    return {}


def _case_mapping(tmp: Path) -> dict:
    (tmp / "mine.yml").write_text("leads: {file: leads.csv}\n")
    return {"mapping": ["ga4", tmp / "mine.yml", tmp / "missing.yml", "ga5"]}


SECRET = b"root:x:0:0:SECRET-HASH:/root:/bin/bash\n"
BAD_INPUTS = {
    "data-missing": (lambda tmp: {"data": "/no/such/folder"}, r"data `/no/such/folder` not found"),
    "notebook-missing": (lambda tmp: {"notebooks": ["/no/such.ipynb"]}, r"notebook not found: `/no/such.ipynb`"),
    "notebook-folder": (lambda tmp: {"notebooks": [tmp]}, r"not a notebook file: .*pass `.ipynb` files, not folders"),
    "notebook-passwd": (
        lambda tmp: _case_notebook_bytes(tmp, SECRET),
        r"`.*passwd` is not a notebook \(not JSON at line 1, column 1\); pass Jupyter notebooks",
    ),
    "notebook-binary": (lambda tmp: _case_notebook_bytes(tmp, b"\xff\xfe\x00\x01"), r"not a notebook \(not UTF-8"),
    "notebook-other-json": (
        lambda tmp: _case_notebook_bytes(tmp, b'{"cells": "no"}', "x.ipynb"),
        r"not a notebook \(JSON without `nbformat` and `cells`\)",
    ),
    "notebooks-empty": (lambda tmp: {"notebooks": []}, r"`notebooks` is empty"),
    "notebook-stems": (_case_duplicate_stems, r"two notebooks would write the same page: `00-a`"),
    "param-unknown": (lambda tmp: {"params": {"spnd": "5"}}, r"unknown parameter `spnd`"),
    "param-type": (lambda tmp: {"params": {"target": "lots"}}, r"parameter `target` for `a.ipynb` expects float"),
    "quarter-path": (lambda tmp: {"quarter": "../etc"}, r"quarter `../etc` cannot name a report folder"),
    "quarter-dotted": (lambda tmp: {"quarter": "index.html"}, r"quarter `index.html` cannot name a report folder"),
    "out-file": (_case_out_is_file, r"`--out` `.*out.txt` is a file; pass a folder"),
    "out-under-file": (_case_out_under_file, r"`--out` `.*reports` lies under the file `.*out.txt`"),
    "mapping": (_case_mapping, r"mapping `.*missing.yml`, `ga5`: neither a file nor a preset \(ga4, "),
    "mapping-type": (lambda tmp: {"mapping": [3]}, r"mapping `3` \(expected a preset name or a file path\)"),
    "goals-missing": (lambda tmp: {"goals": tmp / "goals.yaml"}, r"goals file `.*goals.yaml` not found"),
    "timeout-zero": (lambda tmp: {"cell_timeout": 0}, r"`cell_timeout` must be a positive number of seconds"),
    "timeout-negative": (lambda tmp: {"cell_timeout": -5}, r"`cell_timeout` .* got -5"),
    "timeout-nan": (lambda tmp: {"cell_timeout": math.nan}, r"`cell_timeout` .* got nan"),
    "timeout-text": (lambda tmp: {"cell_timeout": "soon"}, r"`cell_timeout` .* got 'soon'"),
    "timeout-bool": (lambda tmp: {"cell_timeout": True}, r"`cell_timeout` .* got True"),
    "foreign-files": (
        _case_foreign_in_quarter,
        r"`.*2026Q3` holds files the kit did not write: `drafts/`, `notes.txt`; the report for 2026Q3 "
        r"would replace that folder. To keep them, move them elsewhere .*or pass another `--out`",
    ),
    "users-own-folder": (_case_users_own_quarter_folder, r"holds files the kit did not write: `index.html`;"),
    "edited-kit-page": (_case_edited_kit_page, r"`index.html` \(changed since the kit wrote it\)"),
    "foreign-files-latest": (_case_foreign_when_quarter_is_latest, r"holds files the kit did not write: `drafts/`"),
    "foreign-index": (
        _case_foreign_index,
        r"`.*out/index.html` was not written by the kit, and the report index would overwrite it. "
        r"Move it elsewhere, or pass another `--out`",
    ),
}


@pytest.mark.parametrize(("case", "match"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_refused_before_any_kernel_starts(
    tmp_path: Path, kernel_starts: list[str], case: Callable[[Path], dict], match: str
) -> None:
    nb = write_notebook(tmp_path / "a.ipynb", ("code", PARAMS + "target: float = 0.5", ["parameters"]))
    args = {"data": tmp_path, "quarter": "2026Q3", "out": tmp_path / "out", "notebooks": [nb], "progress": None}
    args.update(case(tmp_path))
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ReportInputError, match=match) as info:
        render_report(**args)
    assert info.value.exit_code == 2
    assert kernel_starts == []
    assert "SECRET" not in str(info.value)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == snapshot  # nothing touched


def test_resolved_quarter_that_cannot_name_a_folder_is_refused(tmp_path: Path, kernel_starts: list[str]) -> None:
    """Resolution overlaps the kernels' start (the data is validated there), so kernels may have
    booted; none executed anything."""
    marker = tmp_path / "executed.txt"
    nb = write_notebook(tmp_path / "a.ipynb", ("code", PARAMS, ["parameters"]), ("code", f"open({str(marker)!r}, 'w')"))
    with pytest.raises(ReportInputError, match=r"quarter `a/b` cannot name a report folder"):
        render_report(
            data=tmp_path, quarter="latest", out=tmp_path / "out", notebooks=[nb], progress=None,
            resolve_quarter=lambda text: "a/b",
        )  # fmt: skip
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_out_that_cannot_be_written_is_refused(
    tmp_path: Path, kernel_starts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Permission bits do not stop root (the tests' user here): refuse the probe file instead.
    real_open = os.open

    def deny(path: object, *args: object, **kwargs: object) -> int:
        if ".kpi-probe-" in str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", deny)
    nb = write_notebook(tmp_path / "a.ipynb", ("code", PARAMS, ["parameters"]))
    (tmp_path / "out").mkdir()
    with pytest.raises(ReportInputError, match=r"`--out` `.*out` cannot be written \(Permission denied\)"):
        render_report(data=tmp_path, quarter="2026Q3", out=tmp_path / "out", notebooks=[nb], progress=None)
    with pytest.raises(ReportInputError, match=r"`--out` `.*new` cannot be created in `.*out` \(Permission denied\)"):
        render_report(data=tmp_path, quarter="2026Q3", out=tmp_path / "out" / "new", notebooks=[nb], progress=None)
    assert kernel_starts == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_is_refused(tmp_path: Path, kernel_starts: list[str]) -> None:
    nb = write_notebook(tmp_path / "a.ipynb", ("code", PARAMS, ["parameters"]))
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(ReportInputError, match=r"`--out` `.*out` cannot be written"):
            render_report(data=tmp_path, quarter="2026Q3", out=out, notebooks=[nb], progress=None)
    finally:
        out.chmod(0o700)
    assert kernel_starts == []


def test_malformed_source_date_epoch_is_refused(
    tmp_path: Path, kernel_starts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    nb = write_notebook(tmp_path / "a.ipynb", ("code", PARAMS, ["parameters"]))
    with pytest.raises(ReportInputError, match=r"`SOURCE_DATE_EPOCH` must be whole seconds since 1970"):
        render_report(data=tmp_path, quarter="2026Q3", out=tmp_path / "out", notebooks=[nb], progress=None)
    assert kernel_starts == []


def test_kernels_boot_while_the_quarter_is_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing refused: the kernel starts while `resolve_quarter` (the data's validation) runs."""
    booted = threading.Event()

    def start(kernel: str, cwd: Path) -> None:
        booted.set()
        raise RuntimeError("no kernel in this test")

    monkeypatch.setattr(kernels, "start_kernel", start)
    seen: list[bool] = []

    def resolve(text: str) -> str:
        seen.append(booted.wait(10))
        return "2026Q3"

    nb = write_notebook(tmp_path / "a.ipynb", ("code", PARAMS, ["parameters"]))
    with pytest.raises(NotebookError, match=r"`a.ipynb` failed: RuntimeError: no kernel in this test"):
        render_report(
            data=tmp_path, quarter="latest", out=tmp_path / "out", notebooks=[nb], progress=None,
            resolve_quarter=resolve, kernel_name="kpi-kit",
        )  # fmt: skip
    assert seen == [True]


def test_run_cli_exits_with_the_errors_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(data=tmp_path / "missing", quarter="2026Q3", out=tmp_path, notebooks=[], progress=None) == 2
    assert "kpi report: error: data `" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# metrics.json


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


# --------------------------------------------------------------------------------------------------
# Locks (no kernel)


def test_second_run_gives_up_after_lock_timeout(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "a.ipynb", ("code", PARAMS, ["parameters"]))
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".2026Q3.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ReportError, match=r"another run is rendering quarter 2026Q3 .*gave up after 0.2 s"):
            render_report(data=tmp_path, quarter="2026Q3", out=out, notebooks=[nb], lock_timeout=0.2, progress=None)
    assert not (out / "2026Q3").exists()


# --------------------------------------------------------------------------------------------------
# End to end (kernels)


@pytest.mark.slow
def test_report_writes_every_file(tiny_report: TinyReport) -> None:
    folder = tiny_report.folder
    assert sorted(p.name for p in folder.iterdir()) == [
        ".kpi-manifest.json",
        *("00-summary.html", "00-summary.ipynb", "01-widgets.html", "01-widgets.ipynb"),
        *("brief.html", "changes.json", "index.html", "metrics.json", "report.html"),
    ]
    manifest = json.loads((folder / ".kpi-manifest.json").read_text())["files"]
    assert manifest == {p.name: [fileio.sha256_of(p)] for p in folder.iterdir() if p.name != ".kpi-manifest.json"}
    assert outdir.foreign_files(folder) == []
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
    # the notebooks link to each other's .ipynb (JupyterLab) or page: on the pages, both reach the page
    body = summary.split("</header>", 1)[1]  # below the page's own navigation
    links = [link for _, link in re.findall(r'href="(\./)?(0\d-[^"]*)"', body)]
    assert "01-widgets.html" in links and "01-widgets.html#top" in links
    assert not [link for link in links if ".ipynb" in link]


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
        ("code", "x = 1\n\ndef divide(a, b):\n    return a / b"),
        ("code", "import math\n\nratio = divide(x, 0)  # boom\nprint(ratio)"),
    )
    out = tmp_path / "out"
    args = {"data": tmp_path, "quarter": "2026Q3", "out": out, "progress": None}
    render_report(**args, notebooks=[good], metrics_fn=lambda **_: {"kpis": {"leads": 1}})
    before = {p.name: p.read_bytes() for p in (out / "2026Q3").iterdir()}

    with pytest.raises(NotebookError) as info:
        render_report(**args, notebooks=[good, bad])
    err = info.value
    # the line that raised, in the failing cell (not its first line, nor the function's line)
    assert (err.notebook, err.cell_index, err.cell_source, err.ename) == (
        "01-bad.ipynb", 3, "ratio = divide(x, 0)  # boom", "ZeroDivisionError"
    )  # fmt: skip
    assert err.exit_code == 1
    assert "`01-bad.ipynb` failed in cell 4 (counting from 1) `ratio = divide(x, 0)  # boom`" in str(err)
    (first_run,) = (out / ".failed" / "2026Q3").iterdir()
    assert re.fullmatch(r"\d{8}T\d{6}Z(-\d+)?", first_run.name)
    kept = first_run / "01-bad.ipynb"
    assert err.failed_path == str(kept) and kept.exists() and str(kept) in str(err)
    assert "ZeroDivisionError" in kept.read_text()
    assert {p.name: p.read_bytes() for p in (out / "2026Q3").iterdir()} == before
    assert not [p for p in out.iterdir() if p.name.startswith((".tmp-", ".old-"))]

    assert run_cli(**args, notebooks=[bad]) == 1  # the CLI's exit path
    assert "kpi report: error: `01-bad.ipynb` failed in cell 4" in capsys.readouterr().err
    runs = sorted((out / ".failed" / "2026Q3").iterdir())
    assert len(runs) == 2 and runs[0] == first_run and kept.exists()  # the earlier failure is kept


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
            ".kpi-manifest.json", "00-slow.html", "00-slow.ipynb", "brief.html", "changes.json", "index.html",
            "metrics.json", "report.html",
        ]  # fmt: skip
        assert json.loads((out / q / "metrics.json").read_text())["quarter"] == q
        assert f"rendered {q}" in (out / q / "00-slow.html").read_text()
    top = (out / "index.html").read_text()
    assert re.findall(r'href="(\d{4}Q\d)/index.html"', top) == ["2026Q3", "2026Q2"]
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".lock")) == [
        ".history",
        ".kpi-manifest.json",
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
def test_cell_timeout_names_the_cell(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "00-hang.ipynb",
        ("code", PARAMS, ["parameters"]),
        ("code", "x = 1"),
        ("code", "import time\ntime.sleep(60)"),
    )
    with pytest.raises(NotebookError) as info:
        render_report(
            data=tmp_path, quarter="2026Q3", out=tmp_path / "out", notebooks=[nb], progress=None,
            cell_timeout=0.5,  # honoured as 1 s: nbclient counts whole seconds
        )  # fmt: skip
    assert str(info.value).startswith(
        "`00-hang.ipynb` failed in cell 3 (counting from 1) `import time`: CellTimeoutError: the cell ran longer "
        "than the cell timeout (1 s); make it faster or raise `--cell-timeout`"
    )
    assert info.value.exit_code == 1
    assert info.value.failed_path and Path(info.value.failed_path).exists()


@pytest.mark.slow
def test_dead_kernel_names_the_cell(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "00-die.ipynb", ("code", PARAMS, ["parameters"]), ("code", "import os\nos.kill(os.getpid(), 9)")
    )
    with pytest.raises(NotebookError) as info:
        render_report(data=tmp_path, quarter="2026Q3", out=tmp_path / "out", notebooks=[nb], progress=None)
    assert str(info.value).startswith(
        "`00-die.ipynb` failed in cell 2 (counting from 1) `import os`: DeadKernelError: the kernel died while the "
        "cell ran (out of memory, or killed)"
    )
    assert info.value.exit_code == 1


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


@pytest.mark.slow
def test_a_full_disk_fails_the_run_and_keeps_the_previous_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = write_notebook(tmp_path / "00-a.ipynb", ("code", PARAMS, ["parameters"]), ("code", "print('page')"))
    out = tmp_path / "out"
    args = {"data": tmp_path, "quarter": "2026Q3", "out": out, "notebooks": [nb], "progress": None}
    render_report(**args)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    write = fileio.write_atomic

    for name in ("00-a.html", "metrics.json", "index.html"):

        def full(path: Path, data: str | bytes, name: str = name, **kw: object) -> None:
            if Path(path).name == name:
                raise OSError(errno.ENOSPC, "No space left on device")
            write(path, data, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(fileio, "write_atomic", full)
        with pytest.raises(ReportError) as info:
            render_report(**args)
        assert info.value.exit_code == 1
        assert str(info.value).startswith(f"the disk holding `{out}` is full (no space left writing the report); ")
        # (`index.html`: the quarter's own index, written before the swap, fails first)
        assert "; the previous report for 2026Q3 is unchanged. Free some space" in str(info.value)
        assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
        assert not [p for p in out.iterdir() if p.name.startswith((".tmp-", ".old-"))]

    def top_index_full(path: Path, data: str | bytes, **kw: object) -> None:
        if Path(path) == out / "index.html":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        write(path, data, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(fileio, "write_atomic", top_index_full)
    with pytest.raises(ReportError, match=r"no space left writing `index.html`\); the report for 2026Q2 is in place"):
        render_report(**{**args, "quarter": "2026Q2"})
    assert (out / "2026Q2" / "index.html").exists() and (out / "index.html").read_bytes() == before[Path("index.html")]


@pytest.mark.slow
def test_mappings_reach_the_notebooks_as_a_list_and_other_files_stay(tmp_path: Path) -> None:
    (tmp_path / "mine.yml").write_text("leads: {file: leads.csv}\n")
    nb = write_notebook(
        tmp_path / "00-m.ipynb",
        ("code", PARAMS + "mapping: list = []  # presets and files", ["parameters"]),
        ("code", "print(mapping)"),
    )
    out = tmp_path / "out"  # a first run into a folder that holds other things
    (out / "2024Q1").mkdir(parents=True)
    (out / "2024Q1" / "index.html").write_text("<h1>my page</h1>")
    (out / "notes.txt").write_text("mine")
    render_report(
        data=tmp_path, quarter="2026Q3", out=out, notebooks=[nb], progress=None,
        mapping=["ga4", tmp_path / "mine.yml"],
    )  # fmt: skip
    executed = json.loads((out / "2026Q3" / "00-m.ipynb").read_text())
    assert executed["metadata"]["papermill"]["parameters"]["mapping"] == ["ga4", str(tmp_path / "mine.yml")]
    assert (out / "notes.txt").read_text() == "mine" and (
        out / "2024Q1" / "index.html"
    ).read_text() == "<h1>my page</h1>"
    assert re.findall(r'href="(\w+)/index.html"', (out / "index.html").read_text()) == ["2026Q3"]


@pytest.mark.slow
def test_same_inputs_give_byte_identical_files(
    tmp_path: Path, tiny_notebooks: tuple[list[Path], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    notebooks, data = tiny_notebooks
    runs = []
    for name in ("first", "second"):
        out = tmp_path / name
        render_report(
            data=data, quarter="2026Q3", out=out, notebooks=notebooks, params={"target": "0.75"},
            metrics_fn=tiny_metrics, progress=None,
        )  # fmt: skip
        runs.append({str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    first, second = runs
    assert sorted(first) == sorted(second)
    assert "2026Q3/01-widgets.ipynb" in first and "2026Q3/00-summary.html" in first
    assert [name for name in first if first[name] != second[name]] == []
    assert b"generated 2023-11-14 22:13 UTC" in first["index.html"]
    assert b"generated 2023-11-14 22:13 UTC" in first["2026Q3/index.html"]
