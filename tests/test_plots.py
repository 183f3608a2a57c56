"""kpi_helpers.plots: charts draw on the axes they are given, tables escape data text, words are safe.

Fast: synthetic frames shaped like the helpers' outputs, Agg backend, no data source.
"""

from __future__ import annotations

import math
from decimal import Decimal

import matplotlib

matplotlib.use("Agg", force=True)

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from conftest import HOSTILE_CAMPAIGN, HOSTILE_CHANNEL

from kpi_helpers import plots as P
from kpi_helpers.kpis import Undefined

CHANNELS = ["Email", "Paid Search", HOSTILE_CHANNEL, "Price $5 off $10"]
QUARTERS = ["2025Q4", "2026Q1", "2026Q2", "2026Q3"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _trend() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "leads": [500, 520, 610, 624],
            "visits": [20_000, 21_000, 25_000, 24_476],
            "organic_visits": [7_000, 7_500, 9_000, 8_690],
            "value_per_lead": [900.0, 950.0, 769.0, 1129.0],
            "bounce_rate": [0.49, 0.50, 0.497, 0.50],
        },
        index=pd.Index(QUARTERS, name="quarter"),
    )


def _kpis() -> list[dict]:
    return [
        {
            "name": "Leads per quarter",
            "metric": "leads",
            "owner": "Demand gen",
            "goal": "revenue",
            "baseline": 481.0,
            "target": 705.0,
            "actual": 624.0,
            "projected": None,
            "status": "off track",
        },
        {
            "name": "Cost per lead",
            "metric": "cost_per_lead",
            "owner": HOSTILE_CHANNEL,
            "goal": "revenue",
            "baseline": 380.0,
            "target": 325.0,
            "actual": 342.0,
            "projected": None,
            "status": "at risk",
        },
        {
            "name": "Marketing ROI",
            "metric": "marketing_roi",
            "owner": "CMO",
            "goal": "revenue",
            "baseline": 0.8,
            "target": 1.0,
            "actual": 2.3,
            "projected": None,
            "status": "on track",
        },
        {
            "name": "Visit-to-lead rate",
            "metric": "visit_to_lead_rate",
            "owner": "Web",
            "goal": "revenue",
            "baseline": None,
            "target": 0.025,
            "actual": None,
            "projected": None,
            "status": "no data",
        },
    ]


def _plan() -> pd.DataFrame:
    idx = ["lead_revenue", "won_deals", "opportunities", "sqls", "mqls", "leads", "visits"]
    return pd.DataFrame(
        {
            "required": [608_334.0, 23.6, 81.7, 123.3, 359.4, 705.0, 29_394.0],
            "actual": [704_500.0, 24.0, 62.0, 115.0, 316.0, 624.0, 24_476.0],
        },
        index=idx,
    )


def _comparison() -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "first_touch": [100.0, 50.0, 0.0, 10.0],
            "linear": [60.0, 60.0, 20.0, 20.0],
            "position_based": [70.0, 55.0, 10.0, 25.0],
        },
        index=pd.Index(CHANNELS, name="channel"),
    )
    df.columns.name = "model"
    return df


def _metrics() -> dict:
    prev = {
        "quarter": "2026Q2",
        "revenue": 928_808.0,
        "leads": 662.0,
        "lead_revenue": 509_200.0,
        "cost_per_lead": 319.0,
        "cac": 16_120.0,
        "marketing_roi": 1.409,
        "visits": 27_209.0,
        "visits_per_lead": 41.1,
        "visit_to_lead_rate": 0.024,
        "value_per_lead": 769.0,
        "value_per_visit": 18.71,
        "bounce_rate": 0.497,
        "organic_visits": 9_969.0,
        "lead_to_customer_rate": 0.03,
        "marketing_cost": 211_386.0,
    }
    return {
        "quarter": "2026Q3",
        "quarter_start": "2026-07-01",
        "quarter_end": "2026-09-30",
        "fiscal_year": "FY2026",
        "data_end": "2026-10-20",
        "complete": True,
        "days_covered": 92,
        "days_in_quarter": 92,
        "currency": "USD",
        "attribution_model": "position_based",
        "revenue": 966_450.0,
        "revenue_target": 1_045_130.0,
        "revenue_fiscal_year_to_date": 2_812_450.0,
        "revenue_target_fiscal_year": 4_054_050.0,
        "leads": 624,
        "visits": 24_476,
        "lead_revenue": 704_500.0,
        "cost_per_lead": 342.19,
        "cac": 13_529.0,
        "clv": 82_976.0,
        "clv_to_cac": 6.13,
        "marketing_roi": 2.299,
        "marketing_cost": 213_527.0,
        "visits_per_lead": 39.2,
        "visit_to_lead_rate": 0.0255,
        "visit_to_lead_ratio": "39.2:1",
        "value_per_lead": 1129.0,
        "value_per_visit": 28.78,
        "bounce_rate": 0.5,
        "new_user_share": 0.669,
        "organic_visits": 8_690,
        "lead_to_customer_rate": 0.038,
        "previous_quarter": prev,
        "kpis": _kpis(),
    }


# --------------------------------------------------------------------------------------------- plots


def _check(ax, *, title: bool = True, xlabel: bool = True, ylabel: bool = False) -> None:
    assert isinstance(ax, plt.Axes)
    assert not title or ax.get_title(loc="left") or ax.get_title()
    assert not xlabel or ax.get_xlabel()
    assert not ylabel or ax.get_ylabel()


ECON = pd.DataFrame(
    {"roi": [1.5, -0.4, 0.2, math.nan], "marketing_cost": [1e4, 4e4, 5e3, 0.0]},
    index=pd.Index(CHANNELS, name="channel"),
)
SPEND = pd.DataFrame(
    {
        "channel": [CHANNELS[0], CHANNELS[0], CHANNELS[1], HOSTILE_CHANNEL],
        "campaign": ["a", "b", HOSTILE_CAMPAIGN, "(none)"],
        "cost_type": ["media", "labor", "media", "software"],
        "amount": [100.0, 50.0, 300.0, 20.0],
    }
)
WEB = pd.DataFrame({"sessions": [600, 400], "bounce_rate": [0.45, 0.56]}, index=pd.Index(["desktop", "mobile"]))
GOALS = pd.DataFrame(
    {"completions": [20, 3, 9], "sessions": [1000, 1000, 1000], "conversion_rate": [0.02, 0.003, 0.009]},
    index=pd.MultiIndex.from_tuples(
        [("inquiry", "/demo"), ("newsletter", HOSTILE_CHANNEL), ("contact_form", "/pricing")],
        names=["goal", "landing_page"],
    ),
)

PLOTS = {
    "revenue_history": lambda ax: P.plot_revenue_history(
        pd.Series({2023: 2.1e6, 2024: 2.75e6, 2025: 3.19e6}),
        growth=pd.Series({2024: 0.29, 2025: 0.158}),
        target=4.05e6,
        target_year=2026,
        ax=ax,
    ),
    "quarterly_targets": lambda ax: P.plot_quarterly_targets(
        pd.Series({1: 9.4e5, 2: 9.8e5, 3: 1.05e6, 4: 1.09e6}), actual=pd.Series({1: 9.2e5, 2: 9.3e5, 3: 9.7e5}), ax=ax
    ),
    "funnel": lambda ax: P.plot_funnel(_plan(), ax=ax),
    "trend": lambda ax: P.plot_trend(_trend(), "leads", target=705, ax=ax),
    "trend_many": lambda ax: P.plot_trend(_trend(), ["visits", "organic_visits"], ax=ax),
    "trend_pct": lambda ax: P.plot_trend(_trend(), "bounce_rate", kind="pct", ax=ax),
    "channel_bars": lambda ax: P.plot_channel_bars(ECON, "roi", kind="pct", ax=ax, title="ROI"),
    "stacked_spend": lambda ax: P.plot_stacked_spend(SPEND, ax=ax),
    "attribution_comparison": lambda ax: P.plot_attribution_comparison(_comparison(), highlight="linear", ax=ax),
    "rank_chart": lambda ax: P.plot_rank_chart(
        _comparison().rank(ascending=False).astype(int), highlight=[HOSTILE_CHANNEL], ax=ax
    ),
    "kpi_progress": lambda ax: P.plot_kpi_progress(_kpis(), ax=ax),
    "goal_progress": lambda ax: P.plot_goal_progress(
        [{"label": "2026Q3 revenue", "actual": 966_450.0, "target": 1_045_130.0}], ax=ax
    ),
    "pacing": lambda ax: P.plot_pacing(
        [
            {"label": "Leads", "actual": 212, "projected": 975.0, "target": 732.0, "status": "on track"},
            {
                "label": "Revenue",
                "actual": None,
                "projected": Undefined("no month closed"),
                "target": 1e6,
                "kind": "money",
            },
        ],
        ax=ax,
    ),
    "device_split": lambda ax: P.plot_device_split(WEB, ax=ax),
    "goal_rates": lambda ax: P.plot_goal_rates(GOALS, ax=ax, min_count=5),
}


@pytest.mark.parametrize("name", list(PLOTS), ids=list(PLOTS))
def test_plot_draws_on_the_given_axes_only(name: str) -> None:
    fig, ax = plt.subplots()
    before = plt.get_fignums()
    out = PLOTS[name](ax)
    assert out is ax
    assert plt.get_fignums() == before, "a plot helper opened a figure although `ax` was given"
    _check(out)
    assert out.has_data() or out.patches or out.lines
    fig.canvas.draw()  # every label renders (mathtext would fail on unescaped `$`)


@pytest.mark.parametrize("name", ["trend", "funnel", "channel_bars"])
def test_plot_creates_a_figure_only_without_axes(name: str) -> None:
    fn = {
        "trend": lambda: P.plot_trend(_trend(), "leads"),
        "funnel": lambda: P.plot_funnel(_plan()),
        "channel_bars": lambda: P.plot_channel_bars(ECON, "roi", kind="pct"),
    }[name]
    ax = fn()
    assert isinstance(ax, plt.Axes) and len(plt.get_fignums()) == 1


def test_axes_carry_units() -> None:
    _, ax = plt.subplots()
    P.plot_trend(_trend(), "value_per_lead", kind="money", currency="EUR", ax=ax)
    assert "EUR" in ax.get_ylabel() and ax.get_xlabel() == "Quarter"
    assert ax.yaxis.get_major_formatter()(1_500_000, 0) == "EUR 1.5M"
    _, ax = plt.subplots()
    P.percent_axis(ax)
    assert ax.yaxis.get_major_formatter()(0.25, 0) == "25%"
    P.currency_axis(ax, "USD", axis="x")
    assert ax.xaxis.get_major_formatter()(800_000, 0) == "USD 800k"


def test_plot_helpers_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plt.show() called by a plot helper"))
    for fn in PLOTS.values():
        fn(plt.subplots()[1])


def test_use_style_changes_nothing_at_import_and_applies_when_called() -> None:
    import importlib

    with matplotlib.rc_context():
        before = dict(matplotlib.rcParams)
        importlib.reload(P)
        assert dict(matplotlib.rcParams) == before
        P.use_style()
        assert matplotlib.rcParams["axes.spines.top"] is False
        assert matplotlib.rcParams["axes.titlelocation"] == "left"


def test_chart_labels_escape_mathtext() -> None:
    _, ax = plt.subplots()
    P.plot_channel_bars(ECON, "marketing_cost", kind="money", ax=ax)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert r"Price \$5 off \$10" in labels and HOSTILE_CHANNEL in labels


def test_bullets_invert_lower_is_better_and_cap() -> None:
    _, ax = plt.subplots()
    P.plot_kpi_progress(_kpis(), ax=ax)
    texts = [t.get_text() for t in ax.texts]
    assert any("USD 342 of at most USD 325 (95%)" in t for t in texts)  # target / actual
    assert any("(230%)" in t for t in texts)  # label keeps the true share ...
    assert max(p.get_width() for p in ax.patches) <= 1.5 + 1e-9  # ... the bar stops at the cap


# --------------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        (1234.5, "money", "USD 1,234"),
        (28.776, "money2", "USD 28.78"),
        (1_130_000, "money_compact", "USD 1.13M"),
        (980_303, "money_compact", "USD 980k"),
        (0.2519, "pct", "25.2%"),
        (6.1331, "ratio", "6.13"),
        (624, "int", "624"),
        (3.25, "days", "3.2 days"),
        (117.4, "duration", "1 min 57 s"),
        (None, "money", "n/a"),
        (math.nan, "pct", "n/a"),
        (Undefined("no leads"), "money", "n/a"),
        (math.inf, "ratio", "n/a"),
    ],
    ids=lambda x: str(x),
)
def test_format_value(value, kind, expected) -> None:
    assert P.format_value(value, kind, currency="USD") == expected


@pytest.mark.parametrize(
    ("cur", "prev", "kind", "expected"),
    [
        (110, 100, "int", "up 10.0%"),
        (90, 100, "money", "down 10.0%"),
        (100, 100, "int", "unchanged"),
        (0.25, 0.20, "pct", "up 5.0 pts"),
        (0.2, None, "pct", ""),
        (5, 0, "int", ""),
    ],
)
def test_change_words(cur, prev, kind, expected) -> None:
    assert P.change_words(cur, prev, kind) == expected


def test_format_value_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown format kind 'euros'"):
        P.format_value(1.0, "euros")


# --------------------------------------------------------------------------------------------- tables


def _table_html(styler) -> str:
    return styler.to_html()


def test_styled_table_escapes_data_text_and_formats_numbers() -> None:
    df = pd.DataFrame(
        {"cost": [1234.5, math.nan], "roi": [0.2519, -0.413], "leads": [1200, 3], "note": [HOSTILE_CAMPAIGN, "a & b"]},
        index=pd.Index([HOSTILE_CHANNEL, "Email"], name="channel"),
    )
    html = _table_html(
        P.styled_table(df, {"cost": "money", "roi": "pct", "leads": "int"}, currency="EUR", caption="<b>caption</b>")
    )
    assert HOSTILE_CHANNEL not in html and HOSTILE_CAMPAIGN not in html and "<b>caption" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=" in html and "a &amp; b" in html
    assert "EUR 1,234" in html and "25.2%" in html and "-41.3%" in html and "1,200" in html and "–" in html
    assert ">Channel<" in html and ">Cost<" in html  # index became a column with a worded header


def test_styled_table_escapes_headers_and_hides_index_clutter() -> None:
    df = pd.DataFrame({HOSTILE_CHANNEL: [1.0]}, index=pd.Index(["x"], name="channel"))
    df.columns.name = "model"
    html = _table_html(P.styled_table(df, {HOSTILE_CHANNEL: "money"}, currency="<i>$</i>"))
    assert HOSTILE_CHANNEL not in html and "&lt;script&gt;" in html
    assert "<i>" not in html and "&lt;i&gt;$&lt;/i&gt; 1" in html
    assert ">model<" not in html and 'class="row_heading' not in html  # no index column, no columns name


def test_styled_table_status_badges_and_plain_range_index() -> None:
    df = pd.DataFrame({"KPI": ["Leads", "CPL"], "Status": ["on track", "<b>off track</b>"]})
    html = _table_html(P.styled_table(df, {"Status": "status"}))
    assert P.STATUS_COLORS["on track"] in html and "&lt;b&gt;off track&lt;/b&gt;" in html
    assert ">Index<" not in html and 'class="row_heading' not in html


def test_status_badge_escapes_and_colours() -> None:
    assert P.STATUS_COLORS["off track"] in P.status_badge("off track")
    assert "<script>" not in P.status_badge(HOSTILE_CHANNEL)
    assert ">no data<" in P.status_badge(None)


def test_headline_and_kpi_frames() -> None:
    m = _metrics()
    h = P.headline_frame(m)
    assert list(h.columns) == ["KPI", "2026Q3", "2026Q2", "Change", "Target"]
    row = h.set_index("KPI").loc["Revenue"]
    assert row["2026Q3"] == "USD 966,450" and row["Change"] == "up 4.1%" and row["Target"] == "USD 1,045,130"
    assert any("position-based attribution" in k for k in h["KPI"])
    k = P.kpi_frame(m["kpis"]).set_index("KPI")
    assert k.loc["Cost per lead", "Target"] == "≤ USD 325" and k.loc["Marketing ROI", "Actual"] == "230.0%"
    assert k.loc["Cost per lead", "Owner"] == HOSTILE_CHANNEL  # raw here; styled_table escapes it
    assert "<script>" not in P.styled_table(k, {"Status": "status"}).to_html()


# --------------------------------------------------------------------------------------------- words


def test_md_escape() -> None:
    text = P.md_escape("<script>alert(1)</script> *x* [a](b) $5 #1 | `c`")
    assert "<" not in text and ">" not in text
    for escaped in (r"\*x\*", r"\[a\]\(b\)", r"\$5", r"\#1", r"\|", r"\`c\`"):
        assert escaped in text


def test_narratives_state_change_and_target_and_escape() -> None:
    m = _metrics()
    m["quarter"] = "2026Q3<script>"
    s = P.narrative_summary(m)
    assert "<script>" not in s
    assert "up 4.1% from USD 928,808" in s and "92.5% of the quarter's target of USD 1,045,130" in s
    assert "position\\-based attribution" in s and "1 of 4 KPIs are on track" in s
    assert "Leads per quarter" in s  # furthest from target
    g = type(
        "Goal",
        (),
        {
            "fiscal_year": 2026,
            "target_revenue": 4.05e6,
            "last_year_revenue": 3.19e6,
            "target_growth": 0.272,
            "average_growth": 0.222,
            "uplift": 0.05,
        },
    )()
    goal_text = P.narrative_goal(g, m, m["kpis"])
    assert "USD 4,050,000" in goal_text and "481 → 705" in goal_text and "<script>" not in goal_text
    funnel = pd.DataFrame(
        {"leads": [100, 50, 150], "lead_to_sql_rate": [0.3, 0.1, 0.2]}, index=[HOSTILE_CHANNEL, "Email", "All channels"]
    )
    conv = P.narrative_conversion(m, funnel, _comparison(), model="linear")
    assert "<script>" not in conv and "&lt;script&gt;" in conv and "up 0.8 pts" in conv
    traffic = P.narrative_traffic(m, funnel.drop("All channels"))
    assert "down 10.0% from 27,209" in traffic and "&lt;script&gt;" in traffic
    ranks = pd.DataFrame(
        {"first_touch": [1, 2], "linear": [2, 1], "best": [1, 1], "worst": [2, 2], "spread": [1, 1]},
        index=[HOSTILE_CHANNEL, "Email"],
    )
    roi = P.narrative_roi(m, ECON, ranks, model="position_based")
    assert "<script>" not in roi and "from rank 1 to 2" in roi and "ROI 150.0%" in roi


def test_narrative_pacing_says_projection() -> None:
    m = _metrics() | {
        "quarter": "2026Q4",
        "days_covered": 20,
        "kpis": [{"name": "Leads", "metric": "leads", "target": 732.0, "projected": 975.0, "status": "on track"}],
    }
    text = P.narrative_pacing(m, {"revenue": Undefined("no month closed"), "leads": 975.0, "lead_revenue": 1e5})
    assert "projection, not a result" in text and "20 of its 92 days" in text
    assert "Revenue cannot be projected yet (no month closed)" in text and "975 leads" in text
    assert "nothing to project" in P.narrative_pacing(m, None)


def test_record_displays_json_without_nan(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw)))
    P.record(
        {"x": math.nan, "s": pd.Series({"a": 1}), "n": pd.Series([1]).astype("int64").iloc[0], "d": Decimal("15145")}
    )
    ((obj, raw),) = shown
    assert raw and obj == {"application/json": {"x": None, "s": {"a": 1}, "n": 1, "d": 15145}}


def test_explore_redraws_through_display_handles(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display
    import ipywidgets as widgets

    class Handle:
        def __init__(self, obj):
            self.shown = [obj]

        def update(self, obj):
            self.shown.append(obj)

    shown: list = []
    handles: list[Handle] = []

    def fake_display(obj, display_id=False, **_kw):
        shown.append(obj)
        if display_id:
            handles.append(Handle(obj))
            return handles[-1]
        return None

    monkeypatch.setattr(IPython.display, "display", fake_display)
    calls = []

    def render(q, model):
        calls.append((q, model))
        fig, ax = P.new_figure((4, 3))
        P.plot_trend(_trend(), "leads", ax=ax)
        return [f"{q}/{model}", fig]

    before = plt.get_fignums()
    q = widgets.Dropdown(options=QUARTERS, value="2026Q3")
    P.explore(render, q=q, model=widgets.Dropdown(options=["linear", "markov"], value="linear"))
    assert calls == [("2026Q3", "linear")] and isinstance(shown[0], widgets.HBox) and shown[1] == "2026Q3/linear"
    q.value = "2026Q1"
    assert calls[-1] == ("2026Q1", "linear") and handles[0].shown == ["2026Q3/linear", "2026Q1/linear"]
    assert len(handles) == 2 and len(handles[1].shown) == 2  # the figure was replaced in place
    assert plt.get_fignums() == before, "view figures must stay outside pyplot"
    assert not any(isinstance(o, widgets.Output) for o in shown), "no Output widget (stalls nbclient)"
