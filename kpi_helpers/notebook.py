"""One setup call for the report notebooks, the check each section makes before it draws, and how a
page shows what it shows.

A report notebook's first code cell after its parameters is::

    page = setup(data, quarter, mapping=mapping, goals=goals, engine=engine, attribution_model=attribution_model)

It opens and validates the data, computes the quarter's KPIs once (:class:`~kpi_helpers.metrics.QuarterKpis`
and its ``metrics()``, the numbers ``metrics.json`` holds) and applies the chart style.

A page shows charts with :meth:`Page.show`, tables of statuses with :meth:`Page.table` and
:meth:`Page.kpi_table`, and its narrative with :meth:`Page.tell`; each notes the status it showed for
every KPI (:attr:`Page.shown`), and the ``record`` cell (:meth:`Page.record`) carries them next to the
page's numbers, so a test can check that every chart, table and sentence agrees with ``metrics.json``.

Every contract table is optional, so each section asks the page whether its data is there before
it draws::

    if page.section("spend"):
        ...  # the chart and the table

When a table the section needs is absent, or present without data for the quarter (a header-only
export, an export that ends earlier), :meth:`Page.section` shows one line naming the table and how to
add it and returns False: the section draws nothing, never a chart of zeros, an empty chart or an
exception. A section about one number asks for it by key (``page.section(kpis=("marketing_roi",))``)
and shows the reason ``metrics()`` gives for it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import breakdowns as B
from . import charts as C
from . import tables as T
from .exceptions import KpiError
from .formats import format_value, is_missing
from .goals import RevenueGoal
from .labels import credit_words, has_touches, key_label, model_label
from .markup import missing_line, sentence
from .metrics import TREND_QUARTERS, QuarterKpis
from .narratives import Narrative, not_available
from .registry import KPIS, unit_of
from .source import DataSource
from .status import of_row

__all__ = ["RECORD_MIME", "Page", "read_record", "record", "setup"]

#: the MIME type of the ``record`` cell's output: JSON that no frontend renders
RECORD_MIME = "application/vnd.kpi-kit.record+json"

#: the coverage's reason for a table without data in a quarter: "`t` has no data for 2026Q3 (why)"
_NO_DATA = re.compile(r"^`[^`]+` has no data for \S+ \((?P<why>.*)\)$")


@dataclass
class Page:
    """What a report notebook shows, and what each of its sections can show.

    Attributes
    ----------
    source : DataSource
        The validated data.
    kq : QuarterKpis
        The quarter's KPIs (facts, trend, attribution, goal).
    m : dict
        ``kq.metrics()``: the numbers ``metrics.json`` holds, which the page shows.
    """

    source: DataSource
    kq: QuarterKpis
    m: dict[str, Any]
    #: the status shown for each KPI (``metric@quarter``) by the page's charts, tables and sentences
    shown: dict[str, dict[str, str]] = field(default_factory=lambda: {"charts": {}, "tables": {}, "sentences": {}})

    @property
    def currency(self) -> str:
        return str(self.m["currency"])

    @property
    def model(self) -> str:
        """The attribution model in words (``position-based``)."""
        return model_label(self.kq.attribution_model)

    @property
    def touches(self) -> bool:
        """Attribution reads touches: ``touchpoints`` is present and covers some of the quarter.
        Without them, won deals are credited to each lead's own channel, the same under every model."""
        return has_touches(self.m)

    @property
    def credit(self) -> str:
        """How revenue reaches the channels, for labels: ``position-based attribution``, or
        ``revenue credited to each lead's own channel`` without touches."""
        return credit_words(self.m)

    # -- what a section needs ---------------------------------------------------------------------
    def has(self, *tables: str) -> bool:
        """The source has every one of ``tables`` (with data or not)."""
        return self.kq.has(*tables)

    def lacks(self, *tables: str, trend: bool = False) -> str:
        """One line naming the first of ``tables`` the section cannot draw without, and how to add
        it; ``""`` when every one is present and has data for the quarter (``trend=True``: for some
        quarter of the trend the page charts).

        A table is lacking when the source does not have it, or has it without any data for the
        quarter (a header-only export, an export that ends before the quarter starts).
        """
        note = self.kq.missing_note(*tables)
        if note:
            return note
        q = self.kq.quarter
        cov = self.kq.coverage
        quarters = [q.shift(-i) for i in range(TREND_QUARTERS)] if trend else [q]
        for t in tables:
            statuses = [cov.status(t, x) for x in quarters]
            if all(st.status in ("none", "absent") for st in statuses):
                when = f"{quarters[-1].label} to {q.label}" if trend else q.label
                found = _NO_DATA.match(statuses[0].reason)
                why = found.group("why") if found else statuses[0].reason
                return f"This section needs `{t}` data for {when}; the `{t}` export has none there ({why})."
        return ""

    def lacks_kpi(self, *keys: str, trend: bool = False) -> str:
        """:meth:`lacks` for the tables the KPIs ``keys`` need (:attr:`kpi_helpers.registry.Kpi.needs`)."""
        tables = [t for key in keys for t in KPIS[key].needs]
        return self.lacks(*dict.fromkeys(tables), trend=trend)

    def undefined(self, *keys: str) -> str:
        """One line saying why the first of ``keys`` that ``metrics()`` leaves undefined is n/a
        (its reason names the table and how to add it); ``""`` when every one is defined."""
        reasons = self.m.get("undefined") or {}
        for key in keys:
            if key in reasons or self.m.get(key, 0) is None:
                why = reasons.get(key) or "the data does not give it"
                return f"{sentence(key_label(key))} is n/a for {self.m['quarter']}: {why}."
        return ""

    def section(self, *tables: str, trend: bool = False, kpis: Sequence[str] = ()) -> bool:
        """True when the section's ``tables`` (and its ``kpis``) are there; otherwise show the one line
        saying what is missing (:meth:`lacks`, :meth:`undefined`) and return False."""
        line = self.lacks(*tables, trend=trend) or self.undefined(*kpis)
        if line:
            self.say(line)
            return False
        return True

    def say(self, line: str) -> None:
        """Show one line in place of a section (:func:`kpi_helpers.markup.missing_line`), as a sentence."""
        from IPython.display import Markdown, display

        display(Markdown(missing_line(_sentence(line))))

    def with_data(self, *keys: str, trend: bool = False, say: bool = True) -> list[str]:
        """The KPIs of ``keys`` whose tables have data (for some quarter of the trend with
        ``trend=True``); for the others, one line each saying what they lack (:meth:`lacks_kpi`),
        unless ``say`` is False."""
        lacking = {k: self.lacks_kpi(k, trend=trend) for k in keys}
        for line in dict.fromkeys(why for why in lacking.values() if why and say):
            self.say(line)
        return [k for k in keys if not lacking[k]]

    def value(self, key: str) -> str:
        """``m[key]`` as text, formatted by the registry's unit for ``key`` (``n/a`` when missing)."""
        unit = unit_of(key)
        if unit is None:
            raise ValueError(f"`{key}` is not in the registry: add it to registry.KPIS or registry.COLUMNS")
        return format_value(self.m.get(key), unit, currency=self.currency)

    @cached_property
    def current(self) -> Page:
        """The page of the quarter in progress (``current``), whose charts and sentences note their
        statuses here as of that quarter; this page itself when the report is on that quarter."""
        kc = QuarterKpis(self.source, "current", attribution_model=self.kq.attribution_model)
        if kc.quarter == self.kq.quarter:
            return self
        return Page(self.source, kc, _split_only_what_exists(kc.metrics()), shown=self.shown)

    # -- showing, and noting the statuses shown ---------------------------------------------------
    def _note(self, where: str, statuses: Mapping[str, str], quarter: str | None) -> None:
        q = quarter or str(self.m["quarter"])
        for key, status in statuses.items():
            self.shown[where][key if "@" in key else f"{key}@{q}"] = status

    def show(self, figure: Any = None, *, quarter: str | None = None) -> None:
        """Show ``figure`` (default: pyplot's current one), noting the status each of its status bars
        was drawn in (:func:`kpi_helpers.charts.drawn_statuses`), as of ``quarter`` (default the page's)."""
        import matplotlib.pyplot as plt

        self._note("charts", C.drawn_statuses(figure or plt.gcf()), quarter)
        plt.show()

    def tell(self, text: str, *, quarter: str | None = None) -> None:
        """Show ``text`` (Markdown), noting the statuses a :class:`~kpi_helpers.narratives.Narrative` states."""
        from IPython.display import Markdown, display

        if not str(text).strip():
            return
        display(Markdown(str(text)))
        if isinstance(text, Narrative):
            self._note("sentences", text.statuses, quarter)

    def table(
        self, frame: pd.DataFrame, *, statuses: Mapping[str, str] | None = None, quarter: str | None = None, **kw: Any
    ) -> None:
        """Show ``frame`` through :func:`kpi_helpers.tables.styled_table` (``kw`` are its options),
        noting ``statuses`` (``{key: status}`` of the rows its status column shows)."""
        from IPython.display import display

        display(T.styled_table(frame, currency=kw.pop("currency", self.currency), **kw))
        self._note("tables", statuses or {}, quarter)

    def record(self, values: Mapping[str, Any]) -> None:
        """The ``record`` cell: ``values`` and the statuses the page showed (``shown_statuses``), as
        JSON (:func:`record`)."""
        record({**values, "shown_statuses": self.shown})

    # -- the goal --------------------------------------------------------------------------------
    @property
    def goal(self) -> RevenueGoal | None:
        """The fiscal year's revenue goal, or None when there is none (:attr:`goal_problem` says why)."""
        return None if self.kq.goal_problem else self.kq.goal

    @property
    def goal_note(self) -> str:
        """How the goal's history fell short of the lookback, as a sentence ('' when it did not)."""
        return _sentence(getattr(self.goal, "note", "") or "")

    @property
    def goal_problem(self) -> str:
        """Why there is no revenue target, as one line ('' when there is one)."""
        return _sentence(self.kq.goal_problem)

    # -- tables ----------------------------------------------------------------------------------
    @cached_property
    def previous_reasons(self) -> dict[str, str]:
        """Why each KPI that ``metrics()`` gives no previous-quarter value for is n/a there."""
        prev = self.m.get("previous_quarter") or {}
        q = self.kq.quarter.previous()
        out = {}
        for key in KPIS:
            if prev and prev.get(key) is None:
                out[key] = getattr(self.kq.value(key, q), "reason", "") or "not computable from the data"
        return out

    def headline(self, *keys: str) -> Any:
        """The headline table (:func:`kpi_helpers.tables.headline_frame`) of ``keys`` (default the
        registry's headline KPIs), labelled and formatted by the registry, n/a values with their
        reasons, partial values with the days they lack."""
        frame = T.headline_frame(self.m, keys or None, previous_reasons=self.previous_reasons)
        return T.styled_table(frame)

    def numbers(self, *keys: str) -> Any:
        """What :meth:`headline` shows for ``keys``, or, when the data gives none of them, one line
        naming what each needs (Markdown), instead of a table of n/a."""
        from IPython.display import Markdown

        if any(not is_missing(self.m.get(key)) for key in keys):
            return self.headline(*keys)
        return Markdown("> " + not_available(self.m, keys))

    def kpi_table(self, kpis: Sequence[Mapping[str, Any]] | None = None, *, quarter: str | None = None) -> None:
        """Show every KPI target with owner, baseline, target, actual and status (and why a row has no
        data), each row in its own status, and note those statuses."""
        rows = self.m["kpis"] if kpis is None else kpis
        statuses = {str(k.get("metric") or k.get("name")): of_row(dict(k)) for k in rows}
        frame = T.kpi_frame(rows, currency=self.currency)
        self.table(frame, units={"Status": T.STATUS}, statuses=statuses, quarter=quarter)

    def quarters_table(self, quarters: pd.DataFrame) -> None:
        """Show ``breakdowns.quarterly_targets`` (target, share of the year, actual, attainment and
        status per quarter), noting each done quarter's revenue status."""
        statuses = {f"revenue@{q}": str(s) for q, s in quarters["status"].items() if not is_missing(s)}
        frame = quarters.drop(columns="baseline")
        self.table(frame, units={"status": T.STATUS}, statuses=statuses)

    def funnel_table(self, requirements: pd.DataFrame) -> None:
        """Show ``breakdowns.funnel_requirements`` as a table (:func:`kpi_helpers.tables.funnel_frame`),
        noting each stage's status (under its metric when a KPI tracks it, as the chart does)."""
        statuses = {
            (str(stage) if r["kpi"] else f"{stage} (required)"): str(r["status"])
            for stage, r in requirements.iterrows()
        }
        frame = T.funnel_frame(requirements, currency=self.currency)
        self.table(frame, units={"Status": T.STATUS}, statuses=statuses)

    def judged(self, kpis: Iterable[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """The ``kpis`` rows (default ``m["kpis"]``) that can be drawn against a target: a target and
        an actual or projection. The others have nothing to draw; the KPI table says why."""
        rows = self.m["kpis"] if kpis is None else kpis
        return [
            k
            for k in rows
            if not is_missing(k.get("target")) and not (is_missing(k.get("actual")) and is_missing(k.get("projected")))
        ]

    def funnel(self, by: str = "channel") -> pd.DataFrame | None:
        """The funnel of the quarter's leads per ``by`` (:func:`kpi_helpers.breakdowns.channel_funnel`), or
        None when :meth:`lacks` ``leads``. Without ``opportunities`` the stages from opportunity on
        are NaN (unknown), not 0."""
        if self.lacks("leads"):
            return None
        f = B.channel_funnel(self.kq, by=by)
        if self.lacks("opportunities"):
            unknown = [c for c in f.columns if "opportunit" in c or "won" in c]
            f[unknown] = float("nan")
        return f

    def credited(self) -> pd.DataFrame:
        """Lead revenue credited per channel: every model side by side (channels x models) when there
        are touches, else one column, the revenue credited to each lead's own channel (the same under
        every model)."""
        if self.touches:
            out = self.kq.attribution_comparison()
        else:
            out = self.kq.attribution[["value"]].rename(columns={"value": "own_channel"})
        return out


def _sentence(text: str) -> str:
    """``text`` as a sentence: a capital first letter and a full stop ('' stays '')."""
    text = text.strip()
    if not text:
        return ""
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def setup(
    data: str | None,
    quarter: str = "latest",
    *,
    mapping: Sequence[str] | None = None,
    goals: str | None = None,
    engine: str = "duckdb",
    attribution_model: str = "position_based",
) -> Page:
    """Open ``data`` (validated), compute ``quarter``'s KPIs and apply the chart style: the one call a
    report notebook starts with. Empty ``mapping`` and ``goals`` mean none and the data folder's
    ``goals.yml``, as in the notebooks' parameters."""
    folder = resolve_data(data) if data and engine == "duckdb" else data
    src = DataSource.open(folder or None, mapping=list(mapping or []) or None, goals=goals or None, engine=engine)
    kq = QuarterKpis(src, quarter, attribution_model=attribution_model)
    m = _split_only_what_exists(kq.metrics())
    C.use_style()
    return Page(src, kq, m)


#: the kit's own notebooks folder: a relative ``data`` in a notebook's parameters is written
#: relative to it, whatever folder papermill or Jupyter was started from
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def resolve_data(data: str | Path, *, cwd: Path | None = None, notebooks: Path = NOTEBOOKS) -> Path:
    """The data folder ``data`` names: as given when absolute or found from the working folder, else
    relative to the notebooks folder (the parameters' default ``../data/sample`` is written from
    there, and ``papermill notebooks/01-goal-setting.ipynb out.ipynb`` runs in the project root).

    Raises :class:`KpiError` naming every folder tried when none exists.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "data" / "sample").mkdir(parents=True)
    >>> resolve_data("../data/sample", cwd=root, notebooks=root / "notebooks") == root / "data" / "sample"
    True
    """
    path = Path(data).expanduser()
    if path.is_absolute():
        tried = [path]
    else:
        here = (cwd or Path.cwd()).resolve()
        tried = list(dict.fromkeys([(here / path).resolve(), (notebooks / path).resolve()]))
    for folder in tried:
        if folder.is_dir():
            return folder
    raise KpiError(
        f"data folder `{data}` not found: tried "
        + " and ".join(f"`{t}`" for t in tried)
        + "; pass an absolute path (papermill: `-p data /path/to/exports`)"
    )


def _split_only_what_exists(m: dict[str, Any]) -> dict[str, Any]:
    """``m`` with the reason for each derived number that is n/a because its source is.

    ``visit_to_lead_ratio`` is ``visits_per_lead`` as a label, and ``attributed_lead_revenue`` is
    lead revenue split across channels: when the source is n/a, so is the derived number, for the
    same reason (and a 0 for attributed revenue, from a present but empty `leads` table, would be
    a number the data does not give).
    """
    undefined = dict(m.get("undefined") or {})
    out = dict(m)
    for key, source in _DERIVED.items():
        if source in undefined and key not in undefined:
            out[key] = None
            undefined[key] = undefined[source]
    out["undefined"] = undefined
    return out


#: numbers ``metrics()`` derives from another, which is n/a whenever its source is
_DERIVED = {"attributed_lead_revenue": "lead_revenue", "visit_to_lead_ratio": "visits_per_lead"}


# -------------------------------------------------------------------------------------------------
# Record: the values a notebook shows, for tests


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy/pandas scalars to Python, NaN/inf to None, keys to str."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, pd.Series):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray | pd.Index):
        return [_plain(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(value, Decimal):  # engine sums of integers can come back as decimals
        return int(value) if value.is_finite() and value == value.to_integral_value() else _plain(float(value))
    if value is None or isinstance(value, str):
        return value
    return str(value)


def record(values: Mapping[str, Any]) -> None:
    """Display ``values`` as JSON under :data:`RECORD_MIME` alone (the notebook's ``record`` cell); NaN
    becomes null. Tests read it (:func:`read_record`) to compare the notebook's numbers with the
    helpers'. No frontend has a renderer for that type, so the cell shows nothing in JupyterLab or
    the classic notebook (``application/json`` would draw a JSON tree under the conclusion), and the
    report runner leaves ``record`` cells out of the HTML."""
    from IPython.display import display

    display({RECORD_MIME: _plain(values)}, raw=True)


def read_record(nb: Any) -> dict[str, Any]:
    """The values an executed notebook's ``record`` cell displayed (``nb``: an nbformat notebook).

    Raises
    ------
    ValueError
        The notebook has no ``record`` cell with a record output (not executed, or it failed).
    """
    for cell in nb.cells:
        if "record" in cell.get("metadata", {}).get("tags", []):
            for out in cell.get("outputs", []):
                if RECORD_MIME in out.get("data", {}):
                    return dict(out["data"][RECORD_MIME])
    raise ValueError(f"no `record` output ({RECORD_MIME}) in the notebook: was it executed to the end?")
