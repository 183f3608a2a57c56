"""The report's index pages: ``OUT/<quarter>/index.html`` and ``OUT/index.html`` (jinja2, autoescaped).

A quarter's page shows the quarter in brief (the summary notebook's own conclusion), the
registry's headline KPIs as tiles (:func:`headline_tiles`: the KPIs with ``headline=True`` in
:mod:`kpi_helpers.registry`, in its order), the KPI targets as tiles with their status
(:func:`target_tiles`), links to the notebook pages and the channel and campaign tables; the
report index lists every rendered quarter, newest first, with its first four headline tiles.
Every number is formatted by
:func:`kpi_helpers.formats.format_value` with its unit from the registry, and every status is the
one rule of :mod:`kpi_helpers.status` (its words, its colours): the tiles say what the notebooks say.
Names from the data (channels, campaigns, KPI labels) render as text.

What the pages read from ``metrics.json`` (what ``metrics_fn`` returned; every key optional)::

    {"quarter": "2026Q3",
     "currency": "USD",
     "revenue": 1.2e6, "leads": 850, ...   # the registry's KPIs by key (headline tiles)
     "previous_quarter": {"quarter": "2026Q2", "revenue": 1.0e6, ...},
     "in_progress": True, "forecast": {"revenue": {"probability_to_hit": 0.62, ...}},   # revenue tile
     "undefined": {"cac": "needs spend: ..."}, "partial": {"visits": "61 of 92 days"},
     "kpis": [                             # metrics.QuarterKpis.kpi_table() rows ...
        {"name": "Leads per quarter", "metric": "leads", "unit": "count", "actual": 850,
         "projected": None, "target": 1000, "status": "off track", "note": ""},
        # ... or the short form: status then judged by `status.judge` from value and target
        {"name": "cost_per_lead", "value": 52.0, "target": 50.0, "better": "lower"}],
     "by_channel": {"Paid search": {"leads": 120, "cost": 1.0e4, "roi": 1.8}},   # or "channels": [rows]
     "campaigns": [{"campaign": "Spring webinar", "spend": 900.0}],
     "attribution_model": "position_based"}

A KPI's unit is its row's ``unit``, else the registry's unit of its ``metric`` (or of its ``name``
when that is a registry key), else the ``format`` older kits wrote (``currency``, ``percent``);
a number without any is shown plainly, never formatted by a guess from its name. A table column
takes the registry's unit of its name (or the ``formats`` older kits wrote). ``kpis`` may also be
a mapping ``{name: {...}}`` or ``{name: number}``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import fileio, outdir
from .formats import finite_number
from .outdir import KIT_NAME
from .planning import Job, clip, source_date_epoch

__all__ = ["Tile", "headline_tiles", "target_tiles", "warm_up", "write_quarter_index", "write_reports_index"]

TEMPLATES = Path(__file__).with_name("templates")
#: the units older kits named in a row's ``format`` (or a table's ``formats``); "number" has none
LEGACY_FORMATS = {"currency": "money", "percent": "percent"}
#: seconds a run waits for another writing the report index
INDEX_LOCK_TIMEOUT = 60.0


@dataclass(frozen=True)
class Tile:
    """One headline KPI, formatted for a page."""

    label: str
    value: str
    target: str
    #: the CSS class of the status (:data:`kpi_helpers.status.CSS`): good | warn | bad | none
    status: str
    #: the status in words (:data:`kpi_helpers.status.LABELS`)
    status_text: str
    attainment: str
    #: why a value is missing or not judged ("needs spend: add spend.csv ...")
    note: str = ""
    #: the status itself (one of :data:`kpi_helpers.status.STATUSES`)
    state: str = "no data"
    #: a change beyond normal variation ("▼ -18.0% on 2026Q2, beyond normal variation"); "" for noise
    movement: str = ""


def warm_up() -> None:
    """Import what the pages format with (pandas among it), while the notebooks still execute.

    The runner's module does not import these, so that kernels start without waiting for pandas.
    """
    from . import formats, registry, status  # noqa: F401


# --------------------------------------------------------------------------------------------------
# Tiles


def headline_tiles(metrics: Mapping[str, Any], limit: int | None = None) -> list[Tile]:
    """The registry's headline KPIs as tiles: every :class:`~kpi_helpers.registry.Kpi` with
    ``headline=True`` that ``metrics`` holds, in the registry's order, labelled and formatted by
    the registry (a KPI added there with ``headline=True`` shows here with nothing else changed).

    A tile shows the quarter's value and its change on the previous quarter
    (:func:`kpi_helpers.formats.format_change`); n/a with the reason ``metrics["undefined"]`` gives;
    the reason a value covers part of the quarter (``metrics["partial"]``). A KPI target row
    (``metrics["kpis"]``) on the same metric that judges this very number lends the tile its target
    and status; otherwise the tile is not judged (no status shown): a target of another count (won
    deals *from leads* against every won deal) is never put next to it.

    Metrics that hold no registry KPI (an older kit's, or a custom ``metrics_fn``'s short form)
    get their KPI target tiles (:func:`target_tiles`) instead.

    >>> m = {"currency": "USD", "revenue": 1_200_000, "avg_session_duration_s": 87,
    ...      "previous_quarter": {"quarter": "2026Q2", "revenue": 1_000_000}}
    >>> [(t.label, t.value, t.attainment, t.status_text) for t in headline_tiles(m)]
    [('Revenue', '$1.2M', '+20.0% on 2026Q2', '')]
    """
    from . import formats, registry

    keys = _headline_keys(metrics)
    if not keys:
        return target_tiles(metrics, limit)
    currency = str(metrics.get("currency") or "")
    previous = metrics.get("previous_quarter")
    previous = previous if isinstance(previous, Mapping) else {}
    undefined = _mapping(metrics.get("undefined"))
    partial = _mapping(metrics.get("partial"))
    rows = {str(r.get("metric")): r for r in _kpi_rows(metrics.get("kpis")) if r.get("metric")}
    tiles = []
    for key in keys:
        unit = registry.unit_of(key) or "count"
        label = registry.label_of(key)
        value = finite_number(metrics[key])
        row = rows.get(key)
        row_value = None if row is None else finite_number(row["value"] if "value" in row else row.get("actual"))
        if row is not None and value is not None and row_value is not None and math.isclose(row_value, value):
            tile = _row_tile({**row, "unit": unit}, currency, label=label)
        else:
            tile = Tile(label, _show(metrics[key], unit, currency, compact=True), "", "none", "", "")
        change = ""
        if value is not None and finite_number(previous.get(key)) is not None:
            when = previous.get("quarter") or "the previous quarter"
            change = f"{formats.format_change(value, previous[key], unit)} on {when}"
        note = tile.note or str(undefined.get(key) or "")
        if not note and key in partial:
            note = f"over part of the quarter: {partial[key]}"
        tiles.append(
            replace(
                tile,
                attainment="; ".join(t for t in (tile.attainment, _chance(metrics, key), change) if t),
                note=clip(note, 160),
                movement=_movement(metrics, key, unit),
            )
        )
    return tiles[:limit] if limit else tiles


def _movement(metrics: Mapping[str, Any], key: str, unit: str) -> str:
    """The changes of ``key`` that ``metrics["changes"]`` judges beyond normal variation, marked with
    their direction (``▲ +22.0% on 2025Q3, beyond normal variation``); ``""`` when every change is
    within it or was not judged: a tile marks only real movements.

    >>> m = {"changes": {"kpis": {"leads": {"quarter_on_quarter": {"real": True, "reference": "2026Q2",
    ...      "value": 820, "reference_value": 1000}, "year_on_year": {"real": False}}}}}
    >>> _movement(m, "leads", "count"), _movement(m, "cac", "money")
    ('▼ -18.0% on 2026Q2, beyond normal variation', '')
    """
    from . import changes, formats

    marks = []
    for comparison in changes.COMPARISONS:
        if not changes.verdict(metrics, key, comparison):
            continue
        entry = metrics["changes"]["kpis"][key][comparison]
        value, before = finite_number(entry.get("value")), finite_number(entry.get("reference_value"))
        if value is None or before is None:
            continue
        arrow = "▲" if value > before else "▼"
        marks.append(f"{arrow} {formats.format_change(value, before, unit)} on {entry.get('reference', '')}")
    return f"{'; '.join(marks)}, {changes.VERDICTS[True]}" if marks else ""


def _chance(metrics: Mapping[str, Any], key: str) -> str:
    """``62% chance to reach target``: the revenue forecast's probability, while the quarter is in
    progress (``metrics["forecast"]``); ``""`` otherwise.

    >>> _chance({"in_progress": True, "forecast": {"revenue": {"probability_to_hit": 0.62}}}, "revenue")
    '62% chance to reach target'
    """
    forecast = _mapping(_mapping(metrics.get("forecast")).get(key))
    p = finite_number(forecast.get("probability_to_hit"))
    if key != "revenue" or not metrics.get("in_progress") or p is None:
        return ""
    return f"{p:.0%} chance to reach target"


def _headline_keys(metrics: Mapping[str, Any]) -> list[str]:
    """The registry's headline KPIs that ``metrics`` holds, in the registry's order."""
    from .registry import KPIS

    return [key for key, kpi in KPIS.items() if kpi.headline and key in metrics]


def _mapping(raw: Any) -> Mapping[str, Any]:
    return raw if isinstance(raw, Mapping) else {}


def target_tiles(metrics: Mapping[str, Any], limit: int | None = None) -> list[Tile]:
    """The KPI targets as tiles, from ``metrics["kpis"]`` (module docstring): value, target, status and why.

    Reads the kit's ``kpi_table`` rows (``name``, ``metric``, ``unit``, ``actual``, ``projected``,
    ``target``, ``status``, ``note``, and ``baseline`` with ``progress``, shown as "65% of the way
    from $822k") and the short form (``name``, ``value``, ``target``, ``better``). A row's
    ``status`` is shown as it is (the kit judged it with :func:`kpi_helpers.status.judge`); a row
    without one is judged by that rule; a row without a value says "No data" and its ``note``.
    Money and counts are compact (``$1.23M``).

    >>> (tile,) = target_tiles({"kpis": [{"name": "avg_session_duration_s", "value": 87}]})
    >>> tile.value, tile.label
    ('1 min 27 s', 'Average session duration')
    """
    currency = str(metrics.get("currency") or "")
    tiles = [_row_tile(kpi, currency) for kpi in _kpi_rows(metrics.get("kpis"))]
    return tiles[:limit] if limit else tiles


def _row_tile(kpi: Mapping[str, Any], currency: str, label: str | None = None) -> Tile:
    """One ``kpis`` row as a tile (:func:`target_tiles`)."""
    from . import status as S

    key = str(kpi.get("metric") or kpi.get("name") or "")
    name = str(kpi.get("name") or key)
    unit = _unit(kpi, key)

    def show(number: float | None) -> str:
        return _show(number, unit, currency, compact=True)

    value = finite_number(kpi["value"] if "value" in kpi else kpi.get("actual"))
    projected, target = finite_number(kpi.get("projected")), finite_number(kpi.get("target"))
    baseline, progress = finite_number(kpi.get("baseline")), finite_number(kpi.get("progress"))
    lower_better = str(kpi.get("better", "")).lower() == "lower" or kpi.get("higher_is_better") is False
    state = _state(kpi, value, projected, target, baseline, lower_better)
    detail = _attainment(value if projected is None else projected, target, lower_better)
    # With a baseline the status judges the way from it to the target (kpis.kpi_status): say so.
    if baseline is not None and progress is not None:
        detail += f"{'; ' if detail else ''}{progress:.0%} of the way from {show(baseline)}"
    if projected is not None:
        detail = f"projected {show(projected)}" + (f", {detail}" if detail else "")
    note = str(kpi.get("note") or "")
    if state == "no data" and value is not None and target is None and not note:
        note = "no target to judge it against"
    # Identifiers become the registry's labels; display names ("MQLs per quarter") stay.
    shown = label or str(kpi.get("label") or (_label(name) if re.fullmatch(r"\w+", name) else name))
    return Tile(
        label=shown,
        value=show(value),
        target=show(target) if target is not None else "",
        status=S.CSS[state],
        status_text=S.LABELS[state],
        attainment=detail,
        note=clip(note, 160),
        state=state,
    )


def _kpi_rows(raw: Any) -> list[Mapping[str, Any]]:
    """``kpis`` as a list of rows (a mapping ``{name: row or number}`` becomes one)."""
    if isinstance(raw, Mapping):
        raw = [{"name": k, **v} if isinstance(v, Mapping) else {"name": k, "value": v} for k, v in raw.items()]
    return [row for row in raw or [] if isinstance(row, Mapping)]


def _state(
    kpi: Mapping[str, Any],
    value: float | None,
    projected: float | None,
    target: float | None,
    baseline: float | None,
    lower_better: bool,
) -> str:
    """The KPI's status: "no data" without a value, else its row's own, else judged by the one rule."""
    from . import status as S

    if value is None and projected is None:
        return "no data"  # missing data is a state of its own, never a 0
    if "status" in kpi:
        return S.of_row(dict(kpi))
    return S.judge(value, target, baseline=baseline, higher_is_better=not lower_better, projected=projected)


def _attainment(judged: float | None, target: float | None, lower_better: bool) -> str:
    """``95% of target``: the judged value against its target (target / value when lower is better).

    >>> _attainment(95, 100, False), _attainment(40, 50, True), _attainment(None, 100, False)
    ('95% of target', '125% of target', '')
    """
    if judged is None or target in (None, 0) or (lower_better and judged == 0):
        return ""
    assert target is not None
    return f"{(target / judged if lower_better else judged / target):.0%} of target"


def _unit(row: Mapping[str, Any], key: str) -> str | None:
    """A KPI row's unit (module docstring); None: show the number plainly."""
    from . import formats, registry

    unit = row.get("unit")
    if isinstance(unit, str) and unit in formats.UNITS:
        return unit
    return registry.unit_of(key) or LEGACY_FORMATS.get(str(row.get("format") or ""))


def _label(key: str) -> str:
    from .registry import label_of

    return label_of(key)


def _show(value: Any, unit: str | None, currency: str, *, compact: bool = False) -> str:
    """A value for a page: by its unit (:func:`kpi_helpers.formats.format_value`), plainly without one.

    >>> _show(87, "seconds", ""), _show(0.031, None, ""), _show(1234567, None, ""), _show(None, "money", "USD")
    ('1 min 27 s', '0.031', '1,234,567', 'n/a')
    """
    from . import formats

    number = finite_number(value)
    if number is None:
        missing = value is None or formats.is_missing(value) or isinstance(value, bool)
        return formats.NA if missing else formats.format_value(value, "text")
    if unit is None:
        return _plain(number)
    return formats.format_value(number, unit, currency=currency, compact=compact)


def _plain(number: float) -> str:
    """A number without a unit: whole numbers with thousands separators, else six significant digits.

    >>> _plain(850), _plain(52.5), _plain(0.0312), _plain(-1234.5)
    ('850', '52.5', '0.0312', '-1,234.5')
    """
    if float(number).is_integer() or abs(number) >= 1e5:
        return f"{number:,.0f}"
    return f"{number:,.6g}"


# --------------------------------------------------------------------------------------------------
# Tables


def _tables(metrics: Mapping[str, Any], max_rows: int = 25) -> list[dict]:
    """Breakdown tables (``channels``, ``campaigns``) as formatted text; escaping is the template's job."""
    from .registry import label_of, unit_of

    legacy = _mapping(metrics.get("formats"))
    currency = str(metrics.get("currency") or "")
    tables = []
    for key, title in (("channels", "Channels"), ("by_channel", "Channels"), ("campaigns", "Campaigns")):
        raw = metrics.get(key) or []
        if isinstance(raw, Mapping):  # {channel: {numbers}}, as metrics.py writes `by_channel`
            raw = [
                {key.removeprefix("by_").rstrip("s"): name, **v} for name, v in raw.items() if isinstance(v, Mapping)
            ]
        rows = [r for r in raw if isinstance(r, Mapping)][:max_rows]
        if not rows:
            continue
        columns = list(dict.fromkeys(k for r in rows for k in r))
        # A column beside its interval's bounds shows "342 (318-371)"; the bounds are no columns.
        ranged = {c for c in columns if f"{c}_low" in columns and f"{c}_high" in columns}
        columns = [c for c in columns if not any(c in (f"{r}_low", f"{r}_high") for r in ranged)]
        # A column is numeric when any value is; its missing values then align right too.
        numeric = {c: any(finite_number(r.get(c)) is not None for r in rows) for c in columns}
        units = {c: unit_of(c) or LEGACY_FORMATS.get(str(legacy.get(c) or "")) for c in columns}
        body = [
            [
                {
                    "text": _cell(row, c, units[c] if numeric[c] else "text", c in ranged, currency),
                    "numeric": numeric[c],
                }
                for c in columns
            ]
            for row in rows
        ]
        headers = [{"text": label_of(c), "numeric": numeric[c]} for c in columns]
        model = metrics.get("attribution_model")
        if model and any(c in ("attributed_revenue", "roi") for c in columns):
            # attributed numbers depend on the model: name it next to them
            title = f"{title} (attributed revenue and ROI: {str(model).replace('_', '-')} attribution)"
        tables.append({"title": title, "headers": headers, "rows": body})
    return tables


def _cell(row: Mapping[str, Any], key: str, unit: str | None, ranged: bool, currency: str) -> str:
    """One table cell: ``row[key]`` by ``unit``, with its interval (``row[key_low]``, ``row[key_high]``)
    when ``ranged``: ``$342 ($318-$371)``."""
    from . import formats

    if ranged and unit and unit != "text" and finite_number(row.get(key)) is not None:
        low, high = finite_number(row.get(f"{key}_low")), finite_number(row.get(f"{key}_high"))
        return formats.format_interval(row.get(key), low, high, unit, currency=currency)
    return _show(row.get(key), unit, currency if unit != "text" else "")


# --------------------------------------------------------------------------------------------------
# Pages


def _page_env() -> Any:
    from jinja2 import Environment, FileSystemLoader

    # autoescape=True for every template (select_autoescape would skip *.j2): channel and campaign
    # names come from the data and must render as text.
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES / "pages")),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(kit=KIT_NAME, palette=palette(), generated=_now())
    return env


def palette() -> dict[str, dict[str, str]]:
    """The tiles' colours by CSS class, from :data:`kpi_helpers.status.COLOURS` (the one scale):
    the status colour for the tile's edge, a darker shade for its words, a light tint behind it.

    >>> palette()["good"]["line"]
    '#2e7d32'
    """
    from . import status as S

    return {
        S.CSS[state]: {"line": colour, "ink": _mix(colour, "#000000", 0.35), "tint": _mix(colour, "#ffffff", 0.88)}
        for state, colour in S.COLOURS.items()
    }


def _mix(colour: str, other: str, share: float) -> str:
    """``colour`` with ``share`` of ``other`` mixed in (``#rrggbb``).

    >>> _mix("#2e7d32", "#ffffff", 0.5)
    '#96be98'
    """
    a = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    b = [int(other[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * share):02x}" for x, y in zip(a, b, strict=True))


def conclusion_html(folder: Path, plan: list[Job]) -> str:
    """The story of the quarter for its index page: the Markdown the first notebook's cells tagged
    `conclusion` displayed (the summary page's own words, not a second computation), as HTML.

    Raw HTML in that text is escaped and unsafe link targets dropped (mistune ``escape=True``), so
    names from the data stay text here as on the pages.
    """
    if not plan:
        return ""
    try:
        cells = json.loads((folder / f"{plan[0].name}.ipynb").read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return ""
    texts = []
    for cell in cells:
        if "conclusion" in cell.get("metadata", {}).get("tags", []):
            for out in cell.get("outputs", []):
                text = out.get("data", {}).get("text/markdown")
                if text:
                    texts.append("".join(text) if isinstance(text, list) else str(text))
    if not texts:
        return ""
    import mistune

    from .htmlexport import rewrite_notebook_links

    return rewrite_notebook_links(str(mistune.create_markdown(escape=True)("\n\n".join(texts))))


def change_rows(changes: Mapping[str, Any] | None, currency: str) -> list[dict[str, str]]:
    """The KPIs ``changes.json`` lists (:func:`kpi_helpers.history.changes`), formatted for a page.

    >>> change_rows({"changes": [{"label": "Won deals", "unit": "count", "before": 25, "after": 26}]}, "USD")
    [{'label': 'Won deals', 'before': '25', 'after': '26', 'change': '+4.0%'}]
    """
    from . import formats

    rows = []
    for row in (changes or {}).get("changes") or []:
        unit = row.get("unit") if row.get("unit") in formats.UNITS else None
        rows.append(
            {
                "label": str(row.get("label") or row.get("kpi") or ""),
                "before": _show(row.get("before"), unit, currency),
                "after": _show(row.get("after"), unit, currency),
                "change": formats.format_change(row.get("after"), row.get("before"), unit or "count"),
            }
        )
    return rows


def write_quarter_index(
    folder: Path, label: str, metrics: Mapping[str, Any], plan: list[Job], changes: Mapping[str, Any] | None = None
) -> None:
    """Write the quarter's page ``folder/index.html`` (atomically).

    ``changes`` (``changes.json``) adds the section "Changed since the report of <date>" when KPIs moved.
    """
    from markupsafe import Markup

    html = (
        _page_env()
        .get_template("quarter.html.j2")
        .render(
            quarter=label,
            conclusion=Markup(conclusion_html(folder, plan)),  # already escaped by mistune
            tiles=headline_tiles(metrics),
            # the KPI targets next to the headline, unless the headline tiles are those already
            targets=target_tiles(metrics) if _headline_keys(metrics) else [],
            tables=_tables(metrics),
            pages=[{"href": f"{j.name}.html", "ipynb": f"{j.name}.ipynb", "title": j.title} for j in plan],
            changed=change_rows(changes, str(metrics.get("currency") or "")),
            changed_since=str((changes or {}).get("since") or "")[:10],
        )
    )
    fileio.write_atomic(folder / "index.html", html)


def write_reports_index(out: str | Path) -> Path:
    """(Re)write ``OUT/index.html`` listing every rendered quarter, newest first; atomic and locked.

    Lists the quarter folders the kit wrote (with a manifest, or an older kit's report). Refuses
    (:class:`~kpi_helpers.exceptions.ReportInputError`) to overwrite an ``index.html`` the kit did
    not write; records the new page's SHA-256 in ``OUT/.kpi-manifest.json``.
    """
    out = Path(out)
    with outdir.folder_lock(out / ".index.lock", INDEX_LOCK_TIMEOUT, "the report index", None):
        current = outdir.check_reports_index(out)
        folders = [f for f in out.iterdir() if not f.name.startswith(".") and outdir.is_report(f)]
        # not listed: the kit's own files, the user's folders
        folders.sort(key=lambda f: quarter_sort_key(f.name), reverse=True)
        metrics = {folder.name: _read_metrics(folder / "metrics.json") for folder in folders}
        quarters = [
            {
                "label": folder.name,
                "href": f"{folder.name}/index.html",
                "tiles": headline_tiles(metrics[folder.name], limit=4),
            }
            for folder in folders
        ]
        from .trend import headline_trend

        trend = headline_trend([(name, metrics[name]) for name in reversed(metrics)])
        html = _page_env().get_template("reports.html.j2").render(quarters=quarters, trend=trend)
        digest = hashlib.sha256(html.encode("utf-8")).hexdigest()
        target = out / "index.html"
        # Both pages are the kit's while the new one replaces the old: a crash in between leaves
        # an index the manifest still names.
        outdir.write_manifest(out, {"index.html": [digest, *([current] if current else [])]})
        fileio.write_atomic(target, html)
        outdir.write_manifest(out, {"index.html": [digest]})
    return target


def _read_metrics(path: Path) -> Mapping[str, Any]:
    """A quarter's ``metrics.json``, any kit's; empty when missing or unreadable (its tiles are then absent)."""
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return metrics if isinstance(metrics, Mapping) else {}


def quarter_sort_key(label: str) -> tuple[int, int, int, str]:
    """Orders quarter folders by their quarter (``2026Q3`` after ``2026Q2``); other names sort first.

    >>> sorted(["2026Q3", "notes", "2025Q4"], key=quarter_sort_key)
    ['notes', '2025Q4', '2026Q3']
    """
    from .exceptions import PeriodError
    from .periods import parse_quarter

    try:
        q = parse_quarter(label)
    except PeriodError:
        return (0, 0, 0, label)  # unknown names sort after (below) the real quarters
    return (1, q.fiscal_year, q.q, label)


def _now() -> str:
    """The "generated" time of the index pages: ``SOURCE_DATE_EPOCH`` in UTC when set, else now, local."""
    epoch = source_date_epoch()
    if epoch is not None:
        return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
