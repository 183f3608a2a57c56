"""Intervals for KPIs: how sure each number is.

- **Proportions of a subset** (lead → MQL, MQL → SQL, opportunity → won, bounce rate): binomial
  intervals, Wilson by default or Jeffreys (:func:`proportion_interval`, through statsmodels'
  ``proportion_confint``).
- **Everything else** (visit-to-lead, goal completions per session, cost per lead, CAC, ROI, value
  per lead, attribution credit per channel): a Poisson bootstrap on aggregates. Resampling ``n``
  units (leads, deals, journeys, days) with replacement is, for large ``n``, the same as giving each
  unit an independent Poisson(1) weight; a unit that stands for ``c`` identical ones (a conversion
  path seen ``c`` times, a day's leads) gets a Poisson(``c``) weight. Each resample is then one
  matrix product of weights and aggregates, never a refit of pandas frames; ``draws`` resamples
  (seeded) give a percentile interval.

Every function returns ``(low, high)`` at ``level`` (90% by default); :func:`interval_entries` turns
one into ``{<kpi>_low, <kpi>_high}`` for ``metrics.json``. A KPI whose denominator is zero has no
interval: ``(nan, nan)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import KpiInputError

__all__ = [
    "DRAWS",
    "LEVEL",
    "amount_per_unit_interval",
    "clv_to_cac_interval",
    "cost_per_unit_interval",
    "count_ratio_interval",
    "credit_intervals",
    "interval_entries",
    "proportion_entries",
    "proportion_interval",
    "ratio_interval",
    "roi_interval",
    "value_per_lead_interval",
    "weighted_sums",
]

LEVEL = 0.9
DRAWS = 4000
#: weights drawn per block: bounds memory to about 16 MB of weights whatever the number of units
_BLOCK = 2_000_000
NAN_PAIR = (math.nan, math.nan)


def _check_level(level: float) -> float:
    if not 0 < level < 1:
        raise KpiInputError(f"`level` must be a fraction between 0 and 1 (0.9 for 90%), got {level!r}")
    return float(level)


def proportion_interval(
    successes: float, trials: float, *, level: float = LEVEL, method: str = "wilson"
) -> tuple[float, float]:
    r"""Binomial interval for a proportion ``successes / trials`` (Wilson score or Jeffreys).

    .. math::

        \frac{\hat p + \frac{z^2}{2n}
        \pm z \sqrt{\frac{\hat p (1 - \hat p)}{n} + \frac{z^2}{4n^2}}}{1 + \frac{z^2}{n}}

    (Wilson, :math:`z` the normal quantile of ``(1 + level) / 2``); Jeffreys takes the Beta(0.5, 0.5)
    posterior's quantiles (statsmodels' ``proportion_confint``). The Wilson closed form is written out
    (and tested against statsmodels): a report's every kernel computes it, and importing statsmodels
    for it would add seconds to each.

    Parameters
    ----------
    successes, trials : float
        Counts, ``0 <= successes <= trials``.
    level : float, default 0.9
        Coverage of the interval.
    method : {"wilson", "jeffreys"}

    Returns
    -------
    tuple of float
        ``(low, high)`` as fractions; ``(nan, nan)`` when ``trials`` is 0.

    Raises
    ------
    KpiInputError
        Negative counts, more successes than trials, an unknown method or a level outside (0, 1).

    Examples
    --------
    30 of 100 at 95%: the Wilson interval of the textbooks.

    >>> tuple(round(x, 4) for x in proportion_interval(30, 100, level=0.95))
    (0.2189, 0.3958)
    >>> proportion_interval(0, 0)
    (nan, nan)
    """
    level = _check_level(level)
    if method not in ("wilson", "jeffreys"):
        raise KpiInputError(f"`method` must be `wilson` or `jeffreys`, got {method!r}")
    if not (0 <= successes <= trials):
        raise KpiInputError(
            f"proportion interval: successes must be between 0 and trials; got {successes!r} of {trials!r}"
        )
    if trials == 0:
        return NAN_PAIR
    if method == "wilson":
        z = NormalDist().inv_cdf((1 + level) / 2)
        n, p = float(trials), float(successes) / float(trials)
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(centre - half, 0.0), min(centre + half, 1.0)
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(successes, trials, alpha=1 - level, method=method)
    return float(low), float(high)


def weighted_sums(
    values: np.ndarray, *, counts: np.ndarray | None = None, draws: int = DRAWS, seed: int = 0
) -> np.ndarray:
    """Poisson-bootstrap resamples of column sums: ``draws x k`` sums of ``values`` (``n x k``).

    Row ``i`` stands for ``counts[i]`` identical units (1 each by default) and gets a Poisson weight
    with that mean in every resample.

    Examples
    --------
    >>> sums = weighted_sums(np.array([[1.0], [1.0]]), counts=np.array([50, 50]), draws=2000)
    >>> sums.shape, bool(90 < sums.mean() < 110)
    ((2000, 1), True)
    """
    v = np.asarray(values, dtype=float)
    v = v.reshape(-1, 1) if v.ndim == 1 else v
    n = v.shape[0]
    c = np.ones(n) if counts is None else np.asarray(counts, dtype=float)
    if c.shape != (n,) or (c < 0).any():
        raise KpiInputError(f"`counts` must hold one count >= 0 per row of `values` ({n}); got shape {c.shape}")
    rng = np.random.default_rng(seed)
    out = np.empty((draws, v.shape[1]))
    step = max(1, _BLOCK // max(n, 1))
    for a in range(0, draws, step):
        b = min(draws, a + step)
        out[a:b] = rng.poisson(c, size=(b - a, n)) @ v
    return out


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    ok = samples[np.isfinite(samples)]
    if len(ok) < len(samples) * 0.5:
        return NAN_PAIR
    alpha = (1 - level) / 2
    low, high = np.quantile(ok, (alpha, 1 - alpha))
    return float(low), float(high)


def ratio_interval(
    numerator: Any, denominator: Any, *, level: float = LEVEL, draws: int = DRAWS, seed: int = 0
) -> tuple[float, float]:
    r"""Bootstrap interval of a ratio of totals, :math:`\sum_i x_i / \sum_i y_i`, resampling units.

    For ratios that are not proportions of a subset: visits per lead or its inverse (units: days,
    with each day's visits and leads), goal completions per session (days).

    Parameters
    ----------
    numerator, denominator : array-like
        Per unit (e.g. per day), the same length.

    Returns
    -------
    tuple of float
        ``(low, high)``; ``(nan, nan)`` when the denominator's total is 0.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> visits = rng.poisson(400, 90); leads = rng.binomial(visits, 0.025)
    >>> low, high = ratio_interval(leads, visits)
    >>> bool(low < leads.sum() / visits.sum() < high)
    True
    """
    x, y = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise KpiInputError(f"`numerator` and `denominator` must be 1-d and the same length; got {x.shape}, {y.shape}")
    level = _check_level(level)
    if y.sum() == 0:
        return NAN_PAIR
    sums = weighted_sums(np.column_stack([x, y]), draws=draws, seed=seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _percentiles(sums[:, 0] / sums[:, 1], level)


def cost_per_unit_interval(
    cost: float, units: float, *, level: float = LEVEL, draws: int = DRAWS, seed: int = 0
) -> tuple[float, float]:
    r"""Interval of cost per lead (or CAC: cost per new customer) resampling the leads (customers).

    The cost is fixed; a resample of ``units`` leads has Poisson(``units``) of them, so the draws are
    :math:`C / N^*`, :math:`N^* \sim \text{Poisson}(n)` (a resample without any has no value).

    Examples
    --------
    >>> low, high = cost_per_unit_interval(32_500, 100)
    >>> round(low), round(high)
    (280, 392)
    >>> cost_per_unit_interval(1000, 0)
    (nan, nan)
    """
    level = _check_level(level)
    if units < 0 or cost < 0:
        raise KpiInputError(f"cost and units must be >= 0; got cost {cost!r}, units {units!r}")
    if units == 0:
        return NAN_PAIR
    n = np.random.default_rng(seed).poisson(units, size=draws).astype(float)
    with np.errstate(divide="ignore"):
        return _percentiles(np.where(n > 0, cost / np.where(n > 0, n, 1), np.nan), level)


def roi_interval(
    revenue_per_deal: Any, cost: float, *, level: float = LEVEL, draws: int = DRAWS, seed: int = 0
) -> tuple[float, float]:
    r"""Interval of marketing ROI :math:`(\sum_i r_i - C) / C`, resampling the deals (cost fixed).

    ``revenue_per_deal``: the (attributed) revenue of each won deal; a channel's ROI takes the credit
    its deals gave it.

    Examples
    --------
    >>> low, high = roi_interval(np.full(40, 5_000.0), 100_000)
    >>> bool(low < 1.0 < high)
    True
    """
    level = _check_level(level)
    if cost <= 0:
        return NAN_PAIR
    r = np.sort(np.asarray(revenue_per_deal, dtype=float))  # the same draws whatever the rows' order
    total = weighted_sums(r, draws=draws, seed=seed)[:, 0] if len(r) else np.zeros(draws)
    return _percentiles((total - cost) / cost, level)


def value_per_lead_interval(
    revenue_per_converting_lead: Any, leads: int, *, level: float = LEVEL, draws: int = DRAWS, seed: int = 0
) -> tuple[float, float]:
    r"""Interval of value per lead :math:`\sum_i r_i / n`, resampling the ``leads`` leads.

    Only the ``k`` leads with revenue carry values; the ``n - k`` others enter as one aggregate row
    (Poisson(``n - k``) of them per resample), so the cost does not grow with the leads.

    Examples
    --------
    >>> low, high = value_per_lead_interval(np.full(20, 10_000.0), 1000)
    >>> bool(low < 200 < high)
    True
    """
    level = _check_level(level)
    r = np.sort(np.asarray(revenue_per_converting_lead, dtype=float))
    if leads < len(r):
        raise KpiInputError(f"`leads` ({leads}) is below the number of converting leads given ({len(r)})")
    if leads == 0:
        return NAN_PAIR
    rows = np.column_stack([np.append(r, 0.0), np.ones(len(r) + 1)])
    sums = weighted_sums(rows, counts=np.append(np.ones(len(r)), leads - len(r)), draws=draws, seed=seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _percentiles(sums[:, 0] / sums[:, 1], level)


def amount_per_unit_interval(
    amounts: Any, units: float, *, level: float = LEVEL, draws: int = DRAWS, seed: int = 0
) -> tuple[float, float]:
    r"""Interval of :math:`\sum_i a_i / n` when the amounts and the ``units`` are counted apart.

    Value per lead is the lead revenue of the deals won in the quarter over the leads *created* in it:
    the deals mostly come from earlier leads, so deals and leads are resampled independently (each deal
    a Poisson(1) weight, the leads Poisson(``units``)): :math:`\sum_i w_i a_i / N^*`. The same gives
    value per visit (units: visits) and the lead-to-customer rate (amounts all 1: won deals from leads
    over leads). A resample without any unit has no value.

    Returns
    -------
    tuple of float
        ``(low, high)``; ``(nan, nan)`` without units.

    Examples
    --------
    40 deals of 5,000 over 1,000 leads: 200 a lead. By hand, the relative standard error is
    :math:`\sqrt{1/40 + 1/1000} = 16.1\%`, so the 90% interval is about 200 x (1 -+ 1.645 x 0.161),
    147 to 253 (the bootstrap's is a little skewed, as a ratio's is):

    >>> low, high = amount_per_unit_interval(np.full(40, 5_000.0), 1000)
    >>> round(low), round(high)
    (148, 255)
    >>> amount_per_unit_interval([1.0], 0)
    (nan, nan)
    """
    level = _check_level(level)
    a = np.sort(np.asarray(amounts, dtype=float))  # sorted: the same draws whatever the engine's row order
    if units < 0:
        raise KpiInputError(f"`units` must be >= 0; got {units!r}")
    if units == 0:
        return NAN_PAIR
    total = weighted_sums(a, draws=draws, seed=seed)[:, 0] if len(a) else np.zeros(draws)
    n = np.random.default_rng([seed, 1]).poisson(units, size=draws).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _percentiles(np.where(n > 0, total / np.where(n > 0, n, 1), np.nan), level)


def count_ratio_interval(
    numerator: float, denominator: float, *, level: float = LEVEL, draws: int = DRAWS, seed: int = 0
) -> tuple[float, float]:
    r"""Interval of a ratio of two counts counted apart, :math:`K^* / N^*` with
    :math:`K^* \sim \text{Poisson}(k)` and :math:`N^* \sim \text{Poisson}(n)` independent.

    For rates whose numerator is no subset of the denominator: the lead-to-customer rate (won deals of
    the quarter, mostly from earlier leads, over the quarter's leads), goal completions per session of a
    goal or landing page (a session can complete several). :func:`amount_per_unit_interval` with
    amounts of 1 is the same, at a cost that grows with the count; this one does not.

    Examples
    --------
    40 won deals over 1,000 leads: 4.0%, relative standard error :math:`\sqrt{1/40 + 1/1000} = 16.1\%`.

    >>> low, high = count_ratio_interval(40, 1000)
    >>> round(low, 4), round(high, 4)
    (0.0293, 0.0509)
    >>> count_ratio_interval(3, 0)
    (nan, nan)
    """
    level = _check_level(level)
    if numerator < 0 or denominator < 0:
        raise KpiInputError(f"counts must be >= 0; got {numerator!r} and {denominator!r}")
    if denominator == 0:
        return NAN_PAIR
    rng = np.random.default_rng(seed)
    k = rng.poisson(numerator, size=draws).astype(float)
    n = rng.poisson(denominator, size=draws).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _percentiles(np.where(n > 0, k / np.where(n > 0, n, 1), np.nan), level)


def clv_to_cac_interval(
    revenue_per_customer: Any,
    *,
    customers: Any = None,
    factor: float,
    cost: float,
    new_customers: float,
    level: float = LEVEL,
    draws: int = DRAWS,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    r"""Intervals of average yearly revenue per customer, CLV and CLV:CAC, resampling the customers.

    Revenue per customer :math:`\bar r = \sum_a r_a / A` over the accounts with revenue in the year
    (each account a Poisson(1) weight; with ``customers``, row ``i`` is a group of ``customers[i]``
    accounts summed, resampled as one cluster); CLV :math:`= \bar r \times` ``factor`` (gross margin x
    lifetime in years); CLV:CAC :math:`= \text{CLV} / (C / N^*)` with the new customers behind CAC
    resampled apart, :math:`N^* \sim \text{Poisson}(n)`, the cost :math:`C` fixed.

    Returns
    -------
    dict
        ``{"average_yearly_revenue_per_customer": (low, high), "clv": ..., "clv_to_cac": ...}``;
        ``(nan, nan)`` where the inputs do not give it (no account, no cost or no new customer).

    Examples
    --------
    >>> out = clv_to_cac_interval(np.full(200, 10_000.0), factor=3.0, cost=100_000.0, new_customers=40)
    >>> out["clv"]
    (30000.0, 30000.0)
    >>> low, high = out["clv_to_cac"]
    >>> bool(low < 12.0 < high)
    True
    """
    level = _check_level(level)
    r = np.asarray(revenue_per_customer, dtype=float)
    c = np.ones(len(r)) if customers is None else np.asarray(customers, dtype=float)
    if c.shape != r.shape:
        raise KpiInputError(f"`customers` must hold one count per row of revenue ({len(r)}); got shape {c.shape}")
    rows = np.column_stack([r, c])
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]  # the same draws whatever the rows' order
    names = ("average_yearly_revenue_per_customer", "clv", "clv_to_cac")
    if not len(r):
        return dict.fromkeys(names, NAN_PAIR)
    sums = weighted_sums(rows, draws=draws, seed=seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        arpc = np.where(sums[:, 1] > 0, sums[:, 0] / np.where(sums[:, 1] > 0, sums[:, 1], 1), np.nan)
    out = {names[0]: _percentiles(arpc, level), names[1]: _percentiles(arpc * factor, level)}
    if cost > 0 and new_customers > 0:
        n = np.random.default_rng([seed, 1]).poisson(new_customers, size=draws).astype(float)
        cac = np.where(n > 0, cost / np.where(n > 0, n, 1), np.nan)
        out[names[2]] = _percentiles(arpc * factor / cac, level)
    else:
        out[names[2]] = NAN_PAIR
    return out


def credit_intervals(
    credit: pd.DataFrame,
    *,
    counts: Any = None,
    level: float = LEVEL,
    draws: int = DRAWS,
    seed: int = 0,
) -> pd.DataFrame:
    """Interval of each channel's attributed credit, resampling the journeys.

    Parameters
    ----------
    credit : DataFrame
        One row per journey (or per distinct path), one column per channel: the credit the model gave
        that channel from that journey (revenue or conversions).
    counts : array-like, optional
        Journeys each row stands for (a path seen ``c`` times); 1 each by default.

    Returns
    -------
    DataFrame
        Indexed by channel: ``credit`` (the total), ``low``, ``high``.

    Notes
    -----
    Rule-based models (first/last touch, linear, time decay, position-based, W-shaped) credit each
    journey on its own, so this is their exact bootstrap; for Markov and Shapley, whose credit depends
    on all journeys, it holds each journey's credit fixed (the model is not refitted per resample).

    Examples
    --------
    >>> c = pd.DataFrame({"Email": [100.0, 0.0] * 50, "Search": [0.0, 100.0] * 50})
    >>> out = credit_intervals(c)
    >>> out["credit"].tolist(), bool((out["low"] < 5000).all() and (out["high"] > 5000).all())
    ([5000.0, 5000.0], True)
    """
    level = _check_level(level)
    values = credit.to_numpy(dtype=float)
    c = None if counts is None else np.asarray(counts, dtype=float)
    sums = weighted_sums(values, counts=c, draws=draws, seed=seed)
    alpha = (1 - level) / 2
    low, high = np.quantile(sums, (alpha, 1 - alpha), axis=0)
    total = values.T @ (np.ones(len(values)) if c is None else c)
    return pd.DataFrame({"credit": total, "low": low, "high": high}, index=pd.Index(credit.columns, name="channel"))


def interval_entries(kpi: str, interval: tuple[float, float] | None) -> dict[str, float | None]:
    """``{<kpi>_low, <kpi>_high}`` for ``metrics.json`` (None where there is no interval).

    Examples
    --------
    >>> interval_entries("lead_to_mql_rate", (0.21, 0.39))
    {'lead_to_mql_rate_low': 0.21, 'lead_to_mql_rate_high': 0.39}
    >>> interval_entries("cac", (float("nan"), float("nan")))
    {'cac_low': None, 'cac_high': None}
    """
    low, high = interval if interval is not None else NAN_PAIR

    def clean(x: float) -> float | None:
        return None if x is None or not math.isfinite(float(x)) else float(x)

    return {f"{kpi}_low": clean(low), f"{kpi}_high": clean(high)}


def proportion_entries(
    counts: Mapping[str, tuple[float, float]], *, level: float = LEVEL, method: str = "wilson"
) -> dict[str, float | None]:
    """:func:`interval_entries` for several proportions at once: ``{kpi: (successes, trials)}``.

    Examples
    --------
    >>> proportion_entries({"win_rate": (0, 0)})
    {'win_rate_low': None, 'win_rate_high': None}
    """
    out: dict[str, float | None] = {}
    for kpi, (k, n) in counts.items():
        out.update(interval_entries(kpi, proportion_interval(k, n, level=level, method=method)))
    return out
