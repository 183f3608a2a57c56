r"""What marketing caused: incremental leads (or pipeline) and revenue per channel from a marketing mix model.

Attribution (:mod:`kpi_helpers.attribution`) splits the revenue of deals that marketing touched; it
cannot say what would have happened without the spend. A marketing mix model estimates each channel's
**incremental** contribution from how the weekly target moved with its weekly activity cost. This module
fits PyMC-Marketing's MMM (its own adstock, saturation, NUTS sampler through nutpie, lift-test
calibration and budget optimiser) to the weekly data of :mod:`kpi_helpers.mmm_data` and reports, per
channel, with 90% intervals (the 5th and 95th percentiles of the posterior):

**The model** (weeks :math:`t`, channels :math:`c`, target :math:`y` in leads or pipeline a week):

.. math::

    y_t = \text{intercept} + \gamma_{\text{trend}} \frac{t}{T} + \gamma_{\text{holiday}} h_t
        + \text{seasonality}_t + \sum_c \beta_c\, L\!\left(\lambda_c\, a_{c,t}\right) + \varepsilon_t,
    \qquad a_{c,t} = \frac{\sum_{l=0}^{l_{\max}-1} \alpha_c^l\, s_{c,t-l}}{\sum_{l} \alpha_c^l},
    \qquad L(z) = \frac{1 - e^{-z}}{1 + e^{-z}}

with :math:`s_{c,t}` the activity cost (``GeometricAdstock(l_max, normalize=True)`` and
``LogisticSaturation``), yearly seasonality as Fourier terms, a linear trend, the share :math:`h_t` of
the week's days between 24 December and 1 January (the year-end lull every B2B market has), and normal
noise, on PyMC-Marketing's default max scaling of target and spend. Priors are PyMC-Marketing's defaults
except the saturation's: :math:`\lambda_c` puts half saturation near the channel's typical carried-over
weekly spend (:func:`lam_prior`, as Google's MMM, Jin et al. 2017, and Meridian centre theirs), and
:math:`\beta_c` follows the channel's share of spend (:func:`beta_prior`, PyMC-Marketing's spend-share
prior).

**The window** holds ``weeks`` weeks (:mod:`kpi_helpers.mmm_data`). The model is fitted to all but the last
``holdout_weeks``, which it predicts (holdout error); the estimates below cover the whole window, the
held-out weeks through the fitted parameters and the weeks' actual spend.

**Per channel** (each posterior draw, then its median and 90% interval):

- ``incremental`` (target units): :math:`I_c = \sum_t \beta_c L(\lambda_c a_{c,t})` over the window,
  the target the channel's spend in the window caused (spend before the window is not in the data);
- ``incremental_per_cost`` (target units per currency unit): :math:`I_c / C_c`, :math:`C_c` the channel's
  activity cost in the window;
- ``contribution_share`` (0-1): :math:`I_c / \sum_k I_k` (the medians need not sum to 1);
- ``incremental_roi`` (currency per currency): :math:`I_c v_c / C_c`, revenue through the funnel per unit
  of activity cost, :math:`v_c` the channel's revenue per target unit in the window
  (:func:`kpi_helpers.mmm_data.funnel_values`: new-business revenue won in the window from the channel's
  leads over its leads, or over its pipeline, created in the window), drawn with its sampling error
  (Jeffreys gamma on the won deals per unit, normal on their average amount);
- ``attribution_roi_activity_cost``: the kit's attributed new-business revenue won in the window
  (model ``attribution_model``) over the same :math:`C_c`: the same numerator (revenue through the same
  funnel), cost and window, so the ratio of the two ROIs says how far attribution's credit is from what
  the channel caused. It differs from notebook 04's ROI, which is on all marketing cost.

**Response curves and marginal ROI** at a constant weekly spend :math:`x` (carry-over at its steady
state: normalised adstock weights sum to 1): :math:`R_c(x) = \beta_c L(\lambda_c x / \text{scale}_c)`
incremental target a week; marginal ROI at the current spend :math:`x_0` (the window's last 13 weeks'
average) is :math:`v_c\,(R_c(1.01 x_0) - R_c(x_0)) / (0.01 x_0)`.

**Budget scenario**: PyMC-Marketing's optimiser spreads a quarter's budget over the 13 weeks after the
window (each channel's weekly amount constant, within per-channel bounds) to maximise the expected incremental revenue
(incremental target where revenue per unit is unknown), counting the carry-over into the weeks after;
the same budget in today's split (the last 13 weeks' shares) is the comparison. Both are reported with
intervals, and the gain as a paired difference.

**Diagnostics**, each with a warning in words when it fails: R-hat above :data:`RHAT_MAX`; bulk effective
sample size below :data:`ESS_PER_CHAIN` per chain (Vehtari et al., 2021, recommend 100 per chain); any
divergent transition; holdout MAPE above :data:`MAPE_MAX`, or above :data:`NAIVE_RATIO_MAX` times a flat
forecast's (the fitted weeks' last ``holdout_weeks`` average carried forward): the model predicts recent
weeks clearly worse than repeating them.

A fit is memoised like every other result (:meth:`DataSource.memo`), keyed by the quarter's dates, every
setting, the attribution model and the budget scenario; the data's bytes and the kit's code are in the
memo's key already. :meth:`IncrementalityResult.to_cache` holds plain values and DataFrames only.

References
----------
.. [1] Jin, Wang, Sun, Chan, Koehler (2017), "Bayesian Methods for Media Mix Modeling with Carryover and
   Shape Effects", Google.
.. [2] Vehtari, Gelman, Simpson, Carpenter, Bürkner (2021), "Rank-normalization, folding, and
   localization: an improved R-hat for assessing convergence of MCMC", Bayesian Analysis 16(2).
.. [3] PyMC-Marketing, ``pymc_marketing.mmm.multidimensional.MMM``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import mmm_data
from .attribution import MODELS
from .exceptions import KpiInputError
from .periods import Quarter
from .source import DataSource

if TYPE_CHECKING:
    from pymc_marketing.mmm.multidimensional import MMM

__all__ = [
    "ESS_PER_CHAIN",
    "MAPE_MAX",
    "NAIVE_RATIO_MAX",
    "RHAT_MAX",
    "IncrementalityResult",
    "MmmSettings",
    "beta_prior",
    "fit_incrementality",
    "lam_prior",
]

#: bump when what a cached result holds changes shape
RESULT_FORMAT = 1
#: largest R-hat accepted (chains agree)
RHAT_MAX = 1.01
#: smallest bulk effective sample size per chain (Vehtari et al. 2021: 100 per chain)
ESS_PER_CHAIN = 100
#: largest holdout mean absolute percentage error accepted (0-1)
MAPE_MAX = 0.25
#: largest holdout error accepted relative to a flat forecast's (the fitted weeks' last average carried forward)
NAIVE_RATIO_MAX = 1.25
#: the interval every estimate carries: 5th to 95th percentile
INTERVAL = (0.05, 0.95)
#: weeks of a quarter: current spend, the budget scenario
QUARTER_WEEKS = 13
#: the saturation's value at the typical spend the lambda prior centres on: half way (L(1.0986) = 0.5)
HALF_SATURATION = math.log(3.0)
#: shape of the gamma prior on lambda (coefficient of variation 1/sqrt(2): about 0.2x to 2.4x its mean)
LAM_SHAPE = 2.0
#: the spend-share prior's total scale, in units of the largest week's target (see :func:`beta_prior`)
BETA_SCALE = 1.0
#: the model variable the budget optimiser maximises (see ``_build``)
OBJECTIVE = "budget_objective"
#: default bounds of the budget scenario, as a share of each channel's budget in today's split
DEFAULT_BOUNDS = (0.5, 1.5)


class MmmSettings(BaseModel):
    r"""How the mix model is fitted; every field is part of the cache key.

    Attributes
    ----------
    target : {"leads", "pipeline"}
        Leads created a week (default), or new-business pipeline created a week (currency).
    weeks : int
        Weeks of history at most (default 104); fewer are used when the data has fewer (at least
        ``min_weeks``).
    holdout_weeks : int
        Most recent weeks held out of the fit and predicted (default 8), at most a quarter of ``weeks``.
    draws, tune : int
        Posterior draws kept and tuning steps per chain (default 1,000 each).
    chains : int
        Chains (default 2, the machine's cores).
    seed : int
        Random seed (the same data and settings give the same numbers).
    calibrate : bool
        Calibrate the saturation curves with the ``experiments`` lift tests (default True).
    l_max : int
        Weeks of carry-over (default 8).
    min_weeks : int
        Fewest weeks of data accepted (default 52).
    yearly_seasonality : int
        Fourier modes of the yearly seasonality (default 2).
    target_accept : float
        The sampler's target acceptance rate (default 0.98: much smaller steps than PyMC's 0.8, which the
        ridges between the saturation's :math:`\lambda` and :math:`\beta` need to avoid divergent
        transitions; on generated data 0.95 still left a few in most fits, 0.98 none, at about the same time).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    target: Literal["leads", "pipeline"] = "leads"
    weeks: int = Field(104, ge=8, le=520)
    holdout_weeks: int = Field(8, ge=1)
    draws: int = Field(1000, ge=10)
    tune: int = Field(1000, ge=10)
    chains: int = Field(2, ge=1, le=8)
    seed: int = Field(42, ge=0)
    calibrate: bool = True
    l_max: int = Field(8, ge=1, le=52)
    min_weeks: int = Field(mmm_data.MIN_WEEKS, ge=8)
    yearly_seasonality: int = Field(2, ge=1, le=10)
    target_accept: float = Field(0.98, gt=0.5, lt=1.0)

    @model_validator(mode="after")
    def _consistent(self) -> MmmSettings:
        if self.weeks < self.min_weeks:
            raise ValueError(f"`weeks` ({self.weeks}) must be at least `min_weeks` ({self.min_weeks})")
        if self.holdout_weeks > self.min_weeks // 4:
            raise ValueError(
                f"`holdout_weeks` ({self.holdout_weeks}) must be at most a quarter of `min_weeks` ({self.min_weeks})"
            )
        return self

    @classmethod
    def of(cls, settings: MmmSettings | Mapping[str, Any] | None = None, **changes: Any) -> MmmSettings:
        """Settings from an instance, a mapping or keywords; bad values raise :class:`KpiInputError`."""
        base = settings.model_dump() if isinstance(settings, MmmSettings) else dict(settings or {})
        try:
            return cls(**{**base, **changes})
        except ValidationError as exc:
            problems = "; ".join(f"`{'.'.join(map(str, e['loc']))}`: {e['msg']}" for e in exc.errors())
            raise KpiInputError(f"invalid mix model settings: {problems}") from None

    def key(self) -> tuple[tuple[str, Any], ...]:
        """Every setting as sorted ``(name, value)`` pairs (a cache key)."""
        return tuple(sorted(self.model_dump().items()))


@dataclass(frozen=True)
class IncrementalityResult:
    """A fitted mix model's estimates, diagnostics, curves and budget scenario (see the module docstring).

    ``channels`` is indexed by channel: ``activity_cost``; ``incremental``, ``incremental_per_cost``,
    ``contribution_share`` and ``incremental_roi``, each with ``_low`` and ``_high`` (90% interval);
    ``value_per_unit`` (revenue per target unit), ``won_deals``, ``attributed_revenue``,
    ``attribution_roi_activity_cost`` and ``attribution_to_incremental`` (attribution ROI over incremental
    ROI). ``weekly`` is the fit per week (``target``, ``predicted`` with its 90% predictive interval,
    ``baseline``, ``holdout``) and ``contributions`` each channel's mean contribution a week. ``response_curves`` (long:
    ``channel``, ``weekly_cost``, ``incremental``, ``revenue`` with intervals) and ``marginal`` (per
    channel at the current weekly cost) are at a constant weekly spend. ``budget`` (per channel) and
    ``budget_summary`` are the scenario, None when it could not be computed (``warnings`` says why).
    """

    target: str
    target_unit: str
    start: dt.date
    end: dt.date
    weeks: int
    holdout_weeks: int
    settings: dict[str, Any]
    attribution_model: str
    calibrated: bool
    channels: pd.DataFrame
    diagnostics: dict[str, Any]
    weekly: pd.DataFrame
    contributions: pd.DataFrame
    response_curves: pd.DataFrame
    marginal: pd.DataFrame
    experiments: pd.DataFrame
    roi_basis: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    budget: pd.DataFrame | None = None
    budget_summary: dict[str, Any] | None = None

    # -- the public dict -------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        """The ``incrementality`` entry of ``metrics.json``: plain floats, None where undefined."""
        keys = (
            "incremental_per_cost",
            "incremental_per_cost_low",
            "incremental_per_cost_high",
            "incremental_roi",
            "incremental_roi_low",
            "incremental_roi_high",
            "contribution_share",
            "contribution_share_low",
            "contribution_share_high",
            "attribution_roi_activity_cost",
        )
        by_channel = {str(ch): {k: _plain(row[k]) for k in keys} for ch, row in self.channels.iterrows()}
        d = self.diagnostics
        return {
            "target": self.target,
            "window": {"start": self.start.isoformat(), "end": self.end.isoformat(), "weeks": int(self.weeks)},
            "by_channel": by_channel,
            "diagnostics": {
                "rhat_max": _plain(d.get("rhat_max")),
                "ess_min": _plain(d.get("ess_min")),
                "divergences": _plain(d.get("divergences")),
                "holdout_mape": _plain(d.get("holdout_mape")),
            },
        }

    @property
    def ok(self) -> bool:
        """Every diagnostic passed (no warning)."""
        return not self.warnings

    # -- the cache -------------------------------------------------------------------------------
    def to_cache(self) -> dict[str, Any]:
        """Plain values and DataFrames only (the kit's cache stores them as JSON and Arrow, never pickle)."""
        return {
            "format": RESULT_FORMAT,
            "target": self.target,
            "target_unit": self.target_unit,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "weeks": int(self.weeks),
            "holdout_weeks": int(self.holdout_weeks),
            "settings": dict(self.settings),
            "attribution_model": self.attribution_model,
            "calibrated": bool(self.calibrated),
            "channels": self.channels,
            "diagnostics": dict(self.diagnostics),
            "weekly": self.weekly,
            "contributions": self.contributions,
            "response_curves": self.response_curves,
            "marginal": self.marginal,
            "experiments": self.experiments,
            "roi_basis": self.roi_basis,
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "budget": self.budget,
            "budget_summary": None if self.budget_summary is None else dict(self.budget_summary),
        }

    @classmethod
    def from_cache(cls, d: Mapping[str, Any]) -> IncrementalityResult:
        """The result :meth:`to_cache` described."""
        if d.get("format") != RESULT_FORMAT:
            raise ValueError(f"a cached mix model result of format {d.get('format')!r}, expected {RESULT_FORMAT}")
        return cls(
            target=str(d["target"]),
            target_unit=str(d["target_unit"]),
            start=dt.date.fromisoformat(d["start"]),
            end=dt.date.fromisoformat(d["end"]),
            weeks=int(d["weeks"]),
            holdout_weeks=int(d["holdout_weeks"]),
            settings=dict(d["settings"]),
            attribution_model=str(d["attribution_model"]),
            calibrated=bool(d["calibrated"]),
            channels=d["channels"],
            diagnostics=dict(d["diagnostics"]),
            weekly=d["weekly"],
            contributions=d["contributions"],
            response_curves=d["response_curves"],
            marginal=d["marginal"],
            experiments=d["experiments"],
            roi_basis=str(d["roi_basis"]),
            warnings=list(d["warnings"]),
            notes=list(d["notes"]),
            budget=d["budget"],
            budget_summary=None if d["budget_summary"] is None else dict(d["budget_summary"]),
        )


def _plain(v: Any) -> float | int | None:
    """A finite number as a plain float (int for whole counts), else None."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f):
        return None
    return int(f) if isinstance(v, int | np.integer) else f


# --------------------------------------------------------------------------------------------------
# Entry point


def fit_incrementality(
    src: DataSource,
    quarter: str | Quarter,
    settings: MmmSettings | Mapping[str, Any] | None = None,
    *,
    attribution_model: str = "position_based",
    budget: float | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
) -> IncrementalityResult:
    """Fit the mix model for the window ending with ``quarter`` (memoised; see the module docstring).

    Parameters
    ----------
    src : DataSource
        The validated data (needs ``spend`` and ``leads``, or ``opportunities`` for target pipeline;
        ``opportunities`` for revenue, ``touchpoints`` for touch-based attribution, ``experiments`` to
        calibrate).
    quarter : str or Quarter
        The window ends with this quarter's window (its last day, or the data's end while in progress).
    settings : MmmSettings or mapping, optional
        Model settings (:class:`MmmSettings`); defaults otherwise.
    attribution_model : str
        The attribution model of ``attribution_roi_activity_cost`` (:data:`kpi_helpers.attribution.MODELS`).
    budget : float, optional
        Activity cost of the next quarter (13 weeks) to allocate, currency; default: the last 13 weeks'.
    bounds : mapping of channel to (low, high), optional
        Per-channel budget bounds for the quarter, currency; default: 0.5x to 1.5x the channel's budget in
        today's split. Channels not named keep the default.

    Returns
    -------
    IncrementalityResult

    Raises
    ------
    KpiInputError
        When the data cannot support a model (see :func:`kpi_helpers.mmm_data.weekly_data`) or an argument
        is invalid.
    """
    s = MmmSettings.of(settings)
    if attribution_model not in MODELS:
        raise KpiInputError(f"unknown attribution model {attribution_model!r}; choose one of {', '.join(MODELS)}")
    if budget is not None and not (isinstance(budget, int | float) and not isinstance(budget, bool) and budget > 0):
        raise KpiInputError(f"`budget` must be an amount > 0 (the next quarter's activity cost), got {budget!r}")
    q = src.quarter(quarter)
    end = src.coverage.window(q).end
    bounds_key = tuple(sorted((str(k), float(lo), float(hi)) for k, (lo, hi) in (bounds or {}).items()))
    key = (
        "mmm incrementality",
        RESULT_FORMAT,
        q.start.isoformat(),
        q.end.isoformat(),
        end.isoformat(),
        s.key(),
        attribution_model,
        None if budget is None else float(budget),
        bounds_key,
    )
    payload = src.memo(key, lambda: _fit(src, q, end, s, attribution_model, budget, dict(bounds or {})).to_cache())
    return IncrementalityResult.from_cache(payload)


# --------------------------------------------------------------------------------------------------
# The fit


@contextmanager
def _quiet() -> Iterator[None]:
    """PyMC's and PyMC-Marketing's progress output and known notices stay out of notebook outputs."""
    import functools

    import pymc as pm  # imported first: importing PyMC sets its logger's level

    # PyMC's own notices (few draws, divergences) are reported by the diagnostics, in words, on the page
    names = {"pymc": logging.ERROR, "pymc_marketing": logging.WARNING, "pytensor": logging.WARNING}
    names["arviz"] = logging.ERROR  # its shape notice for a single chain; R-hat's absence is reported instead
    loggers = {logging.getLogger(n): level for n, level in names.items()}
    levels = {lg: lg.level for lg in loggers}
    compute = pm.compute_deterministics
    for lg, level in loggers.items():
        lg.setLevel(level)
    # PyMC-Marketing's fit computes the deterministics with PyMC's progress bar on, which a notebook would keep
    pm.compute_deterministics = functools.partial(compute, progressbar=False)
    try:
        with warnings.catch_warnings():
            # notices about the libraries' own evolution or defaults, not about this model or data
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"pymc_marketing.*")
            warnings.filterwarnings("ignore", message=r".*is deprecated.*", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=r"Using default equality constraint", category=UserWarning)
            warnings.filterwarnings("ignore", message=r".*infer_freq.*")
            yield
    finally:
        pm.compute_deterministics = compute
        for lg, level in levels.items():
            lg.setLevel(level)


def lam_prior(spend: pd.DataFrame, l_max: int) -> np.ndarray:
    r"""Mean of each channel's gamma prior on the saturation's :math:`\lambda`, in max-scaled units.

    Half saturation (:math:`L(\lambda x) = 0.5` at :math:`\lambda x = \ln 3`) sits at the channel's
    typical carried-over weekly spend: its total spend over the weeks its carry-over reaches (weeks with
    spend in the last ``l_max``), since normalised adstock keeps the total. For an always-on channel that
    is its average weekly spend; for one that spends in bursts (events) the bursts' spread.

    .. math::

        \bar\lambda_c = \ln 3 \Big/ \frac{\sum_t s_{c,t} / \max_t s_{c,t}}{R_c}, \qquad
        R_c = \#\{t : s_{c,t-l} > 0 \text{ for some } l < l_{\max}\}

    Examples
    --------
    >>> spend = pd.DataFrame({"always": [10.0, 20.0, 10.0, 20.0], "burst": [0.0, 40.0, 0.0, 0.0]})
    >>> lam_prior(spend, l_max=2).round(3).tolist()  # always: 15/20 per week; burst: 40/40 over 2 weeks
    [1.465, 2.197]
    """
    out = []
    for c in spend.columns:
        v = spend[c].to_numpy(float)
        reached = np.convolve(v > 0, np.ones(l_max), mode="full")[: len(v)] > 0
        top = v.max()
        typical = v.sum() / top / max(int(reached.sum()), 1) if top > 0 else 1.0
        out.append(HALF_SATURATION / typical)
    return np.asarray(out, dtype=float)


def beta_prior(spend: pd.DataFrame) -> np.ndarray:
    r"""Scale of each channel's half-normal prior on the saturation's :math:`\beta` (max-scaled target).

    The spend-share prior of PyMC-Marketing's examples: a channel's effect at full saturation is a priori
    in proportion to its share of the activity cost, the shares' scales adding up to
    :data:`BETA_SCALE` times the largest week's target (all media, fully saturated, about the size of the
    busiest week: weakly informative, and it keeps a channel with little spend from claiming a large effect
    its data cannot deny).

    .. math:: \sigma_c = \text{BETA\_SCALE} \cdot \frac{\sum_t s_{c,t}}{\sum_{k,t} s_{k,t}}

    Examples
    --------
    >>> beta_prior(pd.DataFrame({"a": [30.0, 10.0], "b": [60.0, 0.0]})).tolist()
    [0.4, 0.6]
    """
    totals = spend.sum().to_numpy(float)
    return BETA_SCALE * totals / totals.sum()


def _holiday_share(weeks: pd.DatetimeIndex) -> np.ndarray:
    """Share (0-1) of each week's days from 24 December to 1 January."""
    days = weeks.values[:, None] + np.arange(7) * np.timedelta64(1, "D")
    d = pd.DatetimeIndex(days.ravel())
    hol = ((d.month == 12) & (d.day >= 24)) | ((d.month == 1) & (d.day == 1))
    return np.asarray(hol, dtype=float).reshape(-1, 7).mean(axis=1)


def _quantiles(a: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and the 90% interval along ``axis``; NaN where every draw is NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices stay NaN
        lo, mid, hi = np.nanquantile(a, [INTERVAL[0], 0.5, INTERVAL[1]], axis=axis)
    return mid, lo, hi


def _funnel_rows(fv: pd.DataFrame) -> dict[str, dict[str, float]]:
    """:func:`kpi_helpers.mmm_data.funnel_values` as plain floats per channel."""
    return {str(c): {str(k): float(v) for k, v in row.items()} for c, row in fv.to_dict(orient="index").items()}


def _value_draws(fv: pd.DataFrame, channels: tuple[str, ...], n: int, rng: np.random.Generator) -> np.ndarray:
    r"""Draws of each channel's revenue per target unit, shape (channels, n); NaN where unknown.

    :math:`v = r \cdot m`: the won deals per unit :math:`r \sim \text{Gamma}(k + 1/2, 1/n_c)` (Jeffreys, for
    :math:`k` deals over :math:`n_c` units) times their average amount :math:`m \sim N(\bar w, s/\sqrt{k})`
    (kept positive); a channel without won deals takes the window's average won amount over all channels.
    """
    rows = _funnel_rows(fv)
    pooled_deals = sum(r["won_deals"] for r in rows.values())
    pooled = sum(r["won_amount"] for r in rows.values()) / pooled_deals if pooled_deals > 0 else math.nan
    out = np.full((len(channels), n), np.nan)
    for i, c in enumerate(channels):
        row = rows.get(c)
        if row is None or not row["units"] > 0 or math.isnan(row["value_per_unit"]):
            continue
        k, units = row["won_deals"], row["units"]
        rate = rng.gamma(k + 0.5, 1.0 / units, n)
        if k >= 2:
            mean = row["won_amount"] / k
            var = max((row["won_amount_sq"] - k * mean**2) / (k - 1), 0.0)
            amount = np.maximum(rng.normal(mean, math.sqrt(var / k), n), 0.05 * mean)
        elif k == 1:
            amount = np.full(n, row["won_amount"])
        else:
            amount = np.full(n, pooled)
        out[i] = rate * amount
    return out


def _fit(
    src: DataSource,
    q: Quarter,
    end: dt.date,
    s: MmmSettings,
    attribution_model: str,
    budget: float | None,
    bounds: dict[str, tuple[float, float]],
) -> IncrementalityResult:
    started = time.perf_counter()
    wd = mmm_data.weekly_data(src, end, target=s.target, weeks=s.weeks, min_weeks=s.min_weeks)
    plan, current = _plan(wd, budget, bounds)
    n, h = wd.weeks, s.holdout_weeks
    channels = wd.channels
    cols = [f"c{i}" for i in range(len(channels))]  # channel names may be anything; columns must not clash
    X = pd.DataFrame({"date": wd.y.index.to_numpy()})
    for c, col in zip(channels, cols, strict=True):
        X[col] = wd.spend[c].to_numpy(float)
    X["trend"] = np.arange(n, dtype=float) / (n - h)  # 0 at the start, 1 at the fit's last week
    holiday = _holiday_share(pd.DatetimeIndex(wd.y.index))
    controls = ["trend"]
    if holiday[: n - h].any():
        X["holiday"] = holiday
        controls.append("holiday")
    y = pd.Series(wd.y.to_numpy(float), name="target")
    X_fit, y_fit = X.iloc[: n - h].reset_index(drop=True), y.iloc[: n - h].reset_index(drop=True)

    stop = wd.end + dt.timedelta(days=1)
    fv = mmm_data.funnel_values(src, wd.start, stop, target=s.target)
    rows = _funnel_rows(fv)
    value_point = np.array([rows[c]["value_per_unit"] if c in rows else math.nan for c in channels])
    notes = list(wd.notes)
    warns: list[str] = []

    with _quiet():
        mmm, lifts = _build(X_fit, y_fit, cols, controls, s, wd, value_point)
        idata = mmm.fit(
            X_fit,
            y_fit,
            draws=s.draws,
            tune=s.tune,
            chains=s.chains,
            nuts_sampler="nutpie",
            random_seed=s.seed,
            progressbar=False,
            target_accept=s.target_accept,
        )
        pp = mmm.sample_posterior_predictive(
            X,
            extend_idata=False,
            combined=True,
            var_names=["channel_contribution_original_scale", "y_original_scale"],
            progressbar=False,
            random_seed=s.seed,
        )
    contrib = pp["channel_contribution_original_scale"].transpose("channel", "date", "sample").to_numpy()
    pred = pp["y_original_scale"].transpose("date", "sample").to_numpy()
    draws = contrib.shape[-1]
    rng = np.random.default_rng(s.seed)
    values = _value_draws(fv, channels, draws, rng)

    diagnostics = _diagnostics(idata, mmm, pred, y.to_numpy(float), h, s)
    warns += _diagnostic_warnings(diagnostics, s)

    cost = wd.cost.reindex(list(channels)).to_numpy(float)
    total = contrib.sum(axis=1)  # (channels, draws): incremental target over the window
    per_cost = total / cost[:, None]
    share = total / total.sum(axis=0, keepdims=True)
    roi = per_cost * values
    attributed = mmm_data.attributed_revenue(src, wd.start, stop, model=attribution_model)
    table: dict[str, Any] = {"activity_cost": cost}
    for name, arr in (
        ("incremental", total),
        ("incremental_per_cost", per_cost),
        ("contribution_share", share),
        ("incremental_roi", roi),
    ):
        mid, lo, hi = _quantiles(arr)
        table[name], table[f"{name}_low"], table[f"{name}_high"] = mid, lo, hi
    table["value_per_unit"] = value_point
    table["won_deals"] = np.array([rows[c]["won_deals"] if c in rows else 0.0 for c in channels])
    att = np.array([float(attributed.get(c, 0.0)) for c in channels]) if len(attributed) else np.full(len(cost), np.nan)
    table["attributed_revenue"] = att
    table["attribution_roi_activity_cost"] = att / cost
    with np.errstate(invalid="ignore", divide="ignore"):
        table["attribution_to_incremental"] = np.where(
            table["incremental_roi"] > 0, table["attribution_roi_activity_cost"] / table["incremental_roi"], np.nan
        )
    chan = pd.DataFrame(table, index=pd.Index(list(channels), name="channel")).astype(float)
    if np.isnan(value_point).any():
        missing = [c for c, v in zip(channels, value_point, strict=True) if math.isnan(v)]
        notes.append(
            f"incremental ROI is n/a for {', '.join(f'`{c}`' for c in missing)}: "
            + (
                "it needs `opportunities` (won deals from the channel's leads) to turn target units into revenue"
                if "opportunities" not in src.present
                else "the channel created no leads (or pipeline) in the window to take revenue per unit from"
            )
        )
    if len(attributed) == 0:
        notes.append("attribution ROI is n/a: attribution needs `leads` and `opportunities`")

    weekly, contributions = _weekly(wd, contrib, pred, h)
    scales = _scales(mmm, cols)
    curves, marginal = _curves(mmm, idata, channels, scales, current, values)
    notes.append(f"lift tests used: {lifts}" if lifts else "no lift test calibrates this fit")
    budget_table, summary, budget_warning = _budget(mmm, cols, wd, plan, values)
    if budget_warning:
        warns.append(budget_warning)
    unit = "leads" if s.target == "leads" else "currency"
    per = (
        "lead created in it (its lead-to-won rate times its average won amount)"
        if s.target == "leads"
        else "unit of new-business pipeline its leads created in it"
    )
    basis = (
        f"Revenue through the funnel: each incremental {'lead' if s.target == 'leads' else 'unit of pipeline'} "
        f"times the channel's new-business revenue won in the window ({wd.start} to {wd.end}) per {per}, from the "
        f"data; attribution ROI credits the same won revenue by the `{attribution_model}` model. Both divide by "
        "the same activity cost (media and production) in the window."
    )
    diagnostics["fit_seconds"] = round(time.perf_counter() - started, 1)
    return IncrementalityResult(
        target=s.target,
        target_unit=unit,
        start=wd.start,
        end=wd.end,
        weeks=n,
        holdout_weeks=h,
        settings=dict(s.model_dump()),
        attribution_model=attribution_model,
        calibrated=bool(lifts),
        channels=chan,
        diagnostics=diagnostics,
        weekly=weekly,
        contributions=contributions,
        response_curves=curves,
        marginal=marginal,
        experiments=_experiment_frame(wd.experiments),
        roi_basis=basis,
        warnings=warns,
        notes=notes,
        budget=budget_table,
        budget_summary=summary,
    )


def _build(
    X: pd.DataFrame,
    y: pd.Series,
    cols: list[str],
    controls: list[str],
    s: MmmSettings,
    wd: mmm_data.WeeklyData,
    value_point: np.ndarray,
) -> tuple[MMM, int]:
    """PyMC-Marketing's MMM, built, calibrated when asked, with the deterministics the results read."""
    import pymc.dims as pmd
    import pytensor.xtensor as ptx
    import xarray as xr
    from pymc_extras.prior import Prior
    from pymc_marketing.mmm import GeometricAdstock, LogisticSaturation
    from pymc_marketing.mmm.multidimensional import MMM

    lam = lam_prior(X[cols], s.l_max)

    def by_channel(values: np.ndarray) -> xr.DataArray:
        return xr.DataArray(values, dims=("channel",), coords={"channel": cols})

    mmm = MMM(
        date_column="date",
        channel_columns=cols,
        target_column="target",
        adstock=GeometricAdstock(l_max=s.l_max),
        saturation=LogisticSaturation(
            priors={
                "lam": Prior("Gamma", alpha=LAM_SHAPE, beta=by_channel(LAM_SHAPE / lam), dims="channel"),
                "beta": Prior("HalfNormal", sigma=by_channel(beta_prior(X[cols])), dims="channel"),
            }
        ),
        yearly_seasonality=s.yearly_seasonality,
        control_columns=controls,
    )
    mmm.build_model(X, y)
    lifts = 0
    if s.calibrate and not wd.experiments.empty:
        to_col = dict(zip(wd.channels, cols, strict=True))
        lift = wd.experiments.assign(channel=wd.experiments["channel"].map(to_col))
        mmm.add_lift_test_measurements(lift[["channel", "x", "delta_x", "delta_y", "sigma"]].reset_index(drop=True))
        lifts = len(lift)
    mmm.add_original_scale_contribution_variable(var=["channel_contribution", "y"])
    with mmm.model:
        # What the budget optimiser maximises: incremental revenue at the funnel's values, in units of the
        # average value and of the target's scale (numbers near 1: SLSQP's tolerance is absolute); the
        # incremental target itself when a channel's value is unknown.
        known = bool(np.isfinite(value_point).all() and value_point.mean() > 0)
        weight = value_point / value_point.mean() if known else np.ones(len(cols))
        w = ptx.as_xtensor(np.asarray(weight, dtype=float), dims=("channel",))
        pmd.Deterministic(OBJECTIVE, (mmm.model["channel_contribution"].sum(dim="date") * w).sum())
    return mmm, lifts


def _diagnostics(idata: Any, mmm: MMM, pred: np.ndarray, y: np.ndarray, h: int, s: MmmSettings) -> dict[str, Any]:
    """R-hat, effective sample size and divergences of the free parameters; fit and holdout errors."""
    import arviz as az

    names = [v.name for v in mmm.model.free_RVs]
    post = idata.posterior[names]

    def smallest(ds: Any) -> float:
        return float(min(float(ds[v].min()) for v in ds.data_vars))

    # R-hat compares chains: with one there is none (and arviz would log that it cannot)
    rhat = float(max(float(v.max()) for v in az.rhat(post).data_vars.values())) if s.chains > 1 else math.nan
    mean = pred.mean(axis=1)
    fit_y, fit_p = y[:-h], mean[:-h]
    hold_y, hold_p = y[-h:], mean[-h:]
    ok = hold_y > 0
    naive = float(fit_y[-h:].mean())
    mape = float(np.mean(np.abs(hold_p[ok] - hold_y[ok]) / hold_y[ok])) if ok.any() else math.nan
    naive_mape = float(np.mean(np.abs(naive - hold_y[ok]) / hold_y[ok])) if ok.any() else math.nan
    ss = float(((fit_y - fit_y.mean()) ** 2).sum())
    r2 = 1.0 - float(((fit_y - fit_p) ** 2).sum()) / ss if ss > 0 else math.nan
    lo, hi = np.quantile(pred, INTERVAL, axis=1)
    inside = (y >= lo) & (y <= hi)
    return {
        "rhat_max": rhat,
        "ess_min": smallest(az.ess(post, method="bulk")),
        "ess_tail_min": smallest(az.ess(post, method="tail")),
        "divergences": int(idata.sample_stats["diverging"].sum()),
        "holdout_mape": mape,
        "naive_mape": naive_mape,
        "r2_fit": r2,
        "interval_coverage_fit": float(inside[:-h].mean()),
        "interval_coverage_holdout": float(inside[-h:].mean()),
        "draws": int(s.draws),
        "tune": int(s.tune),
        "chains": int(s.chains),
    }


def _diagnostic_warnings(d: Mapping[str, Any], s: MmmSettings) -> list[str]:
    out = []
    if s.chains < 2:
        out.append(
            "one chain: whether the sampler converged cannot be checked (R-hat compares two chains or more); "
            "fit with 2 chains"
        )
    elif not d["rhat_max"] <= RHAT_MAX:
        out.append(
            f"R-hat is {d['rhat_max']:.3f}, above {RHAT_MAX}: the {s.chains} chains do not agree, so the estimates "
            f"are not settled; fit with more draws and tuning (now {s.draws} and {s.tune})"
        )
    need = ESS_PER_CHAIN * s.chains
    if not d["ess_min"] >= need:
        out.append(
            f"the smallest effective sample size is {d['ess_min']:.0f}, below {need} (100 per chain): the intervals "
            f"rest on too few independent draws; fit with more draws (now {s.draws})"
        )
    if d["divergences"] > 0:
        out.append(
            f"{d['divergences']} divergent transition{'s' if d['divergences'] != 1 else ''}: the sampler could not "
            "explore part of the posterior, so the estimates may be biased; raise `target_accept` (now "
            f"{s.target_accept}) or fit more weeks"
        )
    mape, naive = d["holdout_mape"], d["naive_mape"]
    if not mape <= MAPE_MAX:
        out.append(
            f"the model misses the {s.holdout_weeks} held-out weeks by {mape:.0%} on average (more than "
            f"{MAPE_MAX:.0%}): it does not predict recent weeks well enough to trust its split of them"
        )
    elif not mape <= NAIVE_RATIO_MAX * naive:
        out.append(
            f"the model misses the {s.holdout_weeks} held-out weeks by {mape:.0%} on average, clearly worse than "
            f"repeating the average of the weeks before them ({naive:.0%}): its trend, season or channel effects "
            "mislead it on recent weeks"
        )
    return out


def _weekly(
    wd: mmm_data.WeeklyData, contrib: np.ndarray, pred: np.ndarray, h: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The fit a week (target, prediction with its 90% interval, baseline, holdout flag) and the channels'
    mean contributions a week (one column per channel)."""
    _, lo, hi = _quantiles(pred, axis=1)
    index = pd.DatetimeIndex(wd.y.index, name="week")
    means = contrib.mean(axis=2)  # (channels, weeks)
    weekly = pd.DataFrame(
        {
            "target": wd.y.to_numpy(float),
            "predicted": pred.mean(axis=1),
            "predicted_low": lo,
            "predicted_high": hi,
            "baseline": pred.mean(axis=1) - means.sum(axis=0),
            "holdout": np.arange(len(index)) >= len(index) - h,
        },
        index=index,
    )
    contributions = pd.DataFrame(means.T, index=index, columns=pd.Index(list(wd.channels), name="channel"))
    return weekly, contributions


def _scales(mmm: MMM, cols: list[str]) -> tuple[np.ndarray, float]:
    """Each channel's spend scale and the target's scale (PyMC-Marketing's max scaling)."""
    ch = mmm.scalers["_channel"].sel(channel=cols).to_numpy().astype(float)
    return ch, float(mmm.scalers["_target"].to_numpy())


def _saturation(mmm: MMM, idata: Any, x_scaled: np.ndarray) -> np.ndarray:
    """The fitted saturation (in target scale units) at scaled spend ``x_scaled`` of shape (points, channels);
    returns (draws, points, channels)."""
    import pytensor.xtensor as ptx

    post = idata.posterior
    params = {}
    for arg, var in mmm.saturation.variable_mapping.items():
        a = post[var].stack(sample=("chain", "draw")).transpose("sample", "channel").to_numpy()
        params[arg] = ptx.as_xtensor(a, dims=("sample", "channel"))
    x = ptx.as_xtensor(x_scaled, dims=("x", "channel"))
    out = mmm.saturation.function(x=x, **params).transpose("sample", "x", "channel")
    return np.asarray(out.eval(), dtype=float)


def _curves(
    mmm: MMM,
    idata: Any,
    channels: tuple[str, ...],
    scales: tuple[np.ndarray, float],
    current: np.ndarray,
    values: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Response curves (0 to twice the current weekly cost) and marginal ROI at the current weekly cost."""
    ch_scale, target_scale = scales
    reference = np.where(current > 0, current, ch_scale / 4)
    grid = np.linspace(0.0, 2.0, 41)[:, None] * reference[None, :]  # (points, channels), currency a week
    resp = _saturation(mmm, idata, grid / ch_scale) * target_scale  # (draws, points, channels)
    v = values.T[:, None, :]  # (draws, 1, channels)
    rows = []
    for name, arr in (("incremental", resp), ("revenue", resp * v)):
        mid, lo, hi = _quantiles(arr, axis=0)
        rows.append((name, mid, lo, hi))
    parts = []
    for i, c in enumerate(channels):
        part = {"channel": [c] * grid.shape[0], "weekly_cost": grid[:, i]}
        for name, mid, lo, hi in rows:
            part[name], part[f"{name}_low"], part[f"{name}_high"] = mid[:, i], lo[:, i], hi[:, i]
        parts.append(pd.DataFrame(part))
    curves = pd.concat(parts, ignore_index=True)
    step = 0.01 * reference
    at = np.stack([current, current + step])  # (2, channels)
    f = _saturation(mmm, idata, at / ch_scale) * target_scale
    slope = (f[:, 1, :] - f[:, 0, :]) / step[None, :]  # target units per currency, (draws, channels)
    m_mid, m_lo, m_hi = _quantiles(slope, axis=0)
    r_mid, r_lo, r_hi = _quantiles(slope * values.T, axis=0)
    marginal = pd.DataFrame(
        {
            "current_weekly_cost": current,
            "marginal_per_cost": m_mid,
            "marginal_per_cost_low": m_lo,
            "marginal_per_cost_high": m_hi,
            "marginal_roi": r_mid,
            "marginal_roi_low": r_lo,
            "marginal_roi_high": r_hi,
        },
        index=pd.Index(list(channels), name="channel"),
    ).astype(float)
    return curves, marginal


@dataclass(frozen=True)
class _Plan:
    """The budget scenario's amounts per channel for the quarter (currency): today's split of the budget and
    the bounds."""

    total: float
    split: np.ndarray
    low: np.ndarray
    high: np.ndarray


def _plan(
    wd: mmm_data.WeeklyData, budget: float | None, bounds: Mapping[str, tuple[float, float]]
) -> tuple[_Plan, np.ndarray]:
    """Today's weekly cost per channel (the last 13 weeks' average) and the scenario's amounts, checked
    before anything is fitted."""
    channels = wd.channels
    unknown = sorted(set(bounds) - set(channels))
    if unknown:
        raise KpiInputError(
            f"budget bounds name {', '.join(f'`{c}`' for c in unknown)}, which the model does not have; "
            f"its channels are {', '.join(f'`{c}`' for c in channels)}"
        )
    current = wd.spend[list(channels)].iloc[-QUARTER_WEEKS:].mean().to_numpy(float)
    # today's split: the last quarter's, or the window's when every channel paused in the last quarter
    shares = current if current.sum() > 0 else wd.cost.reindex(list(channels)).to_numpy(float)
    total = float(budget) if budget is not None else float(current.sum() * QUARTER_WEEKS)
    split = shares / shares.sum() * total
    lo, hi = DEFAULT_BOUNDS[0] * split, DEFAULT_BOUNDS[1] * split
    for i, c in enumerate(channels):
        if c in bounds:
            try:
                b_lo, b_hi = (float(x) for x in bounds[c])
            except (TypeError, ValueError):
                raise KpiInputError(
                    f"budget bounds of `{c}` must be two amounts (low, high), got {bounds[c]!r}"
                ) from None
            if not (0 <= b_lo <= b_hi):
                raise KpiInputError(f"budget bounds of `{c}` must satisfy 0 <= low <= high, got {bounds[c]!r}")
            lo[i], hi[i] = b_lo, b_hi
    if not total > 0:
        raise KpiInputError(
            "no activity cost in the window's last 13 weeks to plan from: pass the next quarter's `budget`"
        )
    if not lo.sum() * (1 - 1e-9) <= total <= hi.sum() * (1 + 1e-9):
        raise KpiInputError(
            f"the budget {total:,.0f} cannot be split within the bounds (their lows add up to {lo.sum():,.0f}, "
            f"their highs to {hi.sum():,.0f}): widen the bounds or change the budget"
        )
    return _Plan(total, split, lo, hi), current


def _budget(
    mmm: MMM,
    cols: list[str],
    wd: mmm_data.WeeklyData,
    plan: _Plan,
    values: np.ndarray,
) -> tuple[pd.DataFrame | None, dict[str, Any] | None, str]:
    """The next quarter's budget allocated by PyMC-Marketing's optimiser, against today's split."""
    import xarray as xr
    from pymc_marketing.mmm.multidimensional import MultiDimensionalBudgetOptimizerWrapper

    channels = wd.channels
    total, split, lo, hi = plan.total, plan.split, plan.low, plan.high
    start = wd.end + dt.timedelta(days=1)
    last = start + dt.timedelta(weeks=QUARTER_WEEKS - 1)
    revenue_known = bool(np.isfinite(values).all())
    try:
        with _quiet():
            wrapper = MultiDimensionalBudgetOptimizerWrapper(  # type: ignore[abstract]
                model=mmm, start_date=start.isoformat(), end_date=last.isoformat()
            )
            bounds_xr = xr.DataArray(
                np.stack([lo, hi], axis=1) / QUARTER_WEEKS,
                dims=("channel", "bound"),
                coords={"channel": cols, "bound": ["lower", "upper"]},
            )
            optimal, result = wrapper.optimize_budget(
                budget=total / QUARTER_WEEKS,
                budget_bounds=bounds_xr,
                response_variable=OBJECTIVE,
                x0=split / QUARTER_WEEKS,  # today's split: inside the bounds
                # a line search that stalls at the optimum's precision still returns the best point; it
                # is checked against the budget and the bounds below
                return_if_fail=True,
            )[:2]
            weekly_opt = optimal.sel(channel=cols).to_numpy().astype(float)
            spent = weekly_opt.sum() * QUARTER_WEEKS
            inside = bool(
                (
                    (weekly_opt * QUARTER_WEEKS >= lo * (1 - 1e-6)) & (weekly_opt * QUARTER_WEEKS <= hi * (1 + 1e-6))
                ).all()
            )
            if not (abs(spent - total) <= 1e-4 * total and inside):
                raise RuntimeError(f"the optimiser stopped outside the budget or the bounds ({result.message})")
            scenarios = {}
            for name, alloc in (("current", split / QUARTER_WEEKS), ("optimal", weekly_opt)):
                strategy = xr.DataArray(alloc, dims=("channel",), coords={"channel": cols})
                resp = wrapper.sample_response_distribution(
                    allocation_strategy=strategy,
                    additional_var_names=["channel_contribution_original_scale"],
                    noise_level=1e-6,
                )
                cc = resp["channel_contribution_original_scale"].transpose("channel", "date", "sample").to_numpy()
                scenarios[name] = cc.sum(axis=1)  # (channels, draws) incremental target, carry-over included
    except Exception as exc:  # the optimiser's failures are many and its own; the rest of the fit stands
        return None, None, f"the budget scenario could not be computed ({type(exc).__name__}: {str(exc)[:200]})"
    n = scenarios["current"].shape[1]
    vals = values[:, :n] if values.shape[1] >= n else values
    table: dict[str, Any] = {"current_budget": split, "optimal_budget": weekly_opt * QUARTER_WEEKS}
    summary: dict[str, Any] = {
        "budget": total,
        "weeks": QUARTER_WEEKS,
        "start": start.isoformat(),
        "end": (last + dt.timedelta(days=6)).isoformat(),
        "objective": "incremental revenue" if revenue_known else f"incremental {wd.target}",
        # SLSQP may stop at its precision limit: the allocation is then its best point (checked above)
        "optimizer_converged": bool(result.success),
        "optimizer_message": str(result.message),
        "bounds": {c: [float(lo[i]), float(hi[i])] for i, c in enumerate(channels)},
    }
    for name in ("current", "optimal"):
        inc = scenarios[name]
        rev = inc * vals
        for label, arr in (("incremental", inc), ("revenue", rev)):
            mid, lo_, hi_ = _quantiles(arr, axis=1)
            table[f"{label}_{name}"], table[f"{label}_{name}_low"], table[f"{label}_{name}_high"] = mid, lo_, hi_
            t_mid, t_lo, t_hi = _quantiles(arr.sum(axis=0))
            summary[f"{label}_{name}"], summary[f"{label}_{name}_low"], summary[f"{label}_{name}_high"] = (
                t_mid,
                t_lo,
                t_hi,
            )
    for label, a, b in (
        ("incremental", scenarios["optimal"], scenarios["current"]),
        ("revenue", scenarios["optimal"] * vals, scenarios["current"] * vals),
    ):
        g_mid, g_lo, g_hi = _quantiles(a.sum(axis=0) - b.sum(axis=0))
        summary[f"{label}_gain"], summary[f"{label}_gain_low"], summary[f"{label}_gain_high"] = g_mid, g_lo, g_hi
    frame = pd.DataFrame(table, index=pd.Index(list(channels), name="channel")).astype(float)
    return frame, _plain_tree(summary), ""


def _plain_tree(v: Any) -> Any:
    """Numbers as plain floats (None for NaN), containers as dicts and lists (exact in the cache)."""
    if isinstance(v, Mapping):
        return {str(k): _plain_tree(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain_tree(x) for x in v]
    if isinstance(v, str) or v is None:
        return v
    if isinstance(v, bool):
        return v
    if isinstance(v, int | np.integer):
        return int(v)
    f = float(v)
    return f if math.isfinite(f) else None


def _experiment_frame(e: pd.DataFrame) -> pd.DataFrame:
    out = e.copy()
    for c in ("start", "end"):
        out[c] = [str(d) for d in out[c]]
    out["channel"] = out["channel"].astype(str)
    return out.reset_index(drop=True)
