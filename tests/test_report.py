"""Tests of the report's public entry points (kpi_helpers.report): the names other code imports
keep working from there, and are the modules' own (no second implementation)."""

from __future__ import annotations

import pytest

from kpi_helpers import formats, htmlexport, kernels, outdir, pages, planning, report, runner

PUBLIC = {
    "render_report": runner,
    "run_cli": runner,
    "write_metrics": runner,
    "LOCK_TIMEOUT": runner,
    "parse_params": planning,
    "default_notebooks": planning,
    "STANDARD_PARAMS": planning,
    "ensure_kernel": kernels,
    "KERNEL_NAME": kernels,
    "install_kernel": kernels,
    "make_html_exporter": htmlexport,
    "headline_tiles": pages,
    "write_reports_index": pages,
    "Tile": pages,
    "target_tiles": pages,
    "format_value": formats,
    "KIT_NAME": outdir,
    "MANIFEST": outdir,
}


@pytest.mark.parametrize(("name", "module"), PUBLIC.items(), ids=PUBLIC.keys())
def test_public_names_are_the_modules_own(name: str, module: object) -> None:
    assert getattr(report, name) is getattr(module, name)


def test_the_facade_lists_exactly_its_names() -> None:
    assert sorted(report.__all__) == sorted(PUBLIC)


def test_importing_the_report_does_not_import_pandas() -> None:
    """Kernels boot before the pages need pandas (kpi_helpers.runner's docstring)."""
    import subprocess
    import sys

    code = "import sys, kpi_helpers.report; print('pandas' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_format_value_is_the_one_formatter_and_refuses_the_old_words() -> None:
    assert report.format_value(87, "seconds") == "1 min 27 s"
    with pytest.raises(ValueError, match=r"unknown unit 'currency'; expected one of count, money"):
        report.format_value(1.0, "currency")
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        report.nothing  # noqa: B018
