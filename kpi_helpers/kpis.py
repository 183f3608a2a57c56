"""Marketing KPI formulas: small pure functions, scalars or pandas Series in, the same out.

Every ratio goes through :func:`safe_divide`, so a zero or missing denominator never gives ``inf`` or
an exception: scalars come back as :class:`Undefined` (a NaN that carries the reason) and Series as
float Series with NaN in those rows and the reason in ``result.attrs["nan_reason"]``. Rates are
fractions (0-1); presentation formats them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeAlias, overload

import numpy as np
import pandas as pd

from .exceptions import KpiInputError

__all__ = [
    "KpiInputError",
    "Undefined",
    "average_yearly_revenue_per_customer",
    "avg_session_duration",
    "bounce_rate",
    "clv_to_cac",
    "conversion_rate",
    "cost_per_lead",
    "customer_acquisition_cost",
    "customer_lifetime_value",
    "email_open_rate",
    "goal_conversion_rate",
    "growth",
    "kpi_status",
    "lead_to_customer_rate",
    "marketing_roi",
    "new_user_share",
    "progress",
    "ratio_label",
    "returning_users",
    "run_rate_projection",
    "safe_divide",
    "value_per_lead",
    "value_per_visit",
    "visit_to_lead_rate",
    "visits_per_lead",
]

#: A number, or a pandas Series / numpy array of numbers.
Values: TypeAlias = float | int | np.ndarray | pd.Series
#: What a KPI returns: a float (possibly :class:`Undefined`), a float array or a float Series.
Result: TypeAlias = float | np.ndarray | pd.Series


class Undefined(float):
    """A NaN that says why it is undefined.

    Behaves like ``float("nan")`` (``math.isnan`` is true, it compares unequal to everything) and
    carries a ``reason``. Arithmetic with it gives another ``Undefined`` with the same reason, so
    the reason survives ``1 - rate`` or ``cost + other``.

    Examples
    --------
    >>> x = Undefined("no leads in the period")
    >>> x
    nan (no leads in the period)
    >>> math.isnan(x), x.reason
    (True, 'no leads in the period')
    >>> 1 - x
    nan (no leads in the period)
    """

    __slots__ = ("reason",)
    reason: str

    def __new__(cls, reason: str = "undefined") -> Undefined:
        self = super().__new__(cls, math.nan)
        self.reason = str(reason)
        return self

    def __repr__(self) -> str:
        return f"nan ({self.reason})"

    def __reduce__(self) -> tuple[type[Undefined], tuple[str]]:
        return (Undefined, (self.reason,))


def _keep_reason(name: str) -> Callable[..., Any]:
    base = getattr(float, name)

    def op(self: Undefined, *args: Any) -> Any:
        result = base(self, *args)
        if isinstance(result, float) and math.isnan(result):
            return Undefined(self.reason)
        return result

    op.__name__ = name
    return op


for _name in (
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
    "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__", "__rpow__",
    "__neg__", "__pos__", "__abs__",
):  # fmt: skip
    setattr(Undefined, _name, _keep_reason(_name))


# --------------------------------------------------------------------------------------------------
# safe division


def _scalar(x: Any) -> float:
    """``x`` as a float; None, pd.NA and NaT become NaN."""
    if x is None or x is pd.NA or x is pd.NaT:
        return math.nan
    return float(x)


def _values(x: Any) -> np.ndarray | float:
    if isinstance(x, pd.Series | pd.Index):
        return x.to_numpy(dtype=float, na_value=np.nan)
    if np.ndim(x) == 0:
        return _scalar(x)
    return np.asarray(x, dtype=float)


def _scalar_reason(x: Any, default: str) -> str:
    return x.reason if isinstance(x, Undefined) else default


def _divide_scalar(numerator: Any, denominator: Any, reason: str | None) -> float:
    den = _scalar(denominator)
    if den == 0:
        return Undefined(reason or "denominator is zero")
    if math.isnan(den):
        return Undefined(_scalar_reason(denominator, reason or "denominator is missing"))
    num = _scalar(numerator)
    if math.isnan(num):
        return Undefined(_scalar_reason(numerator, "numerator is missing"))
    result = num / den
    if not math.isfinite(result):
        return Undefined("result is not finite")
    return result


def _series_name(a: Any, b: Any) -> Any:
    names = {x.name for x in (a, b) if isinstance(x, pd.Series)}
    return names.pop() if len(names) == 1 else None


def _divide_series(numerator: Any, denominator: Any, reason: str | None) -> pd.Series:
    if isinstance(numerator, pd.Series) and isinstance(denominator, pd.Series):
        numerator, denominator = numerator.align(denominator)
    index = numerator.index if isinstance(numerator, pd.Series) else denominator.index
    num = np.broadcast_to(_values(numerator), (len(index),))
    den = np.broadcast_to(_values(denominator), (len(index),))
    with np.errstate(all="ignore"):
        raw = num / den
    zero, missing = den == 0, np.isnan(den)
    num_missing = np.isnan(num) & ~zero & ~missing
    not_finite = ~np.isfinite(raw) & ~zero & ~missing & ~num_missing  # e.g. overflow, inf / inf
    values = np.where(np.isfinite(raw), raw, np.nan)
    result = pd.Series(values, index=index, name=_series_name(numerator, denominator))

    def attr(x: Any, default: str) -> str:
        own = x.attrs.get("nan_reason") if isinstance(x, pd.Series) else None
        return own or _scalar_reason(x, default)

    reasons = []
    if zero.any():
        reasons.append(reason or "denominator is zero")
    if missing.any():
        reasons.append(attr(denominator, reason or "denominator is missing"))
    if num_missing.any():
        reasons.append(attr(numerator, "numerator is missing"))
    if not_finite.any():
        reasons.append("result is not finite")
    if reasons:
        result.attrs["nan_reason"] = "; ".join(dict.fromkeys(reasons))
    return result


@overload
def safe_divide(numerator: float, denominator: float, *, reason: str | None = ...) -> float: ...
@overload
def safe_divide(numerator: pd.Series, denominator: Any, *, reason: str | None = ...) -> pd.Series: ...
@overload
def safe_divide(numerator: Any, denominator: pd.Series, *, reason: str | None = ...) -> pd.Series: ...
@overload
def safe_divide(numerator: Any, denominator: Any, *, reason: str | None = ...) -> Result: ...
def safe_divide(numerator: Any, denominator: Any, *, reason: str | None = None) -> Result:
    r"""Divide, giving NaN with a reason (never ``inf``, never an exception) on a zero denominator.

    .. math:: \text{result} = \frac{\text{numerator}}{\text{denominator}}

    Parameters
    ----------
    numerator, denominator : float, int, numpy.ndarray or pandas.Series
        Any units; the result is in numerator units per denominator unit. Two Series are aligned on
        their index (outer join) first, as pandas does.
    reason : str, optional
        Why the result is undefined when the denominator is zero or missing, e.g. ``"no leads in the
        period"``. Defaults to ``"denominator is zero"`` / ``"denominator is missing"``.

    Returns
    -------
    float, numpy.ndarray or pandas.Series
        A float for scalars, a float array for arrays, a float Series when either input is a Series.

    Notes
    -----
    Zero denominator: scalars give :class:`Undefined` (``reason``); arrays and Series give NaN in
    those positions, and a Series result gets ``attrs["nan_reason"]`` listing every reason that
    produced a NaN. A NaN/None denominator is treated like zero, a missing numerator gives NaN
    with reason ``"numerator is missing"``, an operand that is itself :class:`Undefined` (or a
    Series with ``attrs["nan_reason"]``) passes its own reason through, and an overflowing or
    infinite result becomes NaN (``"result is not finite"``).

    Examples
    --------
    >>> safe_divide(1_000, 10)
    100.0
    >>> safe_divide(1_000, 0, reason="no leads in the period")
    nan (no leads in the period)
    >>> r = safe_divide(pd.Series([100.0, 50.0]), pd.Series([10, 0]), reason="no leads")
    >>> r.tolist(), r.attrs["nan_reason"]
    ([10.0, nan], 'no leads')
    """
    if isinstance(numerator, pd.Series) or isinstance(denominator, pd.Series):
        return _divide_series(numerator, denominator, reason)
    if np.ndim(numerator) == 0 and np.ndim(denominator) == 0:
        return _divide_scalar(numerator, denominator, reason)
    num, den = _values(numerator), _values(denominator)
    with np.errstate(all="ignore"):
        raw = np.divide(num, den)
    return np.where(np.isfinite(raw), raw, np.nan)


def _then(value: Result, func: Callable[[Any], Any]) -> Result:
    """Apply ``func`` to a KPI result, keeping an :class:`Undefined` and a Series' ``nan_reason``."""
    if isinstance(value, Undefined):
        return value
    out = func(value)
    if isinstance(value, pd.Series):
        out.attrs = dict(value.attrs)
    return out


# --------------------------------------------------------------------------------------------------
# traffic and leads


@overload
def visits_per_lead(visits: float, leads: float) -> float: ...
@overload
def visits_per_lead(visits: pd.Series, leads: Values) -> pd.Series: ...
@overload
def visits_per_lead(visits: Values, leads: pd.Series) -> pd.Series: ...
def visits_per_lead(visits: Values, leads: Values) -> Result:
    r"""Visits needed for one lead.

    .. math:: \text{visits per lead} = \frac{\text{visits}}{\text{leads}}

    Parameters
    ----------
    visits : float, array or Series
        Website visits (sessions) in the period, a count.
    leads : float, array or Series
        Leads created in the period, a count.

    Returns
    -------
    float, array or Series
        Visits per lead. Zero leads gives NaN, reason ``"no leads in the period"``.

    Examples
    --------
    >>> visits_per_lead(1_000, 100)
    10.0
    >>> visits_per_lead(1_000, 0)
    nan (no leads in the period)
    """
    return safe_divide(visits, leads, reason="no leads in the period")


@overload
def value_per_lead(lead_revenue: float, leads: float) -> float: ...
@overload
def value_per_lead(lead_revenue: pd.Series, leads: Values) -> pd.Series: ...
@overload
def value_per_lead(lead_revenue: Values, leads: pd.Series) -> pd.Series: ...
def value_per_lead(lead_revenue: Values, leads: Values) -> Result:
    r"""Revenue per lead.

    .. math:: \text{value per lead} = \frac{\text{lead revenue}}{\text{leads}}

    Parameters
    ----------
    lead_revenue : float, array or Series
        Revenue from deals that started as leads, in currency.
    leads : float, array or Series
        Leads in the period, a count.

    Returns
    -------
    float, array or Series
        Currency per lead. Zero leads gives NaN, reason ``"no leads in the period"``.

    Examples
    --------
    >>> value_per_lead(50_000, 100)
    500.0
    """
    return safe_divide(lead_revenue, leads, reason="no leads in the period")


@overload
def value_per_visit(lead_revenue: float, visits: float) -> float: ...
@overload
def value_per_visit(lead_revenue: pd.Series, visits: Values) -> pd.Series: ...
@overload
def value_per_visit(lead_revenue: Values, visits: pd.Series) -> pd.Series: ...
def value_per_visit(lead_revenue: Values, visits: Values) -> Result:
    r"""Revenue per website visit.

    .. math:: \text{value per visit} = \frac{\text{lead revenue}}{\text{visits}}

    Parameters
    ----------
    lead_revenue : float, array or Series
        Revenue from deals that started as leads, in currency.
    visits : float, array or Series
        Website visits in the period, a count.

    Returns
    -------
    float, array or Series
        Currency per visit. Zero visits gives NaN, reason ``"no visits in the period"``.

    Examples
    --------
    >>> value_per_visit(50_000, 1_000)
    50.0
    """
    return safe_divide(lead_revenue, visits, reason="no visits in the period")


@overload
def visit_to_lead_rate(visits: float, leads: float) -> float: ...
@overload
def visit_to_lead_rate(visits: pd.Series, leads: Values) -> pd.Series: ...
@overload
def visit_to_lead_rate(visits: Values, leads: pd.Series) -> pd.Series: ...
def visit_to_lead_rate(visits: Values, leads: Values) -> Result:
    r"""Share of visits that became leads.

    .. math:: \text{visit-to-lead rate} = \frac{\text{leads}}{\text{visits}}

    Parameters
    ----------
    visits : float, array or Series
        Website visits in the period, a count.
    leads : float, array or Series
        Leads created in the period, a count.

    Returns
    -------
    float, array or Series
        A fraction (0.10 is 10 %). Zero visits gives NaN, reason ``"no visits in the period"``.

    Examples
    --------
    1,000 visits and 100 leads:

    >>> visit_to_lead_rate(1_000, 100)
    0.1
    """
    return safe_divide(leads, visits, reason="no visits in the period")


def _ratio_text(ratio: float) -> str:
    if math.isnan(ratio):
        return "n/a"
    rounded = round(ratio, 1)
    return f"{rounded:,.0f}:1" if rounded.is_integer() else f"{rounded:,.1f}:1"


def ratio_label(visits: float | pd.Series, leads: float | pd.Series) -> str | pd.Series:
    r"""Visits per lead as a label, ``"10:1"``.

    .. math:: \text{label} = \frac{\text{visits}}{\text{leads}} \text{ formatted as } r\text{:1}

    Parameters
    ----------
    visits : float or Series
        Website visits, a count.
    leads : float or Series
        Leads, a count.

    Returns
    -------
    str or Series of str
        Whole ratios without decimals (``"10:1"``), others with one decimal (``"12.5:1"``),
        thousands separated (``"1,000:1"``). ``"n/a"`` when there are no leads (or data is missing).

    Examples
    --------
    >>> ratio_label(1_000, 100)
    '10:1'
    >>> ratio_label(1_000, 80)
    '12.5:1'
    >>> ratio_label(1_000, 0)
    'n/a'
    """
    ratio = visits_per_lead(visits, leads)
    if isinstance(ratio, pd.Series):
        return ratio.map(_ratio_text).astype(object)
    return _ratio_text(ratio)


@overload
def lead_to_customer_rate(customers: float, leads: float) -> float: ...
@overload
def lead_to_customer_rate(customers: pd.Series, leads: Values) -> pd.Series: ...
@overload
def lead_to_customer_rate(customers: Values, leads: pd.Series) -> pd.Series: ...
def lead_to_customer_rate(customers: Values, leads: Values) -> Result:
    r"""Share of leads that became customers.

    .. math:: \text{lead-to-customer rate} = \frac{\text{customers}}{\text{leads}}

    Parameters
    ----------
    customers : float, array or Series
        New customers that came from the leads (won new-business deals with a lead), a count.
    leads : float, array or Series
        Leads, a count.

    Returns
    -------
    float, array or Series
        A fraction. Zero leads gives NaN, reason ``"no leads in the period"``.

    Examples
    --------
    >>> lead_to_customer_rate(5, 100)
    0.05
    """
    return safe_divide(customers, leads, reason="no leads in the period")


@overload
def conversion_rate(conversions: float, base: float) -> float: ...
@overload
def conversion_rate(conversions: pd.Series, base: Values) -> pd.Series: ...
@overload
def conversion_rate(conversions: Values, base: pd.Series) -> pd.Series: ...
def conversion_rate(conversions: Values, base: Values) -> Result:
    r"""Generic conversion rate: the share of ``base`` that converted.

    .. math:: \text{conversion rate} = \frac{\text{conversions}}{\text{base}}

    Parameters
    ----------
    conversions : float, array or Series
        Units that converted, a count.
    base : float, array or Series
        Units that could convert, a count in the same unit.

    Returns
    -------
    float, array or Series
        A fraction. Zero base gives NaN, reason ``"conversion base is zero"``.

    Examples
    --------
    >>> conversion_rate(30, 120)
    0.25
    """
    return safe_divide(conversions, base, reason="conversion base is zero")


# --------------------------------------------------------------------------------------------------
# web analytics and email


@overload
def bounce_rate(engaged_sessions: float, sessions: float) -> float: ...
@overload
def bounce_rate(engaged_sessions: pd.Series, sessions: Values) -> pd.Series: ...
@overload
def bounce_rate(engaged_sessions: Values, sessions: pd.Series) -> pd.Series: ...
def bounce_rate(engaged_sessions: Values, sessions: Values) -> Result:
    r"""Share of sessions that were not engaged (GA4 definition: one minus engagement rate).

    .. math:: \text{bounce rate} = 1 - \frac{\text{engaged sessions}}{\text{sessions}}

    Parameters
    ----------
    engaged_sessions : float, array or Series
        Engaged sessions, a count (at most ``sessions``).
    sessions : float, array or Series
        All sessions, a count.

    Returns
    -------
    float, array or Series
        A fraction. Zero sessions gives NaN, reason ``"no sessions in the period"``.

    Examples
    --------
    >>> bounce_rate(600, 1_000)
    0.4
    """
    return _then(safe_divide(engaged_sessions, sessions, reason="no sessions in the period"), lambda r: 1 - r)


@overload
def avg_session_duration(total_duration_s: float, sessions: float) -> float: ...
@overload
def avg_session_duration(total_duration_s: pd.Series, sessions: Values) -> pd.Series: ...
@overload
def avg_session_duration(total_duration_s: Values, sessions: pd.Series) -> pd.Series: ...
def avg_session_duration(total_duration_s: Values, sessions: Values) -> Result:
    r"""Average session duration.

    .. math:: \text{average duration} = \frac{\text{total session duration}}{\text{sessions}}

    Parameters
    ----------
    total_duration_s : float, array or Series
        Summed duration of all sessions, in seconds.
    sessions : float, array or Series
        Sessions, a count.

    Returns
    -------
    float, array or Series
        Seconds per session. Zero sessions gives NaN, reason ``"no sessions in the period"``.

    Examples
    --------
    >>> avg_session_duration(90_000, 1_000)
    90.0
    """
    return safe_divide(total_duration_s, sessions, reason="no sessions in the period")


@overload
def new_user_share(new_users: float, users: float) -> float: ...
@overload
def new_user_share(new_users: pd.Series, users: Values) -> pd.Series: ...
@overload
def new_user_share(new_users: Values, users: pd.Series) -> pd.Series: ...
def new_user_share(new_users: Values, users: Values) -> Result:
    r"""Share of users that were new.

    .. math:: \text{new-user share} = \frac{\text{new users}}{\text{users}}

    Parameters
    ----------
    new_users : float, array or Series
        First-time users, a count.
    users : float, array or Series
        All users, a count.

    Returns
    -------
    float, array or Series
        A fraction. Zero users gives NaN, reason ``"no users in the period"``.

    Examples
    --------
    >>> new_user_share(300, 1_200)
    0.25
    """
    return safe_divide(new_users, users, reason="no users in the period")


def returning_users(users: Values, new_users: Values) -> Values:
    r"""Returning users: users who are not new.

    .. math:: \text{returning users} = \text{users} - \text{new users}

    Parameters
    ----------
    users : float, array or Series
        All users, a count.
    new_users : float, array or Series
        First-time users, a count.

    Returns
    -------
    float, array or Series
        A count. There is no denominator; missing inputs give NaN as in pandas.

    Examples
    --------
    >>> returning_users(1_200, 300)
    900
    """
    return users - new_users


@overload
def goal_conversion_rate(completions: float, sessions: float) -> float: ...
@overload
def goal_conversion_rate(completions: pd.Series, sessions: Values) -> pd.Series: ...
@overload
def goal_conversion_rate(completions: Values, sessions: pd.Series) -> pd.Series: ...
def goal_conversion_rate(completions: Values, sessions: Values) -> Result:
    r"""Goal (key event) completions per session.

    .. math:: \text{goal conversion rate} = \frac{\text{goal completions}}{\text{sessions}}

    Parameters
    ----------
    completions : float, array or Series
        Goal completions, a count.
    sessions : float, array or Series
        Sessions, a count.

    Returns
    -------
    float, array or Series
        A fraction (can exceed 1 if a session completes the goal more than once). Zero sessions
        gives NaN, reason ``"no sessions in the period"``.

    Examples
    --------
    >>> goal_conversion_rate(25, 1_000)
    0.025
    """
    return safe_divide(completions, sessions, reason="no sessions in the period")


@overload
def email_open_rate(opens: float, sends: float) -> float: ...
@overload
def email_open_rate(opens: pd.Series, sends: Values) -> pd.Series: ...
@overload
def email_open_rate(opens: Values, sends: pd.Series) -> pd.Series: ...
def email_open_rate(opens: Values, sends: Values) -> Result:
    r"""Share of sent emails that were opened.

    .. math:: \text{open rate} = \frac{\text{unique opens}}{\text{emails sent}}

    Parameters
    ----------
    opens : float, array or Series
        Unique opens, a count.
    sends : float, array or Series
        Emails sent (or delivered, if that is the chosen base), a count.

    Returns
    -------
    float, array or Series
        A fraction. Zero sends gives NaN, reason ``"no emails sent"``.

    Examples
    --------
    >>> email_open_rate(220, 1_000)
    0.22
    """
    return safe_divide(opens, sends, reason="no emails sent")


# --------------------------------------------------------------------------------------------------
# cost and value


@overload
def cost_per_lead(marketing_cost: float, leads: float) -> float: ...
@overload
def cost_per_lead(marketing_cost: pd.Series, leads: Values) -> pd.Series: ...
@overload
def cost_per_lead(marketing_cost: Values, leads: pd.Series) -> pd.Series: ...
def cost_per_lead(marketing_cost: Values, leads: Values) -> Result:
    r"""Marketing cost per lead.

    .. math:: \text{CPL} = \frac{\text{marketing cost}}{\text{leads}}

    Parameters
    ----------
    marketing_cost : float, array or Series
        Marketing cost in currency: every cost type but `sales` (`schema.MARKETING_COST_TYPES`).
    leads : float, array or Series
        Leads, a count.

    Returns
    -------
    float, array or Series
        Currency per lead. Zero leads gives NaN, reason ``"no leads in the period"``.

    Examples
    --------
    $1,000 and 10 leads:

    >>> cost_per_lead(1_000, 10)
    100.0
    """
    return safe_divide(marketing_cost, leads, reason="no leads in the period")


@overload
def customer_acquisition_cost(marketing_cost: float, sales_cost: float, new_customers: float) -> float: ...
@overload
def customer_acquisition_cost(marketing_cost: pd.Series, sales_cost: Values, new_customers: Values) -> pd.Series: ...
@overload
def customer_acquisition_cost(marketing_cost: Values, sales_cost: Values, new_customers: pd.Series) -> pd.Series: ...
def customer_acquisition_cost(marketing_cost: Values, sales_cost: Values, new_customers: Values) -> Result:
    r"""Customer acquisition cost (CAC).

    .. math:: \text{CAC} = \frac{\text{marketing cost} + \text{sales cost}}{\text{new customers}}

    Parameters
    ----------
    marketing_cost : float, array or Series
        Marketing cost in currency.
    sales_cost : float, array or Series
        Sales cost in currency.
    new_customers : float, array or Series
        Customers won in the period, a count: accounts whose first new-business deal was won
        (renewals and expansions never make a customer new; see :mod:`kpi_helpers.facts`).

    Returns
    -------
    float, array or Series
        Currency per new customer. Zero new customers gives NaN, reason ``"no new customers"``.

    Examples
    --------
    $500,000 total cost and 5,000 new customers:

    >>> customer_acquisition_cost(300_000, 200_000, 5_000)
    100.0
    >>> customer_acquisition_cost(300_000, 200_000, 0)
    nan (no new customers)
    """
    return safe_divide(marketing_cost + sales_cost, new_customers, reason="no new customers")


@overload
def average_yearly_revenue_per_customer(revenue: float, customers: float, years: float) -> float: ...
@overload
def average_yearly_revenue_per_customer(revenue: pd.Series, customers: Values, years: Values) -> pd.Series: ...
@overload
def average_yearly_revenue_per_customer(revenue: Values, customers: Values, years: pd.Series) -> pd.Series: ...
def average_yearly_revenue_per_customer(revenue: Values, customers: Values, years: Values) -> Result:
    r"""Average revenue per customer per year.

    .. math:: \bar{r} = \frac{\text{revenue}}{\text{customers} \times \text{years}}

    Parameters
    ----------
    revenue : float, array or Series
        Revenue over the whole window, in currency: won deals of every type (new business,
        renewals and expansions), as a customer pays all of them.
    customers : float, array or Series
        Customers the revenue came from, a count.
    years : float, array or Series
        Length of the window in years.

    Returns
    -------
    float, array or Series
        Currency per customer per year. Zero customers or years gives NaN, reason
        ``"no customers or zero-length period"``.

    Examples
    --------
    >>> average_yearly_revenue_per_customer(3_000_000, 1_000, 2)
    1500.0
    """
    return safe_divide(revenue, customers * years, reason="no customers or zero-length period")


def customer_lifetime_value(
    avg_yearly_revenue_per_customer: Values, *, gross_margin: float, lifetime_years: float
) -> Values:
    r"""Customer lifetime value (CLV): gross profit a customer brings over their lifetime.

    .. math:: \text{CLV} = \bar{r} \times m \times L, \qquad L = \frac{1}{\text{annual churn}}

    Parameters
    ----------
    avg_yearly_revenue_per_customer : float, array or Series
        :math:`\bar{r}`, currency per customer per year (see
        :func:`average_yearly_revenue_per_customer`).
    gross_margin : float
        :math:`m`, gross margin as a fraction in [0, 1] (0.6 for 60 %).
    lifetime_years : float
        :math:`L`, expected customer lifetime in years, >= 0. When the annual churn rate is known,
        use ``1 / churn`` (20 % churn gives 5 years).

    Returns
    -------
    float, array or Series
        Currency per customer. There is no denominator; NaN revenue gives NaN.

    Raises
    ------
    KpiInputError
        ``gross_margin`` outside [0, 1] or ``lifetime_years`` negative.

    Examples
    --------
    >>> customer_lifetime_value(1_500, gross_margin=0.6, lifetime_years=5)
    4500.0
    """
    if not 0 <= gross_margin <= 1:
        raise KpiInputError(f"`gross_margin` must be a fraction in [0, 1], got {gross_margin!r}; use 0.6 for 60%")
    if not lifetime_years >= 0:
        raise KpiInputError(f"`lifetime_years` must be >= 0, got {lifetime_years!r}")
    return avg_yearly_revenue_per_customer * gross_margin * lifetime_years


@overload
def clv_to_cac(clv: float, cac: float) -> float: ...
@overload
def clv_to_cac(clv: pd.Series, cac: Values) -> pd.Series: ...
@overload
def clv_to_cac(clv: Values, cac: pd.Series) -> pd.Series: ...
def clv_to_cac(clv: Values, cac: Values) -> Result:
    r"""Ratio of customer lifetime value to customer acquisition cost.

    .. math:: \text{CLV:CAC} = \frac{\text{CLV}}{\text{CAC}}

    Parameters
    ----------
    clv : float, array or Series
        Customer lifetime value, currency per customer.
    cac : float, array or Series
        Customer acquisition cost, currency per customer.

    Returns
    -------
    float, array or Series
        A unitless multiple (3.0 means CLV is three times CAC). Zero CAC gives NaN, reason
        ``"customer acquisition cost is zero"``; an undefined CAC passes its own reason through.

    Examples
    --------
    >>> clv_to_cac(4_500, 1_500)
    3.0
    """
    return safe_divide(clv, cac, reason="customer acquisition cost is zero")


@overload
def marketing_roi(attributed_revenue: float, marketing_cost: float) -> float: ...
@overload
def marketing_roi(attributed_revenue: pd.Series, marketing_cost: Values) -> pd.Series: ...
@overload
def marketing_roi(attributed_revenue: Values, marketing_cost: pd.Series) -> pd.Series: ...
def marketing_roi(attributed_revenue: Values, marketing_cost: Values) -> Result:
    r"""Marketing return on investment.

    .. math:: \text{ROI} = \frac{\text{attributed revenue} - \text{marketing cost}}{\text{marketing cost}}

    Parameters
    ----------
    attributed_revenue : float, array or Series
        Revenue attributed to marketing, in currency.
    marketing_cost : float, array or Series
        Marketing cost, in currency.

    Returns
    -------
    float, array or Series
        A fraction (1.5 is 150 % return, -0.2 a loss of 20 %). Zero cost gives NaN, reason
        ``"no marketing cost"``.

    Examples
    --------
    >>> marketing_roi(250_000, 100_000)
    1.5
    """
    return safe_divide(attributed_revenue - marketing_cost, marketing_cost, reason="no marketing cost")


# --------------------------------------------------------------------------------------------------
# growth, pacing and status


@overload
def growth(current: float, previous: float) -> float: ...
@overload
def growth(current: pd.Series, previous: Values) -> pd.Series: ...
@overload
def growth(current: Values, previous: pd.Series) -> pd.Series: ...
def growth(current: Values, previous: Values) -> Result:
    r"""Relative change from the previous period.

    .. math:: \text{growth} = \frac{\text{current} - \text{previous}}{\text{previous}}

    Parameters
    ----------
    current, previous : float, array or Series
        The same metric in the current and previous period, any unit.

    Returns
    -------
    float, array or Series
        A fraction (0.25 is +25 %). A previous value of 0 gives NaN, reason
        ``"previous value is zero"``.

    Examples
    --------
    >>> growth(12_500_000, 10_000_000)
    0.25
    >>> growth(100, 0)
    nan (previous value is zero)
    """
    return safe_divide(current - previous, previous, reason="previous value is zero")


def run_rate_projection(value_to_date: Values, *, days_elapsed: Values, days_in_period: Values) -> Result:
    r"""Project a period-to-date value to the full period at the current pace.

    .. math::

        \text{projection} = \frac{\text{value to date}}{\text{days elapsed}} \times \text{days in period}

    Parameters
    ----------
    value_to_date : float, array or Series
        The metric accumulated so far in the period, any additive unit.
    days_elapsed : float, array or Series
        Days of the period that have passed.
    days_in_period : float, array or Series
        Days in the whole period.

    Returns
    -------
    float, array or Series
        The projected value at period end, in the unit of ``value_to_date``. Zero days elapsed
        gives NaN, reason ``"no days elapsed in the period"``.

    Examples
    --------
    $300,000 after 30 of 90 days:

    >>> run_rate_projection(300_000, days_elapsed=30, days_in_period=90)
    900000.0
    """
    daily = safe_divide(value_to_date, days_elapsed, reason="no days elapsed in the period")
    return _then(daily, lambda d: d * days_in_period)


@overload
def progress(actual: float, target: float, baseline: float | None = ...) -> float: ...
@overload
def progress(actual: pd.Series, target: Values, baseline: Values | None = ...) -> pd.Series: ...
@overload
def progress(actual: Values, target: pd.Series, baseline: Values | None = ...) -> pd.Series: ...
@overload
def progress(actual: Values, target: Values, baseline: Values | None = ...) -> Result: ...
def progress(actual: Values, target: Values, baseline: Values | None = None) -> Result:
    r"""Share of the way from the baseline to the target that the actual value has covered.

    .. math:: \text{progress} = \frac{\text{actual} - \text{baseline}}{\text{target} - \text{baseline}}

    Parameters
    ----------
    actual, target : float, array or Series
        Actual and target value of a KPI, same unit.
    baseline : float, array or Series, optional
        Starting point, same unit; defaults to 0 (progress is then ``actual / target``). For a
        lower-is-better KPI pass the baseline above the target; the formula works unchanged.

    Returns
    -------
    float, array or Series
        A fraction: 1.0 means the target is reached, above 1 exceeded, below 0 worse than the
        baseline. Target equal to baseline gives NaN, reason ``"target equals baseline"``.

    Examples
    --------
    >>> progress(90, 100)
    0.9
    >>> progress(105, 110, baseline=100)
    0.5
    """
    base = 0 if baseline is None else baseline
    return safe_divide(actual - base, target - base, reason="target equals baseline")


_STATUSES = ("on track", "at risk", "off track", "no data")


def _status(actual: Any, target: Any, baseline: Any, higher_is_better: bool, at_risk: float) -> str:
    actual, target = _scalar(actual), _scalar(target)
    if math.isnan(actual) or math.isnan(target):
        return "no data"
    if actual >= target if higher_is_better else actual <= target:
        return "on track"
    if baseline is not None and not math.isnan(_scalar(baseline)):
        share = _scalar(progress(actual, target, baseline))
        near = not math.isnan(share) and share >= at_risk
    else:
        near = actual >= at_risk * target if higher_is_better else actual * at_risk <= target
    return "at risk" if near else "off track"


def kpi_status(
    actual: float | pd.Series,
    target: float | pd.Series,
    *,
    baseline: float | pd.Series | None = None,
    higher_is_better: bool = True,
    at_risk: float = 0.9,
) -> str | pd.Series:
    r"""Traffic-light status of a KPI against its target.

    .. math::

        \text{status} =
        \begin{cases}
        \text{on track} & a \ge T \quad (\text{lower is better: } a \le T) \\
        \text{at risk} & a \ge \rho T \quad (\text{lower is better: } a \le T / \rho) \\
        \text{off track} & \text{otherwise}
        \end{cases}

    with :math:`a` the actual value, :math:`T` the target and :math:`\rho` = ``at_risk``. With a
    ``baseline`` :math:`B`, "at risk" instead means :func:`progress` from :math:`B` to :math:`T`
    is at least :math:`\rho`, i.e. :math:`a \ge B + \rho (T - B)` (either direction).

    Parameters
    ----------
    actual, target : float or Series
        Actual and target value, same unit; targets are assumed positive when no baseline is given.
    baseline : float or Series, optional
        Starting value the target was set from, same unit.
    higher_is_better : bool, default True
        False for costs such as CAC or cost per lead.
    at_risk : float, default 0.9
        Fraction in (0, 1] of the target (or of the way to it) that counts as "at risk".

    Returns
    -------
    str or Series of str
        ``"on track"``, ``"at risk"``, ``"off track"``, or ``"no data"`` when the actual or target is
        NaN (e.g. an :class:`Undefined` rate). Series inputs are aligned on their index.

    Raises
    ------
    KpiInputError
        ``at_risk`` outside (0, 1].

    Examples
    --------
    >>> kpi_status(95, 100), kpi_status(80, 100), kpi_status(100, 100)
    ('at risk', 'off track', 'on track')
    >>> kpi_status(540, 500, higher_is_better=False)
    'at risk'
    >>> kpi_status(safe_divide(1, 0), 0.1)
    'no data'
    """
    if not 0 < at_risk <= 1:
        raise KpiInputError(f"`at_risk` must be a fraction in (0, 1], got {at_risk!r}")
    if not any(isinstance(x, pd.Series) for x in (actual, target, baseline)):
        return _status(actual, target, baseline, higher_is_better, at_risk)
    frame = pd.DataFrame({"actual": actual, "target": target, "baseline": baseline})
    statuses = [_status(a, t, b, higher_is_better, at_risk) for a, t, b in frame.itertuples(index=False)]
    return pd.Series(statuses, index=frame.index, dtype=object, name="status")


# --------------------------------------------------------------------------------------------------
# funnel and velocity
