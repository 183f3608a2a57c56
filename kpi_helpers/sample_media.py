"""The sample's marketing-mix truth: weekly activity spend per channel, and the leads it causes.

Six channels have activity spend (cost that varies with activity; cost types
:data:`~kpi_helpers.schema.ACTIVITY_COST_TYPES`): Paid Search and Paid Social (media), Referral
(review-site listings and referral rewards), Events (conference sponsorships and webinars), Email
(sends) and Organic Search (content production). Direct has none. Fixed cost (software, labour,
overhead, the sales team) is written by :mod:`kpi_helpers.sample` and drives nothing.

**The process.** Week ``k`` runs Monday to Sunday. A channel's weekly activity cost ``s[k]`` follows a
plan (:func:`plan`): the business's growth, a seasonal budget rhythm, a quarterly budget level shared
by all channels (so channels correlate, as real plans do), budget changes at random times, flights
(Paid Social runs on and off), pauses (Paid Search), bursts (Email campaigns), the event calendar
(Events) and weekly noise. Leads of channel ``c`` on a day are the sum of two Poisson draws:

- a **baseline** (trend x yearly seasonality x weekday x drifting noise, from the sample's world),
- **incremental** leads ``y[k] = beta * L(lam * a[k])`` spread over the week's days by the weekday
  rhythm, where ``a = adstock(s)`` is geometric carry-over normalised to sum 1 over :data:`L_MAX`
  weeks (``a[k] = sum_l alpha**l s[k-l] / sum_l alpha**l``) and ``L(z) = (1 - exp(-z)) / (1 + exp(-z))``
  is logistic saturation. These are PyMC-Marketing's ``GeometricAdstock(l_max=8, normalize=True)``
  and ``LogisticSaturation`` (``lam`` per currency unit of weekly cost, ``beta`` in leads a week).

``alpha`` is :data:`ADSTOCK_ALPHA`. ``lam`` and ``beta`` follow from :data:`SATURATION_AT_START` and
:data:`INCREMENTAL_SHARE` (see :func:`calibrate`) and are written to ``truth.json``.

**The truth** (:func:`truth`), over the fitted window (the last :data:`WINDOW_WEEKS` complete weeks):

- ``incremental_leads[c]`` = expected leads with the spend as it was minus expected leads with
  channel ``c``'s spend set to 0 in the window's weeks (carry-over from before the window stays);
- ``incremental_per_cost[c]`` = ``incremental_leads[c]`` / ``c``'s activity cost in the window
  (the spend table's rows of cost types media and production dated in the window);
- ``incremental_roi[c]`` = ``incremental_leads[c]`` x ``lead_to_won[c]`` x ``deal_amount[c]`` /
  activity cost: revenue (new-business bookings) through the funnel per currency unit, where
  ``lead_to_won[c]`` is the process's probability that a lead of ``c`` becomes a won deal
  (MQL x SQL x opportunity x win probability) and ``deal_amount[c]`` the process's expected new deal
  amount in the window;
- ``contribution_share[c]`` = ``incremental_leads[c]`` / the sum over the six channels (sums to 1);
  ``share_of_leads[c]`` = ``incremental_leads[c]`` / all expected leads in the window.

Experiments (:func:`experiments`): lift tests where a channel's weekly spend was held at ``x + delta_x``
for a few weeks (``x``: its planned spend averaged over the 8 weeks before); the true lift is the
steady-state ``beta * (L(lam (x + delta_x)) - L(lam x))`` leads a week, and ``delta_y`` is it plus
normal noise with standard error ``sigma`` (that of a difference of two Poisson means over the test).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict, overload

import numpy as np

__all__ = ["MEDIA_CHANNELS", "adstock", "saturation"]

#: channels with activity spend, in the order of the arrays below
MEDIA_CHANNELS = ("Organic Search", "Paid Search", "Paid Social", "Email", "Referral", "Events")
#: weekly geometric carry-over (share of a week's effect left the next week)
ADSTOCK_ALPHA = np.array([0.6, 0.2, 0.35, 0.3, 0.45, 0.4])
#: weeks of carry-over (the adstock kernel's length)
L_MAX = 8
#: planned weekly activity cost at scale 1 at the demand level of `start` (Events: by the calendar)
WEEKLY_BUDGET = np.array([650.0, 950.0, 850.0, 260.0, 320.0, 0.0])
#: lam x adstocked weekly cost, averaged over the first year's weeks with spend: how saturated a
#: channel is at the start (the logistic curve is half way at 1.1, flattening from about 2)
SATURATION_AT_START = np.array([0.5, 0.7, 0.9, 0.6, 0.6, 0.7])
#: share of a channel's leads in the first year that its spend causes (the rest is baseline);
#: Events: the incremental leads equal the calendar's event leads, plus this baseline share
INCREMENTAL_SHARE = np.array([0.30, 0.65, 0.75, 0.45, 0.40, 0.90])
#: budgets grow with demand to this power (a growing business spends more)
BUDGET_GROWTH = 1.1
#: seasonal budget rhythm by month (pushes in spring and autumn, quiet August and December)
BUDGET_SEASON = np.array([1.05, 1.05, 1.10, 1.0, 1.0, 0.95, 0.85, 0.80, 1.0, 1.10, 1.10, 0.85])
#: sd of the log of the quarterly budget level all channels share
COMMON_SD = 0.12
#: budget changes a year per channel, and the sd of the log of each new level
BUDGET_CHANGES = 1.5
BUDGET_CHANGE_SD = np.array([0.15, 0.25, 0.30, 0.20, 0.25, 0.0])
#: sd of the weekly log noise per channel
WEEKLY_SD = np.array([0.05, 0.08, 0.10, 0.12, 0.10, 0.0])
#: Paid Social flights: weeks on and off (uniform ranges) and the spend left in weeks off
FLIGHT_ON, FLIGHT_OFF, FLIGHT_DARK = (6, 13), (2, 6), 0.1
#: Paid Search pauses a year and their length in weeks (uniform range)
PAUSES, PAUSE_WEEKS = 1.2, (1, 4)
#: Email: share of weeks with an extra campaign send and its multiplier; quiet in the last week of the year
BURSTS, BURST_FACTOR = 0.2, 1.8
#: Events: cost per expected event lead of a webinar (production) and a conference (sponsorship, media)
EVENT_COST_PER_LEAD = {"webinar": 120.0, "conference": 350.0}
#: weeks of the fitted window written to truth.json (the last complete weeks of the data)
WINDOW_WEEKS = 104
#: lift tests: channel, weeks from the window's end to the test's start, weeks, relative change in spend
EXPERIMENTS = (("Paid Social", 70, 8, 1.5), ("Paid Search", 44, 6, -1.0), ("Email", 22, 6, 2.0))
#: weeks before a test whose planned spend gives its `x`
EXPERIMENT_BASE_WEEKS = 8


def adstock(spend: np.ndarray, alpha: np.ndarray | float, l_max: int = L_MAX) -> np.ndarray:
    """Geometric carry-over along the first axis, weights normalised to sum 1.

    .. math:: a_k = \\sum_{l=0}^{L-1} \\alpha^l s_{k-l} \\Big/ \\sum_{l=0}^{L-1} \\alpha^l

    Parameters
    ----------
    spend : ndarray
        Weekly cost, weeks on axis 0 (channels on axis 1, if any); weeks before the first count as 0.
    alpha : float or ndarray
        Carry-over per week in [0, 1), one per channel.
    l_max : int
        Weeks of the kernel.

    Returns
    -------
    ndarray
        The adstocked cost, same shape and unit as `spend`.

    Examples
    --------
    >>> adstock(np.array([1.0, 0.0, 0.0]), 0.5, l_max=3).round(3).tolist()
    [0.571, 0.286, 0.143]
    """
    spend = np.asarray(spend, dtype=float)
    alpha = np.asarray(alpha, dtype=float)
    weights = alpha[None, ...] ** np.arange(l_max).reshape((-1,) + (1,) * alpha.ndim)
    weights = weights / weights.sum(axis=0)
    out = np.zeros_like(spend)
    for lag in range(l_max):
        out[lag:] += weights[lag] * spend[: len(spend) - lag]
    return out


@overload
def saturation(x: float, lam: float) -> float: ...
@overload
def saturation(x: np.ndarray, lam: np.ndarray | float) -> np.ndarray: ...
def saturation(x: np.ndarray | float, lam: np.ndarray | float) -> np.ndarray | float:
    """Logistic saturation, 0 at no spend and approaching 1.

    .. math:: L(x) = \\frac{1 - e^{-\\lambda x}}{1 + e^{-\\lambda x}}

    Examples
    --------
    >>> float(saturation(np.array(0.0), 1.0)), round(float(saturation(np.array(1.0), 1.0)), 4)
    (0.0, 0.4621)
    """
    z = np.exp(-np.asarray(lam) * np.asarray(x, dtype=float))
    return (1 - z) / (1 + z)


def plan(
    rng: np.random.Generator,
    mondays: np.ndarray,
    level: np.ndarray,
    event_cost: np.ndarray,
    scale: float,
) -> np.ndarray:
    """Planned weekly activity cost, shape (weeks, 6 channels), at scale `scale`.

    `mondays` are the weeks' first days (days since 1970), `level` the demand trend at each (1 at
    `start`), `event_cost` the Events cost falling in each week (the event calendar's).
    """
    n = len(mondays)
    month = mondays.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    quarter = month // 3
    common = np.exp(rng.normal(0, COMMON_SD, quarter.max() - quarter.min() + 1))[quarter - quarter.min()]
    base = WEEKLY_BUDGET[None, :] * scale * (level**BUDGET_GROWTH * BUDGET_SEASON[month % 12] * common)[:, None]
    # Budget changes: a new level at random weeks, held until the next change.
    steps = np.ones((n, len(MEDIA_CHANNELS)))
    for c in range(len(MEDIA_CHANNELS)):
        at = np.flatnonzero(rng.random(n) < BUDGET_CHANGES / 52)
        levels = np.exp(rng.normal(0, BUDGET_CHANGE_SD[c], len(at) + 1))
        steps[:, c] = levels[np.searchsorted(at, np.arange(n), side="right")]
    noise = np.exp(rng.normal(0, 1, (n, len(MEDIA_CHANNELS))) * WEEKLY_SD)
    spend = base * steps * noise

    pso, pse, eml, evt = (MEDIA_CHANNELS.index(c) for c in ("Paid Social", "Paid Search", "Email", "Events"))
    spend[:, pso] *= _flights(rng, n)
    paused = _pauses(rng, n)
    spend[:, pse] *= ~paused
    burst = rng.random(n) < BURSTS
    jan1 = mondays.astype("datetime64[D]").astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)
    week_of_year = (mondays - jan1) // 7
    spend[:, eml] *= np.where(burst, BURST_FACTOR, 1.0) * np.where(week_of_year >= 51, 0.2, 1.0)
    spend[:, evt] = event_cost
    return spend


def _flights(rng: np.random.Generator, n: int) -> np.ndarray:
    """1 in weeks a flight runs, :data:`FLIGHT_DARK` between flights."""
    out = np.ones(n)
    k, on = int(rng.integers(0, FLIGHT_ON[1])), True
    while k < n:
        weeks = int(rng.integers(*(FLIGHT_ON if on else FLIGHT_OFF)))
        if not on:
            out[k : k + weeks] = FLIGHT_DARK
        k, on = k + weeks, not on
    return out


def _pauses(rng: np.random.Generator, n: int) -> np.ndarray:
    """True in weeks a pause holds the channel at zero."""
    out = np.zeros(n, bool)
    for k in np.flatnonzero(rng.random(n) < PAUSES / 52):
        out[k : k + int(rng.integers(*PAUSE_WEEKS))] = True
    return out


def calibrate(spend: np.ndarray, first_year: np.ndarray, target_leads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``lam`` and ``beta`` per channel from the planned spend of the first year after `start`.

    ``lam`` puts the average adstocked weekly cost of the first year's weeks with spend at
    :data:`SATURATION_AT_START`; ``beta`` makes the first year's expected incremental leads equal
    `target_leads` (the channel's :data:`INCREMENTAL_SHARE` of its planned leads).
    """
    a = adstock(spend, ADSTOCK_ALPHA)[first_year]
    typical = np.array([a[a[:, c] > 0, c].mean() for c in range(a.shape[1])])
    lam = SATURATION_AT_START / typical
    beta = target_leads / saturation(a, lam).sum(axis=0)
    return lam, beta


def incremental(spend: np.ndarray, lam: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Expected incremental leads per week and channel: ``beta * L(lam * adstock(spend))``."""
    return beta * saturation(adstock(spend, ADSTOCK_ALPHA), lam)


class Experiment(TypedDict):
    """One lift test as :func:`experiments` applies it: ``delta_y`` (measured) and ``true_delta_y`` in leads a week."""

    channel: str
    first_week: int
    weeks: int
    x: float
    delta_x: float
    true_delta_y: float
    delta_y: float
    sigma: float


def experiments(
    rng: np.random.Generator,
    spend: np.ndarray,
    window_end: int,
    lam: np.ndarray,
    beta: np.ndarray,
    weekly_leads: np.ndarray,
    earliest: int = 0,
) -> list[Experiment]:
    """Apply the lift tests of :data:`EXPERIMENTS` to `spend` (in place) and return their rows.

    `window_end` is the index of the window's last week; `weekly_leads` the expected leads a week
    per channel without the test (for the standard error); a test whose weeks before it start
    before week `earliest` (the data's first) is not run. ``delta_y`` is measured in leads a week.
    """
    rows: list[Experiment] = []
    for channel, back, weeks, change in EXPERIMENTS:
        c = MEDIA_CHANNELS.index(channel)
        first = window_end - back + 1
        if first - EXPERIMENT_BASE_WEEKS < earliest:
            continue
        x = float(spend[first - EXPERIMENT_BASE_WEEKS : first, c].mean())
        spend[first : first + weeks, c] = x * (1 + change)
        true = float(beta[c] * (saturation(x * (1 + change), lam[c]) - saturation(x, lam[c])))
        level = float(weekly_leads[first - EXPERIMENT_BASE_WEEKS : first, c].mean())
        sigma = float(np.sqrt(2 * max(level, 1.0) / weeks))
        rows.append(
            {
                "channel": channel,
                "first_week": first,
                "weeks": weeks,
                "x": x,
                "delta_x": x * change,
                "true_delta_y": true,
                "delta_y": true + float(rng.normal(0, sigma)),
                "sigma": sigma,
            }
        )
    return rows


def truth(
    spend: np.ndarray,
    window: slice,
    lam: np.ndarray,
    beta: np.ndarray,
    expected_leads: float,
    activity_cost: np.ndarray,
    lead_to_won: np.ndarray,
    deal_amount: np.ndarray,
) -> dict[str, dict[str, float]]:
    """The per-channel truth over `window` (weeks), as defined in the module docstring."""
    with_spend = incremental(spend, lam, beta)[window].sum(axis=0)
    inc = np.zeros(len(MEDIA_CHANNELS))
    for c in range(len(MEDIA_CHANNELS)):
        zeroed = spend.copy()
        zeroed[window, c] = 0.0
        inc[c] = with_spend[c] - incremental(zeroed, lam, beta)[window, c].sum()
    with np.errstate(invalid="ignore", divide="ignore"):  # an empty window: NaN, written as null
        per_cost = inc / activity_cost
        share, of_leads = inc / inc.sum(), inc / expected_leads
    named = _named
    return {
        "incremental_leads": named(inc),
        "incremental_per_cost": named(per_cost),
        "incremental_roi": named(per_cost * lead_to_won * deal_amount),
        "contribution_share": named(share),
        "share_of_leads": named(of_leads),
        "activity_cost": named(activity_cost),
        "lead_to_won": named(lead_to_won),
        "deal_amount": named(deal_amount),
    }


def _named(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    return {ch: float(v) for ch, v in zip(MEDIA_CHANNELS, values, strict=True)}
