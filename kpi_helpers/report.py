"""The quarterly report: its public entry points, gathered from the modules that hold one concern each.

- :mod:`kpi_helpers.runner`: :func:`render_report` (run the notebooks, swap the new report into
  place, exit codes), :func:`run_cli`, :func:`write_metrics`; the report's layout and guarantees;
- :mod:`kpi_helpers.planning`: every input checked before a kernel starts, and the parameters each
  notebook receives (:func:`parse_params`, :func:`default_notebooks`);
- :mod:`kpi_helpers.kernels`: the kit's kernelspec (:func:`ensure_kernel`, :func:`install_kernel`
  and ``python -m kpi_helpers.kernels`` to install it into another Jupyter) and booting kernels;
- :mod:`kpi_helpers.executed`: executed notebooks made reproducible; where one failed;
- :mod:`kpi_helpers.htmlexport`: notebooks as offline pages (:func:`make_html_exporter`);
- :mod:`kpi_helpers.pages`: the index pages and their KPI tiles (:func:`headline_tiles`,
  :func:`target_tiles`, :func:`write_reports_index`);
- :mod:`kpi_helpers.outdir`: what the kit owns in the report folder, manifests, swaps, failed runs.

``format_value`` is :func:`kpi_helpers.formats.format_value`, the kit's one formatter (imported on
first use, so that importing this module does not import pandas). Its units are the registry's
(``money``, ``percent``, ``count``, ...); the older words ``currency`` and ``number`` are refused
with a message naming the units, never guessed.

>>> from kpi_helpers.report import render_report, KERNEL_NAME
>>> KERNEL_NAME
'kpi-kit'
"""

from __future__ import annotations

from typing import Any

from .htmlexport import make_html_exporter
from .kernels import KERNEL_NAME, ensure_kernel, install_kernel
from .outdir import KIT_NAME, MANIFEST
from .pages import Tile, headline_tiles, target_tiles, write_reports_index
from .planning import STANDARD_PARAMS, default_notebooks, parse_params
from .runner import LOCK_TIMEOUT, render_report, run_cli, write_metrics

__all__ = [
    "KERNEL_NAME",
    "KIT_NAME",
    "LOCK_TIMEOUT",
    "MANIFEST",
    "STANDARD_PARAMS",
    "Tile",
    "default_notebooks",
    "ensure_kernel",
    "format_value",  # noqa: F822  (module __getattr__: formats imports pandas)
    "headline_tiles",
    "install_kernel",
    "make_html_exporter",
    "parse_params",
    "render_report",
    "run_cli",
    "target_tiles",
    "write_metrics",
    "write_reports_index",
]


def __getattr__(name: str) -> Any:
    """``format_value`` on first use (module docstring)."""
    if name == "format_value":
        from .formats import format_value

        return format_value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
