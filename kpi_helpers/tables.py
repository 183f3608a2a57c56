"""Tables for the report pages: formatted, escaped, worded by the registry.

:func:`styled_table` is the one way a page shows a table: every numeric column is formatted by
:func:`kpi_helpers.formats.format_value` with the unit the registry gives its key
(:func:`kpi_helpers.registry.unit_of`; ``units=`` for keys it does not know, never a guess from a
name), every header is the registry's label (:func:`kpi_helpers.registry.label_of`), a missing value
is ``n/a``, a status is a badge in :data:`kpi_helpers.status.COLOURS` with the words of
:data:`kpi_helpers.status.LABELS`, and every text cell, header and caption is HTML-escaped (a channel
called ``<script>`` shows as that text).

The ``*_frame`` functions build the text tables a page shows (the headline KPIs, the KPI targets, the
reverse funnel, the goal's ingredients): plain text cells, shown through :func:`styled_table`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from .changes import VERDICTS, verdict
from .formats import format_change, format_interval, format_value, is_missing
from .labels import credit_words, has_touches, key_label, model_label
from .markup import html_escape, sentence
from .registry import KPIS, label_of, unit_of
from .status import COLOURS, LABELS, of_row

__all__ = [
    "attribution_table",
    "economics_table",
    "funnel_frame",
    "goal_frame",
    "headline_frame",
    "headline_keys",
    "kpi_frame",
    "maturity_table",
    "ranks_table",
    "status_badge",
    "styled_table",
]

#: a column shown as a coloured status badge (see :func:`styled_table`)
STATUS = "status"


def status_badge(status: Any) -> str:
    """HTML badge for a KPI status: :data:`~kpi_helpers.status.LABELS` words on its
    :data:`~kpi_helpers.status.COLOURS` colour; anything else is shown escaped, in grey.

    >>> status_badge("on track")[:31], ">On track<" in status_badge("on track")
    ('<span style="background:#2e7d32', True)
    """
    key = "no data" if is_missing(status) else str(status)
    text = LABELS.get(key, key)
    colour = COLOURS.get(key, COLOURS["no data"])
    fg = "#1a1a1a" if key == "at risk" else "#ffffff"
    return (
        f'<span style="background:{colour};color:{fg};padding:1px 8px;border-radius:9px;'
        f'font-size:0.85em;white-space:nowrap">{html_escape(text)}</span>'
    )


def styled_table(
    df: pd.DataFrame,
    *,
    units: Mapping[str, str] | None = None,
    unit: str | None = None,
    labels: Mapping[str, str] | None = None,
    currency: str = "",
    caption: str | None = None,
    max_rows: int | None = None,
) -> Any:
    """A pandas Styler for the report: formatted numbers, escaped text, no index-name clutter.

    Parameters
    ----------
    df : DataFrame
        A named index (e.g. ``channel``) becomes the first column; a plain RangeIndex is hidden.
    units : dict
        Column -> unit (``count``, ``money``, ``money_small``, ``percent``, ``ratio``, ``seconds``,
        ``days``, ``text``) or ``"status"`` (a coloured badge, :func:`status_badge`), for columns the
        registry does not know; the registry's unit (:func:`~kpi_helpers.registry.unit_of`) otherwise.
        A column ``x`` next to ``x_low`` and ``x_high`` (an interval) is shown as one range,
        ``342 (318-371)``, and the two bound columns are not shown.
    unit : str
        The unit of every other numeric column (a table of one kind of number, e.g. spend by cost type).
    labels : dict
        Column headers; default the registry's label (``cost_per_lead`` -> ``Cost per lead``).
    currency : str
        The source's currency (``goals.yml``), shown with money.
    caption : str
        Table caption (escaped).
    max_rows : int
        Show the first rows only.

    Raises
    ------
    ValueError
        A numeric column without a unit (neither in the registry nor in ``units``/``unit``).
    """
    units = dict(units or {})
    data = df.copy()
    if not isinstance(data.index, pd.RangeIndex) or any(n is not None for n in data.index.names):
        data = data.reset_index()
    if max_rows is not None:
        data = data.head(max_rows)
    data.columns = pd.Index([str(c) if not isinstance(c, tuple) else " ".join(map(str, c)) for c in data.columns])
    for c in data.columns:  # an interval's bounds take the unit given for its value
        base = c.removesuffix("_low").removesuffix("_high")
        if base != c and base in units and c not in units:
            units[c] = units[base]
    kinds = {c: _column_unit(data[c], c, units, unit) for c in data.columns}
    data, kinds = _with_ranges(data, kinds, currency)
    labels = dict(labels or {})
    rename = {c: labels.get(c, label_of(c) if c != "index" else "") for c in data.columns}
    if len(set(rename.values())) < len(rename):  # keep headers unique
        rename = {c: c for c in data.columns}
    data = data.rename(columns=rename)
    kinds = {rename[c]: k for c, k in kinds.items()}

    styler = data.style.format(na_rep="n/a", escape="html")
    numeric: list[Hashable] = []  # Styler's subset takes column labels
    for col, kind in kinds.items():
        if kind == STATUS:
            styler = styler.format(status_badge, subset=[col], escape=None)
        elif kind != "text":
            styler = styler.format(_cell_formatter(kind, currency), subset=[col], na_rep="n/a", escape="html")
            numeric.append(col)
    styler = styler.hide(axis="index").format_index(escape="html", axis="columns")
    text_cols: list[Hashable] = [c for c in data.columns if c not in numeric]
    if numeric:
        styler = styler.set_properties(
            subset=numeric, **{"text-align": "right", "white-space": "nowrap", "font-variant-numeric": "tabular-nums"}
        )
    if text_cols:
        styler = styler.set_properties(subset=text_cols, **{"text-align": "left"})
    styler = styler.set_table_styles(
        [
            {"selector": "th", "props": "text-align: left; font-weight: 600; border-bottom: 1px solid #9aa0a6;"},
            {"selector": "td", "props": "padding: 3px 10px;"},
            {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: 600; color: #333;"},
        ],
        overwrite=False,
    )
    if caption:
        styler = styler.set_caption(html_escape(caption))
    # Styler's default id is random; one derived from the content makes a re-run's HTML identical.
    digest = hashlib.blake2b(f"{data.to_csv()}|{kinds}|{caption}|{max_rows}|{currency}".encode(), digest_size=4)
    return styler.set_uuid(digest.hexdigest())


def _with_ranges(data: pd.DataFrame, kinds: dict[str, str], currency: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """A column ``x`` beside ``x_low`` and ``x_high`` shows ``342 (318-371)``
    (:func:`kpi_helpers.formats.format_interval`, in ``x``'s unit); the bound columns go."""
    ranged = [c for c in data.columns if f"{c}_low" in data.columns and f"{c}_high" in data.columns]
    if not ranged:
        return data, kinds
    data = data.copy()
    for c in ranged:
        data[c] = [
            format_interval(v, lo, hi, kinds[c], currency=currency)
            for v, lo, hi in zip(data[c], data[f"{c}_low"], data[f"{c}_high"], strict=True)
        ]
    bounds = [f"{c}{b}" for c in ranged for b in ("_low", "_high")]
    return data.drop(columns=bounds), {c: k for c, k in kinds.items() if c not in bounds}


def _column_unit(values: pd.Series, key: str, units: Mapping[str, str], unit: str | None) -> str:
    """The unit a column is shown in: ``units``, the registry, ``unit`` (numeric columns), else text."""
    if key in units:
        return units[key]
    found = unit_of(key)
    if found is not None:
        return found
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if not numeric:
        return "text"
    if unit is not None:
        return unit
    raise ValueError(
        f"no unit for column `{key}`: the registry does not know it; add it to registry.COLUMNS or pass "
        "`units={...}` (count, money, money_small, percent, ratio, seconds, days, text)"
    )


def _cell_formatter(unit: str, currency: str) -> Any:
    def fmt(value: Any) -> str:
        if isinstance(value, str):  # text in a numeric column (already escaped by Styler)
            return value
        return html_escape(format_value(value, unit, currency=currency))

    return fmt


# -------------------------------------------------------------------------------------------------
# Text tables of metrics() (shown through styled_table)


def headline_keys() -> list[str]:
    """The registry's headline KPIs, in its order (``kpi summary`` and the summary page show them)."""
    return [k.key for k in KPIS.values() if k.headline]


def headline_frame(
    m: Mapping[str, Any],
    keys: Iterable[str] | None = None,
    *,
    previous_reasons: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Text table of ``metrics()`` values: KPI, this quarter, the previous quarter, the change and the
    target where one exists (the quarter's revenue target, or a ``kpis`` row on that metric).

    This quarter's value carries its 90% interval where ``m`` has one (``cac_low``, ``cac_high``):
    ``$342 ($318-$371)``; a change that ``m["changes"]`` judges beyond normal variation
    (:func:`kpi_helpers.changes.verdict`) says so, and only such a change is marked.

    ``keys`` default to the registry's headline KPIs (:func:`headline_keys`), so a KPI added to the
    registry appears without editing a page; each is labelled and formatted by the registry. A value
    the data does not give is ``n/a`` (never 0), and a ``Note`` column says why (``m["undefined"]``;
    ``previous_reasons`` for the previous quarter's, e.g. :attr:`kpi_helpers.notebook.Page.previous_reasons`);
    a value computed on part of the quarter is marked "(partial)" and its note gives the days it lacks
    (``m["partial"]``). The column is left out when no row needs a note. A number the previous
    quarter's comparison does not carry (not a registry KPI, e.g. the visit-to-lead ratio) is "not
    compared". The ROI label names the attribution model, or says that revenue is credited to each
    lead's own channel when there are no touchpoints. Cells are plain text; show the frame with
    :func:`styled_table`, which escapes it.
    """
    cur = str(m.get("currency", ""))
    prev = m.get("previous_quarter") or {}
    pq = str(prev.get("quarter") or "previous quarter")
    undefined, partial = m.get("undefined") or {}, m.get("partial") or {}
    previous_reasons = previous_reasons or {}
    out = []
    for key in headline_keys() if keys is None else keys:
        unit = _known_unit(key)
        label = label_of(key)
        if key == "marketing_roi" and m.get("attribution_model") and (has_touches(m) or not is_missing(m.get(key))):
            label = f"{label} ({credit_words(m)})"
        value = format_interval(m.get(key), m.get(f"{key}_low"), m.get(f"{key}_high"), unit, currency=cur)
        if key in partial and not is_missing(m.get(key)):
            value += " (partial)"
        note = undefined.get(key) or partial.get(key) or ""
        if not note and is_missing(prev.get(key)) and previous_reasons.get(key):
            note = f"{pq}: {previous_reasons[key]}"
        compared = not prev or key in prev
        if key in partial and _is_sum(key):
            change = "not compared (partial)"
        elif not compared:
            change = "not compared"
        else:
            change = format_change(m.get(key), prev.get(key), unit)
            if verdict(m, key) and change != "n/a":  # only a real movement is marked
                change += f", {VERDICTS[True]}"
        out.append(
            {
                "KPI": label,
                str(m.get("quarter", "this quarter")): value,
                pq: format_value(prev.get(key), unit, currency=cur) if compared else "not compared",
                "Change": change,
                "Target": _target_text(m, key, unit, cur),
                "Note": note,
            }
        )
    df = pd.DataFrame(out, columns=["KPI", str(m.get("quarter", "this quarter")), pq, "Change", "Target", "Note"])
    return df if df["Note"].astype(bool).any() else df.drop(columns="Note")


def _known_unit(key: str) -> str:
    unit = unit_of(key)
    if unit is None:
        raise ValueError(f"`{key}` is not in the registry: add it to registry.KPIS or registry.COLUMNS")
    return unit


def _is_sum(key: str) -> bool:
    """A KPI that sums the quarter's days (a count or an amount), so a part of a quarter is short of a whole."""
    return key in KPIS and KPIS[key].additive


def _target_text(m: Mapping[str, Any], key: str, unit: str, currency: str) -> str:
    """The target of ``key`` in words (``$1,045,130``, ``≤ $325``), ``""`` when it has none."""
    if key == "revenue":
        target, higher = m.get("revenue_target"), True
    else:
        row: Mapping[str, Any] = next(
            (k for k in m.get("kpis", []) if k.get("metric") == key and not is_missing(k.get("target"))), {}
        )
        target, higher = row.get("target"), row.get("higher_is_better", True)
    if is_missing(target):
        return ""
    text = format_value(target, unit, currency=currency)
    return text if higher else f"≤ {text}"


def kpi_frame(kpis: Sequence[Mapping[str, Any]], *, currency: str = "") -> pd.DataFrame:
    """Text table of ``metrics()["kpis"]``: each KPI next to the goal it serves, its owner, baseline,
    target, actual (and projection for a quarter in progress) and the row's own status (show it with
    ``styled_table(frame, units={"Status": "status"})`` for badges). A ``Note`` column gives a row's
    ``note`` (why its data is missing or partial), when any row has one."""
    out = []
    for k in kpis:
        unit = unit_of(k.get("metric") or "") or k.get("unit") or "count"
        target = format_value(k.get("target"), unit, currency=currency)
        lower = not k.get("higher_is_better", True)
        row = {
            "KPI": k.get("name", ""),
            "Serves goal": k.get("goal", ""),
            "Owner": k.get("owner", ""),
            "Baseline": format_value(k.get("baseline"), unit, currency=currency),
            "Target": f"≤ {target}" if lower and not is_missing(k.get("target")) else target,
            "Actual": format_value(k.get("actual"), unit, currency=currency),
        }
        if any(not is_missing(x.get("projected")) for x in kpis):
            row["Projected"] = format_value(k.get("projected"), unit, currency=currency)
        row["Status"] = of_row(dict(k))
        if any(x.get("note") for x in kpis):
            row["Note"] = k.get("note") or ""
        out.append(row)
    return pd.DataFrame(out)


def funnel_frame(requirements: pd.DataFrame, *, currency: str = "") -> pd.DataFrame:
    """Text table of ``breakdowns.funnel_requirements``, top of the funnel first: each stage, the rate
    its requirement came from, what the quarter requires, the actual, its status, and why a stage has
    no requirement (``Note``, when one has none)."""
    reasons = requirements.attrs.get("reasons", {})
    year = requirements.attrs.get("year", "")
    rows = []
    for stage, r in requirements.iterrows():
        unit = _known_unit(r["fact"])
        rate = f"{key_label(r['rate'])}: {format_value(r['rate_value'], _known_unit(r['rate']), currency=currency)}"
        rows.append(
            {
                "Stage": label_of(r["fact"]),
                f"Rate used ({year})": rate,
                "Required this quarter": format_value(r["required"], unit, currency=currency),
                "Actual": format_value(r["actual"], unit, currency=currency),
                "Status": r["status"],
                "Note": reasons.get(stage, ""),
            }
        )
    df = pd.DataFrame(rows)
    return df if len(df) and df["Note"].astype(bool).any() else df.drop(columns="Note", errors="ignore")


def goal_frame(goal: Any, *, years: int, currency: str = "") -> pd.DataFrame:
    """The goal's ingredients as a text table (``Item``, ``Value``): last year's revenue, the average
    growth over ``years`` complete years (none with one complete year), the uplift, the target growth
    and the target."""

    def v(key: str, value: Any) -> str:
        return format_value(value, _known_unit(key), currency=currency)

    growth = v("average_growth", goal.average_growth) if years else "none: one complete year (taken as 0)"
    return pd.DataFrame(
        [
            ("Revenue last fiscal year", v("revenue", goal.last_year_revenue)),
            ("Average yearly growth (lookback)", growth),
            (label_of("growth_uplift"), v("growth_uplift", goal.uplift)),
            (label_of("target_growth"), v("target_growth", goal.target_growth)),
            (f"Revenue target FY{goal.fiscal_year}", v("revenue_target", goal.target_revenue)),
        ],
        columns=["Item", "Value"],
    )


# -------------------------------------------------------------------------------------------------
# Styled tables of breakdowns


def economics_table(economics: pd.DataFrame, *, credit: str, currency: str = "", max_rows: int | None = None) -> Any:
    """``breakdowns.channel_economics`` or ``campaign_economics`` as a table, the numbers that depend
    on attribution labelled with ``credit`` (``position-based``, ``own channel``)."""
    labels = {
        "attributed_conversions": f"Won deals ({credit})",
        "attributed_revenue": f"Attributed revenue ({credit})",
        "cac": f"CAC ({credit})",
        "clv_to_cac": f"CLV:CAC ({credit})",
        "roi": f"ROI ({credit})",
    }
    # attributed deals are fractions of deals (a deal split across channels): two decimals, never 0 for 0.4
    units = {"attributed_conversions": "ratio"}
    return styled_table(
        economics.drop(columns="clv", errors="ignore"), units=units, labels=labels, currency=currency, max_rows=max_rows
    )


def attribution_table(comparison: pd.DataFrame, *, currency: str = "") -> Any:
    """Lead revenue credited per channel (money) under each model of ``comparison`` (or the one
    ``own_channel`` column), with a ``Total`` row: every column adds up to the same total."""
    table = comparison.copy()
    table.loc["Total"] = comparison.sum()
    models = [c for c in comparison.columns if c != "own_channel"]
    return styled_table(
        table,
        units=dict.fromkeys(models, "money"),
        labels={c: sentence(model_label(c)) for c in models},
        currency=currency,
    )


def ranks_table(ranks: pd.DataFrame) -> Any:
    """``breakdowns.attribution_ranks``: each channel's rank under every model (1 = most credited),
    its best and worst rank and the places it moves."""
    models = [c for c in ranks.columns if unit_of(c) is None]
    labels = {c: sentence(model_label(c)) for c in models}
    return styled_table(ranks, units=dict.fromkeys(models, "count"), labels=labels)


def maturity_table(maturity: pd.DataFrame) -> Any:
    """``cohorts.funnel_maturity`` as a table: per stage step, the quarter's leads that reached its
    first stage, how many took it so far, the rate so far, the share of its conversions that have had
    time to happen, the rate expected once mature (with its 90% interval) and whether it is still
    maturing."""
    frame = maturity.drop(columns=["days_column"], errors="ignore").copy()
    frame["maturing"] = ["still maturing" if x else "mature" for x in frame["maturing"]]
    frame.index = pd.Index([label_of(str(s)) for s in frame.index], name="Step")
    return styled_table(
        frame,
        units={
            "entered": "count",
            "took": "count",
            "rate_so_far": "percent",
            "matured": "percent",
            "expected_rate": "percent",
            "expected_rate_low": "percent",
            "expected_rate_high": "percent",
            "maturing": "text",
        },
        labels={
            "entered": "Leads at its first stage",
            "took": "Took it so far",
            "rate_so_far": "Rate so far",
            "matured": "Time had (share of its conversions)",
            "expected_rate": "Expected rate once mature (90% interval)",
            "maturing": "Cohort",
        },
    )
