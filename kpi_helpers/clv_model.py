r"""Modelled customer lifetime value (CLV): per account and per acquisition channel, with CLV:CAC.

The simple CLV of :func:`kpi_helpers.kpis.customer_lifetime_value` (average yearly revenue per
customer x gross margin x a planned lifetime) stays the documented baseline. This module models
each account's repeat business with PyMC-Marketing's CLV models and gives, with 90% posterior
intervals:

- **per account** the expected gross profit of the next ``horizon_years`` (default 3): the future
  value of a customer one already has;
- **per acquisition channel** the expected gross profit over ``horizon_years`` of a customer newly
  acquired through the channel, its first deal included (what a channel's acquisition cost buys),
  and **CLV:CAC**, that value over the channel's acquisition cost.

**Data.** Only the ``opportunities`` table is needed (``leads`` adds the channel, ``spend`` the
CAC). Every won deal is a purchase, whatever its ``type``; per account, in the engine: won deals,
renewals, expansions, first and last purchase day, the amounts, and the **acquisition channel**,
the channel of the account's first lead (``opportunities.lead_id`` -> ``leads``; accounts without a
lead are ``(sales-sourced)``, :data:`~kpi_helpers.schema.SALES_SOURCED`). Only one row per account
reaches pandas. An account whose first won deal is a renewal or expansion was acquired before the
data starts: its history is cut (left-truncated), so it is left out of the fits and counted in the
notes. Deals are counted up to the end of the quarter (or the data's last day in a quarter in
progress), the *cutoff*.

**Models** (``model`` setting; ``auto`` picks by :func:`choose_model`):

- ``sbg``, **shifted beta-geometric** (Fader & Hardie 2007), for subscriptions: a customer renews
  each contract period (``period_months``, default 12) with probability :math:`1 - \theta`,
  :math:`\theta \sim \text{Beta}(\alpha, \beta)` across customers. Period :math:`1` is the first
  deal; an account is active in periods :math:`1 \ldots 1 + \text{renewals won}` (deals of
  ``type`` renewal), and has had
  :math:`T = 1 + \lfloor (\text{days to cutoff} - g) / \text{period} \rfloor` periods observed,
  :math:`g` = ``renewal_grace_days`` so that a renewal closing late is not read as a churn.
  Customers are grouped in cohorts of equal :math:`T` (acquired in the same period-long band before
  the cutoff; PyMC-Marketing needs one :math:`T` per cohort) that share :math:`\alpha, \beta` up to
  a 10% spread. Probability of being active in period :math:`n`: :math:`S(n) = B(\alpha, \beta + n
  - 1) / B(\alpha, \beta)`. The value of a period is the account's won revenue per paid period
  (expansions included), observed; a channel's mean value is its accounts' mean with a Bayesian
  bootstrap for its uncertainty (renewals repeat their contract's amount, so a spend model has
  nothing to add).

  .. math::

      \text{CLV}_{\text{new}} = m \, \bar v \sum_{n=1}^{H} S(n), \qquad
      \text{CLV}_i = m \, v_i \sum_{k=1}^{H} \frac{S(T_i + k)}{S(T_i)} \;\; (0 \text{ once churned})

- ``bgnbd``, **BG/NBD** (Fader, Hardie & Lee 2005) for repeat deals with **Gamma-Gamma** for their
  value, for non-contractual repeat business. Time is in months (365.25 / 12 days): B2B accounts
  buy a few times a year, so weeks would add resolution no deal date has, and the horizon, the
  contract periods and the priors are all stated in months. The purchase rate is
  :math:`\lambda \sim \text{Gamma}(r, \alpha)` per month, with priors :math:`r \sim
  \text{HalfNormal}(10)` and :math:`\alpha \sim \text{HalfNormal}(120)` months, wide enough for
  accounts buying monthly to once in several years (PyMC-Marketing's defaults, Weibull(2, 1) and
  Weibull(2, 10), put under 2% of their mass above :math:`r = 2` and :math:`\alpha = 20`, where a
  B2B base buying about yearly, :math:`\alpha \approx 12 r`, lies: on a synthetic CRM with
  :math:`r = 2` they pulled the estimate to 1.65). Gamma-Gamma's shape :math:`p` (a customer's
  deal values vary with coefficient of variation :math:`1/\sqrt{p}`) has a HalfNormal(20) prior:
  under the default flat one, deal values that are steady within an account leave its posterior
  improper (:math:`p \to \infty`, seen on the sample). Per account: frequency :math:`x` (purchase
  days after the first), recency :math:`t_x` and age :math:`T` (months from the first purchase
  to the last one and to the cutoff), and the mean repeat purchase value :math:`z` (deals closed
  the same day are one purchase).
  :math:`E[X(t)]` is the expected number of repeat purchases in :math:`t` months, :math:`E[Z]` the
  Gamma-Gamma expected value of one.

  .. math::

      \text{CLV}_{\text{new}} = m \left(\bar f + E[X(H)]\, E[Z]\right), \qquad
      \text{CLV}_i = m \, E[X(H) \mid x_i, t_{x,i}, T_i] \; E[Z \mid x_i, z_i]

  with :math:`\bar f` the channel's mean first purchase (Bayesian bootstrap) and :math:`E[Z]` the
  mean over the channel's repeat customers of their Gamma-Gamma expected value (the population's
  when it has none).

:math:`m` is ``gross_margin`` (``goals.yml``), :math:`H` the horizon (``horizon_years``, in periods
or months); values are in the source's currency, undiscounted like the simple baseline.

**Channels are pooled where data is thin**, never fitted one model each: channels with fewer
than ``min_channel_customers`` acquired accounts are merged into one group (:data:`POOLED`; itself
merged into the largest group if still thin), and each group but the largest (the reference) enters
the single model as an indicator covariate, on the dropout of the sBG (its :math:`\alpha` and
:math:`\beta`) and on the purchase rate and dropout of the BG/NBD, with a Normal(0, 0.5) prior on
its coefficients: a group's parameters differ from the reference's by a factor within
:math:`e^{\pm 1}` a priori, and a group with little data stays close to the reference.

**CLV:CAC** per channel: :math:`\text{CLV}_{\text{new}} / \text{CAC}` with
:math:`\text{CAC} = C / N`, :math:`C` the channel's marketing cost (every cost type but ``sales``:
:func:`kpi_helpers.facts.channel_facts`) and :math:`N` the accounts it acquired, both over the
``cac_quarters`` quarters (default 4) up to the cutoff. Sales cost is tied to no channel, so this is
a marketing CAC (the company CAC of ``metrics.json`` adds sales cost). Its interval divides each
posterior draw of CLV by :math:`C / N^*`, :math:`N^* \sim \text{Poisson}(N)`, as
:func:`kpi_helpers.uncertainty.clv_to_cac_interval` does. A ratio that cannot be given is None with
its reason (sales-sourced customers, no cost, no new customer), never 0.

**Inference**: NUTS, ``chains`` (2) x ``draws`` (1000) after ``tune`` (500), seeded, with a dense
mass matrix (the parameters are strongly correlated) and a target acceptance of 0.9; chains run one
after the other (a 2-core machine shared with other work gains nothing from worker processes). The fit
is converged when every scalar parameter has R-hat <= 1.01, a bulk effective sample size of at
least 100 per chain, and no divergence (:attr:`ClvResult.diagnostics`).

**Cost.** :func:`fit_clv` computes through :meth:`~kpi_helpers.source.DataSource.memo` under a key
naming the dates, every setting and the modelling libraries' versions; the result is kept as JSON
and Arrow frames (:meth:`ClvResult.to_cache`), so a second report of the same data does not refit
and does not even import PyMC.

References
----------
Fader, P. S., Hardie, B. G. S., & Lee, K. L. (2005). "Counting your customers the easy way: an
alternative to the Pareto/NBD model". Marketing Science, 24(2), 275-284.
Fader, P. S., & Hardie, B. G. S. (2007). "How to project customer retention". Journal of
Interactive Marketing, 21(1), 76-90.
Fader, P. S., & Hardie, B. G. S. (2013). "The Gamma-Gamma model of monetary value".
Fader, P. S., & Hardie, B. G. S. (2007). "Incorporating time-invariant covariates into the
Pareto/NBD and BG/NBD models" (note 019).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import math
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import ibis
import numpy as np
import pandas as pd

from . import facts
from . import kpis as K
from .config import Settings
from .exceptions import KpiInputError
from .formats import finite_number
from .periods import Quarter
from .registry import HOW_TO_ADD
from .schema import SALES_SOURCED, UNALLOCATED
from .source import DataSource

__all__ = [
    "METRIC_KEYS",
    "MODELS",
    "POOLED",
    "ClvResult",
    "ClvSettings",
    "account_summary",
    "channel_groups",
    "choose_model",
    "fit_clv",
]

#: the ``model`` setting's values
MODELS = ("auto", "bgnbd", "sbg")
#: how each fitted model is named on a page
MODEL_LABELS = {
    "bgnbd": "BG/NBD with Gamma-Gamma (repeat deals and their value)",
    "sbg": "shifted beta-geometric (contract renewals)",
}
#: the keys of each channel in :meth:`ClvResult.metrics`
METRIC_KEYS = ("clv", "clv_low", "clv_high", "clv_to_cac", "clv_to_cac_low", "clv_to_cac_high")
#: the group thin channels are pooled into
POOLED = "(pooled: thin channels)"
DAYS_PER_MONTH = 365.25 / 12
#: a fit is converged when every scalar parameter has R-hat at most this ...
RHAT_MAX = 1.01
#: ... a bulk effective sample size of at least this per chain, and no divergence
ESS_PER_CHAIN = 100
#: bump when the computation changes what a cached result holds
_VERSION = 1
#: Gamma-Gamma fits values in thousands of the currency: the model is scale-free, and values of
#: order 10 keep its scale parameter away from the sampler's floating-point limits
_VALUE_UNIT = 1_000.0
#: cohorts (bands of equal observed periods) share the sBG's alpha and beta up to this log-scale spread
_COHORT_SPREAD = 0.1
#: prior sd of a channel group's coefficients (log scale): a factor within e^(+-1) at two sd
_COEF_SD = 0.5
#: the libraries whose versions can change a fit (part of the memo key)
_LIBRARIES = ("pymc-marketing", "pymc", "pytensor", "arviz")


@dataclass(frozen=True)
class ClvSettings:
    """The modelled CLV's settings; :meth:`from_settings` takes ``gross_margin`` from ``goals.yml``.

    Attributes
    ----------
    model : str
        ``auto`` (:func:`choose_model`), ``bgnbd`` or ``sbg``.
    horizon_years : float
        Years of future value counted, > 0 (3). In contract periods for the sBG, rounded to whole ones.
    gross_margin : float
        Fraction of revenue that is gross profit, in (0, 1].
    period_months : int
        Length of a contract period for the sBG, months (12: yearly subscriptions).
    renewal_grace_days : int
        Days after a renewal is due before a missing renewal counts as a churn (60).
    min_channel_customers : int
        Acquired accounts a channel needs to get its own coefficients; fewer are pooled (30).
    min_repeat_customers : int
        Repeat customers (BG/NBD) or customers with a renewal decision observed (sBG) the fit
        needs; fewer are refused (20).
    cac_quarters : int
        Quarters up to the cutoff over which CAC counts cost and new customers (4).
    level : float
        Interval level (0.9).
    chains, draws, tune, seed : int
        NUTS: chains, draws kept per chain, tuning steps per chain, random seed.
    """

    model: str = "auto"
    horizon_years: float = 3.0
    gross_margin: float = 0.7
    period_months: int = 12
    renewal_grace_days: int = 60
    min_channel_customers: int = 30
    min_repeat_customers: int = 20
    cac_quarters: int = 4
    level: float = 0.9
    chains: int = 2
    draws: int = 1000
    tune: int = 500
    seed: int = 42

    def __post_init__(self) -> None:
        problems = []
        if self.model not in MODELS:
            problems.append(f"`model` must be one of {', '.join(MODELS)}; got {self.model!r}")
        if not (isinstance(self.horizon_years, int | float) and 0 < self.horizon_years <= 50):
            problems.append(f"`horizon_years` must be a number of years in (0, 50]; got {self.horizon_years!r}")
        if not (isinstance(self.gross_margin, int | float) and 0 < self.gross_margin <= 1):
            problems.append(f"`gross_margin` must be a fraction in (0, 1] (0.7 for 70%); got {self.gross_margin!r}")
        for name, low, high in (
            ("period_months", 1, 60),
            ("renewal_grace_days", 0, 365),
            ("min_channel_customers", 1, 10**6),
            ("min_repeat_customers", 1, 10**6),
            ("cac_quarters", 1, 40),
            ("chains", 1, 16),
            ("draws", 50, 100_000),
            ("tune", 50, 100_000),
            ("seed", 0, 2**32 - 1),
        ):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
                problems.append(f"`{name}` must be a whole number from {low} to {high}; got {value!r}")
        if not (isinstance(self.level, float) and 0 < self.level < 1):
            problems.append(f"`level` must be a fraction between 0 and 1 (0.9 for 90%); got {self.level!r}")
        if not problems and self.horizon_periods < 1:
            problems.append(
                f"`horizon_years` ({self.horizon_years}) is shorter than one contract period "
                f"(`period_months` {self.period_months}); lengthen the horizon"
            )
        if problems:
            raise KpiInputError("modelled CLV settings: " + "; ".join(problems))

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ClvSettings:
        """The defaults with ``goals.yml``'s ``gross_margin``, ``clv_model`` and ``clv_horizon_years``, then
        ``overrides``.

        >>> ClvSettings.from_settings(Settings(gross_margin=0.75), horizon_years=2).gross_margin
        0.75
        """
        from_file = {
            "gross_margin": float(settings.gross_margin),
            "model": str(settings.clv_model),
            "horizon_years": float(settings.clv_horizon_years),
        }
        return cls(**{**from_file, **overrides})

    @property
    def horizon_months(self) -> int:
        """The horizon in whole months (BG/NBD's time unit), rounded."""
        return round(float(self.horizon_years) * 12)

    @property
    def horizon_periods(self) -> int:
        """The horizon in whole contract periods (the sBG's time unit), rounded."""
        return round(self.horizon_months / self.period_months)

    def key(self) -> tuple[tuple[str, Any], ...]:
        """Every setting, for the memo key."""
        return tuple(sorted(dataclasses.asdict(self).items()))


# ---------------------------------------------------------------------------------- the accounts


def _ts(day: dt.date) -> Any:
    return ibis.timestamp(day.isoformat())


def account_summary(src: DataSource, cutoff: dt.date, settings: ClvSettings | None = None) -> pd.DataFrame:
    """One row per account with a won deal closed before ``cutoff``: its purchases and channel.

    Aggregated in the engine (one row per account reaches pandas). Columns, by account:

    - ``channel``: the channel of the account's first lead (earliest ``leads.created_at`` among the
      leads of its opportunities created before the cutoff; ties by ``lead_id``), else
      ``(sales-sourced)``;
    - ``won_deals``, ``new_deals``, ``renewals``, ``expansions``: won deals by ``type`` (no type: new);
    - ``first_won``, ``last_won``: first and last purchase day; ``total_amount``, ``first_amount``
      (the first purchase day's amount), currency;
    - ``acquired``: the first purchase day holds a new-business deal, so the account was won within
      the data (False: acquired before it starts, its history cut);
    - BG/NBD, months: ``frequency`` (purchase days after the first; deals closed the same day are
      one purchase), ``recency`` (first to last purchase), ``T`` (first purchase to the cutoff),
      ``monetary_value`` (mean repeat purchase value, currency; NaN without a repeat purchase);
    - sBG, contract periods of ``settings.period_months``: ``periods_observed``
      :math:`1 + \\lfloor (\\text{days to cutoff} - g) / \\text{period} \\rfloor`, ``periods_active``
      (:math:`\\min(1 + \\text{renewals}, \\text{periods observed})`), ``period_value`` (won revenue
      per paid period :math:`1 + \\text{renewals}`, currency).

    Returns an empty frame (these columns) when no deal was won before the cutoff.
    """
    s = settings or ClvSettings()
    end = _ts(cutoff)
    o = src.table("opportunities")
    won = o.filter((o.stage == "won") & (o.closed_at < end))
    won = won.mutate(
        day=won.closed_at.date(),
        is_new=facts.is_new_business(won).cast("int64"),
        is_renewal=(won.type == "renewal").fill_null(False).cast("int64"),
        is_expansion=(won.type == "expansion").fill_null(False).cast("int64"),
    )
    per_day = won.group_by(["account_id", "day"]).aggregate(
        amount=won.amount.sum(),
        deals=won.count(),
        new_deals=won.is_new.sum(),
        renewals=won.is_renewal.sum(),
        expansions=won.is_expansion.sum(),
    )
    acct = per_day.group_by("account_id").aggregate(
        won_deals=per_day.deals.sum(),
        new_deals=per_day.new_deals.sum(),
        renewals=per_day.renewals.sum(),
        expansions=per_day.expansions.sum(),
        purchase_days=per_day.count(),
        first_won=per_day.day.min(),
        last_won=per_day.day.max(),
        total_amount=per_day.amount.sum(),
        # purchase days are unique per account, so these pick one row
        first_amount=per_day.amount.argmin(per_day.day),
        first_new=per_day.new_deals.argmin(per_day.day),
    )
    leads = src.table("leads")
    linked = o.filter(o.lead_id.notnull() & (o.created_at < end)).select(acc="account_id", lid="lead_id")
    j = linked.join(leads, linked.lid == leads.lead_id).select("acc", "lead_id", "created_at", "channel").distinct()
    first = (
        j.mutate(rn=ibis.row_number().over(ibis.window(group_by="acc", order_by=["created_at", "lead_id"])))
        .filter(lambda t: t.rn == 0)
        .select(first_acc="acc", channel="channel")
    )
    joined = acct.left_join(first, acct.account_id == first.first_acc)
    # An explicit column list keeps the SQL (a memo key) the same in every process.
    out = src.fetch(joined.select(*acct.columns, "channel").order_by("account_id"), label="clv accounts")
    return _derive(out, cutoff, s)


def _derive(raw: pd.DataFrame, cutoff: dt.date, s: ClvSettings) -> pd.DataFrame:
    """The per-account columns computed from the engine's aggregates (see :func:`account_summary`)."""
    df = pd.DataFrame(
        {
            "account_id": raw["account_id"].astype(str).to_numpy(),
            "channel": raw["channel"].astype(object).where(raw["channel"].notna(), SALES_SOURCED).to_numpy(),
        }
    )
    df["channel"] = df["channel"].astype(str)
    for c in ("won_deals", "new_deals", "renewals", "expansions", "purchase_days"):
        df[c] = pd.to_numeric(raw[c]).fillna(0).astype("int64").to_numpy()
    for c in ("first_won", "last_won"):
        df[c] = pd.to_datetime(raw[c]).dt.normalize().astype("datetime64[s]").to_numpy()
    for c in ("total_amount", "first_amount"):
        df[c] = pd.to_numeric(raw[c]).astype(float).to_numpy()
    df["acquired"] = (pd.to_numeric(raw["first_new"]).fillna(0) > 0).to_numpy()
    end = pd.Timestamp(cutoff)
    age_days = (end - df["first_won"]).dt.days.astype(float)
    df["frequency"] = df["purchase_days"] - 1
    df["recency"] = (df["last_won"] - df["first_won"]).dt.days.astype(float) / DAYS_PER_MONTH
    df["T"] = age_days / DAYS_PER_MONTH
    repeat = df["frequency"] > 0
    df["monetary_value"] = np.where(
        repeat, (df["total_amount"] - df["first_amount"]) / df["frequency"].where(repeat, 1), np.nan
    )
    period_days = s.period_months * DAYS_PER_MONTH
    observed = 1 + np.floor(np.maximum(age_days - s.renewal_grace_days, 0) / period_days)
    df["periods_observed"] = observed.astype("int64")
    df["periods_active"] = np.minimum(1 + df["renewals"], df["periods_observed"]).astype("int64")
    df["period_value"] = df["total_amount"] / (1 + df["renewals"])
    return df.set_index("account_id")


def choose_model(accounts: pd.DataFrame, model: str = "auto") -> tuple[str, str]:
    """``(model, why)``: the model to fit and the sentence saying why.

    ``auto`` picks the shifted beta-geometric when renewals are most of the repeat deals, the won
    deals after each account's first (:math:`\\text{renewals} / (\\text{won deals} - \\text{accounts})
    > 0.5`): repeat business is then contracts renewing; otherwise BG/NBD with Gamma-Gamma. Without
    an ``opportunities.type`` column no deal is a renewal, so BG/NBD.

    Examples
    --------
    >>> acc = pd.DataFrame({"won_deals": [3, 1, 2], "renewals": [2, 0, 0]})
    >>> choose_model(acc)[0], choose_model(acc, "bgnbd")[0]
    ('sbg', 'bgnbd')
    """
    if model not in MODELS:
        raise KpiInputError(f"`model` must be one of {', '.join(MODELS)}; got {model!r}")
    repeats = int(accounts["won_deals"].sum()) - len(accounts)
    renewals = int(accounts["renewals"].sum())
    share = renewals / repeats if repeats > 0 else 0.0
    facts_text = f"renewals are {share:.0%} of the {repeats:,} repeat deals"
    if model != "auto":
        return model, f"`model: {model}` is set ({facts_text})"
    if share > 0.5:
        return "sbg", f"{facts_text}: repeat business is contracts renewing"
    return "bgnbd", f"{facts_text}: repeat business is repeat purchases"


def channel_groups(channels: pd.Series, min_customers: int) -> tuple[dict[str, str], str, list[str]]:
    """``(group of each channel, reference group, the other groups)`` for the channel covariate.

    ``channels``: the acquisition channel of each customer in the fit. A channel with at least
    ``min_customers`` customers is its own group; thinner ones are pooled into :data:`POOLED`, which
    joins the largest group if it is itself thinner than ``min_customers``. The largest group is the
    reference (no covariate); ties are broken by name. Every other group gets an indicator column.

    Examples
    --------
    >>> ch = pd.Series(["A"] * 40 + ["B"] * 35 + ["C"] * 20 + ["D"] * 15)
    >>> groups, ref, others = channel_groups(ch, 30)
    >>> groups["C"], ref, others
    ('(pooled: thin channels)', 'A', ['(pooled: thin channels)', 'B'])
    """
    counts = channels.value_counts()
    group = {str(c): (str(c) if n >= min_customers else POOLED) for c, n in counts.items()}
    sizes: dict[str, int] = {}
    for c, n in counts.items():
        sizes[group[str(c)]] = sizes.get(group[str(c)], 0) + int(n)
    real = {g: n for g, n in sizes.items() if g != POOLED}
    if POOLED in sizes and (sizes[POOLED] < min_customers or not real):
        target = sorted(real, key=lambda g: (-real[g], g))[0] if real else POOLED
        group = {c: (target if g == POOLED else g) for c, g in group.items()}
        sizes = {g: sum(int(counts[c]) for c in group if group[c] == g) for g in set(group.values())}
    reference = sorted(sizes, key=lambda g: (-sizes[g], g))[0]
    return group, reference, sorted(g for g in sizes if g != reference)


# ------------------------------------------------------------------------------------ the result


@dataclass
class ClvResult:
    """A modelled CLV: per account, per channel, the parameters and the fit's diagnostics.

    Attributes
    ----------
    model : str
        The model fitted, ``bgnbd`` or ``sbg``; :attr:`label` names it on a page, ``why`` says why.
    quarter, cutoff : str, datetime.date
        The quarter and the (exclusive) day deals are counted up to.
    settings : dict
        Every :class:`ClvSettings` value used.
    accounts : pandas.DataFrame
        Per account (index ``account_id``): the :func:`account_summary` columns, ``group`` and
        ``clv``, ``clv_low``, ``clv_high`` (expected gross profit of the horizon, currency; 0 for a
        subscription already lost; NaN for accounts acquired before the data, with ``clv_reason``);
        BG/NBD adds ``p_alive``, the probability the account is still a customer.
    channels : pandas.DataFrame
        Per channel (index ``channel``): ``group``, ``customers`` (accounts in the fit), ``clv``,
        ``clv_low``, ``clv_high`` (a new customer's expected gross profit over the horizon,
        currency), ``units`` (expected paid periods, sBG, or purchases, BG/NBD, of a new customer
        over the horizon, the first included), ``first_renewal_churn`` with ``_low``/``_high`` (sBG:
        probability a new customer does not renew its first contract; NaN for BG/NBD), ``new_customers``,
        ``marketing_cost``, ``cac`` (over the CAC window), ``clv_to_cac`` with ``_low``/``_high``,
        and ``clv_reason`` / ``clv_to_cac_reason`` ("" where the number is given).
    parameters : pandas.DataFrame
        Posterior summary of every scalar parameter: ``model``, ``parameter``, ``mean``, ``sd``,
        ``low``, ``high`` (the interval), ``r_hat``, ``ess_bulk``.
    diagnostics : dict
        ``method``, ``chains``, ``draws``, ``tune``, ``rhat_max``, ``ess_bulk_min``, ``divergences``,
        ``converged`` (see the module docstring), ``warnings`` (sentences), ``fit_seconds``.
    notes : list of str
        What a reader should know: pooled channels, accounts left out, the CAC window.
    """

    model: str
    why: str
    quarter: str
    cutoff: dt.date
    settings: dict[str, Any]
    accounts: pd.DataFrame
    channels: pd.DataFrame
    parameters: pd.DataFrame
    diagnostics: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The model's name for a page."""
        return MODEL_LABELS[self.model]

    @property
    def converged(self) -> bool:
        return bool(self.diagnostics.get("converged"))

    def metrics(self) -> dict[str, Any]:
        """``{"model": str, "by_channel": {channel: {clv, clv_low, clv_high, clv_to_cac,
        clv_to_cac_low, clv_to_cac_high}}}`` for ``metrics.json``: plain floats, None where a number
        cannot be given (its reason is in :attr:`channels`)."""
        by_channel = {str(ch): {k: finite_number(row[k]) for k in METRIC_KEYS} for ch, row in self.channels.iterrows()}
        return {"model": self.model, "by_channel": by_channel}

    def reason(self, channel: str, key: str = "clv_to_cac") -> str:
        """Why ``key`` (``clv`` or ``clv_to_cac``, with or without ``_low``/``_high``) of ``channel``
        is None ("" when it is given)."""
        base = "clv_to_cac" if key.startswith("clv_to_cac") else "clv"
        return str(self.channels.loc[channel, f"{base}_reason"])

    def to_cache(self) -> dict[str, Any]:
        """The result as the kit's cache stores it (JSON values and Arrow frames, never pickle)."""
        return {
            "version": _VERSION,
            "model": self.model,
            "why": self.why,
            "quarter": self.quarter,
            "cutoff": self.cutoff,
            "settings": dict(self.settings),
            "accounts": self.accounts,
            "channels": self.channels,
            "parameters": self.parameters,
            "diagnostics": dict(self.diagnostics),
            "notes": list(self.notes),
        }

    @classmethod
    def from_cache(cls, payload: Mapping[str, Any]) -> ClvResult:
        """The result :meth:`to_cache` gave."""
        if payload.get("version") != _VERSION:
            raise KpiInputError(f"a modelled CLV of format {payload.get('version')!r}; expected {_VERSION}")
        return cls(**{f.name: payload[f.name] for f in dataclasses.fields(cls)})


# ------------------------------------------------------------------------------------ fitting


def _versions() -> tuple[str, ...]:
    out = []
    for lib in _LIBRARIES:
        try:
            out.append(f"{lib}=={metadata.version(lib)}")
        except metadata.PackageNotFoundError:
            out.append(f"{lib} absent")
    return tuple(out)


def fit_clv(src: DataSource, quarter: str | Quarter = "latest", settings: ClvSettings | None = None) -> ClvResult:
    """The modelled CLV of the accounts won up to the end of ``quarter`` (see the module docstring).

    Computed once per data, dates and settings (:meth:`~kpi_helpers.source.DataSource.memo`).

    Raises
    ------
    KpiInputError
        No ``opportunities``, no won deal before the cutoff, too few customers for the model (the
        message says how many there are and what to do), or a setting out of range.
    """
    s = settings or ClvSettings.from_settings(src.settings)
    if "opportunities" not in src.present:
        raise KpiInputError(
            "modelled CLV needs won deals per account: the source has no `opportunities`; "
            + HOW_TO_ADD["opportunities"]
        )
    q = src.quarter(quarter)
    start, cutoff = facts.so_far(src, q)
    key = ("clv_model", _VERSION, q.label, start.isoformat(), cutoff.isoformat(), s.key(), _versions())
    payload = src.memo(key, lambda: _compute(src, q, cutoff, s).to_cache())
    return ClvResult.from_cache(payload)


def _compute(src: DataSource, q: Quarter, cutoff: dt.date, s: ClvSettings) -> ClvResult:
    accounts = account_summary(src, cutoff, s)
    if accounts.empty:
        raise KpiInputError(
            f"modelled CLV: no deal was won before {cutoff.isoformat()} in `opportunities`; "
            "choose a later quarter, or use the simple CLV (goals.yml `customer_lifetime_years`)"
        )
    model, why = choose_model(accounts, s.model)
    fitted = accounts[accounts["acquired"]]
    notes = []
    left_out = int((~accounts["acquired"]).sum())
    if left_out:
        notes.append(
            f"{left_out} of {len(accounts)} accounts were customers before the data starts (their first won deal "
            "is a renewal or expansion); their history is cut, so they are left out of the fit"
        )
    _check_enough(fitted, model, s)
    groups, reference, others = channel_groups(fitted["channel"], s.min_channel_customers)
    pooled = sorted(c for c, g in groups.items() if g != c)
    if pooled:
        notes.append(
            f"channels with fewer than {s.min_channel_customers} customers share one estimate: "
            + ", ".join(f"{c} (with {groups[c]})" for c in pooled)
        )
    if others:
        notes.append(f"each channel's coefficients are relative to {reference}, the largest group")
    accounts = accounts.assign(group=accounts["channel"].map(groups).fillna(reference))
    started = time.perf_counter()
    with _quiet():
        fit = _fit_sbg(accounts, reference, others, s) if model == "sbg" else _fit_bgnbd(accounts, reference, others, s)
    fit.diagnostics["fit_seconds"] = round(time.perf_counter() - started, 2)
    channels, cac_note = _channels(src, q, cutoff, accounts, groups, fit, s)
    notes.append(cac_note)
    return ClvResult(
        model=model,
        why=why,
        quarter=q.label,
        cutoff=cutoff,
        settings=dict(s.key()),
        accounts=fit.accounts,
        channels=channels,
        parameters=fit.parameters,
        diagnostics=fit.diagnostics,
        notes=notes,
    )


def _check_enough(fitted: pd.DataFrame, model: str, s: ClvSettings) -> None:
    if model == "sbg":
        if int(fitted["renewals"].sum()) == 0:
            raise KpiInputError(
                "modelled CLV: the shifted beta-geometric model needs renewals, and no won deal of an account "
                "acquired in the data has `opportunities.type` renewal yet; use a later quarter (more history), or set "
                "`model: bgnbd`"
            )
        n = int((fitted["periods_observed"] >= 2).sum())
        what = f"customers whose first renewal was due at least {s.renewal_grace_days} days before the cutoff"
    else:
        n = int((fitted["frequency"] > 0).sum())
        what = "customers acquired in the data who bought again (a repeat customer)"
    if n < s.min_repeat_customers:
        raise KpiInputError(
            f"modelled CLV ({MODEL_LABELS[model]}): only {n} {what}, of {len(fitted)} acquired in the data; it "
            f"needs at least {s.min_repeat_customers}. Use a later quarter or more history, or the simple CLV "
            "(goals.yml `customer_lifetime_years`)"
        )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """PyMC's progress lines and PyTensor's BLAS advice stay out of notebook outputs (during the fit only)."""
    import pymc_marketing.clv  # noqa: F401  (PyMC sets its loggers' levels when first imported)

    loggers = [logging.getLogger(name) for name in ("pymc", "pytensor", "pymc_marketing")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*BLAS.*")
            warnings.filterwarnings("ignore", message=".*fit_data.*")
            warnings.filterwarnings("ignore", message="QuadPotentialFullAdapt is an experimental feature")
            warnings.filterwarnings("ignore", category=FutureWarning, module="pymc_marketing")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@dataclass
class _Fit:
    """What a model fit gives :func:`_channels`: draws per group, accounts with their CLV, diagnostics."""

    accounts: pd.DataFrame
    #: per group: posterior draws (chains x draws, flattened) of a new customer's CLV, currency
    group_clv: dict[str, np.ndarray]
    #: per group: mean expected units (periods or purchases) of a new customer over the horizon
    group_units: dict[str, float]
    #: per group: draws of the probability a new customer does not renew its first contract (sBG only)
    group_churn: dict[str, np.ndarray]
    parameters: pd.DataFrame
    diagnostics: dict[str, Any]


def _covariates(frame: pd.DataFrame, others: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with one indicator column per non-reference group, named ``group=<name>`` (the
    coefficients' labels in :attr:`ClvResult.parameters`)."""
    cols = [f"group={g}" for g in others]
    out = frame.copy()
    for col, g in zip(cols, others, strict=True):
        out[col] = (out["group"] == g).astype(float)
    return out, cols


def _sample_kwargs(s: ClvSettings, salt: int) -> dict[str, Any]:
    """NUTS options: chains one after the other (see the module docstring), seeded per model."""
    return {
        "chains": s.chains,
        "cores": 1,
        "draws": s.draws,
        "tune": s.tune,
        "random_seed": int(np.random.SeedSequence([s.seed, salt]).generate_state(1)[0]),
        # a dense mass matrix: the models' parameters are strongly correlated (a channel's effect on
        # alpha against its effect on beta, Gamma-Gamma's p against v); adapting the correlations takes
        # NUTS from about 30 leapfrog steps a draw to a few
        "init": "jitter+adapt_full",
        # smaller steps where BG/NBD's dropout concentration has a long tail (else a divergence or two)
        "target_accept": 0.9,
        "progressbar": False,
        "compute_convergence_checks": False,
    }


def _flat(x: Any) -> np.ndarray:
    """Posterior draws of an xarray with ``chain`` and ``draw`` (and maybe one more dim) as
    ``(chains x draws[, n])``."""
    arr = np.asarray(x.transpose("chain", "draw", ...).values, dtype=float)
    return arr.reshape(arr.shape[0] * arr.shape[1], *arr.shape[2:])


def _interval(draws: np.ndarray, level: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    a = (1 - level) / 2
    low, high = np.nanquantile(draws, [a, 1 - a], axis=axis)
    return low, high


def _bootstrap_means(values: np.ndarray, n: int, seed: list[int]) -> np.ndarray:
    r"""``n`` Bayesian-bootstrap draws of the mean of ``values``: :math:`\sum_i w_i x_i`,
    :math:`w \sim \text{Dirichlet}(1, \ldots, 1)` (Rubin 1981), the posterior of a mean without a model."""
    x = np.sort(np.asarray(values, dtype=float))
    if len(x) == 0:
        return np.full(n, np.nan)
    w = np.random.default_rng(seed).dirichlet(np.ones(len(x)), size=n)
    return w @ x


def _diagnose(idata: Any, name: str, s: ClvSettings) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Posterior summary of one fit's parameters (every variable without a ``customer_id`` dimension:
    scalars, and per cohort or per covariate), with R-hat and bulk effective sample size."""
    import itertools

    import arviz as az

    post = idata.posterior
    names = [v for v in post.data_vars if "customer_id" not in post[v].dims]
    rhat, ess = az.rhat(post[names]), az.ess(post[names], method="bulk")
    rows = []
    for v in names:
        extra = [d for d in post[v].dims if d not in ("chain", "draw")]
        size = int(np.prod([post.sizes[d] for d in extra]))
        draws = _flat(post[v].transpose("chain", "draw", *extra)).reshape(-1, size)
        labels = [
            v + ("[" + ",".join(str(c) for c in combo) + "]" if extra else "")
            for combo in itertools.product(*(post[v].coords[d].values for d in extra))
        ]
        r = np.asarray(rhat[v].transpose(*extra).values, dtype=float).reshape(-1)
        e = np.asarray(ess[v].transpose(*extra).values, dtype=float).reshape(-1)
        low, high = _interval(draws, s.level)
        for k, label in enumerate(labels):
            rows.append(
                {
                    "model": name,
                    "parameter": label,
                    "mean": float(draws[:, k].mean()),
                    "sd": float(draws[:, k].std(ddof=1)),
                    "low": float(low[k]),
                    "high": float(high[k]),
                    "r_hat": float(r[k]),
                    "ess_bulk": float(e[k]),
                }
            )
    divergences = int(idata.sample_stats["diverging"].sum().item())
    return pd.DataFrame(rows), {"divergences": divergences}


def _diagnostics(parts: list[tuple[pd.DataFrame, dict[str, Any]]], s: ClvSettings) -> tuple[pd.DataFrame, dict]:
    table = pd.concat([p for p, _ in parts], ignore_index=True)
    divergences = sum(d["divergences"] for _, d in parts)
    rhat_max = float(np.nanmax(table["r_hat"])) if len(table) else math.nan
    ess_min = float(np.nanmin(table["ess_bulk"])) if len(table) else math.nan
    warnings_ = []
    if s.chains < 2:
        warnings_.append("one chain: R-hat, whether chains agree, cannot be computed; use `chains: 2` or more")
    elif not rhat_max <= RHAT_MAX:
        worst = table.iloc[int(np.nanargmax(table["r_hat"]))]
        warnings_.append(
            f"R-hat up to {rhat_max:.3f} ({worst['model']} `{worst['parameter']}`; converged chains give at most "
            f"{RHAT_MAX}): the chains disagree, so the intervals are not reliable; raise `tune` and `draws`"
        )
    if not ess_min >= ESS_PER_CHAIN * s.chains:
        worst = table.iloc[int(np.nanargmin(table["ess_bulk"]))]
        warnings_.append(
            f"effective sample size down to {ess_min:.0f} ({worst['model']} `{worst['parameter']}`; at least "
            f"{ESS_PER_CHAIN * s.chains} wanted): the interval ends are uncertain; raise `draws`"
        )
    if divergences:
        warnings_.append(
            f"{divergences} divergent transitions: the sampler missed part of the posterior; the intervals may be "
            "too narrow"
        )
    diag = {
        "method": "NUTS (PyMC)",
        "chains": s.chains,
        "draws": s.draws,
        "tune": s.tune,
        "rhat_max": rhat_max,
        "ess_bulk_min": ess_min,
        "divergences": divergences,
        "converged": not warnings_,
        "warnings": warnings_,
    }
    return table, diag


def _customer_values(result: Any, ids: list[str]) -> np.ndarray:
    """Draws ``(chains x draws, len(ids))`` of a PyMC-Marketing prediction, in the order of ``ids``.

    The sBG's predictions come back along a ``cohort`` dimension with ``customer_id`` as a
    coordinate; the BG/NBD's along ``customer_id``. Either way the rows are matched by id.
    """
    dim = next(d for d in result.dims if d not in ("chain", "draw"))
    got = [str(c) for c in result.coords["customer_id"].values]
    where = {c: i for i, c in enumerate(got)}
    flat = _flat(result.transpose("chain", "draw", dim))
    return flat[:, [where[i] for i in ids]]


def _fit_sbg(accounts: pd.DataFrame, reference: str, others: list[str], s: ClvSettings) -> _Fit:
    from pymc_extras.prior import Prior
    from pymc_marketing.clv import ShiftedBetaGeoModel

    acquired = accounts[accounts["acquired"]]
    data, cols = _covariates(acquired, others)
    data = data.assign(
        customer_id=data.index.astype(str),
        recency=data["periods_active"],
        T=data["periods_observed"],
        cohort=data["periods_observed"].astype(str),
    )
    train = data[data["T"] >= 2]

    def pooled_log(mu: float) -> Any:
        # log alpha (log beta) of each cohort: a shared mean and a small fixed spread, non-centred
        return Prior(
            "Normal",
            mu=Prior("Normal", mu=mu, sigma=1.5),
            sigma=_COHORT_SPREAD,
            dims="cohort",
            centered=False,
            transform="exp",
        )

    config: dict[str, Any] = {"alpha": pooled_log(0.0), "beta": pooled_log(1.0)}
    if cols:
        config |= {"dropout_coefficient": Prior("Normal", mu=0, sigma=_COEF_SD), "dropout_covariate_cols": cols}
    model = ShiftedBetaGeoModel(model_config=config)
    model.fit(data=train[["customer_id", "recency", "T", "cohort", *cols]], **_sample_kwargs(s, 1))
    parts = [_diagnose(model.idata, "sBG", s)]

    cohorts = train["cohort"].value_counts().sort_index()
    weights = (cohorts / cohorts.sum()).to_dict()
    fitted_cohorts = sorted(cohorts.index)  # sorted, not a set: the same sums in every process
    horizon = s.horizon_periods
    # Rows to predict: S(n) = P(active in period n) = alive(T = n - 1), for every group x cohort and
    # every account; S(1) = 1 needs no prediction (the library refuses T = 0).
    rows: list[dict[str, Any]] = []
    group_rows = [reference, *others]
    for g in group_rows:
        for c in fitted_cohorts:
            for n in range(2, horizon + 1):
                rows.append({"customer_id": f"g|{g}|{c}|{n}", "group": g, "cohort": c, "T": n - 1})
    active = data[data["periods_active"] >= data["periods_observed"]]
    for acc, r in active.iterrows():
        t0 = int(r["T"])
        for c in [r["cohort"]] if r["cohort"] in weights else fitted_cohorts:
            for n in range(t0, t0 + horizon + 1):  # S(T_i) ... S(T_i + H)
                if n >= 2:
                    rows.append({"customer_id": f"a|{acc}|{c}|{n}", "group": r["group"], "cohort": c, "T": n - 1})
    pred, _ = _covariates(pd.DataFrame(rows), others)
    alive = model.expected_probability_alive(data=pred[["customer_id", "T", "cohort", *cols]], future_t=0)
    ids = list(pred["customer_id"])
    draws = _customer_values(alive, ids)
    at = {i: draws[:, k] for k, i in enumerate(ids)}
    n_draws = draws.shape[0]
    one = np.ones(n_draws)

    def survival(prefix: str, c: str, n: int) -> np.ndarray:
        return one if n <= 1 else at[f"{prefix}|{c}|{n}"]

    # a new customer: the cohorts' mix
    units: dict[str, np.ndarray] = {}
    churn: dict[str, np.ndarray] = {}
    for g in group_rows:
        paid, first_kept = np.zeros(n_draws), np.zeros(n_draws)
        for c in fitted_cohorts:
            for n in range(1, horizon + 1):
                paid += weights[c] * survival(f"g|{g}", c, n)
            first_kept += weights[c] * survival(f"g|{g}", c, 2)
        units[g], churn[g] = paid, 1 - first_kept

    margin = s.gross_margin
    out = accounts.copy()
    future_draws: dict[str, np.ndarray] = {}
    for acc, r in active.iterrows():
        t0 = int(r["T"])
        cs = [r["cohort"]] if r["cohort"] in weights else fitted_cohorts
        e = np.zeros(n_draws)
        for c in cs:
            w = 1.0 if len(cs) == 1 else weights[c]
            now = survival(f"a|{acc}", c, t0)
            for k in range(1, horizon + 1):
                e += w * survival(f"a|{acc}", c, t0 + k) / now
        future_draws[str(acc)] = e
    _account_clv(out, data, future_draws, {str(a): margin * v for a, v in data["period_value"].items()}, s)

    group_clv: dict[str, np.ndarray] = {}
    for i, g in enumerate(group_rows):
        values = acquired.loc[acquired["group"] == g, "period_value"].to_numpy()
        v = _bootstrap_means(values, n_draws, [s.seed, 2, i])
        group_clv[g] = margin * v * units[g]
    parameters, diagnostics = _diagnostics(parts, s)
    return _Fit(out, group_clv, {g: float(np.mean(u)) for g, u in units.items()}, churn, parameters, diagnostics)


def _account_clv(
    out: pd.DataFrame, data: pd.DataFrame, units: dict[str, np.ndarray], value: Mapping[str, Any], s: ClvSettings
) -> None:
    """Fill ``clv``, ``clv_low``, ``clv_high`` and ``clv_reason`` of ``out`` (in place): per account of
    ``data``, ``value`` (gross profit per unit, currency: a number or per-draw values) x ``units``
    (draws of the units expected over the horizon); 0 for an account of ``data`` without units (a
    churned subscription: a lost contract ends the account), NaN for accounts outside ``data``."""
    clv: dict[str, float] = {}
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    for acc in data.index.astype(str):
        if acc not in units:
            clv[acc] = low[acc] = high[acc] = 0.0
            continue
        d = units[acc] * value[acc]
        lo, hi = _interval(d, s.level)
        clv[acc], low[acc], high[acc] = float(np.mean(d)), float(lo), float(hi)
    ids = out.index.astype(str)
    out["clv"] = [clv.get(i, math.nan) for i in ids]
    out["clv_low"] = [low.get(i, math.nan) for i in ids]
    out["clv_high"] = [high.get(i, math.nan) for i in ids]
    out["clv_reason"] = np.where(
        out["acquired"], "", "a customer from before the data starts (history cut): left out of the fit"
    )


def _fit_bgnbd(accounts: pd.DataFrame, reference: str, others: list[str], s: ClvSettings) -> _Fit:
    from pymc_extras.prior import Prior
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    acquired = accounts[accounts["acquired"]]
    data, cols = _covariates(acquired, others)
    data = data.assign(customer_id=data.index.astype(str))
    config: dict[str, Any] = {"r": Prior("HalfNormal", sigma=10), "alpha": Prior("HalfNormal", sigma=120)}
    if cols:
        coef = Prior("Normal", mu=0, sigma=_COEF_SD)
        config |= {
            "purchase_coefficient": coef,
            "dropout_coefficient": coef,
            "purchase_covariate_cols": cols,
            "dropout_covariate_cols": cols,
        }
    bg = BetaGeoModel(model_config=config)
    bg.fit(data=data[["customer_id", "frequency", "recency", "T", *cols]], **_sample_kwargs(s, 1))
    repeat = data[data["frequency"] > 0].assign(monetary_value=lambda d: d["monetary_value"] / _VALUE_UNIT)
    # p (a customer's deal values vary with coefficient of variation 1/sqrt(p)): under the default flat
    # prior B2B deal values, steady within an account, leave p's posterior improper (p -> inf).
    gg = GammaGammaModel(model_config={"p": Prior("HalfNormal", sigma=20)})
    gg.fit(data=repeat[["customer_id", "frequency", "monetary_value"]], **_sample_kwargs(s, 2))
    parts = [_diagnose(bg.idata, "BG/NBD", s), _diagnose(gg.idata, "Gamma-Gamma", s)]

    horizon = s.horizon_months
    group_rows = [reference, *others]
    new, _ = _covariates(pd.DataFrame({"customer_id": group_rows, "group": group_rows}), others)
    new_units = _customer_values(bg.expected_purchases_new_customer(data=new, t=horizon), group_rows)
    spend = _customer_values(gg.expected_customer_spend(repeat), list(repeat["customer_id"])) * _VALUE_UNIT
    population = _flat(gg.expected_new_customer_spend()) * _VALUE_UNIT
    n_draws = new_units.shape[0]
    units: dict[str, np.ndarray] = {}
    group_clv: dict[str, np.ndarray] = {}
    rep_group = repeat["group"].to_numpy()
    for i, g in enumerate(group_rows):
        mine = rep_group == g
        repeat_value = spend[:, mine].mean(axis=1) if mine.any() else population
        first = _bootstrap_means(
            acquired.loc[acquired["group"] == g, "first_amount"].to_numpy(), n_draws, [s.seed, 2, i]
        )
        units[g] = 1 + new_units[:, i]
        group_clv[g] = s.gross_margin * (first + new_units[:, i] * repeat_value)

    ids = list(data["customer_id"])
    history = data[["customer_id", "frequency", "recency", "T", *cols]]
    future = _customer_values(bg.expected_purchases(data=history, future_t=horizon), ids)
    per_spend = {c: spend[:, k] for k, c in enumerate(repeat["customer_id"])}
    value = {c: s.gross_margin * per_spend.get(c, population) for c in ids}
    out = accounts.copy()
    _account_clv(out, data, {c: future[:, k] for k, c in enumerate(ids)}, value, s)
    alive = _customer_values(bg.expected_probability_alive(data=history), ids)
    out["p_alive"] = pd.Series(alive.mean(axis=0), index=data.index)
    parameters, diagnostics = _diagnostics(parts, s)
    return _Fit(out, group_clv, {g: float(np.mean(u)) for g, u in units.items()}, {}, parameters, diagnostics)


# ------------------------------------------------------------------------------------ channels


def _channels(
    src: DataSource,
    q: Quarter,
    cutoff: dt.date,
    accounts: pd.DataFrame,
    groups: dict[str, str],
    fit: _Fit,
    s: ClvSettings,
) -> tuple[pd.DataFrame, str]:
    """Per channel: CLV of a new customer, CAC over the window and CLV:CAC, with intervals and reasons."""
    first = q.shift(-(s.cac_quarters - 1))
    window = f"{first.label}-{q.label}" if s.cac_quarters > 1 else q.label
    acquired = accounts[accounts["acquired"]]
    in_window = acquired[
        (acquired["first_won"] >= pd.Timestamp(first.start)) & (acquired["first_won"] < pd.Timestamp(cutoff))
    ]
    new_customers = in_window["channel"].value_counts()
    cost, cost_reason = _marketing_cost(src, first, q)
    # the channels customers came through, and those that cost something in the window
    channels = sorted(set(acquired["channel"]) | {str(c) for c, v in cost.items() if v > 0 and c != UNALLOCATED})
    rows = []
    for i, ch in enumerate(channels):
        g = groups.get(ch, "")
        row: dict[str, Any] = {"channel": ch, "group": g, "customers": int((acquired["channel"] == ch).sum())}
        draws = fit.group_clv.get(g)
        if draws is None:
            row |= {"clv": math.nan, "clv_low": math.nan, "clv_high": math.nan, "units": math.nan}
            row |= {"first_renewal_churn": math.nan, "first_renewal_churn_low": math.nan}
            row["first_renewal_churn_high"] = math.nan
            row["clv_reason"] = f"no customer acquired through {ch} before {cutoff.isoformat()}"
        else:
            lo, hi = _interval(draws, s.level)
            row |= {"clv": float(np.mean(draws)), "clv_low": float(lo), "clv_high": float(hi)}
            row["units"] = fit.group_units[g]
            churn = fit.group_churn.get(g)
            c_lo, c_hi = _interval(churn, s.level) if churn is not None else (math.nan, math.nan)
            row["first_renewal_churn"] = float(np.mean(churn)) if churn is not None else math.nan
            row |= {"first_renewal_churn_low": float(c_lo), "first_renewal_churn_high": float(c_hi)}
            row["clv_reason"] = ""
        n = int(new_customers.get(ch, 0))
        c = float(cost.get(ch, 0.0)) if not cost_reason else math.nan
        row |= {"new_customers": n, "marketing_cost": c}
        cac = K.customer_acquisition_cost(c, 0.0, n) if not cost_reason else K.Undefined(cost_reason)
        row["cac"] = float(cac)
        why = ""
        if ch == SALES_SOURCED:
            why = "sales-sourced customers come from sales, whose cost is tied to no marketing channel"
        elif cost_reason:
            why = cost_reason
        elif draws is None:
            why = row["clv_reason"]
        elif n == 0:
            why = f"no customer was acquired through {ch} in {window}"
        elif c <= 0:
            why = f"no marketing cost of {ch} in {window} (CAC is 0)"
        if why or draws is None:
            row |= {"clv_to_cac": math.nan, "clv_to_cac_low": math.nan, "clv_to_cac_high": math.nan}
        else:
            ratio = float(K.clv_to_cac(float(np.mean(draws)), float(cac)))
            rng = np.random.default_rng([s.seed, 3, i])
            n_star = rng.poisson(n, size=len(draws)).astype(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(n_star > 0, draws * n_star / c, np.nan)
            lo, hi = _interval(r, s.level) if np.isfinite(r).mean() >= 0.5 else (math.nan, math.nan)
            row |= {"clv_to_cac": ratio, "clv_to_cac_low": float(lo), "clv_to_cac_high": float(hi)}
        row["clv_to_cac_reason"] = why
        rows.append(row)
    out = pd.DataFrame(rows).set_index("channel")
    out["group"] = out["group"].astype(str)
    note = (
        f"CAC per channel: its marketing cost (every cost type but sales) over the customers it acquired, both in "
        f"{window}; sales cost is tied to no channel, so CLV:CAC here is higher than with the company CAC"
    )
    return out, note


def _marketing_cost(src: DataSource, first: Quarter, last: Quarter) -> tuple[pd.Series, str]:
    """Marketing cost per channel summed over ``first``..``last`` (:func:`kpi_helpers.facts.channel_facts`),
    and why it cannot be given ("" when it can)."""
    if "spend" not in src.present:
        return pd.Series(dtype=float), f"needs spend: {HOW_TO_ADD['spend']}"
    total = pd.Series(dtype=float)
    q = first
    while q.key <= last.key:
        df = facts.channel_facts(src, q)
        if df["marketing_cost"].isna().any():
            return pd.Series(dtype=float), f"`spend` does not cover {q.label}, part of the CAC window"
        total = total.add(df["marketing_cost"], fill_value=0.0)
        q = q.shift(1)
    return total, ""
