"""kpi_helpers.charts: charts draw on the axes they are given, in the registry's units, and colour a
KPI's bar by the one status rule, so that its colour, its length and its words agree.

Fast: synthetic frames shaped like the breakdowns' outputs, Agg backend, no data source.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg", force=True)

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from conftest import HOSTILE_CAMPAIGN, HOSTILE_CHANNEL
from matplotlib.colors import to_hex

from kpi_helpers import charts as C
from kpi_helpers.kpis import Undefined
from kpi_helpers.status import COLOURS

CHANNELS = ["Email", "Paid Search", HOSTILE_CHANNEL, "Price $5 off $10"]
QUARTERS = ["2025Q4", "2026Q1", "2026Q2", "2026Q3"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def trend() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "leads": [500, 520, 610, 624],
            "visits": [20_000, 21_000, 25_000, 24_476],
            "organic_visits": [7_000, 7_500, 9_000, 8_690],
            "value_per_lead": [900.0, 950.0, 769.0, 1129.0],
            "value_per_visit": [18.0, 19.5, 18.71, 28.776],
            "visits_per_lead": [40.0, 40.4, 41.0, 39.2244],
            "bounce_rate": [0.49, 0.50, 0.497, 0.50],
        },
        index=pd.Index(QUARTERS, name="quarter"),
    )


def kpis() -> list[dict]:
    """KPI rows as metrics()["kpis"] gives them (status from the rule, with the baseline)."""
    return [
        {"name": "Leads per quarter", "metric": "leads", "owner": "Demand gen", "baseline": 481.0, "target": 705.0,
         "actual": 624.0, "projected": None, "higher_is_better": True, "status": "off track"},
        {"name": "Cost per lead", "metric": "cost_per_lead", "owner": HOSTILE_CHANNEL, "baseline": None,
         "target": 325.0, "actual": 342.0, "projected": None, "higher_is_better": False, "status": "at risk"},
        {"name": "Marketing ROI", "metric": "marketing_roi", "owner": "CMO", "baseline": 0.8, "target": 1.0,
         "actual": 2.3, "projected": None, "higher_is_better": True, "status": "on track"},
        {"name": "Visit-to-lead rate", "metric": "visit_to_lead_rate", "owner": "Web", "baseline": None,
         "target": 0.025, "actual": None, "projected": None, "higher_is_better": True, "status": "no data"},
    ]  # fmt: skip


def requirements() -> pd.DataFrame:
    """breakdowns.funnel_requirements for the sample's 2026Q3, top of the funnel first."""
    rows = [
        ("visits", "visits", 29_394.0, 24_476.0, 20_802.0, True, "off track"),
        ("leads", "leads", 705.0, 624.0, 481.0, True, "off track"),
        ("sqls", "sqls", 123.3, 115.0, 75.0, True, "off track"),  # 93% of required, 83% of the way
        ("won_deals", "lead_won_deals", 23.6, 24.0, 19.0, True, "on track"),
        ("lead_revenue", "lead_revenue", 608_334.0, 704_500.0, 520_000.0, False, "on track"),
    ]
    df = pd.DataFrame(rows, columns=["stage", "fact", "required", "actual", "baseline", "kpi", "status"])
    return df.set_index("stage")


ECON = pd.DataFrame(
    {"roi": [1.5, -0.4, 0.2, math.nan], "marketing_cost": [1e4, 4e4, 5e3, 0.0]},
    index=pd.Index(CHANNELS, name="channel"),
)
SPEND = pd.DataFrame(
    {"media": [300.0, 100.0, 0.0], "labor": [0.0, 50.0, 0.0], "software": [0.0, 0.0, 20.0]},
    index=pd.Index(["Paid Search", "Email", HOSTILE_CHANNEL], name="channel"),
).assign(total=lambda d: d.sum(axis=1))
WEB = pd.DataFrame({"sessions": [600, 400], "bounce_rate": [0.45, 0.56]}, index=pd.Index(["desktop", "mobile"]))
GOALS = pd.DataFrame(
    {"completions": [20, 9], "sessions": [1000, 1000], "conversion_rate": [0.02, 0.009]},
    index=pd.MultiIndex.from_tuples([("inquiry", "/demo"), ("contact_form", HOSTILE_CHANNEL)], names=["goal", "page"]),
)
HISTORY = pd.DataFrame(
    {"revenue": [2.1e6, 2.75e6, 3.19e6], "yoy_growth": [math.nan, 0.29, 0.158]},
    index=pd.Index(["FY2023", "FY2024", "FY2025"], name="fiscal_year"),
)
QUARTERLY = pd.DataFrame(
    {
        "target": [9.4e5, 9.8e5, 1.05e6, 1.09e6],
        "share_of_year": [0.232, 0.242, 0.258, 0.268],
        "actual": [9.2e5, 9.3e5, 9.7e5, math.nan],
        "attainment": [0.979, 0.949, 0.924, math.nan],
        "status": ["at risk", "off track", "off track", None],
    },
    index=pd.Index(["2026Q1", "2026Q2", "2026Q3", "2026Q4"], name="quarter"),
)
PROGRESS = pd.DataFrame(
    {
        "actual": [966_450.0, 2_812_450.0, 2_812_450.0],
        "target": [1_045_130.0, 2_968_000.0, 4_054_050.0],
        "baseline": [822_063.0, 2_350_000.0, None],
        "status": ["off track", "off track", None],
    },
    index=["revenue", "revenue_fiscal_year_to_date", "revenue_target_fiscal_year"],
)
COMPARISON = pd.DataFrame(
    {"first_touch": [100.0, 50.0, 0.0, 10.0], "linear": [60.0, 60.0, 20.0, 20.0]},
    index=pd.Index(CHANNELS, name="channel"),
)

PACING = [
    {"name": "Leads", "metric": "leads", "actual": 212, "projected": 975.0, "target": 732.0, "baseline": 579.0,
     "status": "on track"},
    {"name": "Revenue", "metric": "revenue", "actual": None, "projected": Undefined("no month closed"),
     "target": 1e6, "status": "no data", "note": "no month closed"},
]  # fmt: skip

PLOTS = {
    "revenue_history": lambda ax: C.plot_revenue_history(HISTORY, target=4.05e6, target_label="FY2026", ax=ax),
    "quarterly_targets": lambda ax: C.plot_quarterly_targets(QUARTERLY, ax=ax),
    "funnel": lambda ax: C.plot_funnel(requirements(), ax=ax),
    "trend": lambda ax: C.plot_trend(trend(), "leads", target=705, ax=ax),
    "trend_many": lambda ax: C.plot_trend(trend(), ["visits", "organic_visits"], ax=ax),
    "trend_pct": lambda ax: C.plot_trend(trend(), "bounce_rate", ax=ax),
    "channel_bars": lambda ax: C.plot_channel_bars(ECON, "roi", ax=ax, title="ROI"),
    "stacked_spend": lambda ax: C.plot_stacked_spend(SPEND, ax=ax),
    "attribution_comparison": lambda ax: C.plot_attribution_comparison(COMPARISON, highlight="linear", ax=ax),
    "rank_chart": lambda ax: C.plot_rank_chart(
        COMPARISON.rank(ascending=False).astype(int), highlight=[HOSTILE_CHANNEL], ax=ax
    ),
    "kpi_progress": lambda ax: C.plot_kpi_progress(kpis(), ax=ax),
    "goal_progress": lambda ax: C.plot_goal_progress(PROGRESS, quarter="2026Q3", fiscal_year="FY2026", ax=ax),
    "pacing": lambda ax: C.plot_pacing(
        PACING,
        ax=ax,
    ),
    "device_split": lambda ax: C.plot_device_split(WEB, ax=ax),
    "goal_rates": lambda ax: C.plot_goal_rates(GOALS, ax=ax),
}


@pytest.mark.parametrize("name", list(PLOTS), ids=list(PLOTS))
def test_plot_draws_on_the_given_axes_only(name: str) -> None:
    fig, ax = plt.subplots()
    before = plt.get_fignums()
    out = PLOTS[name](ax)
    assert out is ax
    assert plt.get_fignums() == before, "a plot helper opened a figure although `ax` was given"
    assert ax.get_title(loc="left") or ax.get_title()
    assert ax.get_xlabel()
    assert out.has_data() or out.patches or out.lines
    fig.canvas.draw()  # every label renders (mathtext would fail on unescaped `$`)


@pytest.mark.parametrize("name", ["trend", "funnel", "channel_bars"])
def test_plot_creates_a_figure_only_without_axes(name: str) -> None:
    fn = {
        "trend": lambda: C.plot_trend(trend(), "leads"),
        "funnel": lambda: C.plot_funnel(requirements()),
        "channel_bars": lambda: C.plot_channel_bars(ECON, "roi"),
    }[name]
    ax = fn()
    assert isinstance(ax, plt.Axes) and len(plt.get_fignums()) == 1


def test_plot_helpers_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plt.show() called by a plot helper"))
    for fn in PLOTS.values():
        fn(plt.subplots()[1])


def test_use_style_changes_nothing_at_import_and_applies_when_called() -> None:
    import importlib

    with matplotlib.rc_context():
        before = dict(matplotlib.rcParams)
        importlib.reload(C)
        assert dict(matplotlib.rcParams) == before
        C.use_style()
        assert matplotlib.rcParams["axes.spines.top"] is False
        assert matplotlib.rcParams["axes.titlelocation"] == "left"


def test_chart_labels_escape_mathtext() -> None:
    _, ax = plt.subplots()
    C.plot_channel_bars(ECON, "marketing_cost", currency="USD", ax=ax)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert r"Price \$5 off \$10" in labels and HOSTILE_CHANNEL in labels
    assert r"\$40k" in [t.get_text() for t in ax.texts]  # money labels escaped too


# --------------------------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("metric", "ylabel", "last"),
    [
        ("visits_per_lead", "Visits per lead", "39.22"),  # a ratio: no "(count)", two decimals
        ("value_per_visit", "Value per visit (EUR)", r"€28.78"),  # money with cents, not rounded
        ("value_per_lead", "Value per lead (EUR)", "€1.13k"),  # compact on charts
        ("bounce_rate", "Bounce rate (%)", "50.0%"),
        ("leads", "Leads (count)", "624"),
    ],
    ids=["ratio", "money_small", "money", "percent", "count"],
)
def test_trend_takes_its_unit_from_the_registry(metric: str, ylabel: str, last: str) -> None:
    _, ax = plt.subplots()
    C.plot_trend(trend(), metric, currency="EUR", ax=ax)
    assert ax.get_ylabel() == ylabel and ax.get_xlabel() == "Quarter"
    assert [t.get_text() for t in ax.texts] == [last]


@pytest.mark.parametrize(
    ("unit", "value", "tick"),
    [("money", 1_500_000, r"\$1.5M"), ("money", 800_000, r"\$800k"), ("percent", 0.25, "25%"),
     ("percent", 0.125, "12.5%"), ("count", 24_000, "24k"), ("ratio", 39.0, "39"), ("seconds", 90, "1 min 30 s")],
    ids=["money-M", "money-k", "percent", "percent-half", "count", "ratio", "seconds"],
)  # fmt: skip
def test_axis_ticks_use_the_formatter(unit: str, value: float, tick: str) -> None:
    _, ax = plt.subplots()
    C.unit_axis(ax, unit, currency="USD")
    assert ax.yaxis.get_major_formatter()(value, 0) == tick


def test_a_key_the_registry_does_not_know_needs_a_unit() -> None:
    frame = pd.DataFrame({"own_score": [1.0, 2.0]}, index=["a", "b"])
    with pytest.raises(ValueError, match="no unit for `own_score`: the registry does not know it; pass `unit=`"):
        C.plot_channel_bars(frame, "own_score")
    C.plot_channel_bars(frame, "own_score", unit="ratio")
    with pytest.raises(ValueError, match="one chart, one unit: visits, bounce_rate"):
        C.plot_trend(trend(), ["visits", "bounce_rate"])


# --------------------------------------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("row", "status", "width"),
    [
        # 93% of the target but 60% of the way from the baseline: off track, and the bar says 60%
        ({"actual": 93.0, "target": 100.0, "baseline": 82.5}, "off track", 0.6),
        ({"actual": 93.0, "target": 100.0}, "at risk", 0.93),  # no baseline: the share of the target
        ({"actual": 98.0, "target": 100.0, "baseline": 80.0}, "at risk", 0.9),
        ({"actual": 105.0, "target": 100.0, "baseline": 80.0}, "on track", 1.25),
        ({"actual": 342.0, "target": 325.0, "higher_is_better": False}, "at risk", 325 / 342),
        ({"actual": 360.0, "target": 325.0, "baseline": 380.0, "higher_is_better": False}, "off track", 20 / 55),
        ({"actual": 70.0, "target": 100.0, "baseline": 80.0}, "off track", 0.0),  # below the baseline: at 0
        ({"actual": 300.0, "target": 100.0}, "on track", 1.5),  # capped; the label keeps the true share
    ],
    ids=["baseline-93pct", "no-baseline", "at-risk-edge", "past", "cost", "cost-baseline", "below", "cap"],
)
def test_a_bar_is_coloured_by_the_status_rule_and_as_long_as_the_way_it_judges(row, status, width) -> None:
    _, ax = plt.subplots()
    C.plot_bullets([{"label": "KPI", "key": "kpi", **row}], ax=ax)
    bar = next(p for p in ax.patches if (p.get_gid() or "").startswith(C.STATUS_GID))
    assert to_hex(bar.get_facecolor()) == COLOURS[status]
    assert bar.get_width() == pytest.approx(width)
    assert C.drawn_statuses(ax) == {"kpi": status}
    assert ax.texts[0].get_text().endswith(f"·  {status}")  # the status in words, never by colour alone


def test_kpi_bars_take_each_rows_own_status() -> None:
    """The chart never re-judges a KPI: a row's status is drawn as the row carries it."""
    rows = kpis()
    _, ax = plt.subplots()
    C.plot_kpi_progress(rows, currency="USD", ax=ax)
    assert C.drawn_statuses(ax) == {r["metric"]: r["status"] for r in rows}
    texts = [t.get_text() for t in ax.texts]
    assert texts[0] == "624 of 705, from 481 (63.8%)  ·  off track"
    assert texts[1] == r"\$342 of at most \$325 (95.0%)  ·  at risk"
    assert texts[2].startswith("230.0% of 100.0%, from 80.0% (750.0%)")  # the label keeps the true share ...
    assert max(p.get_width() for p in ax.patches) <= 1.5 + 1e-9  # ... the bar stops at the cap


def test_the_funnel_shows_the_kpi_status_not_its_own_attainment() -> None:
    """Issue 11: SQLs at 93% of the requirement were amber on the chart while the KPI table said off
    track. A stage a KPI tracks is drawn in that KPI's status; the others under their own key."""
    _, ax = plt.subplots()
    C.plot_funnel(requirements(), ax=ax)
    drawn = C.drawn_statuses(ax)
    assert drawn["sqls"] == "off track" and drawn["lead_revenue (required)"] == "on track"
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "Visits", "Leads", "SQLs", "Won deals from leads", "Lead revenue"
    ]  # fmt: skip


def test_projection_is_drawn_and_judged_not_the_part_quarter_actual() -> None:
    _, ax = plt.subplots()
    C.plot_pacing(
        PACING[:1],
        ax=ax,
    )
    (bar,) = [p for p in ax.patches if p.get_gid()]
    assert bar.get_hatch() == "////" and to_hex(bar.get_edgecolor()) == COLOURS["on track"]
    assert C.drawn_statuses(ax) == {"leads": "on track"}
    assert ax.texts[0].get_text() == "212 so far, 975 projected of 732, from 579 (258.8%)  ·  on track"


def test_forecasts_are_drawn_as_ranges_in_the_status_of_their_p50() -> None:
    rows = [
        {"key": "revenue", "label": "Revenue", "unit": "money", "so_far": 0.0, "p10": 9e5, "p50": 1e6, "p90": 1.1e6,
         "target": 1.2e6, "probability_to_hit": 0.04, "baseline": None, "status": "off track"},
        {"key": "leads", "label": "Leads", "unit": "count", "so_far": 181.0, "p10": 653.0, "p50": 714.0, "p90": 780.0,
         "target": 732.0, "probability_to_hit": 0.35, "baseline": 579.0, "status": "at risk"},
    ]  # fmt: skip
    _, ax = plt.subplots()
    C.plot_forecasts(rows, ax=ax, currency="USD")
    assert C.drawn_statuses(ax) == {"revenue": "off track", "leads": "at risk"}
    (band,) = [p for p in ax.patches if p.get_gid() == f"{C.STATUS_GID}leads"]
    # on the bullets' scale: the way from the baseline 579 to the target 732
    assert band.get_x() == pytest.approx((653 - 579) / (732 - 579))
    assert band.get_width() == pytest.approx((780 - 653) / (732 - 579))
    assert ax.texts[1].get_text() == "P50 714 of 732  ·  P10-P90 653-780  ·  181 so far  ·  35% chance  ·  at risk"


def test_goal_progress_judges_the_year_to_date_and_not_the_annual_progress() -> None:
    _, ax = plt.subplots()
    C.plot_goal_progress(PROGRESS, quarter="2026Q3", fiscal_year="FY2026", ax=ax)
    assert C.drawn_statuses(ax) == {"revenue": "off track", "revenue_fiscal_year_to_date": "off track"}
    assert [to_hex(p.get_facecolor()) for p in ax.patches].count(C.BLUE) == 1  # the annual bar: no status
    assert "annual target" in ax.texts[-1].get_text() and "track" not in ax.texts[-1].get_text()
    assert "Progress (not judged)".lower() in [t.get_text().lower() for t in ax.get_legend().get_texts()]


def test_quarterly_targets_colour_each_done_quarter_by_its_status() -> None:
    _, ax = plt.subplots()
    C.plot_quarterly_targets(QUARTERLY, ax=ax)
    assert C.drawn_statuses(ax) == {"revenue@2026Q1": "at risk", "revenue@2026Q2": "off track",
                                    "revenue@2026Q3": "off track"}  # fmt: skip
    actual = [p.get_height() for p in ax.patches[4:]]
    assert math.isnan(actual[3]), "a quarter not done has no bar, never one of height 0"


# --------------------------------------------------------------------------------------------- missing data


def test_trend_draws_a_gap_never_a_zero() -> None:
    t = trend().astype(float)
    t.loc[["2025Q4", "2026Q1"], "leads"] = math.nan  # before the leads export starts
    _, ax = plt.subplots()
    C.plot_trend(t, "leads", ax=ax)
    y = ax.lines[0].get_ydata()
    assert math.isnan(y[0]) and math.isnan(y[1]) and list(y[2:]) == [610.0, 624.0]
    _, ax = plt.subplots()
    C.plot_trend(t.assign(leads=math.nan), "leads", ax=ax)
    assert [t.get_text() for t in ax.texts] == ["no data in these quarters"]


@pytest.mark.parametrize(
    "draw",
    [
        pytest.param(lambda ax: C.plot_kpi_progress([], ax=ax), id="bullets"),
        pytest.param(lambda ax: C.plot_channel_bars(ECON.iloc[:0], "roi", ax=ax), id="channel_bars"),
        pytest.param(lambda ax: C.plot_goal_rates(GOALS.iloc[:0], ax=ax), id="goal_rates"),
        pytest.param(lambda ax: C.plot_stacked_spend(SPEND.iloc[:0], ax=ax), id="stacked_spend"),
    ],
)
def test_empty_charts_say_so_without_warnings(draw) -> None:
    import warnings

    _, ax = plt.subplots()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        draw(ax)
    assert "nothing to show" in [t.get_text() for t in ax.texts]


def test_stacked_spend_draws_the_total_as_a_label_not_a_segment() -> None:
    _, ax = plt.subplots()
    C.plot_stacked_spend(SPEND, ax=ax, currency="GBP")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["media", "labor", "software"]
    assert [t.get_text() for t in ax.texts] == ["£300", "£150", "£20"]
    assert HOSTILE_CAMPAIGN not in [t.get_text() for t in ax.get_yticklabels()]


# -- intervals as whiskers -------------------------------------------------------------------------


def _whiskers(ax) -> list:
    """The error-bar containers drawn on ``ax``."""
    from matplotlib.container import ErrorbarContainer

    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def test_channel_bars_draw_a_whisker_where_the_frame_has_bounds() -> None:
    frame = pd.DataFrame(
        {"roi": [1.2, -0.3, 0.5], "roi_low": [0.4, -0.9, float("nan")], "roi_high": [2.1, 0.6, float("nan")]},
        index=["Email", "Social", "Search"],
    )
    ax = C.plot_channel_bars(frame, "roi")
    (bars,) = _whiskers(ax)
    segments = bars.lines[2][0].get_segments()  # one horizontal segment per bar, largest value first
    assert [tuple(s[:, 0]) for s in segments] == [
        pytest.approx((0.4, 2.1)),
        pytest.approx((0.5, 0.5)),  # no interval: a whisker of length 0
        pytest.approx((-0.9, 0.6)),
    ]
    assert C.INTERVAL_LABEL in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_xlim()[1] > 2.1  # the whisker fits
    plt.close("all")


def test_no_bounds_no_whiskers() -> None:
    ax = C.plot_channel_bars(pd.DataFrame({"roi": [1.2, 0.5]}, index=["Email", "Search"]), "roi")
    assert not _whiskers(ax) and ax.get_legend() is None
    plt.close("all")


def test_goal_rates_and_trend_draw_whiskers_from_their_bounds() -> None:
    goals = pd.DataFrame(
        {"completions": [34, 22], "sessions": [838, 1279], "conversion_rate": [0.0406, 0.0172]},
        index=pd.Index(["/demo", "/trial"], name="goal"),
    )
    goals["conversion_rate_low"], goals["conversion_rate_high"] = [0.029, 0.011], [0.053, 0.023]
    assert len(_whiskers(C.plot_goal_rates(goals))) == 1
    trend = pd.DataFrame(
        {"bounce_rate": [0.5, 0.49], "bounce_rate_low": [float("nan"), 0.48], "bounce_rate_high": [float("nan"), 0.5]},
        index=["2026Q2", "2026Q3"],
    )
    assert len(_whiskers(C.plot_trend(trend, "bounce_rate"))) == 1
    plt.close("all")
