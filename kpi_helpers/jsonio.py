"""JSON the kit writes: one converter to plain JSON types, one writer.

Used for ``metrics.json``, the report's manifests, the cache's entries and stamps and
``kpi summary --json``; :func:`plain` also gives the notebooks' ``record`` cells their JSON.

What :func:`plain` converts:

- NaN, infinities (an :class:`~kpi_helpers.kpis.Undefined` too), ``None``, pandas' ``NA`` and ``NaT``
  -> ``null``: a missing number stays missing, never 0;
- numpy scalars and arrays, pandas ``Series`` (a mapping), ``DataFrame`` (a list of records) and
  ``Index`` -> Python numbers, lists and mappings;
- ``Decimal`` (what SQL engines return for sums) -> ``int`` when whole, else ``float``;
- dates, times and timestamps -> ISO 8601 text (``2026-07-01``, ``2026-07-01T09:30:00``);
- ``Path`` -> text; sets -> sorted lists (a set's order changes from run to run); mapping keys -> text.

Anything else raises ``TypeError`` naming its type, unless ``default`` converts it (as in
:func:`json.dumps`). Mappings keep their order unless ``sort_keys`` is set: ``metrics.json``
follows the registry's order, the manifests and the cache's stamps are sorted. Text is written as
UTF-8, never ``\\u`` escaped; the output never holds ``NaN`` or ``Infinity``, which are not JSON.

>>> import numpy as np, pandas as pd
>>> from decimal import Decimal
>>> dumps({"rate": float("nan"), "n": np.int64(3), "amount": Decimal("12.50"), "day": pd.Timestamp("2026-07-01")},
...       indent=None)
'{"rate": null, "n": 3, "amount": 12.5, "day": "2026-07-01T00:00:00"}'
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import fileio

__all__ = ["dumps", "plain", "write_json"]


def plain(obj: Any, *, default: Callable[[Any], Any] | None = None, what: str = "JSON") -> Any:
    """``obj`` as plain JSON types (see the module docstring); ``what`` names the file in errors.

    >>> plain({"a": [1.5, float("inf")], 2: {"b", "a"}})
    {'a': [1.5, None], '2': ['a', 'b']}
    """
    if obj is None or type(obj) in (str, bool, int):
        return obj
    if isinstance(obj, str | int):  # subclasses: an IntEnum, numpy's str_
        return str(obj) if isinstance(obj, str) else int(obj)
    if isinstance(obj, float):  # also numpy's float64 and the kit's Undefined
        return float(obj) if math.isfinite(obj) else None
    if type(obj).__name__ in ("NAType", "NaTType"):  # pandas' missing markers, without importing pandas
        return None
    if isinstance(obj, Mapping):
        return {str(k): plain(v, default=default, what=what) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v, default=default, what=what) for v in obj]
    if isinstance(obj, set | frozenset):
        items = [plain(v, default=default, what=what) for v in obj]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            return None
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    if isinstance(obj, dt.date | dt.time):  # datetimes and pandas Timestamps too
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    return _library(obj, default, what)


def _library(obj: Any, default: Callable[[Any], Any] | None, what: str) -> Any:
    """numpy and pandas objects, recognised by their shape (neither is imported here)."""
    kind = getattr(getattr(obj, "dtype", None), "kind", None)
    if kind == "M" and hasattr(obj, "astype"):  # numpy datetime64: `tolist()` of [ns] gives integers
        obj = obj.astype("datetime64[us]")  # Python datetimes (NaT: None)
    if hasattr(obj, "columns") and hasattr(obj, "to_dict"):  # DataFrame
        return plain(obj.to_dict(orient="records"), default=default, what=what)
    if hasattr(obj, "to_dict"):  # Series
        return plain(obj.to_dict(), default=default, what=what)
    if kind is not None and hasattr(obj, "tolist"):  # numpy scalars and arrays, pandas Index
        return plain(obj.tolist(), default=default, what=what)
    if hasattr(obj, "isoformat"):  # pandas Timedelta and other ISO-printable values
        return obj.isoformat()
    if default is not None:
        return plain(default(obj), what=what)
    raise TypeError(f"`{what}`: cannot write a {type(obj).__name__} ({obj!r:.60}); use numbers and text")


def dumps(
    obj: Any,
    *,
    indent: int | None = 2,
    sort_keys: bool = False,
    compact: bool = False,
    default: Callable[[Any], Any] | None = None,
    what: str = "JSON",
) -> str:
    """``obj`` as JSON text (no trailing newline); ``compact`` leaves out every optional space.

    >>> dumps({"b": 1, "a": [1, 2]}, compact=True), dumps({"b": 1, "a": 2}, indent=None, sort_keys=True)
    ('{"b":1,"a":[1,2]}', '{"a": 2, "b": 1}')
    """
    return json.dumps(
        plain(obj, default=default, what=what),
        indent=None if compact else indent,
        separators=(",", ":") if compact else None,
        sort_keys=sort_keys,
        ensure_ascii=False,
        allow_nan=False,
    )


def write_json(
    path: str | Path,
    obj: Any,
    *,
    indent: int | None = 2,
    sort_keys: bool = False,
    mode: int | None = None,
    what: str | None = None,
) -> Path:
    """Write ``obj`` as JSON (with a final newline) to ``path`` atomically (:func:`fileio.write_atomic`).

    ``what`` names the file in a ``TypeError`` (default: its name); ``mode`` as in
    :func:`~kpi_helpers.fileio.write_atomic`. Returns ``path``.
    """
    path = Path(path)
    text = dumps(obj, indent=indent, sort_keys=sort_keys, what=what or path.name)
    fileio.write_atomic(path, text + "\n", mode=mode)
    return path
