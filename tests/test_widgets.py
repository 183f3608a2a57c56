"""kpi_helpers.widgets: the interactive views, without a browser.

A view's controls are ipywidgets objects; setting ``.value`` runs the same observers a browser change
runs, so each test changes a control and reads what the view's display handles were given. Fast tests
use stub pages; the ``slow`` test opens the sample and changes every control of every page's view.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ipywidgets as widgets
import matplotlib
import pandas as pd
import pytest
from pagedata import kpis, metrics

matplotlib.use("Agg", force=True)

import matplotlib.pyplot as plt

from kpi_helpers import charts as C
from kpi_helpers import widgets as W
from kpi_helpers.attribution import MODELS

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


class Handle:
    """A display handle that keeps every object it was given."""

    def __init__(self, obj: Any) -> None:
        self.shown = [obj]

    def update(self, obj: Any) -> None:
        self.shown.append(obj)


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """IPython's display replaced: ``shown`` (everything displayed) and ``handles`` (the redrawable ones)."""
    import IPython.display

    out = SimpleNamespace(shown=[], handles=[])

    def fake_display(obj: Any, *_a: Any, display_id: bool = False, **_kw: Any) -> Handle | None:
        out.shown.append(obj)
        if display_id:
            out.handles.append(Handle(obj))
            return out.handles[-1]
        return None

    monkeypatch.setattr(IPython.display, "display", fake_display)
    yield out
    plt.close("all")


# --------------------------------------------------------------------------------------- typed numbers


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [
        ("2%", "percent", 0.02),
        ("2", "percent", 0.02),
        ("0.02", "percent", 0.02),
        (" 2 % ", "percent", 0.02),
        ("12.5", "percent", 0.125),
        ("0.5%", "percent", 0.005),
        ("-1.5%", "percent", -0.015),
        ("150%", "percent", 1.5),
        (0.05, "percent", 0.05),  # a slider's float passes through
        ("$1,200", "money", 1200.0),
        ("USD 1200", "money", 1200.0),
        ("1.2k", "money", 1200.0),
        ("€2.5M", "money", 2_500_000.0),
        ("700", "count", 700.0),
        ("1.5k", "count", 1500.0),
        ("6.1", "ratio", 6.1),
    ],
    ids=lambda x: repr(x),
)
def test_parse_value_reads_what_a_person_types(text: Any, unit: str, expected: float) -> None:
    assert W.parse_value(text, unit, currency="USD") == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("typed", ["2%", "2", "0.02"], ids=["percent-sign", "points", "fraction"])
def test_an_uplift_of_2_percent_however_it_is_typed(typed: str) -> None:
    assert W.parse_uplift(typed) == 0.02


@pytest.mark.parametrize(
    ("text", "unit", "match"),
    [
        ("abc", "percent", r"Uplift: `abc` is not a number; type e.g. 2%, 2 or 0.02"),
        ("", "percent", r"`` is not a number"),
        ("5%", "money", r"`5%` is not a number; type e.g. 1200, 1,200 or 1.2k"),
        ("1e400", "count", r"is not a number"),
        (float("nan"), "count", r"`nan` is not a finite number"),
    ],
    ids=["word", "empty", "percent-as-money", "exponent", "nan"],
)
def test_parse_value_refuses_what_is_not_a_number(text: Any, unit: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        W.parse_value(text, unit, name="Uplift")


def test_an_uplift_out_of_range_is_named_with_what_it_reads_as() -> None:
    with pytest.raises(ValueError, match=r"Uplift: `300` reads as 300.0%; expected -50.0% to 100.0%"):
        W.parse_uplift("300")


# --------------------------------------------------------------------------------------- explore


def _trend_view(calls: list, controls: dict) -> Any:
    def render(q: str, model: str) -> list[Any]:
        calls.append((q, model, {n: w.disabled for n, w in controls.items()}))
        if q == "bad":
            raise ValueError("Quarter: `bad` is not a quarter")
        fig, ax = W.new_figure((4, 3))
        C.plot_trend(pd.DataFrame({"leads": [1, 2]}, index=["2026Q2", "2026Q3"]), "leads", ax=ax)
        return [f"{q}/{model}", fig]

    return render


def test_explore_redraws_in_place_and_shows_a_busy_state(screen: SimpleNamespace) -> None:
    calls: list = []
    controls = {
        "q": widgets.Dropdown(options=["2026Q1", "2026Q3", "bad"], value="2026Q3"),
        "model": widgets.Dropdown(options=[("Linear", "linear"), ("Markov", "markov")], value="linear"),
    }
    before = plt.get_fignums()
    busy: list[str] = []
    view = W.explore(_trend_view(calls, controls), **controls)
    view.status.observe(lambda change: busy.append(change["new"]), names="value")
    assert isinstance(screen.shown[0], widgets.VBox) and screen.shown[1] == "2026Q3/linear"
    assert calls[0][2] == {"q": False, "model": False}
    controls["q"].value = "2026Q1"
    assert calls[-1][:2] == ("2026Q1", "linear") and calls[-1][2] == {"q": True, "model": True}, "busy: disabled"
    assert busy == [W.BUSY, ""] and view.status.value == ""
    assert not any(w.disabled for w in controls.values()), "enabled again once drawn"
    assert screen.handles[0].shown == ["2026Q3/linear", "2026Q1/linear"] and len(screen.handles[1].shown) == 2
    assert plt.get_fignums() == before, "view figures must stay outside pyplot"
    assert not any(isinstance(o, widgets.Output) for o in screen.shown), "no Output widget (stalls nbclient)"


def test_explore_names_an_input_it_cannot_read_and_keeps_the_view(screen: SimpleNamespace) -> None:
    calls: list = []
    controls = {"q": widgets.Dropdown(options=["2026Q3", "bad"], value="2026Q3"), "model": widgets.Text("linear")}
    view = W.explore(_trend_view(calls, controls), **controls)
    controls["q"].value = "bad"
    assert view.status.value == "Quarter: `bad` is not a quarter"
    assert screen.handles[0].shown == ["2026Q3/linear"], "the view keeps what it showed"
    assert not controls["q"].disabled


# --------------------------------------------------------------------------------------- views on stub pages


def _stub_page(**kw: Any) -> SimpleNamespace:
    """What the views read of a Page, for 2026Q3 of ``pagedata.metrics()`` without touchpoints."""
    m = metrics()
    said: list[str] = []
    kq = SimpleNamespace(
        quarter=SimpleNamespace(label="2026Q3"),
        attribution_model="position_based",
        trend=pd.DataFrame({"leads": [610, 624]}, index=["2026Q2", "2026Q3"]),
    )
    page = SimpleNamespace(
        m=m,
        kq=kq,
        currency="USD",
        touches=False,
        said=said,
        say=said.append,
        lacks=lambda *t: "",
        judged=lambda rows=None: [k for k in (m["kpis"] if rows is None else rows) if k.get("actual") is not None],
    )
    for key, value in kw.items():
        setattr(page, key, value)
    return page


def test_the_summary_offers_no_model_control_where_the_model_changes_nothing(screen: SimpleNamespace) -> None:
    """Issue 11: the summary's attribution dropdown changed only a label (total ROI does not depend
    on the model). Without touches there is nothing the model changes: no model control."""
    view = W.explore_summary(_stub_page())
    assert list(view.controls) == ["quarter_label"] and len(view.handles) == 2


def test_dropdowns_show_labels_never_raw_ids() -> None:
    model = W._dropdown(MODELS, "position_based", "Model", W._model_name)
    labels = [label for label, _ in model.options]
    assert "Position-based" in labels and "W-shaped" in labels and "position_based" not in labels
    assert model.value == "position_based"
    metric = W._dropdown(W.TRAFFIC_METRICS, "leads", "Metric", W.label_of)
    assert ("Visits per lead", "visits_per_lead") in metric.options


def test_targets_view_judges_a_tried_target_by_the_one_rule(screen: SimpleNamespace) -> None:
    view = W.explore_targets(_stub_page())
    names = {w.description: n for n, w in view.controls.items()}
    assert [w.value for w in view.controls.values()] == ["705", "$325", "100.0%"]  # formatted by unit
    fig = screen.handles[1].shown[0]
    assert C.drawn_statuses(fig) == {"leads": "off track", "cost_per_lead": "at risk", "marketing_roi": "on track"}
    view.controls[names["Cost per lead"]].value = "$350"  # 342 is at most 350: on track
    view.controls[names["Leads per quarter"]].value = "6%"  # a percent sign on a count: refused, named
    assert view.status.value.startswith("Leads per quarter: `6%` is not a number")
    view.controls[names["Leads per quarter"]].value = "600"
    assert C.drawn_statuses(screen.handles[1].shown[-1]) == {
        "leads": "on track",
        "cost_per_lead": "on track",
        "marketing_roi": "on track",
    }
    assert "3 of 3 KPIs are on track" in screen.handles[0].shown[-1].data
    assert [r["status"] for r in kpis()][:3] == ["off track", "at risk", "on track"], "the page's rows unchanged"


def test_targets_view_without_kpis_says_so(screen: SimpleNamespace) -> None:
    page = _stub_page(judged=lambda rows=None: [])
    assert W.explore_targets(page) is None
    assert page.said == ["No KPI of 2026Q3 has a target and a value to try targets on."]


# --------------------------------------------------------------------------------------- the sample's pages


@pytest.mark.slow
def test_every_control_of_every_view_changes_what_it_shows(screen: SimpleNamespace) -> None:
    """On the sample: each view's each control, set to another value, changes at least one output."""
    if not SAMPLE.is_dir():
        pytest.skip("data/sample is missing (make sample)")
    from kpi_helpers import breakdowns as B
    from kpi_helpers.notebook import setup

    with matplotlib.rc_context():
        page = setup(str(SAMPLE), "latest")
    funnel = page.funnel()
    views = {
        "summary": lambda: W.explore_summary(page),
        "goal": lambda: W.explore_goal(page),
        "targets": lambda: W.explore_targets(page),
        "traffic": lambda: W.explore_traffic(page, funnel),
        "attribution": lambda: W.explore_attribution(page, page.credited()),
        "roi": lambda: W.explore_roi(page, B.channel_economics(page.kq, clv=page.m["clv"])),
    }
    other = {"uplift": "2%", "quarter_label": "2026Q1", "channel": "Email", "metric": "visits_per_lead",
             "model_name": "linear", "kpi_0": "1"}  # fmt: skip
    for name, make in views.items():
        screen.handles.clear()
        view = make()
        assert view is not None, name
        for control, widget in view.controls.items():
            before = [len(h.shown) for h in screen.handles]
            widget.value = other.get(control, other["kpi_0"])
            assert view.status.value == "", f"{name}.{control}: {view.status.value}"
            assert [len(h.shown) for h in screen.handles] != before, f"{name}.{control} redrew nothing"
            assert any(_text(h.shown[-1]) != _text(h.shown[-2]) for h in screen.handles), f"{name}.{control}: no-op"
    assert page.touches and "model_name" in W.explore_summary(page).controls


def _text(obj: Any) -> str:
    """What an output shows, comparable: a Styler's HTML, a figure's texts and bars, Markdown's text."""
    if hasattr(obj, "to_html"):
        return obj.to_html()
    if hasattr(obj, "get_axes"):
        return repr([(t.get_text(), [p.get_width() for p in ax.patches]) for ax in obj.get_axes() for t in ax.texts])
    return str(getattr(obj, "data", obj))
