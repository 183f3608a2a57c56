"""Each published render's ``metrics.json``, kept outside the quarter's folder, and what changed since.

The runner swaps a quarter's folder whole, so the metrics of earlier renders are kept apart::

    OUT/.history/<quarter>/<UTC time>/metrics.json     one folder per published render (``20261105T060012Z``)

A render is recorded only once its report is in place (:func:`record`), so a failed run leaves no
entry; the last :data:`KEEP` entries of a quarter are kept. Re-rendering a quarter compares its
metrics with the last render of that quarter (:func:`last_render`: the newest entry, else the
``metrics.json`` of the report in place, dated by its file) and writes ``changes.json`` into the new
report (:func:`changes`): every KPI of the registry whose value moved, with its value before and
after. Restated deals and late spend show up there.

The time of an entry is ``SOURCE_DATE_EPOCH`` when set (as the pages' "generated" time), else now:
the same data and ``SOURCE_DATE_EPOCH`` give the same entries, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import fileio, jsonio
from .formats import finite_number
from .planning import source_date_epoch

__all__ = ["HISTORY", "KEEP", "Render", "changed_kpis", "changes", "last_render", "record", "write_changes"]

#: the history's folder under ``OUT`` (hidden: never a quarter, never listed on the index)
HISTORY = ".history"
#: renders kept per quarter
KEEP = 40
_ENTRY = re.compile(r"^(\d{8}T\d{6}Z)(?:-(\d+))?$")
_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Render:
    """A published render of a quarter: when it was rendered (UTC) and its metrics."""

    when: dt.datetime
    metrics: Mapping[str, Any]

    @property
    def date(self) -> str:
        """The render's day, as the pages say it: ``2026-11-05``."""
        return self.when.strftime("%Y-%m-%d")


def render_time() -> dt.datetime:
    """Now in UTC, or ``SOURCE_DATE_EPOCH`` when set (reproducible runs)."""
    epoch = source_date_epoch()
    if epoch is not None:
        return dt.datetime.fromtimestamp(epoch, dt.UTC)
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _entries(folder: Path) -> list[tuple[tuple[str, int], Path]]:
    """The kit's entries of one quarter, oldest first (a suffix orders two renders of one second)."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _ENTRY.match(path.name)
        if match and path.is_dir() and not path.is_symlink():
            found.append(((match.group(1), int(match.group(2) or 0)), path))
    return sorted(found)


def _read(path: Path) -> Mapping[str, Any] | None:
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # damaged or half-written: an earlier render is compared with instead
    return metrics if isinstance(metrics, Mapping) else None


def last_render(out: Path, label: str) -> Render | None:
    """The last published render of ``label``: the newest readable history entry; else the report in
    place (an older kit kept no history), dated by its ``metrics.json``; None for a first render."""
    for (stamp, _), path in reversed(_entries(out / HISTORY / label)):
        metrics = _read(path / "metrics.json")
        if metrics is not None:
            return Render(dt.datetime.strptime(stamp, _STAMP).replace(tzinfo=dt.UTC), metrics)
    published = out / label / "metrics.json"
    metrics = _read(published)
    if metrics is None:
        return None
    when = dt.datetime.fromtimestamp(int(published.stat().st_mtime), dt.UTC)
    return Render(when, metrics)


def record(out: Path, label: str, metrics_file: Path, *, when: dt.datetime | None = None) -> Path:
    """Keep a copy of a published ``metrics.json`` as ``OUT/.history/<label>/<time>/metrics.json``.

    Prunes the quarter's entries beyond :data:`KEEP`, oldest first (only folders named as the kit
    names them). Returns the new entry's folder.
    """
    stamp = (when or render_time()).strftime(_STAMP)
    root = out / HISTORY / label
    root.mkdir(parents=True, exist_ok=True)
    for n in range(10_000):
        entry = root / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            entry.mkdir()
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - ten thousand renders in one second
        raise FileExistsError(f"`{root}`: no free entry for {stamp}")
    fileio.write_atomic(entry / "metrics.json", metrics_file.read_bytes())
    for _, old in _entries(root)[:-KEEP]:
        for child in old.iterdir():
            child.unlink()
        old.rmdir()
    return entry


def _same(before: float | None, after: float | None) -> bool:
    """Equal values, or both missing. Rounding noise (below one part in 10^9) is no change."""
    if before is None or after is None:
        return before is None and after is None
    return math.isclose(before, after, rel_tol=1e-9, abs_tol=1e-12)


def changed_kpis(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The registry's KPIs whose value differs between two ``metrics.json``, in the registry's order.

    Each: ``kpi`` (key), ``label``, ``unit``, ``before``, ``after`` and ``change`` (after - before; None
    when a side is missing: a KPI that became n/a, or computable, changed too). A KPI neither holds
    is not compared.

    >>> changed_kpis({"leads": 10, "won_deals": 3, "revenue": None}, {"leads": 10, "won_deals": 4, "revenue": 5.0})
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'kpi': 'revenue', 'label': 'Revenue', 'unit': 'money', 'before': None, 'after': 5.0, 'change': None},
     {'kpi': 'won_deals', 'label': 'Won deals', 'unit': 'count', 'before': 3.0, 'after': 4.0, 'change': 1.0}]
    """
    from .registry import KPIS

    out = []
    for key, kpi in KPIS.items():
        if key not in before and key not in after:
            continue
        old, new = finite_number(before.get(key)), finite_number(after.get(key))
        if _same(old, new):
            continue
        change = None if old is None or new is None else new - old
        out.append({"kpi": key, "label": kpi.label, "unit": kpi.unit, "before": old, "after": new, "change": change})
    return out


def changes(label: str, previous: Render | None, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``changes.json``: the KPIs whose value changed since the last render of the quarter.

    ``since`` is that render's time (ISO, UTC; None for a first render), ``data_fingerprint`` the
    data's fingerprint then and now, ``changes`` the list of :func:`changed_kpis` (empty for a first
    render and for a re-render of the same data).
    """
    return {
        "quarter": label,
        "since": None if previous is None else previous.when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data_fingerprint": {
            "before": None if previous is None else previous.metrics.get("data_fingerprint"),
            "after": metrics.get("data_fingerprint"),
        },
        "changes": [] if previous is None else changed_kpis(previous.metrics, metrics),
    }


def write_changes(path: Path, doc: Mapping[str, Any]) -> Path:
    """Write ``changes.json`` (atomically; NaN -> null)."""
    return jsonio.write_json(path, doc, what="changes.json")
