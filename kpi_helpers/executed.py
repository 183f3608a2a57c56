"""Executed notebooks as the kit keeps them: reproducible bytes, and where one failed.

Reproducible: the same data, kit and ``SOURCE_DATE_EPOCH`` give byte-identical notebooks. Cell ids
come from the notebook's own ids, else from its name and the cell's position (the injected
parameters cell: from the name and the parameters); widget model ids from the notebook's name and
their order; papermill's and nbclient's timings are never stored; papermill's ``output_path`` is
the file's own name; memory addresses in default reprs are dropped. Figures are PNG
(deterministic); a notebook that emits SVG must set ``svg.hashsalt`` itself.

Where a notebook failed: the cell counted in the source notebook (papermill's injected cell left
out), the cell that was running when a kernel died or a cell timed out, and the line of the cell
that raised, from the traceback IPython recorded.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import jsonio
from .planning import Job, clip

__all__ = ["WIDGET_MIME", "first_line", "notebook_text", "raising_line", "reproducible", "running_cell", "source_cell"]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def reproducible(nb: Any, job: Job) -> Any:
    """The executed notebook without what changes from run to run (module docstring).

    Timings go (papermill's per notebook and per cell; nbclient's are not recorded); papermill's
    ``output_path`` becomes the file's own name (it named the temporary folder); cell ids the
    source notebook does not carry (papermill's injected cell; every cell of a notebook saved
    before nbformat 4.5) are derived from the notebook's name and the cell's position, the
    injected one from the parameters; widget model ids from the notebook's name and their order;
    memory addresses in default reprs are dropped from plain-text outputs.
    """
    meta = nb.metadata.get("papermill")
    if isinstance(meta, dict):
        for key in ("start_time", "end_time", "duration"):
            meta.pop(key, None)
        meta["output_path"] = f"{job.name}.ipynb"
    params = jsonio.dumps(job.parameters, indent=None, sort_keys=True)
    for i, cell in enumerate(nb.cells):
        cell.metadata.pop("execution", None)
        cell_meta = cell.metadata.get("papermill")
        if isinstance(cell_meta, dict):
            for key in ("start_time", "end_time", "duration"):
                cell_meta.pop(key, None)
        for out in cell.get("outputs", []):
            _drop_addresses(out)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell["id"] = "parameters-" + _digest(job.name, params)
        elif cell.get("id") not in job.cell_ids:
            cell["id"] = "cell-" + _digest(job.name, str(i))
    return _renumber_widgets(nb, job.name)


# Python's default repr names a memory address (`<pandas.io.formats.style.Styler at 0x7f92dcf22d10>`):
# meaningless once the kernel is gone, and different in every run.
_ADDRESS = re.compile(r"(<[A-Za-z_][\w.]*(?: object)?) at 0x[0-9a-fA-F]+>")


def _drop_addresses(out: Any) -> None:
    """``<x.Styler at 0x7f92dcf22d10>`` -> ``<x.Styler>`` in an output's plain text.

    >>> out = {"output_type": "execute_result", "data": {"text/plain": "<a.Styler at 0x7f92dcf22d10>"}}
    >>> _drop_addresses(out)
    >>> out["data"]["text/plain"]
    '<a.Styler>'
    """
    if out.get("output_type") == "stream":
        holder, key = out, "text"
    else:
        holder, key = out.get("data", {}), "text/plain"
    text = holder.get(key)
    if isinstance(text, list):
        text = "".join(text)
    if isinstance(text, str) and " at 0x" in text:
        holder[key] = _ADDRESS.sub(r"\1>", text)


def _digest(*parts: str, size: int = 12) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:size]


def _renumber_widgets(nb: Any, name: str) -> Any:
    """Replace the random widget model ids (``uuid4().hex``) by ids from ``name`` and their order."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    ids = list(state)  # in the order the kernel opened the models
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            model = out.get("data", {}).get(WIDGET_MIME, {}).get("model_id")
            if isinstance(model, str) and model not in ids:
                ids.append(model)
    if not ids:
        return nb
    import nbformat

    new = {old: _digest(name, "widget", str(i), size=32) for i, old in enumerate(ids)}
    pattern = re.compile("|".join(re.escape(old) for old in sorted(ids, key=len, reverse=True)))
    text = pattern.sub(lambda m: new[m.group(0)], json.dumps(nb))
    return nbformat.from_dict(json.loads(text))


def notebook_text(nb: Any) -> str:
    """The notebook as nbformat writes it (sorted keys, so the bytes depend only on the content)."""
    import nbformat

    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


# --------------------------------------------------------------------------------------------------
# What failed: the cell and the line


def running_cell(executed: Path | None) -> tuple[int | None, str]:
    """The cell that was running when execution stopped: the last one papermill started."""
    if executed is None:
        return None, ""
    try:
        cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, ""
    started = [
        i for i, c in enumerate(cells) if (c.get("metadata", {}).get("papermill") or {}).get("start_time") is not None
    ]
    if not started:
        return None, ""
    source = cells[started[-1]].get("source", "")
    return started[-1], "".join(source) if isinstance(source, list) else str(source)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# IPython names a frame of cell code `Cell In[7], line 4` (IPython 8+) or `Input In [7], in <cell line: 4>`.
_CELL_FRAME = re.compile(r"(?:Cell In ?\[(\d+)\], line (\d+)|Input In \[(\d+)\], in <cell line: (\d+)>)")


def raising_line(traceback: Sequence[str] | None, exec_count: int | None, source: str) -> str:
    r"""The line of the failing cell that raised, from the traceback IPython recorded; "" if not named.

    The outermost frame of the cell's own execution count is the cell's line (deeper frames are
    functions it called, possibly defined in other cells).

    >>> tb = ["\x1b[0;31mZeroDivisionError\x1b[0m", "Cell In[4], line 3\n----> 3 z = f(y)", "Cell In[3], line 2"]
    >>> raising_line(tb, 4, "import os\ny = 2\nz = f(y)")
    'z = f(y)'
    """
    lines = (source or "").splitlines()
    fallback = None
    for frame in traceback or []:
        for match in _CELL_FRAME.finditer(_ANSI.sub("", str(frame))):
            count, number = match.group(1) or match.group(3), int(match.group(2) or match.group(4))
            if exec_count is not None and count == str(exec_count):
                return _line_text(lines, number)
            fallback = number if fallback is None else fallback
    return _line_text(lines, fallback) if fallback is not None else ""


def _line_text(lines: list[str], number: int) -> str:
    return clip(lines[number - 1].strip(), 80) if 1 <= number <= len(lines) else ""


def first_line(source: str) -> str:
    return next((clip(line.strip(), 80) for line in (source or "").splitlines() if line.strip()), "")


def source_cell(executed: Path | None, cell_index: int | None) -> int | None:
    """Map papermill's cell index (executed notebook) to the source notebook's (0-based)."""
    if cell_index is None or executed is None:
        return cell_index
    try:
        cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return cell_index
    # papermill computed the index before inserting its error banner cells; without them the saved
    # notebook is the executed one, where the injected-parameters cell is the only extra cell.
    regular = [c for c in cells if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])]
    injected = next(
        (i for i, c in enumerate(regular) if "injected-parameters" in c.get("metadata", {}).get("tags", [])),
        None,
    )
    return cell_index - 1 if injected is not None and injected < cell_index else cell_index
