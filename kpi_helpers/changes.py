"""Is a change real? Quarter-on-quarter and year-on-year changes judged against the KPI's own history.

A KPI moves every quarter; the question is whether this quarter's move is larger than the moves it
makes anyway once seasonality is taken out. For each KPI (values per quarter, oldest first):

- **quarter on quarter**: the log change :math:`c_t = \\log x_t - \\log x_{t-1}` less the same move a
  year before, :math:`d_t = c_t - c_{t-4}` (a Q4 that always rises is not news; a Q4 that rises more
  than last year's is);
- **year on year**: :math:`y_t = \\log x_t - \\log x_{t-4}`, seasonality removed by construction,
  against the year-on-year changes of earlier quarters.

The latest value is compared with the earlier values of the same statistic by a prediction test:
:math:`t = (v_T - \\bar v) / (s \\sqrt{1 + 1/n})` on :math:`n - 1` degrees of freedom (exact when the
history's variation is normal and stable). A KPI with a value <= 0 (ROI can be negative) is judged
on differences instead of logs. With many KPIs on a page some would look unusual by chance, so the
p-values of all KPIs and both comparisons are adjusted together (Benjamini-Hochberg,
:func:`bh_adjust`): a change is ``real`` when its adjusted p-value is below ``alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import KpiInputError

__all__ = [
    "ALPHA",
    "COMPARISONS",
    "MIN_HISTORY",
    "VERDICTS",
    "bh_adjust",
    "describe_change",
    "judge_changes",
    "verdict",
]

ALPHA = 0.1
MIN_HISTORY = 4
COMPARISONS = ("quarter_on_quarter", "year_on_year")
_LAG = {"quarter_on_quarter": 1, "year_on_year": 4}


#: how a judged change is said beside its own words ("down 5.7% on 2026Q2, within normal variation")
VERDICTS = {True: "beyond normal variation", False: "within normal variation"}


def verdict(metrics: Mapping[str, Any], key: str, comparison: str = "quarter_on_quarter") -> bool | None:
    """Whether ``metrics.json``'s ``changes`` block judged ``key``'s change ``comparison`` real
    (True), noise (False) or did not judge it (None: too little history, a partial quarter, an
    older kit's metrics without the block).

    >>> m = {"changes": {"kpis": {"leads": {"quarter_on_quarter": {"real": True}}}}}
    >>> verdict(m, "leads"), verdict(m, "leads", "year_on_year"), verdict({}, "leads")
    (True, None, None)
    """
    block = metrics.get("changes")
    kpis = block.get("kpis") if isinstance(block, Mapping) else None
    entry = kpis.get(key, {}).get(comparison, {}) if isinstance(kpis, Mapping) else {}
    real = entry.get("real") if isinstance(entry, Mapping) else None
    return real if isinstance(real, bool) else None


def describe_change(change: float | None, real: bool | None, *, relative: bool = True) -> str:
    """Words for a change: ``"down 5.7%, within normal variation"``.

    Examples
    --------
    >>> describe_change(-0.057, False)
    'down 5.7%, within normal variation'
    >>> describe_change(0.18, True)
    'up 18.0%, beyond normal variation'
    >>> describe_change(0.02, None)
    'up 2.0%, too little history to judge'
    >>> describe_change(-0.0004, False)
    'unchanged, within normal variation'
    """
    if change is None or not math.isfinite(change):
        return "no change to judge"
    size = f"{abs(change):.1%}" if relative else f"{abs(change):,.3g}"
    # a change that rounds to nothing is said as none ("down 0.0%" reads as a contradiction)
    way = "unchanged" if size.strip("0.%") == "" else ("up " if change > 0 else "down ") + size
    said = "too little history to judge" if real is None else VERDICTS[bool(real)]
    return f"{way}, {said}"


def _statistic(x: np.ndarray, comparison: str, log: bool) -> np.ndarray:
    v = np.log(x) if log else x
    if comparison == "year_on_year":
        out = np.full(len(v), np.nan)
        out[4:] = v[4:] - v[:-4]
        return out
    c = np.full(len(v), np.nan)
    c[1:] = v[1:] - v[:-1]
    d = np.full(len(v), np.nan)
    d[5:] = c[5:] - c[1:-4]
    return d


def _p_value(stat: np.ndarray, min_history: int) -> tuple[float | None, int]:
    """Two-sided prediction-test p-value of the last value against the earlier ones."""
    from scipy.special import stdtr  # the t distribution's CDF (scipy.stats takes seconds to import)

    last, past = stat[-1], stat[:-1]
    past = past[np.isfinite(past)]
    n = len(past)
    if not np.isfinite(last) or n < min_history:
        return None, n
    sd = float(np.std(past, ddof=1))
    if sd == 0:
        return (1.0 if last == past.mean() else 0.0), n
    t = (last - past.mean()) / (sd * math.sqrt(1 + 1 / n))
    return float(2 * stdtr(n - 1, -abs(t))), n


def bh_adjust(p_values: np.ndarray) -> np.ndarray:
    r"""Benjamini-Hochberg adjusted p-values: :math:`\tilde p_{(i)} = \min_{j \ge i} \min(1, m\, p_{(j)} / j)`
    for the :math:`m` p-values sorted ascending; rejecting where :math:`\tilde p < \alpha` holds the
    false-discovery rate at :math:`\alpha`. (statsmodels' ``multipletests(method="fdr_bh")`` gives the
    same; written out because importing statsmodels takes a report kernel seconds.)

    Examples
    --------
    >>> bh_adjust(np.array([0.01, 0.04, 0.03, 0.20])).round(4).tolist()
    [0.04, 0.0533, 0.0533, 0.2]
    """
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


def judge_changes(
    history: pd.DataFrame,
    *,
    alpha: float = ALPHA,
    comparisons: Iterable[str] = COMPARISONS,
    min_history: int = MIN_HISTORY,
) -> pd.DataFrame:
    """Judge the last quarter's changes of every KPI against their history (see the module docstring).

    Parameters
    ----------
    history : DataFrame
        One row per consecutive quarter, oldest first, the last being the quarter judged; one column
        per KPI. NaN (a quarter without data) leaves that statistic out of the history.
    alpha : float, default 0.1
        False-discovery rate over every KPI and comparison judged.
    min_history : int, default 4
        Fewest earlier values of the statistic needed to judge (fewer: not judged, ``real`` False).

    Returns
    -------
    DataFrame
        Indexed by ``(kpi, comparison)``: ``current``, ``reference`` (the quarter before, or a year
        before), ``change`` (relative, or a difference when ``scale`` is ``difference``), ``scale``,
        ``p_value``, ``p_adjusted``, ``history`` (earlier values used), ``real`` and ``words``.

    Examples
    --------
    Leads with a steady season and a normal year, then a quarter far below it:

    >>> leads = [100, 120, 110, 140, 104, 126, 113, 146, 108, 130, 117, 151, 111, 135, 121, 90]
    >>> out = judge_changes(pd.DataFrame({"leads": leads}))
    >>> out.loc[("leads", "year_on_year"), "words"]
    'down 40.4%, beyond normal variation'
    """
    if not 0 < alpha < 1:
        raise KpiInputError(f"`alpha` must be a fraction between 0 and 1, got {alpha!r}")
    comparisons = tuple(comparisons)
    unknown = set(comparisons) - set(COMPARISONS)
    if unknown:
        raise KpiInputError(f"unknown comparison(s) {sorted(unknown)}; expected {', '.join(COMPARISONS)}")
    rows = []
    for kpi in history.columns:
        x = pd.to_numeric(history[kpi], errors="coerce").to_numpy(dtype=float)
        log = bool(np.all(x[np.isfinite(x)] > 0))
        for comparison in comparisons:
            lag = _LAG[comparison]
            current = x[-1] if len(x) else math.nan
            reference = x[-1 - lag] if len(x) > lag else math.nan
            relative = current / reference - 1 if reference > 0 else math.nan
            change = relative if log else current - reference
            p, n = _p_value(_statistic(x, comparison, log), min_history)
            rows.append(
                {
                    "kpi": kpi,
                    "comparison": comparison,
                    "current": current,
                    "reference": reference,
                    "change": change,
                    "scale": "relative" if log else "difference",
                    "p_value": p,
                    "history": n,
                }
            )
    out = pd.DataFrame(rows).set_index(["kpi", "comparison"])
    judged = out["p_value"].notna()
    out["p_adjusted"] = np.nan
    out["real"] = False
    if judged.any():
        adjusted = bh_adjust(out.loc[judged, "p_value"].to_numpy(dtype=float))
        out.loc[judged, "p_adjusted"] = adjusted
        out.loc[judged, "real"] = adjusted < alpha
    out["words"] = [
        describe_change(c if math.isfinite(c) else None, bool(r) if j else None, relative=s == "relative")
        for c, r, j, s in zip(out["change"], out["real"], judged, out["scale"], strict=True)
    ]
    return out[["current", "reference", "change", "scale", "p_value", "p_adjusted", "history", "real", "words"]]
