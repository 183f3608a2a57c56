"""The report notebooks: committed clean, parameterised, and showing the numbers the helpers compute.

Fast tests read the committed files. ``slow`` tests execute the five notebooks with papermill on
``data/sample`` (one kernel each, in parallel threads, while this process computes the expected values)
and compare the JSON each notebook's ``record`` cell displays with :class:`QuarterKpis` and the
notebook-table helpers of :mod:`kpi_helpers.metrics`: counts and text exactly, floats to 1e-9.
"""

from __future__ import annotations

import ast
import copy
import math
import os
import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
SAMPLE = ROOT / "data" / "sample"
NAMES = ["00-quarterly-summary", "01-goal-setting", "02-traffic-and-lead-value", "03-channel-conversion", "04-roi"]
#: the parameters the report runner injects, with their declared types
PARAMETERS = {
    "data": "str",
    "quarter": "str",
    "mapping": "list",
    "goals": "str",
    "engine": "str",
    "attribution_model": "str",
}


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)


def _tagged(nb: nbformat.NotebookNode, tag: str) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


# --------------------------------------------------------------------------------------- committed


def test_the_five_notebooks_are_the_report() -> None:
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]-*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs_and_valid(name: str) -> None:
    nb = _read(name)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}: committed with outputs"
            assert cell.execution_count is None, f"{name}: committed with execution counts"
    assert "widgets" not in nb.metadata, f"{name}: widget state committed"


@pytest.mark.parametrize("name", NAMES)
def test_cell_order_and_parameters(name: str) -> None:
    from papermill.translators import PythonTranslator

    nb = _read(name)
    first, params, derived = nb.cells[:3]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "title first"
    assert len(first.source.split()) > 40, "the title cell carries the narrative"
    assert params.cell_type == "code" and _tagged(nb, "parameters") == [params]
    found = {p.name: p for p in PythonTranslator.inspect(params)}  # what papermill and the runner see
    assert {k: p.inferred_type_name for k, p in found.items()} == PARAMETERS
    assert all(p.help for p in found.values()), "every parameter is commented"
    for stmt in ast.parse(params.source).body:  # typed literals only
        assert isinstance(stmt, ast.AnnAssign) and stmt.simple
        ast.literal_eval(stmt.value)
    assert derived.cell_type == "code" and "DataSource.open(" in derived.source and "use_style()" in derived.source


@pytest.mark.parametrize("name", NAMES)
def test_tags_narrative_and_record(name: str) -> None:
    nb = _read(name)
    assert _tagged(nb, "widgets"), f"{name}: no interactive `widgets` cell"
    assert any(c.cell_type == "code" for c in _tagged(nb, "widgets"))
    assert _tagged(nb, "record") == [nb.cells[-1]], "the `record` cell comes last"
    assert len(_tagged(nb, "conclusion")) == 1
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= 5


def test_ruff_passes_on_the_notebooks() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    out = subprocess.run(
        [ruff, "check", "--no-cache", *map(str, sorted(NOTEBOOK_DIR.glob("*.ipynb")))],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


# --------------------------------------------------------------------------------------- executed


def _kernel_name() -> str:
    """``python3`` when that kernelspec runs this interpreter, else a spec installed into sys.prefix."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from kpi_helpers.report import ensure_kernel

    try:
        argv = KernelSpecManager().get_kernel_spec("python3").argv
    except NoSuchKernel:
        argv = []
    # jupyter_client runs a bare `python` with sys.executable
    if argv and (argv[0] in ("python", "python3") or Path(argv[0]).resolve() == Path(sys.executable).resolve()):
        return "python3"
    return ensure_kernel()


def _plain(value: Any) -> Any:
    """What a value looks like after the record cell's JSON round trip."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, pd.Series):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | pd.Index | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _assert_same(actual: Any, expected: Any, path: str = "record") -> None:
    expected = _plain(expected)
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert sorted(actual) == sorted(expected), f"{path}: keys differ"
        for k in expected:
            _assert_same(actual[k], expected[k], f"{path}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _assert_same(a, e, f"{path}[{i}]")
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-9), path
    else:
        assert actual == expected and type(actual) is type(expected), f"{path}: {actual!r} != {expected!r}"


def _expected() -> tuple[str, dict[str, dict[str, Any]]]:
    """The values each notebook must record, computed here with the same helpers, and the label of the
    quarter before the report's."""
    from kpi_helpers import facts
    from kpi_helpers import metrics as M
    from kpi_helpers.metrics import QuarterKpis
    from kpi_helpers.source import DataSource

    src = DataSource.open(SAMPLE)
    kq = QuarterKpis(src, "latest", attribution_model="position_based")
    m = kq.metrics()
    kc = QuarterKpis(src, "current", attribution_model="position_based")
    mc = m if kc.quarter == kq.quarter else kc.metrics()
    goal, trend = kq.goal, kq.trend
    funnel = M.channel_funnel(kq)
    site_goals = M.goal_conversion(kq)
    comparison = kq.attribution_comparison()
    economics = M.channel_economics(kq, clv=m["clv"])
    ranks = M.attribution_ranks(comparison)
    spend = facts.spend_breakdown(src, kq.quarter)
    spend = spend[spend["cost_type"] != "sales"].groupby("channel")["amount"].sum()
    assert spend.to_dict() == pytest.approx(kq.channels["marketing_cost"][kq.channels["marketing_cost"] > 0].to_dict())
    pick = lambda *keys: {k: m[k] for k in keys}  # noqa: E731
    base = {"quarter": m["quarter"]}
    return m["previous_quarter"]["quarter"], {
        "00-quarterly-summary": {
            "notebook": "00-quarterly-summary",
            **base,
            "attribution_model": m["attribution_model"],
            **pick(
                "revenue",
                "revenue_target",
                "revenue_fiscal_year_to_date",
                "revenue_target_fiscal_year",
                "lead_revenue",
                "leads",
                "cost_per_lead",
                "cac",
                "clv_to_cac",
                "marketing_roi",
            ),
            "kpi_status": {k["name"]: k["status"] for k in m["kpis"]},
            "current_quarter": mc["quarter"],
            "pacing": mc["pacing"],
        },
        "01-goal-setting": {
            "notebook": "01-goal-setting",
            **base,
            "fiscal_year": goal.fiscal_year,
            "last_year_revenue": goal.last_year_revenue,
            "average_growth": goal.average_growth,
            "uplift": goal.uplift,
            "target_growth": goal.target_growth,
            "target_revenue": goal.target_revenue,
            "formula": goal.formula(),
            "quarterly_targets": goal.quarterly,
            "revenue_history": kq.revenue_history,
            "funnel_required": kq.funnel_plan["required"],
            "funnel_actual": kq.funnel_plan["actual"],
            "kpi_targets": {k["name"]: k["target"] for k in m["kpis"]},
            "kpi_owners": {k["name"]: k["owner"] for k in m["kpis"]},
        },
        "02-traffic-and-lead-value": {
            "notebook": "02-traffic-and-lead-value",
            **base,
            **pick(
                "visits",
                "leads",
                "visits_per_lead",
                "visit_to_lead_rate",
                "lead_revenue",
                "value_per_lead",
                "value_per_visit",
                "users",
                "new_users",
                "returning_users",
                "new_user_share",
                "bounce_rate",
                "avg_session_duration_s",
                "organic_visits",
            ),
            "trend_quarters": list(trend.index),
            "trend_leads": trend["leads"],
            "trend_value_per_lead": trend["value_per_lead"],
            "leads_by_channel": funnel["leads"],
            "sessions_by_device": M.web_table(kq, "device")["sessions"],
            "content_views": facts.content_breakdown(src, kq.quarter)["views"],
        },
        "03-channel-conversion": {
            "notebook": "03-channel-conversion",
            **base,
            "attribution_model": "position_based",
            "funnel": {
                c: {s: int(funnel.loc[c, s]) for s in ("leads", "mqls", "sqls", "opportunities", "won")}
                for c in funnel.index
            },
            "lead_to_sql_rate": funnel["lead_to_sql_rate"],
            "goal_completions": site_goals["completions"],
            "goal_conversion_rate": site_goals["conversion_rate"],
            **pick("visit_to_lead_ratio", "visit_to_lead_rate", "lead_to_customer_rate"),
            "attribution": {name: comparison[name] for name in comparison.columns},
        },
        "04-roi": {
            "notebook": "04-roi",
            **base,
            "attribution_model": "position_based",
            **pick(
                "marketing_cost",
                "sales_cost",
                "cost_per_lead",
                "cac",
                "clv",
                "clv_to_cac",
                "marketing_roi",
                "attributed_lead_revenue",
            ),
            "spend_by_channel": spend,
            "roi_by_channel": economics["roi"],
            "cac_by_channel": economics["cac"],
            "cost_per_lead_by_channel": economics["cost_per_lead"],
            "roi_by_campaign": M.campaign_economics(kq, clv=m["clv"])["roi"],
            "ranks": {name: ranks[name] for name in comparison.columns},
            "rank_spread": ranks["spread"],
        },
    }


def _execute(name: str, out_dir: Path, kernel: str) -> nbformat.NotebookNode:
    """papermill on a kernel this thread boots: Unix-socket transport (parallel kernels on TCP can race for
    ports), in-memory IPython history (parallel kernels would share one history.sqlite) and no ``cwd=``
    (papermill's chdir is process-wide; ``data`` is an absolute path anyway)."""
    import papermill as pm
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir
    from jupyter_core.utils import run_sync

    transport = {}
    if sys.platform != "win32":
        runtime = Path(jupyter_runtime_dir())
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        transport = {"transport": "ipc", "ip": str(runtime / f"kpi-test-{uuid.uuid4().hex[:12]}")}
    km = AsyncKernelManager(kernel_name=kernel, **transport)
    run_sync(km.start_kernel)(cwd=str(NOTEBOOK_DIR), extra_arguments=["--HistoryManager.hist_file=:memory:"])
    out = out_dir / f"{name}.ipynb"
    try:
        pm.execute_notebook(
            NOTEBOOK_DIR / f"{name}.ipynb",
            out,
            parameters={"data": str(SAMPLE)},
            kernel_name=kernel,
            language="python",
            km=km,
            progress_bar=False,
            log_output=False,
            execution_timeout=300,
        )
    finally:
        run_sync(km.shutdown_kernel)(now=True)
    return nbformat.read(out, as_version=4)


@pytest.fixture(scope="session")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The five notebooks executed in parallel on data/sample, and the expected record values."""
    if not SAMPLE.is_dir():
        pytest.skip("data/sample is missing (make sample)")
    out_dir = tmp_path_factory.mktemp("notebooks")
    kernel = _kernel_name()
    with ThreadPoolExecutor(max_workers=len(NAMES), thread_name_prefix="nb") as pool:
        futures = {name: pool.submit(_execute, name, out_dir, kernel) for name in NAMES}
        previous, expected = _expected()  # while the kernels run
        nbs = {name: f.result() for name, f in futures.items()}
    return {"nbs": nbs, "expected": expected, "previous": previous, "kernel": kernel}


def _outputs(nb: nbformat.NotebookNode, *, skip_tags: tuple[str, ...] = ("widgets",)) -> list[dict]:
    return [
        o
        for c in nb.cells
        if c.cell_type == "code" and not set(skip_tags) & set(c.metadata.get("tags", []))
        for o in c.get("outputs", [])
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_executed_notebook_shows_charts_tables_and_a_conclusion(executed: dict, name: str) -> None:
    nb = executed["nbs"][name]
    outs = _outputs(nb)
    assert not [o for o in outs if o.get("output_type") == "error"]
    assert not [o for o in outs if o.get("name") == "stderr"], "warnings or errors printed"
    assert any("image/png" in o.get("data", {}) for o in outs), "no chart"
    assert any("<table" in o.get("data", {}).get("text/html", "") for o in outs), "no HTML table"
    conclusion = [o for c in _tagged(nb, "conclusion") for o in c.outputs]
    text = "".join(o.get("data", {}).get("text/markdown", "") for o in conclusion)
    assert len(text.split()) > 25, "no conclusion in words"
    assert "from" in text and "target" in text, "no change versus the previous quarter or versus target"
    assert "<script" not in text
    record = _tagged(nb, "record")[0].outputs
    assert [o.output_type for o in record] == ["display_data"] and list(record[0].data) == ["application/json"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_record_matches_the_helpers(executed: dict, name: str) -> None:
    record = _tagged(executed["nbs"][name], "record")[0].outputs[0].data["application/json"]
    _assert_same(record, executed["expected"][name])


@pytest.mark.slow
def test_conclusions_state_change_versus_previous_quarter_and_target(executed: dict) -> None:
    nbs = executed["nbs"]
    summary = "".join(o.data["text/markdown"] for o in _tagged(nbs["00-quarterly-summary"], "conclusion")[0].outputs)
    assert "of the quarter's target of" in summary and f"in {executed['previous']}" in summary
    roi = "".join(o.data["text/markdown"] for o in _tagged(nbs["04-roi"], "conclusion")[0].outputs)
    assert "position\\-based attribution" in roi and "rank" in roi


SANITIZE = Path(__file__).with_name("nbval-sanitize.cfg")


@pytest.mark.slow
def test_a_second_run_shows_the_same_outputs(executed: dict, tmp_path: Path) -> None:
    """Reproducible: nbval executes each executed notebook again, from scratch (no memoised results), and
    compares every output with the first run's. Tables (HTML), text, Markdown and the recorded numbers must be
    identical up to the sanitizers of ``nbval-sanitize.cfg`` (object addresses); nbval does not compare chart
    PNGs. Widget cells are skipped: interactive only, and their model ids are random."""
    for name, nb in executed["nbs"].items():
        nb = copy.deepcopy(nb)
        for cell in _tagged(nb, "widgets"):
            cell.metadata["tags"] = [*cell.metadata["tags"], "nbval-skip"]
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval",
        "-p",
        "no:cacheprovider",
        "-q",
        "--color=no",
        "--nbval-kernel-name",
        executed["kernel"],
        "--nbval-sanitize-with",
        str(SANITIZE),
        "--nbval-cell-timeout",
        "300",
        *(f"{n}.ipynb" for n in NAMES),
    ]
    run = subprocess.run(
        cmd, cwd=tmp_path, env={**os.environ, "KPI_NO_CACHE": "1"}, capture_output=True, text=True, timeout=1800
    )
    assert run.returncode == 0, run.stdout[-6000:]
    assert " passed" in run.stdout and "failed" not in run.stdout
