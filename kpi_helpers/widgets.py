"""The interactive views of the report pages (the notebooks' ``widgets`` cells), in one place.

Each page's ``widgets`` cell is one call (``explore_summary(page)``, ...), so the controls, their
labels and how a view redraws can change here without touching a notebook's narrative. The views
run in Jupyter only: the report runner drops ``widgets`` cells from the static pages.

A view is drawn by :func:`explore`: the controls, a status line, then what ``render(**values)``
returns, redrawn in place when a control changes. While it recomputes, the controls are disabled and
the status line says so; an input it cannot read (``abc`` as an uplift) is named there and the view
keeps what it showed. Charts and tables come from :mod:`kpi_helpers.charts` and
:mod:`kpi_helpers.tables`, so a view formats and colours exactly as the page does.

Controls show labels (the registry's, :func:`kpi_helpers.labels.model_label`), never raw ids, and
every control changes what the view shows: a model control appears only where the model changes a
number (channel credit with touches), never next to a total that does not depend on it.

Typed numbers are read by :func:`parse_value`: ``2%``, ``2`` and ``0.02`` are the same 2% uplift.

>>> parse_uplift("2%"), parse_uplift("2"), parse_uplift("0.02")
(0.02, 0.02, 0.02)
>>> parse_value("$1.2k", "money", currency="USD"), parse_value("1,045,130", "money")
(1200.0, 1045130.0)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import breakdowns as B
from . import charts as C
from . import tables as T
from .attribution import MODELS, describe_model
from .formats import SYMBOLS, format_value, is_missing
from .labels import model_label, status_word
from .markup import md_escape, sentence
from .registry import label_of, unit_of
from .status import judge, of_row

if TYPE_CHECKING:
    import pandas as pd

    from .notebook import Page

__all__ = [
    "BUSY",
    "TRAFFIC_METRICS",
    "View",
    "explore",
    "explore_attribution",
    "explore_goal",
    "explore_roi",
    "explore_summary",
    "explore_targets",
    "explore_traffic",
    "new_figure",
    "parse_uplift",
    "parse_value",
]

#: what the status line says while a view recomputes
BUSY = "Recomputing…"
#: the metrics the traffic page's view can chart over the quarters
TRAFFIC_METRICS = (
    "leads",
    "visits",
    "visits_per_lead",
    "value_per_lead",
    "value_per_visit",
    "bounce_rate",
    "organic_visits",
)
#: uplifts a person can mean: -50% to +100% growth on top of the average
UPLIFT_RANGE = (-0.5, 1.0)
_SCALE = {"k": 1e3, "m": 1e6, "b": 1e9}
_NUMBER = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))([kmb]?)(%?)$")


# -------------------------------------------------------------------------------------------------
# Reading what a person types


def parse_value(text: Any, unit: str, *, currency: str = "", name: str = "value") -> float:
    """A number typed into a box, in ``unit`` (a registry unit), as the kit stores it.

    - ``percent``: ``2%``, ``2`` and ``0.02`` are all 2% (0.02). A number of at least 1 without a
      ``%`` is read as percentage points, one below 1 as a fraction; write ``0.5%`` for half a
      percent. The view shows the value back, formatted, so a reading is never silent.
    - ``money``: ``$1,200``, ``1.2k``, ``USD 1200``; the source's currency sign or code is ignored.
    - ``count``, ``ratio``, ``seconds``: plain numbers, ``k``/``M`` allowed (``1.5k`` = 1,500).

    Thousands separators (``,``) and spaces are ignored. A number already (a float from a slider)
    passes through.

    Raises
    ------
    ValueError
        Text that is not a number, or one that is not finite, naming ``name`` and what to type.

    Examples
    --------
    >>> parse_value("12.5%", "percent"), parse_value("0.125", "percent"), parse_value("12.5", "percent")
    (0.125, 0.125, 0.125)
    >>> parse_value("€2.5M", "money", currency="EUR"), parse_value("1.5k", "count")
    (2500000.0, 1500.0)
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{name}: `{text}` is not a finite number")
        return value
    raw = str(text).strip()
    cleaned = raw.replace(",", "").replace(" ", "").replace("\u00a0", "")
    if unit in ("money", "money_small"):
        for prefix in (currency.upper(), SYMBOLS.get(currency.upper(), ""), *SYMBOLS.values()):
            if prefix and cleaned.upper().startswith(prefix):
                cleaned = cleaned[len(prefix) :]
                break
    found = _NUMBER.match(cleaned.lower())
    if not found or (found.group(3) and unit != "percent"):
        example = "2%, 2 or 0.02" if unit == "percent" else "1200, 1,200 or 1.2k"
        raise ValueError(f"{name}: `{raw[:40]}` is not a number; type e.g. {example}")
    value = float(found.group(1)) * _SCALE.get(found.group(2), 1.0)
    if unit == "percent" and (found.group(3) or abs(value) >= 1):
        value /= 100
    return round(value, 12)  # 2 / 100 is 0.02, not 0.020000000000000004


def parse_uplift(text: Any) -> float:
    """The growth uplift typed into the goal view (:func:`parse_value` in percent): ``2%``, ``2`` and
    ``0.02`` are 2 points on top of the average growth.

    Raises
    ------
    ValueError
        Not a number, or outside -50% to +100% (a typo, not a plan).

    Examples
    --------
    >>> parse_uplift("5"), parse_uplift("-1.5%")
    (0.05, -0.015)
    """
    value = parse_value(text, "percent", name="Uplift")
    lo, hi = UPLIFT_RANGE
    if not lo <= value <= hi:
        raise ValueError(
            f"Uplift: `{str(text)[:40]}` reads as {format_value(value, 'percent')}; expected "
            f"{format_value(lo, 'percent')} to {format_value(hi, 'percent')} (type 2%, 2 or 0.02 for 2%)"
        )
    return value


# -------------------------------------------------------------------------------------------------
# A view: controls, a status line, outputs redrawn in place


def new_figure(figsize: tuple[float, float] = (9.0, 4.0), ncols: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """``(figure, axes)`` outside pyplot, for :func:`explore` views: never shown automatically at the
    end of a cell and not kept by pyplot once the view drops it."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(1, ncols, **kwargs)


@dataclass
class View:
    """What :func:`explore` shows: its ``controls`` (name -> widget), the ``status`` line (a Label:
    :data:`BUSY` while recomputing, what could not be read after a bad input, else empty), the
    display ``handles`` of its outputs, and ``redraw`` (what a control change calls)."""

    controls: dict[str, Any]
    status: Any
    handles: list[Any]
    redraw: Callable[..., None]


def explore(render: Callable[..., Sequence[Any]], *, layout: str = "row", **controls: Any) -> View:
    """Show ipywidgets ``controls`` (``layout``: ``row`` or ``column``), a status line and what
    ``render(**values)`` returns (a list of displayable objects: Stylers, :func:`new_figure` figures,
    Markdown), redrawn in place when a control changes.

    While ``render`` runs the controls are disabled and the status line says :data:`BUSY`; a
    ``ValueError`` from it (an input it cannot read) is shown there and the outputs stay as they were.

    The view is updated through display handles, not an ``Output`` widget: nbclient (papermill,
    nbconvert) mimics a frontend for ``Output`` widgets by sending messages on the shell channel while
    it waits for the cell's reply there, which intermittently stalls headless execution until the cell
    timeout (or forever without one). ``render`` should return the same number of objects each time.
    """
    import ipywidgets as widgets
    from IPython.display import display

    status = widgets.Label(value="")

    def values() -> dict[str, Any]:
        return {name: w.value for name, w in controls.items()}

    box = widgets.VBox if layout == "column" else widgets.HBox
    display(widgets.VBox([box(list(controls.values())), status]))
    handles = [display(obj, display_id=True) for obj in render(**values())]

    def redraw(_change: Any = None) -> None:
        status.value = BUSY
        for w in controls.values():
            w.disabled = True
        try:
            shown = render(**values())
        except ValueError as exc:
            status.value = str(exc)
            return
        finally:
            for w in controls.values():
                w.disabled = False
        for handle, obj in zip(handles, shown, strict=False):
            handle.update(obj)
        status.value = ""

    for w in controls.values():
        w.observe(redraw, names="value")
    return View(dict(controls), status, handles, redraw)


def _dropdown(options: Iterable[Any], value: Any, description: str, label: Callable[[Any], str] = str) -> Any:
    """A Dropdown whose options show ``label(option)`` and whose value is the option itself."""
    import ipywidgets as widgets

    return widgets.Dropdown(options=[(label(o), o) for o in options], value=value, description=description)


def _model_name(name: Any) -> str:
    """``Position-based``: an attribution model as a control shows it."""
    return sentence(model_label(name))


def _markdown(text: str) -> Any:
    from IPython.display import Markdown

    return Markdown(text)


# -------------------------------------------------------------------------------------------------
# The pages' views


def explore_summary(page: Page) -> View:
    """00: the headline table and the KPI bullets of another quarter of the trend; with touches, also
    the revenue credited to each channel and its ROI under another attribution model (the quarter's
    total ROI does not depend on the model, so the model control changes the per-channel table)."""
    from .metrics import QuarterKpis

    kq = page.kq
    seen = {kq.quarter.label: page.m}
    credit: dict[tuple[str, str], Any] = {}
    by_model = page.touches and not page.lacks("spend", "leads", "opportunities")

    def view(quarter_label: str, model_name: str = kq.attribution_model) -> list[Any]:
        if quarter_label not in seen:
            seen[quarter_label] = QuarterKpis(
                page.source, quarter_label, attribution_model=kq.attribution_model
            ).metrics()
        mm = seen[quarter_label]
        judged = page.judged(mm["kpis"])
        fig, ax = new_figure((9, 0.55 * max(len(judged), 1) + 1.2))
        C.plot_kpi_progress(judged, currency=page.currency, ax=ax, title=f"KPIs against their targets, {mm['quarter']}")
        out = [T.styled_table(T.headline_frame(mm)), fig]
        if by_model:
            key = (quarter_label, model_name)
            if key not in credit:
                k = QuarterKpis(page.source, quarter_label, attribution_model=model_name)
                credit[key] = B.channel_economics(k, clv=mm.get("clv"))[["attributed_revenue", "marketing_cost", "roi"]]
            out.append(
                T.styled_table(
                    credit[key],
                    currency=page.currency,
                    caption=f"Credited revenue and ROI by channel, {quarter_label}, {model_label(model_name)} "
                    "attribution",
                )
            )
        return out

    controls = {"quarter_label": _dropdown(kq.trend.index, kq.quarter.label, "Quarter")}
    if by_model:
        controls["model_name"] = _dropdown(MODELS, kq.attribution_model, "Attribution", _model_name)
    return explore(view, **controls)


def explore_goal(page: Page) -> View | None:
    """01: the target, the quarterly targets and the reverse funnel at another growth uplift, typed as
    ``2%``, ``2`` or ``0.02`` (:func:`parse_uplift`)."""
    import ipywidgets as widgets

    goal = page.goal
    if goal is None:
        page.say(page.goal_problem)
        return None

    def view(uplift: str) -> list[Any]:
        value = parse_uplift(uplift)
        alt = B.goal_scenario(page.kq, uplift=value)
        quarters = B.quarterly_targets(alt, page.m)[["target"]]
        fig, ax = new_figure((9, 4.2))
        C.plot_funnel(
            B.funnel_requirements(alt, page.m),
            currency=page.currency,
            ax=ax,
            title=f"Reverse funnel for {page.m['quarter']} at an uplift of {format_value(value, 'percent')}",
        )
        formula = _markdown(
            f"Uplift **{md_escape(format_value(value, 'percent'))}**: **{md_escape(alt.goal.formula())}**"
        )
        return [formula, T.styled_table(quarters, currency=page.currency), fig]

    box = widgets.Text(
        value=format_value(goal.uplift, "percent"),
        description="Uplift",
        placeholder="2%, 2 or 0.02",
        continuous_update=False,
    )
    return explore(view, uplift=box)


def _tried(row: Mapping[str, Any], target: float) -> dict[str, Any]:
    """A KPI row with another ``target``, judged by the one rule (:func:`kpi_helpers.status.judge`) on
    its projection when the quarter is in progress; a row the report could not judge (its data covers
    part of a finished quarter) stays unjudged, and a row at its own target keeps its own status."""
    if not is_missing(row.get("target")) and math.isclose(float(row["target"]), target, rel_tol=1e-9):
        return dict(row)
    status = judge(
        row.get("actual"),
        target,
        baseline=row.get("baseline"),
        higher_is_better=row.get("higher_is_better", True),
        projected=row.get("projected"),
        partial=of_row(dict(row)) == "no data",
    )
    return {**row, "target": target, "status": status}


def explore_targets(page: Page) -> View | None:
    """01: try other KPI targets: one box per KPI with a target (typed in its registry unit, see
    :func:`parse_value`); the bullets, the KPI table and the count on track are judged again by the
    one status rule, as the report would judge them with those targets in ``goals.yml``."""
    import ipywidgets as widgets

    rows = page.judged()
    if not rows:
        page.say(f"No KPI of {page.m['quarter']} has a target and a value to try targets on.")
        return None
    units = [unit_of(str(r.get("metric") or "")) or str(r.get("unit") or "count") for r in rows]
    # the boxes start at each KPI's target as the page shows it; untouched, a box means that very
    # target (not its rounded text), so the view starts where the page is
    shown = [format_value(r["target"], u, currency=page.currency) for r, u in zip(rows, units, strict=True)]

    def target(i: int, text: str) -> float:
        if text.strip() == shown[i]:
            return float(rows[i]["target"])
        return parse_value(text, units[i], currency=page.currency, name=str(rows[i]["name"]))

    def view(**typed: str) -> list[Any]:
        tried = [_tried(r, target(i, typed[f"kpi_{i}"])) for i, r in enumerate(rows)]
        on = sum(of_row(r) == "on track" for r in tried)
        fig, ax = new_figure((9, 0.55 * len(tried) + 1.4))
        C.plot_kpi_progress(tried, currency=page.currency, ax=ax, title=f"KPIs at these targets, {page.m['quarter']}")
        table = T.styled_table(T.kpi_frame(tried, currency=page.currency), units={"Status": T.STATUS})
        text = _markdown(f"At these targets **{on} of {len(tried)} KPIs are {status_word('on track')}**.")
        return [text, fig, table]

    style = {"description_width": "16em"}
    controls = {
        f"kpi_{i}": widgets.Text(value=shown[i], description=str(r["name"])[:40], style=style, continuous_update=False)
        for i, r in enumerate(rows)
    }
    return explore(view, layout="column", **controls)


def explore_traffic(page: Page, funnel: pd.DataFrame | None) -> View | None:
    """02: a channel's funnel in another quarter, and any metric over the last eight quarters (its
    label and unit the registry's)."""
    from .metrics import QuarterKpis

    if not page.section("leads") or funnel is None:
        return None
    kq = page.kq
    funnels = {kq.quarter.label: funnel}
    stages = ["leads", "mqls", "sqls", "opportunities", "won", "lead_to_sql_rate"]

    def view(quarter_label: str, channel: str, metric: str) -> list[Any]:
        if quarter_label not in funnels:
            funnels[quarter_label] = B.channel_funnel(QuarterKpis(page.source, quarter_label))
        f = funnels[quarter_label]
        rows = f.loc[[channel], stages] if channel in f.index else f.loc[[], stages]
        fig, ax = new_figure((9, 3.4))
        C.plot_trend(kq.trend, metric, currency=page.currency, ax=ax)
        return [T.styled_table(rows, caption=f"{channel}, leads of {quarter_label}"), fig]

    return explore(
        view,
        quarter_label=_dropdown(kq.trend.index, kq.quarter.label, "Quarter"),
        channel=_dropdown(funnel.index, B.ALL_CHANNELS, "Channel"),
        metric=_dropdown([k for k in TRAFFIC_METRICS if k in kq.trend], "leads", "Metric", label_of),
    )


def explore_attribution(page: Page, comparison: pd.DataFrame | None) -> View | None:
    """03: the revenue one model credits to each channel, in another quarter (with touches only:
    without them every model gives the same split, so there is nothing to choose)."""
    from .metrics import QuarterKpis

    if comparison is None:
        page.section("leads", "opportunities", kpis=("lead_revenue",))
        return None
    if not page.touches:
        page.say(page.lacks("touchpoints") + " Then the models can be compared here.")
        return None
    kq = page.kq
    quarters = {kq.quarter.label: kq}

    def view(quarter_label: str, model_name: str) -> list[Any]:
        if quarter_label not in quarters:
            quarters[quarter_label] = QuarterKpis(page.source, quarter_label)
        credit = quarters[quarter_label].attribution_comparison(models=(model_name,))
        fig, ax = new_figure((9, 3.6))
        C.plot_channel_bars(
            credit,
            model_name,
            unit="money",
            currency=page.currency,
            ax=ax,
            title=f"Lead revenue credited by {model_label(model_name)} attribution, {quarter_label}",
            xlabel=f"Credited lead revenue ({page.currency})",
        )
        return [fig, _markdown(md_escape(describe_model(model_name)))]

    return explore(
        view,
        quarter_label=_dropdown(kq.trend.index, kq.quarter.label, "Quarter"),
        model_name=_dropdown(MODELS, kq.attribution_model, "Model", _model_name),
    )


def explore_roi(page: Page, economics: pd.DataFrame | None) -> View | None:
    """04: ROI by channel in another quarter and, with touches, under another model (without them
    each lead's own channel is credited whatever the model, so no model control is shown)."""
    from .metrics import QuarterKpis

    if not page.section("spend", "leads", "opportunities") or economics is None:
        return None
    kq = page.kq
    seen = {(kq.quarter.label, kq.attribution_model): economics}

    def view(quarter_label: str, model_name: str = kq.attribution_model) -> list[Any]:
        key = (quarter_label, model_name)
        if key not in seen:
            k = QuarterKpis(page.source, quarter_label, attribution_model=model_name)
            seen[key] = B.channel_economics(k, clv=k.metrics()["clv"])
        e = seen[key]
        credit = model_label(model_name) if page.touches else "own channel"
        fig, ax = new_figure((9, 3.6))
        C.plot_channel_bars(
            e.dropna(subset=["roi"]),
            "roi",
            ax=ax,
            title=f"Marketing ROI by channel, {quarter_label} ({credit})",
        )
        return [fig, T.economics_table(e, credit=credit, currency=page.currency)]

    controls = {"quarter_label": _dropdown(kq.trend.index, kq.quarter.label, "Quarter")}
    if page.touches:
        controls["model_name"] = _dropdown(MODELS, kq.attribution_model, "Model", _model_name)
    return explore(view, **controls)


def explore_incrementality(page: Page, result: Any) -> View | None:
    """05: one channel's response curve and its marginal ROI at a weekly cost the reader picks (today's,
    or 0.5x to 2x it), from the fitted model (nothing is refitted)."""
    from . import incrementality_views as V

    if result is None or not len(result.response_curves):
        return None
    channels = list(dict.fromkeys(result.response_curves["channel"]))
    levels = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)

    def view(channel: str, level: float = 1.0) -> list[Any]:
        fig, ax = new_figure((8, 3.6))
        V.plot_response_curves(result, ax=ax, currency=page.currency, channels=[channel])
        line = V.marginal_at(result, channel, level, currency=page.currency)
        ax.set_title(f"{channel}: incremental {V.target_words(result)} a week against weekly cost")
        return [fig, _markdown(line)]

    return explore(
        view,
        channel=_dropdown(channels, channels[0], "Channel"),
        level=_dropdown(levels, 1.0, "Weekly cost", lambda x: "today's" if x == 1.0 else f"{x:g}x today's"),
    )
