"""The report notebooks: committed clean, parameterised, and showing the numbers the helpers compute.

Fast tests read the committed files. ``slow`` tests execute the six notebooks with papermill on
``data/sample`` (one kernel each, in parallel threads, while this process computes the expected values)
and compare the JSON each notebook's ``record`` cell displays with :class:`QuarterKpis` and the
page tables of :mod:`kpi_helpers.breakdowns`: counts and text exactly, floats to 1e-9.
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

from kpi_helpers.notebook import RECORD_MIME, read_record

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
SAMPLE = ROOT / "data" / "sample"
NAMES = [
    "00-quarterly-summary",
    "01-goal-setting",
    "02-traffic-and-lead-value",
    "03-channel-conversion",
    "04-roi",
    "05-incrementality",
]
#: the parameters the report runner injects, with their declared types
PARAMETERS = {
    "data": "str",
    "quarter": "str",
    "mapping": "list",
    "goals": "str",
    "engine": "str",
    "attribution_model": "str",
}
#: the mix model's own parameters (notebook 05)
MODEL_PARAMETERS = {"target": "str", "weeks": "int", "draws": "int", "budget": "float"}


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)


def _tagged(nb: nbformat.NotebookNode, tag: str) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


# --------------------------------------------------------------------------------------- committed


def test_the_six_notebooks_are_the_report() -> None:
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
    expected = {**PARAMETERS, **(MODEL_PARAMETERS if name == "05-incrementality" else {})}
    assert {k: p.inferred_type_name for k, p in found.items()} == expected
    assert all(p.help for p in found.values()), "every parameter is commented"
    for stmt in ast.parse(params.source).body:  # typed literals only
        assert isinstance(stmt, ast.AnnAssign) and stmt.simple
        ast.literal_eval(stmt.value)
    # one setup call (kpi_helpers.notebook.setup opens the data, computes the quarter, applies the style)
    assert derived.cell_type == "code" and "page = setup(data, quarter," in derived.source


@pytest.mark.parametrize("name", NAMES)
def test_tags_narrative_and_record(name: str) -> None:
    nb = _read(name)
    assert _tagged(nb, "widgets"), f"{name}: no interactive `widgets` cell"
    assert any(c.cell_type == "code" for c in _tagged(nb, "widgets"))
    assert _tagged(nb, "record") == [nb.cells[-1]], "the `record` cell comes last"
    assert len(_tagged(nb, "conclusion")) == 1
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= 5


@pytest.mark.parametrize("name", NAMES)
def test_opens_on_the_kits_kernel_and_says_how_to_install_it(name: str) -> None:
    nb = _read(name)
    assert nb.metadata.kernelspec == {"name": "kpi-kit", "display_name": "Marketing KPI kit", "language": "python"}
    assert "python -m ipykernel install --user --name kpi-kit" in nb.cells[0].source


@pytest.mark.parametrize("name", NAMES)
def test_navigation_links_open_the_notebooks(name: str) -> None:
    """In JupyterLab a link opens a notebook; the HTML export rewrites ``.ipynb`` links to ``.html``."""
    import re

    links = re.findall(r"\]\(([^)]+)\)", nb_source := _read(name).cells[0].source)
    assert sorted(links) == sorted(f"{n}.ipynb" for n in NAMES), nb_source[-400:]


@pytest.mark.parametrize("name", NAMES)
def test_setup_cell_imports_only_what_the_notebook_uses(name: str) -> None:
    """One setup call, no copied setup code: every name the setup cell imports is used below it."""
    nb = _read(name)
    tree = ast.parse(nb.cells[2].source)
    imported = {
        (a.asname or a.name).split(".")[0]
        for stmt in tree.body
        if isinstance(stmt, ast.Import | ast.ImportFrom)
        for a in stmt.names
    }
    rest = "\n".join(c.source for c in nb.cells[2:] if c.cell_type == "code")
    body = ast.parse(rest)
    used = {n.id for n in ast.walk(body) if isinstance(n, ast.Name)}
    assert imported <= used, f"unused imports: {imported - used}"
    allowed = {
        "plt",
        "display",
        "B",
        "BT",
        "C",
        "F",
        "H",
        "MM",
        "N",
        "T",
        "V",
        "W",
        "bullets",
        "md_escape",
        "projections",
    }
    assert imported <= allowed | {"setup"}


def test_record_shows_nothing_in_a_frontend(monkeypatch: pytest.MonkeyPatch) -> None:
    """The record is JSON under the kit's own MIME type alone: JupyterLab has no renderer for it (an
    ``application/json`` output would draw a JSON tree under each conclusion)."""
    import IPython.display

    from kpi_helpers.notebook import record

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw)))
    record({"x": math.nan, "s": pd.Series({"a": 1}), "n": np.int64(1), "d": Decimal("15145"), "f": Decimal("1.5")})
    ((obj, raw),) = shown
    assert raw and obj == {RECORD_MIME: {"x": None, "s": {"a": 1}, "n": 1, "d": 15145, "f": 1.5}}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("record(...)", metadata={"tags": ["record"]})])
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data=obj)]
    assert read_record(nb) == obj[RECORD_MIME]
    nb.cells[0].outputs = []
    with pytest.raises(ValueError, match="no `record` output .* was it executed to the end"):
        read_record(nb)


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


def _expected() -> tuple[str, dict[str, dict[str, Any]], dict[str, dict[str, str]]]:
    """The values each notebook must record, computed here with the same helpers, the label of the
    quarter before the report's, and the status of each KPI (by metric) of the report's quarter and of
    the quarter in progress, as ``metrics.json`` gives them."""
    from kpi_helpers import breakdowns as B
    from kpi_helpers import cohorts as H
    from kpi_helpers import facts
    from kpi_helpers.metrics import QuarterKpis
    from kpi_helpers.model_metrics import model_entries
    from kpi_helpers.source import DataSource

    src = DataSource.open(SAMPLE)
    kq = QuarterKpis(src, "latest", attribution_model="position_based")
    m = kq.metrics()
    models = model_entries(src, m["quarter"])  # the notebooks' fits (cached: computed once between them)
    kc = QuarterKpis(src, "current", attribution_model="position_based")
    mc = m if kc.quarter == kq.quarter else kc.metrics()
    goal, trend = kq.goal, kq.trend
    funnel = B.channel_funnel(kq)
    site_goals = B.goal_conversion(kq)
    comparison = kq.attribution_comparison()
    economics = B.channel_economics(kq, clv=m["clv"])
    ranks = B.attribution_ranks(comparison)
    spend = facts.spend_breakdown(src, kq.quarter)
    spend = spend[spend["cost_type"] != "sales"].groupby("channel")["amount"].sum()
    assert spend.to_dict() == pytest.approx(kq.channels["marketing_cost"][kq.channels["marketing_cost"] > 0].to_dict())
    pick = lambda *keys: {k: m[k] for k in keys}  # noqa: E731
    base = {"quarter": m["quarter"]}
    statuses = {x["quarter"]: {str(k["metric"] or k["name"]): k["status"] for k in x["kpis"]} for x in (m, mc)}
    return (
        m["previous_quarter"]["quarter"],
        {
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
                "sessions_by_device": B.web_table(kq, "device")["sessions"],
                "content_views": B.content_table(kq)["views"],
                "email_open_rate_by_asset": B.content_table(kq)["email_open_rate"],
            },
            "03-channel-conversion": {
                "notebook": "03-channel-conversion",
                **base,
                "attribution_model": "position_based",
                "funnel": {
                    c: {s: funnel.loc[c, s] for s in ("leads", "mqls", "sqls", "opportunities", "won")}
                    for c in funnel.index
                },
                "lead_to_sql_rate": funnel["lead_to_sql_rate"],
                "maturity": H.maturity_record(H.funnel_maturity(kq)),
                "goal_completions": site_goals["completions"],
                "goal_conversion_rate": site_goals["conversion_rate"],
                "landing_pages": [list(i) for i in B.landing_pages(kq).index],
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
                "clv_model": models["clv_model"],
                "spend_by_channel": spend,
                "roi_by_channel": economics["roi"],
                "cac_by_channel": economics["cac"],
                "cost_per_lead_by_channel": economics["cost_per_lead"],
                "roi_by_campaign": B.campaign_economics(kq, clv=m["clv"])["roi"],
                "ranks": {name: ranks[name] for name in comparison.columns},
                "rank_spread": ranks["places_moved"],
            },
            "05-incrementality": {
                "notebook": "05-incrementality",
                **base,
                "incrementality": models["incrementality"],
                "problem": "",
            },
        },
        statuses,
    )


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
    """The six notebooks executed in parallel on data/sample, and the expected record values."""
    if not SAMPLE.is_dir():
        pytest.skip("data/sample is missing (make sample)")
    out_dir = tmp_path_factory.mktemp("notebooks")
    kernel = _kernel_name()
    with ThreadPoolExecutor(max_workers=len(NAMES), thread_name_prefix="nb") as pool:
        futures = {name: pool.submit(_execute, name, out_dir, kernel) for name in NAMES}
        previous, expected, statuses = _expected()  # while the kernels run
        nbs = {name: f.result() for name, f in futures.items()}
    return {"nbs": nbs, "expected": expected, "previous": previous, "statuses": statuses, "kernel": kernel}


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
    assert [o.output_type for o in record] == ["display_data"] and list(record[0].data) == [RECORD_MIME]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_record_matches_the_helpers(executed: dict, name: str) -> None:
    record = read_record(executed["nbs"][name])
    assert set(record.pop("shown_statuses")) == {"charts", "tables", "sentences"}
    _assert_same(record, executed["expected"][name])


@pytest.mark.slow
def test_every_status_shown_agrees_with_metrics(executed: dict) -> None:
    """Issue 11: one status per KPI on every page. Each chart bar, table row and sentence that shows a
    KPI's status noted it (``Page.shown``, in the record); a KPI of the report's quarter or of the
    quarter in progress is shown in the status ``metrics.json`` gives it, and anything else shown in
    more than one place (a funnel stage's requirement, the fiscal year to date, a past quarter's
    revenue) is shown the same way everywhere."""
    shown: dict[str, dict[str, str]] = {}
    for name, nb in executed["nbs"].items():
        for where, statuses in read_record(nb)["shown_statuses"].items():
            for key, status in statuses.items():
                shown.setdefault(key, {})[f"{name} {where}"] = status
    disagree = {key: places for key, places in shown.items() if len(set(places.values())) > 1}
    assert not disagree, f"a KPI shown in two statuses: {disagree}"
    for quarter, kpis in executed["statuses"].items():
        for metric, status in kpis.items():
            places = shown.get(f"{metric}@{quarter}", {})
            assert set(places.values()) <= {status}, f"{metric}@{quarter}: {places}, metrics.json says {status}"
    report_quarter = executed["expected"]["00-quarterly-summary"]["quarter"]
    for metric, status in executed["statuses"][report_quarter].items():
        if status == "no data":  # nothing to draw: the KPI table and the conclusion say what it lacks
            continue
        places = " ".join(shown.get(f"{metric}@{report_quarter}", {}))
        for where in ("charts", "tables", "sentences"):
            assert where in places, f"{metric}: its status is in no {where[:-1]} ({places or 'nowhere'})"


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
    PNGs. Widget cells are skipped: interactive only, and their model ids are random. The notebooks are
    re-run in two nbval processes at once (one per core), the heaviest ones apart."""
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
    ]
    # the model notebooks (04: CLV, 05: the mix model) and the summary (forecasts) are the slow ones
    halves = [
        [n for n in NAMES if n.startswith(("00", "01", "05"))],
        [n for n in NAMES if not n.startswith(("00", "01", "05"))],
    ]
    env = {**os.environ, "KPI_NO_CACHE": "1"}
    runs = [
        subprocess.Popen([*cmd, *(f"{n}.ipynb" for n in half)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for half in halves if half
    ]  # fmt: skip
    for proc in runs:
        out = proc.communicate(timeout=1800)[0]
        assert proc.returncode == 0, out[-6000:]
        assert " passed" in out and "failed" not in out
    assert sum(map(len, halves)) == len(NAMES)


# --------------------------------------------------------------------------------------- the page helper
# kpi_helpers.notebook.Page: what a section checks before it draws. Fast: a real Coverage, no data source.


def _page(tables: dict[str, tuple[str, str] | None], m: dict | None = None) -> Any:
    """A Page for 2026Q3 over ``tables`` (name -> first and last covered day, None: present without rows)."""
    import datetime as dt
    from types import SimpleNamespace

    from kpi_helpers.coverage import Coverage, TableCoverage
    from kpi_helpers.metrics import QuarterKpis
    from kpi_helpers.notebook import Page
    from kpi_helpers.periods import parse_quarter

    covered = {
        name: TableCoverage(name, "event", 0)
        if span is None
        else TableCoverage(name, "event", 10, dt.date.fromisoformat(span[0]), dt.date.fromisoformat(span[1]))
        for name, span in tables.items()
    }
    coverage = Coverage(covered, frozenset(tables), 1, dt.date(2026, 10, 20), ("leads",))
    kq = object.__new__(QuarterKpis)  # the real has/missing_note/coverage, on a stub source
    kq.source = SimpleNamespace(present=frozenset(tables), coverage=coverage)
    kq.quarter = parse_quarter("2026Q3")
    return Page(kq.source, kq, m or {"quarter": "2026Q3", "undefined": {}})


FULL = ("2021-01-01", "2026-10-20")


@pytest.mark.parametrize(
    ("tables", "needs", "trend", "expected"),
    [
        ({"leads": FULL}, ("leads",), False, ""),
        ({"leads": FULL}, ("leads", "spend"), False, "This section needs `spend`: add spend.csv"),
        ({"leads": None}, ("leads",), False, "This section needs `leads` data for 2026Q3; the `leads` export has none"),
        ({"leads": ("2021-01-01", "2025-06-30")}, ("leads",), False, "This section needs `leads` data for 2026Q3"),
        ({"leads": ("2021-01-01", "2025-06-30")}, ("leads",), True, ""),  # the trend has quarters with leads
        ({"leads": None}, ("leads",), True, "This section needs `leads` data for 2024Q4 to 2026Q3"),
        ({"leads": ("2026-08-01", "2026-10-20")}, ("leads",), False, ""),  # partial: the section draws
    ],
    ids=["present", "absent", "header-only", "ended-before", "trend-has-some", "trend-has-none", "partial"],
)
def test_page_lacks_names_the_table_and_how_to_add_it(tables, needs, trend, expected) -> None:
    line = _page(tables).lacks(*needs, trend=trend)
    assert line.startswith(expected) and (bool(line) == bool(expected))
    if None in tables.values() and expected:  # the header-only export: the line says why it covers nothing
        assert "(it has no rows, and an empty export covers no period)" in line


def test_page_section_shows_one_line_and_draws_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    shown: list = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **_kw: shown.append(obj))
    m = {"quarter": "2026Q3", "undefined": {"marketing_roi": "needs spend: add spend.csv"}, "marketing_roi": None}
    page = _page({"leads": FULL}, m)
    assert page.section("leads") is True and shown == []
    assert page.section("spend") is False and page.section("leads", kpis=("marketing_roi",)) is False
    assert [o.data for o in shown] == [
        "> This section needs `spend`: add spend.csv, or ad platform reports \\(\\-\\-mapping google\\-ads, "
        "meta\\-ads or linkedin\\-ads\\).",
        "> Marketing ROI is n/a for 2026Q3: needs spend: add spend.csv.",
    ]


def test_page_judges_only_kpis_with_a_target_and_an_actual() -> None:
    rows = [
        {"name": "a", "target": 1.0, "actual": 2.0},
        {"name": "b", "target": None, "actual": 2.0},
        {"name": "c", "target": 1.0, "actual": None, "projected": float("nan")},
        {"name": "d", "target": 1.0, "actual": None, "projected": 3.0},
    ]
    assert [k["name"] for k in _page({}).judged(rows)] == ["a", "d"]


def test_derived_numbers_are_n_a_with_their_source() -> None:
    from kpi_helpers.notebook import _split_only_what_exists

    why = "`leads` has no data for 2026Q3 (it has no rows, and an empty export covers no period)"
    m = {"lead_revenue": None, "attributed_lead_revenue": 0.0, "visit_to_lead_ratio": "39.2:1", "visits_per_lead": 39.2}
    out = _split_only_what_exists({**m, "undefined": {"lead_revenue": why}})
    assert out["attributed_lead_revenue"] is None and out["undefined"]["attributed_lead_revenue"] == why
    assert out["visit_to_lead_ratio"] == "39.2:1"  # its source is defined: untouched
    assert m["attributed_lead_revenue"] == 0.0, "the metrics dict itself is not changed"
