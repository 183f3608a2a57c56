"""Settings from ``goals.yml``: fiscal calendar, currency, time zone, growth and CLV parameters, KPI targets.

Every key is optional; a data folder without ``goals.yml`` (or with an empty one) gets the
defaults. ``docs/goals.md`` lists every key with its type, default, range and meaning; its table
is :func:`key_table`, generated from the model below, so the two cannot drift.

.. code-block:: yaml

    fiscal_year_start_month: 1   # 1-12
    currency: USD                # ISO 4217 code
    timezone: Europe/Berlin      # IANA name; timestamps with an offset are converted to it
    growth_uplift: 0.05          # points added to the average YoY growth (0.05 = 5 points)
    growth_lookback_years: 3     # completed fiscal years averaged
    gross_margin: 0.7            # for customer lifetime value
    customer_lifetime_years: 3   # expected years a customer stays (1 / annual churn)
    kpis:
      - name: Leads per quarter
        metric: leads            # a metrics.json key (optional: a KPI may be tracked by hand)
        owner: Demand generation
        baseline: 2000           # a number, or year_ago / previous_quarter (that quarter's actual)
        target: 3000             # a number, or funnel (the reverse funnel's requirement)
        period: quarter          # quarter (every quarter), FY2026 or 2026Q3
        goal: revenue            # the goal it serves
        higher_is_better: true

The file is read strictly, because a setting read wrong gives a wrong number with exit 0: types
are not coerced (``"false"`` in quotes is text, not a boolean), unknown keys and metrics are
refused with the allowed ones listed, duplicate keys are refused with their lines, YAML anchors
and aliases are refused (no alias bomb can expand), and every problem found is reported at once
as one :class:`~kpi_helpers.exceptions.ConfigError` naming the file, the key path (``kpis[2].target``,
counting KPIs from 1) and its line, without ever echoing more than :data:`SHOWN_CHARS` characters
of a value.

A new setting is a field with a default on :class:`Settings` (or on a nested section, a pydantic
dataclass used as a field's type), with its meaning in ``Field(description=...)``; see
``docs/goals.md``.
"""

from __future__ import annotations

import codecs
import dataclasses
import datetime as dt
import difflib
import functools
import re
import stat
import typing
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, available_timezones

import annotated_types
import yaml
from pydantic import (
    AllowInfNan,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.dataclasses import dataclass, is_pydantic_dataclass
from pydantic_core import PydanticUndefined

from .exceptions import ConfigError
from .registry import metric_keys

BASELINE_WORDS = ("year_ago", "previous_quarter")
TARGET_WORDS = ("funnel",)
FUNNEL_METRICS = ("visits", "leads", "mqls", "sqls", "opportunities", "won_deals")

#: Largest goals file read, in bytes. A goals file is a few kilobytes; 128 KiB holds over a
#: thousand KPI targets and parses in under 2 s here, where a wrong file of megabytes would take minutes.
MAX_BYTES = 128 * 1024
#: Deepest nesting of mappings and lists accepted (goals.yml needs 3: top level, kpis, an item).
MAX_DEPTH = 12
#: Longest piece of a value an error message shows, in characters.
SHOWN_CHARS = 60
#: Largest target or baseline accepted (beyond it a value is a typo, and floats lose whole units).
MAX_AMOUNT = 1e18

# ROI = (revenue - cost) / cost is -1 at its lowest (cost, no revenue). Every other metric a target
# can name is a count, an amount, a duration or a rate, never below 0.
_METRIC_FLOOR = {"marketing_roi": -1.0}

# Names in the time-zone database that are not places: `localtime` follows the machine's own
# setting (a report would change with the machine), `posixrules` and `Factory` are technical.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})

_NOT_IN_FILE = ("source",)  # fields the kit sets itself


@dataclasses.dataclass(frozen=True)
class Doc:
    """How a key is written, for ``docs/goals.md`` and error messages, where its type alone cannot say.

    ``type`` describes the accepted values; ``range`` and ``default`` override the text derived
    from the field's constraints and default.
    """

    type: str
    range: str = ""
    default: str = ""


@dataclasses.dataclass(frozen=True)
class KeyDoc:
    """One row of the key table: ``key`` (a path such as ``kpis[].target``), type, default, range, meaning."""

    key: str
    type: str
    default: str
    range: str
    meaning: str


class _Rules(ValueError):
    """Cross-field rules of one KPI target broken: ``problems`` holds (field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(m for _, m in problems))
        self.problems = problems


# --- showing values in messages ---------------------------------------------------------------


def _cap(text: str) -> str:
    """``text`` cut to :data:`SHOWN_CHARS` characters (with its length when cut)."""
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[: SHOWN_CHARS - 1]}… ({len(text):,} characters)"


def _show(value: Any) -> str:
    """A short description of a value found in the file, never the whole of a long one.

    >>> _show("false")
    "the text 'false'"
    >>> _show("x" * 100)[:20], len(_show("x" * 100)) < 100
    ("the text 'xxxxxxxxxx", True)
    """
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {_cap(repr(value))}"
    if isinstance(value, str):
        return f"the text {_cap(repr(value))}"
    if isinstance(value, dt.date):
        return f"the date {value.isoformat()}"
    if isinstance(value, dict):
        return f"a mapping of {len(value)} key{'s' if len(value) != 1 else ''}"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    return f"a value of type {type(value).__name__}"


# Numbers as YAML 1.2 reads them: `1e6` and `1.5e6` are numbers (YAML 1.1 reads them as text) and
# `08` or `010` are decimal (YAML 1.1 reads `010` as octal 8 and `08` as text).
_INT12 = re.compile(r"[-+]?[0-9]+")
_FLOAT12 = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")


def _quoted_hint(value: Any) -> str:
    """Advice when a value is text that was meant as a number or a boolean, or the reverse."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("true", "false", "yes", "no", "on", "off"):
            return "; it is in quotes, so it is text: write true or false without quotes"
        if _INT12.fullmatch(word) or _FLOAT12.fullmatch(word):
            # Plain numbers are read as numbers (_scalar), so text that looks like one was quoted.
            return "; it is in quotes, so it is text: write the number without quotes"
    return ""


def _text_hint(value: Any) -> str:
    if isinstance(value, bool):
        return "; YAML reads yes/no/on/off/true/false as a boolean: put the text in quotes"
    if isinstance(value, int | float | dt.date):
        return "; put it in quotes to make it text"
    return ""


def _suggest(value: Any, choices: tuple[str, ...] | frozenset[str]) -> str:
    if not isinstance(value, str):
        return ""
    lower = {c.lower(): c for c in choices}
    close = [lower[value.strip().lower()]] if value.strip().lower() in lower else []
    close = close or difflib.get_close_matches(value.strip(), sorted(choices), n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _backticked(words: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"`{w}`" for w in words)


# --- value types --------------------------------------------------------------------------------

#: A whole number written without quotes (``7``, not ``"7"`` or ``7.0``).
Integer = Annotated[int, Strict()]
#: A finite number written without quotes (``0.05`` or ``3``; never ``"0.05"``, ``true`` or ``.nan``).
Number = Annotated[float, Strict(), AllowInfNan(False)]
#: ``true`` or ``false`` without quotes.
Flag = Annotated[bool, Strict()]
#: Text that is not empty (surrounding spaces removed).
Text = Annotated[str, Strict(), StringConstraints(strip_whitespace=True, min_length=1)]


def _number_or_word(value: Any, words: tuple[str, ...], *, empty_ok: bool) -> float | str | None:
    if value is None and empty_ok:
        return None
    if isinstance(value, str) and value.strip().lower() in words:
        return value.strip().lower()
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not (abs(value) <= MAX_AMOUNT):  # also false for NaN; an int too large for a float compares fine
            raise ValueError(f"expected a finite number up to {MAX_AMOUNT:g}, got {_show(value)}")
        return float(value)
    choices = [*(f"`{w}`" for w in words), "a number"] + (["nothing (no baseline)"] if empty_ok else [])
    raise ValueError(
        f"expected {', '.join(choices[:-1])} or {choices[-1]}, got {_show(value)}"
        + (_quoted_hint(value) or _suggest(value, words))
    )


def _baseline(value: Any) -> float | str | None:
    return _number_or_word(value, BASELINE_WORDS, empty_ok=True)


def _target(value: Any) -> float | str:
    return _number_or_word(value, TARGET_WORDS, empty_ok=False)  # type: ignore[return-value]


_PERIOD_FY = re.compile(r"FY([0-9]{4})", re.IGNORECASE)
_PERIOD_QUARTER = re.compile(r"(?:FY)?([0-9]{4})-?Q([1-4])", re.IGNORECASE)  # ASCII digits only


def _period(value: Any) -> str:
    """``quarter``, ``FY2026`` or ``2026Q3`` (``FY2026Q3`` and ``2026-q3`` are the same quarter)."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "quarter":
            return "quarter"
        if m := _PERIOD_FY.fullmatch(text):
            return f"FY{m[1]}"
        if m := _PERIOD_QUARTER.fullmatch(text):
            return f"{m[1]}Q{m[2]}"
    hint = ""
    if isinstance(value, int) and not isinstance(value, bool) and 1000 <= value <= 9999:
        hint = f"; for that fiscal year write `FY{value}`"
    raise ValueError(
        "expected `quarter` (every quarter), a fiscal year such as `FY2026`, or a quarter such as "
        f"`2026Q3` or `FY2026Q3` (Q1 to Q4); got {_show(value)}{hint}"
    )


@functools.cache
def allowed_metrics() -> tuple[str, ...]:
    """Every ``metric`` a KPI target may name: the registry's metric keys and :data:`FUNNEL_METRICS`.

    >>> "leads" in allowed_metrics() and "leadz" not in allowed_metrics()
    True
    """
    return tuple(dict.fromkeys((*metric_keys(), *FUNNEL_METRICS)))


def _metric(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip() in allowed_metrics():
        return value.strip()
    found = _cap(repr(value)) if isinstance(value, str) else _show(value)
    raise ValueError(
        f"unknown metric {found}{_suggest(value, allowed_metrics())}; a KPI target's metric is a `metrics.json` "
        f"key, one of: {', '.join(sorted(allowed_metrics()))} (docs/kpis.md); leave `metric` out for a KPI "
        "tracked by hand"
    )


_CURRENCY = re.compile(r"[A-Za-z]{3}")


def _currency(value: Any) -> str:
    if isinstance(value, str) and _CURRENCY.fullmatch(value.strip()):
        return value.strip().upper()
    raise ValueError(
        f"expected a three-letter ISO 4217 currency code such as USD or EUR, got {_show(value)}{_text_hint(value)}"
    )


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_ZONES


def _timezone(value: Any) -> str:
    if isinstance(value, str) and value.strip() in _zone_names():
        name = value.strip()
        try:
            ZoneInfo(name)  # a listed name loads; a damaged database fails here rather than mid-run
        except (KeyError, OSError, ValueError):
            raise ValueError(f"`{name}` is listed but cannot be loaded: the time-zone database is damaged") from None
        return name
    raise ValueError(
        f"expected an IANA time-zone name such as `UTC`, `Europe/Berlin` or `America/New_York`, "
        f"got {_show(value)}{_suggest(value, _zone_names())}"
    )


def _none_is_empty(value: Any) -> Any:
    return () if value is None else value


# --- the model ----------------------------------------------------------------------------------

_FLOOR_TEXT = ", ".join(f">= {floor:g} for `{m}`" for m, floor in sorted(_METRIC_FLOOR.items()))
_AMOUNT_RANGE = f">= 0 ({_FLOOR_TEXT}), <= {MAX_AMOUNT:g}"


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class KpiTarget:
    """One KPI target (an item of ``kpis:``): who owns which number, from what baseline to what target.

    Built from a file by :func:`load_settings`; built in code, invalid values raise pydantic's
    ``ValidationError`` (a ``ValueError``). ``period`` is kept in a canonical form: ``quarter``,
    ``FY2026`` or ``2026Q3`` (``FY2026Q3`` in a file means the same quarter as ``2026Q3``).

    Examples
    --------
    >>> t = KpiTarget(name="Leads", owner="Demand gen", baseline=2000, target=3000, period="fy2026q3", metric="leads")
    >>> t.baseline, t.period, t.applies_to("2026Q3", "FY2026"), t.applies_to("2026Q4", "FY2026")
    (2000.0, '2026Q3', True, False)
    """

    name: Annotated[Text, Field(description="what the KPI is called in the report")]
    owner: Annotated[Text, Field(description="the person or team answerable for it")]
    baseline: Annotated[
        float | str | None,
        PlainValidator(_baseline),
        Doc("`year_ago`, `previous_quarter`, a number, or empty", range=_AMOUNT_RANGE),
        Field(description="the value to improve on: a number, or the actual of the year-ago or previous quarter"),
    ]
    target: Annotated[
        float | str,
        PlainValidator(_target),
        Doc("`funnel` or a number", range=_AMOUNT_RANGE),
        Field(
            description="the value to reach: a number, or `funnel` (what the reverse funnel of the revenue "
            f"target requires; needs a funnel metric: {_backticked(FUNNEL_METRICS)})"
        ),
    ]
    period: Annotated[
        str,
        PlainValidator(_period),
        Doc("`quarter`, `FY2026`, `2026Q3` or `FY2026Q3`"),
        Field(description="when it applies: every quarter, one fiscal year, or one fiscal quarter"),
    ] = "quarter"
    metric: Annotated[
        str | None,
        PlainValidator(_metric),
        Doc("a metric key (docs/kpis.md)", default="none"),
        Field(
            description="the `metrics.json` key whose actual is compared with the target; "
            "leave out for a KPI tracked by hand"
        ),
    ] = None
    goal: Annotated[Text, Field(description="the goal it serves")] = "revenue"
    higher_is_better: Annotated[Flag, Field(description="false when lower is better (cost per lead)")] = True

    @model_validator(mode="after")
    def _check_rules(self) -> KpiTarget:
        problems: list[tuple[str, str]] = []
        floor = _METRIC_FLOOR.get(self.metric or "", 0.0)
        for key in ("baseline", "target"):
            value = getattr(self, key)
            if isinstance(value, float) and value < floor:
                what = f"`{self.metric}`" if self.metric else "a KPI target"
                problems.append((key, f"expected a number >= {floor:g} ({what} cannot be lower), got {_show(value)}"))
        if self.target == "funnel" and self.metric not in FUNNEL_METRICS:
            problems.append(
                (
                    "target",
                    f"`target: funnel` needs `metric` to be one of {_backticked(FUNNEL_METRICS)}, got "
                    f"{_show(self.metric)}; set such a metric or give the target as a number",
                )
            )
        if isinstance(self.baseline, str) and self.metric is None:
            problems.append(
                (
                    "baseline",
                    f"`baseline: {self.baseline}` needs a `metric` whose actual it reads; add `metric` "
                    "or give the baseline as a number",
                )
            )
        if problems:
            raise _Rules(problems)
        return self

    def applies_to(self, quarter_label: str, fiscal_year_label: str) -> bool:
        """Whether the target applies to a quarter (``2026Q3`` or ``FY2026Q3``) of a fiscal year (``FY2026``)."""
        if self.period == "quarter":
            return True
        if self.period.startswith("FY"):
            return self.period == fiscal_year_label.strip().upper()
        mine, theirs = _PERIOD_QUARTER.fullmatch(self.period), _PERIOD_QUARTER.fullmatch(quarter_label.strip())
        return bool(mine and theirs) and (mine[1], mine[2]) == (theirs[1], theirs[2])  # type: ignore[index]


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Settings:
    """Everything ``goals.yml`` sets; immutable (``dataclasses.replace`` makes a changed, re-validated copy).

    ``source`` is where the settings came from (the file, or ``defaults``); it is not a key of the
    file. ``timezone`` is an IANA name; :attr:`tzinfo` is its ``ZoneInfo``.

    Examples
    --------
    >>> s = Settings()
    >>> s.fiscal_year_start_month, s.currency, s.timezone, s.kpis
    (1, 'USD', 'UTC', ())
    >>> dataclasses.replace(s, growth_uplift=0.1).growth_uplift
    0.1
    """

    fiscal_year_start_month: Annotated[
        Integer,
        Field(ge=1, le=12, description="month the fiscal year starts (1 = January); FY names the year it ends in"),
    ] = 1
    currency: Annotated[
        str,
        PlainValidator(_currency),
        Doc("three-letter code (ISO 4217)"),
        Field(description="currency of every amount in the data"),
    ] = "USD"
    timezone: Annotated[
        str,
        PlainValidator(_timezone),
        Doc("IANA time-zone name"),
        Field(
            description="timestamps with an offset are converted to this zone before any date is taken "
            "(such as `Europe/Berlin`)"
        ),
    ] = "UTC"
    growth_uplift: Annotated[
        Number,
        Field(ge=-1, le=10, description="points added to the average YoY growth for the revenue target (0.05 = 5)"),
    ] = 0.05
    growth_lookback_years: Annotated[
        Integer, Field(ge=1, le=50, description="completed fiscal years whose growth is averaged")
    ] = 3
    gross_margin: Annotated[
        Number, Field(gt=0, le=1, description="gross margin used in customer lifetime value, a fraction")
    ] = 0.7
    customer_lifetime_years: Annotated[
        Number, Field(gt=0, le=100, description="expected years a customer stays (1 / annual churn)")
    ] = 3.0
    clv_model: Annotated[
        typing.Literal["auto", "bgnbd", "sbg"],
        Doc("`auto`, `bgnbd` or `sbg`"),
        Field(
            description="modelled CLV by channel: `sbg` (shifted beta-geometric) where deals are renewals, "
            "`bgnbd` (BG/NBD with Gamma-Gamma) for repeat purchases, `auto` chooses from `opportunities.type`"
        ),
    ] = "auto"
    clv_horizon_years: Annotated[
        Number, Field(gt=0, le=50, description="years of future gross profit the modelled CLV counts")
    ] = 3.0
    kpis: Annotated[
        tuple[KpiTarget, ...],
        BeforeValidator(_none_is_empty),
        Doc("list of KPI targets (keys below)", default="derived"),
        Field(
            description="KPI targets with owners; without them the report derives targets for the funnel "
            "counts from the reverse funnel of the quarter's revenue target"
        ),
    ] = ()
    source: Annotated[str, Strict()] = "defaults"

    @property
    def tzinfo(self) -> ZoneInfo:
        """The ``ZoneInfo`` of :attr:`timezone`, for converting timestamps that carry an offset."""
        return ZoneInfo(self.timezone)


_ADAPTER = TypeAdapter(Settings)


# --- the key table (docs/goals.md) ----------------------------------------------------------------

_TYPE_WORDS: dict[Any, str] = {int: "integer", float: "number", bool: "true or false", str: "text"}


def _doc(info: Any) -> Doc | None:
    return next((m for m in info.metadata if isinstance(m, Doc)), None)


def _range_text(info: Any) -> str:
    bounds: dict[str, float] = {}
    for m in info.metadata:
        for name in ("ge", "gt", "le", "lt"):
            if isinstance(m, getattr(annotated_types, name.capitalize())):
                bounds[name] = getattr(m, name)
    if "ge" in bounds and "le" in bounds:
        return f"{bounds['ge']:g} to {bounds['le']:g}"
    signs = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    return ", ".join(f"{signs[k]} {v:g}" for k, v in bounds.items())


def _default_text(info: Any) -> str:
    value = info.default
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _item_type(annotation: Any) -> Any:
    """The item dataclass of ``tuple[Item, ...]``, else None."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is tuple and args and is_pydantic_dataclass(args[0]):
        return args[0]
    return None


def key_reference(model: Any = Settings, prefix: str = "") -> tuple[KeyDoc, ...]:
    """Every key of a settings model, in order: nested sections as ``section.key``, list items as ``list[].key``.

    Examples
    --------
    >>> [k.key for k in key_reference()][:3]
    ['fiscal_year_start_month', 'currency', 'timezone']
    >>> ref = {k.key: k for k in key_reference()}
    >>> ref["gross_margin"].type, ref["gross_margin"].range, ref["kpis[].name"].default
    ('number', '> 0, <= 1', 'required')
    """
    rows: list[KeyDoc] = []
    for name, info in model.__pydantic_fields__.items():
        if model is Settings and name in _NOT_IN_FILE:
            continue
        key, doc, item = prefix + name, _doc(info), _item_type(info.annotation)
        section = info.annotation if is_pydantic_dataclass(info.annotation) else None
        kind = (doc.type if doc else "") or _TYPE_WORDS.get(info.annotation) or "section (keys below)"
        rows.append(
            KeyDoc(
                key=key,
                type=kind,
                default=(doc.default if doc else "") or ("see below" if section else _default_text(info)),
                range=(doc.range if doc else "") or _range_text(info),
                meaning=info.description or "",
            )
        )
        if item is not None:
            rows += key_reference(item, f"{key}[].")
        if section is not None:
            rows += key_reference(section, f"{key}.")
    return tuple(rows)


def key_table(model: Any = Settings) -> str:
    """The Markdown table of every key (the one in ``docs/goals.md``)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|") or "-"

    lines = ["| key | type | default | range | meaning |", "| --- | --- | --- | --- | --- |"]
    for k in key_reference(model):
        lines.append(f"| `{k.key}` | {cell(k.type)} | {cell(k.default)} | {cell(k.range)} | {cell(k.meaning)} |")
    return "\n".join(lines)


@functools.cache
def _reference() -> dict[str, KeyDoc]:
    return {k.key: k for k in key_reference()}


# --- reading the file ---------------------------------------------------------------------------

Loc = tuple[str | int, ...]


@dataclasses.dataclass
class _Problem:
    loc: Loc
    text: str
    line: int | None = None


class _Refused(Exception):
    """A YAML construct goals files do not accept, at a mark."""

    def __init__(self, mark: Any, text: str) -> None:
        super().__init__(text)
        self.mark, self.text = mark, text


class _GoalsLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing anchors and aliases and nesting deeper than :data:`MAX_DEPTH`.

    Refusing anchors outright (rather than capping expansions) makes an alias bomb fail at its
    first anchor, in constant time; a goals file has no need to repeat a value by reference.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(
                event.start_mark,
                "YAML anchors and aliases (`&name`, `*name`) are not accepted in a goals file; write each value out",
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(event.start_mark, f"nested deeper than {MAX_DEPTH} levels; a goals file needs 3")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _mark_text(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"


def _yaml_error(where: str, text: str, exc: yaml.YAMLError) -> ConfigError:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n") + 1
        return ConfigError(
            f"`{where}`, line {line}: the control character U+{exc.character:04X} is not allowed in YAML; "
            "remove it (or save the file as plain UTF-8 text)"
        )
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = _cap(str(getattr(exc, "problem", None) or "unreadable"))
    context = getattr(exc, "context", None)
    detail = f"{_cap(str(context))}: {problem}" if context else problem
    return ConfigError(
        f"`{where}`, {_mark_text(mark)}: not valid YAML ({detail}); check the indentation there and quote "
        "text that contains `: ` or starts with a special character"
    )


_INT_TAG, _FLOAT_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"


def _build(node: Any, loader: _GoalsLoader, loc: Loc, lines: dict[Loc, int], problems: list[_Problem]) -> Any:
    """Plain Python data from a composed node, recording each key's line and refusing duplicate keys."""
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                problems.append(_Problem(loc, "merge keys (`<<`) are not accepted; write the keys out", line))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(_Problem(loc, "a key must be a name, not a list or a mapping", line))
                continue
            key = key_node.value
            if key in first:
                earlier = "earlier on the same line" if first[key] == line else f"first on line {first[key]}"
                problems.append(
                    _Problem((*loc, key), f"key `{_cap(key)}` appears twice ({earlier}); keep one of them", line)
                )
                continue
            first[key] = lines[(*loc, key)] = line
            out[key] = _build(value_node, loader, (*loc, key), lines, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(child, loader, (*loc, i), lines, problems) for i, child in enumerate(node.value)]
    return _scalar(node, loader)


def _scalar(node: Any, loader: _GoalsLoader) -> Any:
    """A scalar's value; plain numbers read as YAML 1.2 reads them, anything unreadable kept as text."""
    text = node.value
    if node.style is None:
        if ":" in text and node.tag in (_INT_TAG, _FLOAT_TAG):
            return text  # YAML 1.1 base 60 (`1:30` = 90); text in YAML 1.2, refused where a number is meant
        if _INT12.fullmatch(text):
            return int(text) if len(text) <= 100 else float(text)  # int() refuses 4,300+ digits
        if _FLOAT12.fullmatch(text):
            return float(text)
    try:
        return loader.construct_object(node)
    except ValueError:
        return text  # such as the date 2026-13-01, which PyYAML's constructor cannot build


def _parse_yaml(text: str, where: str) -> tuple[Any, dict[Loc, int]]:
    """The document's data and the line of every key path; duplicate keys and anchors refused."""
    lines: dict[Loc, int] = {}
    problems: list[_Problem] = []
    try:
        loader = _GoalsLoader(text)  # checks every character first
        try:
            node = loader.get_single_node()
            data = None if node is None else _build(node, loader, (), lines, problems)
        finally:
            loader.dispose()
    except _Refused as exc:
        raise ConfigError(f"`{where}`, {_mark_text(exc.mark)}: {exc.text}") from None
    except yaml.YAMLError as exc:
        raise _yaml_error(where, text, exc) from None
    if problems:
        raise ConfigError(_message(where, problems, lines, {}))
    return data, lines


_BOMS = (
    # UTF-32 first: its little-endian mark begins with UTF-16's.
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)


def _decode(data: bytes, where: str) -> str:
    """Text of the file: UTF-8 (with or without a byte-order mark), or UTF-16/32 with a byte-order mark."""
    codec, name = next(((c, n) for bom, c, n in _BOMS if data.startswith(bom)), ("utf-8", "UTF-8"))
    if name == "UTF-8" and b"\x00" in data:
        raise ConfigError(
            f"`{where}` contains NUL bytes: it looks like UTF-16 or UTF-32 without a byte-order mark; save it as UTF-8"
        )
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        bad = data[exc.start : exc.start + 1].hex().upper()
        guess = " (perhaps Windows-1252 or Latin-1)" if name == "UTF-8" else ""
        raise ConfigError(
            f"`{where}`, line {line}: byte 0x{bad} cannot be read as {name}; the file is not {name}{guess}. "
            "Save it as UTF-8 (in most editors: Save as, encoding UTF-8)"
        ) from None


def _read_bytes(path: Path, where: str) -> bytes | None:
    """The file's bytes, or None when there is no file (defaults apply)."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        if path.is_symlink():
            raise ConfigError(f"`{where}` is a link to a file that does not exist; fix or remove the link") from None
        return None
    except OSError as exc:
        raise ConfigError(f"`{where}` cannot be read ({exc.strerror}); check its permissions") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"`{where}` is a folder, not a goals file; name the YAML file itself (such as goals.yml)")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"`{where}` is not a regular file (a device or a pipe); name a YAML file")
    if info.st_size > MAX_BYTES:
        raise ConfigError(
            f"`{where}` is {info.st_size:,} bytes; a goals file is at most {MAX_BYTES:,} bytes. Is it the right file?"
        )
    try:
        with path.open("rb") as f:
            return f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"`{where}` cannot be read ({exc.strerror}); check its permissions") from None


# --- turning validation errors into messages ------------------------------------------------------


def _path(loc: Loc) -> str:
    """``kpis[2].target`` for ``('kpis', 1, 'target')``: list items counted from 1, as people count."""
    out = ""
    for part in loc:
        out += f"[{part + 1}]" if isinstance(part, int) else ("." if out else "") + _cap(str(part))
    return out


def _doc_path(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += "[]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _children(parent: Loc) -> list[KeyDoc]:
    """The keys allowed directly under ``parent`` (the top level, a section or a list item)."""
    base = _doc_path(parent)
    prefix = f"{base}." if base else ""
    return [
        k for key, k in _reference().items() if key.startswith(prefix) and not re.search(r"[.\[]", key[len(prefix) :])
    ]


def _name(key: KeyDoc) -> str:
    return key.key.rsplit(".", 1)[-1]


_ARTICLES = {"integer": "an integer", "number": "a number", "text": "text", "true or false": "true or false"}


def _expected(loc: Loc) -> str:
    """What a key takes, from the key table: ``an integer from 1 to 12``."""
    doc = _reference().get(_doc_path(loc))
    if doc is None:  # a list item: say which keys it takes
        keys = _children(loc)
        required = ", ".join(_name(k) for k in keys if k.default == "required")
        optional = ", ".join(_name(k) for k in keys if k.default != "required")
        return f"a mapping with the keys {required} (and optionally {optional})"
    kind = _ARTICLES.get(doc.type, doc.type)
    return kind + (f" from {doc.range}" if " to " in doc.range else f" ({doc.range})" if doc.range else "")


_TYPE_ERRORS = {"int_type", "int_from_float", "float_type", "bool_type", "string_type", "finite_number"}


def _explain(err: Any) -> list[_Problem]:
    """User messages for one pydantic error (a broken KPI rule gives one per field); never pydantic's own text."""
    kind, loc, value = err["type"], tuple(err["loc"]), err.get("input")
    error = (err.get("ctx") or {}).get("error")
    if isinstance(error, _Rules):
        return [_Problem((*loc, field), text) for field, text in error.problems]
    if kind == "value_error" and isinstance(error, ValueError):
        return [_Problem(loc, str(error))]
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        allowed = [_name(k) for k in _children(loc[:-1])]
        guess = _suggest(str(loc[-1]), tuple(allowed))
        return [_Problem(loc, f"unknown key{guess}; allowed here: {', '.join(allowed)}; fix its spelling or remove it")]
    if kind in ("missing", "missing_argument"):
        return [_Problem(loc[:-1], f"missing `{loc[-1]}`")]
    if kind == "string_too_short":
        return [_Problem(loc, "expected text, got empty text; write it out or remove the key")]
    if kind == "string_type":
        hint = _text_hint(value)
    elif kind in _TYPE_ERRORS:
        hint = _quoted_hint(value)
    else:
        hint = ""
    return [_Problem(loc, f"expected {_expected(loc)}, got {_show(value)}{hint}")]


def _merge_missing(problems: list[_Problem]) -> list[_Problem]:
    """One problem per item for its missing keys: ``missing `owner`, `target` (name, owner, ... are required)``."""
    missing: dict[Loc, list[str]] = {}
    for p in problems:
        if p.text.startswith("missing `"):
            missing.setdefault(p.loc, []).append(p.text.removeprefix("missing "))
    out = [p for p in problems if not p.text.startswith("missing `")]
    for loc, keys in missing.items():
        required = [_name(k) for k in _children(loc) if k.default == "required"]
        out.append(_Problem(loc, f"missing {', '.join(keys)}; each of {', '.join(required)} is required here"))
    return out


def _line(loc: Loc, lines: dict[Loc, int]) -> int | None:
    """The line of ``loc``, or of its nearest enclosing key (a missing key has no line of its own)."""
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _kpi_label(loc: Loc, raw: Any) -> str:
    if len(loc) >= 2 and loc[0] == "kpis" and isinstance(loc[1], int) and isinstance(raw, dict):
        items = raw.get("kpis")
        if isinstance(items, list) and loc[1] < len(items) and isinstance(items[loc[1]], dict):
            name = items[loc[1]].get("name")
            if isinstance(name, str) and name.strip():
                return f"KPI {_cap(repr(name.strip()))}"
    return ""


def _message(where: str, problems: list[_Problem], lines: dict[Loc, int], raw: Any) -> str:
    """One message for every problem: the file, then each key path with its line and what to do."""
    items = []
    for p in problems:
        line = p.line if p.line is not None else _line(p.loc, lines)
        place = ", ".join(x for x in (f"line {line}" if line else "", _kpi_label(p.loc, raw)) if x)
        head = f"`{_path(p.loc)}`" if p.loc else "top level"
        items.append((line or 0, f"{head}{f' ({place})' if place else ''}: {p.text}"))
    items.sort(key=lambda t: t[0])
    if len(items) == 1:
        return f"`{where}`, {items[0][1]}"
    return f"`{where}`: {len(items)} problems\n" + "\n".join(f"  - {text}" for _, text in items)


# --- public entry points ------------------------------------------------------------------------


def parse_settings(data: bytes | str, *, source: str = "goals.yml") -> Settings:
    """Settings from the text (or bytes) of a goals file; ``source`` names it in messages and in the result.

    Raises :class:`~kpi_helpers.exceptions.ConfigError` (exit 2) listing every problem found.

    Examples
    --------
    >>> parse_settings("currency: eur\\ntimezone: Europe/Berlin\\n").currency
    'EUR'
    >>> parse_settings("").source
    'goals.yml'
    >>> parse_settings("higher_is_better: yes\\n")
    Traceback (most recent call last):
    ...
    kpi_helpers.exceptions.ConfigError: `goals.yml`, `higher_is_better` (line 1): unknown key; allowed here: ...
    """
    text = _decode(data, source) if isinstance(data, bytes) else data
    raw, lines = _parse_yaml(text.removeprefix("\ufeff"), source)
    if raw is None:
        return Settings(source=source)
    if not isinstance(raw, dict):
        raise ConfigError(
            f"`{source}`: expected `key: value` settings at the top level, found {_show(raw)}; see docs/goals.md"
        )
    problems = [
        _Problem((key,), _explain({"type": "extra_forbidden", "loc": (key,)})[0].text)
        for key in _NOT_IN_FILE
        if key in raw
    ]
    given = {k: v for k, v in raw.items() if k not in _NOT_IN_FILE}
    try:
        settings = _ADAPTER.validate_python({**given, "source": source})
    except ValidationError as exc:
        problems += _merge_missing([p for err in exc.errors() for p in _explain(err)])
    if problems:
        raise ConfigError(_message(source, problems, lines, raw))
    return settings


def load_settings(path: str | Path | None, *, required: bool = False) -> Settings:
    """Read a goals file (``goals.yml``); defaults when ``path`` is None, or when the file is missing
    and not ``required``.

    The file is UTF-8 (a byte-order mark is fine) or UTF-16/UTF-32 with a byte-order mark, at most
    :data:`MAX_BYTES` bytes. Raises :class:`~kpi_helpers.exceptions.ConfigError` (exit 2) for a file
    that cannot be read (permissions, a folder, undecodable bytes) or breaks a rule of
    ``docs/goals.md``, listing every problem at once.

    Examples
    --------
    >>> load_settings(None) == Settings()
    True
    """
    if path is None:
        return Settings()
    where = str(path)
    data = _read_bytes(Path(path), where)
    if data is None:
        if required:
            raise ConfigError(f"`{where}` does not exist; check the path (without a goals file the defaults apply)")
        return Settings()
    return parse_settings(data, source=where)
