"""How numbers look: one formatter for every page, table, tile, chart label and terminal line.

One implementation, reused for single values and whole columns (the great_tables pattern). The
unit of a number comes from the registry (:func:`kpi_helpers.registry.unit_of`), never from its
name, so a KPI is shown the same way everywhere.

Units (the registry's, plus two for presentation):

- ``count``: ``12,345``; ``money``: ``$12,345`` (``compact``: ``$12.3k``); ``money_small``: money
  with cents, ``$28.78``; ``percent``: a fraction shown as ``12.3%``; ``ratio``: ``2.85``;
  ``seconds``: ``1 min 27 s``;
- ``days``: ``3.2 days``; ``text``: as it is.

Missing values (None, NaN, infinity, :class:`~kpi_helpers.kpis.Undefined`) show ``n/a``: never 0,
never a dash without a word. Money carries the source's currency: a symbol where one is unambiguous
(``$``, ``€``, ``£``, ``¥``), else the code (``CHF 1,234``). The result is plain text: escape it for
where it goes (Markdown, HTML).

>>> format_value(1234567, "money", currency="USD"), format_value(1234567, "money", currency="USD", compact=True)
('$1,234,567', '$1.23M')
>>> format_value(0.1234, "percent"), format_value(87, "seconds"), format_value(None, "count")
('12.3%', '1 min 27 s', 'n/a')
>>> format_value(3.2, "ratio"), format_value(28.776, "money_small", currency="EUR")
('3.20', '€28.78')
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from typing import Any

#: every unit a number may have
UNITS = ("count", "money", "money_small", "percent", "ratio", "seconds", "days", "text")
NA = "n/a"
#: currencies with a symbol no other common currency shares
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


def is_missing(value: Any) -> bool:
    """None, NaN (an :class:`~kpi_helpers.kpis.Undefined` too), infinity, pandas' NA and NaT."""
    if value is None:
        return True
    # pandas only when it is loaded: the report runner and the pages it writes never import it
    pd = sys.modules.get("pandas")
    if pd is not None and (value is pd.NA or value is pd.NaT):
        return True
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return not math.isfinite(number)


def finite_number(value: Any) -> float | None:
    """``value`` as a finite float, or None: the one reading of a number from ``metrics.json`` or a
    computation. Booleans and text are not numbers; NaN, infinity and anything ``float()`` refuses
    (an :class:`~kpi_helpers.kpis.Undefined`, None) are None.

    >>> finite_number(3), finite_number("3"), finite_number(True), finite_number(float("nan")), finite_number(None)
    (3.0, None, None, None, None)
    """
    if isinstance(value, bool | str | bytes) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def money_prefix(currency: str) -> str:
    """``$`` for USD, ``€`` for EUR, else the code and a space (``CHF ``); empty without a currency."""
    code = (currency or "").strip().upper()
    return SYMBOLS.get(code, f"{code} " if code else "")


def compact_number(value: float) -> str:
    """``1.23M``, ``12.3k``, ``980``, ``1.5B``: three significant digits for tiles and chart labels.

    >>> compact_number(1_234_567), compact_number(12_345), compact_number(980), compact_number(-2_500)
    ('1.23M', '12.3k', '980', '-2.5k')
    """
    sign, size = ("-" if value < 0 else ""), abs(value)
    for threshold, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if size >= threshold:
            text = f"{size / threshold:.3g}"
            return f"{sign}{text}{suffix}"
    return f"{sign}{size:,.0f}"


def duration(seconds: float) -> str:
    """``1 min 27 s``, ``45 s``, ``2 h 03 min``.

    >>> duration(87), duration(45.4), duration(7380)
    ('1 min 27 s', '45 s', '2 h 03 min')
    """
    s = round(float(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def format_value(value: Any, unit: str = "count", *, currency: str = "", compact: bool = False, na: str = NA) -> str:
    """One number for people, by its ``unit`` (see the module docstring).

    ``compact`` shortens counts and money to three significant digits (``$1.23M``) for tiles and
    chart labels. Text passes through; a unit the kit does not know is an error (never a guess).
    """
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; expected one of {', '.join(UNITS)}")
    if unit == "text":
        return na if value is None else str(value)
    if is_missing(value):
        return na
    v = float(value)
    if unit == "percent":
        return f"{v:.1%}"
    if unit == "ratio":
        return f"{v:,.2f}"
    if unit == "seconds":
        return duration(v)
    if unit == "days":
        return f"{v:,.1f} days"
    if unit in ("money", "money_small"):
        prefix = money_prefix(currency)
        sign, size = ("-" if v < 0 else ""), abs(v)
        if compact and size >= 1e3:
            return f"{sign}{prefix}{compact_number(size)}"
        digits = 2 if unit == "money_small" else 0
        return f"{sign}{prefix}{size:,.{digits}f}"
    # count
    return compact_number(v) if compact and abs(v) >= 1e4 else f"{v:,.0f}"


def format_series(
    values: Iterable[Any], unit: str, *, currency: str = "", compact: bool = False, na: str = NA
) -> list[str]:
    """:func:`format_value` over a column (same rules, one implementation)."""
    return [format_value(v, unit, currency=currency, compact=compact, na=na) for v in values]


def format_change(current: Any, previous: Any, unit: str) -> str:
    """How a KPI moved: ``+5.7%`` (relative) for counts and money, ``+1.2 pts`` for percentages and
    ``+0.30`` for ratios; ``n/a`` when either side is missing or the previous value is 0.

    >>> format_change(105, 100, "count"), format_change(0.12, 0.108, "percent"), format_change(3.5, 3.2, "ratio")
    ('+5.0%', '+1.2 pts', '+0.30')
    """
    if is_missing(current) or is_missing(previous):
        return NA
    cur, prev = float(current), float(previous)
    if unit == "percent":
        return f"{(cur - prev) * 100:+.1f} pts"
    if unit == "ratio":
        return f"{cur - prev:+.2f}"
    if prev == 0:
        return NA
    return f"{cur / prev - 1:+.1%}"


def format_interval(
    value: Any, low: Any, high: Any, unit: str = "count", *, currency: str = "", compact: bool = False, na: str = NA
) -> str:
    """A number with its interval: ``342 (318-371)``, each bound formatted by ``unit`` like the number.

    The bounds are joined by ``-`` when neither is negative and by `` to `` otherwise (``-12.0% (-30.1%
    to 5.2%)``, never a minus sign read as a dash). Without an interval (a bound missing) the number
    alone; without a number, ``n/a``.

    >>> format_interval(342, 318.4, 371.2), format_interval(0.123, 0.101, 0.146, "percent")
    ('342 (318-371)', '12.3% (10.1%-14.6%)')
    >>> format_interval(-0.12, -0.301, 0.052, "percent"), format_interval(342, None, 371, "count")
    ('-12.0% (-30.1% to 5.2%)', '342')
    """
    text = format_value(value, unit, currency=currency, compact=compact, na=na)
    if is_missing(value) or is_missing(low) or is_missing(high) or unit == "text":
        return text
    lo = format_value(low, unit, currency=currency, compact=compact)
    hi = format_value(high, unit, currency=currency, compact=compact)
    joint = "-" if float(low) >= 0 and float(high) >= 0 else " to "
    return f"{text} ({lo}{joint}{hi})"
