"""Tests of executed notebooks (kpi_helpers.executed): reproducible bytes; the cell and line that failed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest

from kpi_helpers import executed
from kpi_helpers.planning import Job


@pytest.mark.parametrize(
    ("traceback", "exec_count", "line"),
    [
        (["\x1b[0;31mZeroDivisionError\x1b[0m", "\x1b[0;32mCell In[4], line 3\x1b[0m", "Cell In[3], line 2, in f"],
         4, "z = f(y)"),
        (["Cell In[3], line 2, in f", "Cell In[4], line 2"], 4, "y = 2"),
        (["  Cell In[4], line 1\n    import os(\n             ^\nSyntaxError: invalid syntax\n"], 4, "import os"),
        (["Input In [4], in <cell line: 3>()"], 4, "z = f(y)"),
        (["Cell In[9], line 3"], 4, "z = f(y)"),
        (["Cell In[4], line 99"], 4, ""),
        (["KeyError: 'x'"], 4, ""),
        (None, None, ""),
    ],
    ids=["ipython8", "other-cell-first", "syntax", "ipython7", "count-differs", "beyond-cell", "no-frame", "none"],
)  # fmt: skip
def test_raising_line_comes_from_the_cells_frame(
    traceback: list[str] | None, exec_count: int | None, line: str
) -> None:
    assert executed.raising_line(traceback, exec_count, "import os\ny = 2\nz = f(y)") == line


def test_raising_line_is_stripped_and_truncated() -> None:
    source = "x = 1\n    total = " + " + ".join(["value"] * 30)
    line = executed.raising_line(["Cell In[2], line 2"], 2, source)
    assert line.startswith("total = value + ") and line.endswith("...") and len(line) == 80


def test_executed_notebook_is_made_reproducible(tmp_path: Path) -> None:
    def ran(model: str) -> nbformat.NotebookNode:
        nb = nbformat.v4.new_notebook()
        nb.metadata["papermill"] = {
            "start_time": "t0",
            "end_time": "t1",
            "duration": 1.5,
            "output_path": "/tmp/x/a.ipynb",
        }
        params = nbformat.v4.new_code_cell("quarter = '2026Q3'", metadata={"tags": ["injected-parameters"]})
        view = {"model_id": model, "version_major": 2, "version_minor": 0}
        widget = nbformat.v4.new_code_cell("w", id="keep-me", metadata={"execution": {"iopub.status.busy": "t"}})
        widget.outputs = [
            nbformat.v4.new_output("execute_result", data={executed.WIDGET_MIME: view}, execution_count=1)
        ]
        widget.metadata["papermill"] = {"start_time": "t0", "status": "completed"}
        nb.cells = [nbformat.v4.new_code_cell("x = 1"), params, widget]
        state = {model: {"model_name": "IntSliderModel", "state": {"layout": f"IPY_MODEL_{model[::-1]}"}},
                 model[::-1]: {"model_name": "LayoutModel", "state": {}}}  # fmt: skip
        nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": state}}
        return nb

    job = Job(tmp_path / "a.ipynb", "a", "A", {"quarter": "2026Q3"}, frozenset({"keep-me"}))
    first = executed.notebook_text(executed.reproducible(ran("0123456789abcdef" * 2), job))
    second = executed.notebook_text(executed.reproducible(ran("fedcba9876543210" * 2), job))
    assert first == second
    nb = json.loads(first)
    assert nb["metadata"]["papermill"] == {"output_path": "a.ipynb"}
    assert [c["id"] for c in nb["cells"]][2] == "keep-me"
    assert nb["cells"][1]["id"].startswith("parameters-")
    assert nb["cells"][2]["metadata"] == {"papermill": {"status": "completed"}}
    other = executed.reproducible(ran("0123456789abcdef" * 2), replace(job, parameters={"quarter": "2026Q2"}))
    assert other.cells[1].id != nb["cells"][1]["id"]  # the injected cell's id follows the parameters


def test_memory_addresses_are_dropped_from_plain_text() -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("s")
    cell.outputs = [
        nbformat.v4.new_output(
            "execute_result", data={"text/plain": "<pandas.io.formats.style.Styler at 0x7f92dcf22d10>"}
        ),
        nbformat.v4.new_output("stream", name="stdout", text="<object object at 0x7f00aa>\n"),
    ]
    nb.cells = [cell]
    out = executed.reproducible(nb, Job(Path("a.ipynb"), "a", "A", {}))
    assert out.cells[0].outputs[0]["data"]["text/plain"] == "<pandas.io.formats.style.Styler>"
    assert out.cells[0].outputs[1]["text"] == "<object object>\n"


def _saved(tmp_path: Path, cells: list) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    return path


def test_the_failing_cell_is_counted_in_the_source_notebook(tmp_path: Path) -> None:
    params = nbformat.v4.new_code_cell("quarter = 'x'", metadata={"tags": ["injected-parameters"]})
    banner = nbformat.v4.new_markdown_cell("error", metadata={"tags": ["papermill-error-cell-tag"]})
    path = _saved(tmp_path, [banner, nbformat.v4.new_code_cell("a"), params, nbformat.v4.new_code_cell("b")])
    assert executed.source_cell(path, 2) == 1  # the injected cell before it is not counted
    assert executed.source_cell(path, 0) == 0
    assert executed.source_cell(None, 3) == 3


def test_the_running_cell_is_the_last_one_started(tmp_path: Path) -> None:
    started = {"papermill": {"start_time": "t"}}
    cells = [nbformat.v4.new_code_cell("a", metadata=started), nbformat.v4.new_code_cell("b = 1", metadata=started)]
    path = _saved(tmp_path, [*cells, nbformat.v4.new_code_cell("c")])
    assert executed.running_cell(path) == (1, "b = 1")
    assert executed.running_cell(None) == (None, "")
