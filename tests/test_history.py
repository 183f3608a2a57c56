"""The metrics history outside the quarter folders, `changes.json`, and the index's trend and change section."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import SAMPLE, write_notebook

from kpi_helpers import history
from kpi_helpers.exceptions import NotebookError
from kpi_helpers.registry import KPIS
from kpi_helpers.trend import headline_trend

# --------------------------------------------------------------------------------------------------
# Which KPIs changed


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({"leads": 10}, {"leads": 10}, []),
        ({"leads": 10}, {"leads": 11}, [("leads", 10.0, 11.0, 1.0)]),
        # float noise of a recomputation (one part in 10^12) is no change
        ({"bounce_rate": 0.3}, {"bounce_rate": 0.3 * (1 + 1e-12)}, []),
        ({"revenue": None}, {"revenue": 5.0}, [("revenue", None, 5.0, None)]),  # became computable
        ({"revenue": 5.0}, {"revenue": None}, [("revenue", 5.0, None, None)]),  # became n/a
        ({"revenue": None}, {"revenue": None}, []),
        ({}, {"leads": 3}, [("leads", None, 3.0, None)]),  # a KPI the older render did not hold
        ({"not_a_kpi": 1}, {"not_a_kpi": 2}, []),  # only the registry's KPIs are compared
        # the registry's order, whatever order the dicts have
        ({"won_deals": 3, "visits": 1}, {"won_deals": 4, "visits": 2},
         [("visits", 1.0, 2.0, 1.0), ("won_deals", 3.0, 4.0, 1.0)]),
    ],
    ids=["same", "count", "noise", "to-value", "to-na", "both-na", "new-key", "not-kpi", "order"],
)  # fmt: skip
def test_changed_kpis(before: dict, after: dict, expected: list) -> None:
    found = history.changed_kpis(before, after)
    assert [(c["kpi"], c["before"], c["after"], c["change"]) for c in found] == expected
    for c in found:
        assert c["label"] == KPIS[c["kpi"]].label and c["unit"] == KPIS[c["kpi"]].unit


def test_a_first_render_has_no_changes() -> None:
    doc = history.changes("2026Q3", None, {"leads": 5, "data_fingerprint": "sha256:b"})
    assert doc == {
        "quarter": "2026Q3",
        "since": None,
        "data_fingerprint": {"before": None, "after": "sha256:b"},
        "changes": [],
    }


def test_changes_name_the_render_they_compare_with() -> None:
    previous = history.Render(dt.datetime(2026, 11, 5, 6, 0, 12, tzinfo=dt.UTC), {"leads": 5, "data_fingerprint": "a"})
    doc = history.changes("2026Q3", previous, {"leads": 6, "data_fingerprint": "b"})
    assert doc["since"] == "2026-11-05T06:00:12Z" and previous.date == "2026-11-05"
    assert doc["data_fingerprint"] == {"before": "a", "after": "b"}
    assert [c["kpi"] for c in doc["changes"]] == ["leads"]


# --------------------------------------------------------------------------------------------------
# Recording and reading renders


def _published(out: Path, label: str, metrics: dict) -> Path:
    folder = out / label
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "metrics.json"
    path.write_text(json.dumps(metrics))
    return path


def test_renders_are_named_by_source_date_epoch_and_never_overwritten(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # 2023-11-14 22:13:20 UTC
    source = _published(tmp_path, "2026Q3", {"leads": 1})
    first = history.record(tmp_path, "2026Q3", source)
    source.write_text(json.dumps({"leads": 2}))
    second = history.record(tmp_path, "2026Q3", source)
    assert (first.name, second.name) == ("20231114T221320Z", "20231114T221320Z-1")
    assert first.parent == tmp_path / ".history" / "2026Q3"
    assert json.loads((first / "metrics.json").read_text()) == {"leads": 1}
    last = history.last_render(tmp_path, "2026Q3")
    assert last is not None and last.metrics == {"leads": 2} and last.date == "2023-11-14"


def test_only_the_last_renders_are_kept_and_nothing_else_is_touched(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(history, "KEEP", 3)
    source = _published(tmp_path, "2026Q3", {"leads": 1})
    mine = tmp_path / ".history" / "2026Q3" / "notes"
    mine.mkdir(parents=True)
    (mine / "a.txt").write_text("mine")
    for epoch in range(1700000000, 1700000005):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", str(epoch))
        history.record(tmp_path, "2026Q3", source)
    names = sorted(p.name for p in (tmp_path / ".history" / "2026Q3").iterdir())
    assert names == ["20231114T221322Z", "20231114T221323Z", "20231114T221324Z", "notes"]
    assert (mine / "a.txt").read_text() == "mine"


def test_a_damaged_entry_is_skipped_for_the_one_before(tmp_path, monkeypatch) -> None:
    source = _published(tmp_path, "2026Q3", {"leads": 1})
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    history.record(tmp_path, "2026Q3", source)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700086400")
    damaged = history.record(tmp_path, "2026Q3", source)
    (damaged / "metrics.json").write_text('{"leads": ')  # a crash mid-write, or a disk error
    last = history.last_render(tmp_path, "2026Q3")
    assert last is not None and last.date == "2023-11-14"


def test_a_report_from_before_the_history_is_the_last_render(tmp_path) -> None:
    source = _published(tmp_path, "2026Q3", {"leads": 7})
    os.utime(source, (1700000000, 1700000000))
    last = history.last_render(tmp_path, "2026Q3")
    assert last is not None and last.metrics == {"leads": 7} and last.date == "2023-11-14"
    assert history.last_render(tmp_path, "2026Q2") is None


# --------------------------------------------------------------------------------------------------
# The index's trend


def test_the_trend_shows_each_headline_kpi_across_the_quarters() -> None:
    quarters = [
        ("2026Q1", {"currency": "USD", "revenue": 1.0e6, "leads": 500, "avg_session_duration_s": 90.0}),
        ("2026Q2", {"currency": "USD", "revenue": None, "leads": 550}),
        ("2026Q3", {"currency": "USD", "revenue": 1.2e6, "leads": 495}),
    ]
    trend = headline_trend(quarters)
    assert trend is not None and trend.quarters == ["2026Q1", "2026Q2", "2026Q3"]
    rows = {r.key: r for r in trend.rows}
    assert set(rows) == {"revenue", "leads"}  # session duration is not a headline KPI
    assert rows["leads"].values == ["500", "550", "495"] and rows["leads"].change == "-10.0%"
    assert rows["revenue"].values == ["$1M", "n/a", "$1.2M"] and rows["revenue"].change == "n/a"
    # a gap where a quarter has no value: two points either side are not joined
    assert rows["revenue"].sparkline.count("<polyline") == 0 and "<circle" in rows["revenue"].sparkline
    assert rows["leads"].sparkline.count("<polyline") == 1
    assert headline_trend(quarters[:1]) is None


# --------------------------------------------------------------------------------------------------
# End to end: restating a won deal of a rendered quarter


def _sample_metrics(data: Path):
    def metrics_fn(*, quarter: str, **_: object) -> dict:
        from kpi_helpers.metrics import quarter_metrics
        from kpi_helpers.source import DataSource

        return quarter_metrics(DataSource.open(data), quarter)

    return metrics_fn


def _restate_one_won_deal(data: Path, extra: float) -> str:
    """Raise the amount of one new-business deal from a lead, won in 2026Q3; return its id."""
    path = data / "opportunities.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    won = df[
        (df.stage == "won")
        & (df.lead_id != "")
        & df.type.isin(["new", ""])
        & df.closed_at.between("2026-07-01", "2026-09-30 23:59:59")
    ]
    row = won.index[0]
    df.loc[row, "amount"] = f"{float(df.loc[row, 'amount']) + extra:.2f}"
    df.to_csv(path, index=False)
    return str(df.loc[row, "opportunity_id"])


@pytest.mark.slow
def test_restating_a_won_deal_lists_exactly_the_kpis_that_changed(tmp_path, monkeypatch) -> None:
    from kpi_helpers.metrics import quarter_metrics
    from kpi_helpers.runner import render_report
    from kpi_helpers.source import DataSource

    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    nb = write_notebook(
        tmp_path / "nb" / "00-page.ipynb", ("code", 'data: str = ""\nquarter: str = ""', ["parameters"])
    )
    out = tmp_path / "reports"
    args = {"data": data, "quarter": "2026Q3", "out": out, "notebooks": [nb], "progress": None}

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1793000000")  # 2026-10-26: the quarter's first report
    render_report(**args, metrics_fn=_sample_metrics(data))
    first = json.loads((out / "2026Q3" / "changes.json").read_text())
    assert first["since"] is None and first["changes"] == []
    before = quarter_metrics(DataSource.open(data), "2026Q3")

    _restate_one_won_deal(data, 10_000.0)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1794000000")  # 2026-11-06: re-rendered after the restatement
    render_report(**args, metrics_fn=_sample_metrics(data))
    after = quarter_metrics(DataSource.open(data), "2026Q3")

    doc = json.loads((out / "2026Q3" / "changes.json").read_text())
    expected = [k for k in KPIS if k in before and before[k] != after[k]]
    assert [c["kpi"] for c in doc["changes"]] == expected
    changed = {c["kpi"]: c for c in doc["changes"]}
    # by hand: the deal's 10,000 more is 10,000 more bookings and lead revenue; no count moved
    assert changed["won_revenue"]["change"] == pytest.approx(10_000.0)
    assert changed["lead_revenue"]["change"] == pytest.approx(10_000.0)
    assert {"value_per_lead", "value_per_visit"} <= set(changed)
    assert not {"leads", "visits", "won_deals", "opportunities", "revenue"} & set(changed)
    assert doc["since"] == "2026-10-26T07:33:20Z"
    assert doc["data_fingerprint"]["before"] != doc["data_fingerprint"]["after"]

    index = (out / "2026Q3" / "index.html").read_text()
    assert "Changed since the report of 2026-10-26" in index
    assert index.index("Changed since the report") < index.index("Headline KPIs")
    assert f"{len(expected)} KPIs changed" in index and "Won revenue (bookings)" in index
    brief = (out / "2026Q3" / "brief.html").read_text()
    assert f"Restated: {len(expected)} KPIs changed since the report of 2026-10-26" in brief
    entries = sorted(p.name for p in (out / ".history" / "2026Q3").iterdir())
    assert entries == ["20261026T073320Z", "20261106T212000Z"]


@pytest.mark.slow
def test_a_failed_run_records_no_history(tmp_path) -> None:
    from kpi_helpers.runner import render_report

    nb = write_notebook(tmp_path / "00-bad.ipynb", ("code", 'quarter: str = ""', ["parameters"]), ("code", "1 / 0"))
    with pytest.raises(NotebookError):
        render_report(data=tmp_path, quarter="2026Q3", out=tmp_path / "out", notebooks=[nb], progress=None)
    assert not (tmp_path / "out" / ".history").exists()


@pytest.mark.slow
def test_the_reports_index_shows_the_trend_of_the_rendered_quarters(tiny_report) -> None:
    """The tiny report holds no registry KPI: no trend; a second quarter of the sample's KPIs gives one."""
    from kpi_helpers import outdir, pages

    out = tiny_report.out
    assert "Headline KPIs across the quarters" not in (out / "index.html").read_text()
    copy = out.parent / "trend-copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("*.lock"))
    for label, leads in (("2026Q2", 480), ("2026Q3", 520)):
        folder = copy / label
        folder.mkdir(exist_ok=True)
        (folder / "index.html").write_text(f"<p>{outdir.INDEX_MARK}</p>")
        (folder / "metrics.json").write_text(json.dumps({"quarter": label, "leads": leads, "currency": "USD"}))
        outdir.write_manifest(folder, outdir.manifest_of(folder))
    html = pages.write_reports_index(copy).read_text()
    trend = html[html.index("Headline KPIs across the quarters") :]
    assert '<th class="num">2026Q2</th><th class="num">2026Q3</th>' in trend
    assert '<td>Leads</td><td class="num">480</td><td class="num">520</td><td class="num">+8.3%</td>' in trend
    assert '<svg class="spark"' in trend and "<script" not in html
