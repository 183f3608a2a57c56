"""End to end: `kpi report` on the sample, with markup planted in a channel and a campaign name, and
on folders that hold only some of the tables.

Renders all six notebooks once (about a minute on 2 cores), then checks every file, that
metrics.json equals the helpers' numbers, and that every page opens offline in Chromium without
console errors or requests, with charts and tables, and with the planted markup shown as text. Then
renders five subsets of the sample (web-only, CRM-only, spend-only, one year of revenue, header-only
leads; 20-50 s each) and checks that every page renders with n/a, never 0, where data is missing.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from conftest import HOSTILE_CAMPAIGN, SAMPLE_CHANNEL, SampleReport

from kpi_helpers.cli import main
from kpi_helpers.metrics import quarter_metrics, to_json
from kpi_helpers.source import DataSource

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
CHANNEL = SAMPLE_CHANNEL

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rendered(sample_report: SampleReport) -> tuple[Path, Path]:
    """The sample rendered once for the whole session (conftest), markup planted."""
    return sample_report.data, sample_report.folder


def test_every_file_is_written(rendered):
    _, folder = rendered
    names = {p.name for p in folder.iterdir()}
    for nb in NOTEBOOKS:
        assert {nb.name, nb.with_suffix(".html").name} <= names
    assert {"index.html", "metrics.json"} <= names
    assert (folder.parent / "index.html").exists()


def test_metrics_json_equals_the_helpers(rendered):
    from kpi_helpers.model_metrics import model_entries

    data, folder = rendered
    written = json.loads((folder / "metrics.json").read_text())
    src = DataSource.open(data)
    m = quarter_metrics(src, "2026Q3")
    entries = model_entries(src, "2026Q3")  # the report's fits, from the cache
    m["undefined"] = {**m["undefined"], **entries.pop("undefined")}
    assert written == json.loads(to_json({**m, **entries}))
    assert CHANNEL in written["by_channel"]


def test_metrics_json_has_the_models_blocks(rendered):
    """`incrementality` and `clv_model` in the shape scripts rely on, every interval ordered."""
    _, folder = rendered
    m = json.loads((folder / "metrics.json").read_text())
    inc = m["incrementality"]
    assert set(inc) == {"target", "window", "by_channel", "diagnostics"} and inc["target"] == "leads"
    assert set(inc["window"]) == {"start", "end", "weeks"}
    assert set(inc["diagnostics"]) == {"rhat_max", "ess_min", "divergences", "holdout_mape"}
    keys = {"incremental_per_cost", "incremental_roi", "contribution_share"}
    assert len(inc["by_channel"]) >= 6
    for channel, row in inc["by_channel"].items():
        assert set(row) == {f"{k}{s}" for k in keys for s in ("", "_low", "_high")} | {"attribution_roi_activity_cost"}
        for k in keys:
            if row[k] is not None:
                assert row[f"{k}_low"] <= row[k] <= row[f"{k}_high"], (channel, k, row)
    clv = m["clv_model"]
    assert set(clv) == {"model", "by_channel"} and clv["model"] in ("sbg", "bgnbd")
    for channel, row in clv["by_channel"].items():
        assert set(row) == {"clv", "clv_low", "clv_high", "clv_to_cac", "clv_to_cac_low", "clv_to_cac_high"}
        if row["clv"] is not None:
            assert row["clv_low"] <= row["clv"] <= row["clv_high"], (channel, row)


def test_metrics_json_carries_how_sure_each_number_is(rendered):
    """Every interval KPI has `_low` and `_high` right after it with low <= value <= high; the channels
    their ranges; the changes are judged; the pages show the ranges, the maturing steps and, on the
    tiles, only the real movements."""
    from kpi_helpers.reliability import CHANNEL_KEYS, INTERVAL_KPIS

    _, folder = rendered
    written = json.loads((folder / "metrics.json").read_text())
    keys = list(written)
    for key in INTERVAL_KPIS:
        i = keys.index(key)
        assert keys[i + 1 : i + 3] == [f"{key}_low", f"{key}_high"], key
        assert written[f"{key}_low"] <= written[key] <= written[f"{key}_high"], key
    for channel, row in written["by_channel"].items():
        for key in CHANNEL_KEYS:
            if row[f"{key}_low"] is not None:
                assert row[f"{key}_low"] <= row[key] <= row[f"{key}_high"], (channel, key)
    judged = {
        (k, c): e["real"]
        for k, cs in written["changes"]["kpis"].items()
        for c, e in cs.items()
        if e["real"] is not None
    }
    assert len(judged) > 40
    index = (folder / "index.html").read_text()
    real_tiles = {k for (k, _), real in judged.items() if real and k in written and k in _headline()}
    assert index.count('<div class="movement">') == len(real_tiles)
    assert "still maturing" in (folder / "03-channel-conversion.html").read_text()
    roi_page = (folder / "04-roi.html").read_text()
    assert re.search(r"\d+\.\d% \(-?\d+\.\d%( to |-)-?\d+\.\d%\)", roi_page)  # ROI with its range


def _headline() -> set[str]:
    from kpi_helpers.registry import KPIS

    return {k for k, kpi in KPIS.items() if kpi.headline}


def test_pages_open_offline_and_show_markup_as_text(rendered):
    from test_browser import audit_page, chromium, report_pages

    _, folder = rendered
    with chromium() as browser:
        audits = {p.name if p.parent == folder else "top": audit_page(browser, p) for p in report_pages(folder)}
    assert [problem for a in audits.values() for problem in a.problems] == []
    for nb in NOTEBOOKS:
        page = audits[nb.with_suffix(".html").name]
        assert page.images >= 1 and page.tables >= 1, f"{nb.name}: a chart and a table"
    assert CHANNEL in audits["index.html"].text  # shown as text, not run
    assert CHANNEL in audits["03-channel-conversion.html"].text
    assert HOSTILE_CAMPAIGN in audits["04-roi.html"].text


def test_no_personal_data_in_pages(rendered):
    _, folder = rendered
    for page in folder.glob("*.html"):
        # charts' base64 holds no address, and a pattern over it backtracks for a minute
        text = re.sub(r"data:image/\w+;base64,[A-Za-z0-9+/=]+", "", page.read_text(encoding="utf-8"))
        assert not re.search(r"[\w.+-]+@[\w-]+\.[A-Za-z]{2,}\b", text), f"{page.name}: an e-mail address"
        assert not re.search(r"\bL\d{6}\b", text), f"{page.name}: lead ids"


def test_index_tells_the_quarter_in_brief(rendered):
    """index.html leads with the summary page's conclusion (the same words, rendered once there)."""
    import nbformat

    _, folder = rendered
    index = (folder / "index.html").read_text(encoding="utf-8")
    assert "The quarter in brief" in index
    nb = nbformat.read(folder / "00-quarterly-summary.ipynb", as_version=4)
    conclusion = next(c for c in nb.cells if "conclusion" in c.metadata.get("tags", []))
    first = conclusion.outputs[0].data["text/markdown"].split("**")[1]  # "2026Q3 revenue was $3,073,915 ..."
    # the Markdown escapes `$` (mathtext); the index shows the same words as HTML
    assert first.startswith("2026Q3 revenue was") and first.replace("\\$", "$") in index
    assert index.index("The quarter in brief") < index.index("Headline KPIs")


# --------------------------------------------------------------------------------------------------
# Any subset of tables (issue 9: reports degrade, they do not die). Each folder below is cut from the
# sample and rendered once with `kpi report` (about 20-50 s each here); every page must render, say in
# one line what each section lacks, and show n/a (never 0) where the data is missing, while the numbers
# the folder does hold are exactly the sample's.

SAMPLE = ROOT / "data" / "sample"
NOTEBOOK_NAMES = [nb.stem for nb in NOTEBOOKS]


def _copy(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(SAMPLE / name, folder / name)


def _header_only(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")


def _one_year(folder: Path) -> None:
    """Everything, but revenue only from FY2025 on: one complete fiscal year before the report's."""
    _copy(folder, *(p.name for p in SAMPLE.iterdir()))
    rev = pd.read_csv(folder / "revenue.csv", dtype=str)
    rev[rev["month"] >= "2025-01-01"].to_csv(folder / "revenue.csv", index=False)


def _no_leads(folder: Path) -> None:
    """Everything, but `leads.csv` (and the touches of leads) header-only; the deals keep their rows
    without a lead (sales-sourced), as a deal may not name a lead the export does not hold."""
    _copy(folder, *(p.name for p in SAMPLE.iterdir()))
    _header_only(folder / "leads.csv")
    _header_only(folder / "touchpoints.csv")
    opps = pd.read_csv(folder / "opportunities.csv", dtype=str, keep_default_na=False)
    opps.assign(lead_id="").to_csv(folder / "opportunities.csv", index=False)


#: folder -> (how to build it, tables changed from the sample, the lines its pages must show[, the
#: notebooks to render: every one when not given]). The web-only, CRM-only and spend-only folders
#: render the full report; the others only the pages their change reaches (the suite's time).
SUBSETS = {
    "web-only": (
        lambda f: _copy(f, "web_sessions.csv", "goals.yml"),
        set(),
        {
            "00-quarterly-summary": ["No revenue target: needs revenue: add revenue.csv"],
            "01-goal-setting": ["This section needs revenue: add revenue.csv", "There is no FY2026 revenue target"],
            "02-traffic-and-lead-value": ["This section needs leads: add leads.csv", "This section needs content"],
            "03-channel-conversion": ["This section needs leads", "This section needs web_goals"],
            "04-roi": ["This section needs spend: add spend.csv"],
        },
    ),
    "crm-only": (
        lambda f: _copy(f, "leads.csv", "opportunities.csv", "goals.yml"),
        set(),
        {
            "00-quarterly-summary": ["No revenue target: needs revenue"],
            "01-goal-setting": ["This section needs revenue"],
            "02-traffic-and-lead-value": ["This section needs web_sessions: add web_sessions.csv"],
            "03-channel-conversion": ["each lead's own channel", "This section needs touchpoints"],
            "04-roi": ["This section needs spend", "This section needs touchpoints"],
        },
    ),
    "spend-only": (
        lambda f: _copy(f, "spend.csv", "goals.yml"),
        set(),
        {
            "00-quarterly-summary": ["No revenue target"],
            "01-goal-setting": ["This section needs revenue"],
            "02-traffic-and-lead-value": ["This section needs leads", "This section needs web_sessions"],
            "03-channel-conversion": ["This section needs leads"],
            "04-roi": ["This section needs leads: add leads.csv"],
        },
    ),
    "one-year": (
        _one_year,
        {"revenue"},
        {"01-goal-setting": ["Only FY2025 is complete: no growth history", "the uplift set in goals.yml"]},
        ("00-quarterly-summary", "01-goal-setting"),  # the pages revenue reaches: the rest is the sample's
    ),
    "no-leads": (
        _no_leads,
        {"leads", "opportunities", "touchpoints"},
        {
            "02-traffic-and-lead-value": ["This section needs leads data for 2026Q3; the leads export has none"],
            "03-channel-conversion": ["This section needs leads data for 2026Q3"],
            "04-roi": ["This section needs leads data for 2026Q3"],
        },
        ("02-traffic-and-lead-value", "03-channel-conversion", "04-roi"),  # the pages leads reach
    ),
}


@dataclass
class Subset:
    name: str
    data: Path
    folder: Path
    changed: set[str]
    lines: dict[str, list[str]]
    metrics: dict
    nbs: dict
    pages: dict[str, str]  # page stem -> its visible text
    seconds: float


def _visible(path: Path) -> str:
    """A page's text as a reader sees it: tags, scripts and styles gone, whitespace collapsed."""
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", path.read_text(encoding="utf-8"), flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split()).replace(" :", ":")


@pytest.fixture(scope="session", params=list(SUBSETS))
def subset(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Subset:
    """One folder of SUBSETS rendered by `kpi report` (once per session)."""
    import nbformat

    build, changed, lines, *only = SUBSETS[request.param]
    names = list(only[0]) if only else NOTEBOOK_NAMES
    tmp = tmp_path_factory.mktemp(request.param)
    build(tmp / "data")
    started = time.perf_counter()
    argv = ["report", "--data", str(tmp / "data"), "--quarter", "latest", "--out", str(tmp / "out")]
    if only:
        argv += ["--notebooks", *(str(ROOT / "notebooks" / f"{n}.ipynb") for n in names)]
    assert main(argv) == 0
    seconds = time.perf_counter() - started
    folder = tmp / "out" / "2026Q3"
    return Subset(
        request.param,
        tmp / "data",
        folder,
        changed,
        lines,
        json.loads((folder / "metrics.json").read_text()),
        {n: nbformat.read(folder / f"{n}.ipynb", as_version=4) for n in names},
        {p.stem: _visible(p) for p in folder.glob("*.html")},
        seconds,
    )


#: the sample's 2026Q3, as `kpi summary --data data/sample` gives it: a subset holding a KPI's tables
#: unchanged gives exactly these
SAMPLE_2026Q3 = {
    "revenue": 3_073_914.54,
    "visits": 27_078,
    "leads": 551,
    "mqls": 301,
    "sqls": 101,
    "opportunities": 97,
    "won_deals": 26,
    "won_revenue": 2_996_300.0,
    "lead_revenue": 550_300.0,
    "new_customers": 26,
    "bounce_rate": 0.4959,
    "marketing_cost": 197_016.25,
    "visits_per_lead": 49.14,
    "value_per_lead": 998.73,
    "clv": 98_527.0,
    "email_open_rate": 0.2631,
}


def _record(nb) -> dict:
    from kpi_helpers.notebook import read_record

    return read_record(nb)


def test_subset_renders_every_page_without_errors(subset: Subset) -> None:
    names = {p.name for p in subset.folder.iterdir()}
    assert {f"{n}.html" for n in subset.nbs} | {"index.html", "metrics.json"} <= names
    for name, nb in subset.nbs.items():
        outs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        assert not [o for o in outs if o.output_type == "error"], name
        assert not [o for o in outs if o.get("name") == "stderr"], f"{name}: warnings printed"
        conclusion = next(c for c in nb.cells if "conclusion" in c.metadata.get("tags", []))
        assert conclusion.outputs and conclusion.outputs[0].data["text/markdown"].strip(), f"{name}: no conclusion"


def test_subset_metrics_are_null_where_data_is_missing_and_exact_where_not(subset: Subset) -> None:
    from kpi_helpers.registry import KPIS

    m = subset.metrics
    present = set(m["tables"])
    for key, why in m["undefined"].items():
        assert m.get(key) is None, f"{key} is {m.get(key)!r} though undefined ({why})"
    for key, kpi in KPIS.items():
        lacking = [t for t in kpi.needs if t not in present or m["coverage"][t]["status_in_quarter"] == "none"]
        if lacking:
            assert m[key] is None and key in m["undefined"], f"{key}: {m[key]!r} without {lacking}"
            assert (m["previous_quarter"] or {}).get(key) is None and (m["year_ago"] or {}).get(key) is None
        elif key in SAMPLE_2026Q3 and not set(kpi.needs) & subset.changed:
            assert m[key] == pytest.approx(SAMPLE_2026Q3[key], rel=5e-4), f"{key} differs from the sample's"
    for plan in m["funnel_plan"].values():
        assert plan["required"] is None or plan["required"] > 0


def test_subset_records_show_what_the_metrics_show(subset: Subset) -> None:
    """Every number a notebook records is metrics.json's, n/a (null) where the data is missing; a table
    a section could not draw is recorded as null, never as zeros."""
    m = subset.metrics
    for name, nb in subset.nbs.items():
        record = _record(nb)
        for key, value in record.items():
            if isinstance(value, dict | list) or key in ("quarter", "notebook", "fiscal_year", "pacing"):
                continue  # breakdowns (per channel, asset, quarter), labels, and the current quarter's pacing
            if key in m:
                if key == "attributed_lead_revenue" and m["lead_revenue"] is None:
                    assert value is None, f"{name}: attributed revenue without lead revenue"  # see metrics.py
                else:
                    assert value == m[key], f"{name}.{key}: {value!r} != metrics.json {m[key]!r}"
        if "leads" not in m["tables"] or m["coverage"]["leads"]["status_in_quarter"] == "none":
            for key in ("leads_by_channel", "funnel", "lead_to_sql_rate", "attribution", "roi_by_channel"):
                assert record.get(key, None) is None, f"{name}.{key} recorded without leads"
        if "spend" not in m["tables"]:
            assert record.get("spend_by_channel") is None and record.get("cost_per_lead_by_channel") is None
        if "revenue" not in m["tables"]:
            assert record.get("revenue_target") is None and record.get("target_revenue") is None


def test_subset_pages_say_in_one_line_what_each_section_lacks(subset: Subset) -> None:
    for name, lines in subset.lines.items():
        page = subset.pages[name].replace("`", "")
        for line in lines:
            assert line in page, f"{name}.html does not say: {line}"
    for name, nb in subset.nbs.items():
        for cell in nb.cells:
            notes = [o.data.get("text/markdown", "") for o in cell.get("outputs", []) if "data" in o]
            missing = [n for n in notes if n.startswith("> ")]
            assert len(missing) <= 2, f"{name}: a section shows more than its line: {missing}"


def test_subset_claims_no_attribution_from_touches_it_does_not_have(subset: Subset) -> None:
    touches = "touchpoints" in subset.metrics["tables"] and "touchpoints" not in subset.changed
    for name in ("03-channel-conversion", "04-roi"):
        page = subset.pages.get(name, "")  # the one-year folder renders neither (it keeps every touch)
        if not touches:
            assert "touched the buyer" not in page and "every model side by side" not in page
            assert "own channel" in page


def test_one_year_of_revenue_sets_the_target_from_last_year_and_the_uplift(subset: Subset) -> None:
    if subset.name != "one-year":
        pytest.skip("the one-year folder")
    m = subset.metrics
    goal = _record(subset.nbs["01-goal-setting"])
    revenue = pd.read_csv(SAMPLE / "revenue.csv", parse_dates=["month"])
    fy2025 = revenue[revenue.month.dt.year == 2025].revenue.sum()  # the only complete year (fiscal = calendar)
    assert goal["last_year_revenue"] == pytest.approx(fy2025)
    assert goal["target_revenue"] == pytest.approx(goal["last_year_revenue"] * 1.05)
    assert m["revenue_target_fiscal_year"] == pytest.approx(goal["target_revenue"])
    assert m["revenue_goal_note"] and goal["revenue_history"] == {"2025": pytest.approx(fy2025)}


def test_a_web_only_or_spend_only_folder_has_no_target_and_says_why(subset: Subset) -> None:
    if "revenue" in subset.metrics["tables"]:
        pytest.skip("a folder without revenue")
    goal = _record(subset.nbs["01-goal-setting"])
    assert goal["target_revenue"] is None and goal["formula"] is None and goal["quarterly_targets"] is None
    assert all(v is None for v in goal["funnel_required"].values())
    assert "There is no FY2026 revenue target" in subset.pages["01-goal-setting"]


def test_crm_only_credits_lead_revenue_to_each_leads_own_channel(subset: Subset) -> None:
    if subset.name != "crm-only":
        pytest.skip("the CRM-only folder")
    m = subset.metrics
    assert m["attributed_lead_revenue"] == pytest.approx(m["lead_revenue"])
    credit = _record(subset.nbs["03-channel-conversion"])["attribution"]["own_channel"]
    assert sum(credit.values()) == pytest.approx(m["lead_revenue"])


def test_no_leads_attributes_no_revenue_as_zero(subset: Subset) -> None:
    if subset.name != "no-leads":
        pytest.skip("the header-only leads folder")
    m = subset.metrics
    assert m["attributed_lead_revenue"] is None
    for channel, row in m["by_channel"].items():
        assert row["attributed_revenue"] is None and row["roi"] is None, channel
