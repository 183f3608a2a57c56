"""The sample's pipeline and customers: a known process for deals, renewals and expansions.

**Deals** (new business and expansions) move through the open stages of :data:`OPEN_STAGES`. In
stage ``s`` a deal of origin ``o`` (the lead's channel, sales-sourced, or an expansion) spends a
Gamma-distributed time (shape :data:`STAGE_SHAPE`, mean ``STAGE_DAYS[s] x CYCLE_FACTOR[o] x
(amount / median amount of o) ** AMOUNT_ELASTICITY`` days; bigger deals move slower), then moves to
the next stage with probability ``p[s, o] = STAGE_ADVANCE[s] ** k[o]`` or is lost. After the last
stage it is won. ``k[o]`` is chosen so that the probability of winning, the product of the four,
is exactly ``WIN_RATE[o]`` (:func:`advance_probabilities`). Closing won and closing lost are thus
competing risks whose daily hazards depend on the deal's age (through the stages) and amount;
deals not closed by the data's last day are open (blank ``closed_at``), which is what a forecast
must handle. Every stage change is a row of ``opportunity_history`` with the amount then known:
the first estimate (off by :data:`ESTIMATE_DRIFT`), revised at the proposal, final from negotiation.

**Customers.** Each won new deal starts a yearly subscription (its amount is the yearly value).
A renewal opportunity opens :data:`RENEWAL_LEAD_DAYS` before the term ends and closes around its
end; an account renews with probability ``1 - theta`` each year, where ``theta ~ Beta(a, b)`` is drawn
once per account (the shifted beta-geometric model; ``a``, ``b`` from :data:`CHURN_MEAN` by
acquisition origin and :data:`CHURN_CONCENTRATION`). A lost renewal ends the account. A renewal's
amount is the last term's times ``1 + N(RENEWAL_UPLIFT)``. While an account lives, expansion deals
arrive as a Poisson process with a rate per account drawn from a Gamma distribution
(:data:`EXPANSION_SHAPE`, mean :data:`EXPANSION_PER_YEAR`), and go through the stages above.
Accounts from before the CRM export (:data:`LEGACY_ACCOUNTS`) renew and expand the same way.

**Revenue** (recognised, by month): every won deal of any type is recognised evenly over the 12
months from the month it closes, plus services worth :data:`SERVICES_SHARE` of that. So bookings
lead revenue by up to a year.
"""

from __future__ import annotations

from typing import cast

import numpy as np

DAY = 86_400
#: open pipeline stages, in order; a deal leaves the last one won
OPEN_STAGES = ("qualification", "discovery", "proposal", "negotiation")
#: mean days in each stage at cycle factor 1 and the origin's median amount
STAGE_DAYS = np.array([15.0, 28.0, 35.0, 25.0])
#: shape of the Gamma time in a stage (above 1: a hazard that rises over the first days)
STAGE_SHAPE = 2.5
#: probability of moving on from each stage at the base win rate (their product, about 0.25)
STAGE_ADVANCE = np.array([0.68, 0.62, 0.72, 0.82])
#: time in stage grows with (amount / the origin's median amount) to this power
AMOUNT_ELASTICITY = 0.3
#: the first amount estimate is the final amount times exp(N(mean, sd)); the proposal's, exp(N(0, sd2))
ESTIMATE_DRIFT = (0.08, 0.15, 0.05)
#: days before the term ends that a renewal opportunity opens
RENEWAL_LEAD_DAYS = 90
#: days from term end to a renewal's close: mean and sd (won), mean and sd (lost)
RENEWAL_CLOSE = (-5.0, 10.0, 5.0, 15.0)
#: yearly price uplift of a renewal: mean and sd
RENEWAL_UPLIFT = (0.05, 0.04)
#: mean churn a year (theta) by acquisition origin: the seven channels, sales-sourced, legacy accounts
CHURN_MEAN = np.array([0.25, 0.27, 0.38, 0.25, 0.16, 0.22, 0.17, 0.20, 0.15])
#: a + b of the Beta distribution of theta (smaller: accounts differ more)
CHURN_CONCENTRATION = 6.0
#: expansions a year per account: Gamma shape and mean
EXPANSION_SHAPE, EXPANSION_PER_YEAR = 0.8, 0.3
#: accounts from before the CRM export at scale 1, their median yearly amount at `start`'s prices
LEGACY_ACCOUNTS, LEGACY_MEDIAN = 120, 24_000.0
#: services revenue as a share of recognised subscription revenue, and the sd of its monthly noise
SERVICES_SHARE, SERVICES_SD = 0.06, 0.15


def advance_probabilities(win_rate: np.ndarray) -> np.ndarray:
    """``p[o, s]``: probability of moving on from stage ``s`` for win rate ``win_rate[o]``.

    ``p[o, s] = STAGE_ADVANCE[s] ** k[o]`` with ``k[o] = log(win_rate[o]) / log(prod(STAGE_ADVANCE))``,
    so that ``prod_s p[o, s] = win_rate[o]`` and every ``p`` stays in (0, 1).

    Examples
    --------
    >>> p = advance_probabilities(np.array([0.3, 0.5]))
    >>> p.prod(axis=1).round(6).tolist()
    [0.3, 0.5]
    """
    k = np.log(win_rate) / np.log(STAGE_ADVANCE.prod())
    return STAGE_ADVANCE[None, :] ** k[:, None]


def stage_process(
    rng: np.random.Generator, created: np.ndarray, advance: np.ndarray, mean_days: np.ndarray, won: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Run deals through the open stages, given whether each is won.

    Drawing the outcome first (`won`, with probability ``prod(advance)``; the caller draws it in
    steady shares per origin and year) and then the stage a lost deal leaves at, with probability
    ``P(reach s) (1 - p[s]) / (1 - prod p)``, is the sequential process of the module docstring
    with its outcome stratified.

    Parameters
    ----------
    created : ndarray of int
        Creation times, seconds.
    advance : ndarray, shape (n, 4)
        Probability of moving on from each stage.
    mean_days : ndarray, shape (n, 4)
        Mean days in each stage.
    won : ndarray of bool
        The outcome of each deal.

    Returns
    -------
    enter : ndarray of float, shape (n, 4)
        Seconds at which each stage was entered (NaN if never); ``enter[:, 0]`` is `created`.
    closed : ndarray of float
        Seconds at which the deal was won or lost.
    """
    n, k = cast("tuple[int, int]", advance.shape)  # deals x stages
    reach = np.concatenate([np.ones((n, 1)), np.cumprod(advance, axis=1)[:, :-1]], axis=1)
    leave = reach * (1 - advance)  # probability of being lost in each stage
    cum = np.cumsum(leave, axis=1) / leave.sum(axis=1, keepdims=True)
    lost_at = (rng.random(n)[:, None] > cum).sum(axis=1)
    last = np.where(won, k - 1, np.minimum(lost_at, k - 1))  # the last stage a deal is in
    days = rng.gamma(STAGE_SHAPE, mean_days / STAGE_SHAPE)
    t = created[:, None] + np.concatenate([np.zeros((n, 1)), np.cumsum(days, axis=1)], axis=1) * DAY
    stage = np.arange(k)[None, :]
    enter = np.where(stage <= last[:, None], t[:, :k], np.nan)
    closed = t[np.arange(n), last + 1]
    return enter, closed


def renewals(
    rng: np.random.Generator, start: np.ndarray, amount: np.ndarray, theta: np.ndarray, until: int
) -> dict[str, np.ndarray]:
    """Renewal opportunities of accounts whose first term starts at `start` (seconds).

    Each account renews yearly with probability ``1 - theta`` until a renewal is lost or the next
    one would open after `until` (seconds). Returns one entry per renewal: ``account`` (index into
    the inputs), ``created``, ``closed``, ``won``, ``amount``; plus ``ends``, per account, the time
    its last known term ends or it churned (the end of its life for expansions).
    """
    n = len(start)
    idx = np.arange(n)
    term_start, amt = start.astype(float), amount.astype(float)
    ends = np.full(n, float(until))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("account", "created", "closed", "won", "amount")}
    while len(idx):
        term_end = term_start + 365 * DAY
        created = term_end - RENEWAL_LEAD_DAYS * DAY
        live = created <= until
        ends[idx[~live]] = np.minimum(term_end[~live], until)
        idx, term_end, created, amt, th = idx[live], term_end[live], created[live], amt[live], theta[idx[live]]
        m = len(idx)
        won = rng.random(m) < 1 - th
        mu_w, sd_w, mu_l, sd_l = RENEWAL_CLOSE
        offset = np.where(won, rng.normal(mu_w, sd_w, m), rng.normal(mu_l, sd_l, m))
        closed = np.maximum(term_end + offset * DAY, created + DAY)
        new_amt = np.round(amt * (1 + rng.normal(*RENEWAL_UPLIFT, m)), -2)
        for k, v in (("account", idx), ("created", created), ("closed", closed), ("won", won), ("amount", new_amt)):
            parts[k].append(v)
        ends[idx[~won]] = np.minimum(closed[~won], until)
        idx, term_start, amt = idx[won], term_end[won], new_amt[won]
    out = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    out["account"] = out["account"].astype(np.int64)
    out["won"] = out["won"].astype(bool)
    out["ends"] = ends
    return out


def expansion_times(rng: np.random.Generator, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Creation times (seconds) of expansion deals of accounts alive from `start` to `end`, and
    their account index: a Poisson process per account with a Gamma-distributed yearly rate."""
    rate = rng.gamma(EXPANSION_SHAPE, EXPANSION_PER_YEAR / EXPANSION_SHAPE, len(start))
    years = np.maximum(end - start, 0) / (365.25 * DAY)
    count = rng.poisson(rate * years)
    account = np.repeat(np.arange(len(start)), count)
    at = start[account] + rng.random(len(account)) * (end - start)[account]
    return at, account


def churn_beta(origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Beta parameters ``a, b`` of theta for each origin (index into :data:`CHURN_MEAN`)."""
    mean = CHURN_MEAN[origin]
    return mean * CHURN_CONCENTRATION, (1 - mean) * CHURN_CONCENTRATION


def recognised(months: np.ndarray, closed_month: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Subscription revenue per month of `months` (consecutive): each amount over the 12 months
    from its close month (months since 1970)."""
    nm = len(months)
    if not nm:
        return np.zeros(0)
    m = closed_month - months[0]
    spread = (m[:, None] + np.arange(12)).ravel()
    inside = (spread >= 0) & (spread < nm)
    return np.bincount(spread[inside], weights=np.repeat(amount / 12, 12)[inside], minlength=nm)
